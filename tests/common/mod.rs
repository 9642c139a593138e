//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod synth;

use std::path::{Path, PathBuf};

/// A path inside the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// SHA-256 (hex) of the DER inside a PEM file of the test PKI (`captures/pki/NAME.pem`).
pub fn pki_sha(name: &str) -> String {
    let pem = std::fs::read(repo(&format!("captures/pki/{name}.pem"))).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    hex::encode(chainsniff::certs::sha256(&pem.contents))
}

/// A path inside the repository as the string the library's `run` takes.
pub fn repo_path(p: &str) -> String {
    repo(p).to_string_lossy().into_owned()
}
