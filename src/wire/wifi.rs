//! IEEE 802.11 (link type 105) and radiotap (link type 127) frames: a data frame's LLC/SNAP
//! payload with its source and destination addresses, so that EAPOL (the 4-way handshake's
//! predecessor: 802.1X on Wi-Fi) and, when the capture holds it in the clear, IP are read as on
//! Ethernet. Management and control frames, null data frames and protected (encrypted) frames
//! carry nothing this crate reads. Pure decoders with byte tests.

use super::DecodeError;
use super::eapol::Mac;

/// LINKTYPE_IEEE802_11: 802.11 frames without a radio header.
pub const LINKTYPE_IEEE802_11: i32 = 105;
/// LINKTYPE_IEEE802_11_RADIOTAP: a radiotap header, then the 802.11 frame.
pub const LINKTYPE_RADIOTAP: i32 = 127;

/// The payload of an 802.11 data frame, as an Ethernet frame would carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WifiData<'a> {
    /// Destination and source addresses (DA, SA), wherever the DS bits put them.
    pub da: Mac,
    /// The source address (the station that sent it).
    pub sa: Mac,
    /// The EtherType of the LLC/SNAP header.
    pub ethertype: u16,
    /// The LLC/SNAP payload.
    pub payload: &'a [u8],
}

/// Radiotap flags (the Flags field, present bit 1).
mod flags {
    /// The frame ends with its 4-byte FCS.
    pub const FCS: u8 = 0x10;
    /// The 802.11 header is padded to a multiple of 4 bytes.
    pub const DATA_PAD: u8 = 0x20;
    /// The FCS did not check: the frame is corrupt.
    pub const BAD_FCS: u8 = 0x40;
}

fn truncated(what: &str, have: usize, need: usize) -> DecodeError {
    DecodeError::Malformed(format!("{what} truncated ({have} of {need} bytes)"))
}

/// A radiotap header (version 0), then an 802.11 frame. Only the Flags field is read (FCS,
/// header padding, bad FCS); `None` for a frame that carries nothing readable.
pub fn radiotap(data: &[u8]) -> Result<Option<WifiData<'_>>, DecodeError> {
    if data.len() < 8 {
        return Err(truncated("radiotap header", data.len(), 8));
    }
    if data[0] != 0 {
        return Err(DecodeError::Malformed(format!(
            "radiotap version {}",
            data[0]
        )));
    }
    let len = u16::from_le_bytes([data[2], data[3]]) as usize;
    let Some(frame) = data.get(len..).filter(|_| len >= 8) else {
        return Err(truncated("radiotap header", data.len(), len.max(8)));
    };
    // The present words: bit 31 says another follows.
    let present = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let mut at = 8;
    let mut word = present;
    while word & 0x8000_0000 != 0 {
        let w = data.get(at..at + 4).filter(|_| at + 4 <= len);
        let Some(w) = w else {
            return Err(truncated("radiotap present words", len, at + 4));
        };
        word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        at += 4;
    }
    let mut f = 0;
    if present & 0x01 != 0 {
        // TSFT: 8 bytes, aligned to 8 from the start of the header.
        at = at.next_multiple_of(8) + 8;
    }
    if present & 0x02 != 0 {
        f = *data
            .get(at)
            .filter(|_| at < len)
            .ok_or_else(|| truncated("radiotap flags", len, at + 1))?;
    }
    if f & flags::BAD_FCS != 0 {
        return Ok(None);
    }
    ieee80211(frame, f & flags::FCS != 0, f & flags::DATA_PAD != 0)
}

/// An 802.11 frame; `fcs`: it ends with its FCS; `pad`: its header is padded to 4 bytes.
/// `None` for a frame that is not an unprotected data frame with an LLC/SNAP header.
pub fn ieee80211(data: &[u8], fcs: bool, pad: bool) -> Result<Option<WifiData<'_>>, DecodeError> {
    if data.len() < 10 {
        return Err(truncated("802.11 header", data.len(), 10));
    }
    let data = if fcs {
        &data[..data.len().saturating_sub(4)]
    } else {
        data
    };
    let (fc0, fc1) = (data[0], data[1]);
    let (version, kind, subtype) = (fc0 & 0x03, (fc0 >> 2) & 0x03, fc0 >> 4);
    if version != 0 || kind != 2 || subtype & 0x04 != 0 || fc1 & 0x40 != 0 {
        // Not a data frame, a null (no body) data frame, or protected.
        return Ok(None);
    }
    let (to_ds, from_ds) = (fc1 & 0x01 != 0, fc1 & 0x02 != 0);
    let qos = subtype & 0x08 != 0;
    let mut header = 24;
    if to_ds && from_ds {
        header += 6;
    }
    if qos {
        header += 2;
        if fc1 & 0x80 != 0 {
            header += 4; // +HTC
        }
    }
    if data.len() < header {
        return Err(truncated("802.11 header", data.len(), header));
    }
    let addr = |i: usize| -> Mac { data[i..i + 6].try_into().expect("6 bytes") };
    let (a1, a2, a3) = (addr(4), addr(10), addr(16));
    let (da, sa) = match (to_ds, from_ds) {
        (false, false) => (a1, a2),
        (true, false) => (a3, a2),
        (false, true) => (a1, a3),
        (true, true) => (a3, addr(24)),
    };
    let body_at = if pad {
        header.next_multiple_of(4)
    } else {
        header
    };
    let Some(body) = data.get(body_at..) else {
        return Err(truncated("802.11 header", data.len(), body_at));
    };
    // LLC/SNAP: AA AA 03, an OUI of RFC 1042 (00 00 00) or 802.1H (00 00 F8), the EtherType.
    match body {
        [
            0xaa,
            0xaa,
            0x03,
            0x00,
            0x00,
            0x00 | 0xf8,
            t0,
            t1,
            payload @ ..,
        ] => Ok(Some(WifiData {
            da,
            sa,
            ethertype: u16::from_be_bytes([*t0, *t1]),
            payload,
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const PHONE: Mac = [0x00, 0x04, 0xf2, 0x00, 0x00, 0x11];
    const AP: Mac = [0x00, 0x1b, 0x54, 0x00, 0x00, 0x01];

    /// Frame 9 of captures/eapol-wired-leaf-only.pcap after its Ethernet header: the phone's
    /// EAP-TLS alert in EAPOL.
    const ALERT: &str = "0200000d02a1000d0d0015030300020230";

    /// A QoS data frame from the phone to the AP (To DS): BSSID, SA, DA, then QoS control,
    /// LLC/SNAP and the EAPOL bytes.
    fn to_ds(payload: &str) -> Vec<u8> {
        let mut f = hex("88 01 3a01");
        f.extend_from_slice(&AP);
        f.extend_from_slice(&PHONE);
        f.extend_from_slice(&AP);
        f.extend_from_slice(&hex("1000 0700 aaaa03000000 888e"));
        f.extend_from_slice(&hex(payload));
        f
    }

    #[test]
    fn a_data_frame_to_the_ap_carries_eapol() {
        let f = to_ds(ALERT);
        let w = ieee80211(&f, false, false).unwrap().unwrap();
        assert_eq!((w.da, w.sa, w.ethertype), (AP, PHONE, 0x888e));
        assert_eq!(w.payload, hex(ALERT));
    }

    #[test]
    fn radiotap_flags_fcs_and_padding() {
        // Radiotap: version 0, length 9 (TSFT absent, Flags present: FCS at the end).
        let mut f = hex("00 00 0900 02000000 10");
        f.extend_from_slice(&to_ds(ALERT));
        f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let w = radiotap(&f).unwrap().unwrap();
        assert_eq!(w.payload, hex(ALERT), "the FCS is not the payload");
        // TSFT and Flags (data padding: the 26-byte QoS header padded to 28).
        let mut f = hex("00 00 1100 03000000 0000000000000000 20");
        let mut frame = to_ds(ALERT);
        frame.splice(26..26, [0, 0]);
        f.extend_from_slice(&frame);
        assert_eq!(radiotap(&f).unwrap().unwrap().sa, PHONE);
        // Bad FCS: skipped.
        let mut f = hex("00 00 0900 02000000 40");
        f.extend_from_slice(&to_ds(ALERT));
        assert_eq!(radiotap(&f).unwrap(), None);
        // Two present words (bit 31 set in the first), no fields.
        let mut f = hex("00 00 0c00 00000080 00000000");
        f.extend_from_slice(&to_ds(ALERT));
        assert_eq!(radiotap(&f).unwrap().unwrap().da, AP);
    }

    #[test]
    fn from_the_ap_and_between_aps() {
        // From DS, plain data: DA, BSSID, SA.
        let mut f = hex("08 02 0000");
        f.extend_from_slice(&PHONE);
        f.extend_from_slice(&AP);
        f.extend_from_slice(&AP);
        f.extend_from_slice(&hex("2000 aaaa03000000 888e"));
        f.extend_from_slice(&hex(ALERT));
        let w = ieee80211(&f, false, false).unwrap().unwrap();
        assert_eq!((w.da, w.sa), (PHONE, AP));
        // To and From DS (a mesh or WDS link): RA, TA, DA, SA (address 4).
        let mut f = hex("08 03 0000");
        f.extend_from_slice(&[2; 6]);
        f.extend_from_slice(&[3; 6]);
        f.extend_from_slice(&PHONE);
        f.extend_from_slice(&hex("3000"));
        f.extend_from_slice(&AP);
        f.extend_from_slice(&hex("aaaa03000000 0800 45"));
        let w = ieee80211(&f, false, false).unwrap().unwrap();
        assert_eq!((w.da, w.sa, w.ethertype), (PHONE, AP, 0x0800));
    }

    #[test]
    fn what_carries_nothing_readable() {
        // A beacon (management), an ACK (control), a protected data frame, a QoS null.
        let beacon = hex("8000 0000 ffffffffffff 001b54000001 001b54000001 0000 00");
        assert_eq!(ieee80211(&beacon, false, false).unwrap(), None);
        let ack = hex("d400 0000 0004f2000011");
        assert_eq!(ieee80211(&ack, false, false).unwrap(), None);
        let mut protected = to_ds(ALERT);
        protected[1] |= 0x40;
        assert_eq!(ieee80211(&protected, false, false).unwrap(), None);
        let mut null = to_ds("");
        null[0] = 0xc8;
        assert_eq!(ieee80211(&null, false, false).unwrap(), None);
        // A data frame that is not LLC/SNAP.
        let mut raw = to_ds(ALERT);
        raw[26] = 0x42;
        assert_eq!(ieee80211(&raw, false, false).unwrap(), None);
    }

    #[test]
    fn hostile_lengths_are_errors_not_panics() {
        assert!(radiotap(&hex("0000")).is_err());
        assert!(radiotap(&hex("0100 0800 00000000")).is_err(), "version 1");
        assert!(
            radiotap(&hex("0000 ff00 00000000")).is_err(),
            "longer than the frame"
        );
        assert!(radiotap(&hex("0000 0400 00000000")).is_err(), "under 8");
        assert!(
            radiotap(&hex("0000 0800 00000080")).is_err(),
            "a present word past the length"
        );
        assert!(
            radiotap(&hex("0000 0800 02000000 00")).is_err(),
            "flags past the length"
        );
        let f = to_ds(ALERT);
        for cut in 0..30 {
            let _ = ieee80211(&f[..cut], false, false);
            let _ = ieee80211(&f[..cut], true, true);
        }
        assert!(ieee80211(&f[..20], false, false).is_err());
    }
}
