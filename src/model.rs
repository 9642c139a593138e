//! The shared vocabulary of every stage: when and where something was seen ([`Timestamp`],
//! [`At`]), which side sent it ([`Side`]), which protocol carried the handshake ([`Protocol`]),
//! and a transport endpoint ([`Endpoint`]). Lower stages import these from here, never from the
//! stages above them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A point in time, in nanoseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as i64),
        )
    }
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
    /// Milliseconds from `earlier` to `self`, as a float for display.
    pub fn millis_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1e6
    }
    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-24T17:49:38.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128) else {
            return format!("{}ns", self.0);
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

/// Where and when something happened, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    pub frame: u64,
    pub ts: Timestamp,
}

/// Which end of a handshake sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

/// The protocol that carried the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TLS over TCP.
    #[default]
    Tls,
    /// DTLS over UDP.
    Dtls,
    /// QUIC (TLS 1.3 in CRYPTO frames) over UDP.
    Quic,
}

impl Protocol {
    /// "tcp" or "udp": which Wireshark stream index `stream` is.
    pub fn transport(self) -> &'static str {
        match self {
            Protocol::Tls => "tcp",
            Protocol::Dtls | Protocol::Quic => "udp",
        }
    }
}

/// An address and port, as the report prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: std::net::IpAddr,
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: a.ip(),
            port: a.port(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        SocketAddr::new(self.ip, self.port).fmt(f)
    }
}
