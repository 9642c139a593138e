//! RFC 5280 constraints on a built path, one finding per broken rule naming the certificate:
//! basicConstraints (`not_a_ca`, `ca_as_leaf`), pathLenConstraint, keyUsage keyCertSign,
//! extendedKeyUsage, name constraints, unknown critical extensions. These explain what the
//! strict validator ([`super::verdict`]) decided; keyCertSign is also a rule of its own, since
//! rustls-webpki does not read keyUsage while OpenSSL, browsers and phones do.

use std::net::IpAddr;

use super::path::{Finding, FindingKind};
use super::verdict::Purpose;
use super::{CertMeta, Sha, Subtree};

/// One certificate of a path, leaf first.
pub struct Link<'a> {
    /// The certificate's hash.
    pub sha: Sha,
    /// Its metadata.
    pub meta: &'a CertMeta,
    /// A trust anchor (only its name constraints and path length count, as for OpenSSL).
    pub anchor: bool,
}

/// keyUsage bits (RFC 5280 4.2.1.3).
const DIGITAL_SIGNATURE: u16 = 1;
const KEY_ENCIPHERMENT: u16 = 1 << 2;
const KEY_AGREEMENT: u16 = 1 << 4;
const KEY_CERT_SIGN: u16 = 1 << 5;

/// What the negotiated key exchange does with the server's key, which its keyUsage must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUse {
    /// ECDHE/DHE and TLS 1.3: the key signs the handshake (digitalSignature).
    Signature,
    /// RSA key exchange (TLS_RSA_*): the client encrypts the premaster secret to it
    /// (keyEncipherment).
    Encipherment,
    /// Static ECDH/DH: the key takes part in the key agreement (keyAgreement).
    Agreement,
}

impl KeyUse {
    /// What a cipher suite (IANA id) needs of the server's key; `None` when unknown.
    pub fn of_cipher_suite(id: u16, tls13: bool) -> Option<KeyUse> {
        use tls_parser::TlsCipherKx as Kx;
        if tls13 {
            return Some(KeyUse::Signature);
        }
        let suite = tls_parser::TlsCipherSuite::from_id(id)?;
        match suite.kx {
            Kx::Rsa => Some(KeyUse::Encipherment),
            Kx::Dhe | Kx::Ecdhe | Kx::Tls13 => Some(KeyUse::Signature),
            Kx::Ecdh | Kx::Dh => Some(KeyUse::Agreement),
            _ => None,
        }
    }

    fn bit(self) -> (u16, &'static str, &'static str) {
        match self {
            KeyUse::Signature => (
                DIGITAL_SIGNATURE,
                "digitalSignature",
                "a signing key exchange (ECDHE, DHE, TLS 1.3)",
            ),
            KeyUse::Encipherment => (KEY_ENCIPHERMENT, "keyEncipherment", "RSA key exchange"),
            KeyUse::Agreement => (KEY_AGREEMENT, "keyAgreement", "static (EC)DH key exchange"),
        }
    }
}

/// The findings for `path` (leaf first), for `sni` (checked against name constraints too).
pub fn check(
    path: &[Link<'_>],
    sni: Option<&str>,
    purpose: Purpose,
    key_use: Option<KeyUse>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(leaf) = path.first() else {
        return out;
    };
    // The leaf's keyUsage against what the negotiated key exchange does with its key.
    if let (Some(ku), Some(use_)) = (leaf.meta.key_usage, key_use) {
        let (bit, name, what) = use_.bit();
        if ku & bit == 0 {
            out.push(Finding::new(
                FindingKind::WrongKeyUsage,
                format!(
                    "The server certificate {} has a keyUsage without {name}, which {what} needs: strict clients (OpenSSL, NSS, Go, Java) abort the handshake.",
                    leaf.meta.name()
                ),
                Some(&leaf.sha),
            ));
        }
    }
    let want_name = match purpose {
        Purpose::ServerAuth => "serverAuth",
        Purpose::ClientAuth => "clientAuth",
    };
    let want = |e: &super::Eku| match purpose {
        Purpose::ServerAuth => e.server_auth,
        Purpose::ClientAuth => e.client_auth,
    };
    // The leaf.
    if leaf.meta.basic_constraints.is_some_and(|(ca, _)| ca) && !leaf.anchor {
        out.push(Finding::new(
            FindingKind::CaAsLeaf,
            format!(
                "The server certificate {} is a CA certificate (basicConstraints CA:TRUE). Strict clients (Firefox/NSS, rustls, Go) reject a CA certificate as a server's; OpenSSL-based clients accept it.",
                leaf.meta.name()
            ),
            Some(&leaf.sha),
        ));
    }
    for (i, link) in path.iter().enumerate() {
        let m = link.meta;
        let role = if i == 0 { "server certificate" } else { "CA" };
        if !link.anchor
            && let Some(eku) = &m.eku
            && !want(eku)
        {
            out.push(Finding::new(
                FindingKind::WrongExtendedKeyUsage,
                format!(
                    "The {role} {} has extendedKeyUsage {} without {want_name}: clients reject it for TLS {}.",
                    m.name(),
                    eku.describe(),
                    if purpose == Purpose::ServerAuth {
                        "servers"
                    } else {
                        "client authentication"
                    }
                ),
                Some(&link.sha),
            ));
        }
        // A trust anchor's critical extensions count too (OpenSSL rejects an anchor with one
        // it does not process), with OpenSSL's longer list.
        let unknown: Vec<&str> = m
            .unknown_critical
            .iter()
            .map(String::as_str)
            .filter(|o| !link.anchor || !super::ANCHOR_KNOWN_EXTENSIONS.contains(o))
            .collect();
        if !unknown.is_empty() {
            out.push(Finding::new(
                FindingKind::UnhandledCriticalExtension,
                format!(
                    "The {role} {} has a critical extension clients do not process ({}): RFC 5280 requires them to reject the certificate.",
                    m.name(),
                    unknown.join(", ")
                ),
                Some(&link.sha),
            ));
        }
        if i == 0 {
            continue;
        }
        // An issuer.
        if !link.anchor {
            match m.basic_constraints {
                Some((true, _)) => {}
                other => out.push(Finding::new(
                    FindingKind::NotACa,
                    format!(
                        "{} issued {}, but it is not a CA certificate ({}): clients refuse it as an issuer (OpenSSL: invalid CA certificate).",
                        m.name(),
                        path[i - 1].meta.name(),
                        match other {
                            Some(_) => "basicConstraints CA:FALSE".to_string(),
                            None if m.version < 3 => format!(
                                "an X.509 version {} certificate, which has no basicConstraints",
                                m.version
                            ),
                            None => "no basicConstraints extension".to_string(),
                        }
                    ),
                    Some(&link.sha),
                )),
            }
        }
        // An issuer's keyUsage, the anchor's included (OpenSSL checks it there too).
        if let Some(ku) = m.key_usage
            && ku & KEY_CERT_SIGN == 0
        {
            out.push(Finding::new(
                FindingKind::WrongKeyUsage,
                format!(
                    "The CA {} has a keyUsage without keyCertSign, so it may not sign certificates: OpenSSL, browsers and most phones reject {} (rustls-webpki does not check keyUsage).",
                    m.name(),
                    path[i - 1].meta.name()
                ),
                Some(&link.sha),
            ));
        }
        // The CAs between this one and the leaf.
        let below = i - 1;
        if let Some((_, Some(max))) = m.basic_constraints
            && below > max as usize
        {
            out.push(Finding::new(
                FindingKind::PathLengthExceeded,
                format!(
                    "{} allows {max} CA certificate{} below it (pathLenConstraint {max}), but the path has {below} ({}).",
                    m.name(),
                    if max == 1 { "" } else { "s" },
                    path[1..i]
                        .iter()
                        .map(|l| l.meta.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(&link.sha),
            ));
        }
        if let Some(nc) = &m.name_constraints {
            let mut names: Vec<Name> = leaf
                .meta
                .dns_names
                .iter()
                .map(|d| Name::Dns(d.clone()))
                .chain(leaf.meta.ip_sans.iter().map(|a| Name::Ip(*a)))
                .collect();
            if let Some(s) = sni {
                let n = match s.parse::<IpAddr>() {
                    Ok(a) => Name::Ip(a),
                    Err(_) => Name::Dns(s.to_string()),
                };
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            let broken: Vec<String> = names
                .iter()
                .filter(|n| !permitted(n, &nc.permitted, &nc.excluded))
                .map(Name::to_string)
                .collect();
            if !broken.is_empty() {
                out.push(Finding::new(
                    FindingKind::NameConstraintViolation,
                    format!(
                        "{} may only issue names {}{}; {} is outside them.",
                        m.name(),
                        describe(&nc.permitted, "within"),
                        if nc.excluded.is_empty() {
                            String::new()
                        } else {
                            format!(" and not {}", describe(&nc.excluded, "within"))
                        },
                        broken.join(", ")
                    ),
                    Some(&link.sha),
                ));
            }
        }
    }
    out
}

/// A name of the leaf (or the SNI), as name constraints see it.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Dns(d) => f.write_str(d),
            Name::Ip(a) => a.fmt(f),
        }
    }
}

fn describe(subtrees: &[Subtree], word: &str) -> String {
    if subtrees.is_empty() {
        return "of any kind".into();
    }
    let v: Vec<String> = subtrees
        .iter()
        .map(|t| match t {
            Subtree::Dns(d) => format!("DNS:{d}"),
            Subtree::Ip(a, m) => {
                let bits: u32 = m.iter().map(|b| b.count_ones()).sum();
                match super::ip_from_bytes(a) {
                    Some(a) => format!("IP:{a}/{bits}"),
                    None => format!("IP:{}", hex::encode(a)),
                }
            }
            Subtree::Other(o) => o.clone(),
        })
        .collect();
    format!("{word} {}", v.join(", "))
}

/// RFC 5280 4.2.1.10: a name of a kind the permitted subtrees constrain must be in one of them,
/// and must be in none of the excluded.
fn permitted(name: &Name, permitted: &[Subtree], excluded: &[Subtree]) -> bool {
    let same_kind = |t: &Subtree| {
        matches!(
            (name, t),
            (Name::Dns(_), Subtree::Dns(_)) | (Name::Ip(_), Subtree::Ip(..))
        )
    };
    if excluded.iter().any(|t| same_kind(t) && within(name, t)) {
        return false;
    }
    let constrained: Vec<&Subtree> = permitted.iter().filter(|t| same_kind(t)).collect();
    constrained.is_empty() || constrained.iter().any(|t| within(name, t))
}

fn within(name: &Name, t: &Subtree) -> bool {
    match (name, t) {
        (Name::Dns(n), Subtree::Dns(c)) => dns_within(n, c),
        (Name::Ip(a), Subtree::Ip(base, mask)) => {
            let bytes = match a {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            bytes.len() == base.len()
                && bytes
                    .iter()
                    .zip(base)
                    .zip(mask)
                    .all(|((b, c), m)| b & m == c & m)
        }
        _ => false,
    }
}

/// `host.contoso.test` is within `contoso.test` and `.contoso.test`; `contoso.test` only within
/// the first. A wildcard name is taken as the domain it stands for.
fn dns_within(name: &str, constraint: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let name = name.strip_prefix("*.").unwrap_or(&name);
    let c = constraint.trim_end_matches('.').to_ascii_lowercase();
    if c.is_empty() {
        return true;
    }
    if let Some(sub) = c.strip_prefix('.') {
        return name.ends_with(&format!(".{sub}"));
    }
    name == c || name.ends_with(&format!(".{c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subtrees() {
        assert!(dns_within("a.contoso.test", "contoso.test"));
        assert!(dns_within("contoso.test", "contoso.test"));
        assert!(!dns_within("contoso.test", ".contoso.test"));
        assert!(dns_within("a.b.contoso.test", ".contoso.test"));
        assert!(!dns_within("badcontoso.test", "contoso.test"));
        assert!(!dns_within("www.fabrikam.test", ".contoso.test"));
        assert!(dns_within("*.contoso.test", "contoso.test"));
    }

    #[test]
    fn ip_subtrees() {
        let t = Subtree::Ip(vec![192, 0, 2, 0], vec![255, 255, 255, 0]);
        assert!(within(&Name::Ip("192.0.2.7".parse().unwrap()), &t));
        assert!(!within(&Name::Ip("192.0.3.7".parse().unwrap()), &t));
        assert!(!within(&Name::Ip("::1".parse().unwrap()), &t));
    }

    #[test]
    fn excluded_beats_permitted() {
        let p = [Subtree::Dns("contoso.test".into())];
        let x = [Subtree::Dns("secret.contoso.test".into())];
        assert!(permitted(&Name::Dns("www.contoso.test".into()), &p, &x));
        assert!(!permitted(
            &Name::Dns("a.secret.contoso.test".into()),
            &p,
            &x
        ));
        assert!(!permitted(&Name::Dns("www.fabrikam.test".into()), &p, &x));
        // A kind the constraints do not name is not constrained.
        assert!(permitted(&Name::Ip("10.0.0.1".parse().unwrap()), &p, &x));
    }
}
