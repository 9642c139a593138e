//! What every conversation table shares: directions and connection info, the interface to the
//! next stage ([`StreamHandler`]), and bounded tables with eviction by recency and idle time
//! (`--max-flows`), used by TCP, UDP and the identity tables alike.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::model::At;

/// The hash maps of the conversation tables: foldhash, seeded per table (fast, and an attacker
/// who does not know the seed cannot aim collisions at a bucket).
pub(crate) type FlowMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Direction within a connection: `Forward` is from the endpoint that sent the first packet seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The direction of the conversation's first packet.
    Forward,
    /// The other direction.
    Backward,
}

impl Dir {
    /// 0 for forward, 1 for backward (an array index).
    pub fn index(self) -> usize {
        self as usize
    }
    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::Forward => Dir::Backward,
            Dir::Backward => Dir::Forward,
        }
    }
}

/// What a handler learns about its connection when it is created.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    /// The source of the first packet seen (the `Forward` direction's sender).
    pub first_src: SocketAddr,
    /// The destination of the conversation's first packet.
    pub first_dst: SocketAddr,
    /// The conversation's first packet.
    pub first_at: At,
    /// The part (file of a joined capture) `stream` is numbered in: Wireshark numbers streams
    /// per file.
    pub part: u32,
}

/// The consumer of reassembled bytes (the TLS stage).
pub trait StreamHandler {
    /// What the handler gives back when its conversation ends.
    type Output;
    /// In-order bytes of direction `dir`, delivered at frame `at`.
    fn on_data(&mut self, dir: Dir, at: At, data: &[u8]);
    /// `len` bytes of direction `dir` are missing from the capture before the next delivery.
    fn on_gap(&mut self, dir: Dir, at: At, len: u64);
    /// `len` bytes of this segment were not captured: the snap length cut the frame.
    fn on_snaplen(&mut self, dir: Dir, at: At, len: u64) {
        self.on_gap(dir, at, len);
    }
    /// The connection goes on in part `part` of a joined capture (the next file), where
    /// Wireshark numbers it `stream`.
    fn on_part(&mut self, _part: u32, _stream: u64) {}
    /// A SYN (with `ack` for SYN-ACK) was seen in `dir`.
    fn on_syn(&mut self, _dir: Dir, _ack: bool) {}
    /// The sender of `dir` closed its side (TCP FIN).
    fn on_fin(&mut self, dir: Dir, at: At);
    /// The sender of `dir` reset the connection (TCP RST).
    fn on_rst(&mut self, dir: Dir, at: At);
    /// A retransmission carried bytes different from those already delivered (first copy won).
    fn on_conflict(&mut self, _dir: Dir, _at: At) {}
    /// False once the handler needs no more payload of `dir`.
    fn wants_data(&self, dir: Dir) -> bool;
    /// Whether the bytes of `dir` it is given now still make its result, so that a
    /// retransmission carrying other bytes must be told ([`StreamHandler::on_conflict`]): the
    /// reassembler then remembers the last bytes delivered. Asked before and after each
    /// delivery: the delivery is remembered when either answer is yes. False when the handler
    /// only watches the rest of the stream (a decided TLS 1.2 handshake looking for a
    /// renegotiation), or when no result has begun in the bytes (a TLS handler's plaintext
    /// prelude).
    fn keeps_history(&self, dir: Dir) -> bool {
        self.wants_data(dir)
    }
    /// True once the handler needs nothing more of this connection.
    fn is_done(&self) -> bool;
    /// Called once, when the connection ends, the handler is done, the capture ends, or the
    /// flow table lets go of the connection.
    fn finish(self, end: End) -> Option<Self::Output>;
}

/// Why a handler was finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The connection closed, was reused, or the handler had all it needed.
    Closed,
    /// The capture ended with the connection still open.
    CaptureEnded,
    /// chainsniff stopped following the connection before it ended.
    Evicted(Eviction),
}

/// A connection the flow table let go of while it was still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Eviction {
    /// The packet that made room (flow table full) or whose time ended the wait (idle).
    pub at: At,
    /// Why the conversation was let go.
    pub reason: EvictReason,
}

/// Why chainsniff stopped following a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EvictReason {
    /// More conversations were open than `--max-flows`: the least recently active went.
    FlowTableFull,
    /// Nothing was seen on the connection for [`FlowLimits::idle_secs`] of capture time.
    Idle,
}

/// Bounds on the conversation tables (TCP and UDP alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Most conversations followed at once (`--max-flows`). When a new one would exceed it,
    /// the least recently active eighth is evicted: its handshake is reported as it stands.
    pub max_flows: usize,
    /// A conversation idle this long (capture time) is evicted the same way.
    pub idle_secs: i64,
    /// Most ended conversations remembered (24 bytes each) so that a late packet or a SYN-after-RST
    /// keeps Wireshark's stream index. When exceeded, the older 60 % are forgotten.
    pub max_settled: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 100_000,
            idle_secs: 600,
            max_settled: 450_000,
        }
    }
}

/// What the flow table had to let go of, for the report's warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowEvictions {
    /// Open conversations evicted because the table was full.
    pub full: u64,
    /// The first frame that found the table full.
    pub first_full_frame: Option<u64>,
    /// Open conversations evicted after being idle.
    pub idle: u64,
    /// Ended conversations forgotten: a later packet of one of them gets a new stream index.
    pub forgotten: u64,
}

impl FlowEvictions {
    /// Adds `other`'s counts (the first eviction for a full table stays the earlier one).
    pub fn add(&mut self, other: FlowEvictions) {
        self.full += other.full;
        self.idle += other.idle;
        self.forgotten += other.forgotten;
        self.first_full_frame = self.first_full_frame.or(other.first_full_frame);
    }

    /// What was counted since `before` (an earlier value of the same counts).
    pub fn since(self, before: FlowEvictions) -> FlowEvictions {
        FlowEvictions {
            full: self.full - before.full,
            idle: self.idle - before.idle,
            forgotten: self.forgotten - before.forgotten,
            first_full_frame: if before.first_full_frame.is_some() {
                None
            } else {
                self.first_full_frame
            },
        }
    }
}

/// Ended conversations, remembered compactly by a hash of their addresses so that stream
/// numbering stays Wireshark's after the per-connection state is freed.
pub(crate) struct Settled<T> {
    map: FlowMap<u64, T>,
    hasher: foldhash::fast::RandomState,
    max: usize,
}

impl<T> Settled<T> {
    pub(crate) fn new(max: usize) -> Self {
        Settled {
            map: FlowMap::default(),
            hasher: Default::default(),
            max: max.max(2),
        }
    }
    pub(crate) fn hash<K: std::hash::Hash>(&self, key: &K) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }
    pub(crate) fn get_mut(&mut self, h: u64) -> Option<&mut T> {
        self.map.get_mut(&h)
    }
    pub(crate) fn contains(&self, h: u64) -> bool {
        self.map.contains_key(&h)
    }
    pub(crate) fn remove(&mut self, h: u64) -> Option<T> {
        self.map.remove(&h)
    }
    /// Remembers `t`; when full, forgets the older 60 % (by `age`, smaller is older) and
    /// returns how many were forgotten.
    ///
    /// Why 60 % and not half: the forgotten entries leave tombstones in the hash table, and
    /// once they use up its room it is rebuilt in place only if it holds at most half its
    /// capacity; above that it doubles (17 MB to 35 MB at the default bound, with both alive
    /// for a moment). Keeping 40 % leaves that margin.
    pub(crate) fn insert(&mut self, h: u64, t: T, age: impl Fn(&T) -> u64) -> u64 {
        let mut forgotten = 0;
        if self.map.len() >= self.max {
            let before = self.map.len();
            let mut ages: Vec<u64> = self.map.values().map(&age).collect();
            let mid = ages.len() * 3 / 5;
            let cut = *ages.select_nth_unstable(mid).1;
            self.map.retain(|_, t| age(t) > cut);
            forgotten = (before - self.map.len()) as u64;
        }
        self.map.insert(h, t);
        forgotten
    }
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// What the eviction policy needs to know of a table entry.
pub(crate) trait Recency {
    /// The last packet seen.
    fn last(&self) -> At;
    /// The stream index (evictions happen in this order, so that they are deterministic).
    fn stream(&self) -> u64;
    /// True while the entry waits for packets of its other direction that may come later in
    /// the capture (a merged file): it is not idle.
    fn waiting(&self) -> bool {
        false
    }
}

/// The eviction policy of the TCP and UDP tables: room when full, and idle entries.
pub(crate) struct Evictor {
    limits: FlowLimits,
    clock: SweepClock,
    pub(crate) counts: FlowEvictions,
}

/// How often (capture time) idle connections are looked for.
const SWEEP_SECS: i64 = 30;

/// When a table looks for idle conversations: every `SWEEP_SECS` of capture time, from the
/// first packet it was given. The TCP table sweeps on its own; when its sub-tables are on
/// several threads, the thread that reads the capture keeps this clock over every TCP segment
/// and tells them all to sweep at the same packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepClock {
    /// Capture time (seconds) of the next idle sweep.
    next: Option<i64>,
}

impl SweepClock {
    /// True when the table is to sweep before the packet at `at`.
    pub fn due(&mut self, at: At) -> bool {
        let now = at.ts.secs();
        let due = *self.next.get_or_insert(now + SWEEP_SECS);
        if now < due {
            return false;
        }
        self.next = Some(now + SWEEP_SECS);
        true
    }
}

impl Evictor {
    pub(crate) fn new(limits: FlowLimits) -> Self {
        Evictor {
            limits,
            clock: SweepClock::default(),
            counts: FlowEvictions::default(),
        }
    }

    /// Before one more entry is added at `at`: if `table` is full, removes and returns its least
    /// recently active eighth (at least one), in stream order, with how they end.
    pub(crate) fn make_room<K: Clone + Eq + std::hash::Hash, V: Recency>(
        &mut self,
        table: &mut FlowMap<K, V>,
        at: At,
    ) -> (Vec<(K, V)>, End) {
        let cap = self.limits.max_flows;
        self.make_room_within(table, at, cap)
    }

    /// As [`Evictor::make_room`], for a table (a sub-table) that holds at most `cap`.
    pub(crate) fn make_room_within<K: Clone + Eq + std::hash::Hash, V: Recency>(
        &mut self,
        table: &mut FlowMap<K, V>,
        at: At,
        cap: usize,
    ) -> (Vec<(K, V)>, End) {
        let end = End::Evicted(Eviction {
            at,
            reason: EvictReason::FlowTableFull,
        });
        if table.len() < cap.max(1) {
            return (Vec::new(), end);
        }
        let mut lasts: Vec<u64> = table.values().map(|v| v.last().frame).collect();
        let n = (lasts.len() / 8).max(1);
        let cut = *lasts.select_nth_unstable(n - 1).1;
        let victims = take_sorted(table, |v| v.last().frame <= cut);
        self.counts.first_full_frame.get_or_insert(at.frame);
        self.counts.full += victims.len() as u64;
        (victims, end)
    }

    /// True when the table is to sweep before the packet at `at` (see [`SweepClock`]).
    pub(crate) fn sweep_due(&mut self, at: At) -> bool {
        self.clock.due(at)
    }

    /// What a sweep at `at` picks (idle for longer than the limit, not waiting), and how
    /// they end. The caller counts them in `counts.idle`.
    pub(crate) fn idle_victims<V: Recency>(&self, at: At) -> (impl Fn(&V) -> bool + use<V>, End) {
        let end = End::Evicted(Eviction {
            at,
            reason: EvictReason::Idle,
        });
        let horizon = at.ts.secs() - self.limits.idle_secs;
        (
            move |v: &V| v.last().ts.secs() < horizon && !v.waiting(),
            end,
        )
    }

    /// Removes and returns the entries idle for longer than the limit at `at` (looked for every
    /// [`SWEEP_SECS`] of capture time), in stream order, with how they end.
    pub(crate) fn idle<K: Clone + Eq + std::hash::Hash, V: Recency>(
        &mut self,
        table: &mut FlowMap<K, V>,
        at: At,
    ) -> (Vec<(K, V)>, End) {
        let (picked, end) = self.idle_victims::<V>(at);
        if !self.sweep_due(at) {
            return (Vec::new(), end);
        }
        let victims = take_sorted(table, picked);
        self.counts.idle += victims.len() as u64;
        (victims, end)
    }
}

/// Removes the entries of `table` that `pick` selects, in stream order.
fn take_sorted<K: Clone + Eq + std::hash::Hash, V: Recency>(
    table: &mut FlowMap<K, V>,
    pick: impl Fn(&V) -> bool,
) -> Vec<(K, V)> {
    let mut keys: Vec<(u64, K)> = table
        .iter()
        .filter(|(_, v)| pick(v))
        .map(|(k, v)| (v.stream(), k.clone()))
        .collect();
    keys.sort_by_key(|(s, _)| *s);
    keys.into_iter()
        .filter_map(|(_, k)| table.remove_entry(&k))
        .collect()
}

pub(crate) type Key = (IpAddr, u16, IpAddr, u16);

/// The conversation key (the lower endpoint first) and whether `src` is the lower endpoint.
pub(crate) fn key_of(src: SocketAddr, dst: SocketAddr) -> (Key, bool) {
    if (src.ip(), src.port()) <= (dst.ip(), dst.port()) {
        ((src.ip(), src.port(), dst.ip(), dst.port()), true)
    } else {
        ((dst.ip(), dst.port(), src.ip(), src.port()), false)
    }
}

#[cfg(test)]
mod tests {
    //! The shared table machinery on its own: keys from the addresses of the bundled captures,
    //! entries that only say when they were last seen.

    use super::*;
    use crate::model::Timestamp;

    /// A table entry: its stream index, last frame and time, and whether it waits.
    #[derive(Debug, PartialEq)]
    struct Entry {
        stream: u64,
        last: At,
        waiting: bool,
    }

    impl Recency for Entry {
        fn last(&self) -> At {
            self.last
        }
        fn stream(&self) -> u64 {
            self.stream
        }
        fn waiting(&self) -> bool {
            self.waiting
        }
    }

    fn at(frame: u64, secs: i64) -> At {
        At {
            frame,
            ts: Timestamp::from_parts(secs, 0),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A table of `n` entries keyed by client port 50000 + i, stream i, last seen at frame
    /// `last(i)` and second `last(i)`.
    fn table(n: u64, last: impl Fn(u64) -> u64) -> FlowMap<Key, Entry> {
        let mut t = FlowMap::default();
        for i in 0..n {
            let (k, _) = key_of(
                addr(&format!("127.0.1.11:{}", 50000 + i)),
                addr("127.0.0.10:443"),
            );
            let l = last(i);
            t.insert(
                k,
                Entry {
                    stream: i,
                    last: at(l, l as i64),
                    waiting: false,
                },
            );
        }
        t
    }

    fn streams(v: &[(Key, Entry)]) -> Vec<u64> {
        v.iter().map(|(_, e)| e.stream).collect()
    }

    #[test]
    fn directions() {
        assert_eq!((Dir::Forward.index(), Dir::Backward.index()), (0, 1));
        assert_eq!(Dir::Forward.reverse(), Dir::Backward);
        assert_eq!(Dir::Backward.reverse(), Dir::Forward);
    }

    #[test]
    fn the_key_is_the_same_both_ways() {
        // captures/lync-vip-phones.pcap frames 37 (phone to server) and 35 (server to phone).
        let phone = addr("127.0.1.11:33237");
        let server = addr("127.0.0.10:443");
        let (k1, phone_low) = key_of(phone, server);
        let (k2, server_low) = key_of(server, phone);
        assert_eq!(k1, k2);
        assert_eq!(k1, (server.ip(), 443, phone.ip(), 33237));
        assert!(!phone_low && server_low);
        // Same address both ends (captures/dtls-openssl.pcap): the lower port first.
        let (k, low) = key_of(addr("127.0.0.10:55823"), addr("127.0.0.10:4433"));
        assert_eq!((k.1, k.3, low), (4433, 55823, false));
        // IPv4 sorts before IPv6.
        let (k, low) = key_of(addr("[2001:db8::1]:443"), addr("127.0.0.1:443"));
        assert_eq!((k.0, low), ("127.0.0.1".parse::<IpAddr>().unwrap(), false));
    }

    #[test]
    fn a_full_table_gives_up_its_least_recent_eighth_in_stream_order() {
        let mut e = Evictor::new(FlowLimits {
            max_flows: 16,
            ..FlowLimits::default()
        });
        // 16 entries; streams 5 and 9 were the least recently active (frames 1 and 2).
        let mut t = table(16, |i| match i {
            5 => 2,
            9 => 1,
            i => 100 + i,
        });
        let (victims, end) = e.make_room(&mut t, at(200, 200));
        assert_eq!(streams(&victims), [5, 9]);
        assert_eq!(
            end,
            End::Evicted(Eviction {
                at: at(200, 200),
                reason: EvictReason::FlowTableFull
            })
        );
        assert_eq!(t.len(), 14);
        assert_eq!(
            e.counts,
            FlowEvictions {
                full: 2,
                first_full_frame: Some(200),
                idle: 0,
                forgotten: 0
            }
        );
        // Room left: nothing more, and the first full frame stays.
        let (victims, _) = e.make_room(&mut t, at(201, 201));
        assert!(victims.is_empty());
        for port in [60000, 60001] {
            let (k, _) = key_of(addr(&format!("127.0.1.12:{port}")), addr("127.0.0.10:443"));
            let e = Entry {
                stream: port as u64,
                last: at(201, 201),
                waiting: false,
            };
            t.insert(k, e);
        }
        assert_eq!(t.len(), 16);
        let (victims, _) = e.make_room(&mut t, at(202, 202));
        assert_eq!(victims.len(), 2);
        assert_eq!(e.counts.first_full_frame, Some(200));
    }

    #[test]
    fn a_small_full_table_gives_up_at_least_one() {
        let mut e = Evictor::new(FlowLimits {
            max_flows: 3,
            ..FlowLimits::default()
        });
        let mut t = table(3, |i| 10 - i);
        let (victims, _) = e.make_room(&mut t, at(11, 11));
        assert_eq!(streams(&victims), [2]);
        // max_flows 0 counts as 1.
        let mut e = Evictor::new(FlowLimits {
            max_flows: 0,
            ..FlowLimits::default()
        });
        let mut t = table(1, |_| 1);
        assert_eq!(e.make_room(&mut t, at(2, 2)).0.len(), 1);
        assert_eq!(e.make_room(&mut t, at(3, 3)).0.len(), 0);
    }

    #[test]
    fn idle_entries_go_at_sweeps_thirty_seconds_apart() {
        let mut e = Evictor::new(FlowLimits {
            idle_secs: 60,
            ..FlowLimits::default()
        });
        // Streams 0..4 last seen at seconds 0, 1, 2, 3.
        let mut t = table(4, |i| i);
        // The first call (second 10) only schedules the first sweep, at second 40.
        assert!(e.idle(&mut t, at(10, 10)).0.is_empty());
        // At second 39, before the sweep, nothing even though stream 0 is not idle yet anyway.
        assert!(e.idle(&mut t, at(11, 39)).0.is_empty());
        // At second 62: idle for more than 60 s means last seen before second 2.
        let (victims, end) = e.idle(&mut t, at(12, 62));
        assert_eq!(streams(&victims), [0, 1]);
        assert_eq!(
            end,
            End::Evicted(Eviction {
                at: at(12, 62),
                reason: EvictReason::Idle
            })
        );
        // The next sweep is 30 s later: at second 80 nothing, though stream 2 is idle.
        assert!(e.idle(&mut t, at(13, 80)).0.is_empty());
        let (victims, _) = e.idle(&mut t, at(14, 92));
        assert_eq!(streams(&victims), [2, 3]);
        assert_eq!(e.counts.idle, 4);
        assert!(t.is_empty());
    }

    #[test]
    fn an_entry_waiting_for_its_other_direction_is_not_idle() {
        let mut e = Evictor::new(FlowLimits {
            idle_secs: 60,
            ..FlowLimits::default()
        });
        let mut t = table(2, |_| 0);
        for v in t.values_mut() {
            v.waiting = v.stream == 1;
        }
        e.idle(&mut t, at(1, 0));
        let (victims, _) = e.idle(&mut t, at(2, 100));
        assert_eq!(streams(&victims), [0]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn settled_forgets_its_older_sixty_percent_when_full() {
        let mut s: Settled<u64> = Settled::new(10);
        let mut forgotten = 0;
        for stream in 0..10 {
            forgotten += s.insert(s.hash(&stream), stream, |v| *v);
        }
        assert_eq!((s.len(), forgotten), (10, 0));
        // The eleventh: streams 0 to 6 (those at or below the 60 % mark) go.
        let forgotten = s.insert(s.hash(&10u64), 10, |v| *v);
        assert_eq!((forgotten, s.len()), (7, 4));
        for stream in 0..7u64 {
            assert!(!s.contains(s.hash(&stream)), "{stream}");
        }
        for stream in 7..11u64 {
            assert_eq!(s.get_mut(s.hash(&stream)).copied(), Some(stream));
        }
        assert_eq!(s.remove(s.hash(&8u64)), Some(8));
        assert!(!s.contains(s.hash(&8u64)));
        // Room for two at least.
        assert_eq!(Settled::<u64>::new(0).max, 2);
    }

    #[test]
    fn settled_keys_are_the_conversation_keys() {
        // The hash of a conversation key is the same whichever direction made it.
        let s: Settled<u64> = Settled::new(4);
        let phone = addr("127.0.1.11:33237");
        let server = addr("127.0.0.10:443");
        assert_eq!(
            s.hash(&key_of(phone, server).0),
            s.hash(&key_of(server, phone).0)
        );
        assert_ne!(
            s.hash(&key_of(phone, server).0),
            s.hash(&key_of(addr("127.0.1.12:34909"), server).0)
        );
    }

    #[test]
    fn evictions_add_up() {
        let mut a = FlowEvictions {
            full: 1,
            first_full_frame: Some(7),
            idle: 2,
            forgotten: 0,
        };
        a.add(FlowEvictions {
            full: 3,
            first_full_frame: Some(3),
            idle: 4,
            forgotten: 5,
        });
        // The first full frame already known stays.
        assert_eq!(
            (a.full, a.first_full_frame, a.idle, a.forgotten),
            (4, Some(7), 6, 5)
        );
        let mut b = FlowEvictions::default();
        b.add(a);
        assert_eq!(b.first_full_frame, Some(7));
    }

    #[test]
    fn default_limits() {
        assert_eq!(
            FlowLimits::default(),
            FlowLimits {
                max_flows: 100_000,
                idle_secs: 600,
                max_settled: 450_000
            }
        );
    }
}
