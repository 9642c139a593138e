//! Every kind of finding, in one table: its name in the report, its severity, the fix on the
//! server and that fix in a few words (for the first screen). docs/report.md's findings table says the same (a test compares them).

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Clients that follow the rules fail (or did fail).
    Error,
    /// Some clients fail, or the configuration is sloppy.
    Warning,
    /// Worth knowing; harmless.
    Info,
}

impl Severity {
    /// The name in the report (`error`, `warning`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

macro_rules! finding_kinds {
    ($( $(#[$doc:meta])* $kind:ident = $name:literal, $sev:ident, $fix:literal, $action:literal; )*) => {
        /// Every kind of finding, one per thing that can be wrong (see docs/report.md).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        pub enum FindingKind {
            $( $(#[$doc])* $kind, )*
        }

        impl FindingKind {
            /// Every kind, in the table's order.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$kind),*];

            /// Its name in the report (`missing_intermediate`).
            pub fn as_str(self) -> &'static str {
                match self { $(FindingKind::$kind => $name,)* }
            }

            /// How bad it is.
            pub fn severity(self) -> Severity {
                match self { $(FindingKind::$kind => Severity::$sev,)* }
            }

            /// What to change on the server (or in the capture) to clear it.
            pub fn fix(self) -> &'static str {
                match self { $(FindingKind::$kind => $fix,)* }
            }

            /// The fix in a few words, for the first screen (a root cause's `action`).
            pub fn action(self) -> &'static str {
                match self { $(FindingKind::$kind => $action,)* }
            }
        }
    };
}

finding_kinds! {
    /// An intermediate the path needs was not sent; it was seen elsewhere (capture, --trust).
    MissingIntermediate = "missing_intermediate", Error,
        "Configure the full chain: the server certificate, then every intermediate CA up to (not including) the root. On a load balancer doing SSL offload attach the chain to the SSL profile (Cisco ACE: chain group; F5: Chain in the client SSL profile; NetScaler: link the CA certificate); Apache/nginx: the full-chain file; IIS: the intermediate in the Intermediate Certification Authorities store.",
        "Send the full chain: the leaf, then each intermediate.";
    /// The leaf's issuer was not sent and is known nowhere: the server must send it.
    MissingIssuer = "missing_issuer", Error,
        "Send the issuing CA certificate after the server certificate (download it from the CA, or from the caIssuers URL in the certificate). If the issuer is a root your clients trust, pass it with --trust instead.",
        "Send the issuing CA certificate after the leaf.";
    /// The path ends at a self-signed certificate that is not a trust anchor.
    UntrustedRoot = "untrusted_root", Error,
        "Use a certificate from a CA the clients trust, or distribute this root to the clients (and pass it with --trust here).",
        "Use a certificate from a CA the clients trust.";
    /// The path ends at a CA whose issuer is known nowhere (most likely a root not passed).
    UnknownIssuer = "unknown_issuer", Error,
        "If the issuer is your own root, pass it with --trust and run again; if it is an intermediate, send it after the certificate it issued.",
        "Send the issuer, or pass your own root with --trust.";
    /// The certificates issue each other in a loop that never reaches a root.
    ChainLoop = "chain_loop", Error,
        "Send a chain that ends at a root the clients trust: the leaf, then each issuing CA in order; remove cross-signed CA certificates that point back down the chain.",
        "Send the chain up to a trusted root, without cross-signed loops.";
    /// A certificate's signature does not verify with the key of the issuer that was sent.
    BadSignature = "bad_signature", Error,
        "Replace the intermediate with the one that actually issued the server certificate (its Subject Key Identifier matches the leaf's Authority Key Identifier).",
        "Send the intermediate that really issued the leaf.";
    /// An issuer on the path is not a CA (basicConstraints CA:TRUE missing).
    NotACa = "not_a_ca", Error,
        "Send the real issuing CA certificate (one with basicConstraints CA:TRUE); a certificate that is not a CA cannot issue others. If the CA itself lacks the extension, it must be reissued.",
        "Send the real issuing CA (basicConstraints CA:TRUE).";
    /// A CA's pathLenConstraint allows fewer CAs below it than the path has.
    PathLengthExceeded = "path_length_exceeded", Error,
        "Issue the server certificate from a CA whose pathLenConstraint allows it (or have the CA hierarchy reissued); remove extra CA levels from the chain.",
        "Issue from a CA whose pathLenConstraint allows it.";
    /// A key usage that forbids this use: an issuer without keyCertSign.
    WrongKeyUsage = "wrong_key_usage", Error,
        "Reissue the CA certificate with keyUsage keyCertSign (and cRLSign), or the server certificate with the key usage its key exchange needs (digitalSignature; keyEncipherment for RSA key exchange).",
        "Reissue the certificate with the key usage it needs.";
    /// An extended key usage that excludes TLS server authentication.
    WrongExtendedKeyUsage = "wrong_extended_key_usage", Error,
        "Reissue the server certificate with extendedKeyUsage serverAuth (from a CA whose own extendedKeyUsage, if any, includes serverAuth).",
        "Reissue the leaf with extendedKeyUsage serverAuth.";
    /// A name outside a CA's permitted subtrees, or inside its excluded ones.
    NameConstraintViolation = "name_constraint_violation", Error,
        "Issue the server certificate from a CA whose name constraints permit its names, or use only names inside the CA's permitted subtrees.",
        "Use names that the CA's name constraints permit.";
    /// A critical extension clients do not process.
    UnhandledCriticalExtension = "unhandled_critical_extension", Error,
        "Reissue the certificate without the critical extension (or with it marked non-critical): clients must reject a certificate with a critical extension they do not know.",
        "Reissue without the unknown critical extension.";
    /// The server certificate is a CA certificate.
    CaAsLeaf = "ca_as_leaf", Error,
        "Issue a real server certificate (basicConstraints CA:FALSE, extendedKeyUsage serverAuth) instead of using a CA certificate as the server's.",
        "Issue a real server certificate (CA:FALSE, serverAuth).";
    /// A certificate had expired at the handshake.
    Expired = "expired", Error,
        "Renew the certificate (for an intermediate, download the current one from the CA) and reload the server.",
        "Renew the certificate and reload the server.";
    /// A certificate was not yet valid at the handshake.
    NotYetValid = "not_yet_valid", Error,
        "Check the server's and the clients' clocks; install certificates only once they are valid.",
        "Check the clocks; install certificates once they are valid.";
    /// The leaf does not cover the name the client asked for.
    NameMismatch = "name_mismatch", Error,
        "Issue a certificate with this name in its Subject Alternative Name, or bind the right certificate to this name or virtual server.",
        "Issue a certificate with this name in its SAN.";
    /// A certificate signed with MD5 or SHA-1.
    WeakSignature = "weak_signature", Error,
        "Reissue the certificate signed with SHA-256 or better.",
        "Reissue the certificate signed with SHA-256 or better.";
    /// A key too small for today's clients.
    WeakKey = "weak_key", Error,
        "Reissue the certificate with a 2048-bit (or larger) RSA key or a P-256 key.",
        "Reissue with a 2048-bit RSA or a P-256 key.";
    /// A certificate that is not valid X.509 DER.
    UnparsableCertificate = "unparsable_certificate", Error,
        "Re-export the certificate file (PEM/DER confusion or a truncated file) and reload the server.",
        "Re-export the certificate file and reload the server.";
    /// A strict validator rejects the chain for a reason no other finding names.
    ValidationFailed = "validation_failed", Error,
        "Reissue the certificate named in the message so that it follows RFC 5280 and the CA/Browser Forum rules (the message gives the validator's reason).",
        "Reissue the certificate following RFC 5280.";
    /// The client aborted right after a chain that chainsniff judges valid.
    RejectedByClient = "rejected_by_client", Error,
        "Find out why this client refuses the chain: install the root on the client (its trust store lacks it), or meet its stricter policy (key size, SHA-1, validity period, revocation); compare with the clients that accepted the same chain.",
        "Install the root on the clients, or meet their policy.";
    /// The same certificate was sent more than once.
    DuplicateCertificate = "duplicate_certificate", Warning,
        "Remove the duplicate: usually the server certificate is configured on its own and again as the first entry of the chain file or chain group.",
        "Remove the duplicate from the chain.";
    /// The certificates were not sent in issuing order.
    WrongOrder = "wrong_order", Warning,
        "Order the chain file: the leaf first, then each certificate's issuer.",
        "Order the chain: the leaf first, then each issuer.";
    /// A certificate sent that is on no path from the leaf.
    UnrelatedCertificate = "unrelated_certificate", Warning,
        "Remove the certificate that is not on the path from the chain file.",
        "Remove the unrelated certificate from the chain.";
    /// One server sent different chains to different clients.
    InconsistentChains = "inconsistent_chains", Warning,
        "Make every pool member (or the SSL-offload profile and the servers) send the same complete chain, then check again with a new capture.",
        "Make every pool member send the same complete chain.";
    /// The key log lacks this handshake's secret.
    MissingSecret = "missing_secret", Warning,
        "Nothing on the server: capture again with the key log this client wrote during the capture.",
        "Capture again with the client's key log.";
    /// The logged secret did not decrypt the records.
    DecryptionFailed = "decryption_failed", Warning,
        "Nothing on the server: check that the key log belongs to this capture.",
        "Use the key log written during this capture.";
    /// A TLS 1.2 renegotiation whose messages (its chain) stayed encrypted.
    RenegotiationNotVisible = "renegotiation_not_visible", Warning,
        "Nothing on the server: capture again with the key log this client wrote (its CLIENT_RANDOM lines) to see and judge the chain sent in the renegotiation.",
        "Capture again with the client's key log.";
    /// The server sent the root itself.
    ContainsAnchor = "contains_anchor", Info,
        "Optional: leave the root out of the chain (clients use their own copy).",
        "Optional: leave the root out of the chain.";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/report.md's findings table lists every kind with the code's severity and fix.
    #[test]
    fn docs_table_says_what_the_code_says() {
        let docs = include_str!("../../docs/report.md");
        let start = docs
            .find("| kind | severity | what it means | how to fix it on the server | in a few words |")
            .expect("docs/report.md has the findings table");
        let rows: Vec<Vec<&str>> = docs[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        assert_eq!(
            rows.len(),
            FindingKind::ALL.len(),
            "one row per finding kind"
        );
        for kind in FindingKind::ALL {
            let row = rows
                .iter()
                .find(|r| r[0] == format!("`{}`", kind.as_str()))
                .unwrap_or_else(|| panic!("docs/report.md has no row for {}", kind.as_str()));
            assert_eq!(row[1], kind.severity().as_str(), "{}", kind.as_str());
            assert_eq!(row[3], kind.fix(), "{}: fix", kind.as_str());
            assert_eq!(row[4], kind.action(), "{}: action", kind.as_str());
        }
    }

    /// The names are the serde names (the JSON report's).
    #[test]
    fn names_are_the_json_names() {
        for kind in FindingKind::ALL {
            assert_eq!(
                serde_json::to_string(kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
    }
}
