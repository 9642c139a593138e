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

/// `dtls-openssl.pcap` as OpenSSL before 0.9.8j would have sent it: every record header and
/// every ClientHello, HelloVerifyRequest and ServerHello version rewritten to 0x0100
/// (`DTLS1_BAD_VER`), the rest of each datagram as recorded.
fn dtls_bad_version_copy() -> std::path::PathBuf {
    let bytes = std::fs::read(repo("captures/dtls-openssl.pcap")).unwrap();
    assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(bytes[20..24], [1, 0, 0, 0], "Ethernet");
    let mut out = bytes[..24].to_vec();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let mut frame = bytes[at + 16..at + 16 + len].to_vec();
        out.extend_from_slice(&bytes[at..at + 16]);
        at += 16 + len;
        // Ethernet, IPv4 (no options), UDP.
        if frame.len() > 42 && frame[12..14] == [8, 0] && frame[23] == 17 {
            let ihl = (frame[14] & 0x0f) as usize * 4;
            let udp = 14 + ihl;
            frame[udp + 6..udp + 8].copy_from_slice(&[0, 0]); // no UDP checksum (IPv4)
            let mut r = udp + 8;
            while r + 13 <= frame.len() {
                frame[r + 1..r + 3].copy_from_slice(&[1, 0]);
                let epoch = u16::from_be_bytes([frame[r + 3], frame[r + 4]]);
                let rlen = u16::from_be_bytes([frame[r + 11], frame[r + 12]]) as usize;
                // A handshake record of epoch 0: the version after the 12-byte message header.
                if frame[r] == 22 && epoch == 0 && matches!(frame[r + 13], 1..=3) {
                    let v = r + 13 + 12;
                    frame[v..v + 2].copy_from_slice(&[1, 0]);
                }
                r += 13 + rlen;
            }
        }
        out.extend_from_slice(&frame);
    }
    let path = common::tmp("dtls-0x0100.pcap");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn dtls_of_old_openssl_record_version_0x0100_is_read() {
    let path = dtls_bad_version_copy();
    let r = run(&path.to_string_lossy());
    let original = run("captures/dtls-openssl.pcap");
    assert_eq!(r.handshakes.len(), 2);
    for (h, o) in r.handshakes.iter().zip(original.handshakes.iter()) {
        assert_eq!(h.protocol, Protocol::Dtls);
        assert_eq!(
            h.version.as_deref(),
            Some("DTLS 1.0 (OpenSSL before 0.9.8j, 0x0100)")
        );
        // The same chains, statuses, frames and reactions as the recorded handshakes.
        let shas = |h: &chainsniff::report::HandshakeReport| -> Vec<String> {
            h.certificates.iter().map(|c| c.sha256.clone()).collect()
        };
        assert_eq!(shas(&h), shas(&o));
        assert_eq!(h.status, o.status);
        assert_eq!(h.certificate_frame, o.certificate_frame);
        assert_eq!(h.client_reaction.kind, o.client_reaction.kind);
        assert_eq!(h.client_reaction.frame, o.client_reaction.frame);
    }
    assert_eq!(r.handshakes.get(0).status, Status::Incomplete);
    // Wireshark reads the copy as DTLS 1.0 (OpenSSL pre 0.9.8f) too, when tshark is here.
    if let Ok(out) = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-Y",
            "dtls.record.version == 0x0100 && dtls.handshake.type == 11",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        && out.status.success()
    {
        let frames = String::from_utf8_lossy(&out.stdout);
        assert!(frames.lines().any(|l| l.trim() == "9"), "{frames}");
    }
}

/// TLS in RDP's UDP transport (MS-RDPEUDP2), on zeek's public capture of a real Windows
/// handshake. Wireshark does not reassemble the server's record across the two datagrams that
/// carry it (frames 5 and 6), so the certificate is checked independently: its DER is cut from
/// the UDP payloads tshark prints, at the offsets tshark's RDPUDP2 dissector shows for the
/// channel data, and read by `openssl x509`.
#[test]
fn tls_in_rdp_udp_is_reassembled_from_its_channel() {
    let Some(corpus) = common::shared_data(
        "CHAINSNIFF_PUBLIC_CAPTURES",
        "captures/public",
        "README.md",
        "the RDP-UDP test",
    ) else {
        return;
    };
    let capture = corpus.join("zeek/rdp/rdpeudp2-handshake-success.pcap");
    let path = capture.to_str().unwrap().to_string();
    let r = chainsniff::run(std::slice::from_ref(&path), &Options::default()).unwrap();
    assert_eq!(r.handshakes.len(), 1);
    let h = r.handshakes.get(0);
    assert_eq!(h.protocol, Protocol::RdpUdp);
    assert_eq!((h.transport.as_ref(), h.stream), ("udp", 0));
    assert_eq!(h.filter, "udp.stream == 0");
    assert_eq!(h.client.port, 65368);
    assert_eq!(h.server.port, 3389);
    assert_eq!(h.client_hello_frame, Some(3));
    assert_eq!(h.server_hello_frame, Some(6));
    assert_eq!(h.certificate_frame, Some(6));
    assert_eq!(h.version.as_deref(), Some("TLS 1.0"));
    assert!(
        h.ja4.as_deref().is_some_and(|j| j.starts_with("t12")),
        "{:?}",
        h.ja4
    );
    // The server's record: frame 5's channel data from byte 20, frame 6's from byte 9.
    let payload = |frame: u32| {
        let out = std::process::Command::new("tshark")
            .args(["-r", &path, "-Y", &format!("frame.number == {frame}")])
            .args(["-T", "fields", "-e", "udp.payload"])
            .output()
            .expect("tshark runs (.ci/run installs it)");
        hex::decode(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
    };
    let mut record = payload(5)[20..].to_vec();
    record.extend_from_slice(&payload(6)[9..]);
    assert_eq!(&record[..3], &[0x16, 0x03, 0x01]);
    let len = u16::from_be_bytes([record[3], record[4]]) as usize;
    assert_eq!(record.len(), 5 + len, "the record ends with frame 6");
    // Handshake messages: ServerHello, then Certificate (type 11) with its list.
    let body = &record[5..];
    let sh_len = u32::from_be_bytes([0, body[1], body[2], body[3]]) as usize;
    let cert_msg = &body[4 + sh_len..];
    assert_eq!(cert_msg[0], 11);
    let first_len = u32::from_be_bytes([0, cert_msg[7], cert_msg[8], cert_msg[9]]) as usize;
    let der = &cert_msg[10..10 + first_len];
    assert_eq!(h.certificates.len(), 1);
    assert_eq!(
        h.certificates[0].sha256,
        hex::encode(chainsniff::pki::sha256(der))
    );
    let file = common::tmp("rdp-udp-leaf.der");
    std::fs::write(&file, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-subject", "-in"])
        .arg(&file)
        .output()
        .unwrap();
    let subject = String::from_utf8(out.stdout).unwrap();
    assert_eq!(subject.trim(), "subject=CN = localhost");
    assert_eq!(h.certificates[0].subject, "CN=localhost");
    // A self-signed SHA-1 certificate: no client trusts it by default.
    assert_eq!(h.status, Status::Untrusted);
    assert!(
        h.findings
            .iter()
            .any(|f| f.kind == FindingKind::WeakSignature)
    );
}
