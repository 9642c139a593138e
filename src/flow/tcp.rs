//! Stage 3: TCP segments to ordered stream bytes, each direction on its own.
//!
//! Every TCP conversation gets Wireshark's `tcp.stream` index: the next index when its first
//! packet is seen, and a new one when a SYN with a different initial sequence number reuses the
//! same addresses and ports. Bytes are delivered in sequence order to a [`StreamHandler`]; the
//! first copy of a byte wins, out-of-order segments wait (bounded) until the hole before them is
//! filled, and a hole that the capture never fills is reported as a gap rather than papered over.
//! Once a handler says it needs no more bytes of a direction, that direction's payload is dropped
//! on arrival, and once it is done with the whole connection it is finished and its memory freed.

use crate::model::At;
use std::net::SocketAddr;

use super::table::*;
use crate::wire::{TcpFlags, TcpSegment};

/// Counters for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpStats {
    /// TCP segments read.
    pub segments: u64,
    /// TCP connections seen.
    pub connections: u64,
    /// Holes never filled.
    pub gaps: u64,
    /// Bytes received again (retransmissions).
    pub retransmitted_bytes: u64,
    /// Retransmissions that carried other bytes than the first copy.
    pub conflicting_retransmissions: u64,
    /// Segments that arrived before the bytes in front of them.
    pub out_of_order_segments: u64,
}

impl TcpStats {
    /// Adds `other`'s counts (another table's, e.g. another lane's).
    pub fn add(&mut self, other: &TcpStats) {
        self.segments += other.segments;
        self.connections += other.connections;
        self.gaps += other.gaps;
        self.retransmitted_bytes += other.retransmitted_bytes;
        self.conflicting_retransmissions += other.conflicting_retransmissions;
        self.out_of_order_segments += other.out_of_order_segments;
    }
}

/// Most bytes held out of order per direction before the hole before them is declared a gap.
const MAX_OOO_BYTES: usize = 4 << 20;

/// Most payload bytes held back, all connections together, because they acknowledge bytes of
/// the other direction that have not been seen yet (see [`Held`]).
const MAX_HELD_BYTES: usize = 64 << 20;
/// Most segments held back, all connections together.
const MAX_HELD_SEGMENTS: usize = 1 << 20;
/// A direction's held segments are let go once this many TCP segments (of any connection)
/// were read since the first of them was held: the other direction had its chance.
const HOLD_WINDOW: u64 = 1 << 20;
/// ... or once the other direction sent this many segments ahead of a hole without filling it.
const HOLD_PEER_AHEAD: u32 = 32;

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
    /// An RST of this direction was processed.
    rst: bool,
    /// The last bytes delivered (while the handler wants them), to check retransmissions.
    recent: Vec<u8>,
    /// The first acknowledgement this direction sent: where the other direction's bytes start
    /// as far as this one knows, before any of them is seen.
    peer_floor: Option<u32>,
    /// Segments of this direction that acknowledge bytes of the other direction not delivered
    /// yet, in arrival order: they wait for those bytes (see [`Held`]).
    held: std::collections::VecDeque<Held>,
    held_bytes: usize,
    /// The reassembler's segment count when the first of `held` was held.
    held_since: u64,
    /// Segments the other direction sent ahead of a hole while this one held.
    peer_ahead: u32,
}

/// A segment that acknowledges bytes of the other direction that were not delivered yet: a
/// late flight (captures merged from two interfaces, one file per direction concatenated, a
/// reordering capture host). It waits for those bytes so that the handler sees the two
/// directions in the order the endpoints did, and is let go (the hole declared a gap) when
/// the other direction ends, sends [`HOLD_PEER_AHEAD`] segments past a hole, the bounds are
/// hit, [`HOLD_WINDOW`] segments were read, or the connection ends.
#[derive(Debug)]
struct Held {
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    at: At,
    /// The payload, empty if the handler did not want it when it was held.
    data: Vec<u8>,
    /// The payload's length in sequence space.
    len: usize,
    missing: u32,
}

/// A segment as the reassembly of one direction reads it: from the wire or held back.
struct SegIn<'a> {
    seq: u32,
    flags: TcpFlags,
    /// The captured payload; shorter than `len` only when it was dropped while held.
    payload: &'a [u8],
    len: usize,
    missing: u32,
}

impl<'a> SegIn<'a> {
    fn wire(seg: &TcpSegment<'a>) -> Self {
        SegIn {
            seq: seg.seq,
            flags: seg.flags,
            payload: seg.payload,
            len: seg.payload.len(),
            missing: seg.missing,
        }
    }
}

/// How many delivered bytes per direction are kept to compare retransmissions against.
const RECENT_BYTES: usize = 64 << 10;

impl DirState {
    /// Delivers in-order bytes and remembers them for retransmission checks.
    fn deliver<H: StreamHandler>(&mut self, handler: &mut H, dir: Dir, at: At, data: &[u8]) {
        // Asked before the bytes go and after: those that decide the handshake, and those
        // that begin it, are remembered too.
        let before = handler.keeps_history(dir);
        handler.on_data(dir, at, data);
        if !before && !handler.keeps_history(dir) {
            // Only watched, or no handshake begun: nothing to check retransmissions against
            // (and no 128 KiB window per direction of every such connection).
            self.recent = Vec::new();
            return;
        }
        // The window may grow to twice its size before the older half is dropped, so that
        // bytes are moved once per window rather than once per segment.
        if self.recent.len() + data.len() > 2 * RECENT_BYTES {
            let drop = (self.recent.len() + data.len())
                .saturating_sub(RECENT_BYTES)
                .min(self.recent.len());
            self.recent.drain(..drop);
        }
        let keep = data.len().min(2 * RECENT_BYTES);
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

/// A connection being followed.
struct Conn<H> {
    info: ConnInfo,
    dirs: [DirState; 2],
    /// Created with the first payload, so that a flood of SYNs costs little.
    handler: Option<Box<H>>,
    /// SYNs seen before the handler existed: bit 0/1 SYN forward/backward, 2/3 with ACK.
    syns: u8,
    closed: bool,
    /// The last packet seen (for eviction).
    last: At,
    /// Its stream index in the part (file) it was last seen in: (part, stream).
    num: (u32, u64),
    /// The sub-table it is in (see [`sub_of`]).
    sub: usize,
}

impl<H> Recency for Conn<H> {
    fn last(&self) -> At {
        self.last
    }
    fn stream(&self) -> u64 {
        self.num.1
    }
    fn waiting(&self) -> bool {
        self.dirs.iter().any(|d| !d.held.is_empty())
    }
}

/// An ended connection, as much as stream numbering needs (24 bytes).
#[derive(Debug, Clone, Copy)]
struct Tomb {
    stream: u64,
    /// Initial sequence numbers of the low and the high endpoint (see [`key_of`]).
    base: [u32; 2],
    flags: u8,
    /// The part (file) `stream` is numbered in.
    part: u32,
}

const HAS_BASE_LOW: u8 = 1;
const HAS_BASE_HIGH: u8 = 2;
/// The low endpoint sent the first packet seen.
const FIRST_LOW: u8 = 4;
/// The connection was reset.
const CLOSED: u8 = 8;

impl Tomb {
    fn base(&self, low: bool) -> Option<u32> {
        let bit = if low { HAS_BASE_LOW } else { HAS_BASE_HIGH };
        (self.flags & bit != 0).then_some(self.base[usize::from(!low)])
    }
    fn set_base(&mut self, low: bool, seq: u32) {
        let bit = if low { HAS_BASE_LOW } else { HAS_BASE_HIGH };
        self.flags |= bit;
        self.base[usize::from(!low)] = seq;
    }
}

/// How many sub-tables the conversation table has with `limits`: eight, unless the bounds are
/// too small to split (then one).
///
/// A conversation lives in the sub-table its addresses hash to ([`sub_of`]), and everything
/// that one connection can do to others happens within its sub-table: the bounds (followed
/// connections, remembered ones, held segments) are each sub-table's share, and the window of
/// held segments counts the sub-table's segments. Only the idle sweep (by capture time) and
/// stream numbering (by first packet) span the table. So the sub-tables can be followed on
/// several threads with the same outcome as on one (`analysis::sharded`).
pub fn subs_for(limits: FlowLimits) -> usize {
    if limits.max_flows >= 8 * 1024 && limits.max_settled >= 8 * 1024 {
        8
    } else {
        1
    }
}

/// The sub-table (of `subs`) of the conversation with key `key`: a fixed hash, the same on
/// every run and thread.
pub fn sub_of(key: &Key, subs: usize) -> usize {
    use std::hash::BuildHasher;
    if subs <= 1 {
        return 0;
    }
    (foldhash::fast::FixedState::with_seed(0x5eed).hash_one(key) % subs as u64) as usize
}

/// One sub-table of the conversation table (see [`subs_for`]).
struct Sub<H> {
    conns: FlowMap<Key, Conn<H>>,
    settled: Settled<Tomb>,
    /// Connections that began holding segments, by the sub-table's segment count when they did
    /// (stale entries are skipped).
    holds: std::collections::VecDeque<(u64, Key)>,
    held: HeldTotals,
    /// Segments of this sub-table's connections read: the clock of [`HOLD_WINDOW`].
    clock: u64,
}

/// The TCP conversation table: connections being followed (bounded by
/// [`FlowLimits::max_flows`]) and, compactly, connections that ended (for stream numbering).
pub struct Reassembler<H: StreamHandler, F: FnMut(ConnInfo) -> H> {
    subs: Vec<Sub<H>>,
    next_stream: u64,
    /// The part (file of a joined capture) being read: stream indices restart with each.
    part: u32,
    new_handler: F,
    evictor: Evictor,
    /// Each sub-table's share of the bounds.
    caps: SubCaps,
    /// The idle sweep is called by the owner ([`Reassembler::sweep`]), not on each segment.
    external_sweeps: bool,
    /// What the reassembly counted.
    pub stats: TcpStats,
    /// Outputs of finished handlers, in the order they finished.
    pub finished: Vec<H::Output>,
}

impl<H: StreamHandler, F: FnMut(ConnInfo) -> H> Reassembler<H, F> {
    /// An empty table; `new_handler` makes the handler of each new connection.
    pub fn new(new_handler: F) -> Self {
        Self::with_limits(new_handler, FlowLimits::default())
    }

    /// As [`Reassembler::new`], with other bounds.
    pub fn with_limits(new_handler: F, limits: FlowLimits) -> Self {
        let n = subs_for(limits);
        let caps = SubCaps {
            flows: (limits.max_flows / n).max(1),
            held_bytes: MAX_HELD_BYTES / n,
            held_segments: MAX_HELD_SEGMENTS / n,
            window: HOLD_WINDOW / n as u64,
        };
        let subs = (0..n)
            .map(|_| Sub {
                conns: FlowMap::default(),
                settled: Settled::new(limits.max_settled / n),
                holds: Default::default(),
                held: HeldTotals::default(),
                clock: 0,
            })
            .collect();
        Reassembler {
            subs,
            next_stream: 0,
            part: 0,
            new_handler,
            evictor: Evictor::new(limits),
            caps,
            external_sweeps: false,
            stats: TcpStats::default(),
            finished: Vec::new(),
        }
    }

    /// The number of sub-tables (see [`subs_for`]).
    pub fn subs(&self) -> usize {
        self.subs.len()
    }

    /// The idle sweep is left to the owner, who calls [`Reassembler::sweep`] where one table
    /// would have swept (see [`SweepClock`]).
    pub fn sweep_externally(&mut self) {
        self.external_sweeps = true;
    }

    /// Stream indices given so far in the current part.
    pub fn streams_numbered(&self) -> u64 {
        self.next_stream
    }

    fn sub(&self, key: &Key) -> usize {
        sub_of(key, self.subs.len())
    }

    /// The next file of a joined capture begins: Wireshark numbers its conversations from 0,
    /// those that go on from the previous file included (each when first seen in it).
    pub fn new_part(&mut self) {
        self.part += 1;
        self.next_stream = 0;
    }

    /// A stream index in the current part.
    fn next_index(&mut self) -> u64 {
        self.next_stream += 1;
        self.next_stream - 1
    }

    /// True when `seg` is of the direction never seen of a connection followed in the other
    /// direction only, and acknowledges bytes that direction sent: the other file of a network
    /// TAP (one file per direction).
    pub fn answers(&self, seg: &TcpSegment<'_>) -> bool {
        let src = SocketAddr::new(seg.src, seg.sport);
        let dst = SocketAddr::new(seg.dst, seg.dport);
        let key = key_of(src, dst).0;
        let Some(conn) = self.subs[self.sub(&key)].conns.get(&key) else {
            return false;
        };
        let dir = if conn.info.first_src == src {
            Dir::Forward
        } else {
            Dir::Backward
        };
        let (this, other) = (&conn.dirs[dir.index()], &conn.dirs[dir.reverse().index()]);
        this.base_seq.is_none()
            && seg.flags.ack
            && other
                .base_seq
                .is_some_and(|b| (0..1 << 24).contains(&seq_diff(seg.ack, b)))
    }

    /// True when `seg` goes on with a connection being followed: not a SYN, and its sequence
    /// number where that direction's bytes have come to (within 64 KiB behind and 16 MiB
    /// ahead), or with one that ended (its last packets). Used to tell whether a capture file
    /// continues the one before.
    pub fn continues(&self, seg: &TcpSegment<'_>) -> bool {
        let src = SocketAddr::new(seg.src, seg.sport);
        let dst = SocketAddr::new(seg.dst, seg.dport);
        let key = key_of(src, dst).0;
        let sub = &self.subs[self.sub(&key)];
        let Some(conn) = sub.conns.get(&key) else {
            return !seg.flags.syn && sub.settled.contains(sub.settled.hash(&key));
        };
        let dir = if conn.info.first_src == src {
            Dir::Forward
        } else {
            Dir::Backward
        };
        !seg.flags.syn
            && conn.dirs[dir.index()]
                .next_seq
                .is_some_and(|n| (-(1 << 16)..1 << 24).contains(&seq_diff(seg.seq, n)))
    }

    /// Takes one segment of any connection.
    pub fn process(&mut self, at: At, seg: &TcpSegment<'_>) {
        self.stats.segments += 1;
        if !self.external_sweeps && self.evictor.sweep_due(at) {
            self.sweep(at);
        }
        let src = SocketAddr::new(seg.src, seg.sport);
        let dst = SocketAddr::new(seg.dst, seg.dport);
        let (key, src_low) = key_of(src, dst);
        let s = self.sub(&key);
        self.subs[s].clock += 1;
        let new_syn = seg.flags.syn && !seg.flags.ack;

        // Whether the connection is followed (each lookup hashes the key: this one decides).
        let mut followed = false;
        // A SYN with a new initial sequence number on a known 4-tuple is a new conversation
        // (port reuse), as in Wireshark.
        if let Some(conn) = self.subs[s].conns.get(&key) {
            let dir = if conn.info.first_src == src {
                Dir::Forward
            } else {
                Dir::Backward
            };
            let reused = new_syn
                && conn.dirs[dir.index()]
                    .base_seq
                    .is_some_and(|base| base != seg.seq);
            if reused && let Some(old) = self.subs[s].conns.remove(&key) {
                self.finish_conn(old, End::Closed);
            } else {
                followed = true;
            }
        } else {
            let settled = &mut self.subs[s].settled;
            let h = settled.hash(&key);
            let (part, next) = (self.part, self.next_stream);
            if let Some(tomb) = settled.get_mut(h) {
                // First seen in this file: Wireshark gives it this file's next index (unless a
                // new SYN makes it a new conversation, numbered below).
                let renumber = tomb.part != part
                    && !(new_syn && tomb.base(src_low).is_some_and(|b| b != seg.seq));
                if renumber {
                    tomb.part = part;
                    tomb.stream = next;
                    self.next_stream += 1;
                }
                match tomb.base(src_low) {
                    // Port reuse: forget the old conversation, number a new one below.
                    Some(base) if new_syn && base != seg.seq => {
                        settled.remove(h);
                    }
                    // A SYN (same initial sequence number) after a reset: the same conversation
                    // for Wireshark, a new connection attempt for us.
                    _ if new_syn && tomb.flags & CLOSED != 0 => {
                        let tomb = settled.remove(h).expect("present");
                        let first_low = tomb.flags & FIRST_LOW != 0;
                        let (low, high) =
                            (SocketAddr::new(key.0, key.1), SocketAddr::new(key.2, key.3));
                        let (first_src, first_dst) =
                            if first_low { (low, high) } else { (high, low) };
                        let mut dirs: [DirState; 2] = Default::default();
                        dirs[0].base_seq = tomb.base(first_low);
                        dirs[1].base_seq = tomb.base(!first_low);
                        self.open(key, tomb.stream, first_src, first_dst, dirs, at);
                        followed = true;
                    }
                    // Already ended: only the stream number is kept.
                    None => {
                        tomb.set_base(src_low, base_of(seg));
                        return;
                    }
                    Some(_) => return,
                }
            }
        }

        if !followed {
            let stream = self.next_index();
            self.stats.connections += 1;
            self.open(key, stream, src, dst, Default::default(), at);
        }
        let (part, next) = (self.part, self.next_stream);
        let sub = &mut self.subs[s];
        let conn = sub.conns.get_mut(&key).expect("just opened");
        conn.last = at;
        if conn.num.0 != part {
            // Goes on in a new file of a joined capture.
            conn.num = (part, next);
            self.next_stream += 1;
            match conn.handler.as_deref_mut() {
                Some(h) => h.on_part(part, next),
                None => {
                    conn.info.stream = next;
                    conn.info.part = part;
                }
            }
        }
        let dir = if conn.info.first_src == src {
            Dir::Forward
        } else {
            Dir::Backward
        };
        if conn.handler.is_none() && (!seg.payload.is_empty() || seg.missing > 0) {
            let mut h = Box::new((self.new_handler)(conn.info));
            for (bit, dir, ack) in [
                (1, Dir::Forward, false),
                (2, Dir::Backward, false),
                (4, Dir::Forward, true),
                (8, Dir::Backward, true),
            ] {
                if conn.syns & bit != 0 {
                    h.on_syn(dir, ack);
                }
            }
            conn.handler = Some(h);
        }
        let clock = sub.clock;
        if Self::must_hold(&mut conn.dirs, dir, seg) {
            let wants = conn.handler.as_ref().is_some_and(|h| h.wants_data(dir));
            let this = &mut conn.dirs[dir.index()];
            if this.held.is_empty() {
                this.held_since = clock;
                this.peer_ahead = 0;
                sub.holds.push_back((clock, key));
            }
            let data = if wants {
                seg.payload.to_vec()
            } else {
                Vec::new()
            };
            this.held_bytes += data.len();
            sub.held.bytes += data.len();
            sub.held.segments += 1;
            this.held.push_back(Held {
                seq: seg.seq,
                ack: seg.ack,
                flags: seg.flags,
                at,
                data,
                len: seg.payload.len(),
                missing: seg.missing,
            });
            if this.held_bytes > MAX_OOO_BYTES {
                Self::release(&mut self.stats, &mut sub.held, conn, dir, true);
            }
        } else {
            Self::apply(&mut self.stats, conn, dir, at, &SegIn::wire(seg));
            let ahead = conn.dirs[dir.index()]
                .next_seq
                .is_some_and(|n| seq_diff(seg.seq, n) > 0);
            let other = &mut conn.dirs[dir.reverse().index()];
            let force = !other.held.is_empty() && {
                if ahead {
                    other.peer_ahead += 1;
                }
                // The other direction ended, or keeps sending past a hole: its chance is over.
                seg.flags.fin || seg.flags.rst || other.peer_ahead > HOLD_PEER_AHEAD
            };
            Self::release(&mut self.stats, &mut sub.held, conn, dir.reverse(), force);
        }
        if Self::ends(conn) {
            let conn = sub.conns.remove(&key).expect("present");
            self.settle(key, conn, End::Closed);
        }
        self.expire_holds(s);
    }

    /// Ends the connections idle for longer than the limit at `at`, in stream order. Called
    /// on each segment when the [`SweepClock`] says so, or by the owner after
    /// [`Reassembler::sweep_externally`].
    pub fn sweep(&mut self, at: At) {
        let (picked, end) = self.evictor.idle_victims(at);
        let mut victims: Vec<(u64, usize, Key)> = Vec::new();
        for (s, sub) in self.subs.iter().enumerate() {
            victims.extend(
                sub.conns
                    .iter()
                    .filter(|(_, c)| picked(*c))
                    .map(|(k, c)| (c.num.1, s, *k)),
            );
        }
        victims.sort_unstable_by_key(|v| v.0);
        self.evictor.counts.idle += victims.len() as u64;
        for (_, s, k) in victims {
            if let Some(c) = self.subs[s].conns.remove(&k) {
                self.settle(k, c, end);
            }
        }
    }

    /// Ends the connection if it closed (RST, both FINs) or its handler is done, and nothing
    /// waits for the other direction.
    fn end_if_done(&mut self, key: Key) {
        let s = self.sub(&key);
        let Some(conn) = self.subs[s].conns.get_mut(&key) else {
            return;
        };
        if Self::ends(conn) {
            let conn = self.subs[s].conns.remove(&key).expect("present");
            self.settle(key, conn, End::Closed);
        }
    }

    /// Whether the connection is over: it closed (RST, both FINs) or its handler is done,
    /// and nothing waits for the other direction. Notes a reset as its close.
    fn ends(conn: &mut Conn<H>) -> bool {
        if conn.dirs.iter().any(|d| d.rst) {
            conn.closed = true;
        }
        let both_fin = conn.dirs[0].fin && conn.dirs[1].fin;
        let done = conn.handler.as_ref().is_some_and(|h| h.is_done());
        let waiting = conn.dirs.iter().any(|d| !d.held.is_empty());
        (conn.closed || both_fin || done) && !waiting
    }

    /// Lets go of the segments held longest while the bounds are exceeded or their window
    /// has passed.
    fn expire_holds(&mut self, s: usize) {
        let caps = self.caps;
        loop {
            let sub = &mut self.subs[s];
            let Some(&(since, key)) = sub.holds.front() else {
                return;
            };
            let over = sub.held.bytes > caps.held_bytes || sub.held.segments > caps.held_segments;
            if !over && since + caps.window > sub.clock {
                return;
            }
            sub.holds.pop_front();
            let Some(conn) = sub.conns.get_mut(&key) else {
                continue;
            };
            for dir in [Dir::Forward, Dir::Backward] {
                let d = &conn.dirs[dir.index()];
                if !d.held.is_empty() && d.held_since <= since {
                    Self::release(&mut self.stats, &mut sub.held, conn, dir, true);
                }
            }
            self.end_if_done(key);
        }
    }

    /// True when `seg` must wait: it carries something (payload, FIN, RST) and acknowledges
    /// bytes of the other direction that were not delivered yet, or earlier segments of its
    /// direction wait.
    fn must_hold(dirs: &mut [DirState; 2], dir: Dir, seg: &TcpSegment<'_>) -> bool {
        let (this, other) = split_dirs(dirs, dir);
        if seg.flags.ack && this.peer_floor.is_none() {
            this.peer_floor = Some(seg.ack);
        }
        let carries = !seg.payload.is_empty() || seg.missing > 0 || seg.flags.fin || seg.flags.rst;
        if !carries {
            return false;
        }
        if !this.held.is_empty() {
            return true;
        }
        if !seg.flags.ack || seg.flags.syn {
            return false;
        }
        match other.next_seq {
            Some(next) => seq_diff(seg.ack, next) > 0,
            // Nothing of the other direction seen yet: past the first acknowledgement, the
            // bytes it acknowledges are still to come (or were never captured).
            None => this.peer_floor.is_some_and(|f| seq_diff(seg.ack, f) > 0),
        }
    }

    /// Processes held segments of `dir` whose acknowledged bytes were delivered, or (`force`)
    /// all of them, declaring the holes they acknowledge past gaps; then whatever that lets go
    /// in the other direction.
    fn release(
        stats: &mut TcpStats,
        totals: &mut HeldTotals,
        conn: &mut Conn<H>,
        dir: Dir,
        force: bool,
    ) {
        let mut dir = dir;
        let mut force = force;
        // Alternates between the directions until neither can go on.
        let mut idle_rounds = 0;
        while idle_rounds < 2 {
            let mut moved = false;
            loop {
                let (this, other) = split_dirs(&mut conn.dirs, dir);
                let Some(front) = this.held.front() else {
                    break;
                };
                let owed = front.flags.ack
                    && match other.next_seq {
                        Some(next) => seq_diff(front.ack, next) > 0,
                        None => this.peer_floor.is_some_and(|f| seq_diff(front.ack, f) > 0),
                    };
                if owed && !force {
                    break;
                }
                if owed && !other.pending.is_empty() {
                    // The hole the peer acknowledged past is not in the capture.
                    let (at, ack) = (front.at, front.ack);
                    match conn.handler.as_deref_mut() {
                        Some(h) => Self::skip_gap(stats, other, h, dir.reverse(), at, Some(ack)),
                        None => Self::skip_gap(
                            stats,
                            other,
                            &mut NoPayloadYet,
                            dir.reverse(),
                            at,
                            Some(ack),
                        ),
                    }
                }
                let this = &mut conn.dirs[dir.index()];
                let h = this.held.pop_front().expect("non-empty");
                this.held_bytes -= h.data.len();
                totals.bytes -= h.data.len();
                totals.segments -= 1;
                let seg = SegIn {
                    seq: h.seq,
                    flags: h.flags,
                    payload: &h.data,
                    len: h.len,
                    missing: h.missing,
                };
                Self::apply(stats, conn, dir, h.at, &seg);
                moved = true;
            }
            idle_rounds = if moved { 0 } else { idle_rounds + 1 };
            // What this direction delivered may let the other go on, never forced.
            dir = dir.reverse();
            force = false;
        }
    }

    /// Reads one segment of `dir` into the connection's reassembly.
    fn apply(stats: &mut TcpStats, conn: &mut Conn<H>, dir: Dir, at: At, seg: &SegIn<'_>) {
        match conn.handler.as_deref_mut() {
            Some(handler) => Self::segment(stats, &mut conn.dirs, handler, dir, at, seg),
            None => {
                if seg.flags.syn {
                    conn.syns |= match (dir, seg.flags.ack) {
                        (Dir::Forward, false) => 1,
                        (Dir::Backward, false) => 2,
                        (Dir::Forward, true) => 4,
                        (Dir::Backward, true) => 8,
                    };
                }
                Self::segment(stats, &mut conn.dirs, &mut NoPayloadYet, dir, at, seg)
            }
        }
    }

    /// Starts following a connection, evicting the least recently active ones if the table
    /// is full.
    fn open(
        &mut self,
        key: Key,
        stream: u64,
        first_src: SocketAddr,
        first_dst: SocketAddr,
        dirs: [DirState; 2],
        at: At,
    ) {
        let s = self.sub(&key);
        let (victims, end) =
            self.evictor
                .make_room_within(&mut self.subs[s].conns, at, self.caps.flows);
        for (k, c) in victims {
            self.settle(k, c, end);
        }
        let info = ConnInfo {
            stream,
            first_src,
            first_dst,
            first_at: at,
            part: self.part,
        };
        self.subs[s].conns.insert(
            key,
            Conn {
                info,
                dirs,
                handler: None,
                syns: 0,
                closed: false,
                last: at,
                num: (self.part, stream),
                sub: s,
            },
        );
    }

    /// Finishes a connection and remembers it compactly.
    fn settle(&mut self, key: Key, conn: Conn<H>, end: End) {
        let first_low = conn.info.first_src == SocketAddr::new(key.0, key.1);
        let mut tomb = Tomb {
            stream: conn.num.1,
            base: [0; 2],
            flags: if first_low { FIRST_LOW } else { 0 },
            part: conn.num.0,
        };
        if conn.closed {
            tomb.flags |= CLOSED;
        }
        if let Some(b) = conn.dirs[0].base_seq {
            tomb.set_base(first_low, b);
        }
        if let Some(b) = conn.dirs[1].base_seq {
            tomb.set_base(!first_low, b);
        }
        let s = conn.sub;
        self.finish_conn(conn, end);
        let settled = &mut self.subs[s].settled;
        let h = settled.hash(&key);
        self.evictor.counts.forgotten += settled.insert(h, tomb, |t| t.stream);
    }

    fn segment<G: StreamHandler>(
        stats: &mut TcpStats,
        dirs: &mut [DirState; 2],
        handler: &mut G,
        dir: Dir,
        at: At,
        seg: &SegIn<'_>,
    ) {
        let (this, _) = split_dirs(dirs, dir);
        if this.base_seq.is_none() {
            this.base_seq = Some(if seg.flags.syn {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            });
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
        // A hole in the other direction stays open while the connection lives (the bytes may
        // come later in the file): acknowledgements past it no longer declare it lost.

        if seg.flags.rst {
            this.rst = true;
            handler.on_rst(dir, at);
            return;
        }

        // A payload dropped while held (the handler did not want it) is only counted.
        let wants = handler.wants_data(dir) && seg.payload.len() == seg.len;
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
            if wants && (seg.len > 0 || seg.flags.fin) {
                this.pending_bytes += seg.len;
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
        let len = seg.len;
        if skip > 0 && len > 0 {
            stats.retransmitted_bytes += skip.min(len) as u64;
            // Checked even once the handler wants no more: the bytes it read stay remembered
            // until bytes it did not read follow them.
            if this.conflicts(skip, payload) {
                stats.conflicting_retransmissions += 1;
                handler.on_conflict(dir, at);
            }
        }
        if skip < len {
            if wants {
                this.deliver(handler, dir, at, &payload[skip..]);
            } else {
                this.recent = Vec::new();
            }
            this.next_seq = Some(next.wrapping_add((len - skip) as u32));
        }
        if seg.missing > 0 && skip <= len + seg.missing as usize {
            let lost = (len + seg.missing as usize - skip.max(len)) as u64;
            if lost > 0 {
                stats.gaps += 1;
                if wants {
                    handler.on_snaplen(dir, at, lost);
                }
                let end = seq.wrapping_add(len as u32 + seg.missing);
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
    fn drain<G: StreamHandler>(
        stats: &mut TcpStats,
        this: &mut DirState,
        handler: &mut G,
        dir: Dir,
        at: At,
    ) {
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
    fn skip_gap<G: StreamHandler>(
        stats: &mut TcpStats,
        this: &mut DirState,
        handler: &mut G,
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

    fn finish_conn(&mut self, mut conn: Conn<H>, end: End) {
        // The connection ends: what waits for the other direction goes now.
        for dir in [Dir::Forward, Dir::Backward] {
            Self::release(
                &mut self.stats,
                &mut self.subs[conn.sub].held,
                &mut conn,
                dir,
                true,
            );
        }
        let Some(mut handler) = conn.handler.take() else {
            return;
        };
        for (i, d) in conn.dirs.iter_mut().enumerate() {
            let dir = if i == 0 { Dir::Forward } else { Dir::Backward };
            if !d.pending.is_empty() {
                let at = d.pending.iter().map(|p| p.at).max_by_key(|a| a.frame);
                if let Some(at) = at {
                    Self::skip_gap(&mut self.stats, d, handler.as_mut(), dir, at, None);
                }
            }
        }
        if let Some(out) = handler.finish(end) {
            self.finished.push(out);
        }
    }

    /// The counters so far, and what was evicted or forgotten so far.
    pub fn counts(&self) -> (TcpStats, FlowEvictions) {
        (self.stats, self.evictor.counts)
    }

    /// Ends every live connection (end of capture) and returns all outputs.
    pub fn finish(mut self) -> (Vec<H::Output>, TcpStats, FlowEvictions) {
        // In stream order, taken out of the table one at a time (not all moved into a list
        // at once: a connection's state is large).
        let mut live: Vec<((u32, u64), usize, Key)> = Vec::new();
        for (s, sub) in self.subs.iter().enumerate() {
            live.extend(sub.conns.iter().map(|(k, c)| (c.num, s, *k)));
        }
        live.sort_unstable_by_key(|l| l.0);
        for (_, s, key) in live {
            if let Some(conn) = self.subs[s].conns.remove(&key) {
                self.finish_conn(conn, End::CaptureEnded);
            }
        }
        (self.finished, self.stats, self.evictor.counts)
    }

    /// Connections being followed (for memory accounting and tests).
    pub fn live_handlers(&self) -> usize {
        self.subs.iter().map(|s| s.conns.len()).sum()
    }

    /// Ended connections remembered for stream numbering.
    pub fn settled(&self) -> usize {
        self.subs.iter().map(|s| s.settled.len()).sum()
    }
}

/// A sub-table's share of the bounds (see [`subs_for`]).
#[derive(Debug, Clone, Copy)]
struct SubCaps {
    flows: usize,
    held_bytes: usize,
    held_segments: usize,
    window: u64,
}

/// Payload bytes and segments held back, all connections of a sub-table together.
#[derive(Debug, Default)]
struct HeldTotals {
    bytes: usize,
    segments: usize,
}

/// Stands in for the handler of a connection that has carried no payload yet: sequence
/// numbers are tracked, nothing is delivered.
struct NoPayloadYet;

impl StreamHandler for NoPayloadYet {
    type Output = ();
    fn on_data(&mut self, _: Dir, _: At, _: &[u8]) {}
    fn on_gap(&mut self, _: Dir, _: At, _: u64) {}
    fn on_fin(&mut self, _: Dir, _: At) {}
    fn on_rst(&mut self, _: Dir, _: At) {}
    fn wants_data(&self, _: Dir) -> bool {
        false
    }
    fn is_done(&self) -> bool {
        false
    }
    fn finish(self, _: End) -> Option<()> {
        None
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
    use crate::model::Timestamp;
    use crate::wire::TcpFlags;

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
        fn finish(self, _end: End) -> Option<Rec> {
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

    fn acking<'a>(mut s: TcpSegment<'a>, ack: u32) -> TcpSegment<'a> {
        s.ack = ack;
        s
    }

    #[test]
    fn a_direction_whose_frames_all_come_after_the_others_is_read_in_causal_order() {
        // One file per direction, concatenated: the client's packets, then the server's.
        let out = run(&[
            seg(true, 100, "S", b""),
            acking(seg(true, 101, "A", b""), 501),
            acking(seg(true, 101, "A", b"hello"), 501),
            acking(seg(true, 106, "A", b"thanks"), 511), // acknowledges the server's reply
            acking(seg(true, 112, "FA", b""), 512),
            acking(seg(false, 500, "SA", b""), 101),
            acking(seg(false, 501, "A", b"0123456789"), 106),
            acking(seg(false, 511, "FA", b""), 112),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data[0], b"hellothanks");
        assert_eq!(out[0].data[1], b"0123456789");
        assert_eq!(
            out[0].log,
            vec![
                "Forward data 5 @3",
                "Backward data 10 @7",
                "Forward data 6 @4",
                "Backward fin @8",
                "Forward fin @5",
            ]
        );
    }

    #[test]
    fn a_late_flight_after_its_acknowledgement_is_not_a_gap() {
        let out = run(&[
            seg(true, 100, "S", b""),
            acking(seg(false, 500, "SA", b""), 101),
            acking(seg(true, 101, "A", b"hi"), 501),
            acking(seg(false, 501, "A", b"abc"), 103),
            // The client acknowledges "def" before the capture shows it.
            acking(seg(true, 103, "A", b"ok"), 507),
            acking(seg(false, 504, "A", b"def"), 103),
        ]);
        assert_eq!(out[0].data[1], b"abcdef");
        assert!(
            !out[0].log.iter().any(|l| l.contains("gap")),
            "{:?}",
            out[0].log
        );
        assert_eq!(out[0].log[2..], ["Backward data 3 @6", "Forward data 2 @5"]);
    }

    #[test]
    fn a_hole_the_peer_acknowledged_is_a_gap_when_the_connection_ends() {
        let out = run(&[
            seg(true, 100, "S", b""),
            acking(seg(false, 500, "SA", b""), 101),
            acking(seg(true, 101, "A", b"hi"), 501),
            acking(seg(false, 504, "A", b"def"), 103), // "abc" never captured
            acking(seg(true, 103, "A", b"ok"), 507),
        ]);
        assert_eq!(
            out[0].log,
            vec![
                "Forward data 2 @3",
                "Backward gap 3 @5",
                "Backward data 3 @5",
                "Forward data 2 @5",
            ]
        );
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
