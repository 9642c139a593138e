//! Captures of our own from real stacks, beyond TLS over TCP from the first byte: DTLS 1.2
//! (OpenSSL s_server / s_client), SMTP STARTTLS (OpenSSL s_client -starttls smtp), QUIC
//! (aioquic). Frames are the ones tshark shows for the same files.

mod common;
use chainsniff::model::Protocol;
use common::{pki_sha, repo, repo_path};

use chainsniff::judge::ReactionKind;
use chainsniff::pki::{FindingKind, Status};
use chainsniff::{Options, Report};

fn run(capture: &str) -> Report {
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        ..Default::default()
    };
    chainsniff::run(&[repo_path(capture)], &opts).unwrap()
}

#[test]
fn dtls_chains_are_reassembled_and_diagnosed() {
    let r = run("captures/dtls-openssl.pcap");
    let (leaf, issuing) = (pki_sha("leaf"), pki_sha("issuing"));
    assert_eq!(r.handshakes.len(), 2);
    for h in r.handshakes.iter() {
        assert_eq!(h.protocol, Protocol::Dtls);
        assert_eq!(h.transport, "udp");
        assert_eq!(h.version.as_deref(), Some("DTLS 1.2"));
        assert_eq!(h.sni.as_deref(), Some("lyncpool.contoso.test"));
    }
    // Leaf only: the Certificate spans several datagrams (fragments) and completes in frame 9;
    // the client aborts with unknown_ca. The ClientHello is sent twice (HelloVerifyRequest).
    let short = &r.handshakes.get(0);
    assert_eq!((short.stream, short.client_hello_frame), (0, Some(1)));
    assert_eq!(short.more_client_hello_frames, vec![3]);
    assert_eq!(short.certificate_frame, Some(9));
    let shas: Vec<&str> = short
        .certificates
        .iter()
        .map(|c| c.sha256.as_str())
        .collect();
    assert_eq!(shas, vec![leaf.as_str()]);
    assert_eq!(short.status, Status::Incomplete);
    assert_eq!(short.findings[0].kind, FindingKind::MissingIntermediate);
    assert_eq!(short.client_reaction.kind, ReactionKind::Alert);
    assert_eq!(short.client_reaction.alert.as_deref(), Some("unknown_ca"));
    assert_eq!(short.client_reaction.frame, Some(11));

    let full = &r.handshakes.get(1);
    assert_eq!((full.stream, full.certificate_frame), (1, Some(24)));
    let shas: Vec<&str> = full
        .certificates
        .iter()
        .map(|c| c.sha256.as_str())
        .collect();
    assert_eq!(shas, vec![leaf.as_str(), issuing.as_str()]);
    assert_eq!(full.status, Status::Complete);
    assert_eq!(full.client_reaction.kind, ReactionKind::Completed);
}

#[test]
fn smtp_starttls_is_found_and_named() {
    let r = run("captures/smtp-starttls.pcap");
    assert_eq!(r.handshakes.len(), 1);
    let h = &r.handshakes.get(0);
    assert_eq!(h.upgrade.as_deref(), Some("smtp-starttls"));
    assert_eq!(h.server.port, 25);
    assert_eq!(h.client_hello_frame, Some(11));
    assert_eq!(h.certificate_frame, Some(12));
    let shas: Vec<String> = h.certificates.iter().map(|c| c.sha256.clone()).collect();
    assert_eq!(shas, vec![pki_sha("leaf"), pki_sha("issuing")]);
    assert_eq!(h.status, Status::Complete);
}

#[test]
fn quic_initial_packets_give_the_hellos() {
    let r = run("captures/quic-aioquic.pcap");
    assert_eq!(r.handshakes.len(), 1);
    let h = &r.handshakes.get(0);
    assert_eq!(h.protocol, Protocol::Quic);
    assert_eq!((&*h.transport, h.stream), ("udp", 0));
    assert_eq!(h.server.port, 4443);
    assert_eq!(h.client_hello_frame, Some(1));
    assert_eq!(h.sni.as_deref(), Some("lyncpool.contoso.test"));
    assert_eq!(h.alpn, vec!["h3".to_string()]);
    assert_eq!(h.version.as_deref(), Some("TLS 1.3"));
    assert!(h.server_hello_frame.is_some());
    // The certificate is in Handshake packets: not visible without keys.
    assert_eq!(h.status, Status::NotVisible);
    assert!(h.certificates.is_empty());
}
