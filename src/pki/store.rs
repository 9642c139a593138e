//! Certificates: the store of every certificate seen in the captures, and the trust anchors.
//!
//! Each distinct certificate (by SHA-256 of its DER) is kept once, parsed once into a
//! [`CertMeta`], with the first places it was seen. Trust anchors are Mozilla's roots
//! (webpki-root-certs) plus the files the user names with `--trust`.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use crate::{Error, Result};
use std::result::Result as StdResult;

/// A `--trust` error.
fn trust_err(message: String) -> Error {
    Error::Trust(message)
}
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// A certificate's identity everywhere: the SHA-256 of its DER.
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
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// The subject's distinguished name, RFC 4514 order as x509-parser prints it.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The serial number, hex.
    pub serial: String,
    /// Validity, RFC 3339 UTC.
    pub not_before: String,
    /// The end of its validity, RFC 3339 UTC.
    pub not_after: String,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Subject and issuer are the same name.
    pub self_signed: bool,
    /// subjectAltName entries (`DNS:...`, `IP:...`, `email:...`, `URI:...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub san: Vec<String>,
    /// Key type and size (`RSA 2048`, `EC 256`).
    pub key: String,
    /// The signature algorithm's name.
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
    /// The subject and issuer names as DER, compared byte for byte when building paths.
    pub subject_raw: Vec<u8>,
    /// The issuer name as DER.
    pub issuer_raw: Vec<u8>,
    /// Subject and Authority Key Identifiers, when present.
    pub ski: Option<Vec<u8>>,
    /// The Authority Key Identifier's key identifier.
    pub aki: Option<Vec<u8>>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    /// The end of its validity, Unix seconds.
    pub not_after: i64,
    /// Subject and issuer are the same name.
    pub self_issued: bool,
    /// DNS names in the subjectAltName.
    pub dns_names: Vec<String>,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// RSA/DSA modulus bits, or EC field bits.
    pub key_bits: usize,
    /// `RSA`, `EC`, `DSA`, `Ed25519`, `Ed448` or `unknown`.
    pub key_kind: &'static str,
    /// Signed with MD5 or SHA-1.
    pub weak_signature: bool,
    /// The DER of the subjectPublicKeyInfo: two certificates with the same one share a key.
    pub spki: Vec<u8>,
    /// X.509 version (1, 2 or 3).
    pub version: u32,
    /// basicConstraints: `Some((cA, pathLenConstraint))` when present.
    pub basic_constraints: Option<(bool, Option<u32>)>,
    /// keyUsage bits (RFC 5280 order: bit 0 digitalSignature ... bit 5 keyCertSign) when present.
    pub key_usage: Option<u16>,
    /// extendedKeyUsage when present.
    pub eku: Option<Eku>,
    /// nameConstraints when present.
    pub name_constraints: Option<NameConstraints>,
    /// IP addresses in the subjectAltName.
    pub ip_sans: Vec<std::net::IpAddr>,
    /// OIDs of critical extensions that no client is expected to process (see
    /// [`KNOWN_EXTENSIONS`]).
    pub unknown_critical: Vec<String>,
}

/// An extendedKeyUsage extension: the purposes the key may be used for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eku {
    /// anyExtendedKeyUsage.
    pub any: bool,
    /// id-kp-serverAuth.
    pub server_auth: bool,
    /// id-kp-clientAuth.
    pub client_auth: bool,
    /// Any other purpose (code signing, e-mail, ...), by name or OID.
    pub other: Vec<String>,
}

impl Eku {
    /// The purposes, for sentences: "clientAuth, codeSigning".
    pub fn describe(&self) -> String {
        let mut v: Vec<String> = Vec::new();
        if self.any {
            v.push("anyExtendedKeyUsage".into());
        }
        if self.server_auth {
            v.push("serverAuth".into());
        }
        if self.client_auth {
            v.push("clientAuth".into());
        }
        v.extend(self.other.iter().cloned());
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// A name constraint's subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subtree {
    /// A DNS subtree (`contoso.test` or `.contoso.test`).
    Dns(String),
    /// An IP range: address and mask, both 4 or 16 bytes.
    Ip(Vec<u8>, Vec<u8>),
    /// A directory name, e-mail or URI subtree (shown, not evaluated here).
    Other(String),
}

/// A nameConstraints extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraints {
    /// permittedSubtrees.
    pub permitted: Vec<Subtree>,
    /// excludedSubtrees.
    pub excluded: Vec<Subtree>,
}

/// Extensions a strict client processes: a critical extension outside this list makes it
/// reject the certificate (RFC 5280 4.2). The list is rustls-webpki's.
pub const KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.15",               // keyUsage
    "2.5.29.17",               // subjectAltName
    "2.5.29.19",               // basicConstraints
    "2.5.29.30",               // nameConstraints
    "2.5.29.31",               // cRLDistributionPoints
    "2.5.29.37",               // extKeyUsage
    "1.3.6.1.4.1.11129.2.4.2", // signed certificate timestamps
];

/// Critical extensions a trust anchor may carry besides [`KNOWN_EXTENSIONS`]: OpenSSL, which
/// checks an anchor's extensions (rustls-webpki takes only its name and key), processes these.
pub const ANCHOR_KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.35",         // authorityKeyIdentifier
    "2.5.29.14",         // subjectKeyIdentifier
    "1.3.6.1.5.5.7.1.1", // authorityInfoAccess
    "2.5.29.32",         // certificatePolicies
    "2.5.29.36",         // policyConstraints
    "2.5.29.54",         // inhibitAnyPolicy
];
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
    crate::model::Timestamp::from_parts(t.timestamp(), 0)
        .to_rfc3339()
        .replace(".000000Z", "Z")
}

/// Parses a DER certificate into its metadata.
pub fn parse_meta(der: &[u8]) -> StdResult<CertMeta, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("{e}"))?;
    let mut ski = None;
    let mut aki = None;
    let mut dns_names = Vec::new();
    let mut san = Vec::new();
    let mut ca_issuers = Vec::new();
    let mut basic_constraints = None;
    let mut key_usage = None;
    let mut eku = None;
    let mut name_constraints = None;
    let mut ip_sans = Vec::new();
    let mut unknown_critical = Vec::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if ext.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str()) {
            unknown_critical.push(oid);
        }
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => {
                basic_constraints = Some((b.ca, b.path_len_constraint))
            }
            ParsedExtension::KeyUsage(k) => key_usage = Some(k.flags),
            ParsedExtension::ExtendedKeyUsage(e) => {
                eku = Some(Eku {
                    any: e.any,
                    server_auth: e.server_auth,
                    client_auth: e.client_auth,
                    other: [
                        (e.code_signing, "codeSigning"),
                        (e.email_protection, "emailProtection"),
                        (e.time_stamping, "timeStamping"),
                        (e.ocsp_signing, "OCSPSigning"),
                    ]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| n.to_string())
                    .chain(e.other.iter().map(|o| o.to_id_string()))
                    .collect(),
                })
            }
            ParsedExtension::NameConstraints(nc) => {
                let subtrees = |v: &Option<Vec<x509_parser::extensions::GeneralSubtree>>| {
                    v.iter()
                        .flatten()
                        .map(|t| match &t.base {
                            GeneralName::DNSName(d) => Subtree::Dns(d.to_string()),
                            GeneralName::IPAddress(b) if b.len() == 8 || b.len() == 32 => {
                                let (a, m) = b.split_at(b.len() / 2);
                                Subtree::Ip(a.to_vec(), m.to_vec())
                            }
                            other => Subtree::Other(format!("{other}")),
                        })
                        .collect()
                };
                name_constraints = Some(NameConstraints {
                    permitted: subtrees(&nc.permitted_subtrees),
                    excluded: subtrees(&nc.excluded_subtrees),
                });
            }
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
                        GeneralName::IPAddress(ip) => match ip_from_bytes(ip) {
                            Some(a) => {
                                ip_sans.push(a);
                                san.push(format!("IP:{a}"));
                            }
                            None => san.push(format!("IP:{}", hex::encode(ip))),
                        },
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
        spki: cert.public_key().raw.to_vec(),
        version: cert.version().0 + 1,
        basic_constraints,
        key_usage,
        eku,
        name_constraints,
        ip_sans,
        unknown_critical,
    })
}

/// An IPv4 or IPv6 address from its 4 or 16 bytes.
pub fn ip_from_bytes(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(std::net::Ipv6Addr::from(a).into())
        }
        _ => None,
    }
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
    /// The issuer's key verifies the signature.
    Valid,
    /// It does not.
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
    /// "tcp" or "udp": which of Wireshark's stream indices `stream` is.
    pub transport: &'static str,
    /// Index of the capture in the report.
    pub capture: usize,
    /// Wireshark's stream index.
    pub stream: u64,
    /// The frame that completed the Certificate message.
    pub frame: u64,
    /// Who sent it.
    pub server: SocketAddr,
}

/// One distinct certificate of the store.
#[derive(Debug)]
pub struct StoredCert {
    /// Its DER, as sent.
    pub der: Vec<u8>,
    /// Its metadata, or why it does not parse as X.509.
    pub meta: StdResult<CertMeta, String>,
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
        self.add_hashed(der, sha256(der), seen)
    }

    /// As [`CertStore::add`], with the certificate's SHA-256 (`sha256(der)`) already made.
    pub fn add_hashed(&mut self, der: &[u8], sha: Sha, seen: Option<Sighting>) -> Sha {
        debug_assert_eq!(sha, sha256(der));
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

    /// The certificate with this hash.
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

    /// Every distinct certificate in the order first seen: its DER and where it was sent.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[Sighting])> + '_ {
        self.order.iter().filter_map(|sha| {
            let c = self.certs.get(sha)?;
            Some((c.der.as_slice(), c.sightings.as_slice()))
        })
    }

    /// Adds a certificate and the places it was sent (a partial analysis read back).
    pub fn add_seen(&mut self, der: &[u8], seen: &[Sighting]) {
        self.add(der, None);
        for s in seen {
            self.add(der, Some(*s));
        }
    }

    /// The metadata of the certificate with this hash, when it parsed.
    pub fn meta(&self, sha: &Sha) -> Option<&CertMeta> {
        self.certs.get(sha).and_then(|c| c.meta.as_ref().ok())
    }

    /// The certificates whose subject is this DER name.
    pub fn with_subject(&self, subject_raw: &[u8]) -> &[Sha] {
        self.by_subject
            .get(subject_raw)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// How many distinct certificates it holds.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Where the default trust anchors come from (`--trust-store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustSource {
    /// Mozilla's root program, as shipped with chainsniff (webpki-root-certs).
    #[default]
    Mozilla,
    /// This machine's operating-system store (rustls-native-certs).
    System,
    /// None: only `--trust` files.
    None,
}

impl TrustSource {
    /// Its name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustSource::Mozilla => "mozilla",
            TrustSource::System => "system",
            TrustSource::None => "none",
        }
    }
}

/// What a `--trust` file held that did not become a trust anchor, or became one by option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TrustNote {
    /// The file it came from.
    pub file: String,
    /// The certificate's subject.
    pub subject: String,
    /// SHA-256 of the certificate.
    pub sha256: String,
    /// `known_issuer` (an intermediate: used to explain a missing link, never trusted),
    /// `ignored_leaf` (not a CA), or `partial_chain_anchor` (an intermediate trusted as an
    /// anchor because `--trust-intermediates` was given).
    pub kind: &'static str,
}

/// The trust anchors: certificates whose keys the clients are assumed to trust, and the
/// certificates the user gave with `--trust` that are not anchors (intermediates: known
/// issuers that were *not sent*).
#[derive(Debug, Default)]
pub struct TrustStore {
    /// The anchors as certificates.
    pub store: CertStore,
    /// Intermediates from `--trust` files: known, not trusted.
    pub known: CertStore,
    /// The file each known intermediate came from.
    pub known_from: HashMap<Sha, String>,
    /// The anchors as a strict validator (rustls-webpki) takes them, with their hashes.
    pub anchors: Vec<(Sha, rustls_pki_types::TrustAnchor<'static>)>,
    /// Where the default anchors came from, and how many there are.
    pub source: TrustSource,
    /// How many default roots were loaded.
    pub default_roots: usize,
    /// How many anchors came from `--trust` files.
    pub user: usize,
    /// Intermediates from `--trust` become anchors (`--trust-intermediates`, as OpenSSL's
    /// `-partial_chain`).
    pub partial_chain: bool,
    /// What `--trust` files held besides roots.
    pub notes: Vec<TrustNote>,
    /// The newest notBefore among the default roots (Unix seconds): how recent the store is.
    pub store_date: i64,
}

impl TrustStore {
    /// Mozilla's roots, or none.
    pub fn new(mozilla_roots: bool) -> Self {
        let source = if mozilla_roots {
            TrustSource::Mozilla
        } else {
            TrustSource::None
        };
        Self::from_source(source).unwrap_or_default()
    }

    /// The default anchors of `source`. Fails only when the system store cannot be read.
    pub fn from_source(source: TrustSource) -> Result<Self> {
        let mut t = TrustStore {
            source,
            ..Default::default()
        };
        let ders: Vec<Vec<u8>> = match source {
            TrustSource::Mozilla => webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|d| d.as_ref().to_vec())
                .collect(),
            TrustSource::System => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    match found.errors.first() {
                        Some(e) => {
                            return Err(trust_err(format!(
                                "cannot read the system's trust store: {e}"
                            )));
                        }
                        None => {
                            return Err(trust_err(
                                "the system's trust store holds no certificate".into(),
                            ));
                        }
                    }
                }
                found.certs.iter().map(|d| d.as_ref().to_vec()).collect()
            }
            TrustSource::None => Vec::new(),
        };
        for der in &ders {
            if t.add_anchor(der) {
                t.default_roots += 1;
                if let Some(m) = t.store.meta(&sha256(der)) {
                    t.store_date = t.store_date.max(m.not_before);
                }
            }
        }
        Ok(t)
    }

    /// Makes `der` an anchor, whatever it is (as x509-limbo's trusted certificates are);
    /// false when it was one already or is not a certificate.
    pub fn add_anchor(&mut self, der: &[u8]) -> bool {
        let sha = sha256(der);
        if self.store.get(&sha).is_some() {
            return false;
        }
        let cert = rustls_pki_types::CertificateDer::from(der);
        let Ok(anchor) = webpki::anchor_from_trusted_cert(&cert) else {
            return false;
        };
        self.anchors.push((sha, anchor.to_owned()));
        self.store.add(der, None);
        true
    }

    /// Adds every certificate in a PEM or DER file, or in every file of a directory: roots
    /// (self-signed) become anchors, intermediates known issuers (or anchors with
    /// [`TrustStore::partial_chain`]), leaves are ignored; each but a root leaves a note.
    pub fn add_path(&mut self, path: &Path) -> Result<usize> {
        if path.is_dir() {
            let mut entries: Vec<_> = fs::read_dir(path)
                .map_err(|e| {
                    trust_err(format!(
                        "--trust {}: cannot read the directory: {e}",
                        path.display()
                    ))
                })?
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
                return Err(trust_err(format!(
                    "--trust {}: no PEM or DER certificate in the directory",
                    path.display()
                )));
            }
            return Ok(n);
        }
        self.add_file(path)
    }

    fn add_file(&mut self, path: &Path) -> Result<usize> {
        let bytes = fs::read(path)
            .map_err(|e| trust_err(format!("--trust {}: cannot read it: {e}", path.display())))?;
        let mut ders = Vec::new();
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            // The labels of the PEM blocks that are not certificates, to name them.
            let mut others: Vec<String> = Vec::new();
            for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
                let pem = pem.map_err(|e| {
                    trust_err(format!(
                        "--trust {}: a PEM block cannot be decoded ({e})",
                        path.display()
                    ))
                })?;
                if pem.label == "CERTIFICATE" || pem.label == "TRUSTED CERTIFICATE" {
                    if parse_meta(&pem.contents).is_err() {
                        return Err(trust_err(format!(
                            "--trust {}: PEM certificate {} is not a valid X.509 certificate",
                            path.display(),
                            ders.len() + 1
                        )));
                    }
                    ders.push(pem.contents);
                } else if !others.contains(&pem.label) {
                    others.push(pem.label);
                }
            }
            if ders.is_empty() {
                return Err(trust_err(format!(
                    "--trust {}: holds no certificate{}",
                    path.display(),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(" (only PEM {})", others.join(", "))
                    }
                )));
            }
        } else {
            if parse_meta(&bytes).is_err() {
                return Err(trust_err(format!(
                    "--trust {}: holds no PEM or DER certificate",
                    path.display()
                )));
            }
            ders.push(bytes);
        }
        let file = path.display().to_string();
        for der in &ders {
            self.add_user(der, &file);
        }
        Ok(ders.len())
    }

    /// One certificate from a `--trust` file, sorted into anchor, known issuer or ignored.
    fn add_user(&mut self, der: &[u8], file: &str) {
        let Ok(meta) = parse_meta(der) else { return };
        let sha = sha256(der);
        let is_ca = meta.basic_constraints.is_some_and(|(ca, _)| ca) || meta.version < 3;
        let self_signed = meta.self_issued && check_signature(der, der) != SigCheck::Invalid;
        let note = |kind| TrustNote {
            file: file.to_string(),
            subject: meta.summary.subject.clone(),
            sha256: hex::encode(sha),
            kind,
        };
        if self_signed {
            if self.add_anchor(der) {
                self.user += 1;
            }
        } else if is_ca && self.partial_chain {
            if self.add_anchor(der) {
                self.user += 1;
                self.notes.push(note("partial_chain_anchor"));
            }
        } else if is_ca {
            if self.known.get(&sha).is_none() {
                self.known.add(der, None);
                self.known_from.insert(sha, file.to_string());
                self.notes.push(note("known_issuer"));
            }
        } else if !self.notes.iter().any(|n| n.sha256 == hex::encode(sha)) {
            self.notes.push(note("ignored_leaf"));
        }
    }

    /// True when this exact certificate, or one with the same subject and key, is an anchor.
    pub fn is_anchor(&self, sha: &Sha, meta: &CertMeta) -> bool {
        if self.store.get(sha).is_some() {
            return true;
        }
        self.store
            .with_subject(&meta.subject_raw)
            .iter()
            .any(|a| self.store.meta(a).is_some_and(|am| am.spki == meta.spki))
    }
}

impl TrustNote {
    /// The warning printed for it.
    pub fn message(&self) -> String {
        match self.kind {
            "known_issuer" => format!(
                "--trust {}: {} is an intermediate CA, not a root: it is not trusted, only used to name the issuer a server failed to send (pass --trust-intermediates to trust it as OpenSSL's -partial_chain does)",
                self.file, self.subject
            ),
            "partial_chain_anchor" => format!(
                "--trust {}: the intermediate CA {} is trusted as an anchor (--trust-intermediates): chains that stop at it count as complete",
                self.file, self.subject
            ),
            _ => format!(
                "--trust {}: {} is not a CA certificate; it was ignored",
                self.file, self.subject
            ),
        }
    }
}
