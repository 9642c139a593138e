//! Stage 5: certificates and chains. The store of every certificate seen and the trust
//! anchors ([`store`]), the verdict of a strict client ([`verdict`], rustls-webpki), the path
//! builder that explains it ([`path`]), the RFC 5280 rules that name the certificate at fault
//! ([`constraints`]), and every finding kind with its severity and fix ([`findings`]).
//!
//! Everything a chain check needs is re-exported here: `chainsniff::pki::Status`,
//! `chainsniff::pki::CertStore`, ...

pub mod constraints;
pub mod findings;
pub mod path;
pub mod store;
pub mod verdict;

pub use path::*;
pub use store::*;
pub use verdict::{Purpose, Verdict};
