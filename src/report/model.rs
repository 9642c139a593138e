//! The report model: what `--format json` prints, and what every printer reads.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analysis::CaptureResult;
use crate::json::PrettyAt;
use crate::judge::Reaction;
use crate::model::Endpoint;
use crate::pki::CertSummary;
use crate::pki::{Finding, PathLink, Severity, Status, Verdict};
use crate::spill::{Codec, Packed, Spill};

use super::causes::Cause;

/// One handshake as the report tells it (`handshakes[]`, one line of `--format jsonl`).
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
    /// The client's address and port.
    pub client: Endpoint,
    /// The server's address and port.
    pub server: Endpoint,
    /// The server name the client asked for (SNI), if it sent one.
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
    /// The protocols the client offered with ALPN.
    pub alpn: Vec<String>,
    /// The negotiated cipher suite's IANA name, from the ServerHello.
    pub cipher_suite: Option<String>,
    /// The Wireshark display filter that shows this connection (`tcp.stream == 17`).
    pub filter: String,
    /// JA3 of the (first) ClientHello.
    pub ja3: Option<String>,
    /// JA4 of the (first) ClientHello.
    pub ja4: Option<String>,
    /// The frame of the (first) ClientHello, Wireshark's number.
    pub client_hello_frame: Option<u64>,
    /// Frames of further ClientHellos (after a HelloRetryRequest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_client_hello_frames: Vec<u64>,
    /// When the (first) ClientHello was captured (RFC 3339).
    pub client_hello_time: Option<String>,
    /// The frame of the ServerHello that was not a HelloRetryRequest.
    pub server_hello_frame: Option<u64>,
    /// The server asked for another ClientHello (TLS 1.3 HelloRetryRequest).
    pub hello_retry_request: bool,
    /// The handshake resumed a session, so no certificate was due.
    pub resumed: bool,
    /// The frame of the server's Certificate message.
    pub certificate_frame: Option<u64>,
    /// When the Certificate message was captured (RFC 3339).
    pub certificate_time: Option<String>,
    /// The frame of the stapled OCSP response (CertificateStatus), if any.
    pub certificate_status_frame: Option<u64>,
    /// The frame of ServerHelloDone (TLS 1.2 and earlier).
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
    /// The frame of the client's Certificate message, if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_frame: Option<u64>,
    /// What chainsniff saw of the chain (docs/report.md, "Statuses").
    pub status: Status,
    /// What a strict client that trusts exactly the anchors used here decides about the chain
    /// as sent (`not_judged` when no chain was seen).
    pub verdict: Verdict,
    /// The certification path built from the leaf up, as a strict client builds it.
    pub path: Vec<PathLink>,
    /// What is wrong with the chain or the handshake, worst first.
    pub findings: Vec<Finding>,
    /// How the client reacted to the server's flight.
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
    pub notes: Vec<crate::judge::Note>,
    /// `--format jsonl` only: the final report may judge this handshake differently, because a
    /// certificate seen later in the capture can still explain its chain (see docs/report.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

/// Where a handshake of a joined capture goes on: another file, and the connection there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Continued {
    /// The index of that file in `captures[]`.
    pub capture: usize,
    /// The connection's stream index in that file.
    pub stream: u64,
    /// The first frame of this handshake's messages in that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// The display filter that shows the connection in that file.
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

/// One handshake in a chain variant's list of clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantClient {
    /// Index in `handshakes[]`.
    pub handshake: usize,
    /// The client's address and port.
    pub client: Endpoint,
    /// "tcp" or "udp": which Wireshark stream index `stream` is.
    pub transport: Cow<'static, str>,
    /// Wireshark's stream index (`transport` says which).
    pub stream: u64,
    /// The frame of the ClientHello.
    pub client_hello_frame: Option<u64>,
    /// The frame of the Certificate message.
    pub certificate_frame: Option<u64>,
    /// Negotiated version, from the ServerHello.
    pub version: Option<String>,
    /// How the client reacted.
    pub reaction: Reaction,
}

/// One exact chain a server sent, and the handshakes that got it.
#[derive(Debug, Serialize)]
pub struct ChainVariant {
    /// "A", "B", ...: in the order first seen.
    pub id: String,
    /// SHA-256 of each certificate, in the order sent.
    pub certificates: Vec<String>,
    /// The subjects of the certificates, in the order sent.
    pub subjects: Vec<String>,
    /// The status of this chain (docs/report.md, "Statuses").
    pub status: Status,
    /// The verdict on the chain (the same for every handshake that got it).
    pub verdict: Verdict,
    /// Findings on the chain itself (a client's own rejection is on its handshake).
    pub findings: Vec<Finding>,
    /// The certification path built from the leaf up.
    pub path: Vec<PathLink>,
    /// The handshakes that got this chain.
    pub clients: VariantClients,
}

/// The clients of a chain variant, one per handshake, kept in a [`Spill`] shared by every
/// variant of the report.
#[derive(Serialize)]
#[serde(transparent)]
pub struct VariantClients {
    #[serde(serialize_with = "serialize_clients")]
    pub(super) list: (Arc<Spill<VariantClient, Packed>>, Vec<u32>),
    /// Its handshakes by how their clients reacted (so that a report listing a few need not
    /// read the others back).
    #[serde(skip)]
    pub(super) reactions: crate::judge::ReactionCount,
}

impl std::fmt::Debug for VariantClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn serialize_clients<S: serde::Serializer>(
    list: &(Arc<Spill<VariantClient, Packed>>, Vec<u32>),
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.collect_seq(list.1.iter().map(|&i| list.0.read(i as usize)))
}

impl VariantClients {
    /// How many handshakes got this chain.
    pub fn len(&self) -> usize {
        self.list.1.len()
    }

    /// Its handshakes by how their clients reacted.
    pub fn reactions(&self) -> crate::judge::ReactionCount {
        self.reactions
    }

    /// Whether no handshake got this chain.
    pub fn is_empty(&self) -> bool {
        self.list.1.is_empty()
    }

    /// The `i`-th client, in handshake order.
    pub fn get(&self, i: usize) -> VariantClient {
        self.list.0.read(self.list.1[i] as usize)
    }

    /// The handshakes that got this chain, in report order.
    pub fn iter(&self) -> impl Iterator<Item = VariantClient> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl Default for VariantClients {
    fn default() -> Self {
        VariantClients {
            list: (Arc::new(Spill::default()), Vec::new()),
            reactions: Default::default(),
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
    pub(super) records: Spill<ClientReport, Packed>,
    #[serde(skip)]
    pub(super) ips: Vec<std::net::IpAddr>,
    #[serde(skip)]
    pub(super) got_error: Vec<bool>,
}

impl ClientList {
    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// The `i`-th client (by address).
    pub fn get(&self, i: usize) -> ClientReport {
        self.records.read(i)
    }

    /// Every client's report, in report order.
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

    /// Adds a client's report; `got_error`: one of its handshakes has an error finding.
    pub(super) fn push(&mut self, c: &ClientReport, got_error: bool) -> std::io::Result<()> {
        self.ips.push(c.ip);
        self.got_error.push(got_error);
        self.records.push(c)
    }
}

/// How the report keeps its handshakes (see [`HandshakeList`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Records {
    /// As the JSON that `--format json` prints, copied out as it is.
    Json,
    /// Packed ([`Packed`]): quicker to make, for reports printed in another format (or not
    /// printed); their JSON is made again when asked for.
    #[default]
    Packed,
}

/// Every handshake's report, in order, kept in a [`Spill`] (as [`Records`] says), with the
/// worst severity of each handshake's findings at hand.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct HandshakeList {
    pub(super) records: HandshakeRecords,
    #[serde(skip)]
    pub(super) worst: Vec<Option<Severity>>,
}

/// The handshakes' records, in one of the two [`Records`] encodings.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum HandshakeRecords {
    Json(Spill<HandshakeReport, PrettyAt<2>>),
    Packed(Spill<HandshakeReport, Packed>),
}

impl HandshakeRecords {
    pub(super) fn new(records: Records) -> Self {
        match records {
            Records::Json => HandshakeRecords::Json(Spill::default()),
            Records::Packed => HandshakeRecords::Packed(Spill::default()),
        }
    }

    /// Encodes a handshake's report as these records keep it.
    pub(super) fn encode(records: Records, h: &HandshakeReport) -> std::io::Result<Vec<u8>> {
        // A TLS 1.2 handshake with its chain is 3-5 kB either way: made without growing.
        let mut out = Vec::with_capacity(8 << 10);
        match records {
            Records::Json => PrettyAt::<2>::encode(h, &mut out)?,
            Records::Packed => Packed::encode(h, &mut out)?,
        }
        Ok(out)
    }
}

impl Default for HandshakeList {
    fn default() -> Self {
        HandshakeList::new(Records::default(), 0)
    }
}

impl HandshakeList {
    /// An empty list keeping its records as `records` says, with room for `n`.
    pub(super) fn new(records: Records, n: usize) -> Self {
        HandshakeList {
            records: HandshakeRecords::new(records),
            worst: Vec::with_capacity(n),
        }
    }

    /// How many handshakes there are.
    pub fn len(&self) -> usize {
        self.worst.len()
    }

    /// Whether there are no handshakes.
    pub fn is_empty(&self) -> bool {
        self.worst.is_empty()
    }

    /// The handshake with this id.
    pub fn get(&self, id: usize) -> HandshakeReport {
        match &self.records {
            HandshakeRecords::Json(s) => s.read(id),
            HandshakeRecords::Packed(s) => s.read(id),
        }
    }

    /// Every handshake's report, in report order.
    pub fn iter(&self) -> impl Iterator<Item = HandshakeReport> + '_ {
        (0..self.len()).map(|id| self.get(id))
    }

    /// Whether handshake `id` has a finding of severity error.
    pub fn has_error(&self, id: usize) -> bool {
        self.worst[id] == Some(Severity::Error)
    }

    /// The JSON of handshake `id`, as the report prints it inside `handshakes`.
    pub fn json(&self, id: usize) -> std::io::Result<Cow<'_, [u8]>> {
        match &self.records {
            HandshakeRecords::Json(s) => s.bytes(id),
            HandshakeRecords::Packed(s) => {
                let mut out = Vec::new();
                PrettyAt::<2>::encode(&s.get(id)?, &mut out)?;
                Ok(out.into())
            }
        }
    }

    /// Adds a handshake's record (as [`HandshakeRecords::encode`] made it for these records)
    /// and the worst severity of its findings.
    pub(super) fn push_encoded(
        &mut self,
        record: &[u8],
        worst: Option<Severity>,
    ) -> std::io::Result<()> {
        self.worst.push(worst);
        match &mut self.records {
            HandshakeRecords::Json(s) => s.push_encoded(record),
            HandshakeRecords::Packed(s) => s.push_encoded(record),
        }
    }
}

/// One server (address, port, SNI): the chains it sent and to whom.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    /// The server's address and port.
    pub server: Endpoint,
    /// MAC, vendor and DNS names of the server's address, as far as the capture tells.
    #[serde(flatten)]
    pub identity: crate::identity::HostIdentity,
    /// The server name the clients asked for (SNI).
    pub sni: Option<String>,
    /// How many handshakes this server had.
    pub handshakes: usize,
    /// The exact chains it sent, most handshakes first.
    pub variants: Vec<ChainVariant>,
    /// Handshakes without a visible chain (TLS 1.3, resumed, truncated), by status.
    pub without_chain: BTreeMap<String, Vec<usize>>,
    /// The same handshakes by how their clients reacted, by status.
    #[serde(skip)]
    pub without_chain_reactions: BTreeMap<String, crate::judge::ReactionCount>,
    /// Server-level findings (`inconsistent_chains`).
    pub findings: Vec<Finding>,
}

/// One client: its identity, fingerprints and handshakes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientReport {
    /// The client's address.
    pub ip: std::net::IpAddr,
    /// MAC, vendor, DHCP request and DNS names, as far as the capture tells.
    #[serde(flatten)]
    pub identity: crate::identity::HostIdentity,
    /// The distinct JA3 / JA4 fingerprints of its ClientHellos, first seen first.
    pub ja3: Vec<String>,
    /// The distinct JA4 fingerprints of its ClientHellos, first seen first.
    pub ja4: Vec<String>,
    /// Its handshakes (indices in `handshakes[]`).
    pub handshakes: Vec<usize>,
    /// Its handshakes by status.
    pub statuses: BTreeMap<String, usize>,
    /// The servers it talked to.
    pub servers: Vec<Endpoint>,
}

/// The counts at the top of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// How many captures were read.
    pub captures: usize,
    /// How many frames they held.
    pub frames: u64,
    /// How many handshakes were seen.
    pub handshakes: usize,
    /// How many distinct servers (address, port, SNI).
    pub servers: usize,
    /// How many distinct clients (address).
    pub clients: usize,
    /// Handshakes by status.
    pub by_status: BTreeMap<String, usize>,
    /// Handshakes by verdict (`valid`, `invalid`, `not_judged`).
    pub by_verdict: BTreeMap<String, usize>,
    /// Handshakes whose chain could not be judged although a server should have sent one
    /// (truncated, encrypted without keys); a headline says why and what to do.
    pub not_judged: usize,
    /// Findings of severity error (handshake and server findings).
    pub errors: usize,
    /// Findings of severity warning.
    pub warnings: usize,
    /// One line per root cause (the first `MAX_HEADLINES` of `causes`, then how many
    /// more), for the top of a ticket.
    pub headlines: Vec<String>,
    /// The root causes across servers, most failing clients first.
    pub causes: Vec<Cause>,
    /// Handshakes left out of this report by `--client`, `--server` or `--sni`.
    pub filtered_out: usize,
}

/// The trust anchors chains were judged against.
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

/// The whole report: what `--format json` prints and every printer reads.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The schema name and version, [`crate::report::SCHEMA`].
    pub schema: &'static str,
    /// The program and version that made the report.
    pub generator: String,
    /// Every capture read, in the order given.
    pub captures: Vec<CaptureResult>,
    /// The trust anchors used.
    pub trust: TrustInfo,
    /// The counts and the root causes.
    pub summary: Summary,
    /// Every handshake, in report order.
    pub handshakes: HandshakeList,
    /// Every server, those with problems first.
    pub servers: Vec<ServerReport>,
    /// Every client.
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
    /// What the handshakes are grouped by.
    pub by: GroupBy,
    /// The groups, those with the most faulty chains first.
    pub groups: Vec<Group>,
}

/// One group: who is in it and how their handshakes went.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The key the group shares (a client address, a JA4, a vendor).
    pub key: String,
    /// Extra detail on the key: the JA3 beside a JA4 key (empty otherwise).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The clients in the group.
    pub clients: Vec<std::net::IpAddr>,
    /// Its handshakes (indices in `handshakes[]`).
    pub handshakes: Vec<usize>,
    /// Its handshakes by status.
    pub by_status: BTreeMap<String, usize>,
    /// Handshakes whose chain had an error finding.
    pub faulty_chain: usize,
    /// Client reactions: how many aborted (alert, reset, close) and how many went on.
    pub aborted: usize,
    /// Handshakes in which the client went on after the server's flight.
    pub went_on: usize,
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
