//! chainsniff's chain verdict against the x509-limbo path-validation suite.
//!
//! `limbo.json` (C2SP x509-limbo, see its README beside it) holds path-validation cases, each with
//! the trusted certificates, a pool of untrusted intermediates, the peer's certificate, the
//! validation time, the expected peer name, the validation kind (SERVER or CLIENT) and the expected
//! result. Every case is run through [`Checker::diagnose_for`] (anchors = `trusted_certs`, chain as
//! sent = the peer certificate then `untrusted_intermediates` in their order) and its verdict
//! (`valid` or not) must be the expected one (`SUCCESS` or `FAILURE`).
//!
//! Cases chainsniff deliberately (or knowingly) does not judge as the suite expects are listed
//! in [`EXCEPTIONS`] with the reason. The test fails for every other mismatch, and for every
//! exception that now matches (so the list stays true).
//!
//! The suite's folder comes from `CHAINSNIFF_X509_LIMBO` (set by `.ci/run`). When it is unset,
//! `../shared/x509-limbo` beside the checkout is used if present; otherwise the test is skipped
//! with a notice. When the variable is set but the folder is missing, the test fails.

mod common;

use std::path::PathBuf;

use chainsniff::pki::verdict::{Strict, strict_verify};
use chainsniff::pki::{CertStore, Checker, Purpose, TrustSource, TrustStore, Verdict};
use serde_json::Value;

/// A passive analyzer has no revocation data to apply.
const CRL: &str = "revocation: a passive analyzer fetches no CRL and is given none, so rustls-webpki \
    is called without revocation checking; the chain is judged on its path alone, which is valid \
    (the case fails only by the CRL it provides)";

/// `max_chain_depth` is a setting of the validating client.
const MAX_DEPTH: &str = "max_chain_depth is the validating client's own limit (OpenSSL's \
    -verify_depth), not a property of the chain; chainsniff judges the chain with no configured \
    depth (only rustls-webpki's and its own search bounds, which are larger)";

/// A CA certificate as the end entity: allowed by RFC 5280, refused by strict TLS clients.
const CA_AS_LEAF: &str = "the leaf is a CA certificate (basicConstraints cA TRUE), which RFC 5280 \
    allows but strict TLS clients refuse: rustls-webpki (CaUsedAsEndEntity) and Firefox \
    (CA_CERT_USED_AS_END_ENTITY), and OpenSSL rejects these two for their purpose; chainsniff \
    reports ca_as_leaf. x509-limbo's own webpki::ca-as-leaf expects this failure";

/// Self-issued intermediates (key rollover) and rustls-webpki.
const SELF_ISSUED: &str = "RFC 5280 exempts a self-issued intermediate (a key rollover \
    certificate) from pathLenConstraint counting (4.2.1.9) and from name constraints (4.2.1.10); \
    rustls-webpki applies both to every intermediate, so a rustls client rejects this chain \
    (OpenSSL accepts it); chainsniff's path_length finding counts the same way";

/// Name constraints of kinds rustls-webpki does not implement.
const NC_KIND: &str = "rustls-webpki fails closed on name constraints of a kind it does not \
    implement (directoryName, rfc822Name): NameConstraintViolation, so a rustls client rejects \
    what RFC 5280 permits (OpenSSL accepts)";

/// An issuance rule that relying parties do not enforce.
const PROFILE: &str = "a rule on what conforming CAs issue (RFC 5280 profile or CA/Browser Forum \
    Baseline Requirements), not one relying parties enforce: rustls-webpki and OpenSSL 3.0 \
    (`openssl verify`) both accept the chain, and chainsniff's verdict is theirs";

/// A trust anchor's own format.
const ANCHOR_FORMAT: &str = "a rule on the trust anchor's own certificate (its AKI, SKI, \
    basicConstraints or subject); an anchor is trusted by configuration, as its name and key: \
    rustls-webpki takes only those, and OpenSSL accepts the chain once the anchor is trusted as \
    given (-partial_chain; without it OpenSSL insists on a self-signed root by its AKI)";

/// The pedantic features that rustls-webpki deliberately does not implement.
const PEDANTIC: &str = "marked pedantic in x509-limbo (features): a deliberate choice of \
    rustls-webpki, which accepts the chain (as OpenSSL does)";

/// Cases whose expected result chainsniff knowingly does not reach, and why.
const EXCEPTIONS: &[(&str, &str)] = &[
    ("crl::revoked-certificate-with-crl", CRL),
    ("crl::crlnumber-missing", CRL),
    ("crl::crlnumber-critical", CRL),
    ("crl::issuer-missing-crlsign", CRL),
    ("pathlen::max-chain-depth-0-exhausted", MAX_DEPTH),
    ("pathlen::max-chain-depth-1-exhausted", MAX_DEPTH),
    ("pathlen::validation-ignores-pathlen-in-leaf", CA_AS_LEAF),
    ("rfc5280::ca-as-leaf", CA_AS_LEAF),
    ("pathlen::self-issued-certs-pathlen", SELF_ISSUED),
    ("rfc5280::nc::permitted-self-issued", SELF_ISSUED),
    ("rfc5280::nc::permitted-dn-match", NC_KIND),
    ("rfc5280::nc::nc-permits-email-exact", NC_KIND),
    ("rfc5280::nc::nc-permits-email-domain", NC_KIND),
    (
        "rfc5280::nc::nc-permits-email-literal-asterisk-exact-match",
        NC_KIND,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-double-asterisk",
        NC_KIND,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-mid-asterisk",
        NC_KIND,
    ),
    (
        "rfc5280::nc::permitted-dns-match-noncritical",
        "marked rfc5280-incompatible-with-webpki: the CA/Browser Forum allows a non-critical \
         nameConstraints extension and rustls-webpki (like OpenSSL) applies it",
    ),
    (
        "rfc5280::pc::ica-noncritical-pc",
        "policy constraints: rustls-webpki (and chainsniff) do not process certificate policies, \
         so the criticality of policyConstraints is not looked at; OpenSSL accepts it too",
    ),
    ("rfc5280::aki::leaf-missing-aki", PROFILE),
    ("rfc5280::aki::intermediate-missing-aki", PROFILE),
    ("rfc5280::nc::invalid-dnsname-leading-period", PROFILE),
    ("rfc5280::nc::not-allowed-in-ee-noncritical", PROFILE),
    ("rfc5280::nc::not-allowed-in-ee-critical", PROFILE),
    ("rfc5280::san::noncritical-with-empty-subject", PROFILE),
    ("rfc5280::san::underscore-dns", PROFILE),
    ("rfc5280::ski::intermediate-missing-ski", PROFILE),
    ("rfc5280::leaf-ku-keycertsign", PROFILE),
    ("webpki::cn::ipv4-hex-mismatch", PROFILE),
    ("webpki::cn::ipv4-leading-zeros-mismatch", PROFILE),
    ("webpki::cn::ipv6-uppercase-mismatch", PROFILE),
    ("webpki::cn::ipv6-uncompressed-mismatch", PROFILE),
    ("webpki::cn::ipv6-non-rfc5952-mismatch", PROFILE),
    ("webpki::cn::punycode-not-in-san", PROFILE),
    ("webpki::cn::utf8-vs-punycode-mismatch", PROFILE),
    ("webpki::cn::not-in-san", PROFILE),
    ("webpki::cn::case-mismatch", PROFILE),
    (
        "webpki::nc::intermediate-permitted-excluded-subtrees-both-null",
        PROFILE,
    ),
    (
        "webpki::nc::intermediate-permitted-excluded-subtrees-both-empty-sequences",
        PROFILE,
    ),
    ("webpki::san::san-critical-with-nonempty-subject", PROFILE),
    ("webpki::malformed-aia", PROFILE),
    ("webpki::forbidden-rsa-not-divisible-by-8-in-root", PROFILE),
    (
        "rfc5280::aki::critical-aki",
        "the anchor's authorityKeyIdentifier is critical, which conforming CAs must not do; \
         validators understand the extension, so its criticality does not stop them \
         (rustls-webpki takes the anchor as name and key; OpenSSL's error 34 here is only \
         because AKI is not on its short list of extensions it processes when critical)",
    ),
    ("rfc5280::aki::cross-signed-root-missing-aki", ANCHOR_FORMAT),
    (
        "rfc5280::ski::critical-ski",
        "the anchor's subjectKeyIdentifier is critical, which conforming CAs must not do; \
         rustls-webpki takes the anchor as name and key and accepts. OpenSSL rejects this chain \
         for another reason of its own: the leaf's authorityKeyIdentifier is not the root's SKI, \
         and OpenSSL refuses such an issuer, where rustls-webpki, Go and NSS match issuers by \
         name and signature",
    ),
    ("rfc5280::ski::root-missing-ski", ANCHOR_FORMAT),
    ("rfc5280::ca-empty-subject", ANCHOR_FORMAT),
    ("rfc5280::root-missing-basic-constraints", ANCHOR_FORMAT),
    (
        "rfc5280::root-non-critical-basic-constraints",
        ANCHOR_FORMAT,
    ),
    (
        "webpki::aki::root-with-aki-missing-keyidentifier",
        ANCHOR_FORMAT,
    ),
    (
        "webpki::aki::root-with-aki-authoritycertissuer",
        ANCHOR_FORMAT,
    ),
    (
        "webpki::aki::root-with-aki-authoritycertserialnumber",
        ANCHOR_FORMAT,
    ),
    ("webpki::aki::root-with-aki-all-fields", ANCHOR_FORMAT),
    ("webpki::aki::root-with-aki-ski-mismatch", ANCHOR_FORMAT),
    ("rfc5280::serial::too-long", PEDANTIC),
    ("rfc5280::serial::zero", PEDANTIC),
    ("webpki::eku::ee-anyeku", PEDANTIC),
    ("webpki::eku::ee-critical-eku", PEDANTIC),
    ("webpki::eku::ee-without-eku", PEDANTIC),
    ("webpki::eku::root-has-eku", PEDANTIC),
    (
        "webpki::san::public-suffix-multi-label-wildcard-san",
        PEDANTIC,
    ),
    (
        "webpki::san::public-suffix-private-namespace-wildcard-san",
        PEDANTIC,
    ),
    ("webpki::forbidden-dsa-leaf", PEDANTIC),
    (
        "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf",
        PEDANTIC,
    ),
];

fn limbo_dir() -> Option<PathBuf> {
    common::shared_data(
        "CHAINSNIFF_X509_LIMBO",
        "x509-limbo",
        "limbo.json",
        "the x509-limbo test",
    )
}

fn der_of(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("a PEM certificate");
    pem.contents
}

/// What chainsniff decides about one case.
struct Outcome {
    valid: bool,
    findings: Vec<String>,
    /// rustls-webpki's own verdict on the same chain (to tell its rules from chainsniff's).
    webpki: String,
}

fn run_case(case: &Value, now: i64) -> Outcome {
    let mut trust = TrustStore::from_source(TrustSource::None).unwrap();
    for pem in case["trusted_certs"].as_array().unwrap() {
        trust.add_anchor(&der_of(pem.as_str().unwrap()));
    }
    let mut store = CertStore::default();
    let mut chain = vec![store.add(&der_of(case["peer_certificate"].as_str().unwrap()), None)];
    for pem in case["untrusted_intermediates"].as_array().unwrap() {
        chain.push(store.add(&der_of(pem.as_str().unwrap()), None));
    }
    let at = match case["validation_time"].as_str() {
        Some(t) => common::rfc3339_secs(t).unwrap_or_else(|| panic!("bad time {t}")),
        None => now,
    };
    let name = case["expected_peer_name"]["value"].as_str();
    let purpose = match case["validation_kind"].as_str() {
        Some("CLIENT") => Purpose::ClientAuth,
        _ => Purpose::ServerAuth,
    };
    let ders: Vec<&[u8]> = chain
        .iter()
        .map(|s| store.get(s).unwrap().der.as_slice())
        .collect();
    let webpki = match strict_verify(&ders, &trust.anchors, at, name, purpose) {
        Strict::Valid { .. } => "valid".to_string(),
        Strict::Invalid(e) => format!("invalid ({})", e.error),
    };
    let mut checker = Checker::new(&store, &trust);
    let d = checker.diagnose_for(&chain, at, name, purpose);
    Outcome {
        webpki,
        valid: d.verdict == Verdict::Valid,
        findings: d
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.kind.as_str(), f.message))
            .collect(),
    }
}

/// A case description's first line; when it only introduces the chain's diagram ("Produces the
/// following **invalid** chain:"), the first line of prose after the diagram too.
fn summary(description: &str) -> String {
    let mut lines = description.lines();
    let first = lines.next().unwrap_or_default().to_string();
    if !first.ends_with(':') {
        return first;
    }
    let mut in_fence = false;
    for line in lines {
        if line.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && !line.trim().is_empty() {
            return format!("{first} [...] {line}");
        }
    }
    first
}

#[test]
fn limbo_cases_get_the_expected_verdict() {
    let Some(dir) = limbo_dir() else { return };
    let limbo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("limbo.json")).unwrap()).unwrap();
    let cases = limbo["testcases"].as_array().unwrap();
    assert!(
        cases.len() > 100,
        "expected the whole suite, found {} cases",
        cases.len()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (id, _) in EXCEPTIONS {
        assert!(
            cases.iter().any(|c| c["id"] == *id),
            "EXCEPTIONS lists {id}, which is not in limbo.json"
        );
    }
    let (mut agree, mut excepted) = (0, 0);
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let expected_valid = case["expected_result"] == "SUCCESS";
        let got = std::panic::catch_unwind(|| run_case(case, now));
        let exception = EXCEPTIONS.iter().find(|(e, _)| *e == id);
        let (valid, findings, webpki) = match got {
            Ok(o) => (Some(o.valid), o.findings, o.webpki),
            Err(_) => (None, vec!["PANIC".to_string()], String::new()),
        };
        let matches = valid == Some(expected_valid);
        match (matches, exception) {
            (true, None) => agree += 1,
            (true, Some(_)) => fixed.push(id.to_string()),
            (false, Some(_)) => excepted += 1,
            (false, None) => {
                let description = summary(case["description"].as_str().unwrap_or_default());
                failures.push(format!(
                    "{id}: expected {}, got {} (rustls-webpki alone: {webpki})\n    {description}\n    features: {}\n    findings:{}",
                    case["expected_result"].as_str().unwrap_or_default(),
                    match valid {
                        Some(true) => "valid",
                        Some(false) => "invalid",
                        None => "a panic",
                    },
                    case["features"],
                    if findings.is_empty() {
                        " none".to_string()
                    } else {
                        findings
                            .iter()
                            .map(|f| format!("\n      {f}"))
                            .collect::<String>()
                    }
                ));
            }
        }
    }
    println!(
        "x509-limbo: {} cases, {agree} agree, {excepted} listed exceptions, {} mismatches, {} exceptions that now match",
        cases.len(),
        failures.len(),
        fixed.len()
    );
    assert!(
        fixed.is_empty(),
        "these cases now get the expected verdict; remove them from EXCEPTIONS: {fixed:?}"
    );
    assert!(
        failures.is_empty(),
        "{} x509-limbo cases do not get the expected verdict:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
