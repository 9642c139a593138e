//! EAPOL (IEEE 802.1X-2020, clause 11: EtherType 0x888E) and EAP (RFC 3748, section 4)
//! headers. Pure decoders: bytes in, borrowed views out; the EAP conversations are followed in
//! [`crate::flow::eap`] and the TLS they carry is reassembled in [`crate::tls::eap`].

use super::DecodeError;
pub use crate::model::{Mac, mac_string};

/// The EtherType of EAPOL (802.1X port access entity).
pub const ETHERTYPE_EAPOL: u16 = 0x888e;

/// EAPOL packet types (802.1X-2020, table 11-3).
pub mod packet_type {
    /// EAPOL-Packet: an EAP packet follows.
    pub const EAP: u8 = 0;
    /// EAPOL-Start.
    pub const START: u8 = 1;
    /// EAPOL-Logoff.
    pub const LOGOFF: u8 = 2;
    /// EAPOL-Key (the 4-way handshake after authentication).
    pub const KEY: u8 = 3;
}

/// EAP codes (RFC 3748, 4; 5 and 6 from RFC 6696).
pub mod code {
    /// EAP Request (from the authenticator or server).
    pub const REQUEST: u8 = 1;
    /// EAP Response (from the supplicant).
    pub const RESPONSE: u8 = 2;
    /// EAP Success.
    pub const SUCCESS: u8 = 3;
    /// EAP Failure.
    pub const FAILURE: u8 = 4;
}

/// EAP method types this crate looks at (IANA "Method Types").
pub mod method {
    /// Identity.
    pub const IDENTITY: u8 = 1;
    /// EAP-TLS (RFC 5216).
    pub const EAP_TLS: u8 = 13;
    /// EAP-TTLS (RFC 5281).
    pub const EAP_TTLS: u8 = 21;
    /// PEAP.
    pub const PEAP: u8 = 25;
    /// TEAP (RFC 7170).
    pub const TEAP: u8 = 55;
    /// The expanded type: a 3-byte vendor id and a 4-byte vendor type follow.
    pub const EXPANDED: u8 = 254;
}

/// True for a group (multicast or broadcast) MAC address: the I/G bit of the first octet.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 0x01 != 0
}

/// One EAPOL frame and the Ethernet addresses it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EapolFrame<'a> {
    /// The destination MAC.
    pub dst: Mac,
    /// The source MAC.
    pub src: Mac,
    /// Protocol version: 1 (802.1X-2001), 2 (-2004), 3 (-2010 and later).
    pub version: u8,
    /// See [`packet_type`].
    pub packet_type: u8,
    /// The packet body, as long as the header says (the Ethernet padding after it removed); shorter
    /// only when the snap length cut the frame.
    pub body: &'a [u8],
    /// It came in an 802.11 frame (`dst` and `src` are its DA and SA), not an Ethernet one.
    pub wifi: bool,
}

/// Decodes the EAPOL header that follows an Ethernet header with EtherType 0x888E.
pub fn eapol<'a>(dst: Mac, src: Mac, data: &'a [u8]) -> Result<EapolFrame<'a>, DecodeError> {
    if data.len() < 4 {
        return Err(DecodeError::Malformed(format!(
            "EAPOL header truncated ({} of 4 bytes)",
            data.len()
        )));
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = &data[4..];
    Ok(EapolFrame {
        dst,
        src,
        version: data[0],
        packet_type: data[1],
        body: &body[..len.min(body.len())],
        wifi: false,
    })
}

/// One EAP packet (RFC 3748, 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EapPacket<'a> {
    /// See [`code`].
    pub code: u8,
    /// The EAP Identifier (pairs a Request with its Response).
    pub id: u8,
    /// Request and Response: the method type ([`method`]); `None` for the other codes.
    pub method: Option<u8>,
    /// What follows the type (Request, Response) or the header (other codes), as long as the
    /// packet's length says.
    pub data: &'a [u8],
}

/// Decodes an EAP packet; bytes after its length (padding) are ignored.
pub fn eap(b: &[u8]) -> Result<EapPacket<'_>, DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::Malformed(format!(
            "EAP header truncated ({} of 4 bytes)",
            b.len()
        )));
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let Some(b) = b.get(..len).filter(|_| len >= 4) else {
        return Err(DecodeError::Malformed(format!(
            "EAP length {len} but {} bytes",
            b.len()
        )));
    };
    let (code, id) = (b[0], b[1]);
    match code {
        code::REQUEST | code::RESPONSE => {
            let Some(&t) = b.get(4) else {
                return Err(DecodeError::Malformed(
                    "EAP Request/Response without a type".into(),
                ));
            };
            let skip = if t == method::EXPANDED { 12 } else { 5 };
            let Some(data) = b.get(skip..) else {
                return Err(DecodeError::Malformed("EAP expanded type truncated".into()));
            };
            Ok(EapPacket {
                code,
                id,
                method: Some(t),
                data,
            })
        }
        code::SUCCESS | code::FAILURE | 5 | 6 => Ok(EapPacket {
            code,
            id,
            method: None,
            data: &b[4..],
        }),
        other => Err(DecodeError::Malformed(format!("EAP code {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test bytes from hex, for as long as the test runs.
    fn hex(s: &str) -> &'static [u8] {
        Box::leak(hex::decode(s).unwrap().into_boxed_slice())
    }

    const PHONE: Mac = [0x00, 0x04, 0xf2, 0x00, 0x00, 0x11];
    const PAE_GROUP: Mac = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x03];

    /// Frames of captures/eapol-wired-leaf-only.pcap, after the 14-byte Ethernet header.
    #[test]
    fn eapol_start_from_the_wired_capture() {
        // Frame 1: EAPOL version 2, Start, no body.
        let f = eapol(PAE_GROUP, PHONE, hex("02010000")).unwrap();
        assert_eq!(
            (f.version, f.packet_type, f.body),
            (2, packet_type::START, &[][..])
        );
        assert!(is_group(&f.dst) && !is_group(&f.src));
        assert_eq!(mac_string(&f.src), "00:04:f2:00:00:11");
    }

    #[test]
    fn identity_request_and_response() {
        // Frame 2 (hostapd): EAP Request, Identity, id 158, padded to 60 bytes on the wire.
        let mut frame2 = hex("02000005019e000501").to_vec();
        frame2.extend_from_slice(&[0; 37]);
        let f = eapol(PAE_GROUP, PHONE, &frame2).unwrap();
        assert_eq!(f.body.len(), 5, "the Ethernet padding is not the body");
        let p = eap(f.body).unwrap();
        assert_eq!(
            p,
            EapPacket {
                code: code::REQUEST,
                id: 158,
                method: Some(method::IDENTITY),
                data: &[]
            }
        );
        // Frame 3: the phone's Response, Identity.
        let f = eapol(
            PAE_GROUP,
            PHONE,
            hex("0200001d029e001d0170686f6e652d30303131407461696c7370696e2e74657374"),
        )
        .unwrap();
        let p = eap(f.body).unwrap();
        assert_eq!((p.code, p.id, p.method), (code::RESPONSE, 158, Some(1)));
        assert_eq!(p.data, b"phone-0011@tailspin.test");
    }

    #[test]
    fn eap_tls_start_alert_and_failure() {
        // Frame 4: Request, EAP-TLS, flags 0x20 (Start).
        let p = eap(eapol(PAE_GROUP, PHONE, hex("02000006019f00060d20"))
            .unwrap()
            .body)
        .unwrap();
        assert_eq!(
            (p.code, p.id, p.method, p.data),
            (1, 159, Some(13), &[0x20][..])
        );
        // Frame 9: Response, EAP-TLS, flags 0, the TLS alert record (fatal, unknown_ca).
        let p = eap(
            eapol(PAE_GROUP, PHONE, hex("0200000d02a1000d0d0015030300020230"))
                .unwrap()
                .body,
        )
        .unwrap();
        assert_eq!((p.code, p.id, p.method), (2, 161, Some(method::EAP_TLS)));
        assert_eq!(p.data, hex("0015030300020230"));
        // Frame 10: Failure, id 161, no type.
        let p = eap(eapol(PAE_GROUP, PHONE, hex("0200000404a10004"))
            .unwrap()
            .body)
        .unwrap();
        assert_eq!(
            (p.code, p.id, p.method, p.data),
            (code::FAILURE, 161, None, &[][..])
        );
    }

    #[test]
    fn ethernet_frames_decode_to_eapol_behind_vlan_tags() {
        use crate::wire::{Decoded, decode};
        use pcap_parser::Linktype;
        // Frame 9 of the wired capture (the phone's alert) whole, then with an 802.1Q tag
        // (VLAN 120) and an 802.1ad one before it.
        let plain = hex("0180c20000030004f2000011888e0200000d02a1000d0d0015030300020230");
        let tagged =
            hex("0180c20000030004f200001188a8000a81000078888e0200000d02a1000d0d0015030300020230");
        for frame in [plain, tagged] {
            let Ok(Decoded::Eapol(f)) = decode(Linktype::ETHERNET, frame) else {
                panic!("not EAPOL: {frame:02x?}");
            };
            assert_eq!((f.dst, f.src), (PAE_GROUP, PHONE));
            assert_eq!(
                (f.version, f.packet_type, f.body.len()),
                (2, packet_type::EAP, 13)
            );
            assert_eq!(eap(f.body).unwrap().id, 0xa1);
        }
        // Cut inside the EAPOL header: an error, not a panic.
        assert!(decode(Linktype::ETHERNET, &plain[..16]).is_err());
    }

    #[test]
    fn hostile_lengths_are_errors_not_panics() {
        assert!(eapol(PAE_GROUP, PHONE, hex("0201")).is_err());
        // The EAPOL length claims more than the frame holds: the body is what was captured.
        let f = eapol(PAE_GROUP, PHONE, hex("0200ffff01")).unwrap();
        assert_eq!(f.body, &[1]);
        assert!(eap(hex("01")).is_err());
        assert!(eap(hex("019e0003")).is_err(), "length under 4");
        assert!(eap(hex("019e0010010203")).is_err(), "length over the data");
        assert!(eap(hex("019e0004")).is_err(), "a Request needs a type");
        assert!(eap(hex("079e0004")).is_err(), "unknown code");
        assert!(
            eap(hex("019e0008fe000000")).is_err(),
            "expanded type truncated"
        );
        let p = eap(hex("029e000cfe00000000000001")).unwrap();
        assert_eq!((p.method, p.data), (Some(method::EXPANDED), &[][..]));
    }
}
