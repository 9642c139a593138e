//! The field report, end to end: the bundled captures (recorded from OpenSSL) must give exactly
//! the certificates, statuses, findings, frames, streams and client reactions they contain.

mod common;
use common::{pki_sha, rendered, repo, repo_path};

use chainsniff::judge::ReactionKind;
use chainsniff::pki::{FindingKind, LinkSource, Status};
use chainsniff::report::HandshakeReport;
use chainsniff::{Options, Report};

fn with_root() -> Options {
    Options {
        trust: vec![repo("captures/pki/root.pem")],
        ..Default::default()
    }
}

fn by_stream(r: &Report, stream: u64) -> HandshakeReport {
    r.handshakes
        .iter()
        .find(|h| h.stream == stream)
        .unwrap_or_else(|| panic!("no handshake on tcp.stream {stream}"))
}

fn kinds(h: &HandshakeReport) -> Vec<FindingKind> {
    h.findings.iter().map(|f| f.kind).collect()
}

fn shas(h: &HandshakeReport) -> Vec<String> {
    h.certificates.iter().map(|c| c.sha256.clone()).collect()
}

#[test]
fn vip_before_the_fix_sends_leaf_only_to_some_phones() {
    let r = chainsniff::run(
        &[repo_path("captures/lync-vip-before.pcapng")],
        &with_root(),
    )
    .unwrap();
    let (leaf, issuing, root) = (pki_sha("leaf"), pki_sha("issuing"), pki_sha("root"));
    assert_eq!(r.captures.len(), 1);
    assert_eq!(r.captures[0].summary.frames, 69);
    assert!(!r.captures[0].summary.truncated);
    assert_eq!(r.handshakes.len(), 6);

    // (stream, client, server, ClientHello frame, Certificate frame, chain, status, reaction, reaction frame)
    let expected = [
        (
            0,
            "127.0.1.11",
            "127.0.0.10",
            4,
            6,
            vec![&leaf],
            Status::Incomplete,
            ReactionKind::Alert,
            8,
        ),
        (
            1,
            "127.0.1.12",
            "127.0.0.10",
            13,
            15,
            vec![&leaf],
            Status::Incomplete,
            ReactionKind::Alert,
            17,
        ),
        (
            2,
            "127.0.1.13",
            "127.0.0.10",
            22,
            24,
            vec![&leaf, &issuing],
            Status::Complete,
            ReactionKind::Completed,
            26,
        ),
        (
            3,
            "127.0.1.21",
            "127.0.0.10",
            36,
            38,
            vec![&leaf],
            Status::Incomplete,
            ReactionKind::Completed,
            40,
        ),
        (
            4,
            "127.0.1.14",
            "127.0.0.11",
            50,
            52,
            vec![&leaf, &issuing],
            Status::Complete,
            ReactionKind::Completed,
            54,
        ),
        (
            5,
            "127.0.1.11",
            "127.0.0.10",
            64,
            66,
            vec![&leaf],
            Status::Incomplete,
            ReactionKind::Alert,
            68,
        ),
    ];
    for (stream, client, server, ch, cert, chain, status, reaction, rframe) in expected {
        let h = by_stream(&r, stream);
        assert_eq!(h.client.ip.to_string(), client, "stream {stream}");
        assert_eq!(h.server.ip.to_string(), server, "stream {stream}");
        assert_eq!(h.server.port, 443);
        assert_eq!(h.sni.as_deref(), Some("lyncpool.contoso.test"));
        assert_eq!(h.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(h.client_hello_frame, Some(ch), "stream {stream}");
        assert_eq!(h.certificate_frame, Some(cert), "stream {stream}");
        assert_eq!(
            shas(&h),
            chain.into_iter().cloned().collect::<Vec<_>>(),
            "stream {stream}"
        );
        assert_eq!(h.status, status, "stream {stream}");
        assert_eq!(h.client_reaction.kind, reaction, "stream {stream}");
        assert_eq!(h.client_reaction.frame, Some(rframe), "stream {stream}");
        if reaction == ReactionKind::Alert {
            assert_eq!(h.client_reaction.alert.as_deref(), Some("unknown_ca"));
            assert_eq!(h.client_reaction.alert_level.as_deref(), Some("fatal"));
        }
        if status == Status::Incomplete {
            // Named: the issuing CA, and where it was seen instead (stream 2, frame 24).
            assert_eq!(kinds(&h), vec![FindingKind::MissingIntermediate]);
            let f = &h.findings[0];
            assert_eq!(f.certificate.as_deref(), Some(issuing.as_str()));
            assert!(
                f.message.contains("CN=Contoso Issuing CA 01"),
                "{}",
                f.message
            );
            assert!(
                f.message.contains("tcp.stream 2 (frame 24)"),
                "{}",
                f.message
            );
            assert_eq!(h.path.len(), 3);
            assert!(matches!(h.path[0].source, LinkSource::Sent { position: 0 }));
            assert!(matches!(
                h.path[1].source,
                LinkSource::Capture {
                    stream: 2,
                    frame: 24,
                    ..
                }
            ));
            assert_eq!(h.path[1].sha256, issuing);
            assert!(matches!(h.path[2].source, LinkSource::Anchor));
            assert_eq!(h.path[2].sha256, root);
        } else {
            assert!(h.findings.is_empty(), "{:?}", h.findings);
        }
    }

    // The VIP sent two chain variants: leaf only (A, 4 handshakes) and leaf + intermediate (B).
    let vip = r
        .servers
        .iter()
        .find(|s| s.server.ip.to_string() == "127.0.0.10")
        .unwrap();
    assert_eq!(vip.handshakes, 5);
    assert_eq!(vip.variants.len(), 2);
    assert_eq!(vip.variants[0].certificates, vec![leaf.clone()]);
    assert_eq!(vip.variants[0].status, Status::Incomplete);
    let streams: Vec<u64> = vip.variants[0].clients.iter().map(|c| c.stream).collect();
    assert_eq!(streams, vec![0, 1, 3, 5]);
    assert_eq!(
        vip.variants[1].certificates,
        vec![leaf.clone(), issuing.clone()]
    );
    assert_eq!(vip.findings.len(), 1);
    assert_eq!(vip.findings[0].kind, FindingKind::InconsistentChains);
    let fe = r
        .servers
        .iter()
        .find(|s| s.server.ip.to_string() == "127.0.0.11")
        .unwrap();
    assert_eq!(fe.variants.len(), 1);
    assert!(fe.findings.is_empty());

    assert_eq!(r.summary.by_status.get("incomplete"), Some(&4));
    assert_eq!(r.summary.by_status.get("complete"), Some(&2));
    // One root cause per line, the failing one first, with true counts: 4 handshakes of 3
    // clients got the leaf alone; 127.0.1.11 (twice) and 127.0.1.12 aborted, 127.0.1.21
    // fetched the issuer and went on.
    assert_eq!(
        r.summary.headlines,
        [
            "missing intermediate O=Contoso, CN=Contoso Issuing CA 01: 1 chain of lyncpool.contoso.test (127.0.0.10:443), which sends other clients another chain; 3 clients (3 JA4 t12d150700_d68b136fe8d9_e7e480e5a997: 127.0.1.11, 127.0.1.12, 127.0.1.21): 2 failed (alert unknown_ca, first in frame 8), 1 went on. Fix: Send the full chain: the leaf, then each intermediate. Install bundle-lyncpool.contoso.test_127.0.0.10_443.pem (--export-certs DIR)."
        ]
    );
    let c = &r.summary.causes[0];
    assert_eq!(c.kind, "missing_intermediate");
    assert_eq!(c.certificate.as_deref(), Some(issuing.as_str()));
    assert_eq!((c.chains, c.handshakes, c.clients), (1, 4, 3));
    assert_eq!((c.failed_clients, c.went_on_clients), (2, 1));
    assert_eq!(c.failures.get("alert unknown_ca"), Some(&3));
    assert_eq!(c.first_failure.map(|f| f.frame), Some(8));
    assert_eq!(c.servers[0].variants, ["A"]);
    let coping = c.coping.as_deref().unwrap();
    assert!(coping.contains("the caIssuers URL http://pki.contoso.test/issuing-ca.crt"));
    assert!(
        coping.ends_with("In this capture 1 client went on."),
        "{coping}"
    );
}

/// Before and after the fix, in one report: the cause line says per capture how the server's
/// handshakes fared, so that the pair reads as the verification of the fix.
#[test]
fn before_and_after_read_as_the_verification_of_the_fix() {
    let r = chainsniff::run(
        &[
            repo_path("captures/lync-vip-before.pcapng"),
            repo_path("captures/lync-vip-fixed.pcap"),
        ],
        &with_root(),
    )
    .unwrap();
    let kinds: Vec<&str> = r.summary.causes.iter().map(|c| c.kind.as_ref()).collect();
    // The server's third chain (leaf, leaf, intermediate, root) is told in the first cause
    // ("which sends other clients another chain"), not as a cause of its own.
    assert_eq!(kinds, ["missing_intermediate", "duplicate_certificate"]);
    assert_eq!(r.summary.causes[0].mixed_servers, 1);
    let per = |i: usize| -> Vec<(usize, usize, usize, usize)> {
        r.summary.causes[i]
            .per_capture
            .iter()
            .map(|c| {
                (
                    c.capture,
                    c.handshakes,
                    c.server_handshakes,
                    c.failed_clients,
                )
            })
            .collect()
    };
    // Before: 4 of the server's 5 handshakes got the leaf alone, 2 clients failed; after: none.
    assert_eq!(per(0), [(0, 4, 5, 2), (1, 0, 3, 0)]);
    // After: all 3 got the leaf twice, and no client failed.
    assert_eq!(per(1), [(0, 0, 5, 0), (1, 3, 3, 0)]);
    assert!(
        r.summary.headlines[0].contains(
            "By capture: lync-vip-before.pcapng: 4 of 5 handshakes, 2 clients failed; lync-vip-fixed.pcap: none of 3 handshakes."
        ),
        "{}",
        r.summary.headlines[0]
    );
    assert!(r.summary.headlines[0].contains("first in frame 8 of lync-vip-before.pcapng"));
    let chains: Vec<usize> = r.summary.causes[0]
        .per_capture
        .iter()
        .map(|c| c.chains)
        .collect();
    assert_eq!(
        chains,
        [1, 0],
        "the leaf-only chain before the fix, not after"
    );
}

#[test]
fn vip_after_the_fix_is_complete_but_sloppy() {
    let r = chainsniff::run(&[repo_path("captures/lync-vip-fixed.pcap")], &with_root()).unwrap();
    let (leaf, issuing, root) = (pki_sha("leaf"), pki_sha("issuing"), pki_sha("root"));
    assert_eq!(r.handshakes.len(), 3);
    for (h, (stream, ch, cert)) in r
        .handshakes
        .iter()
        .zip([(0, 4, 6), (1, 18, 20), (2, 32, 34)])
    {
        assert_eq!(h.stream, stream);
        assert_eq!(h.client_hello_frame, Some(ch));
        assert_eq!(h.certificate_frame, Some(cert));
        assert_eq!(
            shas(&h),
            vec![leaf.clone(), leaf.clone(), issuing.clone(), root.clone()]
        );
        assert_eq!(h.status, Status::Complete);
        assert_eq!(
            kinds(&h),
            vec![
                FindingKind::DuplicateCertificate,
                FindingKind::ContainsAnchor
            ]
        );
        assert_eq!(h.client_reaction.kind, ReactionKind::Completed);
    }
    assert_eq!(r.servers.len(), 1);
    assert_eq!(r.servers[0].variants.len(), 1);
    assert!(r.servers[0].findings.is_empty());
}

#[test]
fn without_the_enterprise_root_the_end_of_the_chain_is_undetermined() {
    let r = chainsniff::run(
        &[repo_path("captures/lync-vip-before.pcapng")],
        &Options::default(),
    )
    .unwrap();
    // The leaf-only chains still lack the intermediate (seen elsewhere): incomplete.
    let h = by_stream(&r, 0);
    assert_eq!(h.status, Status::Incomplete);
    assert!(kinds(&h).contains(&FindingKind::MissingIntermediate));
    assert!(kinds(&h).contains(&FindingKind::UnknownIssuer));
    // The full chain ends at an issuer found nowhere: say what to pass with --trust.
    let h = by_stream(&r, 2);
    assert_eq!(h.status, Status::Undetermined);
    assert_eq!(kinds(&h), vec![FindingKind::UnknownIssuer]);
    assert!(h.findings[0].message.contains("--trust"));
}

/// With the fixed capture beside it, the enterprise root is in the capture (the fixed chain
/// sends it): a chain that leaves the root out is not missing anything (servers need not send
/// the root), it ends at a root that is not trusted here, as `openssl verify` without the root
/// says ("unable to get local issuer certificate" for leaf and intermediate alone).
#[test]
fn a_root_left_out_is_no_missing_intermediate() {
    let r = chainsniff::run(
        &[
            repo_path("captures/lync-vip-before.pcapng"),
            repo_path("captures/lync-vip-fixed.pcap"),
        ],
        &Options::default(),
    )
    .unwrap();
    // Leaf and intermediate, no root (before the fix, straight to a front-end server).
    let h = by_stream(&r, 2);
    assert_eq!(h.capture, 0);
    assert_eq!(h.certificates.len(), 2);
    assert_eq!(h.status, Status::Untrusted);
    assert_eq!(kinds(&h), vec![FindingKind::UntrustedRoot]);
    let root = h.path.last().unwrap();
    assert_eq!(root.subject, "O=Contoso, CN=Contoso Root CA");
    // Leaf only: the intermediate is missing, the root is not.
    let h = by_stream(&r, 0);
    let missing: Vec<&str> = h
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::MissingIntermediate)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].contains("CN=Contoso Issuing CA 01"),
        "{missing:?}"
    );
}

#[test]
fn several_captures_make_one_report() {
    let r = chainsniff::run(
        &[
            repo_path("captures/lync-vip-before.pcapng"),
            repo_path("captures/lync-vip-fixed.pcap"),
        ],
        &with_root(),
    )
    .unwrap();
    assert_eq!(r.captures.len(), 2);
    assert_eq!(r.handshakes.len(), 9);
    assert_eq!(r.handshakes.iter().filter(|h| h.capture == 1).count(), 3);
    // Same server and SNI in both captures: the three chains it sent over time are variants.
    let vip = r
        .servers
        .iter()
        .find(|s| s.server.ip.to_string() == "127.0.0.10")
        .unwrap();
    assert_eq!(vip.variants.len(), 3);
}

#[test]
fn a_short_snap_length_truncates_and_says_so() {
    let r = chainsniff::run(
        &[repo_path("captures/lync-vip-before-snap200.pcapng")],
        &with_root(),
    )
    .unwrap();
    assert_eq!(r.handshakes.len(), 6);
    for h in r.handshakes.iter() {
        assert_eq!(h.status, Status::Truncated, "stream {}", h.stream);
        assert!(h.certificates.is_empty());
        assert!(h.findings.is_empty());
    }
    let first = by_stream(&r, 0);
    assert_eq!(
        first.notes[0],
        chainsniff::judge::Note {
            kind: chainsniff::judge::NoteKind::SnapLength,
            frame: Some(6),
            capture: None,
            text: "1244 bytes from the server in frame 6 were cut by the capture's snap length"
                .into(),
        }
    );
    assert_eq!(
        first.notes[1].kind,
        chainsniff::judge::NoteKind::CertificateFlightCut
    );
}

/// `--format json` copies each handshake out as it was stored; the result must be exactly the
/// report serialized in one go by serde_json (the schema in docs/report.md).
#[test]
fn the_json_report_is_the_report_serialized_in_one_go() {
    for capture in [
        "captures/lync-vip-phones.pcap",
        "captures/lync-vip-fixed.pcap",
        "captures/tls13-gnutls.pcapng",
    ] {
        let mut r = chainsniff::run(&[repo_path(capture)], &with_root()).unwrap();
        r.group_by(chainsniff::report::GroupBy::Vendor);
        let written = rendered(chainsniff::render::json::write, &r);
        let mut whole = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut whole,
            chainsniff::json::BidiEscaping(serde_json::ser::PrettyFormatter::new()),
        );
        serde::Serialize::serialize(&r, &mut ser).unwrap();
        whole.push(b'\n');
        assert!(r.handshakes.len() > 1, "{capture}");
        assert_eq!(written, String::from_utf8(whole).unwrap(), "{capture}");
    }
}

/// Several captures are read in parallel, one per core; the report must be the one that
/// reading them one after another gives (certificates seen in one capture still name what a
/// server left out in another).
#[test]
fn captures_read_in_parallel_give_the_report_read_one_by_one() {
    let paths: Vec<String> = [
        "captures/lync-vip-before.pcapng",
        "captures/lync-vip-fixed.pcap",
        "captures/tls13-gnutls.pcapng",
        "captures/lync-vip-phones.pcap",
        "captures/tls13-openssl-dsb.pcapng",
    ]
    .iter()
    .map(|p| repo_path(p))
    .collect();
    let opts = with_root();
    let parallel = chainsniff::analysis::analyze(&paths, &opts).unwrap();
    let one_by_one = chainsniff::analysis::analyze_streaming(&paths, &opts, |_, _, _| {}).unwrap();
    assert_eq!(parallel.sessions.len(), one_by_one.sessions.len());
    assert!(parallel.sessions.len() > 20);
    let json = |a: &chainsniff::analysis::Analysis| {
        rendered(
            chainsniff::render::json::write,
            &chainsniff::build(a).unwrap(),
        )
    };
    assert_eq!(json(&parallel), json(&one_by_one));
}
