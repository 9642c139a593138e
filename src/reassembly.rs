//! Stage 3: TCP segments to ordered stream bytes, each direction on its own.
//!
//! Every TCP conversation gets Wireshark's `tcp.stream` index: the next index when its first
//! packet is seen, and a new one when a SYN with a different initial sequence number reuses the
//! same addresses and ports. Bytes are delivered in sequence order to a [`StreamHandler`]; the
//! first copy of a byte wins, out-of-order segments wait (bounded) until the hole before them is
//! filled, and a hole that the capture never fills is reported as a gap rather than papered over.
//! Once a handler says it needs no more bytes of a direction, that direction's payload is dropped
//! on arrival, and once it is done with the whole connection it is finished and its memory freed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::capture::Timestamp;
use crate::decode::TcpSegment;

/// Direction within a connection: `Forward` is from the endpoint that sent the first packet seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Forward,
    Backward,
}

impl Dir {
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn reverse(self) -> Dir {
        match self {
            Dir::Forward => Dir::Backward,
            Dir::Backward => Dir::Forward,
        }
    }
}

/// Where and when something happened, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub frame: u64,
    pub ts: Timestamp,
}

/// What a handler learns about its connection when it is created.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    /// The source of the first packet seen (the `Forward` direction's sender).
    pub first_src: SocketAddr,
    pub first_dst: SocketAddr,
    pub first_at: At,
}

/// The consumer of reassembled bytes (the TLS stage).
pub trait StreamHandler {
    type Output;
    /// In-order bytes of direction `dir`, delivered at frame `at`.
    fn on_data(&mut self, dir: Dir, at: At, data: &[u8]);
    /// `len` bytes of direction `dir` are missing from the capture before the next delivery.
    fn on_gap(&mut self, dir: Dir, at: At, len: u64);
    /// `len` bytes of this segment were not captured: the snap length cut the frame.
    fn on_snaplen(&mut self, dir: Dir, at: At, len: u64) {
        self.on_gap(dir, at, len);
    }
    /// A SYN (with `ack` for SYN-ACK) was seen in `dir`.
    fn on_syn(&mut self, _dir: Dir, _ack: bool) {}
    fn on_fin(&mut self, dir: Dir, at: At);
    fn on_rst(&mut self, dir: Dir, at: At);
    /// A retransmission carried bytes different from those already delivered (first copy won).
    fn on_conflict(&mut self, _dir: Dir, _at: At) {}
    /// False once the handler needs no more payload of `dir`.
    fn wants_data(&self, dir: Dir) -> bool;
    /// True once the handler needs nothing more of this connection.
    fn is_done(&self) -> bool;
    /// Called once, when the connection ends, the handler is done, or the capture ends.
    fn finish(self, capture_ended: bool) -> Option<Self::Output>;
}

/// Counters for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpStats {
    pub segments: u64,
    pub connections: u64,
    pub gaps: u64,
    pub retransmitted_bytes: u64,
    pub conflicting_retransmissions: u64,
    pub out_of_order_segments: u64,
}

/// Most bytes held out of order per direction before the hole before them is declared a gap.
const MAX_OOO_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
struct DirState {
    /// Sequence number of the next byte to deliver; `None` until the first segment is seen.
    next_seq: Option<u32>,
    /// The first sequence number seen (Wireshark's base sequence, used for port-reuse detection).
    base_seq: Option<u32>,
    /// Segments that arrived ahead of `next_seq`: (seq, frame, bytes, fin).
    pending: Vec<Pending>,
    pending_bytes: usize,
    fin: bool,
    /// The last bytes delivered (while the handler wants them), to check retransmissions.
    recent: Vec<u8>,
}

/// How many delivered bytes per direction are kept to compare retransmissions against.
const RECENT_BYTES: usize = 64 << 10;

impl DirState {
    /// Delivers in-order bytes and remembers them for retransmission checks.
    fn deliver<H: StreamHandler>(&mut self, handler: &mut H, dir: Dir, at: At, data: &[u8]) {
        handler.on_data(dir, at, data);
        if self.recent.len() + data.len() > RECENT_BYTES {
            let drop = (self.recent.len() + data.len() - RECENT_BYTES).min(self.recent.len());
            self.recent.drain(..drop);
        }
        let keep = data.len().min(RECENT_BYTES);
        self.recent.extend_from_slice(&data[data.len() - keep..]);
    }

    /// True when `data`, starting `behind` bytes before `next_seq`, differs from what was
    /// delivered for the same sequence numbers (as far as they are remembered).
    fn conflicts(&self, behind: usize, data: &[u8]) -> bool {
        let overlap = behind.min(data.len());
        if behind > self.recent.len() || overlap == 0 {
            return false;
        }
        let start = self.recent.len() - behind;
        self.recent[start..start + overlap] != data[..overlap]
    }
}

#[derive(Debug)]
struct Pending {
    seq: u32,
    at: At,
    data: Vec<u8>,
    fin: bool,
}

/// Signed distance from `b` to `a` in sequence space (handles wraparound).
fn seq_diff(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

struct Conn<H> {
    stream: u64,
    /// The endpoint that sent the first packet seen.
    first_src: SocketAddr,
    dirs: [DirState; 2],
    handler: Option<H>,
    closed: bool,
}

type Key = (IpAddr, u16, IpAddr, u16);

fn key_of(src: SocketAddr, dst: SocketAddr) -> Key {
    if (src.ip(), src.port()) <= (dst.ip(), dst.port()) {
        (src.ip(), src.port(), dst.ip(), dst.port())
    } else {
        (dst.ip(), dst.port(), src.ip(), src.port())
    }
}

/// The TCP conversation table.
pub struct Reassembler<H: StreamHandler, F: FnMut(ConnInfo) -> H> {
    conns: HashMap<Key, Conn<H>>,
    next_stream: u64,
    new_handler: F,
    pub stats: TcpStats,
    /// Outputs of finished handlers, in the order they finished.
    pub finished: Vec<H::Output>,
}

impl<H: StreamHandler, F: FnMut(ConnInfo) -> H> Reassembler<H, F> {
    pub fn new(new_handler: F) -> Self {
        Reassembler {
            conns: HashMap::new(),
            next_stream: 0,
            new_handler,
            stats: TcpStats::default(),
            finished: Vec::new(),
        }
    }

    pub fn process(&mut self, at: At, seg: &TcpSegment<'_>) {
        self.stats.segments += 1;
        let src = SocketAddr::new(seg.src, seg.sport);
        let dst = SocketAddr::new(seg.dst, seg.dport);
        let key = key_of(src, dst);

        // A SYN with a new initial sequence number on a known 4-tuple is a new conversation
        // (port reuse), as in Wireshark.
        if let Some(conn) = self.conns.get(&key) {
            let dir = if conn.first_src == src {
                Dir::Forward
            } else {
                Dir::Backward
            };
            let reused = seg.flags.syn
                && !seg.flags.ack
                && conn.dirs[dir.index()]
                    .base_seq
                    .is_some_and(|base| base != seg.seq);
            if reused && let Some(old) = self.conns.remove(&key) {
                self.finish_conn(old, false);
            }
        }

        let conn = self.conns.entry(key).or_insert_with(|| {
            let stream = self.next_stream;
            self.next_stream += 1;
            self.stats.connections += 1;
            let handler = (self.new_handler)(ConnInfo {
                stream,
                first_src: src,
                first_dst: dst,
                first_at: at,
            });
            Conn {
                stream,
                first_src: src,
                dirs: Default::default(),
                handler: Some(handler),
                closed: false,
            }
        });
        let dir = if conn.first_src == src {
            Dir::Forward
        } else {
            Dir::Backward
        };
        if conn.handler.is_none() && conn.closed && seg.flags.syn && !seg.flags.ack {
            // A SYN (same initial sequence number) after a reset: the same conversation for
            // Wireshark, a new connection attempt for us.
            let bases = [conn.dirs[0].base_seq, conn.dirs[1].base_seq];
            conn.dirs = Default::default();
            conn.dirs[0].base_seq = bases[0];
            conn.dirs[1].base_seq = bases[1];
            conn.closed = false;
            let (first_src, first_dst) = match dir {
                Dir::Forward => (src, dst),
                Dir::Backward => (dst, src),
            };
            conn.handler = Some((self.new_handler)(ConnInfo {
                stream: conn.stream,
                first_src,
                first_dst,
                first_at: at,
            }));
        }
        let Some(handler) = conn.handler.as_mut() else {
            // Already finished: only the stream number is kept.
            let d = &mut conn.dirs[dir.index()];
            if d.base_seq.is_none() {
                d.base_seq = Some(base_of(seg));
            }
            return;
        };
        Self::segment(&mut self.stats, &mut conn.dirs, handler, dir, at, seg);
        if seg.flags.rst {
            conn.closed = true;
        }
        let both_fin = conn.dirs[0].fin && conn.dirs[1].fin;
        let done = handler.is_done();
        if conn.closed || both_fin || done {
            let handler = conn.handler.take();
            for d in conn.dirs.iter_mut() {
                d.pending = Vec::new();
                d.pending_bytes = 0;
            }
            if let Some(h) = handler
                && let Some(out) = h.finish(false)
            {
                self.finished.push(out);
            }
        }
    }

    fn segment(
        stats: &mut TcpStats,
        dirs: &mut [DirState; 2],
        handler: &mut H,
        dir: Dir,
        at: At,
        seg: &TcpSegment<'_>,
    ) {
        let (this, other) = split_dirs(dirs, dir);
        if this.base_seq.is_none() {
            this.base_seq = Some(base_of(seg));
        }
        if seg.flags.syn {
            handler.on_syn(dir, seg.flags.ack);
            if this.next_seq.is_none() {
                this.next_seq = Some(seg.seq.wrapping_add(1));
            }
        } else if this.next_seq.is_none() {
            // The capture starts mid-stream: deliver from the first byte seen.
            this.next_seq = Some(seg.seq);
        }

        // The peer acknowledged bytes of the other direction that the capture never saw:
        // what is still waiting behind that hole can be delivered after a gap.
        if seg.flags.ack
            && !seg.flags.syn
            && let Some(next) = other.next_seq
            && seq_diff(seg.ack, next) > 0
            && !other.pending.is_empty()
        {
            Self::skip_gap(stats, other, handler, dir.reverse(), at, Some(seg.ack));
        }

        if seg.flags.rst {
            handler.on_rst(dir, at);
            return;
        }

        let wants = handler.wants_data(dir);
        let seq = if seg.flags.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let next = this.next_seq.unwrap_or(seq);
        let off = seq_diff(seq, next);
        if off > 0 {
            // Ahead of what was delivered: keep it until the hole is filled.
            stats.out_of_order_segments += 1;
            if wants && (!seg.payload.is_empty() || seg.flags.fin) {
                this.pending_bytes += seg.payload.len();
                this.pending.push(Pending {
                    seq,
                    at,
                    data: seg.payload.to_vec(),
                    fin: seg.flags.fin,
                });
                if this.pending_bytes > MAX_OOO_BYTES {
                    Self::skip_gap(stats, this, handler, dir, at, None);
                }
            } else if seg.flags.fin {
                this.fin = true;
                handler.on_fin(dir, at);
            }
            return;
        }
        // In order, possibly overlapping what was already delivered.
        let skip = (-off) as usize;
        let payload = seg.payload;
        if skip > 0 && !payload.is_empty() {
            stats.retransmitted_bytes += skip.min(payload.len()) as u64;
            if wants && this.conflicts(skip, payload) {
                stats.conflicting_retransmissions += 1;
                handler.on_conflict(dir, at);
            }
        }
        if skip < payload.len() {
            if wants {
                this.deliver(handler, dir, at, &payload[skip..]);
            }
            this.next_seq = Some(next.wrapping_add((payload.len() - skip) as u32));
        }
        if seg.missing > 0 && skip <= payload.len() + seg.missing as usize {
            let lost = (payload.len() + seg.missing as usize - skip.max(payload.len())) as u64;
            if lost > 0 {
                stats.gaps += 1;
                if wants {
                    handler.on_snaplen(dir, at, lost);
                }
                let end = seq.wrapping_add(payload.len() as u32 + seg.missing);
                this.next_seq = Some(end);
            }
        }
        if seg.flags.fin && !this.fin {
            this.fin = true;
            this.next_seq = this.next_seq.map(|n| n.wrapping_add(1));
            handler.on_fin(dir, at);
        }
        Self::drain(stats, this, handler, dir, at);
    }

    /// Delivers pending segments that have become contiguous.
    /// Bytes become available in the frame that made them contiguous, as in Wireshark.
    fn drain(stats: &mut TcpStats, this: &mut DirState, handler: &mut H, dir: Dir, at: At) {
        while !this.pending.is_empty() {
            let next = this.next_seq.unwrap_or(0);
            // The pending segment that starts earliest.
            let (i, _) = this
                .pending
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| seq_diff(p.seq, next))
                .expect("non-empty");
            if seq_diff(this.pending[i].seq, next) > 0 {
                return;
            }
            let p = this.pending.swap_remove(i);
            this.pending_bytes -= p.data.len();
            let skip = (-seq_diff(p.seq, next)) as usize;
            if skip > 0 && this.conflicts(skip, &p.data) {
                stats.conflicting_retransmissions += 1;
                handler.on_conflict(dir, at);
            }
            if skip < p.data.len() {
                this.deliver(handler, dir, at, &p.data[skip..]);
                this.next_seq = Some(next.wrapping_add((p.data.len() - skip) as u32));
            } else {
                stats.retransmitted_bytes += p.data.len() as u64;
            }
            if p.fin && !this.fin {
                this.fin = true;
                this.next_seq = this.next_seq.map(|n| n.wrapping_add(1));
                handler.on_fin(dir, at);
            }
        }
    }

    /// Declares the hole before the first pending segment (or up to `upto`) lost, then delivers.
    fn skip_gap(
        stats: &mut TcpStats,
        this: &mut DirState,
        handler: &mut H,
        dir: Dir,
        at: At,
        upto: Option<u32>,
    ) {
        let Some(next) = this.next_seq else { return };
        let first = this
            .pending
            .iter()
            .map(|p| p.seq)
            .min_by_key(|s| seq_diff(*s, next));
        let target = match (first, upto) {
            (Some(f), Some(u)) if seq_diff(u, f) > 0 => f,
            (_, Some(u)) => u,
            (Some(f), None) => f,
            (None, None) => return,
        };
        let len = seq_diff(target, next);
        if len <= 0 {
            return;
        }
        stats.gaps += 1;
        handler.on_gap(dir, at, len as u64);
        this.next_seq = Some(target);
        Self::drain(stats, this, handler, dir, at);
    }

    fn finish_conn(&mut self, mut conn: Conn<H>, capture_ended: bool) {
        if let Some(mut handler) = conn.handler.take() {
            for (i, d) in conn.dirs.iter_mut().enumerate() {
                let dir = if i == 0 { Dir::Forward } else { Dir::Backward };
                if !d.pending.is_empty() {
                    let at = d.pending.iter().map(|p| p.at).max_by_key(|a| a.frame);
                    if let Some(at) = at {
                        Self::skip_gap(&mut self.stats, d, &mut handler, dir, at, None);
                    }
                }
            }
            if let Some(out) = handler.finish(capture_ended) {
                self.finished.push(out);
            }
        }
    }

    /// Ends every live connection (end of capture) and returns all outputs.
    pub fn finish(mut self) -> (Vec<H::Output>, TcpStats) {
        let mut live: Vec<(Key, Conn<H>)> = self.conns.drain().collect();
        live.sort_by_key(|(_, c)| c.stream);
        for (_, conn) in live {
            self.finish_conn(conn, true);
        }
        (self.finished, self.stats)
    }

    /// Connections whose handler is still live (for memory accounting and tests).
    pub fn live_handlers(&self) -> usize {
        self.conns.values().filter(|c| c.handler.is_some()).count()
    }
}

fn base_of(seg: &TcpSegment<'_>) -> u32 {
    if seg.flags.syn {
        seg.seq
    } else {
        seg.seq.wrapping_sub(1)
    }
}

fn split_dirs(dirs: &mut [DirState; 2], dir: Dir) -> (&mut DirState, &mut DirState) {
    let [a, b] = dirs;
    match dir {
        Dir::Forward => (a, b),
        Dir::Backward => (b, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    /// Records what the reassembler hands over.
    #[derive(Default)]
    struct Rec {
        stream: u64,
        log: Vec<String>,
        data: [Vec<u8>; 2],
    }

    impl StreamHandler for Rec {
        type Output = Rec;
        fn on_data(&mut self, dir: Dir, at: At, data: &[u8]) {
            self.data[dir.index()].extend_from_slice(data);
            self.log
                .push(format!("{dir:?} data {} @{}", data.len(), at.frame));
        }
        fn on_gap(&mut self, dir: Dir, at: At, len: u64) {
            self.log.push(format!("{dir:?} gap {len} @{}", at.frame));
        }
        fn on_fin(&mut self, dir: Dir, at: At) {
            self.log.push(format!("{dir:?} fin @{}", at.frame));
        }
        fn on_rst(&mut self, dir: Dir, at: At) {
            self.log.push(format!("{dir:?} rst @{}", at.frame));
        }
        fn on_conflict(&mut self, dir: Dir, at: At) {
            self.log.push(format!("{dir:?} conflict @{}", at.frame));
        }
        fn wants_data(&self, _dir: Dir) -> bool {
            true
        }
        fn is_done(&self) -> bool {
            false
        }
        fn finish(self, _ended: bool) -> Option<Rec> {
            Some(self)
        }
    }

    const C: &str = "10.0.0.1";
    const S: &str = "10.0.0.2";

    fn seg<'a>(from_client: bool, seq: u32, flags: &str, payload: &'a [u8]) -> TcpSegment<'a> {
        let (src, dst, sport, dport) = if from_client {
            (C, S, 40000, 443)
        } else {
            (S, C, 443, 40000)
        };
        TcpSegment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
            seq,
            ack: 0,
            flags: TcpFlags {
                syn: flags.contains('S'),
                ack: flags.contains('A'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
            },
            payload,
            missing: 0,
        }
    }

    fn run(segs: &[TcpSegment<'_>]) -> Vec<Rec> {
        let mut r = Reassembler::new(|info: ConnInfo| Rec {
            stream: info.stream,
            ..Default::default()
        });
        for (i, s) in segs.iter().enumerate() {
            let at = At {
                frame: i as u64 + 1,
                ts: Timestamp::default(),
            };
            r.process(at, s);
        }
        r.finish().0
    }

    #[test]
    fn out_of_order_and_retransmitted_segments_are_delivered_once_in_order() {
        let out = run(&[
            seg(true, 100, "S", b""),
            seg(true, 101, "A", b"hello "),
            seg(true, 112, "A", b"!"),      // ahead: held
            seg(true, 107, "A", b"world"),  // fills the hole: delivers both
            seg(true, 101, "A", b"hello "), // retransmission: dropped
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data[0], b"hello world!");
        assert_eq!(
            out[0].log,
            vec![
                "Forward data 6 @2",
                "Forward data 5 @4",
                "Forward data 1 @4"
            ]
        );
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let out = run(&[
            seg(false, u32::MAX - 2, "A", b"abc"),
            seg(false, u32::MAX, "A", b"XY"),
            seg(false, 1, "A", b"def"),
        ]);
        // Mid-stream start at 2^32-3: "abc" ends at 0, "XY" overlaps by one byte.
        assert_eq!(out[0].data[0], b"abcYdef");
    }

    #[test]
    fn a_retransmission_with_different_bytes_is_reported_and_the_first_copy_wins() {
        let out = run(&[
            seg(true, 0, "S", b""),
            seg(true, 1, "A", b"abcdef"),
            seg(true, 4, "A", b"XYZgh"),
        ]);
        assert_eq!(out[0].data[0], b"abcdefgh");
        assert!(out[0].log.contains(&"Forward conflict @3".to_string()));
    }

    #[test]
    fn a_hole_never_filled_is_a_gap_at_the_end() {
        let out = run(&[
            seg(true, 0, "S", b""),
            seg(true, 1, "A", b"abc"),
            seg(true, 10, "A", b"xyz"),
        ]);
        assert_eq!(
            out[0].log,
            vec!["Forward data 3 @2", "Forward gap 6 @3", "Forward data 3 @3"]
        );
    }

    #[test]
    fn a_new_syn_on_a_closed_four_tuple_is_a_new_stream() {
        let out = run(&[
            seg(true, 1000, "S", b""),
            seg(true, 1001, "A", b"one"),
            seg(true, 1004, "RA", b""),
            seg(true, 5000, "S", b""), // different ISN: port reuse
            seg(true, 5001, "A", b"two"),
            seg(false, 0, "A", b"x"), // server side of the second conversation
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].stream, out[0].data[0].as_slice()), (0, &b"one"[..]));
        assert_eq!((out[1].stream, out[1].data[0].as_slice()), (1, &b"two"[..]));
        assert_eq!(out[1].data[1], b"x");
    }
}
