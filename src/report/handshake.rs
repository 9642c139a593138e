//! One handshake's report: its chain diagnosed, its frames, findings and notes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::judge::Reaction;
use crate::pki::{CertSummary, Sha};
use crate::pki::{Checker, Finding, FindingKind, PathLink, Status, Verdict};
use crate::tls::handshake::{Decryption, version_name};

use super::*;

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
            } else if tls13 {
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
        _ => {}
    }
    let mut notes = Vec::new();
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
        .or(ch.map(|c| c.at.frame));
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
