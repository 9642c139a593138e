//! One handshake's report: its chain diagnosed, its frames, findings and notes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::FramePlace;
use crate::pki::{CertSummary, Sha};
use crate::pki::{Checker, Finding, PathLink, Status, Verdict};
use crate::tls::handshake::{ClientHello, Handshake};
use crate::tls::handshake::{Decryption, version_name};

use super::model::{Continued, HandshakeReport};

fn extension_name(t: u16) -> String {
    match t {
        5 => "status_request".into(),
        18 => "signed_certificate_timestamp".into(),
        other => format!("extension_{other}"),
    }
}

/// The report of one handshake: its chain diagnosed with what `store` holds now.
pub fn handshake_report(
    id: usize,
    s: &crate::analysis::Session,
    store: &crate::pki::CertStore,
    checker: &mut Checker<'_>,
) -> HandshakeReport {
    let hs = &s.hs;
    // Frame numbers carry their file's part (a joined capture): printed as Wireshark's
    // number in that file, naming the file when it is not the handshake's.
    let place = crate::model::FramePlace {
        capture: s.capture,
        base: s.base,
    };
    let capture_of = |frame: u64| place.capture_of(frame);
    let local = crate::model::local_frame;
    let ch = hs.client_hellos.first();
    let sh = hs.server_hellos.iter().rev().find(|s| !s.hello_retry);
    let version = hs.version();
    let resumed = crate::judge::status::resumed(hs);
    let chain: &[Sha] = hs
        .certificate
        .as_ref()
        .map(|c| c.shas.as_slice())
        .unwrap_or_default();
    let (status, verdict, path, mut findings) = diagnose(hs, chain, checker, resumed);
    let mut client_reaction = hs.client_reaction();
    let reaction_frame = client_reaction.frame;
    if let Some(f) = reaction_frame {
        client_reaction.frame = Some(local(f));
        client_reaction.capture = Some(capture_of(f)).filter(|c| *c != s.capture);
    }
    if verdict == Verdict::Valid
        && let Some(f) = crate::judge::findings::rejected_by_client(&client_reaction, &path)
    {
        findings.push(f);
    }
    findings.extend(crate::judge::findings::decryption(hs, place));
    findings.extend(crate::judge::findings::renegotiation(hs, place));
    let notes = crate::judge::notes(hs, status, place);
    let offered = offered_versions(ch);
    let filter = hs.display_filter();
    let evidence_frame = hs
        .certificate
        .as_ref()
        .map(|c| c.at.frame)
        .or(ch.map(|c| c.at.frame))
        .or(hs.renegotiation.as_ref().map(|r| r.at.frame));
    let (frame_captures, continued) = joined_places(hs, place, reaction_frame, &filter);
    set_handshake_evidence(&mut findings, evidence_frame, place, &filter, &continued);
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
        cipher_suite: sh.map(|s| crate::tls::cipher_name(s.cipher_suite)),
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
        certificates: chain.iter().map(|sha| summary_of(store, sha)).collect(),
        chain_variant: None,
        client_certificates: hs
            .client_certificate
            .as_ref()
            .map(|c| c.shas.iter().map(|sha| summary_of(store, sha)).collect())
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

/// The summary of certificate `sha` (a placeholder if it did not parse).
fn summary_of(store: &crate::pki::CertStore, sha: &Sha) -> Arc<CertSummary> {
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
}

/// The chain's status, verdict, path and findings (a strict client's, for the server's
/// purpose), or, without a chain, the judge's status.
fn diagnose(
    hs: &Handshake,
    chain: &[Sha],
    checker: &mut Checker<'_>,
    resumed: bool,
) -> (Status, Verdict, Vec<PathLink>, Vec<Finding>) {
    let Some(c) = &hs.certificate else {
        let status = crate::judge::status::without_chain(hs, resumed);
        return (status, Verdict::NotJudged, Vec::new(), Vec::new());
    };
    let tls13 = hs.version().is_some_and(crate::tls::handshake::is_tls13);
    let sh = hs.server_hellos.iter().rev().find(|s| !s.hello_retry);
    let key_use =
        sh.and_then(|s| crate::pki::constraints::KeyUse::of_cipher_suite(s.cipher_suite, tls13));
    let d = checker.diagnose_with(
        chain,
        c.at.ts.secs(),
        hs.sni(),
        crate::pki::Purpose::ServerAuth,
        key_use,
    );
    (d.status, d.verdict, d.path, d.findings)
}

/// The versions the client offered: supported_versions, else its legacy version.
fn offered_versions(ch: Option<&ClientHello>) -> Vec<String> {
    let Some(c) = ch else {
        return Vec::new();
    };
    if c.supported_versions.is_empty() {
        vec![version_name(c.legacy_version)]
    } else {
        c.supported_versions
            .iter()
            .map(|v| version_name(*v))
            .collect()
    }
}

/// A joined capture: the frame fields of `hs` whose frame is in another file than the
/// handshake's, and where the connection goes on in the other files.
fn joined_places(
    hs: &Handshake,
    place: FramePlace,
    reaction_frame: Option<u64>,
    filter: &str,
) -> (BTreeMap<Cow<'static, str>, usize>, Vec<Continued>) {
    let ch = hs.client_hellos.first();
    let sh = hs.server_hellos.iter().rev().find(|s| !s.hello_retry);
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
    let frame_captures = frame_fields
        .iter()
        .filter_map(|(name, f)| {
            let c = place.capture_of((*f)?);
            (c != place.capture).then_some((Cow::Borrowed(*name), c))
        })
        .collect();
    let continued = hs
        .continued
        .iter()
        .map(|&(part, stream)| {
            let capture = place.base + part as usize;
            Continued {
                capture,
                stream,
                frame: frame_fields
                    .iter()
                    .filter_map(|(_, f)| *f)
                    .filter(|f| place.capture_of(*f) == capture)
                    .map(crate::model::local_frame)
                    .min(),
                filter: hs
                    .display_filter_in(part)
                    .unwrap_or_else(|| filter.to_string()),
            }
        })
        .collect();
    (frame_captures, continued)
}

/// Points each finding of the handshake at its evidence: the Certificate's frame (else the
/// ClientHello's) and the filter of the file it is in.
fn set_handshake_evidence(
    findings: &mut [Finding],
    evidence_frame: Option<u64>,
    place: FramePlace,
    filter: &str,
    continued: &[Continued],
) {
    let evidence_capture = evidence_frame
        .map(|f| place.capture_of(f))
        .unwrap_or(place.capture);
    for f in findings.iter_mut() {
        f.frame = evidence_frame.map(crate::model::local_frame);
        f.filter = Some(filter.to_string());
        if evidence_capture != place.capture {
            // The Certificate is in the next file: the evidence is there.
            f.capture = Some(evidence_capture);
            if let Some(k) = continued.iter().find(|k| k.capture == evidence_capture) {
                f.filter = Some(k.filter.clone());
            }
        }
    }
}
