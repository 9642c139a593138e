//! The pipeline: capture files in, handshakes with their certificates out.
//!
//! frames (capture) → segments (decode) → stream bytes (reassembly) → TLS events (tls) →
//! handshakes (handshake). Certificates leave each handshake as soon as it is finished and are
//! kept once per distinct certificate in the [`CertStore`], so memory grows with the number of
//! live handshakes and distinct certificates, not with the capture.

mod sharded;

use crate::model::{At, PART_SHIFT, local_frame};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use crate::capture::{
    CaptureError, CaptureSummary, Frame, Warning, read_capture, read_capture_mapped, read_from,
};
use crate::flow::FlowEvictions;
use crate::flow::eap::EapolFlows;
use crate::flow::udp::UdpFlows;
use crate::flow::{ConnInfo, FlowLimits, Reassembler};
use crate::identity::Identities;
use crate::pki::{CertStore, Sighting, TrustStore};
use crate::spill::{Chunked, Postcard, Spill};
use crate::tls::handshake::{EventKind, Handshake, TlsConn};
use crate::tls::keylog::KeyLog;
use crate::wire::defrag::Defragmenter;
use crate::wire::{Decoded, decode, transport};

/// Most per-frame decode warnings listed per capture (the rest are counted).
const MAX_FRAME_WARNINGS: usize = 20;

/// What to analyze and how: trust, key logs, filters, limits.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra trust anchors (`--trust`): PEM or DER files, or directories of them.
    pub trust: Vec<PathBuf>,
    /// Leave the default roots out (`--no-default-trust`, `--trust-store none`).
    pub no_default_trust: bool,
    /// Where the default roots come from (`--trust-store`).
    pub trust_store: crate::pki::TrustSource,
    /// Intermediates in `--trust` files become anchors (`--trust-intermediates`).
    pub trust_intermediates: bool,
    /// TLS key logs (`--keylog`, `SSLKEYLOGFILE`) to decrypt TLS 1.3 handshakes and TLS 1.2
    /// renegotiations.
    pub keylog: Vec<PathBuf>,
    /// Bounds on memory per capture.
    pub limits: Limits,
    /// Which handshakes to report (`--client`, `--server`, `--sni`).
    pub filter: crate::filter::Filter,
    /// Told how far each capture has been read (for a progress bar).
    pub progress: Option<Progress>,
    /// Threads that follow the TCP connections of one capture file (`--threads`): 0 lets the
    /// reader choose (every core, up to 4, for a file of [`LANES_FROM`] bytes or more), 1
    /// follows them on the reading thread. The report is the same either way.
    pub threads: usize,
}

/// The size of a capture file from which its TCP connections are followed on every core.
pub const LANES_FROM: u64 = 64 << 20;

/// A callback told `(capture path, bytes read so far, capture size if known)` as a capture is
/// read, about every megabyte.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<ProgressFn>);

/// What a [`Progress`] calls: `(capture path, bytes read so far, capture size if known)`.
pub type ProgressFn = dyn Fn(&str, u64, Option<u64>) + Send + Sync;

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Reports the bytes read through it to a [`Progress`].
struct ProgressReader {
    inner: Box<dyn Read + Send>,
    progress: Progress,
    path: String,
    size: Option<u64>,
    read: u64,
    told: u64,
}

impl Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.told >= 1 << 20 || n == 0 {
            self.told = self.read;
            (self.progress.0)(&self.path, self.read, self.size);
        }
        Ok(n)
    }
}

/// The bounds that keep memory independent of the capture (see docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Conversations followed at once, TCP and UDP each (`--max-flows`).
    pub max_flows: usize,
    /// Largest handshake message kept (`--max-handshake-bytes`).
    pub max_handshake_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: FlowLimits::default().max_flows,
            max_handshake_bytes: crate::tls::MAX_HANDSHAKE,
        }
    }
}

impl Limits {
    fn flows(&self) -> FlowLimits {
        FlowLimits {
            max_flows: self.max_flows,
            ..FlowLimits::default()
        }
    }
}

/// What reading one capture produced besides handshakes.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CaptureResult {
    /// What the file itself told (format, frames, truncation, warnings).
    #[serde(flatten)]
    pub summary: CaptureSummary,
    /// TCP segments read.
    pub tcp_segments: u64,
    /// TCP connections seen (Wireshark's `tcp.stream` count).
    pub tcp_connections: u64,
    /// Holes in TCP streams (bytes never captured).
    pub tcp_gaps: u64,
    /// Frames that are not TCP or UDP over IP (ARP, STP, ...): counted and skipped.
    pub other_frames: u64,
    /// Frames whose headers do not decode.
    pub undecodable_frames: u64,
    /// Conversations (TCP and UDP) chainsniff stopped following before they ended: the flow
    /// table was full (`--max-flows`) or they were idle for 10 minutes of capture time.
    pub flows_evicted: u64,
    /// Handshake messages skipped for being larger than `--max-handshake-bytes`.
    pub oversized_messages: u64,
    /// IP packets reassembled from fragments, and fragmented packets given up (incomplete,
    /// timed out, over the limits).
    pub ip_reassembled: u64,
    /// Fragmented IP packets given up.
    pub ip_fragments_dropped: u64,
    /// This file was read as one capture with others (a ring buffer's parts): which, and
    /// why. The counters above are the joined capture's, on its first file; the other files
    /// have only their own frames and warnings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined: Option<Joined>,
}

impl CaptureResult {
    /// A file of a joined capture after its first: its own summary, no counters.
    pub(crate) fn empty(summary: CaptureSummary) -> Self {
        CaptureResult {
            summary,
            tcp_segments: 0,
            tcp_connections: 0,
            tcp_gaps: 0,
            other_frames: 0,
            undecodable_frames: 0,
            flows_evicted: 0,
            oversized_messages: 0,
            ip_reassembled: 0,
            ip_fragments_dropped: 0,
            joined: None,
        }
    }
}

/// A finished handshake and the capture it came from.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Session {
    /// The index in `captures[]` of the file its ClientHello is in.
    pub capture: usize,
    /// The index in `captures[]` of the first file of the capture it is in (itself unless the
    /// capture was joined from several files): a frame in part `p` is in capture `base + p`.
    #[serde(default)]
    pub base: usize,
    /// The handshake as the TLS stage recorded it.
    pub hs: Handshake,
}

/// Every finished handshake, in report order (by capture, then by the frame of the
/// ClientHello). They wait in a [`Spill`] for the end of the analysis: memory holds a few ids
/// and offsets per handshake, not the handshake.
#[derive(Debug, Default)]
pub struct Sessions {
    records: Spill<Session, Postcard>,
    /// Record numbers in report order.
    order: Chunked<u32>,
    /// Per record: the server (address, port, SNI) and the chain it sent, as ids
    /// ([`NO_CHAIN`] when no certificate was seen), so that chain variants can be labelled
    /// without reading the handshakes back. Emptied by [`Sessions::seal`].
    chains: Chunked<(u32, u32)>,
    /// Per handshake in report order: its chain variant ([`NO_CHAIN`] without one), set by
    /// [`Sessions::seal`].
    variants: Vec<u32>,
    server_ids: HashMap<(std::net::SocketAddr, Option<String>), u32>,
    chain_ids: HashMap<Vec<crate::pki::Sha>, u32>,
}

/// The chain id of a handshake without a certificate.
const NO_CHAIN: u32 = u32::MAX;

/// The keys of an id table, by id.
fn invert<K: Clone>(ids: &HashMap<K, u32>) -> Vec<K> {
    let mut keys: Vec<(u32, &K)> = ids.iter().map(|(k, id)| (*id, k)).collect();
    keys.sort_unstable_by_key(|(id, _)| *id);
    keys.into_iter().map(|(_, k)| k.clone()).collect()
}

impl Sessions {
    /// How many handshakes there are.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The `i`-th handshake in report order.
    pub fn get(&self, i: usize) -> std::io::Result<Session> {
        self.records.get(self.order.get(i) as usize)
    }

    /// Adds a finished handshake (its certificates already in the store).
    fn push(&mut self, session: &Session) -> std::io::Result<()> {
        let hs = &session.hs;
        let chain = match hs.certificate.as_ref().filter(|c| !c.shas.is_empty()) {
            Some(c) => {
                let next = self.chain_ids.len() as u32;
                *self.chain_ids.entry(c.shas.clone()).or_insert(next)
            }
            None => NO_CHAIN,
        };
        let next = self.server_ids.len() as u32;
        let server = *self
            .server_ids
            .entry((hs.server, hs.sni().map(str::to_string)))
            .or_insert(next);
        self.chains.push((server, chain));
        self.records.push(session)
    }

    /// Adds a handshake after every one in report order (a partial analysis read back).
    pub fn push_last(&mut self, session: &Session) -> std::io::Result<()> {
        let record = self.records.len() as u32;
        self.push(session)?;
        self.order.push(record);
        Ok(())
    }

    /// Puts the handshakes in report order again (by capture, then by the frame of the
    /// ClientHello; the handshakes of one connection in the order they were decided), after
    /// parts whose handshakes cross from one into the next were absorbed.
    pub fn sort(&mut self) -> std::io::Result<()> {
        let mut keys = Vec::with_capacity(self.order.len());
        for record in self.order.iter() {
            let s = self.records.get(record as usize)?;
            keys.push((report_key(&s), record));
        }
        keys.sort_by_key(|&(key, _)| key);
        self.order = Chunked::default();
        for (_, record) in keys {
            self.order.push(record);
        }
        Ok(())
    }

    /// Appends the handshakes of `other` (of later captures), after this one's.
    fn absorb(&mut self, other: Sessions) -> std::io::Result<()> {
        let offset = self.records.len() as u32;
        let servers = invert(&other.server_ids);
        let chains = invert(&other.chain_ids);
        for record in 0..other.records.len() {
            self.records.push_encoded(&other.records.bytes(record)?)?;
            let (server, chain) = other.chains.get(record);
            let next = self.server_ids.len() as u32;
            let server = *self
                .server_ids
                .entry(servers[server as usize].clone())
                .or_insert(next);
            let chain = match chain {
                NO_CHAIN => NO_CHAIN,
                c => {
                    let next = self.chain_ids.len() as u32;
                    *self
                        .chain_ids
                        .entry(chains[c as usize].clone())
                        .or_insert(next)
                }
            };
            self.chains.push((server, chain));
        }
        for record in other.order.iter() {
            self.order.push(record + offset);
        }
        Ok(())
    }

    /// The `i`-th handshake's chain variant: the index of its chain among the chains its
    /// server (address, port, SNI) sent, first seen first (0 = "A"); `None` without a
    /// certificate.
    pub fn chain_variant(&self, i: usize) -> Option<u32> {
        self.variants.get(i).copied().filter(|v| *v != NO_CHAIN)
    }

    /// Every capture is in: labels the chain variants in report order and lets go of the ids
    /// that were kept for it.
    fn seal(&mut self) {
        let mut variants: HashMap<(u32, u32), u32> = HashMap::new();
        let mut per_server: HashMap<u32, u32> = HashMap::new();
        // Made at its size (the chunks' iterator does not tell it): not doubled past it.
        self.variants = Vec::with_capacity(self.order.len());
        self.variants.extend(self.order.iter().map(
            |record| match self.chains.get(record as usize) {
                (_, NO_CHAIN) => NO_CHAIN,
                (server, chain) => *variants.entry((server, chain)).or_insert_with(|| {
                    let n = per_server.entry(server).or_default();
                    *n += 1;
                    *n - 1
                }),
            },
        ));
        self.chains = Chunked::default();
        self.server_ids = HashMap::new();
        self.chain_ids = HashMap::new();
    }
}

/// What reading the captures built, before any chain is judged.
pub struct Analysis {
    /// Every capture read, in the order given.
    pub captures: Vec<CaptureResult>,
    /// Every finished handshake, in report order.
    pub sessions: Sessions,
    /// Every certificate sent in any capture.
    pub store: CertStore,
    /// The trust anchors chains are judged against.
    pub trust: TrustStore,
    /// MACs, DHCP, DNS names and plain-HTTP requests seen in the captures.
    pub identities: Identities,
    /// Handshakes left out by the filter (`--client`, `--server`, `--sni`).
    pub filtered_out: usize,
}

/// Builds the trust store from the options.
pub fn trust_store(opts: &Options) -> crate::Result<TrustStore> {
    let source = if opts.no_default_trust {
        crate::pki::TrustSource::None
    } else {
        opts.trust_store
    };
    let mut trust = TrustStore::from_source(source)?;
    trust.partial_chain = opts.trust_intermediates;
    for p in &opts.trust {
        trust.add_path(p)?;
    }
    Ok(trust)
}

/// Analyzes one capture read from `input` (a pipe, memory, a decompressor) under `name`.
pub fn analyze_reader(
    name: &str,
    input: Box<dyn Read + Send>,
    opts: &Options,
) -> crate::Result<Analysis> {
    analyze_sources(vec![(name, Some(input))], opts, |_, _, _| {})
}

/// Reads every capture and extracts its handshakes. Captures are analyzed together: a
/// certificate seen in one helps to name what another server failed to send. Several
/// captures are read in parallel, one per core; the result is the same as reading them one
/// after another.
pub fn analyze(paths: &[String], opts: &Options) -> crate::Result<Analysis> {
    let trust = trust_store(opts)?;
    Ok(read(paths, opts, &trust)?.into_analysis(trust))
}

/// What [`analyze`] reads before it ends: the captures' part of the analysis, which
/// `chainsniff analyze --partial` writes and `chainsniff merge` combines with others.
pub fn read(paths: &[String], opts: &Options, trust: &TrustStore) -> crate::Result<CapturePart> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let keylog = base_keylog(opts)?;
    if paths.len() < 2 || workers < 2 {
        let mut all = CapturePart::default();
        let sources = paths.iter().map(|p| (p.as_str(), None)).collect();
        read_group(
            0,
            sources,
            &keylog,
            opts,
            &mut all,
            trust,
            &mut |_, _, _| {},
            Mode::default(),
        )?;
        return Ok(all);
    }
    // A round of as many captures as cores at a time, each into its own part on its own
    // thread, merged in capture order before the next round: at most one part per core waits
    // (each holds a temporary file and buffers), however many files there are.
    // Files that may be parts of one capture (the same link, each starting no earlier than
    // the one before) are read one after another by one thread, which joins those that go on
    // from the one before; the others are read in parallel.
    let chains = chains(paths);
    let mut all = CapturePart::default();
    // The cores are taken by the files read together: each follows its connections on its own
    // thread (unless --threads says otherwise).
    let together = Options {
        threads: if opts.threads == 0 { 1 } else { opts.threads },
        ..opts.clone()
    };
    for round in chains.chunks(workers) {
        let opts = if round.len() > 1 { &together } else { opts };
        let parts: Vec<crate::Result<CapturePart>> = std::thread::scope(|scope| {
            let handles: Vec<_> = round
                .iter()
                .map(|chain| {
                    let keylog = &keylog;
                    scope.spawn(move || {
                        let mut part = CapturePart::default();
                        let sources = chain.clone().map(|i| (paths[i].as_str(), None)).collect();
                        read_group(
                            chain.start,
                            sources,
                            keylog,
                            opts,
                            &mut part,
                            trust,
                            &mut |_, _, _| {},
                            Mode::default(),
                        )
                        .map(|()| part)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for part in parts {
            all.absorb(part?)?;
        }
    }
    Ok(all)
}

/// The partial analysis of `paths` (read one after another, as one group): as [`read`],
/// and the handshakes still open at the end wait in the part's tail for the merge. With
/// `after`, the file before the first is read first only to go on with its conversations (a
/// ring buffer's previous file): what it holds is the partial before's, what crosses into
/// `paths` is this one's.
pub fn read_partial(
    paths: &[String],
    after: Option<&str>,
    opts: &Options,
) -> crate::Result<CapturePart> {
    // The trust store is the merge's; reading needs none.
    let trust = TrustStore::from_source(crate::pki::TrustSource::None)?;
    let keylog = base_keylog(opts)?;
    let mut part = CapturePart::default();
    let sources = after
        .into_iter()
        .chain(paths.iter().map(String::as_str))
        .map(|p| (p, None))
        .collect();
    let mode = Mode {
        lead_in: after.is_some(),
        tail: true,
    };
    read_group(
        0,
        sources,
        &keylog,
        opts,
        &mut part,
        &trust,
        &mut |_, _, _| {},
        mode,
    )?;
    Ok(part)
}

/// The groups of `paths` that [`analyze`] reads each as one unit, in order: files that may be
/// parts of one capture (a ring buffer's files, a TAP's two) are one group; every other file
/// is a group of its own. A partial analysis of each group (`chainsniff plan` prints them),
/// merged in order, is the analysis of all the files.
pub fn groups(paths: &[String]) -> Vec<std::ops::Range<usize>> {
    chains(paths)
}

/// Consecutive runs of `paths` that may be parts of one capture: each file's first frame on the
/// same link type as the one before and not more than 10 minutes earlier. A file whose start cannot be read is a
/// run of its own (its error comes when it is read).
fn chains(paths: &[String]) -> Vec<std::ops::Range<usize>> {
    let starts: Vec<Option<(pcap_parser::Linktype, crate::model::Timestamp)>> =
        paths.iter().map(|p| first_frame(p)).collect();
    let mut chains: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, start) in starts.iter().enumerate() {
        let follows = i > 0
            && match (starts[i - 1], start) {
                // Later (a ring buffer's next file), or about the same time (a TAP's other file).
                (Some((l0, t0)), Some((l1, t1))) => {
                    l0 == *l1 && t1.secs() >= t0.secs() - FlowLimits::default().idle_secs
                }
                _ => false,
            };
        match chains.last_mut() {
            Some(c) if follows => c.end = i + 1,
            _ => chains.push(i..i + 1),
        }
    }
    chains
}

/// The link type and time of a capture file's first frame, from its first 64 KiB.
fn first_frame(path: &str) -> Option<(pcap_parser::Linktype, crate::model::Timestamp)> {
    if path == "-" {
        return None;
    }
    let input = crate::capture::open(path).ok()?;
    let mut first = None;
    let _ = read_from(
        path,
        Box::new(input.take(64 << 10)),
        |f| {
            first.get_or_insert((f.linktype, f.ts));
        },
        |_| {},
    );
    first
}

/// As [`analyze`], one capture after another, and calls `on_session` for every handshake as
/// soon as it is decided (with the certificates known at that moment), for reports that stream.
pub fn analyze_streaming(
    paths: &[String],
    opts: &Options,
    on_session: impl FnMut(&Session, &CertStore, &TrustStore),
) -> crate::Result<Analysis> {
    let sources = paths.iter().map(|p| (p.as_str(), None)).collect();
    analyze_sources(sources, opts, on_session)
}

/// The key logs given with `--keylog`.
fn base_keylog(opts: &Options) -> crate::Result<KeyLog> {
    let mut keylog = KeyLog::default();
    for p in &opts.keylog {
        keylog.add_file(p)?;
    }
    Ok(keylog)
}

/// What reading some captures built, before any chain is judged: the handshakes, the
/// certificates, the hosts. Parts of captures read apart, absorbed in capture order, are the
/// part of all of them read together ([`crate::partial`] writes and reads them).
#[derive(Default)]
pub struct CapturePart {
    /// Every file read, in the order given.
    pub files: Vec<FileRecord>,
    /// The limits they were read with (the warnings name them).
    pub limits: Limits,
    /// In a partial analysis: what ending its last capture added.
    pub tail: Tail,
    /// The report keys of the tail's handshakes a warning already counts (see
    /// [`crate::partial`]).
    pub warned: Vec<u64>,
    /// Every certificate sent in them.
    pub store: CertStore,
    /// Every finished handshake, in report order.
    pub sessions: Sessions,
    /// MACs, DHCP, DNS names and plain-HTTP requests seen in them.
    pub identities: Identities,
    /// Handshakes left out by the filter.
    pub filtered_out: usize,
}

impl CapturePart {
    /// Every capture is in: the analysis that reports are built from.
    pub fn into_analysis(mut self, trust: TrustStore) -> Analysis {
        self.sessions.seal();
        Analysis {
            captures: assemble(self.files, 0, self.limits),
            sessions: self.sessions,
            store: self.store,
            trust,
            identities: self.identities,
            filtered_out: self.filtered_out,
        }
    }

    /// Ends the last capture with `tail`, what ending it added in a partial analysis: its
    /// handshakes' certificates go into the store, the handshakes after the others.
    pub fn end_with(&mut self, tail: Tail) -> std::io::Result<()> {
        for mut session in tail.sessions {
            intern(&mut self.store, session.base, &mut session.hs);
            self.sessions.push_last(&session)?;
        }
        if let Some(last) = self.files.last_mut() {
            last.counts.add(&tail.counts);
        }
        self.filtered_out += tail.filtered_out;
        Ok(())
    }

    /// Appends `other`, the part of the captures that come after this one's (its capture
    /// indices already count this part's captures).
    pub fn absorb(&mut self, other: CapturePart) -> std::io::Result<()> {
        self.files.extend(other.files);
        self.store.absorb(other.store);
        self.sessions.absorb(other.sessions)?;
        self.identities.merge(other.identities);
        self.filtered_out += other.filtered_out;
        Ok(())
    }
}

/// The captures, each a file path or (with a reader) a named byte source, analyzed together,
/// one after another.
fn analyze_sources(
    sources: Vec<(&str, Option<Box<dyn Read + Send>>)>,
    opts: &Options,
    mut on_session: impl FnMut(&Session, &CertStore, &TrustStore),
) -> crate::Result<Analysis> {
    let trust = trust_store(opts)?;
    let keylog = base_keylog(opts)?;
    let mut all = CapturePart::default();
    read_group(
        0,
        sources,
        &keylog,
        opts,
        &mut all,
        &trust,
        &mut on_session,
        Mode::default(),
    )?;
    Ok(all.into_analysis(trust))
}

/// A frame copied out of the reader while chainsniff decides whether its file goes on from
/// the one before.
struct OwnedFrame {
    number: u64,
    ts: crate::model::Timestamp,
    linktype: pcap_parser::Linktype,
    data: Vec<u8>,
    orig_len: u32,
}

impl OwnedFrame {
    fn of(f: &Frame<'_>) -> Self {
        OwnedFrame {
            number: f.number,
            ts: f.ts,
            linktype: f.linktype,
            data: f.data.to_vec(),
            orig_len: f.orig_len,
        }
    }
    fn frame(&self) -> Frame<'_> {
        Frame {
            number: self.number,
            ts: self.ts,
            linktype: self.linktype,
            data: &self.data,
            orig_len: self.orig_len,
        }
    }
}

/// Frames of a file looked at to decide whether it goes on from the file before.
const JOIN_PEEK: usize = 512;
/// How far (seconds) a TAP's other file may start after the first one ends.
const JOIN_SLACK_SECS: i64 = 1;

/// Where finished handshakes go: certificates into the store, the filter, the sessions.
struct SessionSink<'a> {
    store: &'a mut CertStore,
    sessions: &'a mut Sessions,
    filtered_out: &'a mut usize,
    filter: &'a crate::filter::Filter,
    trust: &'a TrustStore,
    on_session: &'a mut dyn FnMut(&Session, &CertStore, &TrustStore),
    /// The capture index of part 0 of the capture being read.
    base: usize,
    /// The report-order key of each record from `first` on.
    keys: Chunked<u64>,
    spill_error: Option<std::io::Error>,
    /// False while a lead-in file is read (`--after`): its handshakes are another partial's.
    keep: bool,
    /// A lead-in was read (`--after`): a handshake without a ClientHello after it is the rest
    /// of a conversation an earlier partial has (dropped), and one whose ClientHello is in the
    /// lead-in (capture 0) is a *head* (not counted as filtered out: the partial before counts
    /// it).
    after_lead_in: bool,
    /// Some while the last capture ends in a partial analysis: the handshakes still open at
    /// its end wait there, their certificates not interned, for the merge to keep or drop.
    tail: Option<Tail>,
}

/// What ending the last capture of a partial analysis added: kept by the merge unless the
/// next partial goes on with the capture (`--after`), which then has these handshakes whole.
#[derive(Debug, Default)]
pub struct Tail {
    /// The handshakes, with their certificates.
    pub sessions: Vec<Session>,
    /// Those of them the filter left out.
    pub filtered_out: usize,
    /// What ending the capture added to its counters.
    pub counts: Counts,
}

impl SessionSink<'_> {
    fn take(&mut self, mut hs: Handshake) {
        if !self.keep {
            return;
        }
        if self.after_lead_in && hs.client_hellos.is_empty() {
            return;
        }
        let order = handshake_order(&hs);
        let part = crate::model::frame_part(order);
        attribute(&mut hs, part);
        let capture = self.base + part as usize;
        let head = self.after_lead_in && capture == 0;
        if let Some(tail) = &mut self.tail {
            if self.filter.matches(hs.client, hs.server, hs.sni()) {
                let base = self.base;
                tail.sessions.push(Session { capture, base, hs });
            } else if !head {
                tail.filtered_out += 1;
            }
            return;
        }
        // Certificates leave each handshake as soon as it is finished: memory holds each
        // distinct certificate once, not one copy per handshake.
        intern(self.store, self.base, &mut hs);
        if !self.filter.matches(hs.client, hs.server, hs.sni()) {
            if !head {
                *self.filtered_out += 1;
            }
            return;
        }
        let session = Session {
            capture,
            base: self.base,
            hs,
        };
        (self.on_session)(&session, self.store, self.trust);
        self.keys
            .push(((capture as u64) << PART_SHIFT) | local_frame(order));
        if let Err(e) = self.sessions.push(&session) {
            self.spill_error.get_or_insert(e);
        }
    }
}

/// Makes `hs.stream` the stream index in `part` (the file its report names), the others
/// going to `continued`.
fn attribute(hs: &mut Handshake, part: u32) {
    if part == hs.stream_part {
        return;
    }
    if let Some(i) = hs.continued.iter().position(|(p, _)| *p == part) {
        let (p, stream) = hs.continued.remove(i);
        hs.continued.insert(0, (hs.stream_part, hs.stream));
        hs.continued.sort_unstable();
        hs.stream = stream;
        hs.stream_part = p;
    }
}

/// The files of one capture being read, and the capture they join.
struct Joiner<'k> {
    /// The `--keylog` secrets, which each capture starts from.
    base_keylog: &'k KeyLog,
    /// The current capture's: the base and its files' Decryption Secrets Blocks.
    keylog: Rc<RefCell<KeyLog>>,
    /// Decryption Secrets Blocks met while the first frames of a file are looked at: they go to
    /// the capture the file turns out to belong to.
    peek_secrets: Vec<Vec<u8>>,
    limits: Limits,
    pipeline: FramePipeline,
    /// Files of the current capture read to their end.
    files: usize,
    /// The pipeline's counters at the end of the last file read.
    snapshot: Counts,
    /// How the file being read was joined to the one before, if it was.
    join: Option<&'static str>,
    /// The first file is a lead-in (`--after`) not yet over.
    lead_in: bool,
    /// The file being read is the first of its capture.
    first_file: bool,
    /// Some while the first frames of a file are looked at.
    peek: Option<Vec<OwnedFrame>>,
    last_ts: Option<crate::model::Timestamp>,
    first_ts: Option<crate::model::Timestamp>,
    linktype: Option<pcap_parser::Linktype>,
    /// Every file read to its end.
    records: Vec<FileRecord>,
    identities: Identities,
}

impl Joiner<'_> {
    /// A Decryption Secrets Block: its secrets decrypt the capture it is in.
    fn secrets(&mut self, secrets: &[u8]) {
        if self.peek.is_some() {
            self.peek_secrets.push(secrets.to_vec());
        } else {
            let text = String::from_utf8_lossy(secrets);
            self.keylog.borrow_mut().add_text(&text);
            self.pipeline.secrets(&text);
        }
    }

    fn frame(&mut self, frame: &Frame<'_>, sink: &mut SessionSink<'_>) {
        if let Some(peek) = self.peek.as_mut() {
            peek.push(OwnedFrame::of(frame));
            if peek.len() >= JOIN_PEEK {
                self.decide(sink);
            }
            return;
        }
        self.last_ts = Some(self.last_ts.map_or(frame.ts, |t| t.max(frame.ts)));
        self.first_ts = Some(self.first_ts.map_or(frame.ts, |t| t.min(frame.ts)));
        self.linktype.get_or_insert(frame.linktype);
        self.pipeline.frame(frame, &mut |h| sink.take(h));
    }

    /// Decides whether the file whose first frames were looked at goes on from the capture
    /// read so far: same link type, not earlier, and a frame of a TCP connection still open
    /// (not a new one). Either way its frames then go on through a pipeline.
    fn decide(&mut self, sink: &mut SessionSink<'_>) {
        let Some(peek) = self.peek.take() else {
            return;
        };
        let first = peek.first().filter(|f| Some(f.linktype) == self.linktype);
        let idle = FlowLimits::default().idle_secs;
        // A ring buffer's next file: it starts where the one before ended (not earlier: two
        // captures of the same traffic at two points overlap), and goes on with a connection
        // of it.
        let follows = first.is_some_and(|f| {
            self.last_ts
                .is_some_and(|t| f.ts >= t && f.ts.secs() <= t.secs() + idle)
        });
        let ring = follows && peek.iter().any(|f| self.pipeline.continues(&f.frame()));
        // A TAP's other file: the same time, the other direction of its connections.
        let during = first.is_some_and(|f| {
            self.last_ts
                .is_some_and(|t| f.ts.secs() <= t.secs() + JOIN_SLACK_SECS)
                && self
                    .first_ts
                    .is_some_and(|t| f.ts.secs() >= t.secs() - idle)
        });
        let tap = !ring && during && peek.iter().any(|f| self.pipeline.answers(&f.frame()));
        if ring || tap {
            self.join = Some(if tap { "tap" } else { "ring_buffer" });
            self.pipeline.new_part();
        } else {
            let files = self.files;
            self.end_capture(sink);
            sink.base += files;
            self.first_file = true;
        }
        if self.lead_in {
            // The lead-in is over: what follows is this partial's. The hosts seen in the
            // lead-in are the partial before's.
            self.lead_in = false;
            sink.keep = true;
            sink.after_lead_in = true;
            self.pipeline.identities = Identities::default();
            self.identities = Identities::default();
        }
        for secrets in std::mem::take(&mut self.peek_secrets) {
            self.keylog
                .borrow_mut()
                .add_text(&String::from_utf8_lossy(&secrets));
        }
        for f in &peek {
            self.frame(&f.frame(), sink);
        }
    }

    /// A file was read to its end.
    fn end_file(&mut self, summary: CaptureSummary, sink: &mut SessionSink<'_>) {
        self.decide(sink);
        self.pipeline.settle(&mut |h| sink.take(h));
        let now = self.pipeline.counts();
        self.records.push(FileRecord {
            summary,
            counts: now.since(&self.snapshot),
            joined: self.join.take().map(str::to_string),
        });
        self.snapshot = now;
        self.files += 1;
        self.first_file = false;
    }

    /// The next file begins: its first frames are looked at before they are read.
    fn begin_file(&mut self) {
        if !self.first_file {
            self.peek = Some(Vec::new());
        }
    }

    /// The capture read so far ends: its handshakes still open are decided, and what that
    /// counted goes to its last file (or, at the end of a partial analysis, to the tail).
    fn end_capture(&mut self, sink: &mut SessionSink<'_>) {
        // The next capture starts from the --keylog secrets only, as a capture read alone.
        self.keylog = Rc::new(RefCell::new(self.base_keylog.clone()));
        let pipeline = std::mem::replace(
            &mut self.pipeline,
            FramePipeline::new(&self.keylog, self.limits),
        );
        let snapshot = std::mem::take(&mut self.snapshot);
        if self.files == 0 {
            return;
        }
        let (counts, ids) = pipeline.end(&mut |h| sink.take(h));
        self.identities.merge(ids);
        let ended = counts.since(&snapshot);
        match (&mut sink.tail, self.records.last_mut()) {
            (Some(tail), _) if sink.keep => tail.counts = ended,
            (_, Some(last)) => last.counts.add(&ended),
            (_, None) => {}
        }
        self.files = 0;
        self.last_ts = None;
        self.first_ts = None;
        self.linktype = None;
    }
}

/// Files read as one capture: which (their indices in `captures[]`) and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Joined {
    /// The indices in `captures[]` of the files read as one capture.
    pub captures: Vec<usize>,
    /// `ring_buffer`: each file follows the one before in time, a connection going on from
    /// one to the next; `tap`: the files cover the same time, each with one direction of the
    /// same connections (the two ports of a network TAP), read one after the other.
    pub how: String,
}

/// How [`read_group`] reads: as `analyze` does (the default), or for a partial analysis.
#[derive(Debug, Default, Clone, Copy)]
struct Mode {
    /// The first source is a lead-in: the file before, read only to go on with its
    /// conversations; its handshakes, hosts and counters are left out.
    lead_in: bool,
    /// The handshakes still open at the end wait in [`CapturePart::tail`].
    tail: bool,
}

/// Reads captures `index..` given together into `part`: a file that goes on from the one
/// before (a ring buffer's next part: same link, later, a TCP connection of the previous file
/// still going on in its first frames) is read as the same capture, so that a handshake
/// crossing the boundary is one handshake; each file keeps its own entry in `captures[]`.
#[allow(clippy::too_many_arguments)]
fn read_group(
    index: usize,
    sources: Vec<(&str, Option<Box<dyn Read + Send>>)>,
    keylog: &KeyLog,
    opts: &Options,
    part: &mut CapturePart,
    trust: &TrustStore,
    on_session: &mut dyn FnMut(&Session, &CertStore, &TrustStore),
    mode: Mode,
) -> crate::Result<()> {
    let first = part.sessions.records.len();
    part.limits = opts.limits;
    let CapturePart {
        store,
        sessions,
        filtered_out,
        ..
    } = part;
    let mut sink = SessionSink {
        store,
        sessions,
        filtered_out,
        filter: &opts.filter,
        trust,
        on_session,
        base: index,
        keys: Chunked::default(),
        spill_error: None,
        keep: !mode.lead_in,
        after_lead_in: false,
        tail: None,
    };
    let capture_keylog = Rc::new(RefCell::new(keylog.clone()));
    let lanes = lanes_for(&sources, opts, mode);
    let joiner = Joiner {
        base_keylog: keylog,
        pipeline: FramePipeline::with_lanes(&capture_keylog, opts.limits, lanes),
        keylog: capture_keylog,
        peek_secrets: Vec::new(),
        limits: opts.limits,
        files: 0,
        snapshot: Counts::default(),
        join: None,
        lead_in: mode.lead_in,
        first_file: true,
        peek: None,
        last_ts: None,
        first_ts: None,
        linktype: None,
        records: Vec::new(),
        identities: Identities::default(),
    };
    // The reader calls back for frames and for secrets: both go through the joiner.
    let joiner = RefCell::new(joiner);
    for (path, input) in sources {
        let input = with_progress(path, input, opts)?;
        joiner.borrow_mut().begin_file();
        let on_frame = |frame: &Frame<'_>| joiner.borrow_mut().frame(frame, &mut sink);
        let on_secrets = |secrets: &[u8]| joiner.borrow_mut().secrets(secrets);
        let on_map = |map| joiner.borrow_mut().pipeline.mapped(map);
        let summary = match input {
            Some(input) => read_from(path, input, on_frame, on_secrets)?,
            None => read_capture_mapped(path, on_map, on_frame, on_secrets)?,
        };
        joiner.borrow_mut().end_file(summary, &mut sink);
    }
    let mut joiner = joiner.into_inner();
    if mode.tail {
        sink.tail = Some(Tail::default());
    }
    joiner.end_capture(&mut sink);
    let tail = sink.tail.take();
    if let Some(e) = sink.spill_error {
        return Err(e.into());
    }
    let keys = sink.keys;
    let mut records: Vec<u32> = (first as u32..(first + keys.len()) as u32).collect();
    records.sort_unstable_by_key(|&r| (keys.get(r as usize - first), r));
    drop(keys);
    for r in records {
        part.sessions.order.push(r);
    }
    let mut records = joiner.records;
    if mode.lead_in && !records.is_empty() {
        records.remove(0);
    }
    part.files.extend(records);
    part.identities.merge(joiner.identities);
    if let Some(tail) = tail {
        part.tail = tail;
    }
    Ok(())
}

/// How many threads follow the TCP connections of the captures `sources` (see
/// [`FramePipeline::with_lanes`]): one file, not standard input, not after a lead-in; as many
/// as `--threads` says, or by default every core (up to 4) for a file of [`LANES_FROM`] bytes
/// or more.
fn lanes_for(
    sources: &[(&str, Option<Box<dyn Read + Send>>)],
    opts: &Options,
    mode: Mode,
) -> usize {
    let [(path, None)] = sources else {
        return 1;
    };
    if mode.lead_in || *path == "-" {
        return 1;
    }
    match opts.threads {
        0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let big = std::fs::metadata(path).is_ok_and(|m| m.len() >= LANES_FROM);
            if big { cores.min(4) } else { 1 }
        }
        n => n,
    }
}

/// The input of a capture, wrapped to report progress when asked.
fn with_progress(
    path: &str,
    input: Option<Box<dyn Read + Send>>,
    opts: &Options,
) -> crate::Result<Option<Box<dyn Read + Send>>> {
    Ok(match (&opts.progress, input) {
        (Some(progress), input) => {
            let (inner, size) = match input {
                Some(i) => (i, None),
                None => {
                    let size = std::fs::metadata(path).ok().map(|m| m.len());
                    (crate::capture::open(path)?, size)
                }
            };
            Some(Box::new(ProgressReader {
                inner,
                progress: progress.clone(),
                path: path.to_string(),
                size,
                read: 0,
                told: 0,
            }) as Box<dyn Read + Send>)
        }
        (None, input) => input,
    })
}

/// Moves a handshake's certificates into the store, leaving their hashes.
fn intern(store: &mut CertStore, base: usize, hs: &mut Handshake) {
    let server = hs.server;
    let transport = hs.transport();
    // Where a certificate was seen: the file of its frame, its frame and stream there.
    let place = |hs: &Handshake, frame: u64| {
        let part = crate::model::frame_part(frame);
        (
            base + part as usize,
            hs.stream_in(part).unwrap_or(hs.stream),
            local_frame(frame),
        )
    };
    if let Some(frame) = hs.certificate.as_ref().map(|c| c.at.frame) {
        let (capture, stream, frame) = place(hs, frame);
        let seen = Sighting {
            transport,
            capture,
            stream,
            frame,
            server,
        };
        add_certs(store, hs.certificate.as_mut().expect("present"), seen);
    }
    if let Some(frame) = hs.client_certificate.as_ref().map(|c| c.at.frame) {
        let (capture, stream, frame) = place(hs, frame);
        let seen = Sighting {
            transport,
            capture,
            stream,
            frame,
            server: hs.client,
        };
        add_certs(
            store,
            hs.client_certificate.as_mut().expect("present"),
            seen,
        );
    }
}

/// Moves the certificates of `c` into `store` (seen `seen`), leaving their hashes. They may
/// have been hashed already ([`prehash`], on another thread).
fn add_certs(store: &mut CertStore, c: &mut crate::tls::handshake::CertificateMsg, seen: Sighting) {
    c.shas = if c.shas.len() == c.certs.len() {
        c.certs
            .iter()
            .zip(&c.shas)
            .map(|(d, sha)| store.add_hashed(d, *sha, Some(seen)))
            .collect()
    } else {
        c.certs.iter().map(|d| store.add(d, Some(seen))).collect()
    };
    c.certs = Vec::new();
}

/// Hashes the certificates `hs` carries, for [`intern`] (the part of it that can be done on
/// any thread, in any order).
fn prehash(hs: &mut Handshake, known: &mut KnownShas) {
    for c in [hs.certificate.as_mut(), hs.client_certificate.as_mut()]
        .into_iter()
        .flatten()
    {
        if c.shas.is_empty() {
            c.shas = c.certs.iter().map(|d| known.sha256(d)).collect();
        }
    }
}

/// The SHA-256 of the certificates a thread hashed last: a server sends the same few
/// certificates to every client, and finding one's bytes in a hash table costs a tenth of
/// hashing them again.
#[derive(Default)]
struct KnownShas {
    shas: crate::flow::FlowMap<Box<[u8]>, crate::pki::store::Sha>,
    bytes: usize,
}

impl KnownShas {
    /// The bytes of certificates kept at most (then they are forgotten and kept anew).
    const MAX_BYTES: usize = 4 << 20;

    fn sha256(&mut self, der: &[u8]) -> crate::pki::store::Sha {
        if let Some(sha) = self.shas.get(der) {
            return *sha;
        }
        let sha = crate::pki::store::sha256(der);
        if self.bytes + der.len() > Self::MAX_BYTES {
            self.shas.clear();
            self.bytes = 0;
        }
        self.bytes += der.len();
        self.shas.insert(der.into(), sha);
        sha
    }
}

/// Reads one capture through the pipeline (no key log but what the capture embeds, default
/// limits).
pub fn analyze_capture(path: &str) -> Result<(CaptureResult, Vec<Handshake>), CaptureError> {
    let mut handshakes = Vec::new();
    let (result, _) = analyze_capture_with(path, &Rc::default(), Limits::default(), &mut |h| {
        handshakes.push(h)
    })?;
    handshakes.sort_by_key(handshake_order);
    Ok((result, handshakes))
}

/// A handshake's place in report order: its capture, then the frame of its ClientHello (else
/// ServerHello, else first packet) there.
pub fn report_key(s: &Session) -> u64 {
    ((s.capture as u64) << PART_SHIFT) | local_frame(handshake_order(&s.hs))
}

/// Report order: by the frame of the ClientHello (else ServerHello, else first packet). A frame
/// carries one connection's packet, so handshakes of different connections never tie; the
/// handshakes of one connection keep the order they were decided in.
fn handshake_order(h: &Handshake) -> u64 {
    h.client_hellos
        .first()
        .map(|c| c.at.frame)
        .or_else(|| h.server_hellos.first().map(|s| s.at.frame))
        .unwrap_or(h.first_at.frame)
}

/// Reads one capture through the pipeline, decrypting TLS 1.3 handshakes with `keylog` (to
/// which the capture's own Decryption Secrets Blocks are added).
/// Handshakes go to `sink` as soon as they are decided (or at the end of the capture).
pub fn analyze_capture_with(
    path: &str,
    keylog: &Rc<RefCell<KeyLog>>,
    limits: Limits,
    sink: &mut dyn FnMut(Handshake),
) -> Result<(CaptureResult, Identities), CaptureError> {
    analyze_input(path, None, keylog, limits, sink)
}

/// The pipeline over one capture: the file at `path`, or `input` when given.
fn analyze_input(
    path: &str,
    input: Option<Box<dyn Read + Send>>,
    keylog: &Rc<RefCell<KeyLog>>,
    limits: Limits,
    sink: &mut dyn FnMut(Handshake),
) -> Result<(CaptureResult, Identities), CaptureError> {
    let mut pipeline = FramePipeline::new(keylog, limits);
    let on_frame = |frame: &Frame<'_>| pipeline.frame(frame, sink);
    let on_secrets = |secrets: &[u8]| {
        keylog
            .borrow_mut()
            .add_text(&String::from_utf8_lossy(secrets));
    };
    let summary = match input {
        Some(input) => read_from(path, input, on_frame, on_secrets)?,
        None => read_capture(path, on_frame, on_secrets)?,
    };
    Ok(pipeline.finish(summary, sink))
}

type TcpStage = Reassembler<TlsConn, Box<dyn FnMut(ConnInfo) -> TlsConn>>;

/// Handshakes decided while their TLS 1.2 connection is still watched for a renegotiation.
type Outbox = Rc<RefCell<Vec<Handshake>>>;

/// The TCP stage: the reassembler, its TLS handlers decrypting with `keylog`, and the outbox
/// where they put the handshakes decided before their connection ends.
fn tcp_stage(keylog: &Rc<RefCell<KeyLog>>, limits: Limits) -> (TcpStage, Outbox) {
    let conn_keys = keylog.clone();
    let max_hs = limits.max_handshake_bytes;
    let decided: Outbox = Rc::default();
    let outbox = decided.clone();
    let new_conn: Box<dyn FnMut(ConnInfo) -> TlsConn> = Box::new(move |info| {
        let mut conn = TlsConn::with_keylog(info, conn_keys.clone());
        conn.set_max_handshake(max_hs);
        conn.set_outbox(outbox.clone());
        conn
    });
    (Reassembler::with_limits(new_conn, limits.flows()), decided)
}

/// The TCP stage of a pipeline: on the reading thread, or in lanes on several.
enum Tcp {
    One {
        reasm: TcpStage,
        /// TLS 1.2 handshakes decided while their connection is still watched.
        decided: Outbox,
    },
    Lanes(sharded::Lanes),
}

/// The stages after the capture reader, one frame at a time: decode, IP defragmentation, TCP,
/// UDP and EAPOL conversations, TLS. Finished handshakes go to the caller's sink.
pub struct FramePipeline {
    tcp: Tcp,
    udp: UdpFlows,
    eapol: EapolFlows,
    defrag: Defragmenter,
    limits: Limits,
    other: u64,
    undecodable: u64,
    oversized: u64,
    frame_warnings: Vec<crate::capture::Warning>,
    identities: Identities,
    /// The part (file) of a joined capture being read, above [`PART_SHIFT`] in frame numbers.
    part: u32,
}

impl FramePipeline {
    /// The next file of a joined capture begins: its frames are numbered from 1 in it and its
    /// conversations from 0, as Wireshark does per file; the conversations go on.
    pub fn new_part(&mut self) {
        self.part += 1;
        match &mut self.tcp {
            Tcp::One { reasm, .. } => reasm.new_part(),
            Tcp::Lanes(_) => unreachable!("a capture read in lanes is one file"),
        }
        self.udp.new_part();
    }

    /// True when `frame` carries a TCP segment of the direction not seen yet of a connection
    /// being followed, acknowledging what the other direction sent (a TAP's other file).
    fn answers(&self, frame: &Frame<'_>) -> bool {
        match (decode(frame.linktype, frame.data), &self.tcp) {
            (Ok(Decoded::Tcp(seg)), Tcp::One { reasm, .. }) => reasm.answers(&seg),
            _ => false,
        }
    }

    /// True when `frame` carries a TCP segment that goes on with a connection being followed
    /// (same addresses and ports, no SYN, the sequence number where its bytes have come to).
    fn continues(&self, frame: &Frame<'_>) -> bool {
        match (decode(frame.linktype, frame.data), &self.tcp) {
            (Ok(Decoded::Tcp(seg)), Tcp::One { reasm, .. }) => reasm.continues(&seg),
            _ => false,
        }
    }

    /// TLS 1.3 handshakes are decrypted with `keylog`.
    pub fn new(keylog: &Rc<RefCell<KeyLog>>, limits: Limits) -> Self {
        let (reasm, decided) = tcp_stage(keylog, limits);
        Self::with_tcp(Tcp::One { reasm, decided }, limits)
    }

    /// As [`FramePipeline::new`], with the TCP connections followed by `lanes` threads (see
    /// `sharded`); for one capture file (not a joined one). The handshakes and the counters
    /// are the same as with one.
    pub fn with_lanes(keylog: &Rc<RefCell<KeyLog>>, limits: Limits, lanes: usize) -> Self {
        if lanes < 2 || !sharded::splittable(limits) {
            return Self::new(keylog, limits);
        }
        let lanes = sharded::Lanes::new(lanes, &keylog.borrow(), limits);
        Self::with_tcp(Tcp::Lanes(lanes), limits)
    }

    fn with_tcp(tcp: Tcp, limits: Limits) -> Self {
        FramePipeline {
            tcp,
            udp: UdpFlows::new(limits.flows(), limits.max_handshake_bytes),
            eapol: EapolFlows::new(limits.flows(), limits.max_handshake_bytes),
            defrag: Defragmenter::default(),
            limits,
            other: 0,
            undecodable: 0,
            oversized: 0,
            frame_warnings: Vec::new(),
            identities: Identities::default(),
            part: 0,
        }
    }

    /// One frame through the stages; handshakes it decides go to `sink`.
    pub fn frame(&mut self, frame: &Frame<'_>, sink: &mut dyn FnMut(Handshake)) {
        let at = At {
            frame: (u64::from(self.part) << PART_SHIFT) | local_frame(frame.number),
            ts: frame.ts,
        };
        let decoded = decode(frame.linktype, frame.data);
        let whole;
        let decoded = match decoded {
            Ok(Decoded::Fragment(f)) => match self.defrag.add(frame.ts, &f) {
                Some(w) => {
                    whole = w;
                    transport(whole.src, whole.dst, whole.ip_number, &whole.payload)
                }
                None => return,
            },
            other => other,
        };
        if let Ok(d) = &decoded {
            self.identities.observe(frame, d);
        }
        match decoded {
            Ok(Decoded::Tcp(seg)) => match &mut self.tcp {
                Tcp::One { reasm, decided } => {
                    reasm.process(at, &seg);
                    // A connection decided by this segment comes first, as it did when it
                    // ended there.
                    let decided = std::mem::take(&mut *decided.borrow_mut());
                    for h in decided.into_iter().chain(reasm.finished.drain(..)) {
                        emit(&mut self.oversized, sink, h);
                    }
                }
                Tcp::Lanes(lanes) => lanes.segment(at, &seg),
            },
            Ok(Decoded::Udp(d)) => {
                self.udp.process(at, &d);
                for h in self.udp.finished.drain(..) {
                    decided_here(&mut self.tcp, &mut self.oversized, sink, at, h);
                }
            }
            Ok(Decoded::Eapol(f)) => {
                self.eapol.process(at, &f);
                for h in self.eapol.finished.drain(..) {
                    decided_here(&mut self.tcp, &mut self.oversized, sink, at, h);
                }
            }
            Ok(Decoded::Other) | Ok(Decoded::Fragment(_)) => self.other += 1,
            Err(e) => {
                self.undecodable += 1;
                if self.frame_warnings.len() < MAX_FRAME_WARNINGS {
                    self.frame_warnings
                        .push(crate::capture::Warning::undecodable(frame.number, &e));
                }
            }
        }
        if let Tcp::Lanes(lanes) = &mut self.tcp {
            lanes.frame_read();
            for h in lanes.take_ready() {
                emit(&mut self.oversized, sink, h);
            }
        }
    }

    /// The capture file is read from its memory mapping: lanes, if any, read the payloads there.
    pub fn mapped(&mut self, map: crate::capture::Mapping) {
        if let Tcp::Lanes(lanes) = &mut self.tcp {
            lanes.mapped(map);
        }
    }

    /// Secrets of the capture (a Decryption Secrets Block), added to the key log here in the
    /// file: the lanes, if any, get them at the same place.
    pub fn secrets(&mut self, text: &str) {
        if let Tcp::Lanes(lanes) = &mut self.tcp {
            lanes.secrets(text);
        }
    }

    /// Waits for the lanes, if any, to follow every segment read so far: the handshakes that
    /// decided go to `sink` and [`FramePipeline::counts`] is exact.
    pub fn settle(&mut self, sink: &mut dyn FnMut(Handshake)) {
        if let Tcp::Lanes(lanes) = &mut self.tcp {
            lanes.settle();
            for h in lanes.take_ready() {
                emit(&mut self.oversized, sink, h);
            }
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        let (tcp, tcp_evicted) = match &self.tcp {
            Tcp::One { reasm, .. } => reasm.counts(),
            Tcp::Lanes(lanes) => lanes.counts(),
        };
        Counts {
            tcp_segments: tcp.segments,
            tcp_connections: tcp.connections,
            tcp_gaps: tcp.gaps,
            other_frames: self.other,
            undecodable_frames: self.undecodable,
            oversized_messages: self.oversized,
            ip_reassembled: self.defrag.reassembled,
            ip_fragments_dropped: self.defrag.dropped,
            evicted: [tcp_evicted, self.udp.evictions(), self.eapol.evictions()],
            frame_warnings: self.frame_warnings.clone(),
        }
    }

    /// Ends every conversation still open (the end of the capture): their handshakes go to
    /// `sink`. Returns the capture's result, `summary` with the counters and their warnings,
    /// and the hosts it saw.
    pub fn finish(
        self,
        summary: CaptureSummary,
        sink: &mut dyn FnMut(Handshake),
    ) -> (CaptureResult, Identities) {
        let limits = self.limits;
        let (counts, identities) = self.end(sink);
        (capture_result(summary, &counts, limits), identities)
    }

    /// As [`FramePipeline::finish`], with the counters as they are.
    pub fn end(self, sink: &mut dyn FnMut(Handshake)) -> (Counts, Identities) {
        let FramePipeline {
            tcp,
            udp,
            eapol,
            defrag,
            limits: _,
            other,
            undecodable,
            mut oversized,
            frame_warnings,
            identities,
            part: _,
        } = self;
        let (handshakes, stats, tcp_evicted) = match tcp {
            Tcp::One { reasm, decided } => {
                let (handshakes, stats, evicted) = reasm.finish();
                let decided = std::mem::take(&mut *decided.borrow_mut());
                (
                    decided.into_iter().chain(handshakes).collect(),
                    stats,
                    evicted,
                )
            }
            Tcp::Lanes(lanes) => lanes.finish(),
        };
        let (datagram_handshakes, udp_evicted) = udp.finish();
        let (eapol_handshakes, eapol_evicted) = eapol.finish();
        for h in handshakes
            .into_iter()
            .chain(datagram_handshakes)
            .chain(eapol_handshakes)
        {
            emit(&mut oversized, sink, h);
        }
        let counts = Counts {
            tcp_segments: stats.segments,
            tcp_connections: stats.connections,
            tcp_gaps: stats.gaps,
            other_frames: other,
            undecodable_frames: undecodable,
            oversized_messages: oversized,
            ip_reassembled: defrag.reassembled,
            ip_fragments_dropped: defrag.dropped + defrag.pending_count() as u64,
            evicted: [tcp_evicted, udp_evicted, eapol_evicted],
            frame_warnings,
        };
        (counts, identities)
    }
}

/// A capture's counters as the pipeline keeps them. Counted per file of a joined capture
/// (what reading the file added) and summed, they are the capture's: `capture_result` makes
/// its [`CaptureResult`] of them.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Counts {
    tcp_segments: u64,
    tcp_connections: u64,
    tcp_gaps: u64,
    other_frames: u64,
    undecodable_frames: u64,
    oversized_messages: u64,
    ip_reassembled: u64,
    ip_fragments_dropped: u64,
    /// TCP, UDP and EAPOL conversations evicted or forgotten.
    evicted: [FlowEvictions; 3],
    /// The first undecodable frames (at most [`MAX_FRAME_WARNINGS`] in a capture).
    frame_warnings: Vec<Warning>,
}

impl Counts {
    /// What was counted since `before` (an earlier value of the same counters).
    pub fn since(&self, before: &Counts) -> Counts {
        Counts {
            tcp_segments: self.tcp_segments - before.tcp_segments,
            tcp_connections: self.tcp_connections - before.tcp_connections,
            tcp_gaps: self.tcp_gaps - before.tcp_gaps,
            other_frames: self.other_frames - before.other_frames,
            undecodable_frames: self.undecodable_frames - before.undecodable_frames,
            oversized_messages: self.oversized_messages - before.oversized_messages,
            ip_reassembled: self.ip_reassembled - before.ip_reassembled,
            ip_fragments_dropped: self.ip_fragments_dropped - before.ip_fragments_dropped,
            evicted: std::array::from_fn(|i| self.evicted[i].since(before.evicted[i])),
            frame_warnings: self.frame_warnings
                [before.frame_warnings.len().min(self.frame_warnings.len())..]
                .to_vec(),
        }
    }

    /// Adds what `other` counted after these.
    pub fn add(&mut self, other: &Counts) {
        self.tcp_segments += other.tcp_segments;
        self.tcp_connections += other.tcp_connections;
        self.tcp_gaps += other.tcp_gaps;
        self.other_frames += other.other_frames;
        self.undecodable_frames += other.undecodable_frames;
        self.oversized_messages += other.oversized_messages;
        self.ip_reassembled += other.ip_reassembled;
        self.ip_fragments_dropped += other.ip_fragments_dropped;
        for (mine, theirs) in self.evicted.iter_mut().zip(other.evicted) {
            mine.add(theirs);
        }
        let room = MAX_FRAME_WARNINGS.saturating_sub(self.frame_warnings.len());
        self.frame_warnings
            .extend(other.frame_warnings.iter().take(room).cloned());
    }
}

/// A capture's result: the file's own summary (its first file's, for a joined capture) with
/// the warnings its counters call for, and the counters.
fn capture_result(mut summary: CaptureSummary, c: &Counts, limits: Limits) -> CaptureResult {
    for (what, ev) in ["TCP", "UDP", "EAPOL"].into_iter().zip(c.evicted) {
        if ev.full > 0 {
            summary.warnings.push(Warning::flow_table_full(
                what,
                limits.max_flows,
                ev.first_full_frame.unwrap_or(0),
                ev.full,
            ));
        }
        if ev.idle > 0 {
            summary.warnings.push(Warning::idle_evicted(
                what,
                ev.idle,
                FlowLimits::default().idle_secs,
            ));
        }
        if ev.forgotten > 0 {
            summary
                .warnings
                .push(Warning::forgotten(what, ev.forgotten));
        }
    }
    if c.oversized_messages > 0 {
        summary.warnings.push(Warning::oversized_messages(
            c.oversized_messages,
            limits.max_handshake_bytes,
        ));
    }
    summary.warnings.extend(c.frame_warnings.iter().cloned());
    if c.undecodable_frames > c.frame_warnings.len() as u64 {
        summary.warnings.push(Warning::more_undecodable(
            c.undecodable_frames - c.frame_warnings.len() as u64,
        ));
    }
    CaptureResult {
        summary,
        tcp_segments: c.tcp_segments,
        tcp_connections: c.tcp_connections,
        tcp_gaps: c.tcp_gaps,
        other_frames: c.other_frames,
        undecodable_frames: c.undecodable_frames,
        flows_evicted: c.evicted.iter().map(|e| e.full + e.idle).sum(),
        oversized_messages: c.oversized_messages,
        ip_reassembled: c.ip_reassembled,
        ip_fragments_dropped: c.ip_fragments_dropped,
        joined: None,
    }
}

/// One file as read: its summary, what reading it added to its capture's counters, and how it
/// was joined to the file before (`ring_buffer`, `tap`), if it was.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileRecord {
    /// What the file itself told.
    pub summary: CaptureSummary,
    /// What reading it (and, for a capture's last file, ending the capture) counted.
    pub counts: Counts,
    /// Read as the next part of the capture of the file before: how.
    pub joined: Option<String>,
}

/// The results of files given together, `base` the index of the first in `captures[]`: each
/// run of joined files is one capture, its counters summed on its first file.
pub fn assemble(files: Vec<FileRecord>, base: usize, limits: Limits) -> Vec<CaptureResult> {
    let mut results = Vec::with_capacity(files.len());
    let mut files = files.into_iter().peekable();
    while let Some(first) = files.next() {
        let start = base + results.len();
        let mut total = first.counts;
        let mut rest = Vec::new();
        let mut tap = false;
        while let Some(next) = files.next_if(|f| f.joined.is_some()) {
            tap |= next.joined.as_deref() == Some("tap");
            total.add(&next.counts);
            rest.push(next.summary);
        }
        let mut result = capture_result(first.summary, &total, limits);
        if rest.is_empty() {
            results.push(result);
            continue;
        }
        let joined = Joined {
            captures: (start..start + rest.len() + 1).collect(),
            how: if tap { "tap" } else { "ring_buffer" }.to_string(),
        };
        result.joined = Some(joined.clone());
        results.push(result);
        for summary in rest {
            let mut r = CaptureResult::empty(summary);
            r.joined = Some(joined.clone());
            results.push(r);
        }
    }
    results
}

/// Hands a finished handshake on, counting the messages it skipped for their size.
/// A handshake decided on the reading thread (UDP, EAPOL) at `at`: to `sink`, or, with lanes,
/// in its place among theirs.
fn decided_here(
    tcp: &mut Tcp,
    oversized: &mut u64,
    sink: &mut dyn FnMut(Handshake),
    at: At,
    h: Handshake,
) {
    match tcp {
        Tcp::One { .. } => emit(oversized, sink, h),
        Tcp::Lanes(lanes) => lanes.local(at.frame, h),
    }
}

fn emit(oversized: &mut u64, sink: &mut dyn FnMut(Handshake), h: Handshake) {
    *oversized += h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Oversized { .. }))
        .count() as u64;
    sink(h)
}

#[cfg(test)]
mod tests {
    use super::KnownShas;
    use crate::pki::store::sha256;

    #[test]
    fn known_shas_are_the_certificates_own_and_stay_bounded() {
        let mut known = KnownShas::default();
        let a = vec![0x30u8; 1500];
        let b = vec![0x31u8; 1500];
        assert_eq!(known.sha256(&a), sha256(&a));
        assert_eq!(known.sha256(&b), sha256(&b));
        assert_eq!(known.sha256(&a), sha256(&a), "found again");
        assert_eq!(known.shas.len(), 2);
        // Past the bound the table starts again rather than grow.
        let big = vec![0x32u8; KnownShas::MAX_BYTES - 1000];
        assert_eq!(known.sha256(&big), sha256(&big));
        assert_eq!(known.shas.len(), 1);
        assert!(known.bytes <= KnownShas::MAX_BYTES);
    }
}
