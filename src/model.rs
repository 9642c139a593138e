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
    /// A time from seconds and nanoseconds since the Unix epoch.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as i64),
        )
    }
    /// Whole seconds since the Unix epoch.
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
        let Ok(year) = u32::try_from(t.year()) else {
            return format!("{}ns", self.0);
        };
        // Digit by digit: one of the report's most frequent strings (several per handshake).
        let mut out = String::with_capacity(27);
        let fields = [
            (year, 4, '-'),
            (u32::from(u8::from(t.month())), 2, '-'),
            (u32::from(t.day()), 2, 'T'),
            (u32::from(t.hour()), 2, ':'),
            (u32::from(t.minute()), 2, ':'),
            (u32::from(t.second()), 2, '.'),
            (t.microsecond(), 6, 'Z'),
        ];
        for (value, width, then) in fields {
            push_padded(&mut out, value, width);
            out.push(then);
        }
        out
    }
}

/// `value` in decimal, zero-padded to `width` digits (more if it needs them).
fn push_padded(out: &mut String, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut n = value;
    let mut len = 0;
    while n > 0 || len == 0 {
        digits[9 - len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    for _ in len..width {
        out.push('0');
    }
    out.extend(digits[10 - len..].iter().map(|&d| char::from(d)));
}

/// Where and when something happened, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    /// The frame number (with its part, [`PART_SHIFT`], in a joined capture).
    pub frame: u64,
    /// The frame's capture time.
    pub ts: Timestamp,
}

/// Frame numbers of a capture joined from several files (a ring buffer's parts, the two files of
/// a TAP) carry the file's place in the join, its *part*, from this bit up; the bits below are
/// Wireshark's frame number within that file. A single file is part 0: its frame numbers are
/// unchanged.
pub const PART_SHIFT: u32 = 40;

/// The part (file of a joined capture) a frame number is in.
pub fn frame_part(frame: u64) -> u32 {
    (frame >> PART_SHIFT) as u32
}

/// Wireshark's frame number within its file.
pub fn local_frame(frame: u64) -> u64 {
    frame & ((1 << PART_SHIFT) - 1)
}

/// Where a handshake's frames are: the capture it is reported in and the index in `captures[]`
/// of the first file of its (joined) capture. Turns the pipeline's frame numbers, which carry
/// their part, into Wireshark's.
#[derive(Debug, Clone, Copy)]
pub struct FramePlace {
    /// The index in `captures[]` the handshake is reported in.
    pub capture: usize,
    /// The index in `captures[]` of the first file of its capture.
    pub base: usize,
}

impl FramePlace {
    /// The index in `captures[]` of the file `frame` is in.
    pub fn capture_of(self, frame: u64) -> usize {
        self.base + frame_part(frame) as usize
    }

    /// `frame` as a report says it: Wireshark's number, naming the file when it is not the
    /// handshake's ("12 of capture \[1\]").
    pub fn text(self, frame: u64) -> String {
        match self.capture_of(frame) {
            c if c == self.capture => local_frame(frame).to_string(),
            c => format!("{} of capture [{c}]", local_frame(frame)),
        }
    }
}

/// Which end of a handshake sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The client (the end that sent the ClientHello).
    Client,
    /// The server.
    Server,
}

/// The protocol that carried the handshake. The EAP methods (802.1X) carry TLS over EAPOL or
/// RADIUS: which one is the handshake's transport (`Handshake::transport`), not the protocol's.
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
    /// TLS in the reliable channel of RDP's UDP transport (MS-RDPEUDP2).
    #[serde(rename = "rdp-udp")]
    RdpUdp,
    /// EAP-TLS (EAP type 13, RFC 5216 / RFC 9190).
    #[serde(rename = "eap-tls")]
    EapTls,
    /// PEAP (EAP type 25).
    #[serde(rename = "peap")]
    Peap,
    /// EAP-TTLS (EAP type 21, RFC 5281).
    #[serde(rename = "eap-ttls")]
    EapTtls,
    /// TEAP (EAP type 55, RFC 7170).
    #[serde(rename = "teap")]
    Teap,
}

impl Protocol {
    /// One of the EAP methods that carry TLS.
    pub fn is_eap(self) -> bool {
        matches!(
            self,
            Protocol::EapTls | Protocol::Peap | Protocol::EapTtls | Protocol::Teap
        )
    }
}

/// A MAC address, as on the wire.
pub type Mac = [u8; 6];

/// `00:04:f2:00:00:11`.
pub fn mac_string(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The address that stands for a MAC address where the report needs an IP address (an EAPOL
/// conversation has none): the IPv6 link-local address with the modified EUI-64 interface
/// identifier of the MAC (RFC 4291, appendix A), port 0. It is the address the host would form
/// itself from that MAC (SLAAC without privacy extensions), and it is invertible ([`mac_of`]).
pub fn mac_endpoint(mac: Mac) -> SocketAddr {
    let b = [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::from(b)), 0)
}

/// The MAC of an IPv6 link-local address with a modified EUI-64 interface identifier (as
/// [`mac_endpoint`] makes them).
pub fn mac_of(ip: std::net::IpAddr) -> Option<Mac> {
    let std::net::IpAddr::V6(v6) = ip else {
        return None;
    };
    let b = v6.octets();
    (b[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0] && b[11] == 0xff && b[12] == 0xfe)
        .then(|| [b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]])
}

/// An address and port, as the report prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The address.
    pub ip: std::net::IpAddr,
    /// The port (0 for a MAC-only endpoint, EAPOL).
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

impl Endpoint {
    /// The MAC this endpoint stands for: an EAPOL end, given as [`mac_endpoint`] makes it.
    pub fn mac(&self) -> Option<Mac> {
        if self.port != 0 {
            return None;
        }
        mac_of(self.ip)
    }
}

impl Endpoint {
    /// The host alone: its address, or for an EAPOL end its MAC.
    pub fn host(&self) -> String {
        match self.mac() {
            Some(m) => mac_string(&m),
            None => self.ip.to_string(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    /// `10.0.0.5:443`, `[2001:db8::1]:443`; an EAPOL end (port 0, see [`mac_endpoint`]) as its
    /// MAC, `00:04:f2:00:00:11`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mac() {
            Some(m) => f.write_str(&mac_string(&m)),
            None => SocketAddr::new(self.ip, self.port).fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_are_padded_to_microseconds() {
        let t = |ns: i64| Timestamp(ns).to_rfc3339();
        assert_eq!(t(1_795_545_061_123_456_789), "2026-11-24T18:31:01.123456Z");
        assert_eq!(t(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(t(946_684_799_000_001_000), "1999-12-31T23:59:59.000001Z");
        // Against the time crate's own RFC 3339, over a spread of instants.
        for i in 0..2000i64 {
            let ns = i * 987_654_321_123_457 % 4_102_444_800_000_000_000;
            let ours = t(ns);
            let theirs = time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            // theirs trims the fraction's trailing zeros and keeps nanoseconds.
            assert_eq!(ours[..19], theirs[..19], "{ns}");
            assert_eq!(
                ours[20..26],
                format!("{:06}", (ns / 1000) % 1_000_000),
                "{ns}"
            );
        }
    }

    #[test]
    fn a_mac_as_an_endpoint_and_back() {
        let mac = [0x00, 0x04, 0xf2, 0x00, 0x00, 0x11];
        let a = mac_endpoint(mac);
        assert_eq!(a.to_string(), "[fe80::204:f2ff:fe00:11]:0");
        assert_eq!(mac_of(a.ip()), Some(mac));
        let e = Endpoint::from(a);
        assert_eq!(e.mac(), Some(mac));
        assert_eq!(e.to_string(), "00:04:f2:00:00:11");
        let real: SocketAddr = "[fe80::204:f2ff:fe00:11]:443".parse().unwrap();
        assert_eq!(
            Endpoint::from(real).mac(),
            None,
            "a real port is a real address"
        );
        assert_eq!(
            Endpoint::from(real).to_string(),
            "[fe80::204:f2ff:fe00:11]:443"
        );
        assert_eq!(mac_of("fe80::1".parse().unwrap()), None);
        assert_eq!(mac_of("10.0.0.1".parse().unwrap()), None);
    }
}
