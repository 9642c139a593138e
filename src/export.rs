//! `--export-certs DIR`: the certificates of a report as PEM files, for `openssl`, a CA's
//! support desk, or the server's configuration.
//!
//! - `<sha256 prefix>_<subject>.pem`: each distinct certificate sent in the captures;
//! - `chain-<server>-<variant>.pem`: each chain variant, in the order the server sent it;
//! - `bundle-<server>.pem`: the chain the server should send (leaf, then each intermediate up
//!   to, not including, the trust anchor), when every link of the path is known.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
use base64::Engine as _;

use crate::analysis::Analysis;
use crate::pki::{LinkSource, PathLink};
use crate::pki::{Sha, sha_from_hex};
use crate::report::{Report, ServerReport};

/// What was written.
#[derive(Debug, Default)]
pub struct Exported {
    /// The PEM file of each distinct certificate written.
    pub certificates: Vec<PathBuf>,
    /// The PEM file of each chain as sent.
    pub chains: Vec<PathBuf>,
    /// The PEM bundles to install (the missing issuers), one per root cause.
    pub bundles: Vec<PathBuf>,
}

/// A DER certificate as a PEM block.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A file-name-safe rendering of `s`: letters, digits, `.`, `-`; other runs become `_`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_');
    out.chars().take(60).collect()
}

/// `lyncpool.contoso.test_127.0.0.10_443` (SNI, address, port).
fn server_slug(s: &ServerReport) -> String {
    let addr = format!("{}_{}", s.server.ip, s.server.port);
    match &s.sni {
        Some(sni) => slug(&format!("{sni}_{addr}")),
        None => slug(&addr),
    }
}

/// Writes the certificates of `report` (DER from `analysis`) into `dir`, creating it.
pub fn export_certs(analysis: &Analysis, report: &Report, dir: &Path) -> Result<Exported> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Export(format!("cannot create {}: {e}", dir.display())))?;
    let write = |name: String, body: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, body)
            .map_err(|e| Error::Export(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    };
    let der_of = |sha: &Sha| {
        analysis
            .store
            .get(sha)
            .or_else(|| analysis.trust.store.get(sha))
            .map(|c| c.der.as_slice())
    };
    let mut out = Exported::default();
    for sha in &analysis.store.order {
        let Some(cert) = analysis.store.get(sha) else {
            continue;
        };
        let subject = match &cert.meta {
            Ok(m) => m.name(),
            Err(_) => "unparsable".into(),
        };
        let name = format!("{}_{}.pem", &hex::encode(sha)[..16], slug(&subject));
        out.certificates.push(write(name, &pem(&cert.der))?);
    }
    for server in &report.servers {
        let server_name = server_slug(server);
        for v in &server.variants {
            let mut body = String::new();
            for (i, (sha, subject)) in v.certificates.iter().zip(&v.subjects).enumerate() {
                if let Some(der) = sha_from_hex(sha).as_ref().and_then(der_of) {
                    let _ = writeln!(body, "# {i}: {subject}");
                    body.push_str(&pem(der));
                }
            }
            out.chains
                .push(write(format!("chain-{server_name}-{}.pem", v.id), &body)?);
        }
        if let Some(bundle) = bundle(analysis, server, &der_of) {
            out.bundles.push(write(bundle_name(server), &bundle)?);
        }
    }
    Ok(out)
}

/// `bundle-lyncpool.contoso.test_127.0.0.10_443.pem`: the file [`export_certs`] writes the chain
/// `server` should send to (when [`bundle_path`] finds one).
pub fn bundle_name(server: &ServerReport) -> String {
    format!("bundle-{}.pem", server_slug(server))
}

/// The link is a trust anchor (as a path's end, or a root the server sent itself).
fn is_anchor(analysis: &Analysis, l: &PathLink) -> bool {
    matches!(l.source, LinkSource::Anchor)
        || sha_from_hex(&l.sha256).is_some_and(|sha| {
            analysis
                .store
                .meta(&sha)
                .or_else(|| analysis.trust.store.meta(&sha))
                .is_some_and(|m| analysis.trust.is_anchor(&sha, m))
        })
}

/// The path `server` should send, leaf first, ending at a trust anchor: the first variant's
/// path that reaches one. None when no variant's path is known up to an anchor.
pub fn bundle_path<'a>(analysis: &Analysis, server: &'a ServerReport) -> Option<&'a [PathLink]> {
    server
        .variants
        .iter()
        .map(|v| v.path.as_slice())
        .find(|p| p.last().is_some_and(|l| is_anchor(analysis, l)))
}

/// The chain `server` should send as PEM: [`bundle_path`] without the anchor.
fn bundle<'a>(
    analysis: &Analysis,
    server: &ServerReport,
    der_of: &impl Fn(&Sha) -> Option<&'a [u8]>,
) -> Option<String> {
    let path = bundle_path(analysis, server)?;
    let anchor = |l: &PathLink| is_anchor(analysis, l);
    let mut body = String::new();
    for link in path.iter().filter(|l| !anchor(l)) {
        let der = der_of(&sha_from_hex(&link.sha256)?)?;
        let _ = writeln!(body, "# {}", link.subject);
        body.push_str(&pem(der));
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("O=Contoso, CN=Contoso Root CA"),
            "O_Contoso_CN_Contoso_Root_CA"
        );
        assert_eq!(slug("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(slug("a\u{202e}b"), "a_b");
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let p = pem(&[0u8; 100]);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }
}
