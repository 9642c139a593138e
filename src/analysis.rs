//! The pipeline: capture files in, handshakes with their certificates out.
//!
//! frames (capture) → segments (decode) → stream bytes (reassembly) → TLS events (tls) →
//! handshakes (handshake). Certificates leave each handshake as soon as it is finished and are
//! kept once per distinct certificate in the [`CertStore`], so memory grows with the number of
//! live handshakes and distinct certificates, not with the capture.

use crate::model::At;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use crate::capture::{CaptureError, CaptureSummary, Frame, read_capture, read_from};
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
    /// TLS key logs (`--keylog`, `SSLKEYLOGFILE`) to decrypt TLS 1.3 handshakes.
    pub keylog: Vec<PathBuf>,
    pub limits: Limits,
    /// Which handshakes to report (`--client`, `--server`, `--sni`).
    pub filter: crate::filter::Filter,
    /// Told how far each capture has been read (for a progress bar).
    pub progress: Option<Progress>,
}

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
#[derive(Debug, Clone, Serialize)]
pub struct CaptureResult {
    #[serde(flatten)]
    pub summary: CaptureSummary,
    pub tcp_segments: u64,
    pub tcp_connections: u64,
    pub tcp_gaps: u64,
    pub other_frames: u64,
    pub undecodable_frames: u64,
    /// Conversations (TCP and UDP) chainsniff stopped following before they ended: the flow
    /// table was full (`--max-flows`) or they were idle for 10 minutes of capture time.
    pub flows_evicted: u64,
    /// Handshake messages skipped for being larger than `--max-handshake-bytes`.
    pub oversized_messages: u64,
    /// IP packets reassembled from fragments, and fragmented packets given up (incomplete,
    /// timed out, over the limits).
    pub ip_reassembled: u64,
    pub ip_fragments_dropped: u64,
}

/// A finished handshake and the capture it came from.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Session {
    pub capture: usize,
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
    pub fn len(&self) -> usize {
        self.order.len()
    }

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
        self.variants = self
            .order
            .iter()
            .map(|record| match self.chains.get(record as usize) {
                (_, NO_CHAIN) => NO_CHAIN,
                (server, chain) => *variants.entry((server, chain)).or_insert_with(|| {
                    let n = per_server.entry(server).or_default();
                    *n += 1;
                    *n - 1
                }),
            })
            .collect();
        self.chains = Chunked::default();
        self.server_ids = HashMap::new();
        self.chain_ids = HashMap::new();
    }
}

pub struct Analysis {
    pub captures: Vec<CaptureResult>,
    pub sessions: Sessions,
    /// Every certificate sent in any capture.
    pub store: CertStore,
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
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if paths.len() < 2 || workers < 2 {
        return analyze_streaming(paths, opts, |_, _, _| {});
    }
    let trust = trust_store(opts)?;
    let keylog = base_keylog(opts)?;
    // A round of as many captures as cores at a time, each into its own part on its own
    // thread, merged in capture order before the next round: at most one part per core waits
    // (each holds a temporary file and buffers), however many files there are.
    let mut all = CapturePart::default();
    for (round, chunk) in paths.chunks(workers).enumerate() {
        let parts: Vec<crate::Result<CapturePart>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(k, path)| {
                    let (keylog, trust) = (&keylog, &trust);
                    scope.spawn(move || {
                        let mut part = CapturePart::default();
                        let index = round * workers + k;
                        read_one(
                            index,
                            path,
                            None,
                            keylog,
                            opts,
                            &mut part,
                            trust,
                            &mut |_, _, _| {},
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
    Ok(all.into_analysis(trust))
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

/// What reading some captures built: the handshakes, the certificates, the hosts.
#[derive(Default)]
struct CapturePart {
    captures: Vec<CaptureResult>,
    store: CertStore,
    sessions: Sessions,
    identities: Identities,
    filtered_out: usize,
}

impl CapturePart {
    fn into_analysis(mut self, trust: TrustStore) -> Analysis {
        self.sessions.seal();
        Analysis {
            captures: self.captures,
            sessions: self.sessions,
            store: self.store,
            trust,
            identities: self.identities,
            filtered_out: self.filtered_out,
        }
    }

    /// Appends `other`, the part of the captures that come after this one's.
    fn absorb(&mut self, other: CapturePart) -> std::io::Result<()> {
        self.captures.extend(other.captures);
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
    for (index, (path, input)) in sources.into_iter().enumerate() {
        read_one(
            index,
            path,
            input,
            &keylog,
            opts,
            &mut all,
            &trust,
            &mut on_session,
        )?;
    }
    Ok(all.into_analysis(trust))
}

/// Reads capture `index` into `part`: its result, its certificates into the store, the
/// handshakes the filter keeps into the sessions, its hosts. TLS 1.3 is decrypted with the `--keylog` secrets and the
/// capture's own Decryption Secrets Blocks.
#[allow(clippy::too_many_arguments)]
fn read_one(
    index: usize,
    path: &str,
    input: Option<Box<dyn Read + Send>>,
    keylog: &KeyLog,
    opts: &Options,
    part: &mut CapturePart,
    trust: &TrustStore,
    on_session: &mut dyn FnMut(&Session, &CertStore, &TrustStore),
) -> crate::Result<()> {
    let keylog = Rc::new(RefCell::new(keylog.clone()));
    // The frame each handshake is ordered by, in record order from `first`.
    let first = part.sessions.records.len();
    let mut frames: Chunked<u64> = Chunked::default();
    let mut spill_error = None;
    let input = match (&opts.progress, input) {
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
    };
    let CapturePart {
        store,
        sessions,
        filtered_out,
        ..
    } = part;
    let (result, ids) = analyze_input(path, input, &keylog, opts.limits, &mut |mut hs| {
        // Certificates leave each handshake as soon as it is finished: memory holds each
        // distinct certificate once, not one copy per handshake.
        intern(store, index, &mut hs);
        if !opts.filter.matches(hs.client, hs.server, hs.sni()) {
            *filtered_out += 1;
            return;
        }
        let session = Session { capture: index, hs };
        on_session(&session, store, trust);
        frames.push(handshake_order(&session.hs));
        if let Err(e) = sessions.push(&session) {
            spill_error.get_or_insert(e);
        }
    })?;
    if let Some(e) = spill_error {
        return Err(e.into());
    }
    let mut records: Vec<u32> = (first as u32..(first + frames.len()) as u32).collect();
    records.sort_unstable_by_key(|&r| (frames.get(r as usize - first), r));
    drop(frames);
    for r in records {
        sessions.order.push(r);
    }
    part.captures.push(result);
    part.identities.merge(ids);
    Ok(())
}

/// Moves a handshake's certificates into the store, leaving their hashes.
fn intern(store: &mut CertStore, capture: usize, hs: &mut Handshake) {
    let server = hs.server;
    let stream = hs.stream;
    let transport = hs.transport();
    if let Some(c) = hs.certificate.as_mut() {
        let seen = Sighting {
            transport,
            capture,
            stream,
            frame: c.at.frame,
            server,
        };
        c.shas = c.certs.iter().map(|d| store.add(d, Some(seen))).collect();
        c.certs = Vec::new();
    }
    if let Some(c) = hs.client_certificate.as_mut() {
        let seen = Sighting {
            transport,
            capture,
            stream,
            frame: c.at.frame,
            server: hs.client,
        };
        c.shas = c.certs.iter().map(|d| store.add(d, Some(seen))).collect();
        c.certs = Vec::new();
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

/// The stages after the capture reader, one frame at a time: decode, IP defragmentation, TCP,
/// UDP and EAPOL conversations, TLS. Finished handshakes go to the caller's sink.
pub struct FramePipeline {
    reasm: TcpStage,
    udp: UdpFlows,
    eapol: EapolFlows,
    defrag: Defragmenter,
    limits: Limits,
    other: u64,
    undecodable: u64,
    oversized: u64,
    frame_warnings: Vec<String>,
    identities: Identities,
}

impl FramePipeline {
    /// TLS 1.3 handshakes are decrypted with `keylog`.
    pub fn new(keylog: &Rc<RefCell<KeyLog>>, limits: Limits) -> Self {
        let conn_keys = keylog.clone();
        let max_hs = limits.max_handshake_bytes;
        let new_conn: Box<dyn FnMut(ConnInfo) -> TlsConn> = Box::new(move |info| {
            let mut conn = TlsConn::with_keylog(info, conn_keys.clone());
            conn.set_max_handshake(max_hs);
            conn
        });
        FramePipeline {
            reasm: Reassembler::with_limits(new_conn, limits.flows()),
            udp: UdpFlows::new(limits.flows(), max_hs),
            eapol: EapolFlows::new(limits.flows(), max_hs),
            defrag: Defragmenter::default(),
            limits,
            other: 0,
            undecodable: 0,
            oversized: 0,
            frame_warnings: Vec::new(),
            identities: Identities::default(),
        }
    }

    /// One frame through the stages; handshakes it decides go to `sink`.
    pub fn frame(&mut self, frame: &Frame<'_>, sink: &mut dyn FnMut(Handshake)) {
        let at = At {
            frame: frame.number,
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
            Ok(Decoded::Tcp(seg)) => {
                self.reasm.process(at, &seg);
                for h in self.reasm.finished.drain(..) {
                    emit(&mut self.oversized, sink, h);
                }
            }
            Ok(Decoded::Udp(d)) => {
                self.udp.process(at, &d);
                for h in self.udp.finished.drain(..) {
                    emit(&mut self.oversized, sink, h);
                }
            }
            Ok(Decoded::Eapol(f)) => {
                self.eapol.process(at, &f);
                for h in self.eapol.finished.drain(..) {
                    emit(&mut self.oversized, sink, h);
                }
            }
            Ok(Decoded::Other) | Ok(Decoded::Fragment(_)) => self.other += 1,
            Err(e) => {
                self.undecodable += 1;
                if self.frame_warnings.len() < MAX_FRAME_WARNINGS {
                    self.frame_warnings
                        .push(format!("frame {}: {e}; skipped", frame.number));
                }
            }
        }
    }

    /// The end of the capture: the handshakes still open go to `sink`, and the counters and
    /// warnings join the reader's `summary`. Also returns what the capture told about hosts.
    pub fn finish(
        self,
        mut summary: CaptureSummary,
        sink: &mut dyn FnMut(Handshake),
    ) -> (CaptureResult, Identities) {
        let FramePipeline {
            reasm,
            udp,
            eapol,
            defrag,
            limits,
            other,
            undecodable,
            mut oversized,
            mut frame_warnings,
            identities,
        } = self;
        let (handshakes, stats, tcp_evicted) = reasm.finish();
        let (datagram_handshakes, udp_evicted) = udp.finish();
        let (eapol_handshakes, eapol_evicted) = eapol.finish();
        for h in handshakes
            .into_iter()
            .chain(datagram_handshakes)
            .chain(eapol_handshakes)
        {
            emit(&mut oversized, sink, h);
        }
        for (what, ev) in [
            ("TCP", tcp_evicted),
            ("UDP", udp_evicted),
            ("EAPOL", eapol_evicted),
        ] {
            if ev.full > 0 {
                summary.warnings.push(format!(
                    "more than --max-flows {} {what} conversations were open at once from frame {} on: the {} least recently active were evicted and reported as they stood (raise --max-flows)",
                    limits.max_flows,
                    ev.first_full_frame.unwrap_or(0),
                    ev.full
                ));
            }
            if ev.idle > 0 {
                summary.warnings.push(format!(
                    "{} idle for more than {} s of capture time {} evicted and reported as {} stood",
                    crate::render::counted(ev.idle, &format!("{what} conversation")),
                    FlowLimits::default().idle_secs,
                    if ev.idle == 1 { "was" } else { "were" },
                    if ev.idle == 1 { "it" } else { "they" }
                ));
            }
            if ev.forgotten > 0 {
                summary.warnings.push(format!(
                    "{} {} forgotten to bound memory: a later packet of {} would get a new stream index, unlike Wireshark",
                    crate::render::counted(ev.forgotten, &format!("ended {what} conversation")),
                    if ev.forgotten == 1 { "was" } else { "were" },
                    if ev.forgotten == 1 { "it" } else { "one of them" }
                ));
            }
        }
        if oversized > 0 {
            summary.warnings.push(format!(
                "{oversized} handshake messages were larger than --max-handshake-bytes {} and skipped (see the handshakes' notes)",
                limits.max_handshake_bytes
            ));
        }
        if undecodable > frame_warnings.len() as u64 {
            frame_warnings.push(format!(
                "{} more undecodable frames not listed",
                undecodable - frame_warnings.len() as u64
            ));
        }
        summary.warnings.extend(frame_warnings);
        let result = CaptureResult {
            summary,
            tcp_segments: stats.segments,
            tcp_connections: stats.connections,
            tcp_gaps: stats.gaps,
            other_frames: other,
            undecodable_frames: undecodable,
            flows_evicted: tcp_evicted.full
                + tcp_evicted.idle
                + udp_evicted.full
                + udp_evicted.idle
                + eapol_evicted.full
                + eapol_evicted.idle,
            oversized_messages: oversized,
            ip_reassembled: defrag.reassembled,
            ip_fragments_dropped: defrag.dropped + defrag.pending_count() as u64,
        };
        (result, identities)
    }
}

/// Hands a finished handshake on, counting the messages it skipped for their size.
fn emit(oversized: &mut u64, sink: &mut dyn FnMut(Handshake), h: Handshake) {
    *oversized += h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Oversized { .. }))
        .count() as u64;
    sink(h)
}
