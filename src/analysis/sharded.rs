//! The TCP stage on several threads, for one capture file.
//!
//! The thread that reads the capture decodes each frame as before; a TCP segment goes to the
//! *lane* (a worker thread with a [`Reassembler`] and its TLS stage) that owns the segment's
//! sub-table of the conversation table ([`sub_of`]). A connection's segments all go to one lane,
//! in capture order. What one connection can do to another happens within its sub-table (see
//! [`subs_for`]), so each lane does exactly what one table would have done to those connections.
//! What spans the table is kept on the reading thread and done the same way:
//!
//! - **the idle sweep**: the reader keeps the [`SweepClock`] over every TCP segment and tells
//!   every lane to sweep at the same segment;
//! - **secrets** of the capture (Decryption Secrets Blocks) go to every lane where they were in
//!   the file;
//! - **stream numbers** (`tcp.stream`, by first packet): each lane numbers its connections in
//!   its own order, and says at which frame it gave each number; the reader, taking the lanes'
//!   output back in frame order, gives the capture's numbers in that order and rewrites the
//!   handshakes' numbers;
//! - **the order handshakes are decided in**: the reader hands its segments out in *epochs* (a
//!   batch to every lane at once); a lane's output for an epoch lists what it decided, each with
//!   its frame; once every lane has answered an epoch, its handshakes (and the UDP and EAPOL ones
//!   decided on the reading thread meanwhile) go on in frame order, as one table would have
//!   given them. Within a frame: those of a sweep in stream order, then the segment's.
//!
//! So the report is byte-identical to `--threads 1` (a test compares them on every bundled
//! capture).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::mpsc;

use super::{Limits, TcpStage, tcp_stage};
use crate::capture::Mapping;
use crate::flow::{FlowEvictions, SweepClock, TcpStats, key_of, sub_of, subs_for};
use crate::model::At;
use crate::spill::Chunked;
use crate::tls::handshake::Handshake;
use crate::tls::keylog::KeyLog;
use crate::wire::{TcpFlags, TcpSegment};

/// Segments in a lane's batch before an epoch ends.
const BATCH_SEGMENTS: usize = 512;
/// Payload bytes in a lane's batch before an epoch ends.
const BATCH_BYTES: usize = 512 << 10;
/// Frames read before an epoch ends anyway (so that UDP and EAPOL handshakes go on).
const EPOCH_FRAMES: u64 = 8192;
/// Batches queued per lane: the reader waits when a lane is this far behind.
const QUEUED: usize = 4;

/// Where a segment's payload is: in the batch's bytes, or (a file read from its mapping) in
/// the mapping, not copied.
#[derive(Debug, Clone, Copy)]
enum Payload {
    Batch(u32),
    Mapped(u64),
}

/// A TCP segment as a lane receives it: its header fields, where its payload is.
#[derive(Debug, Clone, Copy)]
struct SegMsg {
    at: At,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    missing: u32,
    payload: Payload,
    len: u32,
}

#[derive(Debug)]
enum Msg {
    Segment(SegMsg),
    /// Sweep idle connections before the segment at this frame.
    Sweep(At),
    /// A Decryption Secrets Block's text.
    Secrets(Box<str>),
    /// The file's memory mapping, where the payloads are.
    Map(Mapping),
}

/// One lane's share of an epoch.
#[derive(Debug, Default)]
struct Batch {
    msgs: Vec<Msg>,
    bytes: Vec<u8>,
    /// Payload bytes of its segments, copied or in the mapping.
    payload: usize,
}

/// Where in a frame's output a handshake came: decided (a TLS 1.2 connection still watched) or
/// finished, and by a sweep or by the frame's own segment. One table gives the decided ones
/// first, then the finished ones; in each, a sweep's (in stream order) before the segment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    DecidedBySweep,
    Decided,
    FinishedBySweep,
    Finished,
}

#[derive(Debug)]
enum Event {
    /// The lane gave its next stream number(s) at this frame.
    NewStreams { frame: u64, n: u64 },
    Handshake {
        frame: u64,
        place: Place,
        hs: Box<Handshake>,
    },
}

impl Event {
    fn frame(&self) -> u64 {
        match self {
            Event::NewStreams { frame, .. } | Event::Handshake { frame, .. } => *frame,
        }
    }
}

/// What a lane sends back.
enum Reply {
    /// Its output for an epoch, the batch (emptied, to be filled again) and its counters.
    Epoch {
        events: Vec<Event>,
        batch: Batch,
        stats: TcpStats,
        evictions: FlowEvictions,
    },
    /// The lane's thread panicked: the panic goes on on the reading thread.
    Failed(Box<dyn std::any::Any + Send>),
    /// The end of the capture: the handshakes of the connections still open.
    End {
        decided: Vec<Handshake>,
        finished: Vec<Handshake>,
        stats: TcpStats,
        evictions: FlowEvictions,
    },
}

struct Lane {
    tx: Option<mpsc::SyncSender<Batch>>,
    batch: Batch,
    spare: Vec<Batch>,
    /// Its stream numbers, local to global: 8 bytes a connection, in chunks that never
    /// hold two copies of the list while it grows.
    streams: Chunked<u64>,
    stats: TcpStats,
    evictions: FlowEvictions,
}

/// An epoch sent to the lanes, waiting for their outputs.
#[derive(Default)]
struct Epoch {
    replies: Vec<Option<Vec<Event>>>,
    /// Handshakes decided on the reading thread (UDP, EAPOL) during the epoch, by frame.
    local: Vec<(u64, Handshake)>,
    /// The epoch was sent (the last one may be still being filled).
    sent: bool,
    /// Where in the file's mapping its first payload is, if any is there.
    first_mapped: Option<usize>,
}

/// The TCP stage on several threads (see the module's documentation).
pub struct Lanes {
    subs: usize,
    lanes: Vec<Lane>,
    replies: mpsc::Receiver<(usize, Reply)>,
    handles: Vec<std::thread::JoinHandle<()>>,
    clock: SweepClock,
    /// Epochs not released yet, the one being filled last.
    epochs: VecDeque<Epoch>,
    /// Frames read since the epoch being filled began.
    frames: u64,
    next_stream: u64,
    /// Handshakes released, in order, for the caller to take.
    ready: Vec<Handshake>,
    /// The file's mapping, when it is read from it.
    map: Option<Mapping>,
}

/// Whether the TCP table of `limits` has sub-tables to share out among lanes.
pub fn splittable(limits: Limits) -> bool {
    subs_for(limits.flows()) > 1
}

impl Lanes {
    /// `n` lanes, each starting from `keylog` (the secrets known before the first frame).
    pub fn new(n: usize, keylog: &KeyLog, limits: Limits) -> Self {
        let subs = subs_for(limits.flows());
        let n = n.clamp(1, subs);
        let (reply_tx, replies) = mpsc::channel();
        let mut lanes = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUED);
            let reply_tx = reply_tx.clone();
            let keylog = keylog.clone();
            let handle = std::thread::Builder::new()
                .name(format!("chainsniff-tcp-{i}"))
                .spawn(move || {
                    let failed = reply_tx.clone();
                    let run =
                        std::panic::AssertUnwindSafe(|| lane(i, rx, reply_tx, keylog, limits));
                    if let Err(panic) = std::panic::catch_unwind(run) {
                        let _ = failed.send((i, Reply::Failed(panic)));
                    }
                })
                .expect("spawning a thread");
            handles.push(handle);
            lanes.push(Lane {
                tx: Some(tx),
                batch: Batch::default(),
                spare: Vec::new(),
                streams: Chunked::default(),
                stats: TcpStats::default(),
                evictions: FlowEvictions::default(),
            });
        }
        let mut epochs = VecDeque::new();
        epochs.push_back(Epoch::new(n));
        Lanes {
            subs,
            lanes,
            replies,
            handles,
            clock: SweepClock::default(),
            epochs,
            frames: 0,
            next_stream: 0,
            ready: Vec::new(),
            map: None,
        }
    }

    /// The file is read from its mapping: payloads are handed out as places in it, and the
    /// reader keeps the pages the lanes have still to read.
    pub fn mapped(&mut self, map: Mapping) {
        for lane in &mut self.lanes {
            lane.batch.msgs.push(Msg::Map(map.clone()));
        }
        self.map = Some(map);
    }

    /// A frame was read (whatever it carried).
    pub fn frame_read(&mut self) {
        self.frames += 1;
        if self.frames >= EPOCH_FRAMES {
            self.end_epoch();
        }
    }

    /// A TCP segment, to the lane of its connection.
    pub fn segment(&mut self, at: At, seg: &TcpSegment<'_>) {
        if self.clock.due(at) {
            for lane in &mut self.lanes {
                lane.batch.msgs.push(Msg::Sweep(at));
            }
        }
        let src = std::net::SocketAddr::new(seg.src, seg.sport);
        let dst = std::net::SocketAddr::new(seg.dst, seg.dport);
        let i = sub_of(&key_of(src, dst).0, self.subs) % self.lanes.len();
        let batch = &mut self.lanes[i].batch;
        batch.payload += seg.payload.len();
        let payload = match self.map.as_ref().and_then(|m| m.offset_of(seg.payload)) {
            Some(at) => {
                let epoch = self.epochs.back_mut().expect("an epoch is being filled");
                if epoch.first_mapped.is_none() {
                    epoch.first_mapped = Some(at);
                    if let Some(map) = &self.map {
                        map.keep_from(keep_from(&self.epochs));
                    }
                }
                Payload::Mapped(at as u64)
            }
            None => {
                let at = batch.bytes.len() as u32;
                batch.bytes.extend_from_slice(seg.payload);
                Payload::Batch(at)
            }
        };
        batch.msgs.push(Msg::Segment(SegMsg {
            at,
            src: seg.src,
            dst: seg.dst,
            sport: seg.sport,
            dport: seg.dport,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            missing: seg.missing,
            payload,
            len: seg.payload.len() as u32,
        }));
        let batch = &self.lanes[i].batch;
        if batch.msgs.len() >= BATCH_SEGMENTS || batch.payload >= BATCH_BYTES {
            self.end_epoch();
        }
    }

    /// Secrets of the capture, read where they are in the file: every lane gets them there.
    pub fn secrets(&mut self, text: &str) {
        for lane in &mut self.lanes {
            lane.batch.msgs.push(Msg::Secrets(text.into()));
        }
    }

    /// A handshake decided on the reading thread (UDP, EAPOL) at `frame`.
    pub fn local(&mut self, frame: u64, hs: Handshake) {
        let epoch = self.epochs.back_mut().expect("an epoch is being filled");
        epoch.local.push((frame, hs));
    }

    /// The handshakes released so far (when an epoch ends), in the order one table gives them.
    pub fn take_ready(&mut self) -> std::vec::Drain<'_, Handshake> {
        self.ready.drain(..)
    }

    /// Waits for every lane to finish what was sent, and releases it all.
    pub fn settle(&mut self) {
        self.end_epoch();
        self.collect(true);
    }

    /// The counters of all lanes, as far as they have answered ([`Lanes::settle`] first for
    /// the exact ones).
    pub fn counts(&self) -> (TcpStats, FlowEvictions) {
        let mut stats = TcpStats::default();
        let mut evictions = FlowEvictions::default();
        let mut first_full: Option<u64> = None;
        for lane in &self.lanes {
            stats.add(&lane.stats);
            let first = lane.evictions.first_full_frame;
            evictions.add(lane.evictions);
            first_full = match (first_full, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        evictions.first_full_frame = first_full;
        (stats, evictions)
    }

    /// The end of the capture: every lane ends its connections still open. Returns what was
    /// still to be released, then the handshakes of those connections, in the order one table
    /// gives them, and the counters.
    pub fn finish(mut self) -> (Vec<Handshake>, TcpStats, FlowEvictions) {
        self.settle();
        for lane in &mut self.lanes {
            lane.tx = None;
        }
        let mut out = std::mem::take(&mut self.ready);
        let mut decided: Vec<(u64, Handshake)> = Vec::new();
        let mut finished: Vec<(u64, Handshake)> = Vec::new();
        let mut ended = 0;
        while ended < self.lanes.len() {
            let (i, reply) = self.reply(true).expect("waiting");
            let Reply::End {
                decided: d,
                finished: f,
                stats,
                evictions,
            } = reply
            else {
                unreachable!("every epoch was answered before the end");
            };
            let lane = &mut self.lanes[i];
            lane.stats = stats;
            lane.evictions = evictions;
            for (list, hs) in [(&mut decided, d), (&mut finished, f)] {
                for mut h in hs {
                    h.stream = lane.streams.get(h.stream as usize);
                    list.push((h.stream, h));
                }
            }
            ended += 1;
        }
        // One table ends its connections in stream order: a connection's handshakes keep theirs.
        decided.sort_by_key(|(s, _)| *s);
        finished.sort_by_key(|(s, _)| *s);
        out.extend(decided.into_iter().chain(finished).map(|(_, h)| h));
        let (stats, evictions) = self.counts();
        (out, stats, evictions)
    }

    /// Sends the batches being filled, one to every lane, as an epoch.
    fn end_epoch(&mut self) {
        self.frames = 0;
        let n = self.lanes.len();
        for i in 0..n {
            let lane = &mut self.lanes[i];
            let fresh = lane.spare.pop().unwrap_or_default();
            let batch = std::mem::replace(&mut lane.batch, fresh);
            let Some(tx) = &lane.tx else { continue };
            if tx.send(batch).is_err() {
                // The lane is gone: its panic waits among the replies.
                self.lane_failed();
            }
        }
        if let Some(e) = self.epochs.back_mut() {
            e.sent = true;
        }
        self.epochs.push_back(Epoch::new(n));
        self.collect(false);
    }

    /// Takes the lanes' replies (waiting for all sent epochs when `wait`) and releases the
    /// epochs every lane has answered.
    fn collect(&mut self, wait: bool) {
        loop {
            while let Some(front) = self.epochs.front() {
                if !front.sent || front.replies.iter().any(Option::is_none) {
                    break;
                }
                let epoch = self.epochs.pop_front().expect("present");
                self.release(epoch);
                if let Some(map) = &self.map {
                    map.keep_from(keep_from(&self.epochs));
                }
            }
            let waiting = self.epochs.front().is_some_and(|e| e.sent);
            let Some((i, reply)) = self.reply(wait && waiting) else {
                return;
            };
            let Reply::Epoch {
                events,
                batch,
                stats,
                evictions,
            } = reply
            else {
                unreachable!("a lane ends only when its channel closes");
            };
            let lane = &mut self.lanes[i];
            lane.spare.push(batch);
            lane.stats = stats;
            lane.evictions = evictions;
            // Lanes answer their epochs in order: this is the first one it has not answered.
            let slot = self
                .epochs
                .iter_mut()
                .find_map(|e| e.replies[i].is_none().then_some(&mut e.replies[i]))
                .expect("an epoch waits for this lane");
            *slot = Some(events);
        }
    }

    /// The next reply, waiting for it when `wait`.
    fn reply(&mut self, wait: bool) -> Option<(usize, Reply)> {
        let got = if wait {
            self.replies.recv().ok()
        } else {
            self.replies.try_recv().ok()
        };
        match got {
            Some((_, Reply::Failed(panic))) => std::panic::resume_unwind(panic),
            None if wait => self.lane_failed(),
            got => got,
        }
    }

    /// A lane's thread stopped without a word (it can only have panicked): its panic, if
    /// there is one to take, goes on here.
    fn lane_failed(&mut self) -> ! {
        while let Ok((_, reply)) = self.replies.try_recv() {
            if let Reply::Failed(panic) = reply {
                std::panic::resume_unwind(panic);
            }
        }
        panic!("a TCP lane stopped without an answer");
    }

    /// Puts an answered epoch's handshakes in the order one table gives them.
    fn release(&mut self, epoch: Epoch) {
        /// What happened at a frame: in a lane, or on the reading thread (a handshake).
        enum From {
            Lane(Event),
            Here(Box<Handshake>),
        }
        // (frame, source, index): the lanes' events, then the reading thread's handshakes.
        let local = self.lanes.len();
        let mut events: Vec<(u64, usize, usize, From)> = Vec::new();
        for (lane, list) in epoch.replies.into_iter().enumerate() {
            let list = list.expect("answered");
            events.extend(
                list.into_iter()
                    .enumerate()
                    .map(|(k, e)| (e.frame(), lane, k, From::Lane(e))),
            );
        }
        events.extend(
            epoch
                .local
                .into_iter()
                .enumerate()
                .map(|(k, (frame, hs))| (frame, local, k, From::Here(Box::new(hs)))),
        );
        events.sort_unstable_by_key(|(frame, src, k, _)| (*frame, *src, *k));
        let mut group: Vec<(Place, u64, usize, usize, Handshake)> = Vec::new();
        let mut rest = events.into_iter().peekable();
        while let Some(first) = rest.next() {
            // One frame's events.
            let frame = first.0;
            let same_frame = std::iter::from_fn(|| rest.next_if(|e| e.0 == frame));
            for (_, src, k, event) in std::iter::once(first).chain(same_frame) {
                let event = match event {
                    // A frame is one lane's or the reading thread's, never both.
                    From::Here(hs) => {
                        self.ready.push(*hs);
                        continue;
                    }
                    From::Lane(event) => event,
                };
                match event {
                    Event::NewStreams { n, .. } => {
                        for _ in 0..n {
                            self.lanes[src].streams.push(self.next_stream);
                            self.next_stream += 1;
                        }
                    }
                    Event::Handshake { place, mut hs, .. } => {
                        hs.stream = self.lanes[src].streams.get(hs.stream as usize);
                        let by_stream = match place {
                            Place::DecidedBySweep | Place::FinishedBySweep => hs.stream,
                            Place::Decided | Place::Finished => 0,
                        };
                        group.push((place, by_stream, src, k, *hs));
                    }
                }
            }
            group.sort_by_key(|(place, stream, src, k, _)| (*place, *stream, *src, *k));
            self.ready.extend(group.drain(..).map(|g| g.4));
        }
    }
}

impl Epoch {
    fn new(lanes: usize) -> Self {
        Epoch {
            replies: (0..lanes).map(|_| None).collect(),
            local: Vec::new(),
            sent: false,
            first_mapped: None,
        }
    }
}

/// Where the lanes have still to read the mapping: the first payload of the oldest epoch not
/// released (`usize::MAX`: nowhere).
fn keep_from(epochs: &VecDeque<Epoch>) -> usize {
    epochs
        .iter()
        .find_map(|e| e.first_mapped)
        .unwrap_or(usize::MAX)
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            lane.tx = None;
        }
        for handle in std::mem::take(&mut self.handles) {
            let _ = handle.join();
        }
    }
}

/// A lane's thread: its sub-tables of the TCP stage, batch after batch, until the reader hangs
/// up; then the end of the capture.
fn lane(
    i: usize,
    rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<(usize, Reply)>,
    keylog: KeyLog,
    limits: Limits,
) {
    let keylog = Rc::new(RefCell::new(keylog));
    let (mut reasm, outbox): (TcpStage, _) = tcp_stage(&keylog, limits);
    reasm.sweep_externally();
    let mut map: Option<Mapping> = None;
    let mut known = super::KnownShas::default();
    for mut batch in rx {
        let mut events = Vec::new();
        let mut take = |frame: u64, by_sweep: bool, reasm: &mut TcpStage, events: &mut Vec<_>| {
            let (decided, finished) = if by_sweep {
                (Place::DecidedBySweep, Place::FinishedBySweep)
            } else {
                (Place::Decided, Place::Finished)
            };
            let d = std::mem::take(&mut *outbox.borrow_mut());
            for (place, hs) in d
                .into_iter()
                .map(|h| (decided, h))
                .chain(reasm.finished.drain(..).map(|h| (finished, h)))
            {
                let mut hs = Box::new(hs);
                super::prehash(&mut hs, &mut known);
                events.push(Event::Handshake { frame, place, hs });
            }
        };
        for msg in batch.msgs.drain(..) {
            match msg {
                Msg::Segment(s) => {
                    let len = s.len as usize;
                    let payload = match (s.payload, &map) {
                        (Payload::Batch(at), _) => &batch.bytes[at as usize..at as usize + len],
                        (Payload::Mapped(at), Some(m)) => {
                            &m.bytes()[at as usize..at as usize + len]
                        }
                        (Payload::Mapped(_), None) => unreachable!("the mapping comes first"),
                    };
                    let seg = TcpSegment {
                        src: s.src,
                        dst: s.dst,
                        sport: s.sport,
                        dport: s.dport,
                        seq: s.seq,
                        ack: s.ack,
                        flags: s.flags,
                        payload,
                        missing: s.missing,
                    };
                    let before = reasm.streams_numbered();
                    reasm.process(s.at, &seg);
                    let n = reasm.streams_numbered() - before;
                    if n > 0 {
                        events.push(Event::NewStreams {
                            frame: s.at.frame,
                            n,
                        });
                    }
                    take(s.at.frame, false, &mut reasm, &mut events);
                }
                Msg::Sweep(at) => {
                    reasm.sweep(at);
                    take(at.frame, true, &mut reasm, &mut events);
                }
                Msg::Secrets(text) => {
                    keylog.borrow_mut().add_text(&text);
                }
                Msg::Map(m) => map = Some(m),
            }
        }
        batch.bytes.clear();
        batch.payload = 0;
        let (stats, evictions) = reasm.counts();
        let reply = Reply::Epoch {
            events,
            batch,
            stats,
            evictions,
        };
        if tx.send((i, reply)).is_err() {
            return;
        }
    }
    let (mut finished, stats, evictions) = reasm.finish();
    let mut decided = std::mem::take(&mut *outbox.borrow_mut());
    decided
        .iter_mut()
        .chain(finished.iter_mut())
        .for_each(|h| super::prehash(h, &mut known));
    let _ = tx.send((
        i,
        Reply::End {
            decided,
            finished,
            stats,
            evictions,
        },
    ));
}
