//! Stage 3: conversations. The bounded table every flow lives in and its eviction
//! ([`table`]), TCP reassembly into ordered bytes per direction ([`tcp`]), UDP conversations
//! handed to DTLS and QUIC ([`udp`]).

pub mod table;
pub mod tcp;
pub mod udp;

pub use table::*;
pub use tcp::*;
