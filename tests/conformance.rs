//! Conformance with tshark on real public captures.
//!
//! For every capture of the public corpus (`../shared/captures/public`, see its README), its
//! `truth/*.json` lists what tshark 4.0 reports: every ClientHello and every Certificate message
//! with frame number, `tcp.stream` and the SHA-256 of each certificate in order. chainsniff must
//! report the same, over TCP (TLS) and UDP (DTLS, QUIC), and no capture may make it panic.
//!
//! The corpus path comes from `CHAINSNIFF_PUBLIC_CAPTURES` (set by `.ci/run`). When it is unset,
//! `../shared/captures/public` beside the checkout is used if present; otherwise the test is
//! skipped with a notice. When the variable is set but the folder is missing, the test fails.

use std::collections::BTreeMap;
mod common;

use std::path::{Path, PathBuf};

use chainsniff::analysis::analyze_capture;
use chainsniff::pki::sha256;
use serde_json::Value;

/// Captures whose TCP handshakes chainsniff does not (yet) report as tshark does, and why.
/// The test fails if one of these starts to match (so the list stays true) or if any other
/// capture mismatches.
const KNOWN_GAPS: &[(&str, &str)] = &[
    (
        "suricata-verify/bug-1450-04/tls_DER-incomplete-header.pcap",
        "the server sends a 9-byte 'certificate' that is not valid DER; tshark's field (and so \
         its hash) covers only the 7 bytes its BER dissector consumed, chainsniff hashes the 9 \
         bytes sent and reports the certificate as unparsable",
    ),
    (
        "suricata-verify/bug-1450-05/tls_DER-incomplete-content.pcap",
        "as bug-1450-04: tshark hashes the 8 bytes its BER dissector consumed of the 9 sent",
    ),
];

fn corpus() -> Option<PathBuf> {
    common::shared_data(
        "CHAINSNIFF_PUBLIC_CAPTURES",
        "captures/public",
        "truth",
        "the tshark conformance test",
    )
}

/// What chainsniff reports for one capture: ClientHello frames → stream, and per frame the
/// streams and certificate hashes of the Certificate messages completed in it.
struct Seen {
    client_hellos: BTreeMap<u64, (&'static str, u64)>,
    certificates: BTreeMap<u64, (&'static str, u64, Vec<String>)>,
}

fn chainsniff_view(path: &Path) -> Result<Seen, String> {
    let (_, handshakes) = analyze_capture(path.to_str().unwrap()).map_err(|e| e.to_string())?;
    let mut seen = Seen {
        client_hellos: BTreeMap::new(),
        certificates: BTreeMap::new(),
    };
    for h in &handshakes {
        let transport = h.transport();
        for ch in &h.client_hellos {
            seen.client_hellos
                .insert(ch.at.frame, (transport, h.stream));
        }
        for msg in [&h.certificate, &h.client_certificate]
            .into_iter()
            .flatten()
        {
            let entry =
                seen.certificates
                    .entry(msg.at.frame)
                    .or_insert((transport, h.stream, Vec::new()));
            entry
                .2
                .extend(msg.certs.iter().map(|d| hex::encode(sha256(d))));
        }
    }
    Ok(seen)
}

fn compare(root: &Path, truth: &Value) -> Vec<String> {
    let capture = truth["capture"].as_str().unwrap();
    let path = root.join(capture);
    let seen = match std::panic::catch_unwind(|| chainsniff_view(&path)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let expected = !truth["client_hellos"].as_array().unwrap().is_empty();
            return if expected {
                vec![format!("error: {e}")]
            } else {
                vec![]
            };
        }
        Err(_) => return vec!["PANIC".into()],
    };
    let mut problems = Vec::new();
    // Over DTLS, tshark lists every frame that carries a fragment of a handshake message;
    // chainsniff reports the message once, in the frame that completes it. A truth frame is
    // matched by chainsniff's message in a later frame of the same stream that tshark lists too.
    let completed_later =
        |entries: &Value, transport: &str, stream: u64, frame: u64, ours: &[u64]| {
            transport == "udp"
                && entries.as_array().unwrap().iter().any(|e| {
                    let f = e["frame"].as_u64().unwrap();
                    f > frame && e["stream"].as_u64() == Some(stream) && ours.contains(&f)
                })
        };
    let our_ch: Vec<u64> = seen.client_hellos.keys().copied().collect();
    let our_certs: Vec<u64> = seen.certificates.keys().copied().collect();
    for ch in truth["client_hellos"].as_array().unwrap() {
        let transport = ch["transport"].as_str().unwrap();
        let frame = ch["frame"].as_u64().unwrap();
        let stream = ch["stream"].as_u64().unwrap();
        match seen.client_hellos.get(&frame) {
            Some(s) if *s == (transport, stream) => {}
            None if completed_later(&truth["client_hellos"], transport, stream, frame, &our_ch) => {
            }
            Some(s) => problems.push(format!(
                "ClientHello frame {frame}: {s:?}, tshark {transport} stream {stream}"
            )),
            None => problems.push(format!(
                "ClientHello frame {frame} (stream {stream}) not reported"
            )),
        }
    }
    for cm in truth["certificate_messages"].as_array().unwrap() {
        let transport = cm["transport"].as_str().unwrap();
        let frame = cm["frame"].as_u64().unwrap();
        let stream = cm["stream"].as_u64().unwrap();
        let certs: Vec<String> = cm["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        match seen.certificates.get(&frame) {
            Some((t, s, c)) if *t == transport && *s == stream && *c == certs => {}
            None if certs.is_empty()
                && completed_later(&truth["certificate_messages"], transport, stream, frame, &our_certs) => {}
            Some((t, s, c)) => problems.push(format!(
                "Certificate frame {frame}: {t} stream {s} with {} certs, tshark {transport} stream {stream} with {} certs{}",
                c.len(),
                certs.len(),
                if *c != certs { " (hashes differ)" } else { "" }
            )),
            None => problems.push(format!(
                "Certificate frame {frame} ({transport} stream {stream}, {} certs) not reported",
                certs.len()
            )),
        }
    }
    problems
}

#[test]
fn agrees_with_tshark_on_public_captures() {
    let Some(root) = corpus() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("truth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() > 100,
        "expected the whole corpus, found {} truth files",
        files.len()
    );
    let (mut checked, mut messages) = (0, 0);
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    for f in &files {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let capture = truth["capture"].as_str().unwrap().to_string();
        messages += truth["certificate_messages"].as_array().unwrap().len();
        let problems = compare(&root, &truth);
        checked += 1;
        let known = KNOWN_GAPS.iter().find(|(c, _)| *c == capture);
        match (problems.is_empty(), known) {
            (true, Some(_)) => fixed.push(capture),
            (false, None) => failures.push(format!("{capture}:\n    {}", problems.join("\n    "))),
            _ => {}
        }
    }
    println!(
        "{checked} captures checked against tshark ({messages} Certificate messages in the truth)"
    );
    assert!(
        fixed.is_empty(),
        "these captures now match tshark; remove them from KNOWN_GAPS: {fixed:?}"
    );
    assert!(
        failures.is_empty(),
        "{} captures disagree with tshark:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// STARTTLS and friends in the public corpus: the handshake after the plaintext upgrade is
/// found on any port and the upgrade is named.
#[test]
fn plaintext_upgrades_are_named() {
    let Some(root) = corpus() else { return };
    let cases = [
        ("zeek/tls/smtp-starttls.pcap", "smtp-starttls"),
        ("suricata-verify/smtp-startssl/input.pcap", "smtp-starttls"),
        ("zeek/tls/imap-starttls.pcap", "imap-starttls"),
        ("zeek/tls/pop3-starttls.pcap", "pop3-stls"),
        ("zeek/tls/xmpp-starttls.pcap", "xmpp-starttls"),
        ("zeek/ldap/ldap-starttls.pcap", "ldap-starttls"),
        ("suricata-verify/ldap-starttls/input.pcap", "ldap-starttls"),
        (
            "zeek/postgresql/psql-aws-ssl-require.pcap",
            "postgresql-sslrequest",
        ),
        (
            "suricata-verify/pgsql/pgsql-upgrade-tls/input.pcap",
            "postgresql-sslrequest",
        ),
        ("zeek/mysql/tls-12-amazon-rds.pcap", "mysql-ssl"),
        ("zeek/ftp/ftp-auth-tls.pcap", "ftp-auth-tls"),
        ("zeek/socks-with-ssl.pcap", "socks"),
        ("zeek/http/connect-with-header.pcap", "http-connect"),
    ];
    for (capture, upgrade) in cases {
        let path = root.join(capture).to_string_lossy().into_owned();
        let r = chainsniff::run(&[path], &Default::default()).unwrap();
        assert_eq!(r.handshakes.len(), 1, "{capture}");
        assert_eq!(
            r.handshakes.get(0).upgrade.as_deref(),
            Some(upgrade),
            "{capture}"
        );
        assert!(
            r.handshakes.get(0).client_hello_frame.is_some(),
            "{capture}"
        );
    }
    // TLS from the first byte: no upgrade.
    let path = root
        .join("zeek/tls/tls1.2.pcap")
        .to_string_lossy()
        .into_owned();
    let r = chainsniff::run(&[path], &Default::default()).unwrap();
    assert_eq!(r.handshakes.get(0).upgrade, None);
}

/// JA4 agrees with Suricata's expected values (suricata-verify's ja4-tls and ja4-tls-quic
/// tests: TLS 1.2 without SNI, Chrome over TLS 1.3 with GREASE, and QUIC).
#[test]
fn ja4_agrees_with_suricata() {
    let Some(root) = corpus() else { return };
    let cases = [
        (
            "suricata-verify/ja4-tls/input.pcap",
            vec![("tcp", "t12i1810s1_27d4652c4487_06a4338d0495")],
        ),
        (
            "suricata-verify/ja4-tls-quic/input.pcap",
            vec![
                ("tcp", "t13d1516h2_8daaf6152771_e5627efa2ab1"),
                ("udp", "q13d0310h3_55b375c5d22e_cd85d2d88918"),
            ],
        ),
    ];
    for (capture, expected) in cases {
        let path = root.join(capture).to_string_lossy().into_owned();
        let r = chainsniff::run(&[path], &Default::default()).unwrap();
        let got: Vec<(String, String)> = r
            .handshakes
            .iter()
            .map(|h| (h.transport.to_string(), h.ja4.unwrap_or_default()))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(t, j)| (t.to_string(), j.to_string()))
            .collect();
        assert_eq!(got, expected, "{capture}");
    }
}
