//! The report as evidence for a ticket: certificates exported and verified with OpenSSL,
//! Wireshark filters and fixes per finding, client fingerprints, filters, the HTML report
//! rendered by a real browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{pki_sha, repo_path};

fn chainsniff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(args)
        .output()
        .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chainsniff-ticket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The DER of each PEM block in a file, in order.
fn pem_blocks(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&data)
        .map(|p| p.unwrap().contents)
        .collect()
}

fn sha(der: &[u8]) -> String {
    hex::encode(chainsniff::certs::sha256(der))
}

/// `openssl verify` of a bundle's first certificate with the rest as untrusted intermediates.
fn openssl_verify(bundle: &Path) -> Output {
    Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            &repo_path("captures/pki/root.pem"),
            "-untrusted",
        ])
        .arg(bundle)
        .arg(bundle)
        .output()
        .expect("openssl is needed for this test (.ci/run installs it)")
}

#[test]
fn exported_bundle_verifies_with_openssl_against_the_root() {
    let dir = tmp("export-before");
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-before.pcapng"),
        "--trust",
        &repo_path("captures/pki/root.pem"),
        "--export-certs",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (leaf, issuing) = (pki_sha("leaf"), pki_sha("issuing"));

    // Every distinct certificate sent, named by SHA-256 prefix and subject.
    for (sha, name) in [
        (&leaf, "CN_lyncpool.contoso.test"),
        (&issuing, "CN_Contoso_Issuing_CA_01"),
    ] {
        let file = dir.join(format!("{}_{name}.pem", &sha[..16]));
        assert_eq!(
            pem_blocks(&file)
                .iter()
                .map(|d| self::sha(d))
                .collect::<Vec<_>>(),
            std::slice::from_ref(sha)
        );
    }
    // Each variant in the order sent: the VIP's leaf-only chain A, the full chain B.
    let chain = |v: &str| {
        pem_blocks(&dir.join(format!(
            "chain-lyncpool.contoso.test_127.0.0.10_443-{v}.pem"
        )))
        .iter()
        .map(|d| sha(d))
        .collect::<Vec<_>>()
    };
    assert_eq!(chain("A"), std::slice::from_ref(&leaf));
    assert_eq!(chain("B"), [leaf.clone(), issuing.clone()]);

    // The bundle the VIP should send: leaf + intermediate, no root; OpenSSL agrees it verifies.
    let bundle = dir.join("bundle-lyncpool.contoso.test_127.0.0.10_443.pem");
    let shas: Vec<String> = pem_blocks(&bundle).iter().map(|d| sha(d)).collect();
    assert_eq!(shas, [leaf.clone(), issuing.clone()]);
    let v = openssl_verify(&bundle);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout).ends_with(": OK\n"));
    // The leaf alone (what the VIP sent) does not.
    let leaf_only = dir.join("chain-lyncpool.contoso.test_127.0.0.10_443-A.pem");
    assert!(!openssl_verify(&leaf_only).status.success());
}

#[test]
fn the_fixed_balancer_bundle_drops_the_duplicate_leaf_and_the_root() {
    let dir = tmp("export-fixed");
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-fixed.pcap"),
        "--trust",
        &repo_path("captures/pki/root.pem"),
        "--export-certs",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let sent: Vec<String> =
        pem_blocks(&dir.join("chain-lyncpool.contoso.test_127.0.0.10_443-A.pem"))
            .iter()
            .map(|d| sha(d))
            .collect();
    let (leaf, issuing, root) = (pki_sha("leaf"), pki_sha("issuing"), pki_sha("root"));
    assert_eq!(sent, [leaf.clone(), leaf.clone(), issuing.clone(), root]);
    let bundle = dir.join("bundle-lyncpool.contoso.test_127.0.0.10_443.pem");
    let shas: Vec<String> = pem_blocks(&bundle).iter().map(|d| sha(d)).collect();
    assert_eq!(shas, [leaf, issuing]);
    assert!(openssl_verify(&bundle).status.success());
}
