//! Findings that come from what happened on the wire rather than from the chain: the client
//! refused a chain that is valid here, or the key log did not open the handshake.

use crate::model::{FramePlace, Side};
use crate::pki::{Finding, FindingKind, PathLink};
use crate::tls::handshake::{Decryption, Handshake};

use super::Reaction;

/// Why the certificate of `hs` stayed encrypted although a key log was given, if it did.
pub fn decryption(hs: &Handshake, place: FramePlace) -> Option<Finding> {
    let (kind, message) = match hs.decryption.as_ref()? {
        Decryption::MissingSecret(label) => {
            let random = hs
                .client_hellos
                .first()
                .map(|c| hex::encode(&c.random))
                .unwrap_or_default();
            (
                FindingKind::MissingSecret,
                format!(
                    "The key log has no {label} for this handshake (client random {random}), so its certificate stays encrypted. Use the key log written by this client during this capture."
                ),
            )
        }
        Decryption::Failed { side, frame } => (
            FindingKind::DecryptionFailed,
            format!(
                "The {} records did not decrypt with the logged secret (first failure at frame {}): the key log belongs to another session, or the capture lost bytes.",
                match side {
                    Side::Client => "client's",
                    Side::Server => "server's",
                },
                place.text(*frame)
            ),
        ),
        Decryption::UnsupportedCipher(c) => (
            FindingKind::DecryptionFailed,
            format!(
                "Cipher suite {} cannot be decrypted by chainsniff.",
                crate::tls::cipher_name(*c)
            ),
        ),
        Decryption::Draft(n) => (
            FindingKind::DecryptionFailed,
            format!(
                "TLS 1.3 draft {n}: its record protection differs from RFC 8446, and chainsniff does not decrypt drafts (the key log was not tried), so its certificate stays encrypted."
            ),
        ),
        Decryption::Decrypted | Decryption::NoKeyLog => return None,
    };
    Some(Finding::new(kind, message, None))
}

/// A TLS 1.2 renegotiation whose messages stayed encrypted: its chain is not seen, and why.
pub fn renegotiation(hs: &Handshake, place: FramePlace) -> Option<Finding> {
    let r = hs.renegotiation.as_ref()?;
    let cause = r.unseen.as_ref()?;
    Some(Finding::new(
        FindingKind::RenegotiationNotVisible,
        format!(
            "A {} renegotiation starts in frame {}, encrypted under the keys of the handshake whose ClientHello is in frame {}: the chain sent in it is not seen, so not judged. {}",
            r.version
                .map_or("TLS".into(), crate::tls::handshake::version_name),
            place.text(r.at.frame),
            place.text(r.of.frame),
            renegotiation_cause(cause, place)
        ),
        None,
    ))
}

/// Why a TLS 1.2 renegotiation could not be read: the key log, the cipher, or the records.
fn renegotiation_cause(cause: &Decryption, place: FramePlace) -> String {
    match cause {
        Decryption::MissingSecret(label) => format!(
            "The key log has no {label} line for the handshake before: use the key log written by this client during this capture."
        ),
        Decryption::UnsupportedCipher(c) => format!(
            "Cipher suite {} is not one chainsniff decrypts (TLS 1.2: AES-GCM and ChaCha20-Poly1305 only).",
            crate::tls::cipher_name(*c)
        ),
        Decryption::Failed { side, frame } => format!(
            "The {} records did not decrypt with the logged master secret (first failure at frame {}): the key log belongs to another session, or the capture lost bytes.",
            match side {
                Side::Client => "client's",
                Side::Server => "server's",
            },
            place.text(*frame)
        ),
        _ => "No key log was given: pass the client's with --keylog (its CLIENT_RANDOM line for this handshake) to see the renegotiation.".into(),
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
pub fn rejected_by_client(reaction: &Reaction, path: &[PathLink]) -> Option<Finding> {
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
