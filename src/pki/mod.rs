//! Stage 5: certificates and chains. The store of every certificate seen and the trust
//! anchors ([`store`]), the path builder that explains a chain ([`path`]).
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
