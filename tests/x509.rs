//! Verdicts like a real validator, on chains from real OpenSSL servers and the real clients'
//! reactions (captures/x509-cases.pcap, made by captures/record-x509.py; its README table says
//! what `openssl verify` answers for each): every case's status, verdict, finding kinds and
//! the client's alert. Then the cases of "no false all-clear": a leaf whose issuer appears
//! nowhere, a `--trust` folder holding a whole PKI, a client that rejects a valid chain,
//! captures that cannot be judged, TLS 1.3 resumption.

mod common;
use common::{chainsniff, repo, repo_path};

use chainsniff::Options;
use chainsniff::pki::{FindingKind, Status, Verdict};
use chainsniff::report::HandshakeReport;

use FindingKind as K;

fn fabrikam() -> Options {
    Options {
        trust: vec![repo("captures/pki/x509/root.pem")],
        ..Default::default()
    }
}

fn cases() -> Vec<HandshakeReport> {
    let r = chainsniff::run(&[repo_path("captures/x509-cases.pcap")], &fabrikam()).unwrap();
    r.handshakes.iter().collect()
}

fn kinds(h: &HandshakeReport) -> Vec<FindingKind> {
    h.findings.iter().map(|f| f.kind).collect()
}

fn sha_of(name: &str) -> String {
    let pem = std::fs::read(repo(&format!("captures/pki/x509/{name}.pem"))).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    hex::encode(chainsniff::pki::sha256(&pem.contents))
}

/// (SNI label, status, verdict, finding kinds, the client's alert or None when it went on)
#[allow(clippy::type_complexity)]
const CASES: &[(&str, Status, Verdict, &[FindingKind], Option<&str>)] = &[
    (
        "not-a-ca",
        Status::Complete,
        Verdict::Invalid,
        &[K::NotACa],
        Some("unknown_ca"),
    ),
    (
        "no-basic-constraints",
        Status::Complete,
        Verdict::Invalid,
        &[K::NotACa],
        Some("unknown_ca"),
    ),
    (
        "eku-client-only",
        Status::Complete,
        Verdict::Invalid,
        &[K::WrongExtendedKeyUsage],
        Some("unsupported_certificate"),
    ),
    (
        "path-length",
        Status::Complete,
        Verdict::Invalid,
        &[K::PathLengthExceeded],
        Some("unknown_ca"),
    ),
    (
        "no-cert-sign",
        Status::Complete,
        Verdict::Invalid,
        &[K::WrongKeyUsage],
        Some("unknown_ca"),
    ),
    (
        "name-constraints",
        Status::Complete,
        Verdict::Invalid,
        &[K::NameConstraintViolation],
        Some("certificate_unknown"),
    ),
    (
        "critical-extension",
        Status::Complete,
        Verdict::Invalid,
        &[K::UnhandledCriticalExtension],
        Some("certificate_unknown"),
    ),
    // OpenSSL's client accepts a CA certificate as the server's; NSS and rustls do not.
    (
        "ca-as-leaf",
        Status::Complete,
        Verdict::Invalid,
        &[K::CaAsLeaf],
        None,
    ),
    // The old intermediate after a re-key was sent; the right one is in the capture (sent by
    // the other servers).
    (
        "rekeyed-issuer",
        Status::Incomplete,
        Verdict::Invalid,
        &[K::BadSignature, K::MissingIntermediate],
        Some("unknown_ca"),
    ),
    (
        "expired",
        Status::Complete,
        Verdict::Invalid,
        &[K::Expired],
        Some("certificate_expired"),
    ),
    (
        "not-yet-valid",
        Status::Complete,
        Verdict::Invalid,
        &[K::NotYetValid],
        Some("bad_certificate"),
    ),
    (
        "wrong-order",
        Status::Complete,
        Verdict::Valid,
        &[K::WrongOrder],
        None,
    ),
    (
        "unrelated",
        Status::Complete,
        Verdict::Valid,
        &[K::UnrelatedCertificate],
        None,
    ),
    (
        "name-mismatch",
        Status::Complete,
        Verdict::Invalid,
        &[K::NameMismatch],
        Some("bad_certificate"),
    ),
    (
        "untrusted-root",
        Status::Untrusted,
        Verdict::Invalid,
        &[K::UntrustedRoot],
        Some("unknown_ca"),
    ),
    // The recording's client ran at OpenSSL's security level 0; strict clients reject both.
    (
        "weak-key",
        Status::Complete,
        Verdict::Invalid,
        &[K::WeakKey],
        None,
    ),
    (
        "weak-signature",
        Status::Complete,
        Verdict::Invalid,
        &[K::WeakSignature],
        None,
    ),
    ("good", Status::Complete, Verdict::Valid, &[], None),
    // This client trusts another root: it rejects a chain valid for the Fabrikam root.
    (
        "client-rejects",
        Status::Complete,
        Verdict::Valid,
        &[K::RejectedByClient],
        Some("unknown_ca"),
    ),
    // A keyEncipherment-only ECDSA leaf under ECDHE (served by GnuTLS, which can be told to):
    // OpenSSL's client aborts, `openssl verify` (no cipher suite) accepts.
    (
        "leaf-key-usage",
        Status::Complete,
        Verdict::Invalid,
        &[K::WrongKeyUsage],
        Some("handshake_failure"),
    ),
];

#[test]
fn every_case_gets_the_verdict_of_a_strict_client() {
    let hs = cases();
    assert_eq!(hs.len(), CASES.len());
    for (i, (label, status, verdict, want, alert)) in CASES.iter().enumerate() {
        let h = hs
            .iter()
            .find(|h| h.sni.as_deref() == Some(&format!("{label}.fabrikam.test")))
            .unwrap_or_else(|| panic!("no handshake for {label}"));
        assert_eq!(h.stream, i as u64, "{label}");
        assert_eq!(h.status, *status, "{label}: status");
        assert_eq!(h.verdict, *verdict, "{label}: verdict");
        let mut got = kinds(h);
        got.retain(|k| *k != K::ContainsAnchor);
        let mut want = want.to_vec();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{label}: findings {:#?}", h.findings);
        assert_eq!(
            h.client_reaction.alert.as_deref(),
            *alert,
            "{label}: reaction"
        );
        // Every invalid verdict is explained by an error; every valid one has none.
        assert_eq!(
            h.findings
                .iter()
                .any(|f| f.severity == chainsniff::pki::Severity::Error
                    && f.kind != K::RejectedByClient),
            *verdict == Verdict::Invalid,
            "{label}"
        );
    }
}

#[test]
fn findings_name_the_certificate_at_fault() {
    let hs = cases();
    let find = |label: &str, kind: FindingKind| {
        let h = hs
            .iter()
            .find(|h| h.sni.as_deref() == Some(&format!("{label}.fabrikam.test")))
            .unwrap();
        h.findings.iter().find(|f| f.kind == kind).cloned().unwrap()
    };
    let f = find("not-a-ca", K::NotACa);
    assert_eq!(
        f.certificate.as_deref(),
        Some(sha_of("not-a-ca-issuer").as_str())
    );
    assert!(
        f.message.contains("basicConstraints CA:FALSE"),
        "{}",
        f.message
    );
    let f = find("no-basic-constraints", K::NotACa);
    assert!(
        f.message.contains("no basicConstraints extension"),
        "{}",
        f.message
    );
    let f = find("path-length", K::PathLengthExceeded);
    assert_eq!(
        f.certificate.as_deref(),
        Some(sha_of("path-length-a").as_str())
    );
    assert!(f.message.contains("pathLenConstraint 0"), "{}", f.message);
    let f = find("no-cert-sign", K::WrongKeyUsage);
    assert!(f.message.contains("keyCertSign"), "{}", f.message);
    let f = find("name-constraints", K::NameConstraintViolation);
    assert!(
        f.message.contains("DNS:.contoso.test")
            && f.message.contains("name-constraints.fabrikam.test"),
        "{}",
        f.message
    );
    let f = find("eku-client-only", K::WrongExtendedKeyUsage);
    assert!(
        f.message.contains("clientAuth without serverAuth"),
        "{}",
        f.message
    );
    let f = find("critical-extension", K::UnhandledCriticalExtension);
    assert!(f.message.contains("1.3.6.1.4.1.55555.1.1"), "{}", f.message);
    // The re-keyed issuer: the certificate sent, and the key the leaf expects.
    let f = find("rekeyed-issuer", K::BadSignature);
    assert_eq!(
        f.certificate.as_deref(),
        Some(sha_of("issuing-old").as_str())
    );
    assert!(
        f.message.contains("expects the issuer key with identifier"),
        "{}",
        f.message
    );
    let f = find("rekeyed-issuer", K::MissingIntermediate);
    assert_eq!(f.certificate.as_deref(), Some(sha_of("issuing").as_str()));
    let f = find("client-rejects", K::RejectedByClient);
    assert!(
        f.message.contains("fatal alert unknown_ca") && f.message.contains("frame 200"),
        "{}",
        f.message
    );
}

/// "Every finding kind and every status is asserted by a test": the kinds this file does not
/// assert are asserted in the files named here.
#[test]
fn every_finding_kind_is_asserted_somewhere() {
    let elsewhere = [
        (K::MissingIntermediate, "tests/story.rs"),
        (K::DuplicateCertificate, "tests/story.rs"),
        (K::InconsistentChains, "tests/story.rs"),
        (K::ContainsAnchor, "tests/story.rs"),
        (K::UnknownIssuer, "tests/story.rs"),
        (K::ChainLoop, "tests/adversarial.rs"),
        (K::MissingSecret, "tests/tls13.rs"),
        (K::DecryptionFailed, "tests/tls13.rs"),
        (K::RenegotiationNotVisible, "tests/tls12.rs"),
        (K::MissingIssuer, "tests/x509.rs"),
        (K::UnparsableCertificate, "tests/x509.rs"),
        (K::ValidationFailed, "tests/x509.rs"),
    ];
    let here: Vec<FindingKind> = CASES.iter().flat_map(|c| c.3.iter().copied()).collect();
    for kind in FindingKind::ALL {
        if here.contains(kind) {
            continue;
        }
        let (_, file) = elsewhere
            .iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no test asserts {}", kind.as_str()));
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let variant = format!("{kind:?}");
        assert!(
            text.contains(&format!("FindingKind::{variant}"))
                || text.contains(&format!("K::{variant}")),
            "{file} does not assert {}",
            kind.as_str()
        );
    }
}

#[test]
fn a_leaf_whose_issuer_is_nowhere_is_incomplete() {
    // The capture at the failing phones' switch port: no connection carries the intermediate.
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        ..Default::default()
    };
    let r = chainsniff::run(&[repo_path("captures/lync-vip-phone-port.pcap")], &opts).unwrap();
    assert_eq!(r.handshakes.len(), 3);
    for h in r.handshakes.iter() {
        assert_eq!(h.status, Status::Incomplete);
        assert_eq!(h.verdict, Verdict::Invalid);
        assert_eq!(kinds(&h), vec![K::MissingIssuer]);
        let f = &h.findings[0];
        assert!(
            f.message.contains("CN=Contoso Issuing CA 01"),
            "{}",
            f.message
        );
        assert!(f.message.contains("key identifier"), "{}", f.message);
        let aia = f.aia.as_ref().unwrap();
        assert_eq!(
            aia.ca_issuers,
            vec!["http://pki.contoso.test/issuing-ca.crt"]
        );
        assert_eq!(h.client_reaction.alert.as_deref(), Some("unknown_ca"));
    }
    let frames: Vec<Option<u64>> = r.handshakes.iter().map(|h| h.certificate_frame).collect();
    assert_eq!(frames, vec![Some(13), Some(22), Some(31)]);
    assert_eq!(
        r.summary.headlines,
        [
            "missing issuer O=Contoso, CN=Contoso Issuing CA 01 (not in the capture): 1 chain of lyncpool.contoso.test (127.0.0.10:443); 2 clients (2 Polycom (MS-UC-Client): CX3000-11, CX3000-12): both failed (alert unknown_ca, first in frame 15). Fix: Send the issuing CA certificate after the leaf."
        ]
    );
    // --fail-on error exits 1.
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-phone-port.pcap"),
        "--trust",
        &repo_path("captures/pki/root.pem"),
        "--fail-on",
        "error",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_trust_folder_cannot_hide_the_missing_intermediate() {
    let opts = Options {
        trust: vec![repo("captures/pki")],
        ..Default::default()
    };
    let r = chainsniff::run(&[repo_path("captures/lync-vip-phones.pcap")], &opts).unwrap();
    // The root is an anchor; the intermediate is known, not trusted; the leaf is ignored.
    assert_eq!(r.trust.user_anchors, 1);
    let notes: Vec<&str> = r.trust.notes.iter().map(|n| n.kind).collect();
    assert_eq!(notes, vec!["known_issuer", "ignored_leaf"]);
    let by_status = &r.summary.by_status;
    assert_eq!(by_status.get("incomplete"), Some(&4));
    assert_eq!(by_status.get("complete"), Some(&2));
    assert!(r.summary.headlines.iter().any(|h| {
        h.starts_with("missing intermediate O=Contoso, CN=Contoso Issuing CA 01")
            && h.contains("2 failed (alert unknown_ca")
    }));
    // Filtered to the phones, the missing link is known from the folder only.
    let phones = Options {
        trust: vec![repo("captures/pki")],
        filter: chainsniff::filter::Filter::new(&["127.0.1.11/32".into()], &[], &[]).unwrap(),
        ..Default::default()
    };
    let r = chainsniff::run(&[repo_path("captures/lync-vip-phone-port.pcap")], &phones).unwrap();
    let h = r.handshakes.get(0);
    assert_eq!(h.status, Status::Incomplete);
    let f = h
        .findings
        .iter()
        .find(|f| f.kind == K::MissingIntermediate)
        .unwrap();
    assert!(
        f.message.contains("known from --trust") && f.message.contains("not sent by the server"),
        "{}",
        f.message
    );
    assert!(matches!(
        &h.path[1].source,
        chainsniff::pki::LinkSource::TrustFile { file } if file.ends_with("issuing.pem")
    ));

    // Asked for, the intermediate becomes an anchor, and the report says so.
    let partial = Options {
        trust: vec![repo("captures/pki")],
        trust_intermediates: true,
        ..Default::default()
    };
    let r = chainsniff::run(&[repo_path("captures/lync-vip-phone-port.pcap")], &partial).unwrap();
    assert!(r.trust.partial_chain);
    assert!(
        r.trust
            .notes
            .iter()
            .any(|n| n.kind == "partial_chain_anchor")
    );
    assert!(r.handshakes.iter().all(|h| h.verdict == Verdict::Valid));

    // The warnings reach standard error.
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-phones.pcap"),
        "--trust",
        &repo_path("captures/pki"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is an intermediate CA, not a root: it is not trusted"),
        "{err}"
    );
    assert!(
        err.contains("is not a CA certificate; it was ignored"),
        "{err}"
    );
}

#[test]
fn no_all_clear_when_chains_could_not_be_judged() {
    for (capture, why) in [
        (
            "captures/lync-vip-before-snap200.pcapng",
            "certificate flight cut",
        ),
        (
            "captures/tls13-openssl.pcapng",
            "TLS 1.3 with the certificate encrypted",
        ),
    ] {
        let out = chainsniff(&[
            "analyze",
            &repo_path(capture),
            "--trust",
            &repo_path("captures/pki/root.pem"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("No chain problems found"),
            "{capture}:\n{text}"
        );
        assert!(text.contains("cannot judge: "), "{capture}:\n{text}");
        assert!(text.contains(why), "{capture}:\n{text}");
        assert!(
            text.contains("failed (alert "),
            "{capture}: the clients' aborts are named\n{text}"
        );
        for format in ["markdown", "html"] {
            let out = chainsniff(&["analyze", &repo_path(capture), "-f", format]);
            let page = String::from_utf8_lossy(&out.stdout);
            assert!(
                !page.contains("No chain problems found"),
                "{capture} {format}"
            );
        }
        for (fail_on, code) in [("warning", 1), ("not-judged", 1), ("error", 0)] {
            let out = chainsniff(&[
                "analyze",
                &repo_path(capture),
                "--trust",
                &repo_path("captures/pki/root.pem"),
                "--fail-on",
                fail_on,
            ]);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{capture} --fail-on {fail_on}"
            );
        }
    }
    let r = chainsniff::run(
        &[repo_path("captures/tls13-openssl.pcapng")],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.summary.not_judged, 2);
    assert_eq!(r.summary.by_verdict.get("not_judged"), Some(&2));
}

#[test]
fn a_client_that_rejects_a_valid_chain_is_an_error() {
    let r = chainsniff::run(&[repo_path("captures/x509-cases.pcap")], &fabrikam()).unwrap();
    let server = r
        .servers
        .iter()
        .find(|s| s.sni.as_deref() == Some("client-rejects.fabrikam.test"))
        .unwrap();
    // The chain itself is fine; the client's rejection is on its handshake.
    assert_eq!(server.variants[0].verdict, Verdict::Valid);
    assert!(server.variants[0].findings.is_empty());
    assert!(
        r.summary
            .headlines
            .iter()
            .any(|h| h.starts_with(
                "clients reject a valid chain ending at O=Fabrikam, CN=Fabrikam Test Root CA"
            ) && h.contains("1 failed (alert unknown_ca, first in frame 200)")),
        "{:#?}",
        r.summary.headlines
    );
}

#[test]
fn tls13_psk_resumption_sent_no_certificate() {
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        keylog: vec![repo("captures/tls13-resumption.keylog")],
        ..Default::default()
    };
    let r = chainsniff::run(&[repo_path("captures/tls13-resumption.pcapng")], &opts).unwrap();
    let hs: Vec<HandshakeReport> = r.handshakes.iter().collect();
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].status, Status::Complete);
    assert_eq!(hs[0].verdict, Verdict::Valid);
    assert!(!hs[0].resumed);
    assert_eq!(hs[1].status, Status::NoCertificate);
    assert_eq!(hs[1].verdict, Verdict::NotJudged);
    assert!(hs[1].resumed);
    assert_eq!(hs[1].server_hello_frame, Some(20));
    // Without the key log the resumption is still seen (its ServerHello is in clear).
    let r = chainsniff::run(
        &[repo_path("captures/tls13-resumption.pcapng")],
        &Options::default(),
    )
    .unwrap();
    let h = r.handshakes.get(1);
    assert_eq!(h.status, Status::NoCertificate);
    assert!(h.resumed);
    assert_eq!(
        r.summary.not_judged, 1,
        "only the full handshake is not judged"
    );
}

#[test]
fn an_unparsable_certificate_is_named_on_real_der() {
    // The good case's leaf, cut short: what a truncated PEM/DER file on a server sends.
    let pem = std::fs::read(repo("captures/pki/x509/good.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cut = &pem.contents[..pem.contents.len() - 40];
    let issuing = std::fs::read(repo("captures/pki/x509/issuing.pem")).unwrap();
    let (_, issuing) = x509_parser::pem::parse_x509_pem(&issuing).unwrap();
    let mut store = chainsniff::pki::CertStore::default();
    let leaf = store.add(cut, None);
    let int = store.add(&issuing.contents, None);
    let trust = chainsniff::pki::TrustStore::new(false);
    let mut checker = chainsniff::pki::Checker::new(&store, &trust);
    let d = checker.diagnose(&[leaf, int], 1_800_000_000, Some("good.fabrikam.test"));
    assert_eq!(d.status, Status::Undetermined);
    assert_eq!(d.verdict, Verdict::Invalid);
    assert_eq!(d.findings[0].kind, K::UnparsableCertificate);
    assert!(d.findings[0].message.contains("position 0"));
}

#[test]
fn a_reason_only_the_strict_validator_knows_is_still_named() {
    // A leaf signed with an algorithm rustls-webpki does not take (P-521 is not in ring):
    // validation_failed, with the validator's reason.
    let dir = common::tmp("p521");
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !run(&["version"]) {
        assert!(std::env::var_os("CI").is_none(), "CI installs openssl");
        eprintln!("openssl not found: validation_failed test skipped");
        return;
    }
    assert!(run(&[
        "ecparam",
        "-name",
        "secp521r1",
        "-genkey",
        "-noout",
        "-out",
        "ca.key"
    ]));
    assert!(run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=P521 Root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-out",
        "ca.pem",
    ]));
    assert!(run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "leaf.key"
    ]));
    assert!(run(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-subj",
        "/CN=p521.example",
        "-out",
        "leaf.csr"
    ]));
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:p521.example\n").unwrap();
    assert!(run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-sha512",
        "-days",
        "365",
        "-extfile",
        "ext.cnf",
        "-set_serial",
        "7",
        "-out",
        "leaf.pem",
    ]));
    let der = |f: &str| {
        let pem = std::fs::read(dir.join(f)).unwrap();
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
    };
    let mut trust = chainsniff::pki::TrustStore::new(false);
    assert!(trust.add_anchor(&der("ca.pem")));
    let mut store = chainsniff::pki::CertStore::default();
    let leaf = store.add(&der("leaf.pem"), None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut checker = chainsniff::pki::Checker::new(&store, &trust);
    let d = checker.diagnose(&[leaf], now, Some("p521.example"));
    assert_eq!(d.status, Status::Complete);
    assert_eq!(d.verdict, Verdict::Invalid);
    assert_eq!(kinds_of(&d.findings), vec![K::ValidationFailed]);
    assert!(
        d.findings[0]
            .message
            .contains("UnsupportedSignatureAlgorithm"),
        "{}",
        d.findings[0].message
    );
}

fn kinds_of(f: &[chainsniff::pki::Finding]) -> Vec<FindingKind> {
    f.iter().map(|f| f.kind).collect()
}
