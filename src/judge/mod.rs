//! Stage 6: judging what the TLS stage recorded. How the client reacted ([`reaction`]); the
//! chain's verdict is [`crate::pki`]'s.

pub mod reaction;

pub use reaction::{Reaction, ReactionKind};
