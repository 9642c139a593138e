//! Stage 4: TLS. Records and handshake messages from stream bytes ([`record`]), the connection
//! state machine that turns them into a [`Handshake`] ([`handshake`]), TLS 1.3 decryption with a
//! key log ([`keylog`]) and client fingerprints ([`fingerprint`]); the datagram carriers
//! ([`dtls`], [`quic`], [`rdpudp`]) and EAP ([`eap`]) feed the same state machine.

pub mod dtls;
pub mod eap;
pub mod fingerprint;
pub mod handshake;
pub mod keylog;
pub mod quic;
pub mod rdpudp;
pub mod record;

pub use handshake::*;
pub use record::*;

/// A cipher suite's IANA name ("TLS_AES_128_GCM_SHA256"), or its number in hex.
pub fn cipher_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id)
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| format!("0x{id:04x}"))
}
