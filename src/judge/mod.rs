//! Stage 5: judging what the TLS stage recorded, one question per file: the status of a
//! handshake without a chain ([`status`]), how the client reacted ([`reaction`]), what the
//! wire adds to the chain's findings ([`findings`]: a refused valid chain, a key log that did
//! not open the handshake), and the notes on how it was captured ([`notes`](mod@notes)). The chain's
//! verdict is [`crate::pki`]'s.

pub mod findings;
pub mod notes;
pub mod reaction;
pub mod status;

pub use notes::{Note, NoteKind, notes};
pub use reaction::{Reaction, ReactionCount, ReactionKind};
