//! Certificates: the store of every certificate seen in the captures, and the trust anchors.
//!
//! Each distinct certificate (by SHA-256 of its DER) is kept once, parsed once into a
//! [`CertMeta`], with the first places it was seen. Trust anchors are Mozilla's roots
//! (webpki-root-certs) plus the files the user names with `--trust`.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

pub type Sha = [u8; 32];

/// A hash from its hex form (as in the report), if it is one.
pub fn sha_from_hex(hex_sha: &str) -> Option<Sha> {
    hex::decode(hex_sha).ok()?.try_into().ok()
}

/// SHA-256 of a DER certificate.
pub fn sha256(der: &[u8]) -> Sha {
    Sha256::digest(der).into()
}

/// What the report shows of a certificate.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CertSummary {
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub is_ca: bool,
    pub self_signed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub san: Vec<String>,
    pub key: String,
    pub signature_algorithm: String,
    /// caIssuers URLs from the Authority Information Access extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_issuers: Vec<String>,
}

/// A parsed certificate: the summary plus what path building needs.
#[derive(Debug, Clone)]
pub struct CertMeta {
    /// Shared by every handshake report that lists the certificate (one copy in memory).
    pub summary: std::sync::Arc<CertSummary>,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub ski: Option<Vec<u8>>,
    pub aki: Option<Vec<u8>>,
    pub not_before: i64,
    pub not_after: i64,
    /// Subject and issuer are the same name.
    pub self_issued: bool,
    pub dns_names: Vec<String>,
    pub common_names: Vec<String>,
    /// RSA/DSA modulus bits, or EC field bits.
    pub key_bits: usize,
    pub key_kind: &'static str,
    /// Signed with MD5 or SHA-1.
    pub weak_signature: bool,
}

impl CertMeta {
    /// A short name for sentences: the subject CN if any, else the whole subject.
    pub fn name(&self) -> String {
        match self.common_names.first() {
            Some(cn) => format!("CN={cn}"),
            None => self.summary.subject.clone(),
        }
    }
}

fn hex_colon(b: &[u8]) -> String {
    hex::encode(b)
}

fn time_string(t: &ASN1Time) -> String {
    crate::capture::Timestamp::from_parts(t.timestamp(), 0)
        .to_rfc3339()
        .replace(".000000Z", "Z")
}

/// Parses a DER certificate into its metadata.
pub fn parse_meta(der: &[u8]) -> Result<CertMeta, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("{e}"))?;
    let mut ski = None;
    let mut aki = None;
    let mut dns_names = Vec::new();
    let mut san = Vec::new();
    let mut ca_issuers = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            ParsedExtension::SubjectAlternativeName(s) => {
                for n in &s.general_names {
                    match n {
                        GeneralName::DNSName(d) => {
                            dns_names.push(d.to_string());
                            san.push(format!("DNS:{d}"));
                        }
                        GeneralName::IPAddress(ip) => san.push(match ip.len() {
                            4 => format!(
                                "IP:{}",
                                std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])
                            ),
                            16 => {
                                let mut a = [0u8; 16];
                                a.copy_from_slice(ip);
                                format!("IP:{}", std::net::Ipv6Addr::from(a))
                            }
                            _ => format!("IP:{}", hex::encode(ip)),
                        }),
                        GeneralName::RFC822Name(m) => san.push(format!("email:{m}")),
                        GeneralName::URI(u) => san.push(format!("URI:{u}")),
                        _ => {}
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for d in &aia.accessdescs {
                    if d.access_method == oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS
                        && let GeneralName::URI(u) = &d.access_location
                    {
                        ca_issuers.push(u.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let common_names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    let (key_kind, key_bits) = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => ("RSA", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => ("EC", ec.key_size()),
        Ok(PublicKey::DSA(_)) => ("DSA", 0),
        _ => {
            let alg = &cert.public_key().algorithm.algorithm;
            if *alg == oid_registry::OID_SIG_ED25519 {
                ("Ed25519", 256)
            } else if *alg == oid_registry::OID_SIG_ED448 {
                ("Ed448", 456)
            } else {
                ("unknown", 0)
            }
        }
    };
    let sig_oid = &cert.signature_algorithm.algorithm;
    let weak_signature = [
        oid_registry::OID_PKCS1_MD5WITHRSAENC,
        oid_registry::OID_PKCS1_MD2WITHRSAENC,
        oid_registry::OID_PKCS1_SHA1WITHRSA,
        oid_registry::OID_SHA1_WITH_RSA,
        oid_registry::OID_SIG_DSA_WITH_SHA1,
    ]
    .contains(sig_oid)
        || sig_oid.to_id_string() == "1.2.840.10045.4.1"; // ecdsa-with-SHA1
    let subject_raw = cert.subject().as_raw().to_vec();
    let issuer_raw = cert.issuer().as_raw().to_vec();
    let self_issued = subject_raw == issuer_raw;
    Ok(CertMeta {
        summary: std::sync::Arc::new(CertSummary {
            sha256: hex::encode(sha256(der)),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: hex_colon(cert.raw_serial()),
            not_before: time_string(&cert.validity().not_before),
            not_after: time_string(&cert.validity().not_after),
            is_ca: cert.is_ca(),
            self_signed: self_issued,
            san,
            key: if key_bits > 0 {
                format!("{key_kind} {key_bits}")
            } else {
                key_kind.to_string()
            },
            signature_algorithm: signature_name(&sig_oid.to_id_string()),
            ca_issuers,
        }),
        subject_raw,
        issuer_raw,
        ski,
        aki,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        self_issued,
        dns_names,
        common_names,
        key_bits,
        key_kind,
        weak_signature,
    })
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.3" => "dsa-with-sha1",
        other => return other.to_string(),
    }
    .to_string()
}

/// Outcome of checking that `issuer`'s key signed `child`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigCheck {
    Valid,
    Invalid,
    /// The algorithm (or key size) is beyond what the verifier supports; names and key ids matched.
    Unsupported,
}

/// Verifies `child`'s signature with `issuer`'s public key.
pub fn check_signature(child_der: &[u8], issuer_der: &[u8]) -> SigCheck {
    let (Ok((_, child)), Ok((_, issuer))) = (
        X509Certificate::from_der(child_der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return SigCheck::Unsupported;
    };
    match child.verify_signature(Some(issuer.public_key())) {
        Ok(()) => SigCheck::Valid,
        Err(X509Error::SignatureUnsupportedAlgorithm) => SigCheck::Unsupported,
        Err(_) => {
            // ring refuses RSA keys under 2048 bits for SHA-2 signatures: that is a weak key
            // (reported as such), not proof of a forged signature.
            match issuer.public_key().parsed() {
                Ok(PublicKey::RSA(rsa)) if rsa.key_size() < 2048 => SigCheck::Unsupported,
                _ => SigCheck::Invalid,
            }
        }
    }
}

/// Where a certificate was seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub capture: usize,
    pub stream: u64,
    pub frame: u64,
    pub server: SocketAddr,
}

#[derive(Debug)]
pub struct StoredCert {
    pub der: Vec<u8>,
    pub meta: Result<CertMeta, String>,
    /// The first few places it was sent (bounded).
    pub sightings: Vec<Sighting>,
}

const MAX_SIGHTINGS: usize = 8;

/// Every distinct certificate seen in the captures.
#[derive(Debug, Default)]
pub struct CertStore {
    certs: HashMap<Sha, StoredCert>,
    /// Distinct certificates in the order first seen.
    pub order: Vec<Sha>,
    /// Subject name (raw DER) to certificates with that subject.
    by_subject: HashMap<Vec<u8>, Vec<Sha>>,
}

impl CertStore {
    /// Adds a certificate (once per distinct DER) and notes where it was seen.
    pub fn add(&mut self, der: &[u8], seen: Option<Sighting>) -> Sha {
        let sha = sha256(der);
        let entry = self.certs.entry(sha).or_insert_with(|| {
            let meta = parse_meta(der);
            if let Ok(m) = &meta {
                self.by_subject
                    .entry(m.subject_raw.clone())
                    .or_default()
                    .push(sha);
            }
            self.order.push(sha);
            StoredCert {
                der: der.to_vec(),
                meta,
                sightings: Vec::new(),
            }
        });
        if let Some(s) = seen
            && entry.sightings.len() < MAX_SIGHTINGS
            && !entry.sightings.contains(&s)
        {
            entry.sightings.push(s);
        }
        sha
    }

    pub fn get(&self, sha: &Sha) -> Option<&StoredCert> {
        self.certs.get(sha)
    }

    /// Adds the certificates of `other` (from later captures) as if they had been added here
    /// after this store's own: new ones after the known, sightings after the known ones.
    pub fn absorb(&mut self, mut other: CertStore) {
        for sha in other.order {
            let Some(theirs) = other.certs.remove(&sha) else {
                continue;
            };
            match self.certs.get_mut(&sha) {
                Some(mine) => {
                    for s in theirs.sightings {
                        if mine.sightings.len() < MAX_SIGHTINGS && !mine.sightings.contains(&s) {
                            mine.sightings.push(s);
                        }
                    }
                }
                None => {
                    if let Ok(m) = &theirs.meta {
                        self.by_subject
                            .entry(m.subject_raw.clone())
                            .or_default()
                            .push(sha);
                    }
                    self.order.push(sha);
                    self.certs.insert(sha, theirs);
                }
            }
        }
    }

    pub fn meta(&self, sha: &Sha) -> Option<&CertMeta> {
        self.certs.get(sha).and_then(|c| c.meta.as_ref().ok())
    }

    pub fn with_subject(&self, subject_raw: &[u8]) -> &[Sha] {
        self.by_subject
            .get(subject_raw)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// The trust anchors: certificates whose keys the clients are assumed to trust.
#[derive(Debug, Default)]
pub struct TrustStore {
    pub store: CertStore,
    /// How many came from Mozilla's list and from `--trust` files.
    pub mozilla: usize,
    pub user: usize,
}

impl TrustStore {
    pub fn new(mozilla_roots: bool) -> Self {
        let mut t = TrustStore::default();
        if mozilla_roots {
            for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
                t.store.add(der.as_ref(), None);
                t.mozilla += 1;
            }
        }
        t
    }

    /// Adds every certificate in a PEM or DER file, or in every file of a directory.
    pub fn add_path(&mut self, path: &Path) -> Result<usize> {
        if path.is_dir() {
            let mut entries: Vec<_> = fs::read_dir(path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            let mut n = 0;
            for p in entries {
                // Directories may hold other files: skip what is not a certificate.
                n += self.add_file(&p).unwrap_or(0);
            }
            if n == 0 {
                bail!("no certificate found in directory {}", path.display());
            }
            return Ok(n);
        }
        self.add_file(path)
    }

    fn add_file(&mut self, path: &Path) -> Result<usize> {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut n = 0;
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
                let pem = pem.with_context(|| format!("bad PEM in {}", path.display()))?;
                if pem.label == "CERTIFICATE" || pem.label == "TRUSTED CERTIFICATE" {
                    if let Err(e) = parse_meta(&pem.contents) {
                        bail!("bad certificate in {}: {e}", path.display());
                    }
                    self.store.add(&pem.contents, None);
                    n += 1;
                }
            }
        } else {
            if let Err(e) = parse_meta(&bytes) {
                bail!(
                    "{} is neither PEM nor a DER certificate: {e}",
                    path.display()
                );
            }
            self.store.add(&bytes, None);
            n = 1;
        }
        if n == 0 {
            bail!("no certificate found in {}", path.display());
        }
        self.user += n;
        Ok(n)
    }

    /// True when this exact certificate, or one with the same subject and key, is an anchor.
    pub fn is_anchor(&self, sha: &Sha, meta: &CertMeta) -> bool {
        if self.store.get(sha).is_some() {
            return true;
        }
        self.store.with_subject(&meta.subject_raw).iter().any(|a| {
            self.store
                .meta(a)
                .is_some_and(|am| am.ski.is_some() && am.ski == meta.ski)
        })
    }
}
