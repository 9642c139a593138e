//! Stage 3: conversations. The bounded table every flow lives in and its eviction
//! ([`table`]), TCP reassembly into ordered bytes per direction ([`tcp`]), UDP conversations
//! handed to DTLS, QUIC and RADIUS ([`udp`]), 802.1X conversations over EAPOL and RADIUS
//! ([`eap`]).

pub mod eap;
pub mod table;
pub mod tcp;
pub mod udp;

pub use table::*;
pub use tcp::*;
