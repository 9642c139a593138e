//! Stage 5: handshakes to chain diagnoses.
//!
//! From the leaf, the path is built with the certificates the server sent, then the trust
//! anchors, then every certificate seen anywhere in the captures; an issuer is a certificate
//! whose subject is the child's issuer name (and whose key identifier matches, when both say),
//! confirmed by verifying the child's signature with its key. A link that had to come from
//! elsewhere in the capture is a missing intermediate: the chain *as sent* is incomplete, and
//! the report names the certificate and where it was seen. The search is bounded in depth.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::pki::{CertMeta, CertStore, Sha, SigCheck, TrustStore, check_signature};

/// The verdict on one handshake's certificate chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A path to a trust anchor exists from what the server sent.
    Complete,
    /// An intermediate needed for the path was not sent.
    Incomplete,
    /// The path ends at a self-signed certificate that is not a trust anchor.
    Untrusted,
    /// The last issuer is found nowhere: neither sent, nor in the capture, nor an anchor.
    Undetermined,
    /// TLS 1.3: the Certificate message is encrypted.
    NotVisible,
    /// The server sent no certificate (resumed session, PSK, or the handshake failed before).
    NoCertificate,
    /// The capture ends, or has a gap, inside the server's certificate flight.
    Truncated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Incomplete => "incomplete",
            Status::Untrusted => "untrusted",
            Status::Undetermined => "undetermined",
            Status::NotVisible => "not_visible",
            Status::NoCertificate => "no_certificate",
            Status::Truncated => "truncated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// Every kind of finding, one per thing that can be wrong (see docs/report.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    MissingIntermediate,
    UntrustedRoot,
    UnknownIssuer,
    ChainLoop,
    BadSignature,
    Expired,
    NotYetValid,
    NameMismatch,
    DuplicateCertificate,
    WrongOrder,
    UnrelatedCertificate,
    WeakSignature,
    WeakKey,
    ContainsAnchor,
    UnparsableCertificate,
    InconsistentChains,
    MissingSecret,
    DecryptionFailed,
}

impl FindingKind {
    pub fn severity(self) -> Severity {
        use FindingKind::*;
        match self {
            MissingIntermediate
            | UntrustedRoot
            | BadSignature
            | Expired
            | NotYetValid
            | NameMismatch
            | ChainLoop
            | UnparsableCertificate => Severity::Error,
            UnknownIssuer | DuplicateCertificate | WrongOrder | UnrelatedCertificate
            | WeakSignature | WeakKey | InconsistentChains | MissingSecret | DecryptionFailed => {
                Severity::Warning
            }
            ContainsAnchor => Severity::Info,
        }
    }

    /// What to change on the server (or in the capture) to clear it: docs/report.md's advice.
    pub fn fix(self) -> &'static str {
        use FindingKind::*;
        match self {
            MissingIntermediate => {
                "Configure the full chain: the server certificate, then every intermediate CA up to (not including) the root. On a load balancer doing SSL offload attach the chain to the SSL profile (Cisco ACE: chain group; F5: Chain in the client SSL profile; NetScaler: link the CA certificate); Apache/nginx: the full-chain file; IIS: the intermediate in the Intermediate Certification Authorities store."
            }
            ChainLoop => {
                "Send a chain that ends at a root the clients trust: the leaf, then each issuing CA in order; remove cross-signed CA certificates that point back down the chain."
            }
            UnknownIssuer => {
                "If the issuer is your own root, pass it with --trust and run again; if it is an intermediate, send it after the certificate it issued."
            }
            UntrustedRoot => {
                "Use a certificate from a CA the clients trust, or distribute this root to the clients (and pass it with --trust here)."
            }
            BadSignature => {
                "Replace the intermediate with the one that actually issued the server certificate (its Subject Key Identifier matches the leaf's Authority Key Identifier)."
            }
            Expired => {
                "Renew the certificate (for an intermediate, download the current one from the CA) and reload the server."
            }
            NotYetValid => {
                "Check the server's and the clients' clocks; install certificates only once they are valid."
            }
            NameMismatch => {
                "Issue a certificate with this name in its Subject Alternative Name, or bind the right certificate to this name or virtual server."
            }
            UnparsableCertificate => {
                "Re-export the certificate file (PEM/DER confusion or a truncated file) and reload the server."
            }
            DuplicateCertificate => {
                "Remove the duplicate: usually the server certificate is configured on its own and again as the first entry of the chain file or chain group."
            }
            WrongOrder => "Order the chain file: the leaf first, then each certificate's issuer.",
            UnrelatedCertificate => {
                "Remove the certificate that is not on the path from the chain file."
            }
            WeakSignature => "Reissue the certificate signed with SHA-256 or better.",
            WeakKey => {
                "Reissue the certificate with a 2048-bit (or larger) RSA key or a P-256 key."
            }
            ContainsAnchor => {
                "Optional: leave the root out of the chain (clients use their own copy)."
            }
            InconsistentChains => {
                "Make every pool member (or the SSL-offload profile and the servers) send the same complete chain, then check again with a new capture."
            }
            MissingSecret => {
                "Nothing on the server: capture again with the key log this client wrote during the capture."
            }
            DecryptionFailed => {
                "Nothing on the server: check that the key log belongs to this capture."
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        use FindingKind::*;
        match self {
            MissingIntermediate => "missing_intermediate",
            UntrustedRoot => "untrusted_root",
            UnknownIssuer => "unknown_issuer",
            ChainLoop => "chain_loop",
            BadSignature => "bad_signature",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            NameMismatch => "name_mismatch",
            DuplicateCertificate => "duplicate_certificate",
            WrongOrder => "wrong_order",
            UnrelatedCertificate => "unrelated_certificate",
            WeakSignature => "weak_signature",
            WeakKey => "weak_key",
            ContainsAnchor => "contains_anchor",
            UnparsableCertificate => "unparsable_certificate",
            InconsistentChains => "inconsistent_chains",
            MissingSecret => "missing_secret",
            DecryptionFailed => "decryption_failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
    /// What to change to clear it ([`FindingKind::fix`]).
    pub fix: Cow<'static, str>,
    /// SHA-256 of the certificate the finding is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The first frame that shows it (the Certificate message), filled in by the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// A Wireshark display filter showing every packet of the handshakes it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// For a missing issuer with an AIA URL: where it is published and whether the capture
    /// shows it fetched (boxed: most findings have none).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub aia: Option<Box<Aia>>,
}

/// Where a missing issuer is published, and its fetches in the capture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aia {
    /// The caIssuers URLs of the certificate whose issuer is missing. Clients that fetch
    /// them complete the chain themselves.
    pub ca_issuers: Vec<String>,
    /// Plain-HTTP fetches of one of them seen in the capture.
    pub aia_fetches: Vec<crate::identity::HttpGet>,
}

impl Finding {
    /// An [`Aia`] for these URLs, when there are any.
    fn with_aia(mut self, urls: &[String]) -> Self {
        if !urls.is_empty() {
            self.aia = Some(Box::new(Aia {
                ca_issuers: urls.to_vec(),
                aia_fetches: Vec::new(),
            }));
        }
        self
    }
}

impl Finding {
    pub fn new(kind: FindingKind, message: String, cert: Option<&Sha>) -> Self {
        Finding {
            kind,
            severity: kind.severity(),
            message,
            fix: kind.fix().into(),
            certificate: cert.map(hex::encode),
            frame: None,
            filter: None,
            aia: None,
        }
    }
}

/// Where a link of the path came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum LinkSource {
    /// Sent by the server at this position (0 = first).
    Sent { position: usize },
    /// Not sent; found elsewhere in the capture.
    Capture {
        capture: usize,
        stream: u64,
        frame: u64,
        server: String,
    },
    /// A trust anchor (not sent).
    Anchor,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathLink {
    pub sha256: String,
    pub subject: String,
    #[serde(flatten)]
    pub source: LinkSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub status: Status,
    /// The certification path from the leaf up, as far as it could be built.
    pub path: Vec<PathLink>,
    pub findings: Vec<Finding>,
}

/// Longest path considered (hostile chains cannot make the search explode).
const MAX_DEPTH: usize = 12;

/// What a chain is checked with.
pub struct Checker<'a> {
    pub store: &'a CertStore,
    pub trust: &'a TrustStore,
    sig_cache: HashMap<(Sha, Sha), SigCheck>,
}

enum Found {
    Sent(usize, Sha),
    Anchor(Sha),
    Capture(Sha),
}

impl<'a> Checker<'a> {
    pub fn new(store: &'a CertStore, trust: &'a TrustStore) -> Self {
        Checker {
            store,
            trust,
            sig_cache: HashMap::new(),
        }
    }

    fn der(&self, sha: &Sha) -> Option<&[u8]> {
        self.store
            .get(sha)
            .or_else(|| self.trust.store.get(sha))
            .map(|c| c.der.as_slice())
    }

    fn meta(&self, sha: &Sha) -> Option<&'a CertMeta> {
        self.store.meta(sha).or_else(|| self.trust.store.meta(sha))
    }

    fn signs(&mut self, issuer: &Sha, child: &Sha) -> SigCheck {
        if let Some(r) = self.sig_cache.get(&(*child, *issuer)) {
            return *r;
        }
        let r = match (self.der(child), self.der(issuer)) {
            (Some(c), Some(i)) => check_signature(c, i),
            _ => SigCheck::Unsupported,
        };
        self.sig_cache.insert((*child, *issuer), r);
        r
    }

    /// True when `cand` may be the issuer of `child` by name and key identifiers.
    fn name_match(child: &CertMeta, cand: &CertMeta) -> bool {
        cand.subject_raw == child.issuer_raw
            && match (&child.aki, &cand.ski) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    }

    /// Diagnoses the chain a server sent (`sent`, in order) at Unix time `at_secs`.
    pub fn diagnose(&mut self, sent: &[Sha], at_secs: i64, sni: Option<&str>) -> Diagnosis {
        let mut findings = Vec::new();
        let mut path = Vec::new();
        if sent.is_empty() {
            return Diagnosis {
                status: Status::NoCertificate,
                path,
                findings,
            };
        }
        for (i, sha) in sent.iter().enumerate() {
            if let Some(Err(e)) = self.store.get(sha).map(|c| &c.meta) {
                findings.push(Finding::new(
                    FindingKind::UnparsableCertificate,
                    format!("The certificate at position {i} could not be parsed as X.509 ({e})."),
                    Some(sha),
                ));
            }
        }
        let Some(leaf) = self.meta(&sent[0]) else {
            return Diagnosis {
                status: Status::Undetermined,
                path,
                findings,
            };
        };

        let mut status = Status::Complete;
        let mut missing_any = false;
        let mut visited: HashSet<Sha> = HashSet::new();
        let mut cur_sha = sent[0];
        let mut cur = leaf;
        let mut sent_positions = vec![0usize];
        path.push(PathLink {
            sha256: hex::encode(cur_sha),
            subject: cur.summary.subject.clone(),
            source: LinkSource::Sent { position: 0 },
        });
        visited.insert(cur_sha);
        loop {
            if self.trust.is_anchor(&cur_sha, cur) {
                break;
            }
            if cur.self_issued && self.signs(&cur_sha, &cur_sha) != SigCheck::Invalid {
                status = Status::Untrusted;
                findings.push(Finding::new(
                    FindingKind::UntrustedRoot,
                    format!(
                        "The chain ends at the self-signed certificate {} which is not a trust anchor here. If clients are meant to trust it (an enterprise root), pass it with --trust; otherwise the server needs a certificate from a CA the clients trust.",
                        cur.name()
                    ),
                    Some(&cur_sha),
                ));
                break;
            }
            if path.len() >= MAX_DEPTH {
                status = Status::Undetermined;
                break;
            }
            let (found, bad_sig) = self.find_issuer(&cur_sha, cur, sent, &visited);
            if let Some(bad) = bad_sig
                && found.is_none()
            {
                let bm = self.meta(&bad);
                findings.push(Finding::new(
                        FindingKind::BadSignature,
                        format!(
                            "{} names {} as its issuer, but the signature does not verify with that certificate's key: the wrong issuer certificate (e.g. an old one after a re-key) was configured, or the certificate is forged.",
                            cur.name(),
                            bm.map(|m| m.name()).unwrap_or_default()
                        ),
                        Some(&cur_sha),
                    ));
            }
            let Some(found) = found else {
                if status != Status::Untrusted {
                    status = Status::Undetermined;
                }
                // Its only issuer is already on the path: the certificates issue each other.
                if let (Some(Found::Sent(_, sha) | Found::Capture(sha) | Found::Anchor(sha)), _) =
                    self.find_issuer(&cur_sha, cur, sent, &HashSet::new())
                    && visited.contains(&sha)
                {
                    let issuer = self.meta(&sha).map(|m| m.name()).unwrap_or_default();
                    findings.push(Finding::new(
                        FindingKind::ChainLoop,
                        format!(
                            "{} is issued by {issuer}, which is already on the path below it: the certificates issue each other in a loop that never reaches a root. The server's chain file holds cross-issued CA certificates instead of the chain to a trusted root.",
                            cur.name()
                        ),
                        Some(&cur_sha),
                    ));
                    break;
                }
                let hint = if cur.summary.ca_issuers.is_empty() {
                    String::new()
                } else {
                    format!(
                        " Its caIssuers URL is {}.",
                        cur.summary.ca_issuers.join(", ")
                    )
                };
                let f = Finding::new(
                    FindingKind::UnknownIssuer,
                    format!(
                        "The issuer of {} ({}) was not sent, is not a trust anchor, and appears nowhere in the capture. If it is a root your clients trust, pass it with --trust FILE; if it is an intermediate CA, the server must send it.{hint}",
                        cur.name(),
                        cur.summary.issuer
                    ),
                    Some(&cur_sha),
                );
                findings.push(f.with_aia(&cur.summary.ca_issuers));
                break;
            };
            let (next_sha, source) = match found {
                Found::Sent(pos, sha) => {
                    sent_positions.push(pos);
                    (sha, LinkSource::Sent { position: pos })
                }
                Found::Anchor(sha) => (sha, LinkSource::Anchor),
                Found::Capture(sha) => {
                    missing_any = true;
                    let seen = self
                        .store
                        .get(&sha)
                        .and_then(|c| c.sightings.first().copied());
                    let m = self.meta(&sha);
                    let where_seen = match seen {
                        Some(s) => format!(
                            "; it was seen in this capture in tcp.stream {} (frame {}), sent by {}",
                            s.stream, s.frame, s.server
                        ),
                        None => String::new(),
                    };
                    let f = Finding::new(
                        FindingKind::MissingIntermediate,
                        format!(
                            "The server did not send the intermediate CA {} that issued {}{where_seen}. Clients that do not fetch missing intermediates themselves will reject this chain (typically with alert unknown_ca).",
                            m.map(|m| m.name()).unwrap_or_default(),
                            cur.name()
                        ),
                        Some(&sha),
                    );
                    findings.push(f.with_aia(&cur.summary.ca_issuers));
                    let source = match seen {
                        Some(s) => LinkSource::Capture {
                            capture: s.capture,
                            stream: s.stream,
                            frame: s.frame,
                            server: s.server.to_string(),
                        },
                        None => LinkSource::Anchor,
                    };
                    (sha, source)
                }
            };
            let Some(next) = self.meta(&next_sha) else {
                break;
            };
            path.push(PathLink {
                sha256: hex::encode(next_sha),
                subject: next.summary.subject.clone(),
                source,
            });
            visited.insert(next_sha);
            cur_sha = next_sha;
            cur = next;
        }
        if missing_any {
            status = Status::Incomplete;
        }

        let related = self.related_positions(sent, &sent_positions);
        self.sent_list_findings(sent, &sent_positions, &related, &mut findings);
        self.path_findings(sent, &path, at_secs, &mut findings);
        if let Some(name) = sni
            && !name_matches(leaf, name)
        {
            findings.push(Finding::new(
                FindingKind::NameMismatch,
                format!(
                    "The client asked for {name} (SNI) but the server certificate {} is for {}.",
                    leaf.name(),
                    names_of(leaf)
                ),
                Some(&sent[0]),
            ));
        }
        findings.sort_by_key(|f| (f.severity, f.kind));
        Diagnosis {
            status,
            path,
            findings,
        }
    }

    /// Finds the issuer of `cur`: in the sent list, then the anchors, then the capture.
    /// Returns the issuer found and, separately, a name-matching candidate whose signature failed.
    fn find_issuer(
        &mut self,
        cur_sha: &Sha,
        cur: &CertMeta,
        sent: &[Sha],
        visited: &HashSet<Sha>,
    ) -> (Option<Found>, Option<Sha>) {
        let mut bad = None;
        for (pos, sha) in sent.iter().enumerate() {
            if visited.contains(sha) {
                continue;
            }
            let Some(m) = self.meta(sha) else { continue };
            if Self::name_match(cur, m) {
                match self.signs(sha, cur_sha) {
                    SigCheck::Invalid => bad = Some(*sha),
                    _ => return (Some(Found::Sent(pos, *sha)), bad),
                }
            }
        }
        let anchors: Vec<Sha> = self.trust.store.with_subject(&cur.issuer_raw).to_vec();
        for sha in anchors {
            let Some(m) = self.trust.store.meta(&sha) else {
                continue;
            };
            if Self::name_match(cur, m) && self.signs(&sha, cur_sha) != SigCheck::Invalid {
                return (Some(Found::Anchor(sha)), bad);
            }
        }
        let others: Vec<Sha> = self.store.with_subject(&cur.issuer_raw).to_vec();
        for sha in others {
            if visited.contains(&sha) || sent.contains(&sha) {
                continue;
            }
            let Some(m) = self.store.meta(&sha) else {
                continue;
            };
            if Self::name_match(cur, m) && self.signs(&sha, cur_sha) != SigCheck::Invalid {
                // A root seen in the capture that is also an anchor was handled above.
                return (Some(Found::Capture(sha)), bad);
            }
        }
        (None, bad)
    }

    /// Positions of sent certificates that are on the path, or that issued one of those: a
    /// cross-signed chain goes on past the anchor towards an older root (e.g. Amazon Root CA 1
    /// cross-signed by Starfield), which is not an unrelated certificate.
    fn related_positions(&mut self, sent: &[Sha], on_path: &[usize]) -> Vec<usize> {
        let mut related: Vec<usize> = on_path.to_vec();
        loop {
            let mut added = false;
            for (i, sha) in sent.iter().enumerate() {
                if related.iter().any(|&r| sent[r] == *sha) {
                    continue;
                }
                let Some(cand) = self.meta(sha) else { continue };
                let issues_one = related.clone().into_iter().any(|r| {
                    let child_sha = sent[r];
                    self.meta(&child_sha)
                        .is_some_and(|child| Self::name_match(child, cand))
                        && self.signs(sha, &child_sha) != SigCheck::Invalid
                });
                if issues_one {
                    related.push(i);
                    added = true;
                }
            }
            if !added {
                return related;
            }
        }
    }

    fn sent_list_findings(
        &self,
        sent: &[Sha],
        on_path: &[usize],
        related: &[usize],
        findings: &mut Vec<Finding>,
    ) {
        let name = |sha: &Sha| self.meta(sha).map(|m| m.name()).unwrap_or_default();
        // Duplicates.
        let mut seen: Vec<(Sha, Vec<usize>)> = Vec::new();
        for (i, sha) in sent.iter().enumerate() {
            match seen.iter_mut().find(|(s, _)| s == sha) {
                Some((_, v)) => v.push(i),
                None => seen.push((*sha, vec![i])),
            }
        }
        for (sha, positions) in &seen {
            if positions.len() > 1 {
                findings.push(Finding::new(
                    FindingKind::DuplicateCertificate,
                    format!(
                        "{} was sent {} times (positions {}). Harmless to most clients, but a sign of a misconfigured chain (e.g. the server certificate configured both on its own and inside the chain file).",
                        name(sha),
                        positions.len(),
                        list_positions(positions)
                    ),
                    Some(sha),
                ));
            }
        }
        // Order: the sent certificates on the path must come in path order.
        if on_path.windows(2).any(|w| w[1] < w[0]) {
            findings.push(Finding::new(
                FindingKind::WrongOrder,
                format!(
                    "The certificates were not sent in issuing order (the path uses positions {}); TLS up to 1.2 requires each certificate to be followed by its issuer, and strict clients reject other orders.",
                    on_path
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
                None,
            ));
        }
        // Certificates that are on no path (each named up to a point, then counted).
        let unrelated: Vec<usize> = (0..sent.len())
            .filter(|&i| !related.iter().any(|p| sent[*p] == sent[i]))
            .collect();
        if unrelated.len() > MAX_LISTED {
            findings.push(Finding::new(
                FindingKind::UnrelatedCertificate,
                format!(
                    "{} of the certificates sent (positions {}) are not part of the chain from the server certificate; remove them from the server's chain file.",
                    unrelated.len(),
                    list_positions(&unrelated)
                ),
                None,
            ));
            return;
        }
        for i in unrelated {
            let sha = &sent[i];
            {
                findings.push(Finding::new(
                    FindingKind::UnrelatedCertificate,
                    format!(
                        "The certificate at position {i} ({}) is not part of the chain from the server certificate; remove it from the server's chain file.",
                        name(sha)
                    ),
                    Some(sha),
                ));
            }
        }
    }

    fn path_findings(
        &mut self,
        sent: &[Sha],
        path: &[PathLink],
        at_secs: i64,
        findings: &mut Vec<Finding>,
    ) {
        for link in path {
            let Some(sha) = crate::pki::sha_from_hex(&link.sha256) else {
                continue;
            };
            let Some(m) = self.meta(&sha) else { continue };
            let is_sent = matches!(link.source, LinkSource::Sent { .. });
            let is_anchor = self.trust.is_anchor(&sha, m);
            if is_sent && is_anchor && m.self_issued {
                findings.push(Finding::new(
                    FindingKind::ContainsAnchor,
                    format!(
                        "The server sent the root CA {} (position {}). Clients already have their roots, so this only adds bytes; it can be left out of the chain.",
                        m.name(),
                        sent.iter().position(|s| *s == sha).unwrap_or(0)
                    ),
                    Some(&sha),
                ));
            }
            // Anchors are trusted as keys: their own validity and signature do not count.
            if is_anchor && !is_sent {
                continue;
            }
            if at_secs < m.not_before {
                findings.push(Finding::new(
                    FindingKind::NotYetValid,
                    format!(
                        "{} is not valid until {}, after the handshake ({}); check the clocks, or the certificate was installed too early.",
                        m.name(),
                        m.summary.not_before,
                        crate::capture::Timestamp::from_parts(at_secs, 0).to_rfc3339()
                    ),
                    Some(&sha),
                ));
            } else if at_secs > m.not_after {
                findings.push(Finding::new(
                    FindingKind::Expired,
                    format!(
                        "{} expired on {}, before the handshake ({}).",
                        m.name(),
                        m.summary.not_after,
                        crate::capture::Timestamp::from_parts(at_secs, 0).to_rfc3339()
                    ),
                    Some(&sha),
                ));
            }
            if m.weak_signature && !(m.self_issued && is_anchor) {
                findings.push(Finding::new(
                    FindingKind::WeakSignature,
                    format!(
                        "{} is signed with {}, which clients no longer accept.",
                        m.name(),
                        m.summary.signature_algorithm
                    ),
                    Some(&sha),
                ));
            }
            let weak_key = match m.key_kind {
                "RSA" | "DSA" => m.key_bits > 0 && m.key_bits < 2048,
                "EC" => m.key_bits > 0 && m.key_bits < 224,
                _ => false,
            };
            if weak_key {
                findings.push(Finding::new(
                    FindingKind::WeakKey,
                    format!(
                        "{} has a {}-bit {} key; 2048 bits (RSA) or 256 bits (EC) is the minimum clients accept today.",
                        m.name(),
                        m.key_bits,
                        m.key_kind
                    ),
                    Some(&sha),
                ));
            }
        }
    }
}

fn names_of(m: &CertMeta) -> String {
    if !m.dns_names.is_empty() {
        m.dns_names.join(", ")
    } else if !m.common_names.is_empty() {
        m.common_names.join(", ")
    } else {
        "no DNS name".into()
    }
}

/// RFC 6125 matching: SAN DNS names (CN only when there is no SAN), `*` as the whole leftmost label.
pub fn name_matches(m: &CertMeta, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let candidates = if m.dns_names.is_empty() {
        &m.common_names
    } else {
        &m.dns_names
    };
    candidates.iter().any(|pat| {
        let pat = pat.trim_end_matches('.').to_ascii_lowercase();
        if let Some(rest) = pat.strip_prefix("*.") {
            match host.split_once('.') {
                Some((first, tail)) => !first.is_empty() && tail == rest,
                None => false,
            }
        } else {
            pat == host
        }
    })
}

/// The chain variants one server sent: used for `inconsistent_chains`.
pub fn inconsistent_message(server: &SocketAddr, sni: Option<&str>, variants: usize) -> String {
    format!(
        "{}{} sent {variants} different certificate chains to different clients. Behind a load balancer this usually means the pool members (or an SSL-offload profile and the servers) are configured differently; clients that get the short chain fail while others work.",
        server,
        sni.map(|s| format!(" ({s})")).unwrap_or_default()
    )
}

/// Most positions (or certificates) listed one by one in a finding; the rest are counted.
const MAX_LISTED: usize = 20;

/// "1, 2, 3" — or the first [`MAX_LISTED`] and how many more.
fn list_positions(positions: &[usize]) -> String {
    let shown: Vec<String> = positions
        .iter()
        .take(MAX_LISTED)
        .map(|p| p.to_string())
        .collect();
    let mut s = shown.join(", ");
    if positions.len() > MAX_LISTED {
        s.push_str(&format!(" and {} more", positions.len() - MAX_LISTED));
    }
    s
}
