//! TLS 1.3 with key logs: the certificate chains of TLS 1.3 handshakes recorded from two real
//! stacks (OpenSSL 3.0 and GnuTLS 3.7, see captures/README.md), decrypted with the clients' key
//! logs. The frames asserted here are the ones tshark 4.0 shows with the same key log
//! (`tshark -o tls.keylog_file:... -Y "tls.handshake.type==11 || tls.alert_message"`).

mod common;
use common::{pki_sha, repo, repo_path};

use chainsniff::judge::ReactionKind;
use chainsniff::pki::{FindingKind, Status};
use chainsniff::report::HandshakeReport;
use chainsniff::{Options, Report};

fn run(capture: &str, keylog: Option<&str>) -> Report {
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        keylog: keylog.map(repo).into_iter().collect(),
        ..Default::default()
    };
    chainsniff::run(&[repo_path(capture)], &opts).unwrap()
}

fn stream(r: &Report, s: u64) -> HandshakeReport {
    r.handshakes.iter().find(|h| h.stream == s).unwrap()
}

fn shas(h: &HandshakeReport) -> Vec<String> {
    h.certificates.iter().map(|c| c.sha256.clone()).collect()
}

fn kinds(h: &HandshakeReport) -> Vec<FindingKind> {
    h.findings.iter().map(|f| f.kind).collect()
}

/// The OpenSSL capture, however the key log arrives: leaf only from the VIP (the phone aborts
/// with a decrypted unknown_ca), leaf + intermediate from the front end.
fn assert_openssl_decrypted(r: &Report) {
    let (leaf, issuing) = (pki_sha("leaf"), pki_sha("issuing"));
    assert_eq!(r.handshakes.len(), 2);
    let vip = stream(r, 0);
    assert_eq!(vip.version.as_deref(), Some("TLS 1.3"));
    assert!(vip.decrypted);
    assert_eq!(vip.certificate_frame, Some(6));
    assert_eq!(vip.certificate_verify_frame, Some(6));
    assert_eq!(shas(&vip), vec![leaf.clone()]);
    assert_eq!(vip.status, Status::Incomplete);
    assert_eq!(kinds(&vip), vec![FindingKind::MissingIntermediate]);
    assert!(vip.findings[0].message.contains("tcp.stream 1 (frame 15)"));
    assert_eq!(vip.client_reaction.kind, ReactionKind::Alert);
    assert_eq!(vip.client_reaction.alert.as_deref(), Some("unknown_ca"));
    assert_eq!(vip.client_reaction.frame, Some(8));

    let fe = stream(r, 1);
    assert!(fe.decrypted);
    assert_eq!(fe.certificate_frame, Some(15));
    assert_eq!(shas(&fe), vec![leaf, issuing]);
    assert_eq!(fe.status, Status::Complete);
    assert!(fe.findings.is_empty(), "{:?}", fe.findings);
    assert_eq!(fe.client_reaction.kind, ReactionKind::Completed);
    assert_eq!(fe.client_reaction.frame, Some(17));
}

#[test]
fn openssl_tls13_with_key_log_file() {
    assert_openssl_decrypted(&run(
        "captures/tls13-openssl.pcapng",
        Some("captures/tls13-openssl.keylog"),
    ));
}

#[test]
fn openssl_tls13_with_key_log_embedded_in_pcapng() {
    assert_openssl_decrypted(&run("captures/tls13-openssl-dsb.pcapng", None));
}

#[test]
fn without_a_key_log_the_chain_is_not_visible() {
    let r = run("captures/tls13-openssl.pcapng", None);
    for h in r.handshakes.iter() {
        assert_eq!(h.status, Status::NotVisible);
        assert!(!h.decrypted);
        assert!(h.certificates.is_empty());
        assert!(h.findings.is_empty());
    }
}

#[test]
fn a_key_log_of_other_sessions_says_which_secret_is_missing() {
    let r = run(
        "captures/tls13-openssl.pcapng",
        Some("captures/tls13-gnutls.keylog"),
    );
    for h in r.handshakes.iter() {
        assert_eq!(h.status, Status::NotVisible);
        assert_eq!(kinds(&h), vec![FindingKind::MissingSecret]);
        assert!(
            h.findings[0]
                .message
                .contains("SERVER_HANDSHAKE_TRAFFIC_SECRET")
        );
    }
}

#[test]
fn a_wrong_secret_is_a_decryption_failure_never_garbage_certificates() {
    // The right client randoms with the secrets flipped.
    let text = std::fs::read_to_string(repo("captures/tls13-openssl.keylog")).unwrap();
    let bad: String = text
        .lines()
        .map(|l| {
            let mut parts: Vec<String> = l.split(' ').map(str::to_string).collect();
            if parts.len() == 3 {
                parts[2] = parts[2].chars().rev().collect();
            }
            parts.join(" ") + "\n"
        })
        .collect();
    let path = std::env::temp_dir().join(format!("chainsniff-bad-{}.keylog", std::process::id()));
    std::fs::write(&path, bad).unwrap();
    let r = run(
        "captures/tls13-openssl.pcapng",
        Some(path.to_str().unwrap()),
    );
    for h in r.handshakes.iter() {
        assert_eq!(h.status, Status::NotVisible);
        assert!(h.certificates.is_empty());
        assert_eq!(kinds(&h), vec![FindingKind::DecryptionFailed]);
    }
}

#[test]
fn gnutls_tls13_with_key_log() {
    let r = run(
        "captures/tls13-gnutls.pcapng",
        Some("captures/tls13-gnutls.keylog"),
    );
    let (leaf, issuing) = (pki_sha("leaf"), pki_sha("issuing"));
    let short = stream(&r, 0);
    assert_eq!(short.server.port, 443);
    assert_eq!(short.certificate_frame, Some(9));
    assert_eq!(shas(&short), vec![leaf.clone()]);
    assert_eq!(short.status, Status::Incomplete);
    assert_eq!(short.client_reaction.kind, ReactionKind::Alert);
    assert_eq!(
        short.client_reaction.alert.as_deref(),
        Some("bad_certificate")
    );
    assert_eq!(short.client_reaction.frame, Some(10));

    // The full chain under each TLS 1.3 cipher suite (AES-256-GCM, AES-128-GCM, ChaCha20).
    for (s, suite, cert, client) in [
        (1, "TLS_AES_256_GCM_SHA384", 21, 22),
        (2, "TLS_AES_128_GCM_SHA256", 38, 39),
        (3, "TLS_CHACHA20_POLY1305_SHA256", 53, 54),
    ] {
        let full = stream(&r, s);
        assert_eq!(full.server.port, 8443);
        assert_eq!(full.cipher_suite.as_deref(), Some(suite));
        assert!(full.decrypted, "{suite}");
        assert_eq!(full.certificate_frame, Some(cert), "{suite}");
        assert_eq!(shas(&full), vec![leaf.clone(), issuing.clone()], "{suite}");
        assert_eq!(full.status, Status::Complete);
        // GnuTLS asks for a client certificate; the client answers with an empty one and
        // Finished.
        assert_eq!(full.client_certificate_frame, Some(client));
        assert!(full.client_certificates.is_empty());
        assert_eq!(full.client_reaction.kind, ReactionKind::Completed);
        assert_eq!(full.client_reaction.frame, Some(client));
    }

    // A server that wants another key share: HelloRetryRequest, second ClientHello, then the
    // encrypted flight is decrypted as usual.
    let hrr = stream(&r, 4);
    assert_eq!(hrr.server.port, 9443);
    assert!(hrr.hello_retry_request);
    assert_eq!(hrr.client_hello_frame, Some(65));
    assert_eq!(hrr.more_client_hello_frames, vec![71]);
    assert_eq!(hrr.server_hello_frame, Some(72));
    assert_eq!(hrr.certificate_frame, Some(72));
    assert_eq!(shas(&hrr), vec![leaf, issuing]);
    assert_eq!(hrr.status, Status::Complete);
    assert_eq!(hrr.client_reaction.kind, ReactionKind::Completed);
    assert_eq!(hrr.client_reaction.frame, Some(75));
}
