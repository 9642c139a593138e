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

use crate::pki::constraints;
pub use crate::pki::findings::{FindingKind, Severity};
use crate::pki::verdict::{self, Purpose, Strict, Verdict};
use crate::pki::{CertMeta, CertStore, Sha, SigCheck, TrustSource, TrustStore, check_signature};

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
    /// Its name in the report.
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

/// One thing wrong with a chain (or a server), with its evidence and fix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// What is wrong ([`FindingKind`]).
    pub kind: FindingKind,
    /// How bad it is (the kind's).
    pub severity: Severity,
    /// What is wrong, for a person, naming the certificates and where they were seen.
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
    /// The capture `frame` and `filter` are in (chain variants and servers, whose handshakes
    /// may come from several captures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<usize>,
    /// The same evidence in the other captures the handshakes came from (Wireshark numbers
    /// frames and streams per file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_evidence: Vec<Evidence>,
    /// For a missing issuer with an AIA URL: where it is published and whether the capture
    /// shows it fetched (boxed: most findings have none).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub aia: Option<Box<Aia>>,
}

/// Where a finding shows in one capture: the first frame and a display filter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Evidence {
    /// Index of the capture in the report.
    pub capture: usize,
    /// The first frame that shows it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// The Wireshark display filter that shows it there.
    pub filter: String,
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
    /// A finding of `kind` about `cert` (its evidence is filled in by the report).
    pub fn new(kind: FindingKind, message: String, cert: Option<&Sha>) -> Self {
        Finding {
            kind,
            severity: kind.severity(),
            message,
            fix: kind.fix().into(),
            certificate: cert.map(hex::encode),
            frame: None,
            filter: None,
            capture: None,
            more_evidence: Vec::new(),
            aia: None,
        }
    }
}

/// Where a link of the path came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum LinkSource {
    /// Sent by the server at this position (0 = first).
    Sent {
        /// Its position in the Certificate message.
        position: usize,
    },
    /// Not sent; found elsewhere in the capture.
    Capture {
        /// "tcp" or "udp": which of Wireshark's stream indices `stream` is.
        transport: String,
        /// Index of the capture in the report.
        capture: usize,
        /// The stream it was sent on.
        stream: u64,
        /// The frame that completed that Certificate message.
        frame: u64,
        /// Who sent it there.
        server: String,
    },
    /// Not sent; known from a `--trust` file that holds it as an intermediate.
    TrustFile {
        /// The file given with `--trust`.
        file: String,
    },
    /// A trust anchor (not sent).
    Anchor,
}

/// One certificate of a certification path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathLink {
    /// SHA-256 of the certificate, hex.
    pub sha256: String,
    /// Its subject.
    pub subject: String,
    /// Where it came from: sent, seen elsewhere, a `--trust` file, an anchor.
    #[serde(flatten)]
    pub source: LinkSource,
}

/// What chainsniff makes of one chain.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// How complete the chain is.
    pub status: Status,
    /// What a strict client that trusts exactly these anchors decides.
    pub verdict: Verdict,
    /// The certification path from the leaf up, as far as it could be built.
    pub path: Vec<PathLink>,
    /// What is wrong with it, errors first.
    pub findings: Vec<Finding>,
}

/// Longest path considered (hostile chains cannot make the search explode).
const MAX_DEPTH: usize = 12;

/// What the strict verdict depends on: the chain, the name, and which of the sent
/// certificates were in their validity period (so that handshakes at other times reuse it).
type StrictKey = (Vec<Sha>, Option<String>, Vec<(bool, bool)>, bool);

/// What a whole diagnosis depends on: the chain, the name, what the certificate is for, and
/// the handshake's time as far as any certificate's validity tells it apart (its
/// [`Checker::time_class`]).
type DiagnosisKey = (
    Vec<Sha>,
    Option<String>,
    Purpose,
    Option<constraints::KeyUse>,
    usize,
);

/// Most diagnoses a [`Checker`] keeps for reuse; when full it starts again (a capture whose
/// every handshake asked for another name must not keep them all).
const MAX_DIAGNOSES: usize = 4096;

/// What a chain is checked with.
pub struct Checker<'a> {
    /// Every certificate seen in the captures.
    pub store: &'a CertStore,
    /// The trust anchors and the `--trust` intermediates.
    pub trust: &'a TrustStore,
    sig_cache: HashMap<(Sha, Sha), SigCheck>,
    strict_cache: HashMap<StrictKey, Strict>,
    /// Every validity bound of every certificate the checker can reach, sorted: the
    /// not-before times and the second after each not-after time.
    bounds: Vec<i64>,
    diagnoses: HashMap<DiagnosisKey, Diagnosis>,
}

enum Found {
    Sent(usize, Sha),
    Anchor(Sha),
    Capture(Sha),
    TrustFile(Sha),
}

/// How a certificate found in one of the stores is told apart.
type FoundAs = fn(Sha) -> Found;

impl Found {
    fn sha(&self) -> Sha {
        match self {
            Found::Sent(_, s) | Found::Anchor(s) | Found::Capture(s) | Found::TrustFile(s) => *s,
        }
    }
}

impl<'a> Checker<'a> {
    /// A checker over these certificates and anchors (its caches are its own: one per thread).
    pub fn new(store: &'a CertStore, trust: &'a TrustStore) -> Self {
        let mut bounds: Vec<i64> = [store, &trust.store, &trust.known]
            .into_iter()
            .flat_map(|s| s.order.iter().filter_map(|sha| s.meta(sha)))
            .flat_map(|m| [m.not_before, m.not_after.saturating_add(1)])
            // The strict validator takes times before 1970 as 1970.
            .chain([0])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        Checker {
            store,
            trust,
            sig_cache: HashMap::new(),
            strict_cache: HashMap::new(),
            bounds,
            diagnoses: HashMap::new(),
        }
    }

    /// Which interval between validity bounds `at_secs` falls in. Two times of one class are
    /// on the same side of every bound, so every certificate is valid at both or at neither
    /// (not yet valid, or expired, alike): a chain diagnosed at one is diagnosed the same at
    /// the other, but for the time itself in the text of an expiry finding.
    fn time_class(&self, at_secs: i64) -> usize {
        self.bounds.partition_point(|b| *b <= at_secs)
    }

    fn der(&self, sha: &Sha) -> Option<&'a [u8]> {
        self.store
            .get(sha)
            .or_else(|| self.trust.store.get(sha))
            .or_else(|| self.trust.known.get(sha))
            .map(|c| c.der.as_slice())
    }

    fn meta(&self, sha: &Sha) -> Option<&'a CertMeta> {
        self.store
            .meta(sha)
            .or_else(|| self.trust.store.meta(sha))
            .or_else(|| self.trust.known.meta(sha))
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

    /// True when `cand` may be the issuer of `child` by name; the signature decides.
    fn name_match(child: &CertMeta, cand: &CertMeta) -> bool {
        cand.subject_raw == child.issuer_raw
    }

    /// True when the key identifiers do not contradict (tried first among same-name issuers).
    fn keyid_match(child: &CertMeta, cand: &CertMeta) -> bool {
        match (&child.aki, &cand.ski) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }

    /// The strict verdict on `sent` (cached per chain, name and validity).
    fn strict(
        &mut self,
        sent: &[Sha],
        at_secs: i64,
        name: Option<&str>,
        purpose: Purpose,
    ) -> Strict {
        let validity = sent
            .iter()
            .map(|s| {
                self.meta(s).map_or((false, false), |m| {
                    (at_secs < m.not_before, at_secs > m.not_after)
                })
            })
            .collect();
        let key = (
            sent.to_vec(),
            name.map(str::to_ascii_lowercase),
            validity,
            purpose == Purpose::ServerAuth,
        );
        if let Some(r) = self.strict_cache.get(&key) {
            return r.clone();
        }
        let ders: Vec<&[u8]> = sent.iter().filter_map(|s| self.der(s)).collect();
        let r = if ders.len() == sent.len() {
            verdict::strict_verify(&ders, &self.trust.anchors, at_secs, name, purpose)
        } else {
            Strict::Invalid(verdict::StrictError {
                error: "BadDer".into(),
                name_only: false,
            })
        };
        self.strict_cache.insert(key, r.clone());
        r
    }

    /// Diagnoses the chain a server sent (`sent`, in order) at Unix time `at_secs`.
    pub fn diagnose(&mut self, sent: &[Sha], at_secs: i64, sni: Option<&str>) -> Diagnosis {
        self.diagnose_for(sent, at_secs, sni, Purpose::ServerAuth)
    }

    /// As [`Checker::diagnose`], for a certificate of `purpose` (a client's: `ClientAuth`).
    pub fn diagnose_for(
        &mut self,
        sent: &[Sha],
        at_secs: i64,
        name: Option<&str>,
        purpose: Purpose,
    ) -> Diagnosis {
        self.diagnose_with(sent, at_secs, name, purpose, None)
    }

    /// As [`Checker::diagnose_for`], knowing what the negotiated key exchange does with the
    /// server's key (its keyUsage must allow it).
    pub fn diagnose_with(
        &mut self,
        sent: &[Sha],
        at_secs: i64,
        name: Option<&str>,
        purpose: Purpose,
        key_use: Option<constraints::KeyUse>,
    ) -> Diagnosis {
        let key = (
            sent.to_vec(),
            name.map(str::to_string),
            purpose,
            key_use,
            self.time_class(at_secs),
        );
        if let Some(d) = self.diagnoses.get(&key) {
            return d.clone();
        }
        let d = self.diagnose_anew(sent, at_secs, name, purpose, key_use);
        // A finding that names the handshake's time is made for each handshake.
        let timed = d
            .findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::Expired | FindingKind::NotYetValid));
        if !timed {
            if self.diagnoses.len() >= MAX_DIAGNOSES {
                self.diagnoses.clear();
            }
            self.diagnoses.insert(key, d.clone());
        }
        d
    }

    /// [`Checker::diagnose_with`], made without looking at the diagnoses made before.
    fn diagnose_anew(
        &mut self,
        sent: &[Sha],
        at_secs: i64,
        name: Option<&str>,
        purpose: Purpose,
        key_use: Option<constraints::KeyUse>,
    ) -> Diagnosis {
        let mut findings = Vec::new();
        if sent.is_empty() {
            return Diagnosis {
                status: Status::NoCertificate,
                verdict: Verdict::NotJudged,
                path: Vec::new(),
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
        let strict = self.strict(sent, at_secs, name, purpose);
        let Some(leaf) = self.meta(&sent[0]) else {
            return Diagnosis {
                status: Status::Undetermined,
                verdict: Verdict::Invalid,
                path: Vec::new(),
                findings,
            };
        };
        // A strict client found a path: that is the path (it backtracks over every candidate);
        // otherwise chainsniff's own search says how far a path goes and where it breaks.
        let (status, path, sent_positions) = match &strict {
            Strict::Valid {
                intermediates,
                anchor,
            } => self.verified_path(sent, intermediates, anchor),
            Strict::Invalid(_) => self.build_path(sent, leaf, &mut findings),
        };

        let related = self.related_positions(sent, &sent_positions);
        self.sent_list_findings(sent, &sent_positions, &related, &mut findings);
        self.path_findings(sent, &path, at_secs, &mut findings);
        let links: Vec<constraints::Link<'_>> = path
            .iter()
            .filter_map(|l| {
                let sha = crate::pki::sha_from_hex(&l.sha256)?;
                Some(constraints::Link {
                    sha,
                    meta: self.meta(&sha)?,
                    anchor: matches!(l.source, LinkSource::Anchor)
                        || self.trust.store.get(&sha).is_some(),
                })
            })
            .collect();
        findings.extend(constraints::check(&links, name, purpose, key_use));
        if let Some(name) = name {
            self.name_findings(&sent[0], leaf, name, &mut findings);
        }
        let has_error = findings.iter().any(|f| f.severity == Severity::Error);
        if let Strict::Invalid(e) = &strict
            && !has_error
        {
            findings.push(Finding::new(
                FindingKind::ValidationFailed,
                validation_failed_message(&e.error, leaf),
                Some(&sent[0]),
            ));
        }
        let verdict = if matches!(strict, Strict::Valid { .. }) && !has_error {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        findings.sort_by_key(|f| (f.severity, f.kind));
        Diagnosis {
            status,
            verdict,
            path,
            findings,
        }
    }

    /// The path a strict client verified: the leaf, the sent certificates it used, its anchor.
    fn verified_path(
        &self,
        sent: &[Sha],
        intermediates: &[Sha],
        anchor: &Sha,
    ) -> (Status, Vec<PathLink>, Vec<usize>) {
        let mut positions = vec![0usize];
        let mut path = vec![self.link(&sent[0], LinkSource::Sent { position: 0 })];
        for sha in intermediates {
            let pos = sent[1..].iter().position(|s| s == sha).map_or(0, |p| p + 1);
            positions.push(pos);
            path.push(self.link(sha, LinkSource::Sent { position: pos }));
        }
        // The anchor as sent (a server that includes its root), or the anchor itself.
        let last = path.last().map(|l| l.sha256.clone()).unwrap_or_default();
        if last != hex::encode(anchor) {
            let anchor_meta = self.trust.store.meta(anchor);
            // The anchor itself, or a self-signed copy of it; not a cross-signed certificate
            // of the same name and key (its own validity would be judged instead of the
            // anchor's: an expired cross-sign of a valid root is harmless).
            let sent_as = sent.iter().position(|s| {
                s == anchor
                    || anchor_meta.zip(self.meta(s)).is_some_and(|(a, m)| {
                        m.self_issued && a.subject_raw == m.subject_raw && a.spki == m.spki
                    })
            });
            match sent_as {
                Some(pos) if !positions.contains(&pos) => {
                    positions.push(pos);
                    path.push(self.link(&sent[pos], LinkSource::Sent { position: pos }));
                }
                _ => path.push(self.link(anchor, LinkSource::Anchor)),
            }
        }
        (Status::Complete, path, positions)
    }

    fn link(&self, sha: &Sha, source: LinkSource) -> PathLink {
        PathLink {
            sha256: hex::encode(sha),
            subject: self
                .meta(sha)
                .map(|m| m.summary.subject.clone())
                .unwrap_or_default(),
            source,
        }
    }

    /// chainsniff's own path search from the leaf: the sent certificates, then the anchors,
    /// then the capture, then `--trust` intermediates; it says where the path breaks.
    fn build_path(
        &mut self,
        sent: &[Sha],
        leaf: &'a CertMeta,
        findings: &mut Vec<Finding>,
    ) -> (Status, Vec<PathLink>, Vec<usize>) {
        let mut path = Vec::new();
        let mut status = Status::Complete;
        let mut missing_any = false;
        let mut visited: HashSet<Sha> = HashSet::new();
        let mut cur_sha = sent[0];
        let mut cur = leaf;
        let mut sent_positions = vec![0usize];
        path.push(self.link(&cur_sha, LinkSource::Sent { position: 0 }));
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
            if let Some(bad) = bad_sig {
                // The server sent a certificate of the issuer's name that did not sign this
                // one: the old issuer after a re-key, or a wrong file.
                findings.push(self.bad_signature(&cur_sha, cur, &bad));
                if let Some(pos) = sent.iter().position(|s| *s == bad) {
                    sent_positions.push(pos);
                }
                if found.is_none() {
                    // The right issuer was not sent (and is known nowhere).
                    status = Status::Incomplete;
                    break;
                }
            }
            let Some(found) = found else {
                // Its only issuer is already on the path: the certificates issue each other.
                if let (Some(f), _) = self.find_issuer(&cur_sha, cur, sent, &HashSet::new())
                    && visited.contains(&f.sha())
                {
                    status = Status::Undetermined;
                    let issuer = self.meta(&f.sha()).map(|m| m.name()).unwrap_or_default();
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
                let is_ca = cur.basic_constraints.is_some_and(|(ca, _)| ca);
                let f = if !is_ca && !cur.self_issued {
                    // An end-entity certificate's issuer is an intermediate (or a root) that
                    // the server must send unless the clients have it: the capture at the
                    // failing phone's port never shows it.
                    status = Status::Incomplete;
                    Finding::new(
                        FindingKind::MissingIssuer,
                        self.missing_issuer_message(cur),
                        Some(&cur_sha),
                    )
                } else {
                    if status != Status::Untrusted {
                        status = Status::Undetermined;
                    }
                    Finding::new(
                        FindingKind::UnknownIssuer,
                        self.unknown_issuer_message(cur, sent),
                        Some(&cur_sha),
                    )
                };
                findings.push(f.with_aia(&cur.summary.ca_issuers));
                break;
            };
            let (next_sha, source) = match found {
                Found::Sent(pos, sha) => {
                    sent_positions.push(pos);
                    (sha, LinkSource::Sent { position: pos })
                }
                Found::Anchor(sha) => (sha, LinkSource::Anchor),
                Found::Capture(sha) | Found::TrustFile(sha)
                    if self.meta(&sha).is_some_and(|m| m.summary.self_signed) =>
                {
                    // A root the server left out: servers need not send it (RFC 8446 4.4.2),
                    // so nothing is missing; the path ends at it, and whether the clients
                    // trust it is the question (untrusted_root below, when it is not an
                    // anchor here).
                    let (source, _) = self.where_known(&sha);
                    (sha, source)
                }
                Found::Capture(sha) | Found::TrustFile(sha) => {
                    missing_any = true;
                    let (source, where_seen) = self.where_known(&sha);
                    let f = Finding::new(
                        FindingKind::MissingIntermediate,
                        format!(
                            "The server did not send the intermediate CA {} that issued {}{where_seen}. Clients that do not fetch missing intermediates themselves will reject this chain (typically with alert unknown_ca).",
                            self.meta(&sha).map(|m| m.name()).unwrap_or_default(),
                            cur.name()
                        ),
                        Some(&sha),
                    );
                    findings.push(f.with_aia(&cur.summary.ca_issuers));
                    (sha, source)
                }
            };
            let Some(next) = self.meta(&next_sha) else {
                break;
            };
            path.push(self.link(&next_sha, source));
            visited.insert(next_sha);
            cur_sha = next_sha;
            cur = next;
        }
        if missing_any {
            status = Status::Incomplete;
        }
        (status, path, sent_positions)
    }

    /// Where a certificate that was not sent is known from, for the path and the message.
    fn where_known(&self, sha: &Sha) -> (LinkSource, String) {
        if let Some(s) = self
            .store
            .get(sha)
            .and_then(|c| c.sightings.first().copied())
        {
            return (
                LinkSource::Capture {
                    transport: s.transport.to_string(),
                    capture: s.capture,
                    stream: s.stream,
                    frame: s.frame,
                    server: s.server.to_string(),
                },
                format!(
                    "; it was seen in this capture in {}.stream {} (frame {}), sent by {}",
                    s.transport, s.stream, s.frame, s.server
                ),
            );
        }
        if let Some(file) = self.trust.known_from.get(sha) {
            return (
                LinkSource::TrustFile { file: file.clone() },
                format!("; it is known from --trust {file}, not sent by the server"),
            );
        }
        (LinkSource::Anchor, String::new())
    }

    fn missing_issuer_message(&self, cur: &CertMeta) -> String {
        let keyid = cur
            .aki
            .as_ref()
            .map(|k| format!(", key identifier {}", hex::encode(k)))
            .unwrap_or_default();
        let url = if cur.summary.ca_issuers.is_empty() {
            String::new()
        } else {
            format!(
                " It is published at {} (AIA caIssuers): clients that fetch it cope, the others fail.",
                cur.summary.ca_issuers.join(", ")
            )
        };
        format!(
            "The server sent {} without its issuer {}{keyid}, and no connection in the capture carries it. Unless this issuer is a root your clients trust (then pass it with --trust), the server must send it: clients that do not fetch missing intermediates reject this chain (typically with alert unknown_ca).{url}",
            cur.name(),
            cur.summary.issuer
        )
    }

    fn unknown_issuer_message(&self, cur: &CertMeta, sent: &[Sha]) -> String {
        let hint = if cur.summary.ca_issuers.is_empty() {
            String::new()
        } else {
            format!(
                " Its caIssuers URL is {}.",
                cur.summary.ca_issuers.join(", ")
            )
        };
        // An old capture judged against today's roots: its root may have left the store since.
        let old = sent
            .iter()
            .filter_map(|s| self.meta(s))
            .map(|m| m.not_after)
            .min()
            .is_some_and(|na| self.trust.source != TrustSource::None && na < self.trust.store_date);
        let store = if old {
            format!(
                " The chain was issued before the {} roots used here were last updated: its root may have been removed from the store since (pass it with --trust to judge the chain as of the capture).",
                self.trust.source.as_str()
            )
        } else {
            String::new()
        };
        format!(
            "The issuer of the CA {} ({}) was not sent, is not a trust anchor, and appears nowhere in the capture. If it is a root your clients trust, pass it with --trust FILE; if it is an intermediate CA, the server must send it.{hint}{store}",
            cur.name(),
            cur.summary.issuer
        )
    }

    fn bad_signature(&self, cur_sha: &Sha, cur: &CertMeta, bad: &Sha) -> Finding {
        let bm = self.meta(bad);
        let expects = cur
            .aki
            .as_ref()
            .map(|k| {
                format!(
                    " {} expects the issuer key with identifier {}",
                    cur.name(),
                    hex::encode(k)
                )
            })
            .unwrap_or_default();
        let has = bm
            .and_then(|m| m.ski.as_ref())
            .map(|k| {
                format!(
                    "; the certificate sent has key identifier {}",
                    hex::encode(k)
                )
            })
            .unwrap_or_default();
        let mut f = Finding::new(
            FindingKind::BadSignature,
            format!(
                "{} names {} as its issuer, and the server sent a certificate of that name (SHA-256 {}), but its key does not verify the signature: the wrong issuer certificate (e.g. the old one after the CA was re-keyed) was configured, or the certificate is forged.{expects}{has}.",
                cur.name(),
                bm.map(|m| m.summary.subject.clone()).unwrap_or_default(),
                &hex::encode(bad)[..16],
            ),
            Some(bad),
        );
        // The finding is about the issuer that was sent; the leaf is named in the message.
        let _ = cur_sha;
        f.aia = None;
        f.with_aia(&cur.summary.ca_issuers)
    }

    fn name_findings(
        &self,
        leaf_sha: &Sha,
        leaf: &CertMeta,
        name: &str,
        findings: &mut Vec<Finding>,
    ) {
        let covered = match self
            .der(leaf_sha)
            .and_then(|d| verdict::leaf_covers(d, name))
        {
            Some(c) => c,
            None => name_matches(leaf, name),
        };
        if covered {
            return;
        }
        let cn_only =
            leaf.dns_names.is_empty() && leaf.ip_sans.is_empty() && name_matches(leaf, name);
        let message = if cn_only {
            format!(
                "The server certificate {} has no subjectAltName; only its CN matches {name}. Browsers and strict clients (RFC 6125, CA/Browser Forum) ignore the CN and reject it; OpenSSL's hostname check and some older clients still accept it.",
                leaf.name()
            )
        } else {
            format!(
                "The client asked for {name} (SNI) but the server certificate {} is for {}.",
                leaf.name(),
                names_of(leaf)
            )
        };
        findings.push(Finding::new(
            FindingKind::NameMismatch,
            message,
            Some(leaf_sha),
        ));
    }

    /// Finds the issuer of `cur`: in the sent list, then the anchors, then the capture, then
    /// the `--trust` intermediates; by name, those whose key identifier matches first.
    /// Returns the issuer found and, separately, a sent candidate whose signature failed.
    fn find_issuer(
        &mut self,
        cur_sha: &Sha,
        cur: &CertMeta,
        sent: &[Sha],
        visited: &HashSet<Sha>,
    ) -> (Option<Found>, Option<Sha>) {
        let mut bad = None;
        let mut cands: Vec<(usize, Sha)> = sent
            .iter()
            .enumerate()
            .filter(|(_, s)| !visited.contains(*s))
            .filter(|(_, s)| self.meta(s).is_some_and(|m| Self::name_match(cur, m)))
            .map(|(p, s)| (p, *s))
            .collect();
        cands.sort_by_key(|(_, s)| !self.meta(s).is_some_and(|m| Self::keyid_match(cur, m)));
        for (pos, sha) in cands {
            match self.signs(&sha, cur_sha) {
                SigCheck::Invalid => {
                    bad.get_or_insert(sha);
                }
                _ => return (Some(Found::Sent(pos, sha)), bad),
            }
        }
        let elsewhere: [(&CertStore, FoundAs); 3] = [
            (&self.trust.store, Found::Anchor),
            (self.store, Found::Capture),
            (&self.trust.known, Found::TrustFile),
        ];
        for (store, found) in elsewhere {
            let mut cands: Vec<Sha> = store
                .with_subject(&cur.issuer_raw)
                .iter()
                .filter(|s| !visited.contains(*s) && !sent.contains(*s))
                .copied()
                .collect();
            cands.sort_by_key(|s| !store.meta(s).is_some_and(|m| Self::keyid_match(cur, m)));
            for sha in cands {
                if self.signs(&sha, cur_sha) != SigCheck::Invalid {
                    return (Some(found(sha)), bad);
                }
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
            // An anchor's own signature does not count; its validity does (as for OpenSSL:
            // an expired root fails the chain), and so does the size of its key.
            let anchor_only = is_anchor && !is_sent;
            if at_secs < m.not_before {
                findings.push(Finding::new(
                    FindingKind::NotYetValid,
                    format!(
                        "{} is not valid until {}, after the handshake ({}); check the clocks, or the certificate was installed too early.",
                        m.name(),
                        m.summary.not_before,
                        crate::model::Timestamp::from_parts(at_secs, 0).to_rfc3339()
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
                        crate::model::Timestamp::from_parts(at_secs, 0).to_rfc3339()
                    ),
                    Some(&sha),
                ));
            }
            if m.weak_signature && !(m.self_issued && is_anchor) && !anchor_only {
                findings.push(Finding::new(
                    FindingKind::WeakSignature,
                    format!(
                        "{} is signed with {}, which browsers, rustls and OpenSSL 3 (at its default security level) reject; some older enterprise clients still accept it.",
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
                        "{} has a {}-bit {} key; 2048 bits (RSA) or 256 bits (EC) is the minimum strict clients accept today (OpenSSL at its default security level still accepts 1024-bit RSA).",
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

/// The message of a `validation_failed` finding: what the strict validator's reason means.
fn validation_failed_message(error: &str, leaf: &CertMeta) -> String {
    let why = match error {
        "UnknownIssuer" => "it finds no path from the certificates sent to a trust anchor",
        "UnsupportedSignatureAlgorithm"
        | "UnsupportedSignatureAlgorithmContext"
        | "UnsupportedSignatureAlgorithmForPublicKey"
        | "UnsupportedSignatureAlgorithmForPublicKeyContext"
        | "SignatureAlgorithmMismatch" => {
            "a certificate on the path is signed with an algorithm (or a key) it does not accept"
        }
        "MaximumPathDepthExceeded"
        | "MaximumSignatureChecksExceeded"
        | "MaximumPathBuildCallsExceeded"
        | "MaximumNameConstraintComparisonsExceeded" => {
            "the chain is too long or has too many candidate paths for a bounded path search"
        }
        "BadDer"
        | "BadDerTime"
        | "TrailingData"
        | "MalformedExtensions"
        | "ExtensionValueInvalid"
        | "InvalidSerialNumber"
        | "InvalidCertValidity"
        | "UnsupportedCertVersion"
        | "MalformedDnsIdentifier"
        | "MalformedNameConstraint"
        | "InvalidNetworkMaskConstraint"
        | "EmptyEkuExtension" => {
            "a certificate breaks the encoding rules of RFC 5280 (DER, serial number, validity, extensions)"
        }
        "CertDistrusted" => "the certificate's issuer is distrusted",
        _ => "it rejects the chain",
    };
    format!(
        "A strict validator (rustls-webpki) rejects the chain of {}: {why} ({error}).",
        leaf.name()
    )
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
