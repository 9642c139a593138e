//! RADIUS (RFC 2865) packets and attributes, and the EAP they carry (RFC 3579: EAP-Message
//! attributes, concatenated in order, hold one EAP packet). Pure decoders; the conversations
//! are followed in [`crate::flow::eap`].

use super::DecodeError;
use super::eapol::Mac;

/// RADIUS codes this crate looks at.
pub mod code {
    /// Access-Request (authenticator to server).
    pub const ACCESS_REQUEST: u8 = 1;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = 2;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = 3;
    /// Access-Challenge (server to authenticator: another round).
    pub const ACCESS_CHALLENGE: u8 = 11;
}

/// Attribute types this crate looks at.
pub mod attr {
    /// User-Name.
    pub const USER_NAME: u8 = 1;
    /// State (links the rounds of one authentication).
    pub const STATE: u8 = 24;
    /// Calling-Station-Id (the supplicant's MAC).
    pub const CALLING_STATION_ID: u8 = 31;
    /// EAP-Message (concatenated per packet).
    pub const EAP_MESSAGE: u8 = 79;
}

/// The UDP ports RADIUS authentication is registered on (1812) and used on before (1645).
pub const PORTS: [u16; 2] = [1812, 1645];

/// One RADIUS packet, its attributes checked to lie within its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Radius<'a> {
    /// The RADIUS code.
    pub code: u8,
    /// The RADIUS Identifier (pairs a request with its answer).
    pub id: u8,
    /// The Request or Response Authenticator.
    pub authenticator: &'a [u8; 16],
    attributes: &'a [u8],
}

/// Decodes a RADIUS packet: a 20-byte header, then attributes (type, length ≥ 2, value) that
/// exactly fill the length the header gives (octets after it are padding, RFC 2865 3).
pub fn parse(b: &[u8]) -> Result<Radius<'_>, DecodeError> {
    if b.len() < 20 {
        return Err(DecodeError::Malformed(format!(
            "RADIUS header truncated ({} of 20 bytes)",
            b.len()
        )));
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let Some(b) = b.get(..len).filter(|_| len >= 20) else {
        return Err(DecodeError::Malformed(format!(
            "RADIUS length {len} but {} bytes",
            b.len()
        )));
    };
    let mut rest = &b[20..];
    while !rest.is_empty() {
        let l = *rest.get(1).unwrap_or(&0) as usize;
        if l < 2 || l > rest.len() {
            return Err(DecodeError::Malformed(format!(
                "RADIUS attribute of length {l} with {} bytes left",
                rest.len()
            )));
        }
        rest = &rest[l..];
    }
    Ok(Radius {
        code: b[0],
        id: b[1],
        authenticator: b[4..20].try_into().expect("16 bytes"),
        attributes: &b[20..],
    })
}

/// An Access-Request, -Accept, -Reject or -Challenge that carries EAP (an EAP-Message
/// attribute): what recognizes RADIUS on any UDP port.
pub fn is_eap_radius(b: &[u8]) -> bool {
    parse(b).is_ok_and(|r| r.is_access() && r.attribute(attr::EAP_MESSAGE).is_some())
}

impl<'a> Radius<'a> {
    /// An Access-Request, -Accept, -Reject or -Challenge.
    pub fn is_access(&self) -> bool {
        matches!(
            self.code,
            code::ACCESS_REQUEST
                | code::ACCESS_ACCEPT
                | code::ACCESS_REJECT
                | code::ACCESS_CHALLENGE
        )
    }

    /// Every attribute as (type, value), in order.
    pub fn attributes(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mut rest = self.attributes;
        std::iter::from_fn(move || {
            let (&t, after) = rest.split_first()?;
            let l = *after.first()? as usize;
            let value = rest.get(2..l)?;
            rest = &rest[l..];
            Some((t, value))
        })
    }

    /// The value of the first attribute of type `t`.
    pub fn attribute(&self, t: u8) -> Option<&'a [u8]> {
        self.attributes().find(|(a, _)| *a == t).map(|(_, v)| v)
    }

    /// Appends the EAP packet the EAP-Message attributes carry (their values joined in order)
    /// to `out`; false when there is none.
    pub fn eap_message(&self, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        for (t, v) in self.attributes() {
            if t == attr::EAP_MESSAGE {
                out.extend_from_slice(v);
                any = true;
            }
        }
        any
    }
}

/// The MAC address in a Calling-Station-Id: `00-04-F2-00-00-11` (RFC 3580 3.21), with colons,
/// Cisco's `0004.f200.0011`, 12 bare hex digits, each optionally followed by `:SSID` (Wi-Fi).
/// `None` when it holds something else (an IP address, a telephone number).
pub fn station_mac(v: &[u8]) -> Option<Mac> {
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let (digits, rest): (Vec<u8>, &[u8]) = match v {
        // Six pairs with one separator: 17 bytes.
        [_, _, sep @ (b'-' | b':'), ..] if v.len() >= 17 => {
            let mut d = Vec::with_capacity(12);
            for (i, &c) in v[..17].iter().enumerate() {
                if i % 3 == 2 {
                    if c != *sep {
                        return None;
                    }
                } else {
                    d.push(hexval(c)?);
                }
            }
            (d, &v[17..])
        }
        // Three groups of four with dots: 14 bytes.
        _ if v.len() >= 14 && v[4] == b'.' && v[9] == b'.' => {
            let mut d = Vec::with_capacity(12);
            for (i, &c) in v[..14].iter().enumerate() {
                if i == 4 || i == 9 {
                    continue;
                }
                d.push(hexval(c)?);
            }
            (d, &v[14..])
        }
        _ if v.len() >= 12 => (
            v[..12].iter().map(|&c| hexval(c)).collect::<Option<_>>()?,
            &v[12..],
        ),
        _ => return None,
    };
    if !(rest.is_empty() || rest[0] == b':') {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, m) in mac.iter_mut().enumerate() {
        *m = digits[2 * i] << 4 | digits[2 * i + 1];
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// Frame 1 of captures/eap-radius-leaf-only.pcap (eapol_test): Access-Request id 0 with
    /// User-Name, NAS-IP-Address, Calling-Station-Id, ..., one EAP-Message (Response, Identity)
    /// and a Message-Authenticator.
    const REQUEST: &str = "010000bf3c9be2b68c2570b754279184861133f8011a70686f6e652d30303131407461696c7370696e2e7465737404067f0000011f1330302d30342d46322d30302d30302d31310c06000005780606000000024d27434f4e4e4543542045746865726e657420313030304d6270732046756c6c206475706c6578200e73772d6163636573732d30313d060000000f4f1f02a7001d0170686f6e652d30303131407461696c7370696e2e746573745012bd0f5d868e69183b5ccb5a3a8bb56086";
    /// Frame 2: Access-Challenge id 0 (FreeRADIUS): EAP-Message (Request, EAP-TLS Start),
    /// Message-Authenticator, State.
    const CHALLENGE: &str = "0b000040631c7a4815b48ed3a446cd8094db1f144f0801a800060d205012d6b05914218d273d7f21f9f03a35fcc91812d91c73abd9b47ea245bde2cdf29cb2ad";
    /// Frame 8: Access-Reject id 3 with EAP-Failure.
    const REJECT: &str =
        "0303002c410c30a9443ecb280546269a0e42669f4f0604aa00045012e444bbf0258a22d36f3ab3b97c0db5a4";

    #[test]
    fn access_request_from_the_capture() {
        let b = hex(REQUEST);
        let r = parse(&b).unwrap();
        assert_eq!((r.code, r.id), (code::ACCESS_REQUEST, 0));
        assert_eq!(r.authenticator[..2], [0x3c, 0x9b]);
        assert_eq!(
            r.attribute(attr::USER_NAME),
            Some(&b"phone-0011@tailspin.test"[..])
        );
        let station = r.attribute(attr::CALLING_STATION_ID).unwrap();
        assert_eq!(station, b"00-04-F2-00-00-11");
        assert_eq!(station_mac(station), Some([0, 4, 0xf2, 0, 0, 0x11]));
        let types: Vec<u8> = r.attributes().map(|(t, _)| t).collect();
        assert_eq!(types, [1, 4, 31, 12, 6, 77, 32, 61, 79, 80]);
        let mut eap = Vec::new();
        assert!(r.eap_message(&mut eap));
        assert_eq!(
            eap,
            hex("02a7001d0170686f6e652d30303131407461696c7370696e2e74657374")
        );
        assert!(is_eap_radius(&b));
    }

    #[test]
    fn challenge_and_reject_from_the_capture() {
        let b = hex(CHALLENGE);
        let r = parse(&b).unwrap();
        assert_eq!((r.code, r.id), (code::ACCESS_CHALLENGE, 0));
        assert_eq!(
            r.attribute(attr::STATE),
            Some(&hex("d91c73abd9b47ea245bde2cdf29cb2ad")[..])
        );
        let mut eap = Vec::new();
        assert!(r.eap_message(&mut eap));
        assert_eq!(eap, hex("01a800060d20"), "Request, EAP-TLS, Start");
        let b = hex(REJECT);
        let r = parse(&b).unwrap();
        assert_eq!((r.code, r.id), (code::ACCESS_REJECT, 3));
        eap.clear();
        assert!(r.eap_message(&mut eap));
        assert_eq!(eap, hex("04aa0004"), "EAP-Failure");
    }

    #[test]
    fn eap_messages_are_joined_in_order() {
        // An EAP packet split over two EAP-Message attributes, a State between them.
        let mut p = hex("0b07002e");
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&hex("4f05010203"));
        p.extend_from_slice(&hex("18030a"));
        p.extend_from_slice(&hex("4f040405"));
        p.extend_from_slice(&[0; 4]); // padding beyond the length: ignored
        let len = p.len() - 4;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let r = parse(&p).unwrap();
        let mut eap = Vec::new();
        assert!(r.eap_message(&mut eap));
        assert_eq!(eap, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn hostile_packets_are_errors_not_panics() {
        let b = hex(REQUEST);
        assert!(parse(&b[..19]).is_err());
        assert!(parse(&b[..100]).is_err(), "shorter than its length");
        let mut bad = b.clone();
        bad[21] = 0x01; // the first attribute's length under 2
        assert!(parse(&bad).is_err());
        let mut bad = b.clone();
        bad[21] = 0xff; // past the end
        assert!(parse(&bad).is_err());
        let mut short = b.clone();
        short[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(parse(&short).is_err());
        // Accounting-Request: valid RADIUS, not EAP.
        let mut acct = b.clone();
        acct[0] = 4;
        assert!(parse(&acct).is_ok() && !is_eap_radius(&acct));
        assert!(!is_eap_radius(b"\x16\xfe\xfd"));
    }

    #[test]
    fn calling_station_ids() {
        let mac = Some([0, 4, 0xf2, 0, 0, 0x11]);
        assert_eq!(station_mac(b"00-04-F2-00-00-11"), mac);
        assert_eq!(station_mac(b"00:04:f2:00:00:11"), mac);
        assert_eq!(station_mac(b"0004.f200.0011"), mac);
        assert_eq!(station_mac(b"0004F2000011"), mac);
        assert_eq!(station_mac(b"00-04-F2-00-00-11:corp-wifi"), mac);
        assert_eq!(station_mac(b"00-04-F2:00-00-11"), None, "mixed separators");
        assert_eq!(station_mac(b"192.168.100.200"), None);
        assert_eq!(station_mac(b"+4930123456789"), None);
        assert_eq!(station_mac(b"00-04-F2-00-00-1"), None);
        assert_eq!(station_mac(b"00-04-F2-00-00-11x"), None);
        assert_eq!(station_mac(b""), None);
    }
}
