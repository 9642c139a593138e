//! The verdict of a strict client: rustls-webpki's path validation (bounded path search,
//! signatures, validity, basicConstraints, pathLenConstraint, name constraints, extended key
//! usage, critical extensions, the peer name), run on the chain as the server sent it against
//! exactly the trust anchors given. chainsniff's own path builder ([`super::path`]) explains
//! *why* and *where*; this module only decides.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};

use super::{Sha, sha256};

/// What a client that trusts exactly these anchors decides about the chain as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It accepts the chain: a valid path to an anchor, for this name and purpose.
    Valid,
    /// It rejects the chain (the findings say why).
    Invalid,
    /// No verdict is possible: no chain was seen (encrypted, truncated, not sent).
    NotJudged,
}

impl Verdict {
    /// Its name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::NotJudged => "not_judged",
        }
    }
}

/// What the certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A TLS server's certificate (extendedKeyUsage serverAuth).
    ServerAuth,
    /// A TLS client's certificate (extendedKeyUsage clientAuth).
    ClientAuth,
}

/// The outcome of strict validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strict {
    /// A valid path: the sent certificates it used after the leaf (in path order) and the
    /// anchor it ended at.
    Valid {
        /// The sent certificates between the leaf and the anchor, in path order.
        intermediates: Vec<Sha>,
        /// The anchor the path ends at.
        anchor: Sha,
    },
    /// Rejected, with the validator's reason.
    Invalid(StrictError),
}

/// Why the strict validator rejected a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictError {
    /// rustls-webpki's error, as it names it (`UnknownIssuer`, `CertNotValidForName`, ...).
    pub error: String,
    /// The path was fine; only the name did not match.
    pub name_only: bool,
}

/// Validates `chain` (the leaf first, then what the server sent) at Unix time `at_secs`
/// against `anchors`, for `name` (a DNS name or an IP address; unchecked when `None`).
pub fn strict_verify(
    chain: &[&[u8]],
    anchors: &[(Sha, TrustAnchor<'static>)],
    at_secs: i64,
    name: Option<&str>,
    purpose: Purpose,
) -> Strict {
    let invalid = |e: &webpki::Error, name_only| {
        Strict::Invalid(StrictError {
            error: error_name(e),
            name_only,
        })
    };
    let Some(leaf) = chain.first() else {
        return invalid(&webpki::Error::BadDer, false);
    };
    let leaf_der = CertificateDer::from(*leaf);
    let ee = match webpki::EndEntityCert::try_from(&leaf_der) {
        Ok(ee) => ee,
        Err(e) => return invalid(&e, false),
    };
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|d| CertificateDer::from(*d))
        .collect();
    let roots: Vec<TrustAnchor<'static>> = anchors.iter().map(|(_, a)| a.clone()).collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(at_secs.max(0) as u64));
    let usage = match purpose {
        Purpose::ServerAuth => webpki::KeyUsage::server_auth(),
        Purpose::ClientAuth => webpki::KeyUsage::client_auth(),
    };
    let path = match ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &roots,
        &intermediates,
        time,
        usage,
        None,
        None,
    ) {
        Ok(p) => p,
        Err(e) => return invalid(&e, false),
    };
    if let Some(name) = name {
        let server_name = match ServerName::try_from(name) {
            Ok(n) => n,
            Err(_) => return invalid(&webpki::Error::MalformedDnsIdentifier, true),
        };
        if let Err(e) = ee.verify_is_valid_for_subject_name(&server_name) {
            return invalid(&e, true);
        }
    }
    let used: Vec<Sha> = path
        .intermediate_certificates()
        .map(|c| sha256(c.der().as_ref()))
        .collect();
    let anchor = path.anchor();
    let anchor_sha = roots
        .iter()
        .position(|a| std::ptr::eq(a, anchor))
        .map(|i| anchors[i].0)
        .unwrap_or([0; 32]);
    Strict::Valid {
        intermediates: used,
        anchor: anchor_sha,
    }
}

/// Whether `name` is a name the leaf covers, by the strict rules (SAN only, no CN fallback,
/// `*` as a whole leftmost label); `None` when the leaf cannot be read.
pub fn leaf_covers(leaf: &[u8], name: &str) -> Option<bool> {
    let der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&der).ok()?;
    let server_name = ServerName::try_from(name).ok()?;
    Some(ee.verify_is_valid_for_subject_name(&server_name).is_ok())
}

/// webpki's error by its variant's name (without the context it carries).
fn error_name(e: &webpki::Error) -> String {
    let s = format!("{e:?}");
    match s.find(['(', ' ', '{']) {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
