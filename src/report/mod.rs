//! Stage 6: diagnoses to the report model.
//!
//! One [`Report`] holds everything; the text, Markdown and JSON printers in [`crate::render`]
//! are views of it. The JSON form is the report itself (`"schema": "chainsniff/1"`), documented
//! in docs/report.md.

use crate::model::Endpoint;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, CaptureResult};
use std::sync::Arc;

use crate::json::{Compact, PrettyAt};
use crate::judge::Reaction;
use crate::pki::{CertSummary, Evidence, Sha};
use crate::pki::{
    Checker, Finding, FindingKind, PathLink, Severity, Status, Verdict, inconsistent_message,
};
use crate::spill::Spill;
use crate::tls::handshake::{Decryption, version_name};

mod causes;
mod streamed;
pub use causes::{
    CaptureCount, Cause, CauseServer, ClientKind, FrameRef, MAX_HEADLINES, more_causes,
};
use causes::{Causes, NotJudged, ServerFacts};
pub use streamed::Streamed;

pub const SCHEMA: &str = "chainsniff/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandshakeReport {
    /// Index in `handshakes[]`.
    pub id: usize,
    /// Index in `captures[]`.
    pub capture: usize,
    /// Wireshark's `tcp.stream`, or `udp.stream` for DTLS and QUIC.
    pub stream: u64,
    /// "tcp" or "udp": which of Wireshark's stream indices `stream` is.
    pub transport: Cow<'static, str>,
    /// "tls", "dtls" or "quic".
    pub protocol: crate::model::Protocol,
    pub client: Endpoint,
    pub server: Endpoint,
    pub sni: Option<String>,
    /// The plaintext protocol that upgraded to TLS (`smtp-starttls`, `imap-starttls`, ...);
    /// omitted when TLS started with the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Cow<'static, str>>,
    /// EAP (802.1X): the supplicant's MAC, from the EAPOL source or the RADIUS
    /// Calling-Station-Id; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mac: Option<String>,
    /// EAPOL: the authenticator's MAC; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_mac: Option<String>,
    /// EAP: the identity the supplicant gave (EAP Response/Identity, else RADIUS User-Name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eap_identity: Option<String>,
    /// Negotiated version ("TLS 1.2"), from the ServerHello.
    pub version: Option<String>,
    /// Versions the client offered (supported_versions, else its legacy version).
    pub offered_versions: Vec<String>,
    pub alpn: Vec<String>,
    pub cipher_suite: Option<String>,
    /// The Wireshark display filter that shows this connection (`tcp.stream == 17`).
    pub filter: String,
    /// JA3 of the (first) ClientHello.
    pub ja3: Option<String>,
    /// JA4 of the (first) ClientHello.
    pub ja4: Option<String>,
    pub client_hello_frame: Option<u64>,
    /// Frames of further ClientHellos (after a HelloRetryRequest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_client_hello_frames: Vec<u64>,
    pub client_hello_time: Option<String>,
    pub server_hello_frame: Option<u64>,
    pub hello_retry_request: bool,
    pub resumed: bool,
    pub certificate_frame: Option<u64>,
    pub certificate_time: Option<String>,
    pub certificate_status_frame: Option<u64>,
    pub server_hello_done_frame: Option<u64>,
    /// TLS 1.3 decrypted with the key log: the CertificateVerify's frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_verify_frame: Option<u64>,
    /// TLS 1.3: whether the handshake was decrypted with the key log (also a TLS 1.2
    /// renegotiation).
    pub decrypted: bool,
    /// A TLS 1.2 renegotiation (a handshake of its own on the stream): the frame of its first
    /// record (omitted otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renegotiation_frame: Option<u64>,
    /// TLS 1.3: the extensions sent with each certificate (`status_request` = stapled OCSP,
    /// `signed_certificate_timestamp`), in the order of `certificates` (omitted when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_extensions: Vec<Vec<String>>,
    /// The server's certificates, in the order sent.
    pub certificates: Vec<Arc<CertSummary>>,
    /// Label of this chain among the server's variants ("A", "B", ...).
    pub chain_variant: Option<String>,
    /// The client's certificates (client authentication), in the order sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_certificates: Vec<Arc<CertSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_frame: Option<u64>,
    pub status: Status,
    /// What a strict client that trusts exactly the anchors used here decides about the chain
    /// as sent (`not_judged` when no chain was seen).
    pub verdict: Verdict,
    pub path: Vec<PathLink>,
    pub findings: Vec<Finding>,
    pub client_reaction: Reaction,
    /// A joined capture (a ring buffer's files, a TAP's two): the frame fields whose frame is
    /// in another file than `capture`, with that file's index in `captures[]`
    /// (`certificate_frame`, `client_reaction`, ...). Frame numbers are always Wireshark's in
    /// their own file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub frame_captures: BTreeMap<Cow<'static, str>, usize>,
    /// The other files of a joined capture the connection goes on in: its stream index,
    /// first frame of this handshake and display filter there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continued: Vec<Continued>,
    /// Notes on the capture of this handshake (gaps, malformed records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `--format jsonl` only: the final report may judge this handshake differently, because a
    /// certificate seen later in the capture can still explain its chain (see docs/report.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

/// Where a handshake of a joined capture goes on: another file, and the connection there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Continued {
    pub capture: usize,
    pub stream: u64,
    /// The first frame of this handshake's messages in that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    pub filter: String,
}

impl HandshakeReport {
    /// The capture, stream and filter of the Certificate's frame (another file than the
    /// handshake's when a joined capture's boundary falls inside the handshake).
    pub fn certificate_place(&self) -> (usize, u64, &str) {
        match self.frame_captures.get("certificate_frame") {
            Some(c) => match self.continued.iter().find(|k| k.capture == *c) {
                Some(k) => (k.capture, k.stream, &k.filter),
                None => (self.capture, self.stream, &self.filter),
            },
            None => (self.capture, self.stream, &self.filter),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantClient {
    pub handshake: usize,
    pub client: Endpoint,
    /// "tcp" or "udp": which Wireshark stream index `stream` is.
    pub transport: Cow<'static, str>,
    pub stream: u64,
    pub client_hello_frame: Option<u64>,
    pub certificate_frame: Option<u64>,
    /// Negotiated version, from the ServerHello.
    pub version: Option<String>,
    pub reaction: Reaction,
}

#[derive(Debug, Serialize)]
pub struct ChainVariant {
    /// "A", "B", ...: in the order first seen.
    pub id: String,
    /// SHA-256 of each certificate, in the order sent.
    pub certificates: Vec<String>,
    pub subjects: Vec<String>,
    pub status: Status,
    /// The verdict on the chain (the same for every handshake that got it).
    pub verdict: Verdict,
    /// Findings on the chain itself (a client's own rejection is on its handshake).
    pub findings: Vec<Finding>,
    pub path: Vec<PathLink>,
    pub clients: VariantClients,
}

/// The clients of a chain variant, one per handshake, kept in a [`Spill`] shared by every
/// variant of the report.
#[derive(Serialize)]
#[serde(transparent)]
pub struct VariantClients {
    #[serde(serialize_with = "serialize_clients")]
    list: (Arc<Spill<VariantClient, Compact>>, Vec<u32>),
}

impl std::fmt::Debug for VariantClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn serialize_clients<S: serde::Serializer>(
    list: &(Arc<Spill<VariantClient, Compact>>, Vec<u32>),
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.collect_seq(list.1.iter().map(|&i| list.0.read(i as usize)))
}

impl VariantClients {
    pub fn len(&self) -> usize {
        self.list.1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.1.is_empty()
    }

    /// The `i`-th client, in handshake order.
    pub fn get(&self, i: usize) -> VariantClient {
        self.list.0.read(self.list.1[i] as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = VariantClient> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl Default for VariantClients {
    fn default() -> Self {
        VariantClients {
            list: (Arc::new(Spill::default()), Vec::new()),
        }
    }
}

impl<'a> IntoIterator for &'a VariantClients {
    type Item = VariantClient;
    type IntoIter = Box<dyn Iterator<Item = VariantClient> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Every client, by address, kept in a [`Spill`] (which serializes as the list), with
/// whether each got a chain with an error.
#[derive(Debug, Default, Serialize)]
#[serde(transparent)]
pub struct ClientList {
    records: Spill<ClientReport, Compact>,
    #[serde(skip)]
    ips: Vec<std::net::IpAddr>,
    #[serde(skip)]
    got_error: Vec<bool>,
}

impl ClientList {
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// The `i`-th client (by address).
    pub fn get(&self, i: usize) -> ClientReport {
        self.records.read(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = ClientReport> + '_ {
        self.records.iter()
    }

    /// Where the client at `ip` is in the list.
    pub fn position(&self, ip: std::net::IpAddr) -> Option<usize> {
        self.ips.binary_search(&ip).ok()
    }

    /// Whether the `i`-th client got a chain with an error finding.
    pub fn got_error(&self, i: usize) -> bool {
        self.got_error[i]
    }

    fn push(&mut self, c: &ClientReport, got_error: bool) -> std::io::Result<()> {
        self.ips.push(c.ip);
        self.got_error.push(got_error);
        self.records.push(c)
    }
}

/// Every handshake's report, in order, kept in a [`Spill`] as the JSON that the report prints
/// (so that `--format json` copies it out), with the worst severity of each handshake's
/// findings at hand.
#[derive(Debug, Default, Serialize)]
#[serde(transparent)]
pub struct HandshakeList {
    records: Spill<HandshakeReport, PrettyAt<2>>,
    #[serde(skip)]
    worst: Vec<Option<Severity>>,
}

impl HandshakeList {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The handshake with this id.
    pub fn get(&self, id: usize) -> HandshakeReport {
        self.records.read(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = HandshakeReport> + '_ {
        self.records.iter()
    }

    /// Whether handshake `id` has a finding of severity error.
    pub fn has_error(&self, id: usize) -> bool {
        self.worst[id] == Some(Severity::Error)
    }

    /// The JSON of handshake `id`, as the report prints it inside `handshakes`.
    pub fn json(&self, id: usize) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        self.records.bytes(id)
    }

    /// Adds a handshake's JSON (as [`PrettyAt<2>`] writes it) and the worst severity of its
    /// findings.
    fn push_encoded(&mut self, json: &[u8], worst: Option<Severity>) -> std::io::Result<()> {
        self.worst.push(worst);
        self.records.push_encoded(json)
    }
}

#[derive(Debug, Serialize)]
pub struct ServerReport {
    pub server: Endpoint,
    /// MAC, vendor and DNS names of the server's address, as far as the capture tells.
    #[serde(flatten)]
    pub identity: crate::identity::HostIdentity,
    pub sni: Option<String>,
    pub handshakes: usize,
    pub variants: Vec<ChainVariant>,
    /// Handshakes without a visible chain (TLS 1.3, resumed, truncated), by status.
    pub without_chain: BTreeMap<String, Vec<usize>>,
    /// Server-level findings (`inconsistent_chains`).
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientReport {
    pub ip: std::net::IpAddr,
    /// MAC, vendor, DHCP request and DNS names, as far as the capture tells.
    #[serde(flatten)]
    pub identity: crate::identity::HostIdentity,
    /// The distinct JA3 / JA4 fingerprints of its ClientHellos, first seen first.
    pub ja3: Vec<String>,
    pub ja4: Vec<String>,
    pub handshakes: Vec<usize>,
    pub statuses: BTreeMap<String, usize>,
    pub servers: Vec<Endpoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub captures: usize,
    pub frames: u64,
    pub handshakes: usize,
    pub servers: usize,
    pub clients: usize,
    pub by_status: BTreeMap<String, usize>,
    /// Handshakes by verdict (`valid`, `invalid`, `not_judged`).
    pub by_verdict: BTreeMap<String, usize>,
    /// Handshakes whose chain could not be judged although a server should have sent one
    /// (truncated, encrypted without keys); a headline says why and what to do.
    pub not_judged: usize,
    pub errors: usize,
    pub warnings: usize,
    /// One line per root cause (the first [`causes::MAX_HEADLINES`] of `causes`, then how many
    /// more), for the top of a ticket.
    pub headlines: Vec<String>,
    /// The root causes across servers, most failing clients first.
    pub causes: Vec<Cause>,
    /// Handshakes left out of this report by `--client`, `--server` or `--sni`.
    pub filtered_out: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustInfo {
    /// Where the default roots came from: `mozilla`, `system` or `none` (`--trust-store`).
    pub store: crate::pki::TrustSource,
    /// How many default roots there are.
    pub default_roots: usize,
    /// Roots from `--trust` files (and intermediates, with `--trust-intermediates`).
    pub user_anchors: usize,
    /// Intermediates from `--trust` files trusted as anchors (`--trust-intermediates`).
    pub partial_chain: bool,
    /// What `--trust` files held that did not become an anchor, or became one by option.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<crate::pki::TrustNote>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub generator: String,
    pub captures: Vec<CaptureResult>,
    pub trust: TrustInfo,
    pub summary: Summary,
    pub handshakes: HandshakeList,
    pub servers: Vec<ServerReport>,
    pub clients: ClientList,
    /// Every certificate sent, and every trust anchor a path ends at, by SHA-256.
    pub certificates: BTreeMap<String, Arc<CertSummary>>,
    /// The handshakes grouped another way than by server (`--group-by`), when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Grouping>,
}

/// What to group handshakes by (`--group-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// Server address, port and SNI (the report's own sections).
    Server,
    /// Client address.
    Client,
    /// The client's TLS fingerprint (JA4; JA3 beside it).
    Fingerprint,
    /// The client's MAC vendor (IEEE OUI), with its DHCP vendor class when known.
    Vendor,
}

/// The handshakes grouped by one key.
#[derive(Debug, Clone, Serialize)]
pub struct Grouping {
    pub by: GroupBy,
    pub groups: Vec<Group>,
}

/// One group: who is in it and how their handshakes went.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub key: String,
    /// Extra detail on the key: the JA3 beside a JA4 key (empty otherwise).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub clients: Vec<std::net::IpAddr>,
    pub handshakes: Vec<usize>,
    pub by_status: BTreeMap<String, usize>,
    /// Handshakes whose chain had an error finding.
    pub faulty_chain: usize,
    /// Client reactions: how many aborted (alert, reset, close) and how many went on.
    pub aborted: usize,
    pub went_on: usize,
}

impl Report {
    /// Groups the handshakes by `by` into [`Report::groups`].
    pub fn group_by(&mut self, by: GroupBy) {
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for h in self.handshakes.iter() {
            let client = self.client(h.client.ip);
            let identity = client.as_ref().map(|c| &c.identity);
            let (key, detail) = match by {
                GroupBy::Server => (
                    match &h.sni {
                        Some(sni) => format!("{} ({sni})", h.server),
                        None => h.server.to_string(),
                    },
                    String::new(),
                ),
                GroupBy::Client => (h.client.ip.to_string(), String::new()),
                GroupBy::Fingerprint => (
                    h.ja4.clone().unwrap_or_else(|| "(no ClientHello)".into()),
                    h.ja3
                        .as_ref()
                        .map(|j| format!("JA3 {j}"))
                        .unwrap_or_default(),
                ),
                GroupBy::Vendor => {
                    let vendor = identity
                        .and_then(|i| i.vendor.clone())
                        .unwrap_or_else(|| "(unknown vendor)".into());
                    match identity
                        .and_then(|i| i.dhcp.as_ref())
                        .and_then(|d| d.vendor_class.as_deref())
                    {
                        Some(class) => (
                            format!("{vendor}, DHCP vendor class {class}"),
                            String::new(),
                        ),
                        None => (vendor, String::new()),
                    }
                }
            };
            let gi = *index.entry(key.clone()).or_insert_with(|| {
                groups.push(Group {
                    key,
                    detail,
                    clients: Vec::new(),
                    handshakes: Vec::new(),
                    by_status: BTreeMap::new(),
                    faulty_chain: 0,
                    aborted: 0,
                    went_on: 0,
                });
                groups.len() - 1
            });
            let g = &mut groups[gi];
            if !g.clients.contains(&h.client.ip) {
                g.clients.push(h.client.ip);
            }
            g.handshakes.push(h.id);
            *g.by_status
                .entry(h.status.as_str().to_string())
                .or_default() += 1;
            if self.handshakes.has_error(h.id) {
                g.faulty_chain += 1;
            }
            let reaction = h.client_reaction.kind;
            if reaction.aborted() {
                g.aborted += 1;
            } else if reaction == crate::judge::ReactionKind::Completed {
                g.went_on += 1;
            }
        }
        // The groups with the most faulty chains first.
        groups.sort_by(|a, b| {
            (b.faulty_chain, b.handshakes.len(), &a.key).cmp(&(
                a.faulty_chain,
                a.handshakes.len(),
                &b.key,
            ))
        });
        self.groups = Some(Grouping { by, groups });
    }
}

impl Report {
    /// The client report of `ip`.
    pub fn client(&self, ip: std::net::IpAddr) -> Option<ClientReport> {
        Some(self.clients.get(self.clients.position(ip)?))
    }

    /// Whether any handshake of `client` got a chain with an error finding.
    pub fn client_got_error(&self, client: &ClientReport) -> bool {
        self.clients
            .position(client.ip)
            .is_some_and(|i| self.clients.got_error(i))
    }

    /// The most severe finding in the report, if any.
    pub fn worst_severity(&self) -> Option<Severity> {
        let hs = self.handshakes.worst.iter().flatten().copied();
        let sv = self.servers.iter().flat_map(|s| s.findings.iter());
        hs.chain(sv.map(|f| f.severity)).min()
    }
}

impl HandshakeReport {
    /// Whether the chain (or the handshake) has a finding of severity error.
    pub fn has_error(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

fn extension_name(t: u16) -> String {
    match t {
        5 => "status_request".into(),
        18 => "signed_certificate_timestamp".into(),
        other => format!("extension_{other}"),
    }
}

fn cipher_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id)
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| format!("0x{id:04x}"))
}

/// The report of one handshake: its chain diagnosed with what `store` holds now.
pub fn handshake_report(
    id: usize,
    s: &crate::analysis::Session,
    store: &crate::pki::CertStore,
    checker: &mut Checker<'_>,
) -> HandshakeReport {
    let summary_of = |sha: &Sha| {
        store
            .meta(sha)
            .map(|m| m.summary.clone())
            .unwrap_or_else(|| {
                Arc::new(CertSummary {
                    sha256: hex::encode(sha),
                    subject: "(unparsable certificate)".into(),
                    issuer: String::new(),
                    serial: String::new(),
                    not_before: String::new(),
                    not_after: String::new(),
                    is_ca: false,
                    self_signed: false,
                    san: Vec::new(),
                    key: String::new(),
                    signature_algorithm: String::new(),
                    ca_issuers: Vec::new(),
                })
            })
    };
    let hs = &s.hs;
    // Frame numbers carry their file's part (a joined capture): printed as Wireshark's
    // number in that file, naming the file when it is not the handshake's.
    let capture_of = |frame: u64| s.base + crate::model::frame_part(frame) as usize;
    let local = crate::model::local_frame;
    let frame_text = |frame: u64| match capture_of(frame) {
        c if c == s.capture => local(frame).to_string(),
        c => format!("{} of capture [{c}]", local(frame)),
    };
    let ch = hs.client_hellos.first();
    let sh = hs.server_hellos.iter().rev().find(|s| !s.hello_retry);
    let version = hs.version();
    let tls13 = version.is_some_and(crate::tls::handshake::is_tls13);
    let resumed = match (ch, sh) {
        (Some(c), Some(s)) => {
            // TLS 1.3: the server accepted a pre-shared key (RFC 8446 2.2: no Certificate).
            tls13 && s.psk
                || !tls13 && !s.session_id.is_empty() && s.session_id == c.session_id
                || (!tls13 && hs.certificate.is_none() && hs.server_hello_done.is_none() && {
                    hs.first(crate::model::Side::Server, |k| {
                        *k == crate::tls::handshake::EventKind::ChangeCipherSpec
                    })
                    .is_some()
                })
        }
        _ => false,
    };
    let chain: &[Sha] = hs
        .certificate
        .as_ref()
        .map(|c| c.shas.as_slice())
        .unwrap_or_default();
    let (status, verdict, path, mut findings) = match &hs.certificate {
        Some(c) => {
            let key_use = sh.and_then(|s| {
                crate::pki::constraints::KeyUse::of_cipher_suite(s.cipher_suite, tls13)
            });
            let d = checker.diagnose_with(
                chain,
                c.at.ts.secs(),
                hs.sni(),
                crate::pki::Purpose::ServerAuth,
                key_use,
            );
            (d.status, d.verdict, d.path, d.findings)
        }
        None => {
            let status = if resumed {
                Status::NoCertificate
            } else if tls13
                || hs
                    .renegotiation
                    .as_ref()
                    .is_some_and(|r| r.unseen.is_some())
            {
                Status::NotVisible
            } else if hs.server_cut
                || certificate_skipped(hs)
                || (hs.capture_ended && !server_flight_over(hs))
            {
                Status::Truncated
            } else {
                Status::NoCertificate
            };
            (status, Verdict::NotJudged, Vec::new(), Vec::new())
        }
    };
    let mut client_reaction = hs.client_reaction();
    let reaction_frame = client_reaction.frame;
    if let Some(f) = reaction_frame {
        client_reaction.frame = Some(local(f));
        client_reaction.capture = Some(capture_of(f)).filter(|c| *c != s.capture);
    }
    if verdict == Verdict::Valid
        && let Some(f) = rejected_by_client(&client_reaction, &path)
    {
        findings.push(f);
    }
    let random = ch.map(|c| hex::encode(&c.random)).unwrap_or_default();
    match &hs.decryption {
        Some(Decryption::MissingSecret(label)) => findings.push(Finding::new(
            FindingKind::MissingSecret,
            format!(
                "The key log has no {label} for this handshake (client random {random}), so its certificate stays encrypted. Use the key log written by this client during this capture."
            ),
            None,
        )),
        Some(Decryption::Failed { side, frame }) => findings.push(Finding::new(
            FindingKind::DecryptionFailed,
            format!(
                "The {} records did not decrypt with the logged secret (first failure at frame {}): the key log belongs to another session, or the capture lost bytes.",
                match side {
                    crate::model::Side::Client => "client's",
                    crate::model::Side::Server => "server's",
                },
                frame_text(*frame)
            ),
            None,
        )),
        Some(Decryption::UnsupportedCipher(c)) => findings.push(Finding::new(
            FindingKind::DecryptionFailed,
            format!("Cipher suite {} cannot be decrypted by chainsniff.", cipher_name(*c)),
            None,
        )),
        Some(Decryption::Draft(n)) => findings.push(Finding::new(
            FindingKind::DecryptionFailed,
            format!(
                "TLS 1.3 draft {n}: its record protection differs from RFC 8446, and chainsniff does not decrypt drafts (the key log was not tried), so its certificate stays encrypted."
            ),
            None,
        )),
        _ => {}
    }
    let mut notes = Vec::new();
    if let Some(r) = &hs.renegotiation {
        match &r.unseen {
            None => notes.push(format!(
                "a TLS 1.2 renegotiation: its messages travelled encrypted under the keys of the handshake whose ClientHello is in frame {}, and were decrypted with that handshake's CLIENT_RANDOM line in the key log",
                frame_text(r.of.frame)
            )),
            Some(cause) => findings.push(Finding::new(
                FindingKind::RenegotiationNotVisible,
                format!(
                    "A {} renegotiation starts in frame {}, encrypted under the keys of the handshake whose ClientHello is in frame {}: the chain sent in it is not seen, so not judged. {}",
                    r.version.map_or("TLS".into(), version_name),
                    frame_text(r.at.frame),
                    frame_text(r.of.frame),
                    renegotiation_cause(cause, &frame_text)
                ),
                None,
            )),
        }
    }
    for e in &hs.events {
        match &e.kind {
            crate::tls::handshake::EventKind::Gap { len, snaplen } => {
                let side = match e.side {
                    crate::model::Side::Client => "client",
                    crate::model::Side::Server => "server",
                };
                notes.push(if *snaplen {
                    format!(
                        "{len} bytes from the {side} in frame {} were cut by the capture's snap length",
                        frame_text(e.at.frame)
                    )
                } else {
                    format!(
                        "{len} bytes from the {side} missing from the capture before frame {}",
                        frame_text(e.at.frame)
                    )
                })
            }
            crate::tls::handshake::EventKind::Malformed(m) => {
                notes.push(format!("frame {}: {m}", frame_text(e.at.frame)))
            }
            crate::tls::handshake::EventKind::Oversized {
                msg_type,
                len,
                limit,
            } => notes.push(format!(
                "frame {}: the {} message declares {len} bytes, more than --max-handshake-bytes {limit}; it was skipped (raise the limit to read it)",
                frame_text(e.at.frame),
                handshake_type_name(*msg_type)
            )),
            _ => {}
        }
    }
    if let Some(ev) = hs.evicted {
        notes.push(match ev.reason {
            crate::flow::EvictReason::FlowTableFull => format!(
                "chainsniff stopped following this connection at frame {}: more conversations were open than --max-flows",
                frame_text(ev.at.frame)
            ),
            crate::flow::EvictReason::Idle => format!(
                "chainsniff stopped following this connection at frame {}: nothing was seen on it for 10 minutes",
                frame_text(ev.at.frame)
            ),
        });
    }
    if status == Status::Truncated && certificate_skipped(hs) {
        notes.push(
            "the server's Certificate message was too large to keep; the chain cannot be judged"
                .into(),
        );
    } else if status == Status::Truncated && hs.evicted.is_some() && !hs.server_cut {
        notes.push("the connection was evicted before the server's certificate flight; the chain cannot be judged".into());
    } else if status == Status::Truncated {
        notes.push(if hs.server_cut {
            "the server's certificate flight was cut (a gap, the snap length or the end of the capture); the chain cannot be judged".into()
        } else {
            "the capture ends before the server's certificate flight; the chain cannot be judged".into()
        });
    }
    let offered = ch
        .map(|c| {
            if c.supported_versions.is_empty() {
                vec![version_name(c.legacy_version)]
            } else {
                c.supported_versions
                    .iter()
                    .map(|v| version_name(*v))
                    .collect()
            }
        })
        .unwrap_or_default();
    let filter = hs.display_filter();
    let evidence_frame = hs
        .certificate
        .as_ref()
        .map(|c| c.at.frame)
        .or(ch.map(|c| c.at.frame))
        .or(hs.renegotiation.as_ref().map(|r| r.at.frame));
    // The frames of this handshake in each other file of a joined capture.
    let frame_fields: [(&'static str, Option<u64>); 8] = [
        ("client_hello_frame", ch.map(|c| c.at.frame)),
        ("server_hello_frame", sh.map(|s| s.at.frame)),
        (
            "certificate_frame",
            hs.certificate.as_ref().map(|c| c.at.frame),
        ),
        (
            "certificate_status_frame",
            hs.certificate_status.map(|a| a.frame),
        ),
        (
            "server_hello_done_frame",
            hs.server_hello_done.map(|a| a.frame),
        ),
        (
            "certificate_verify_frame",
            hs.certificate_verify.map(|a| a.frame),
        ),
        (
            "client_certificate_frame",
            hs.client_certificate.as_ref().map(|c| c.at.frame),
        ),
        ("client_reaction", reaction_frame),
    ];
    let frame_captures: BTreeMap<Cow<'static, str>, usize> = frame_fields
        .iter()
        .filter_map(|(name, f)| {
            let c = capture_of((*f)?);
            (c != s.capture).then_some((Cow::Borrowed(*name), c))
        })
        .collect();
    let continued: Vec<Continued> = hs
        .continued
        .iter()
        .map(|&(part, stream)| {
            let capture = s.base + part as usize;
            Continued {
                capture,
                stream,
                frame: frame_fields
                    .iter()
                    .filter_map(|(_, f)| *f)
                    .filter(|f| capture_of(*f) == capture)
                    .map(local)
                    .min(),
                filter: hs.display_filter_in(part).unwrap_or_else(|| filter.clone()),
            }
        })
        .collect();
    let evidence_capture = evidence_frame.map(capture_of).unwrap_or(s.capture);
    for f in &mut findings {
        f.frame = evidence_frame.map(local);
        f.filter = Some(filter.clone());
        if evidence_capture != s.capture {
            // The Certificate is in the next file: the evidence is there.
            f.capture = Some(evidence_capture);
            if let Some(k) = continued.iter().find(|k| k.capture == evidence_capture) {
                f.filter = Some(k.filter.clone());
            }
        }
    }
    HandshakeReport {
        id,
        capture: s.capture,
        stream: hs.stream,
        transport: hs.transport().into(),
        protocol: hs.protocol,
        client: hs.client.into(),
        server: hs.server.into(),
        sni: hs.sni().map(str::to_string),
        upgrade: hs.upgrade.clone(),
        client_mac: hs.eap_client_mac(),
        server_mac: hs.eap_server_mac(),
        eap_identity: hs.eap_identity(),
        version: version.map(version_name),
        offered_versions: offered,
        alpn: ch.map(|c| c.alpn.clone()).unwrap_or_default(),
        cipher_suite: sh.map(|s| cipher_name(s.cipher_suite)),
        filter,
        ja3: ch.and_then(|c| c.fingerprint.as_ref()).map(|f| f.ja3_hex()),
        ja4: ch
            .and_then(|c| c.fingerprint.as_ref())
            .map(|f| f.ja4.clone()),
        client_hello_frame: ch.map(|c| local(c.at.frame)),
        more_client_hello_frames: hs
            .client_hellos
            .iter()
            .skip(1)
            .map(|c| local(c.at.frame))
            .collect(),
        client_hello_time: ch.map(|c| c.at.ts.to_rfc3339()),
        server_hello_frame: sh.map(|s| local(s.at.frame)),
        hello_retry_request: hs.server_hellos.iter().any(|s| s.hello_retry),
        resumed,
        certificate_frame: hs.certificate.as_ref().map(|c| local(c.at.frame)),
        certificate_time: hs.certificate.as_ref().map(|c| c.at.ts.to_rfc3339()),
        certificate_status_frame: hs.certificate_status.map(|a| local(a.frame)),
        server_hello_done_frame: hs.server_hello_done.map(|a| local(a.frame)),
        certificate_verify_frame: hs.certificate_verify.map(|a| local(a.frame)),
        decrypted: hs.decryption == Some(Decryption::Decrypted),
        renegotiation_frame: hs.renegotiation.as_ref().map(|r| local(r.at.frame)),
        certificate_extensions: hs
            .certificate
            .as_ref()
            .map(|c| {
                c.extensions
                    .iter()
                    .map(|e| e.iter().map(|t| extension_name(*t)).collect())
                    .collect()
            })
            .unwrap_or_default(),
        certificates: chain.iter().map(summary_of).collect(),
        chain_variant: None,
        client_certificates: hs
            .client_certificate
            .as_ref()
            .map(|c| c.shas.iter().map(summary_of).collect())
            .unwrap_or_default(),
        client_certificate_frame: hs.client_certificate.as_ref().map(|c| local(c.at.frame)),
        status,
        verdict,
        path,
        findings,
        client_reaction,
        frame_captures,
        continued,
        notes,
        provisional: false,
    }
}

/// Alerts a client sends when it refuses the server's certificate (RFC 8446 6.2).
const CERTIFICATE_ALERTS: &[&str] = &[
    "bad_certificate",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_expired",
    "certificate_unknown",
    "unknown_ca",
    "access_denied",
    "bad_certificate_status_response",
    "certificate_required",
];

/// A `rejected_by_client` finding when the client refused a chain judged valid: a fatal
/// certificate alert, or a reset before it went on.
fn rejected_by_client(reaction: &Reaction, path: &[PathLink]) -> Option<Finding> {
    use crate::judge::ReactionKind as R;
    let how = match reaction.kind {
        R::Alert
            if reaction.alert_level.as_deref() != Some("warning")
                && reaction
                    .alert
                    .as_deref()
                    .is_some_and(|a| CERTIFICATE_ALERTS.contains(&a)) =>
        {
            format!("fatal alert {}", reaction.alert.as_deref().unwrap_or("?"))
        }
        R::Reset => "a reset".to_string(),
        _ => return None,
    };
    let root = path
        .last()
        .map(|l| l.subject.as_str())
        .unwrap_or("the root");
    let when = match (reaction.frame, reaction.delay_ms) {
        (Some(f), Some(ms)) => format!(" (frame {f}, {ms:.1} ms after the certificate)"),
        (Some(f), None) => format!(" (frame {f})"),
        _ => String::new(),
    };
    Some(Finding::new(
        FindingKind::RejectedByClient,
        format!(
            "The client refused the chain with {how}{when}, although it is valid for the trust anchors used here. Likely causes: the client does not trust the root {root} (its trust store lacks it, or it trusts another root); a stricter policy than a strict validator's (SHA-1, key size, validity period, revocation, pinning); or a check chainsniff cannot see (OCSP, Certificate Transparency)."
        ),
        None,
    ))
}

/// Builds the report: diagnoses every handshake, groups by server and chain variant. Fails
/// only when the temporary file that holds the handshakes cannot be written.
pub fn build(analysis: &Analysis) -> crate::Result<Report> {
    // Two stages: helper threads read the handshakes back, judge their chains and write their
    // JSON ([`judge`]), taking batches in turn; this thread takes the batches back in the same
    // turn and groups them by server and chain ([`group`]). The order, and so the report, is
    // that of one thread.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let batches = analysis.sessions.len().div_ceil(BATCH);
    std::thread::scope(|scope| {
        let mut inboxes = Vec::new();
        for worker in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<Judged>>>(2);
            scope.spawn(move || judge(analysis, worker, workers, tx));
            inboxes.push(rx);
        }
        let in_order = (0..batches).map(|b| {
            inboxes[b % workers].recv().unwrap_or_else(|_| {
                Err(std::io::Error::other(
                    "a report thread stopped before its work was done",
                ))
            })
        });
        group(analysis, in_order)
    })
}

/// Handshakes handed from a judging thread to the grouping one at a time.
const BATCH: usize = 64;

/// One handshake's report, with its JSON and, when it has a chain, its line in the chain
/// variant's list of clients.
struct Judged {
    h: HandshakeReport,
    json: Vec<u8>,
    client: Option<Vec<u8>>,
}

/// The first stage of [`build`]: every handshake's report, in order, in batches.
/// `worker` of `workers` takes batches `worker`, `worker + workers`, ...
fn judge(
    analysis: &Analysis,
    worker: usize,
    workers: usize,
    tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<Judged>>>,
) {
    let mut checker = Checker::new(&analysis.store, &analysis.trust);
    // Each distinct AIA URL list is looked up once, however many handshakes lack its issuer.
    let mut fetches: HashMap<Vec<String>, Vec<crate::identity::HttpGet>> = HashMap::new();
    let n = analysis.sessions.len();
    for start in (worker * BATCH..n).step_by(workers * BATCH) {
        let batch = (start..n.min(start + BATCH))
            .map(|id| {
                let variant = analysis.sessions.chain_variant(id);
                judge_one(analysis, id, variant, &mut checker, &mut fetches)
            })
            .collect();
        if tx.send(batch).is_err() {
            return; // the grouping stage failed and stopped listening
        }
    }
}

/// One handshake's report, its JSON and its line in its chain variant's list of clients.
fn judge_one(
    analysis: &Analysis,
    id: usize,
    variant: Option<u32>,
    checker: &mut Checker<'_>,
    fetches: &mut HashMap<Vec<String>, Vec<crate::identity::HttpGet>>,
) -> std::io::Result<Judged> {
    let session = analysis.sessions.get(id)?;
    let mut h = handshake_report(id, &session, &analysis.store, checker);
    for aia in h.findings.iter_mut().filter_map(|f| f.aia.as_mut()) {
        aia.aia_fetches = fetches
            .entry(aia.ca_issuers.clone())
            .or_insert_with(|| analysis.identities.fetches_of(&aia.ca_issuers))
            .clone();
    }
    let mut client = None;
    if let Some(vi) = variant {
        h.chain_variant = Some(variant_label(vi as usize));
        let mut line = Vec::new();
        <Compact as crate::spill::Codec<VariantClient>>::encode(
            &VariantClient {
                handshake: h.id,
                client: h.client,
                transport: h.transport.clone(),
                stream: h.stream,
                client_hello_frame: h.client_hello_frame,
                certificate_frame: h.certificate_frame,
                version: h.version.clone(),
                reaction: h.client_reaction.clone(),
            },
            &mut line,
        )?;
        client = Some(line);
    }
    let mut json = Vec::new();
    <PrettyAt<2> as crate::spill::Codec<HandshakeReport>>::encode(&h, &mut json)?;
    Ok(Judged { h, json, client })
}

/// The streams of some handshakes with one server, per capture (Wireshark numbers streams and
/// frames per file), for display filters.
#[derive(Default)]
struct Streams {
    per_capture: BTreeMap<usize, CaptureStreams>,
}

/// The streams of some handshakes in one capture.
#[derive(Default)]
struct CaptureStreams {
    count: usize,
    /// Up to [`MAX_KEPT_STREAMS`] streams per transport.
    by_transport: BTreeMap<String, Vec<u64>>,
    transports: std::collections::BTreeSet<String>,
    /// The first Certificate frame of these handshakes.
    min_certificate_frame: Option<u64>,
    /// EAPOL conversations have no Wireshark stream index: their handshakes' own filters.
    eapol_filters: std::collections::BTreeSet<String>,
}

impl Streams {
    fn add(
        &mut self,
        capture: usize,
        transport: &str,
        stream: u64,
        filter: &str,
        certificate_frame: Option<u64>,
    ) {
        let c = self.per_capture.entry(capture).or_default();
        c.count += 1;
        if !c.transports.contains(transport) {
            c.transports.insert(transport.to_string());
        }
        if transport == "eapol" {
            if c.count <= MAX_KEPT_STREAMS {
                c.eapol_filters.insert(filter.to_string());
            }
        } else if c.count <= MAX_KEPT_STREAMS {
            c.by_transport
                .entry(transport.to_string())
                .or_default()
                .push(stream);
        }
        c.min_certificate_frame = match (c.min_certificate_frame, certificate_frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Where these handshakes are seen, one [`Evidence`] per capture, in capture order.
    /// `shared`: another server name (SNI) is served on the same address and port, so a filter
    /// on the address alone would select its handshakes too.
    fn evidence(&self, server: Endpoint, shared: bool) -> Vec<Evidence> {
        self.per_capture
            .iter()
            .map(|(&capture, c)| Evidence {
                capture,
                frame: c.min_certificate_frame,
                filter: c.filter(server, shared),
            })
            .collect()
    }
}

impl CaptureStreams {
    /// `tcp.stream == 3`, or `tcp.stream in {0,1,5}` (Wireshark 4 separates set elements with
    /// commas), with `||` between transports when both occur. For more than
    /// [`MAX_FILTER_STREAMS`] handshakes (unless another name shares the address), every
    /// Certificate message from the server: `tls.handshake.type == 11` over TCP, and over UDP
    /// the DTLS fragment that completes one (`dtls.handshake.certificates`).
    fn filter(&self, server: Endpoint, shared: bool) -> String {
        if self.count > MAX_KEPT_STREAMS || (self.count > MAX_FILTER_STREAMS && !shared) {
            if let Some(mac) = server.mac() {
                // An EAPOL authenticator: its frames that complete a Certificate message.
                return format!(
                    "eapol && eth.src == {} && tls.handshake.type == 11",
                    crate::model::mac_string(&mac)
                );
            }
            let ip = if server.ip.is_ipv4() { "ip" } else { "ipv6" };
            let parts: Vec<String> = self
                .transports
                .iter()
                .map(|t| match t.as_str() {
                    "udp" => format!(
                        "udp.srcport == {} && dtls.handshake.type == 11 && dtls.handshake.certificates",
                        server.port
                    ),
                    t => format!("{t}.srcport == {} && tls.handshake.type == 11", server.port),
                })
                .collect();
            return match parts.as_slice() {
                [one] => format!("{ip}.src == {} && {one}", server.ip),
                _ => format!("{ip}.src == {} && (({}))", server.ip, parts.join(") || (")),
            };
        }
        let parts: Vec<String> = self
            .by_transport
            .iter()
            .map(|(t, streams)| {
                let mut streams = streams.clone();
                streams.sort_unstable();
                streams.dedup();
                match streams.as_slice() {
                    [one] => format!("{t}.stream == {one}"),
                    _ => format!(
                        "{t}.stream in {{{}}}",
                        streams
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }
            })
            .collect();
        let parts = parts.into_iter().chain(match self.eapol_filters.len() {
            0 => None,
            1 => self.eapol_filters.first().cloned(),
            _ => Some(
                self.eapol_filters
                    .iter()
                    .map(|f| format!("({f})"))
                    .collect::<Vec<_>>()
                    .join(" || "),
            ),
        });
        parts.collect::<Vec<_>>().join(" || ")
    }
}

/// Sets a variant's or server's finding's evidence: the first capture's frame and filter, and
/// the other captures' in `more_evidence`.
fn set_evidence(f: &mut Finding, mut evidence: Vec<Evidence>, frame: Option<(usize, u64)>) {
    // The capture of `frame` first (a server's finding names the frame where it shows).
    if let Some((capture, _)) = frame
        && let Some(i) = evidence.iter().position(|e| e.capture == capture)
    {
        let e = evidence.remove(i);
        evidence.insert(0, e);
    }
    let mut it = evidence.into_iter();
    if let Some(first) = it.next() {
        f.capture = Some(first.capture);
        f.frame = match frame {
            Some((_, fr)) => Some(fr),
            None => first.frame,
        };
        f.filter = Some(first.filter);
    }
    f.more_evidence = it.collect();
}

/// What a chain variant gathers while its handshakes go by.
#[derive(Default)]
struct VariantTally {
    /// The causes its findings are part of ([`Causes`] indices).
    causes: Vec<u32>,
    /// The captures its handshakes came from.
    captures: std::collections::BTreeSet<usize>,
    /// Its clients' lines in the shared list.
    lines: Vec<u32>,
    /// The first handshake's capture and Certificate frame.
    first_certificate: Option<(usize, u64)>,
    streams: Streams,
}

/// What a server gathers while its handshakes go by.
#[derive(Default)]
struct ServerTally {
    variants: Vec<VariantTally>,
    /// The streams of every handshake with a chain.
    streams: Streams,
    /// Its handshakes per capture.
    per_capture: BTreeMap<usize, usize>,
}

/// One handshake as the clients' section needs it: kept compact, one per handshake, until
/// the handshakes are sorted by client and each client's report is written out.
#[derive(Clone, Copy)]
struct ClientSeen {
    ip: std::net::IpAddr,
    handshake: u32,
    /// Index of the server in [`group`]'s list.
    server: u32,
    /// Indices in [`ClientsSeen::fingerprints`] ([`NO_FINGERPRINT`] without a ClientHello;
    /// not an `Option`, which would take twice the room).
    ja3: u32,
    ja4: u32,
    status: Status,
    /// The handshake has an error finding.
    error: bool,
}

const NO_FINGERPRINT: u32 = u32::MAX;

#[derive(Default)]
struct ClientsSeen {
    seen: Vec<ClientSeen>,
    fingerprints: Vec<String>,
    fingerprint_ids: HashMap<String, u32>,
}

impl ClientsSeen {
    fn fingerprint(&mut self, f: &Option<String>) -> u32 {
        let Some(f) = f.as_ref() else {
            return NO_FINGERPRINT;
        };
        if let Some(id) = self.fingerprint_ids.get(f) {
            return *id;
        }
        let id = self.fingerprints.len() as u32;
        self.fingerprints.push(f.clone());
        self.fingerprint_ids.insert(f.clone(), id);
        id
    }

    fn add(&mut self, h: &HandshakeReport, server: u32) {
        let seen = ClientSeen {
            ip: h.client.ip,
            handshake: h.id as u32,
            server,
            ja3: self.fingerprint(&h.ja3),
            ja4: self.fingerprint(&h.ja4),
            status: h.status,
            error: h.has_error(),
        };
        self.seen.push(seen);
    }

    /// Every client's report, by address.
    fn finish(
        mut self,
        analysis: &Analysis,
        servers: &[ServerReport],
    ) -> std::io::Result<ClientList> {
        // Last client first, so that each client's lines can be taken off the end and their
        // room given back while the client list grows: the two are never both whole.
        self.seen
            .sort_unstable_by_key(|c| std::cmp::Reverse((c.ip, c.handshake)));
        let clients = self.seen.chunk_by(|a, b| a.ip == b.ip).count();
        let mut out = ClientList {
            records: Spill::default(),
            ips: Vec::with_capacity(clients),
            got_error: Vec::with_capacity(clients),
        };
        let mut one: Vec<ClientSeen> = Vec::new();
        let mut given_back = self.seen.len();
        while let Some(last) = self.seen.last() {
            let ip = last.ip;
            let from = self
                .seen
                .iter()
                .rposition(|c| c.ip != ip)
                .map_or(0, |i| i + 1);
            one.clear();
            one.extend(self.seen.drain(from..).rev());
            if given_back - self.seen.len() >= 1 << 16 {
                self.seen.shrink_to_fit();
                given_back = self.seen.len();
            }
            let one = &one;
            let mut c = ClientReport {
                ip: one[0].ip,
                identity: analysis.identities.of(one[0].ip),
                ja3: Vec::new(),
                ja4: Vec::new(),
                handshakes: Vec::with_capacity(one.len()),
                statuses: BTreeMap::new(),
                servers: Vec::new(),
            };
            for h in one.iter() {
                c.handshakes.push(h.handshake as usize);
                for (mine, fp) in [(&mut c.ja3, h.ja3), (&mut c.ja4, h.ja4)] {
                    if let Some(fp) = self.fingerprints.get(fp as usize)
                        && !mine.contains(fp)
                    {
                        mine.push(fp.clone());
                    }
                }
                *c.statuses.entry(h.status.as_str().to_string()).or_default() += 1;
                let endpoint = servers[h.server as usize].server;
                if !c.servers.contains(&endpoint) {
                    c.servers.push(endpoint);
                }
            }
            out.push(&c, one.iter().any(|h| h.error))?;
        }
        Ok(out)
    }
}

/// The second stage of [`build`]: the report from the handshakes, in order, in batches.
fn group(
    analysis: &Analysis,
    batches: impl Iterator<Item = std::io::Result<Vec<Judged>>>,
) -> crate::Result<Report> {
    // Group by server (address, port, SNI), then by the exact chain sent. Handshakes go to
    // `handshakes` one at a time: only their grouping stays in memory.
    let mut server_index: HashMap<(Endpoint, Option<String>), usize> = HashMap::new();
    let mut servers: Vec<ServerReport> = Vec::new();
    let mut tallies: Vec<ServerTally> = Vec::new();
    // What stays in memory per handshake is reserved once, not grown by doubling.
    let n = analysis.sessions.len();
    let mut lines: Spill<VariantClient, Compact> = Spill::default();
    let mut handshakes = HandshakeList {
        records: Spill::default(),
        worst: Vec::with_capacity(n),
    };
    let mut seen = ClientsSeen {
        seen: Vec::with_capacity(n),
        ..Default::default()
    };
    let mut by_status = BTreeMap::new();
    let mut by_verdict = BTreeMap::new();
    // A joined capture's files count as its first file for the per-capture counts.
    let capture_of: Vec<usize> = analysis
        .captures
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.joined
                .as_ref()
                .and_then(|j| j.captures.first().copied())
                .unwrap_or(i)
        })
        .collect();
    let mut causes = Causes::new(capture_of.clone());
    let mut not_judged_count = 0;
    let (mut errors, mut warnings) = (0, 0);
    let mut failed = None;
    let judged = batches
        .map_while(|b| b.map_err(|e| failed = Some(e)).ok())
        .flatten();
    for Judged { h, json, client } in judged {
        let key = (h.server, h.sni.clone());
        let si = *server_index.entry(key).or_insert_with(|| {
            servers.push(ServerReport {
                server: h.server,
                identity: analysis.identities.of(h.server.ip),
                sni: h.sni.clone(),
                handshakes: 0,
                variants: Vec::new(),
                without_chain: BTreeMap::new(),
                findings: Vec::new(),
            });
            tallies.push(ServerTally::default());
            servers.len() - 1
        });
        let server = &mut servers[si];
        let tally = &mut tallies[si];
        server.handshakes += 1;
        let capture = capture_of.get(h.capture).copied().unwrap_or(h.capture);
        *tally.per_capture.entry(capture).or_default() += 1;
        match (&h.chain_variant, client) {
            (Some(label), Some(line)) => {
                let vi = match server.variants.iter().position(|v| v.id == *label) {
                    Some(i) => i,
                    None => {
                        server.variants.push(ChainVariant {
                            id: label.clone(),
                            subjects: h.certificates.iter().map(|c| c.subject.clone()).collect(),
                            certificates: h.certificates.iter().map(|c| c.sha256.clone()).collect(),
                            status: h.status,
                            verdict: h.verdict,
                            findings: h
                                .findings
                                .iter()
                                .filter(|f| f.kind != FindingKind::RejectedByClient)
                                .cloned()
                                .collect(),
                            path: h.path.clone(),
                            clients: VariantClients::default(),
                        });
                        // The issuer a `missing_issuer` finding names: the one of the
                        // last certificate on the path.
                        let missing_issuer = h
                            .findings
                            .iter()
                            .any(|f| f.kind == FindingKind::MissingIssuer)
                            .then(|| {
                                let last = h.path.last()?;
                                h.certificates
                                    .iter()
                                    .find(|c| c.sha256 == last.sha256)
                                    .map(|c| c.issuer.clone())
                            })
                            .flatten();
                        let variant_causes = causes.variant(
                            si as u32,
                            server.variants.last().expect("just pushed"),
                            missing_issuer.as_deref(),
                        );
                        tally.variants.push(VariantTally {
                            causes: variant_causes,
                            ..Default::default()
                        });
                        server.variants.len() - 1
                    }
                };
                let v = &mut tally.variants[vi];
                v.lines.push(lines.len() as u32);
                lines.push_encoded(&line)?;
                let (cert_capture, cert_stream, cert_filter) = h.certificate_place();
                if v.lines.len() == 1 {
                    v.first_certificate = h.certificate_frame.map(|f| (cert_capture, f));
                }
                v.streams.add(
                    cert_capture,
                    &h.transport,
                    cert_stream,
                    cert_filter,
                    h.certificate_frame,
                );
                v.captures.insert(capture);
                for &c in &v.causes {
                    causes.handshake(c, si as u32, Some(label), &h, &analysis.identities);
                }
                if h.findings
                    .iter()
                    .any(|f| f.kind == FindingKind::RejectedByClient)
                {
                    let c = causes.rejected(si as u32, &server.variants[vi]);
                    causes.handshake(c, si as u32, Some(label), &h, &analysis.identities);
                }
                tally.streams.add(
                    cert_capture,
                    &h.transport,
                    cert_stream,
                    cert_filter,
                    h.certificate_frame,
                );
            }
            _ => server
                .without_chain
                .entry(h.status.as_str().to_string())
                .or_default()
                .push(h.id),
        }

        seen.add(&h, si as u32);
        *by_status.entry(h.status.as_str().to_string()).or_insert(0) += 1;
        *by_verdict
            .entry(h.verdict.as_str().to_string())
            .or_insert(0) += 1;
        if h.verdict == Verdict::NotJudged
            && let Some(why) = NotJudged::of(&h)
        {
            not_judged_count += 1;
            let c = causes.not_judged(why);
            causes.handshake(c, si as u32, None, &h, &analysis.identities);
        }
        for f in &h.findings {
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => {}
            }
        }
        handshakes.push_encoded(&json, h.findings.iter().map(|f| f.severity).min())?;
    }
    if let Some(e) = failed {
        return Err(e.into());
    }

    let lines = Arc::new(lines);
    // Addresses that serve several names: a filter on the address alone would mix them.
    let mut names_per_endpoint: HashMap<Endpoint, usize> = HashMap::new();
    for s in &servers {
        *names_per_endpoint.entry(s.server).or_default() += 1;
    }
    for (si, (s, tally)) in servers.iter_mut().zip(&mut tallies).enumerate() {
        let shared = names_per_endpoint.get(&s.server).is_some_and(|n| *n > 1);
        for (v, t) in s.variants.iter_mut().zip(&mut tally.variants) {
            v.clients = VariantClients {
                list: (lines.clone(), std::mem::take(&mut t.lines)),
            };
            let evidence = t.streams.evidence(s.server, shared);
            for f in &mut v.findings {
                set_evidence(f, evidence.clone(), None);
            }
        }
        if s.variants.len() > 1 {
            let captures: Vec<_> = tally.variants.iter().map(|v| &v.captures).collect();
            causes.inconsistent(si as u32, &s.variants, &captures);
            let sock = SocketAddr::new(s.server.ip, s.server.port);
            let mut f = Finding::new(
                FindingKind::InconsistentChains,
                inconsistent_message(&sock, s.sni.as_deref(), s.variants.len()),
                None,
            );
            // The first handshake of the second variant: where the chains start to differ.
            let evidence = tally.streams.evidence(s.server, shared);
            set_evidence(&mut f, evidence, tally.variants[1].first_certificate);
            s.findings.push(f);
        }
        for f in &s.findings {
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => {}
            }
        }
    }
    let clients = seen.finish(analysis, &servers)?;
    let causes = {
        let facts: Vec<ServerFacts<'_>> = servers
            .iter()
            .zip(&tallies)
            .map(|(s, t)| ServerFacts {
                server: s.server,
                sni: s.sni.as_deref(),
                per_capture: &t.per_capture,
                bundle: crate::export::bundle_path(analysis, s)
                    .map(|_| crate::export::bundle_name(s)),
            })
            .collect();
        let names = capture_labels(&analysis.captures);
        let ja4_of = |ip| clients.get(clients.position(ip)?).ja4.first().cloned();
        causes.finish(&facts, &names, &ja4_of)
    };
    // Servers with problems first, then by address.
    let mut servers: Vec<(ServerReport, ServerTally)> = servers.into_iter().zip(tallies).collect();
    servers.sort_by_key(|(s, _)| {
        let worst = s
            .variants
            .iter()
            .flat_map(|v| v.findings.iter())
            .chain(s.findings.iter())
            .map(|f| f.severity)
            .min()
            .unwrap_or(Severity::Info);
        (worst, s.server, s.sni.clone())
    });
    let mut headlines: Vec<String> = causes
        .iter()
        .take(causes::MAX_HEADLINES)
        .map(|c| c.headline.clone())
        .collect();
    headlines.extend(causes::more_causes(&causes));
    let servers: Vec<ServerReport> = servers.into_iter().map(|(s, _)| s).collect();
    Ok(Report {
        schema: SCHEMA,
        generator: format!("chainsniff {}", env!("CARGO_PKG_VERSION")),
        summary: Summary {
            captures: analysis.captures.len(),
            frames: analysis.captures.iter().map(|c| c.summary.frames).sum(),
            handshakes: handshakes.len(),
            servers: servers.len(),
            clients: clients.len(),
            by_status,
            by_verdict,
            not_judged: not_judged_count,
            errors,
            warnings,
            headlines,
            causes,
            filtered_out: analysis.filtered_out,
        },
        captures: analysis.captures.clone(),
        trust: TrustInfo {
            store: analysis.trust.source,
            default_roots: analysis.trust.default_roots,
            user_anchors: analysis.trust.user,
            partial_chain: analysis.trust.partial_chain,
            notes: analysis.trust.notes.clone(),
        },
        certificates: certificate_index(analysis, &servers),
        groups: None,
        handshakes,
        servers,
        clients,
    })
}

/// The certificates sent in the captures and the anchors the servers' paths end at.
fn certificate_index(
    analysis: &Analysis,
    servers: &[ServerReport],
) -> BTreeMap<String, Arc<CertSummary>> {
    let mut out = BTreeMap::new();
    for sha in &analysis.store.order {
        if let Some(m) = analysis.store.meta(sha) {
            out.insert(hex::encode(sha), m.summary.clone());
        }
    }
    for link in servers
        .iter()
        .flat_map(|s| s.variants.iter())
        .flat_map(|v| v.path.iter())
    {
        if out.contains_key(&link.sha256) {
            continue;
        }
        let meta =
            crate::pki::sha_from_hex(&link.sha256).and_then(|sha| analysis.trust.store.meta(&sha));
        if let Some(m) = meta {
            out.insert(link.sha256.clone(), m.summary.clone());
        }
    }
    out
}

/// Most streams a filter lists; beyond it, the filter names the server's certificate messages.
const MAX_FILTER_STREAMS: usize = 40;

/// Most streams kept per capture for a filter: a server that shares its address with another
/// name lists up to this many (a filter on the address would select the other's too).
const MAX_KEPT_STREAMS: usize = 4096;

/// Why a TLS 1.2 renegotiation could not be read: the key log, the cipher, or the records.
fn renegotiation_cause(cause: &Decryption, frame_text: &dyn Fn(u64) -> String) -> String {
    match cause {
        Decryption::MissingSecret(label) => format!(
            "The key log has no {label} line for the handshake before: use the key log written by this client during this capture."
        ),
        Decryption::UnsupportedCipher(c) => format!(
            "Cipher suite {} is not one chainsniff decrypts (TLS 1.2: AES-GCM and ChaCha20-Poly1305 only).",
            cipher_name(*c)
        ),
        Decryption::Failed { side, frame } => format!(
            "The {} records did not decrypt with the logged master secret (first failure at frame {}): the key log belongs to another session, or the capture lost bytes.",
            match side {
                crate::model::Side::Client => "client's",
                crate::model::Side::Server => "server's",
            },
            frame_text(*frame)
        ),
        _ => "No key log was given: pass the client's with --keylog (its CLIENT_RANDOM line for this handshake) to see the renegotiation.".into(),
    }
}

/// The server's Certificate message was skipped for exceeding `--max-handshake-bytes`.
fn certificate_skipped(hs: &crate::tls::handshake::Handshake) -> bool {
    hs.certificate.is_none()
        && hs
            .first(crate::model::Side::Server, |k| {
                matches!(
                    k,
                    crate::tls::handshake::EventKind::Oversized {
                        msg_type: 11, // Certificate
                        ..
                    }
                )
            })
            .is_some()
}

/// The name of a handshake message type, as in RFC 8446 (or its number).
fn handshake_type_name(t: u8) -> String {
    match t {
        1 => "ClientHello".into(),
        2 => "ServerHello".into(),
        4 => "NewSessionTicket".into(),
        8 => "EncryptedExtensions".into(),
        11 => "Certificate".into(),
        12 => "ServerKeyExchange".into(),
        13 => "CertificateRequest".into(),
        14 => "ServerHelloDone".into(),
        15 => "CertificateVerify".into(),
        16 => "ClientKeyExchange".into(),
        20 => "Finished".into(),
        22 => "CertificateStatus".into(),
        _ => format!("handshake type {t}"),
    }
}

/// The server's flight is over when it said ServerHelloDone, changed cipher, or went quiet
/// because the client answered.
fn server_flight_over(hs: &crate::tls::handshake::Handshake) -> bool {
    hs.server_hello_done.is_some()
        || hs
            .first(crate::model::Side::Server, |k| {
                matches!(
                    k,
                    crate::tls::handshake::EventKind::ChangeCipherSpec
                        | crate::tls::handshake::EventKind::Alert { .. }
                        | crate::tls::handshake::EventKind::Fin
                        | crate::tls::handshake::EventKind::Rst
                )
            })
            .is_some()
}

fn variant_label(i: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if i < 26 {
        (letters[i] as char).to_string()
    } else {
        format!("V{}", i + 1)
    }
}

/// Each capture's name in cause lines: its file name, and for the first file of a joined
/// capture how many files were joined to it ("ring_00001.pcap (and 2 joined files)").
pub fn capture_labels(captures: &[CaptureResult]) -> Vec<String> {
    captures
        .iter()
        .enumerate()
        .map(|(i, c)| match &c.joined {
            Some(j) if j.captures.len() > 1 && j.captures.first() == Some(&i) => format!(
                "{} (and {} joined file{})",
                capture_name(&c.summary.path),
                j.captures.len() - 1,
                if j.captures.len() == 2 { "" } else { "s" }
            ),
            _ => capture_name(&c.summary.path),
        })
        .collect()
}

/// The file name of a capture path, as cause lines name it ("before.pcapng").
pub fn capture_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}
