//! Root causes across servers: the first screen of every report.
//!
//! A server's chain variant has findings; the same finding on many servers' chains is one
//! cause ("missing intermediate X" on 154 server chains), and so is the same kind of fault in
//! their leaves ("expired leaf"). [`Causes`] gathers them while the handshakes go by (each
//! client once per cause, its kind, how it ended), and [`Causes::finish`] ranks them by impact:
//! clients that failed, then clients affected, then handshakes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::judge::{Reaction, ReactionKind};
use crate::model::Endpoint;
use crate::pki::{FindingKind, Severity, Status};

use super::ip_map::IpMap;
use super::{ChainVariant, HandshakeReport};

/// Causes shown in a headline; the rest are counted in one line ("N more causes").
pub const MAX_HEADLINES: usize = 10;
/// Servers, client kinds and client names named in one headline before "and N more".
const NAMED: usize = 3;

/// One root cause across the servers of the report (`summary.causes`).
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    /// The finding kind behind it (`missing_intermediate`, `expired`, `rejected_by_client`,
    /// `inconsistent_chains`, ...), or `not_judged`.
    pub kind: Cow<'static, str>,
    /// The worst severity of its findings.
    pub severity: Severity,
    /// What is wrong, in a few words: "missing intermediate O=Contoso, CN=Contoso Issuing CA 01".
    pub what: String,
    /// SHA-256 of the certificate at fault (or missing), when it is one certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The servers whose chains have it, most handshakes first.
    pub servers: Vec<CauseServer>,
    /// Server chains (chain variants) that have it.
    pub chains: usize,
    /// Of its servers, those that send other clients another chain (`inconsistent_chains`: why
    /// some of their clients work).
    pub mixed_servers: usize,
    /// Handshakes that got such a chain (or, for `not_judged`, that could not be judged).
    pub handshakes: usize,
    /// Distinct clients among those handshakes.
    pub clients: usize,
    /// Of them, the clients that failed at least once: aborted (alert, reset, close) or, over
    /// EAP, were refused by the server.
    pub failed_clients: usize,
    /// Of them, the clients that went on at least once (completed the handshake).
    pub went_on_clients: usize,
    /// How the failed handshakes ended ("alert unknown_ca", "reset"), with their count.
    pub failures: BTreeMap<String, usize>,
    /// The first failure in the report: the frame of the client's reaction and its capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<FrameRef>,
    /// The clients by kind (MAC vendor and DHCP vendor class, else JA4), most first.
    pub client_kinds: Vec<ClientKind>,
    /// What to change: the finding kind's fix (docs/report.md).
    pub fix: Cow<'static, str>,
    /// The fix in a few words, for the first screen.
    pub action: Cow<'static, str>,
    /// The `--export-certs` files that hold the chain to install, one per server that has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<String>,
    /// For a chain incomplete as sent: which clients fail, which cope, and why ("but it works
    /// in my browser").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coping: Option<String>,
    /// With several captures: how the servers' handshakes fared in each (before and after a
    /// change).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_capture: Vec<CaptureCount>,
    /// The one-line form (`summary.headlines`).
    pub headline: String,
}

/// A frame of one capture.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FrameRef {
    /// The index in `captures[]` of the file the frame is in.
    pub capture: usize,
    /// Wireshark's frame number in that file.
    pub frame: u64,
}

/// A server a cause was seen on.
#[derive(Debug, Clone, Serialize)]
pub struct CauseServer {
    /// The server's address and port.
    pub server: Endpoint,
    /// The server name the clients asked for (SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The chain variants of it that have the cause ("A", "B").
    pub variants: Vec<String>,
    /// The server's handshakes with the cause.
    pub handshakes: usize,
}

/// Clients of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct ClientKind {
    /// "Polycom", "Polycom (Polycom-VVX500)", "JA4 t13d1516h2_8daaf6152771_02713d6af862",
    /// "unidentified".
    pub kind: String,
    /// How many clients of this kind the cause touched.
    pub clients: usize,
    /// How many of them failed.
    pub failed: usize,
    /// The first few by name (DHCP host name, DNS name, EAP identity, else the address).
    pub examples: Vec<String>,
}

/// A cause in one capture.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureCount {
    /// The index in `captures[]` of the capture (the first file of a joined one).
    pub capture: usize,
    /// Handshakes with the cause there, of all handshakes with the cause's servers there.
    pub handshakes: usize,
    /// All handshakes with the cause's servers there.
    pub server_handshakes: usize,
    /// Server chains with the cause seen there.
    pub chains: usize,
    /// Clients with the cause there.
    pub clients: usize,
    /// Of them, those that failed.
    pub failed_clients: usize,
}

/// Why a handshake that should have shown a chain could not be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum NotJudged {
    /// TLS 1.3 (or DTLS 1.3) without the key log.
    Encrypted,
    /// The key log was given but did not open this handshake.
    Undecrypted,
    /// The capture lost the certificate flight (snap length, gap, end of capture, eviction).
    Truncated,
    /// QUIC: the certificate is in Handshake packets, which need the key log.
    Quic,
    /// A TLS 1.2 renegotiation that stayed encrypted (under the first handshake's keys).
    Renegotiation,
}

impl NotJudged {
    /// Why `h` was not judged, unless it simply had no chain to judge (a resumption, or a
    /// handshake that ended before the server's certificate).
    pub(super) fn of(h: &HandshakeReport) -> Option<NotJudged> {
        match h.status {
            Status::NotVisible if h.protocol == crate::model::Protocol::Quic => {
                Some(NotJudged::Quic)
            }
            Status::NotVisible
                if h.findings.iter().any(|f| {
                    matches!(
                        f.kind,
                        FindingKind::MissingSecret | FindingKind::DecryptionFailed
                    )
                }) =>
            {
                Some(NotJudged::Undecrypted)
            }
            Status::NotVisible
                if h.findings
                    .iter()
                    .any(|f| f.kind == FindingKind::RenegotiationNotVisible) =>
            {
                Some(NotJudged::Renegotiation)
            }
            Status::NotVisible => Some(NotJudged::Encrypted),
            Status::Truncated => Some(NotJudged::Truncated),
            _ => None,
        }
    }

    /// What it is and what to do about it.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            NotJudged::Encrypted => (
                "cannot judge: TLS 1.3 with the certificate encrypted",
                "Pass the clients' key log with --keylog (SSLKEYLOGFILE).",
            ),
            NotJudged::Renegotiation => (
                "cannot judge: a TLS 1.2 renegotiation, encrypted under the first handshake's keys",
                "Pass the clients' key log with --keylog (its CLIENT_RANDOM lines).",
            ),
            NotJudged::Undecrypted => (
                "cannot judge: TLS 1.3 that the key log did not decrypt",
                "Use the key log written during this capture.",
            ),
            NotJudged::Truncated => (
                "cannot judge: certificate flight cut (snap length, gap or end of capture)",
                "Capture again with the full packet size (tcpdump -s 0, dumpcap -s 0).",
            ),
            NotJudged::Quic => (
                "cannot judge: QUIC, certificate in encrypted Handshake packets",
                "Pass the key log with --keylog.",
            ),
        }
    }
}

/// What makes two findings one cause.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A finding kind about one certificate (by SHA-256), about a name (a missing issuer's),
    /// about the leaf of each chain (so that expired leaves on many servers are one cause),
    /// or about the chain as a whole.
    Finding(FindingKind, Subject),
    /// Clients refused a valid chain ending at this anchor.
    Rejected(String),
    NotJudged(NotJudged),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Chain,
    Leaf,
    Certificate(String),
    Name(String),
}

/// What a cause line calls a kind of client: a kind its labels name, its JA4, or neither.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum KindOf<'a> {
    Named(&'a str),
    Ja4(&'a str),
    Unidentified,
}

impl<'a> KindOf<'a> {
    /// A kind the labels name; one that reads as a JA4 or as "unidentified" is that kind, so
    /// that two kinds are one exactly when their text is.
    fn named(kind: &'a str) -> Self {
        match kind {
            "unidentified" => KindOf::Unidentified,
            _ => kind
                .strip_prefix("JA4 ")
                .map_or(KindOf::Named(kind), KindOf::Ja4),
        }
    }
}

/// How one client fared with one cause.
#[derive(Default, Clone, Copy)]
struct Mark {
    failed: bool,
    went_on: bool,
}

#[derive(Default)]
struct PerCapture {
    /// (server, variant) pairs with the cause seen there.
    chains: Vec<(u32, String)>,
    handshakes: usize,
    clients: IpMap<Mark>,
}

struct Tally {
    kind: Cow<'static, str>,
    severity: Severity,
    what: String,
    certificate: Option<String>,
    fix: Cow<'static, str>,
    action: Cow<'static, str>,
    /// Server index → its variants with the cause, and its handshakes with it.
    servers: BTreeMap<u32, (Vec<String>, usize)>,
    chains: usize,
    handshakes: usize,
    clients: IpMap<Mark>,
    failures: BTreeMap<String, usize>,
    first_failure: Option<FrameRef>,
    per_capture: BTreeMap<usize, PerCapture>,
    /// Of its servers, those that also send other chains (see [`fold_inconsistent`]).
    mixed_servers: usize,
    /// A missing issuer: its AIA URLs, and clients seen fetching them.
    coping: Option<Coping>,
}

#[derive(Default)]
struct Coping {
    urls: Vec<String>,
    fetched: Vec<String>,
}

/// The server facts a cause line needs.
pub(super) struct ServerFacts<'a> {
    pub server: Endpoint,
    pub sni: Option<&'a str>,
    /// Its handshakes per capture.
    pub per_capture: &'a BTreeMap<usize, usize>,
    /// The `--export-certs` bundle written for it, if any.
    pub bundle: Option<String>,
}

/// The causes of a report, gathered while its handshakes go by.
#[derive(Default)]
pub(super) struct Causes {
    /// Each capture's first file: the files of a joined capture (a ring buffer's, a TAP's two)
    /// are one capture for the per-capture counts.
    capture_of: Vec<usize>,
    tallies: Vec<Tally>,
    index: HashMap<Key, u32>,
    labels: Labels,
    /// The report has more than one capture (a joined capture is one).
    several_captures: bool,
}

impl Causes {
    /// No causes yet; `capture_of[i]` is the first file of capture `i`'s joined capture.
    pub(super) fn new(capture_of: Vec<usize>) -> Causes {
        Causes {
            several_captures: capture_of.windows(2).any(|w| w[0] != w[1]),
            capture_of,
            labels: Labels {
                kinds: vec![String::new()],
                kind_ids: HashMap::from([(String::new(), 0)]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn tally(&mut self, key: Key, make: impl FnOnce() -> Tally) -> u32 {
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        let i = self.tallies.len() as u32;
        self.tallies.push(make());
        self.index.insert(key, i);
        i
    }

    /// The causes of a new chain variant `v` of server `server` (indices to pass to
    /// [`Causes::handshake`]). `missing_issuer` is the issuer a `missing_issuer` finding names.
    pub(super) fn variant(
        &mut self,
        server: u32,
        v: &ChainVariant,
        missing_issuer: Option<&str>,
    ) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let subject_of = |sha: &str| -> String {
            v.path
                .iter()
                .find(|l| l.sha256 == sha)
                .map(|l| l.subject.clone())
                .or_else(|| {
                    v.certificates
                        .iter()
                        .position(|c| c == sha)
                        .map(|i| v.subjects[i].clone())
                })
                .unwrap_or_else(|| sha.chars().take(16).collect())
        };
        for f in &v.findings {
            if f.severity == Severity::Info || f.kind == FindingKind::RejectedByClient {
                continue;
            }
            let is_leaf = f.certificate.as_deref() == v.certificates.first().map(|s| s.as_str());
            let subject = match (f.kind, &f.certificate) {
                (FindingKind::MissingIssuer, _) => {
                    Subject::Name(missing_issuer.unwrap_or("?").to_string())
                }
                (FindingKind::WrongOrder | FindingKind::ValidationFailed, _) | (_, None) => {
                    Subject::Chain
                }
                (FindingKind::NameMismatch | FindingKind::CaAsLeaf, _) => Subject::Leaf,
                (_, Some(_)) if is_leaf => Subject::Leaf,
                (_, Some(sha)) => Subject::Certificate(sha.clone()),
            };
            let name = match &subject {
                Subject::Certificate(sha) => subject_of(sha),
                Subject::Name(n) => n.clone(),
                Subject::Leaf => "the leaf certificate".into(),
                Subject::Chain => String::new(),
            };
            let what = what(f.kind, &subject, &name);
            let certificate = match &subject {
                Subject::Certificate(sha) => Some(sha.clone()),
                _ => None,
            };
            let coping = matches!(
                f.kind,
                FindingKind::MissingIntermediate | FindingKind::MissingIssuer
            )
            .then(Coping::default);
            let kind = f.kind;
            let i = self.tally(Key::Finding(kind, subject), || {
                Tally::new(kind, what, certificate)
            });
            let t = &mut self.tallies[i as usize];
            if t.coping.is_none() {
                t.coping = coping;
            }
            if let (Some(c), Some(aia)) = (&mut t.coping, &f.aia) {
                for u in &aia.ca_issuers {
                    if !c.urls.contains(u) {
                        c.urls.push(u.clone());
                    }
                }
                for g in &aia.aia_fetches {
                    let s = format!("{} fetched it in frame {}", g.client, g.frame);
                    if c.fetched.len() < NAMED && !c.fetched.contains(&s) {
                        c.fetched.push(s);
                    }
                }
            }
            t.add_chain(server, &v.id);
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    /// Server `server` sends `variants` different chains; `captures[i]` are the captures that
    /// show variant `i`.
    pub(super) fn inconsistent(
        &mut self,
        server: u32,
        variants: &[ChainVariant],
        captures: &[&std::collections::BTreeSet<usize>],
    ) {
        let kind = FindingKind::InconsistentChains;
        let i = self.tally(Key::Finding(kind, Subject::Chain), || {
            Tally::new(
                kind,
                "different chains to different clients (pool members differ)".into(),
                None,
            )
        });
        let t = &mut self.tallies[i as usize];
        for (v, in_captures) in variants.iter().zip(captures) {
            t.add_chain(server, &v.id);
            for &c in in_captures.iter() {
                t.per_capture
                    .entry(c)
                    .or_default()
                    .chains
                    .push((server, v.id.clone()));
            }
        }
    }

    /// The client of `h` refused its valid chain `variant` of server `server` (the cause's
    /// index, to pass to [`Causes::handshake`]).
    pub(super) fn rejected(&mut self, server: u32, variant: &ChainVariant) -> u32 {
        let root = variant
            .path
            .last()
            .map(|l| l.subject.clone())
            .unwrap_or_default();
        let kind = FindingKind::RejectedByClient;
        let i = self.tally(Key::Rejected(root.clone()), || {
            Tally::new(
                kind,
                format!("clients reject a valid chain ending at {root} (the clients most likely lack this root)"),
                None,
            )
        });
        let t = &mut self.tallies[i as usize];
        if !t
            .servers
            .get(&server)
            .is_some_and(|(v, _)| v.contains(&variant.id))
        {
            t.add_chain(server, &variant.id);
        }
        i
    }

    /// The cause for a handshake that could not be judged for `why`.
    pub(super) fn not_judged(&mut self, why: NotJudged) -> u32 {
        self.tally(Key::NotJudged(why), || {
            let (what, fix) = why.words();
            Tally {
                kind: Cow::Borrowed("not_judged"),
                severity: Severity::Warning,
                fix: Cow::Borrowed(fix),
                action: Cow::Borrowed(fix),
                ..Tally::new(FindingKind::ValidationFailed, what.into(), None)
            }
        })
    }

    /// Handshake `h` with server `server` had cause `cause` (with chain `variant`, if it
    /// had one).
    pub(super) fn handshake(
        &mut self,
        cause: u32,
        server: u32,
        variant: Option<&str>,
        h: &HandshakeReport,
        identities: &crate::identity::Identities,
    ) {
        let ip = h.client.ip;
        self.labels.add(h, identities);
        let t = &mut self.tallies[cause as usize];
        t.handshakes += 1;
        t.servers.entry(server).or_default().1 += 1;
        let failed = failure(h.protocol.is_eap(), &h.client_reaction);
        let went_on = h.client_reaction.kind == ReactionKind::Completed;
        if let Some(how) = &failed {
            *t.failures.entry(how.clone()).or_default() += 1;
            if t.first_failure.is_none() {
                // The reaction's own file, when a joined capture put it in a later one.
                t.first_failure = h.client_reaction.frame.map(|frame| FrameRef {
                    capture: h.client_reaction.capture.unwrap_or(h.capture),
                    frame,
                });
            }
        }
        let mark = |m: &mut Mark| {
            m.failed |= failed.is_some();
            m.went_on |= went_on;
        };
        mark(t.clients.entry_or_default(ip));
        let capture = self.capture_of.get(h.capture).copied().unwrap_or(h.capture);
        let c = t.per_capture.entry(capture).or_default();
        c.handshakes += 1;
        if let Some(v) = variant
            && !c.chains.iter().any(|(s, id)| *s == server && id == v)
        {
            c.chains.push((server, v.to_string()));
        }
        // Per-capture counts are told only when there are several captures: with one, the
        // cause's own clients are that capture's (and one more entry per client is saved).
        if self.several_captures {
            mark(c.clients.entry_or_default(ip));
        }
    }

    /// The causes, most impact first: clients that failed, then severity, clients affected and
    /// handshakes.
    pub(super) fn finish<'c>(
        self,
        servers: &[ServerFacts<'_>],
        capture_names: &[String],
        ja4_of: &dyn Fn(IpAddr) -> Option<&'c str>,
    ) -> Vec<Cause> {
        let labels = self.labels;
        let mut tallies = self.tallies;
        fold_inconsistent(&mut tallies, &self.index);
        let mut causes: Vec<Cause> = tallies
            .into_iter()
            .map(|t| t.finish(servers, capture_names, &labels, ja4_of))
            .collect();
        causes.sort_by(|a, b| a.rank().cmp(&b.rank()));
        causes
    }
}

/// A server that sends different chains, one of them with an error, is told in that error's
/// cause ("which also sends other clients another chain"): the inconsistency is why some of its
/// clients work. Only the servers whose chains all lack errors stay in `inconsistent_chains`.
fn fold_inconsistent(tallies: &mut Vec<Tally>, index: &HashMap<Key, u32>) {
    let key = Key::Finding(FindingKind::InconsistentChains, Subject::Chain);
    let Some(&i) = index.get(&key) else {
        return;
    };
    let mixed: Vec<u32> = tallies[i as usize].servers.keys().copied().collect();
    let mut folded: Vec<u32> = Vec::new();
    for t in tallies.iter_mut() {
        if t.severity != Severity::Error || t.kind == "not_judged" {
            continue;
        }
        for s in t.servers.keys() {
            if mixed.contains(s) {
                t.mixed_servers += 1;
                folded.push(*s);
            }
        }
    }
    let t = &mut tallies[i as usize];
    for s in &folded {
        if let Some((variants, _)) = t.servers.remove(s) {
            t.chains -= variants.len();
        }
    }
    for c in t.per_capture.values_mut() {
        c.chains.retain(|(s, _)| !folded.contains(s));
    }
    if t.servers.is_empty() {
        // Indices in `index` are not used after this point.
        tallies.remove(i as usize);
    }
}

impl Tally {
    fn new(kind: FindingKind, what: String, certificate: Option<String>) -> Tally {
        Tally {
            kind: Cow::Borrowed(kind.as_str()),
            severity: kind.severity(),
            what,
            certificate,
            fix: Cow::Borrowed(kind.fix()),
            action: Cow::Borrowed(kind.action()),
            servers: BTreeMap::new(),
            chains: 0,
            handshakes: 0,
            clients: IpMap::default(),
            failures: BTreeMap::new(),
            first_failure: None,
            per_capture: BTreeMap::new(),
            mixed_servers: 0,
            coping: None,
        }
    }

    fn add_chain(&mut self, server: u32, variant: &str) {
        self.chains += 1;
        self.servers
            .entry(server)
            .or_default()
            .0
            .push(variant.to_string());
    }

    fn finish<'c>(
        self,
        servers: &[ServerFacts<'_>],
        capture_names: &[String],
        labels: &Labels,
        ja4_of: &dyn Fn(IpAddr) -> Option<&'c str>,
    ) -> Cause {
        let mut on: Vec<(u32, Vec<String>, usize)> = self
            .servers
            .into_iter()
            .map(|(s, (v, n))| (s, v, n))
            .collect();
        on.sort_by_key(|(s, _, n)| (std::cmp::Reverse(*n), *s));
        let cause_servers: Vec<CauseServer> = on
            .iter()
            .map(|(s, v, n)| CauseServer {
                server: servers[*s as usize].server,
                sni: servers[*s as usize].sni.map(str::to_string),
                variants: v.clone(),
                handshakes: *n,
            })
            .collect();
        let bundles: Vec<String> = if self.coping.is_some() {
            on.iter()
                .filter_map(|(s, _, _)| servers[*s as usize].bundle.clone())
                .collect()
        } else {
            Vec::new()
        };

        // Clients by kind, each client once; names in address order for a stable report.
        // (Strings are made per kind and per example named, not per client.)
        let mut kinds: Vec<ClientKind> = Vec::new();
        let mut kind_index: HashMap<KindOf<'_>, usize> = HashMap::new();
        for (ip, mark) in self.clients.sorted() {
            let of = match labels.kind_of(&ip) {
                Some(0) => ja4_of(ip).map_or(KindOf::Unidentified, KindOf::Ja4),
                Some(k) => KindOf::named(&labels.kinds[k as usize]),
                None => KindOf::Unidentified,
            };
            let k = *kind_index.entry(of).or_insert_with(|| {
                kinds.push(ClientKind {
                    kind: match of {
                        KindOf::Named(k) => k.to_string(),
                        KindOf::Ja4(j) => format!("JA4 {j}"),
                        KindOf::Unidentified => "unidentified".to_string(),
                    },
                    clients: 0,
                    failed: 0,
                    examples: Vec::new(),
                });
                kinds.len() - 1
            });
            let k = &mut kinds[k];
            k.clients += 1;
            k.failed += usize::from(mark.failed);
            if k.examples.len() < NAMED {
                let name = labels.name_of(&ip);
                if !k.examples.contains(&name) {
                    k.examples.push(name);
                }
            }
        }
        kinds.sort_by(|a, b| (b.failed, b.clients, &a.kind).cmp(&(a.failed, a.clients, &b.kind)));
        let failed_clients = self.clients.values().filter(|m| m.failed).count();
        let went_on_clients = self.clients.values().filter(|m| m.went_on).count();

        // Per capture, when there are several and the cause's servers are in more than one.
        let mut in_captures: Vec<usize> = on
            .iter()
            .flat_map(|(s, _, _)| servers[*s as usize].per_capture.keys().copied())
            .collect();
        in_captures.sort_unstable();
        in_captures.dedup();
        let per_capture: Vec<CaptureCount> = if in_captures.len() > 1 {
            in_captures
                .iter()
                .map(|&c| {
                    let mine = self.per_capture.get(&c);
                    CaptureCount {
                        capture: c,
                        handshakes: mine.map_or(0, |p| p.handshakes),
                        server_handshakes: on
                            .iter()
                            .map(|(s, _, _)| {
                                servers[*s as usize]
                                    .per_capture
                                    .get(&c)
                                    .copied()
                                    .unwrap_or(0)
                            })
                            .sum(),
                        chains: mine.map_or(0, |p| p.chains.len()),
                        clients: mine.map_or(0, |p| p.clients.len()),
                        failed_clients: mine
                            .map_or(0, |p| p.clients.values().filter(|m| m.failed).count()),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };

        let coping = self
            .coping
            .as_ref()
            .map(|c| coping_text(c, went_on_clients));
        let mut cause = Cause {
            kind: self.kind,
            severity: self.severity,
            what: self.what,
            certificate: self.certificate,
            servers: cause_servers,
            chains: self.chains,
            mixed_servers: self.mixed_servers,
            handshakes: self.handshakes,
            clients: self.clients.len(),
            failed_clients,
            went_on_clients,
            failures: self.failures,
            first_failure: self.first_failure,
            client_kinds: kinds,
            fix: self.fix,
            action: self.action,
            bundles,
            coping,
            per_capture,
            headline: String::new(),
        };
        cause.headline = cause.sentence(capture_names);
        cause
    }
}

impl Cause {
    /// Its place in the report, smallest first: clients that failed, severity, clients,
    /// handshakes, chains, then by name for a stable order.
    fn rank(&self) -> impl Ord + '_ {
        use std::cmp::Reverse;
        (
            Reverse(self.failed_clients),
            self.severity,
            Reverse(self.clients),
            Reverse(self.handshakes),
            Reverse(self.chains),
            &self.what,
        )
    }

    /// "lyncpool.contoso.test (127.0.0.10:443)", "lyncpool.contoso.test (24 servers:
    /// 10.1.0.1:5061, 10.1.0.4:5061 and 22 more)", names with most handshakes first.
    pub fn servers_text(&self) -> String {
        let mut names: Vec<(Option<&str>, Vec<String>)> = Vec::new();
        for s in &self.servers {
            let name = s.sni.as_deref();
            match names.iter_mut().find(|(n, _)| *n == name) {
                Some((_, eps)) => eps.push(s.server.to_string()),
                None => names.push((name, vec![s.server.to_string()])),
            }
        }
        let mut parts: Vec<String> = Vec::new();
        let mut unnamed: Vec<String> = Vec::new();
        for (name, eps) in names {
            let listed = |eps: &[String]| {
                let mut shown: Vec<String> = eps.iter().take(NAMED).cloned().collect();
                if eps.len() > NAMED {
                    shown.push(format!("{} more", eps.len() - NAMED));
                }
                and_list(&shown)
            };
            match name {
                Some(n) if eps.len() == 1 => parts.push(format!("{n} ({})", eps[0])),
                Some(n) if eps.len() <= NAMED => {
                    parts.push(format!("{n} ({} servers: {})", eps.len(), listed(&eps)))
                }
                Some(n) => parts.push(format!("{n} ({} servers)", eps.len())),
                None => unnamed.extend(eps),
            }
        }
        if !unnamed.is_empty() {
            let mut shown: Vec<String> = unnamed.iter().take(NAMED).cloned().collect();
            if unnamed.len() > NAMED {
                shown.push(format!("{} more servers", unnamed.len() - NAMED));
            }
            parts.push(and_list(&shown));
        }
        if parts.len() > NAMED {
            let more = parts.len() - NAMED;
            parts.truncate(NAMED);
            parts.push(format!("{more} more name{}", plural(more)));
        }
        and_list(&parts)
    }

    /// "1 chain of lyncpool.contoso.test (127.0.0.10:443)".
    pub fn where_text(&self) -> String {
        if self.kind == "not_judged" {
            return format!(
                "{} handshake{} with {}",
                self.handshakes,
                plural(self.handshakes),
                self.servers_text()
            );
        }
        let mixed = match (self.mixed_servers, self.servers.len()) {
            (0, _) => String::new(),
            (1, 1) => ", which sends other clients another chain".to_string(),
            (m, n) if m == n => ", all of which send other clients another chain".to_string(),
            (m, _) => format!(", {m} of which send other clients another chain"),
        };
        format!(
            "{} chain{} of {}{mixed}",
            self.chains,
            plural(self.chains),
            self.servers_text()
        )
    }

    /// "3 clients (2 Polycom: CX3000-11, CX3000-12; 1 unidentified: 127.0.1.21): 2 failed
    /// (3× alert unknown_ca), 1 went on", or "" when the cause counts no clients.
    pub fn clients_text(&self, capture_names: &[String]) -> String {
        if self.clients == 0 {
            return String::new();
        }
        let one_kind = self.client_kinds.len() == 1;
        let mut kinds: Vec<String> = self
            .client_kinds
            .iter()
            .take(NAMED)
            .map(|k| {
                // Names that are only addresses say little beyond a count, unless few.
                let informative = k.examples.iter().any(|e| e.parse::<IpAddr>().is_err());
                if !informative && k.clients > NAMED {
                    return if one_kind {
                        k.kind.clone()
                    } else {
                        format!("{} {}", k.clients, k.kind)
                    };
                }
                let more = k.clients.saturating_sub(k.examples.len());
                let mut names = k.examples.join(", ");
                if more > 0 {
                    names.push_str(&format!(" and {more} more"));
                }
                format!("{} {}: {names}", k.clients, k.kind)
            })
            .collect();
        let more_kinds = self.client_kinds.len().saturating_sub(NAMED);
        if more_kinds > 0 {
            kinds.push(format!("{more_kinds} more kind{}", plural(more_kinds)));
        }
        let outcome = if self.failed_clients == 0 {
            "none failed".to_string()
        } else {
            let how: Vec<String> = self
                .failures
                .iter()
                .map(|(how, n)| {
                    if *n == 1 || self.failures.len() == 1 {
                        how.clone()
                    } else {
                        format!("{how} ×{n}")
                    }
                })
                .collect();
            let n = match self.failed_clients {
                2 if self.clients == 2 => "both".to_string(),
                n if n == self.clients && n > 2 => format!("all {n}"),
                n => n.to_string(),
            };
            let first = match self.first_failure {
                Some(f) if capture_names.len() > 1 => format!(
                    ", first in frame {} of {}",
                    f.frame,
                    // The file itself, without "(and N joined files)".
                    capture_names
                        .get(f.capture)
                        .and_then(|n| n.split(" (and ").next())
                        .unwrap_or("?")
                ),
                Some(f) => format!(", first in frame {}", f.frame),
                None => String::new(),
            };
            format!("{n} failed ({}{first})", how.join(", "))
        };
        let went_on = match self.went_on_clients {
            0 => String::new(),
            n => format!(", {n} went on"),
        };
        format!(
            "{} client{} ({}): {outcome}{went_on}",
            self.clients,
            plural(self.clients),
            kinds.join("; ")
        )
    }

    /// The fix in a few words, and the `--export-certs` file to install: "Send the full
    /// chain: the leaf, then each intermediate. Install bundle-X.pem (--export-certs DIR)."
    pub fn fix_text(&self) -> String {
        match self.bundles.as_slice() {
            [] => self.action.to_string(),
            [one] => format!("{} Install {one} (--export-certs DIR).", self.action),
            many => format!(
                "{} Install bundle-SERVER.pem on each of the {} (--export-certs DIR).",
                self.action,
                many.len()
            ),
        }
    }

    /// "before.pcapng: 4 of 5 handshakes, 2 clients failed; after.pcap: none of 6 handshakes".
    pub fn per_capture_text(&self, capture_names: &[String]) -> String {
        self.per_capture
            .iter()
            .map(|c| {
                let name = capture_names
                    .get(c.capture)
                    .cloned()
                    .unwrap_or_else(|| format!("[{}]", c.capture));
                if self.kind == "inconsistent_chains" {
                    return format!("{name}: {} chain{}", c.chains, plural(c.chains));
                }
                let n = if c.handshakes == 0 {
                    "none".to_string()
                } else {
                    c.handshakes.to_string()
                };
                let failed = match c.failed_clients {
                    0 if c.handshakes == 0 => String::new(),
                    0 => ", no client failed".to_string(),
                    f => format!(", {f} client{} failed", plural(f)),
                };
                format!(
                    "{name}: {n} of {} handshake{}{failed}",
                    c.server_handshakes,
                    plural(c.server_handshakes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The one-line form, for `summary.headlines`, Markdown and HTML.
    fn sentence(&self, capture_names: &[String]) -> String {
        let mut s = format!("{}: {}", self.what, self.where_text());
        let clients = self.clients_text(capture_names);
        if !clients.is_empty() {
            s.push_str("; ");
            s.push_str(&clients);
        }
        s.push('.');
        if !self.per_capture.is_empty() {
            s.push_str(&format!(
                " By capture: {}.",
                self.per_capture_text(capture_names)
            ));
        }
        s.push_str(" Fix: ");
        s.push_str(&self.fix_text());
        s
    }
}

/// "missing intermediate CN=X", "expired leaf", "not a CA: CN=Y".
fn what(kind: FindingKind, subject: &Subject, name: &str) -> String {
    use FindingKind as K;
    match kind {
        // Self-signed leaves on many servers are one cause.
        K::UntrustedRoot if matches!(subject, Subject::Leaf) => {
            "a self-signed leaf certificate, not trusted".into()
        }
        K::MissingIntermediate => format!("missing intermediate {name}"),
        K::MissingIssuer => format!("missing issuer {name} (not in the capture)"),
        K::UntrustedRoot => format!("untrusted root {name}"),
        K::UnknownIssuer => format!("unknown issuer of {name}"),
        K::ChainLoop => format!("chain loop at {name}"),
        K::BadSignature => format!("wrong issuer certificate sent for {name}"),
        K::NotACa => format!("not a CA: {name}"),
        K::PathLengthExceeded => format!("path length exceeded at {name}"),
        K::WrongKeyUsage => format!("wrong key usage in {name}"),
        K::WrongExtendedKeyUsage => format!("wrong extended key usage in {name}"),
        K::NameConstraintViolation => format!("name constraints of {name} violated"),
        K::UnhandledCriticalExtension => format!("unknown critical extension in {name}"),
        K::CaAsLeaf => "a CA certificate sent as the leaf".into(),
        K::Expired => format!("{name} expired"),
        K::NotYetValid => format!("{name} not yet valid"),
        K::NameMismatch => "the leaf does not name the server (name mismatch)".into(),
        K::WeakSignature => format!("weak signature on {name}"),
        K::WeakKey => format!("weak key in {name}"),
        K::UnparsableCertificate => format!("unparsable certificate {name}"),
        K::ValidationFailed => "chain rejected by the validator (validation_failed)".into(),
        K::DuplicateCertificate => format!("{name} sent twice (duplicate_certificate)"),
        K::WrongOrder => "chain not in issuing order (wrong_order)".into(),
        K::UnrelatedCertificate => format!("unrelated certificate {name} in the chain"),
        other => other.as_str().replace('_', " "),
    }
}

/// How a handshake failed for its client, or None if it did not.
fn failure(eap: bool, r: &Reaction) -> Option<String> {
    match r.kind {
        ReactionKind::Alert => Some(format!("alert {}", r.alert.as_deref().unwrap_or("?"))),
        ReactionKind::EncryptedAlert => Some("encrypted alert".into()),
        ReactionKind::Reset => Some("reset".into()),
        ReactionKind::Closed => Some("closed".into()),
        ReactionKind::ServerAborted if eap => Some(if r.detail.contains("Access-Reject") {
            "Access-Reject".into()
        } else if r.detail.contains("EAP-Failure") {
            "EAP-Failure".into()
        } else {
            "refused by the server".into()
        }),
        _ => None,
    }
}

/// Who each client is, as cause lines name it: its kind, an index in `kinds` (0: none known,
/// its JA4 is looked up at the end), and its name. One per client of the report, so kept small:
/// the clients with no kind known are only in `unlabelled` (5 bytes each for IPv4, not 9), and
/// a name is kept only when it is not the client's address.
#[derive(Default)]
struct Labels {
    of: IpMap<u32>,
    unlabelled: IpMap<()>,
    names: IpMap<Box<str>>,
    /// The client kinds the labels name, each once (the first is none).
    kinds: Vec<String>,
    kind_ids: HashMap<String, u32>,
}

impl Labels {
    /// Labels the client of `h`, the first time it is seen.
    fn add(&mut self, h: &HandshakeReport, identities: &crate::identity::Identities) {
        let ip = h.client.ip;
        if self.unlabelled.contains_key(&ip) || self.of.contains_key(&ip) {
            return;
        }
        let (name, kind) = label(h, identities);
        let next = self.kinds.len() as u32;
        let kind = match self.kind_ids.get(&kind) {
            Some(id) => *id,
            None => {
                self.kinds.push(kind.clone());
                self.kind_ids.insert(kind, next);
                next
            }
        };
        if let Some(name) = name
            && name != ip.to_string()
        {
            self.names.insert(ip, name.into_boxed_str());
        }
        if kind == 0 {
            self.unlabelled.insert(ip, ());
        } else {
            self.of.insert(ip, kind);
        }
    }

    /// The name of the client at `ip`: its address unless it has another.
    fn name_of(&self, ip: &IpAddr) -> String {
        self.names
            .get(ip)
            .map_or_else(|| ip.to_string(), |n| n.to_string())
    }

    /// The kind of the client at `ip` (0: none known), if it was labelled.
    fn kind_of(&self, ip: &IpAddr) -> Option<u32> {
        match self.of.get(ip) {
            Some(k) => Some(*k),
            None => self.unlabelled.contains_key(ip).then_some(0),
        }
    }
}

/// A client's name (none: its address) and kind (empty: none known).
fn label(
    h: &HandshakeReport,
    identities: &crate::identity::Identities,
) -> (Option<String>, String) {
    let id = identities.known(h.client.ip);
    let name = id
        .dhcp
        .and_then(|d| d.hostname.clone())
        .or_else(|| id.dns_names.first().cloned())
        .or_else(|| h.eap_identity.clone())
        .or_else(|| h.client.mac().map(|m| crate::model::mac_string(&m)));
    let vendor = if id.router {
        None
    } else {
        id.vendor
            .or_else(|| h.client.mac().and_then(|m| crate::identity::vendor(&m)))
    };
    let kind = match (vendor, id.dhcp.and_then(|d| d.vendor_class.as_deref())) {
        (Some(v), Some(class)) => format!("{v} ({class})"),
        (Some(v), None) => v.to_string(),
        (None, Some(class)) => class.to_string(),
        (None, None) => String::new(),
    };
    (name, kind)
}

/// "But it works in my browser": which clients fail on a chain incomplete as sent, which cope,
/// and why.
fn coping_text(c: &Coping, went_on: usize) -> String {
    let mut s = String::from(
        "Clients that neither fetch nor cache missing issuers fail: desk phones and other embedded clients, Java, OpenSSL-based tools, curl. ",
    );
    if c.urls.is_empty() {
        s.push_str(
            "The certificate names no caIssuers URL (AIA), so no client can fetch the issuer; ",
        );
    } else {
        s.push_str(&format!(
            "Clients that fetch the caIssuers URL {} (Windows CryptoAPI: Edge, Chrome and .NET on Windows; Chrome on Android) cope; ",
            c.urls.join(", ")
        ));
    }
    s.push_str("Firefox copes when the issuer is a publicly disclosed intermediate it preloads (not an enterprise CA); any client that met the intermediate before (another server, an earlier connection) may cope from its cache, which is why a test from an admin's browser often passes.");
    if went_on > 0 {
        s.push_str(&format!(
            " In this capture {went_on} client{} went on",
            plural(went_on)
        ));
        if c.fetched.is_empty() {
            s.push('.');
        } else {
            s.push_str(&format!(" ({}).", c.fetched.join("; ")));
        }
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Cause lines beyond [`MAX_HEADLINES`]: "4 more causes (3 warnings): see the servers below".
pub fn more_causes(causes: &[Cause]) -> Option<String> {
    let more = causes.len().checked_sub(MAX_HEADLINES).filter(|n| *n > 0)?;
    Some(format!(
        "{more} more cause{}: see the servers below and summary.causes in --format json.",
        plural(more)
    ))
}
