//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod synth;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A path inside the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// SHA-256 (hex) of the DER inside a PEM file of the test PKI (`captures/pki/NAME.pem`).
pub fn pki_sha(name: &str) -> String {
    let pem = std::fs::read(repo(&format!("captures/pki/{name}.pem"))).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    hex::encode(chainsniff::pki::sha256(&pem.contents))
}

/// A path inside the repository as the string the library's `run` takes.
pub fn repo_path(p: &str) -> String {
    repo(p).to_string_lossy().into_owned()
}

/// Runs the `chainsniff` binary.
pub fn chainsniff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(args)
        .output()
        .unwrap()
}

/// A path in this test binary's own temporary directory.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chainsniff-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
