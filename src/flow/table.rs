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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
        self.first_full_frame = self.first_full_frame.or(other.first_full_frame);
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
    /// Capture time (seconds) of the next idle sweep.
    next_sweep: Option<i64>,
    pub(crate) counts: FlowEvictions,
}

/// How often (capture time) idle connections are looked for.
const SWEEP_SECS: i64 = 30;

impl Evictor {
    pub(crate) fn new(limits: FlowLimits) -> Self {
        Evictor {
            limits,
            next_sweep: None,
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
        let end = End::Evicted(Eviction {
            at,
            reason: EvictReason::FlowTableFull,
        });
        if table.len() < self.limits.max_flows.max(1) {
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

    /// Removes and returns the entries idle for longer than the limit at `at` (looked for every
    /// [`SWEEP_SECS`] of capture time), in stream order, with how they end.
    pub(crate) fn idle<K: Clone + Eq + std::hash::Hash, V: Recency>(
        &mut self,
        table: &mut FlowMap<K, V>,
        at: At,
    ) -> (Vec<(K, V)>, End) {
        let end = End::Evicted(Eviction {
            at,
            reason: EvictReason::Idle,
        });
        let now = at.ts.secs();
        let due = *self.next_sweep.get_or_insert(now + SWEEP_SECS);
        if now < due {
            return (Vec::new(), end);
        }
        self.next_sweep = Some(now + SWEEP_SECS);
        let horizon = now - self.limits.idle_secs;
        let victims = take_sorted(table, |v| v.last().ts.secs() < horizon && !v.waiting());
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
