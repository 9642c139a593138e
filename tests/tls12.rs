//! TLS 1.2 key logs and renegotiation: `captures/tls12-renegotiation.pcap` (OpenSSL 3.0 on both
//! ends, three connections, one cipher suite each, each renegotiated by the client; see
//! captures/README.md). With the key log's `CLIENT_RANDOM` lines the renegotiation's chain,
//! sent encrypted under the first handshake's keys, is seen and judged, at the frames tshark
//! 4 shows with the same key log; without them the renegotiation is reported as not seen, and
//! the message says why. And TLS 1.3 drafts with a key log: the note names the draft as the
//! cause, not the key log (public captures, `CHAINSNIFF_PUBLIC_CAPTURES`).

mod common;
use common::{pki_sha, repo};

use std::path::{Path, PathBuf};
use std::process::Command;

use chainsniff::judge::ReactionKind;
use chainsniff::pki::{FindingKind, Status};
use chainsniff::report::HandshakeReport;
use chainsniff::{Options, Report};

const CAPTURE: &str = "captures/tls12-renegotiation.pcap";
const KEYLOG: &str = "captures/tls12-renegotiation.keylog";

fn run(capture: &Path, keylog: Option<&Path>) -> Report {
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        keylog: keylog.map(Path::to_path_buf).into_iter().collect(),
        ..Default::default()
    };
    chainsniff::run(&[capture.to_string_lossy().into_owned()], &opts).unwrap()
}

fn on_stream(r: &Report, s: u64) -> Vec<HandshakeReport> {
    r.handshakes.iter().filter(|h| h.stream == s).collect()
}

fn subjects(h: &HandshakeReport) -> Vec<String> {
    h.certificates.iter().map(|c| c.subject.clone()).collect()
}

fn shas(h: &HandshakeReport) -> Vec<String> {
    h.certificates.iter().map(|c| c.sha256.clone()).collect()
}

fn kinds(h: &HandshakeReport) -> Vec<FindingKind> {
    h.findings.iter().map(|f| f.kind).collect()
}

/// The frames of the Certificate messages tshark shows, with the key log if given; `None`
/// when tshark is not installed (the test then says so and checks the frames recorded in
/// captures/README.md).
fn tshark_certificate_frames(keylog: Option<&Path>) -> Option<Vec<u64>> {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".config")).unwrap();
    let mut cmd = Command::new("tshark");
    cmd.env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .arg("-r")
        .arg(repo(CAPTURE));
    if let Some(k) = keylog {
        cmd.arg("-o")
            .arg(format!("tls.keylog_file:{}", k.display()));
    }
    cmd.args([
        "-Y",
        "tls.handshake.type==11",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]);
    let Ok(out) = cmd.output() else {
        common::notice("tshark not found: the frames are checked against captures/README.md only");
        return None;
    };
    assert!(out.status.success(), "tshark failed: {out:?}");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect(),
    )
}

/// The ClientHello randoms of the capture's handshakes, in order (from the library's own
/// analysis, before any key log).
fn client_randoms(capture: &Path) -> Vec<Vec<u8>> {
    let (_, hs) = chainsniff::analysis::analyze_capture(capture.to_str().unwrap()).unwrap();
    hs.iter()
        .filter_map(|h| h.client_hellos.first().map(|c| c.random.clone()))
        .collect()
}

#[test]
fn the_renegotiations_chain_is_decrypted_and_judged_with_the_key_log() {
    let r = run(&repo(CAPTURE), Some(&repo(KEYLOG)));
    assert_eq!(r.handshakes.len(), 6);
    let leaf = [
        "O=Contoso, CN=lyncpool.contoso.test",
        "O=Contoso, CN=Contoso Issuing CA 01",
    ];
    let ciphers = [
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ];
    // (first ClientHello, first Certificate, renegotiation ClientHello, its Certificate, the
    // client's ClientKeyExchange after it)
    let frames = [
        (4, 6, 13, 15, 17),
        (32, 34, 41, 43, 45),
        (60, 62, 69, 71, 73),
    ];
    let mut certificate_frames = Vec::new();
    for (stream, (ch, cert, rch, rcert, rcke)) in frames.into_iter().enumerate() {
        let hs = on_stream(&r, stream as u64);
        assert_eq!(hs.len(), 2, "stream {stream}");
        let (first, reneg) = (&hs[0], &hs[1]);
        for h in [first, reneg] {
            assert_eq!(h.version.as_deref(), Some("TLS 1.2"));
            assert!(
                h.cipher_suite.as_deref().unwrap().contains(ciphers[stream]),
                "{:?}",
                h.cipher_suite
            );
            assert_eq!(subjects(h), leaf);
            assert_eq!(shas(h), vec![pki_sha("leaf"), pki_sha("issuing")]);
            assert_eq!(h.status, Status::Complete);
            assert!(h.findings.is_empty(), "{:?}", h.findings);
            assert_eq!(h.filter, format!("tcp.stream == {stream}"));
            assert_eq!(h.sni.as_deref(), Some("lyncpool.contoso.test"));
        }
        assert_eq!(first.client_hello_frame, Some(ch));
        assert_eq!(first.certificate_frame, Some(cert));
        assert!(!first.decrypted);
        assert_eq!(first.renegotiation_frame, None);
        assert_eq!(reneg.renegotiation_frame, Some(rch));
        assert_eq!(reneg.client_hello_frame, Some(rch));
        assert_eq!(reneg.certificate_frame, Some(rcert));
        assert_eq!(reneg.server_hello_done_frame, Some(rcert));
        assert!(reneg.decrypted);
        assert_eq!(reneg.client_reaction.kind, ReactionKind::Completed);
        assert_eq!(reneg.client_reaction.frame, Some(rcke));
        assert_eq!(
            reneg.notes,
            vec![chainsniff::judge::Note {
                kind: chainsniff::judge::NoteKind::Renegotiation,
                frame: Some(rch),
                capture: None,
                text: format!(
                    "a TLS 1.2 renegotiation: its messages travelled encrypted under the keys of the handshake whose ClientHello is in frame {ch}, and were decrypted with that handshake's CLIENT_RANDOM line in the key log"
                ),
            }]
        );
        certificate_frames.extend([cert, rcert]);
    }
    assert_eq!(certificate_frames, vec![6, 15, 34, 43, 62, 71]);
    if let Some(t) = tshark_certificate_frames(Some(&repo(KEYLOG))) {
        assert_eq!(certificate_frames, t, "tshark with the key log");
    }
    assert_eq!(r.summary.not_judged, 0);
}

#[test]
fn without_the_key_log_the_renegotiation_is_reported_as_not_seen() {
    let r = run(&repo(CAPTURE), None);
    assert_eq!(r.handshakes.len(), 6);
    let mut certificate_frames = Vec::new();
    for (stream, (cert, rch)) in [(6, 13), (34, 41), (62, 69)].into_iter().enumerate() {
        let hs = on_stream(&r, stream as u64);
        assert_eq!(hs.len(), 2, "stream {stream}");
        let (first, reneg) = (&hs[0], &hs[1]);
        assert_eq!(first.status, Status::Complete);
        assert_eq!(first.certificate_frame, Some(cert));
        assert_eq!(shas(first), vec![pki_sha("leaf"), pki_sha("issuing")]);
        assert!(first.findings.is_empty(), "{:?}", first.findings);
        certificate_frames.push(cert);

        assert_eq!(reneg.status, Status::NotVisible);
        assert!(reneg.certificates.is_empty());
        assert_eq!(reneg.client_hello_frame, None);
        assert_eq!(reneg.renegotiation_frame, Some(rch));
        assert_eq!(reneg.sni.as_deref(), Some("lyncpool.contoso.test"));
        assert_eq!(kinds(reneg), vec![FindingKind::RenegotiationNotVisible]);
        let f = &reneg.findings[0];
        assert_eq!(f.frame, Some(rch));
        assert_eq!(
            f.message,
            format!(
                "A TLS 1.2 renegotiation starts in frame {rch}, encrypted under the keys of the handshake whose ClientHello is in frame {}: the chain sent in it is not seen, so not judged. No key log was given: pass the client's with --keylog (its CLIENT_RANDOM line for this handshake) to see the renegotiation.",
                first.client_hello_frame.unwrap()
            )
        );
    }
    if let Some(t) = tshark_certificate_frames(None) {
        assert_eq!(certificate_frames, t, "tshark without the key log");
    }
    // Never an all-clear: three handshakes could not be judged, and a headline says why.
    assert_eq!(r.summary.not_judged, 3);
    assert!(
        r.summary
            .headlines
            .iter()
            .any(|h| h
                .contains("a TLS 1.2 renegotiation, encrypted under the first handshake's keys")),
        "{:?}",
        r.summary.headlines
    );
}

/// A key log without stream 1's line, and with stream 2's master secret altered: each
/// renegotiation that cannot be read says which of key log or records is the cause.
#[test]
fn a_key_log_that_lacks_the_line_or_does_not_open_the_records_says_so() {
    let randoms = client_randoms(&repo(CAPTURE));
    assert_eq!(
        randoms.len(),
        3,
        "one ClientHello seen per connection without keys"
    );
    let text = std::fs::read_to_string(repo(KEYLOG)).unwrap();
    let hex1 = hex::encode(&randoms[1]);
    let hex2 = hex::encode(&randoms[2]);
    let edited: String = text
        .lines()
        .filter(|l| !l.contains(&hex1))
        .map(|l| {
            if let Some(secret) = l.strip_prefix(&format!("CLIENT_RANDOM {hex2} ")) {
                let flipped = if secret.starts_with('0') { "1" } else { "0" };
                format!("CLIENT_RANDOM {hex2} {flipped}{}\n", &secret[1..])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(edited.lines().count() + 1, text.lines().count());
    let dir = tempfile::tempdir().unwrap();
    let keylog: PathBuf = dir.path().join("edited.keylog");
    std::fs::write(&keylog, edited).unwrap();
    let r = run(&repo(CAPTURE), Some(&keylog));

    // Stream 0: its line is there, the renegotiation is read.
    let s0 = on_stream(&r, 0);
    assert_eq!(s0[1].status, Status::Complete);
    assert!(s0[1].decrypted);

    let s1 = on_stream(&r, 1);
    assert_eq!(s1.len(), 2);
    assert_eq!(s1[1].status, Status::NotVisible);
    assert_eq!(kinds(&s1[1]), vec![FindingKind::RenegotiationNotVisible]);
    assert!(
        s1[1].findings[0].message.ends_with(
            "The key log has no CLIENT_RANDOM line for the handshake before: use the key log written by this client during this capture."
        ),
        "{}",
        s1[1].findings[0].message
    );
    assert_eq!(s1[1].findings[0].frame, Some(41));

    // Stream 2: the client's Finished (frame 64) does not open with the altered secret.
    let s2 = on_stream(&r, 2);
    assert_eq!(s2.len(), 2);
    assert_eq!(s2[0].status, Status::Complete);
    assert_eq!(s2[1].status, Status::NotVisible);
    assert_eq!(kinds(&s2[1]), vec![FindingKind::RenegotiationNotVisible]);
    assert!(
        s2[1].findings[0].message.ends_with(
            "The client's records did not decrypt with the logged master secret (first failure at frame 64): the key log belongs to another session, or the capture lost bytes."
        ),
        "{}",
        s2[1].findings[0].message
    );
}

fn public_corpus() -> Option<PathBuf> {
    common::shared_data(
        "CHAINSNIFF_PUBLIC_CAPTURES",
        "captures/public",
        "truth",
        "the TLS 1.3 draft key log test",
    )
}

/// Public TLS 1.3 draft captures (Suricata's tests, no key log published): with a key log that
/// has a line for their client randoms, the finding names the draft, not the key log; without
/// one, nothing is said about decryption.
#[test]
fn a_tls13_draft_with_a_key_log_names_the_draft_as_the_cause() {
    let Some(corpus) = public_corpus() else {
        return;
    };
    for draft in [18u8, 19, 22, 23, 28] {
        let path = corpus.join(format!(
            "suricata-verify/tls/tls13-draft{draft}/tls13_draft{draft}.pcap"
        ));
        let randoms = client_randoms(&path);
        assert!(!randoms.is_empty(), "draft {draft}");
        let dir = tempfile::tempdir().unwrap();
        let keylog = dir.path().join("draft.keylog");
        let lines: String = randoms
            .iter()
            .map(|r| {
                let r = hex::encode(r);
                let s = "ab".repeat(32);
                format!(
                    "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {s}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {s}\n"
                )
            })
            .collect();
        std::fs::write(&keylog, lines).unwrap();

        let plain = run(&path, None);
        let keyed = run(&path, Some(&keylog));
        assert_eq!(plain.handshakes.len(), keyed.handshakes.len());
        for (p, k) in plain.handshakes.iter().zip(keyed.handshakes.iter()) {
            assert_eq!(
                k.version.as_deref(),
                Some(format!("TLS 1.3 (draft {draft})").as_str())
            );
            assert!(
                !kinds(&p).contains(&FindingKind::DecryptionFailed),
                "{:?}",
                p.findings
            );
            assert_eq!(k.status, p.status);
            assert!(!k.decrypted);
            let f: Vec<_> = k
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::DecryptionFailed)
                .collect();
            assert_eq!(f.len(), 1, "draft {draft}: {:?}", k.findings);
            assert_eq!(
                f[0].message,
                format!(
                    "TLS 1.3 draft {draft}: its record protection differs from RFC 8446, and chainsniff does not decrypt drafts (the key log was not tried), so its certificate stays encrypted."
                )
            );
            assert!(!f[0].message.contains("another session"));
        }
    }
}
