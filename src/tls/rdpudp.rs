//! TLS inside RDP's UDP transport, version 2 (MS-RDPEUDP2), the one current Windows clients
//! and servers negotiate: the TLS bytes travel as the data of a reliable, ordered channel, so
//! a record spans datagrams like a TCP segment's.
//!
//! A conversation starts with MS-RDPEUDP's SYN (an 8-byte FEC header: `snSourceAck` = -1,
//! `uReceiveWindowSize`, `uFlags` with SYN; then the SYN data and, with SYNEX, the
//! `uUdpVer` the peers agree on) and its SYN+ACK. With version 0x0101 (RDPEUDP2) every later
//! datagram is an RDPEUDP2 packet: its prefix byte is sent at offset 7, swapped with the
//! first header byte; a 12-bit flag field says which optional payloads follow (ACK,
//! OVERHEADSIZE, DELAYACKINFO, AOA, DATA header, ACKVEC, then the DATA body: a channel
//! sequence number and the channel's bytes). Dummy packets (type 8) carry nothing.
//!
//! Version 1 and 2 of MS-RDPEUDP (their own source and FEC payloads, and DTLS in lossy mode)
//! are not read: a conversation that agrees on them is left alone.

use std::collections::BTreeMap;

use crate::flow::{ConnInfo, Dir, StreamHandler};
use crate::model::{At, Protocol};

use super::handshake::TlsConn;

/// `uFlags` of MS-RDPEUDP's FEC header: SYN, ACK and SYNEX (RDPUDP_FLAG_*).
const FLAG_SYN: u16 = 0x0001;
const FLAG_ACK: u16 = 0x0004;
const FLAG_CORRELATION_ID: u16 = 0x0800;
const FLAG_SYNEX: u16 = 0x1000;
/// `uUdpVer` of RDPEUDP2 in the SYNEX payload.
const VERSION_2: u16 = 0x0101;

/// RDPEUDP2 header flags (MS-RDPEUDP2 2.2.1.1): which payloads follow.
const ACK: u16 = 0x001;
const DATA: u16 = 0x004;
const ACKVEC: u16 = 0x008;
const AOA: u16 = 0x010;
const OVERHEADSIZE: u16 = 0x040;
const DELAYACKINFO: u16 = 0x100;

/// Channel bytes held per direction while an earlier packet is missing.
const MAX_HELD: usize = 256 << 10;

/// Whether `payload` is MS-RDPEUDP's SYN: the first datagram of an RDP-UDP conversation.
pub fn is_rdpudp_syn(payload: &[u8]) -> bool {
    payload.len() >= 16
        && payload[..4] == [0xff; 4]
        && u16::from_be_bytes([payload[6], payload[7]]) & (FLAG_SYN | FLAG_ACK) == FLAG_SYN
}

/// The `uUdpVer` a SYN or SYN+ACK proposes (its SYNEX payload), if any.
fn syn_version(payload: &[u8]) -> Option<u16> {
    let flags = u16::from_be_bytes([*payload.get(6)?, *payload.get(7)?]);
    if flags & FLAG_SYN == 0 || flags & FLAG_SYNEX == 0 {
        return None;
    }
    // FEC header (8), SYN data (8: initial sequence number, up- and downstream MTU), the
    // correlation id (32) when flagged, then SYNEX: uSynExFlags (2), uUdpVer (2).
    let at =
        16 + if flags & FLAG_CORRELATION_ID != 0 {
            32
        } else {
            0
        } + 2;
    Some(u16::from_be_bytes([
        *payload.get(at)?,
        *payload.get(at + 1)?,
    ]))
}

/// One RDPEUDP2 packet's DATA body: its channel sequence number and bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// The channel sequence number (the order of the channel's bytes).
    pub channel_seq: u16,
    /// The channel's first byte when it is the one sent at offset 0 (swapped with the prefix
    /// byte): a packet with no optional payload but DATA has its channel bytes from offset 7.
    pub head: Option<u8>,
    /// The channel's bytes (after `head`, if any).
    pub bytes: &'a [u8],
}

/// The DATA body of an RDPEUDP2 packet as sent (prefix byte at offset 7), if it has one.
/// `None` for dummy packets, packets without data, and packets that do not parse.
pub fn packet_data(wire: &[u8]) -> Option<Data<'_>> {
    // The prefix byte: bit 0 reserved, bits 1-4 the packet type (0 data, 8 dummy), bits 5-7
    // a short packet length. It is sent at offset 7, and offset 0 holds the byte that
    // belongs at offset 7.
    let prefix = *wire.get(7)?;
    if (prefix >> 1) & 0x0f != 0 {
        return None;
    }
    let byte = |i: usize| -> Option<u8> {
        match i {
            0 => Some(prefix),
            7 => Some(wire[0]),
            _ => wire.get(i).copied(),
        }
    };
    let flags = u16::from(byte(1)?) | (u16::from(byte(2)? & 0x0f) << 8);
    if flags & DATA == 0 {
        return None;
    }
    let mut at = 3;
    if flags & ACK != 0 {
        // SeqNum (2), receivedTS (3), sendAckTimeGap (1), numDelayedAcks and scale (1),
        // then one byte per delayed ACK.
        at += 7 + usize::from(byte(at + 6)? & 0x0f);
    }
    if flags & OVERHEADSIZE != 0 {
        at += 1;
    }
    if flags & DELAYACKINFO != 0 {
        at += 3; // MaxDelayedAcks (1), DelayedAckTimeoutInMs (2)
    }
    if flags & AOA != 0 {
        at += 2; // AckOfAcksSeqNum
    }
    at += 2; // DATA header: DataSeqNum
    if flags & ACKVEC != 0 {
        // BaseSeqNum (2), codedAckVecSize (7 bits) and TimeStampPresent (1 bit), the
        // time stamp (3) and sendAckTimeGap (1) when present, then the coded vector.
        let b = byte(at + 2)?;
        at += 3 + if b & 0x80 != 0 { 4 } else { 0 } + usize::from(b & 0x7f);
    }
    let channel_seq = u16::from_le_bytes([byte(at)?, byte(at + 1)?]);
    at += 2;
    // Prefix, flags, DATA header and channel sequence number take 7 bytes at least: the
    // channel's bytes start at offset 7 (the swapped byte, sent at offset 0) or later.
    let head = (at == 7 && wire.len() > 7).then(|| wire[0]);
    Some(Data {
        channel_seq,
        head,
        bytes: wire.get(at.max(8)..).unwrap_or_default(),
    })
}

/// An RDP-UDP conversation: the SYNs, then (RDPEUDP2) each direction's channel bytes in
/// order to the same [`TlsConn`] as TLS over TCP.
pub(crate) struct RdpUdp {
    pub(crate) tls: TlsConn,
    /// The version both SYNs agreed on (RDPEUDP2 when both said 0x0101).
    versions: [Option<u16>; 2],
    /// Per direction: the next channel sequence number, once known, and packets that came
    /// before one missing in front of them.
    next: [Option<u16>; 2],
    held: [BTreeMap<u16, (At, Vec<u8>)>; 2],
    held_bytes: [usize; 2],
}

impl RdpUdp {
    pub(crate) fn new(info: ConnInfo) -> Self {
        let mut tls = TlsConn::new(info);
        tls.set_protocol(Protocol::RdpUdp);
        RdpUdp {
            tls,
            versions: [None, None],
            next: [None, None],
            held: [BTreeMap::new(), BTreeMap::new()],
            held_bytes: [0, 0],
        }
    }

    /// Whether both ends agreed on RDPEUDP2.
    fn version_2(&self) -> bool {
        self.versions == [Some(VERSION_2), Some(VERSION_2)]
    }

    pub(crate) fn datagram(&mut self, dir: Dir, at: At, payload: &[u8]) {
        let d = dir.index();
        if !self.version_2() {
            // The SYN and SYN+ACK; RDPEUDP2 packets are read only once both agreed on it, so
            // that none is taken for a SYN.
            if let Some(v) = syn_version(payload) {
                self.versions[d] = Some(v);
            }
            return;
        }
        let Some(data) = packet_data(payload) else {
            return;
        };
        // The first data packet seen in a direction starts its channel.
        let next = *self.next[d].get_or_insert(data.channel_seq);
        let ahead = data.channel_seq.wrapping_sub(next);
        if ahead >= 0x8000 {
            return; // a retransmission of bytes already delivered
        }
        if ahead > 0 {
            let len = data.bytes.len() + usize::from(data.head.is_some());
            if self.held_bytes[d] + len <= MAX_HELD && !self.held[d].contains_key(&data.channel_seq)
            {
                let bytes = data.head.into_iter().chain(data.bytes.iter().copied());
                self.held_bytes[d] += len;
                self.held[d].insert(data.channel_seq, (at, bytes.collect()));
            }
            return;
        }
        if let Some(b) = data.head {
            self.tls.on_data(dir, at, &[b]);
        }
        self.tls.on_data(dir, at, data.bytes);
        let mut next = next.wrapping_add(1);
        while let Some((at, bytes)) = self.held[d].remove(&next) {
            self.held_bytes[d] -= bytes.len();
            self.tls.on_data(dir, at, &bytes);
            next = next.wrapping_add(1);
        }
        self.next[d] = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Datagrams of zeek's rdpeudp2-handshake-success.pcap (the test suite's public capture),
    // UDP payloads cut to the bytes the parser reads.

    /// Frame 1, client to server: SYN, CORRELATION_ID, SYNEX with uUdpVer 0x0101.
    const SYN: &str = "ffffffff00401801a7eb5da404d004d0a2e2c8186de34f1e8d0f9175e4cd00000000000000000000000000000000000000010101";

    #[test]
    fn the_syn_opens_an_rdpeudp2_conversation() {
        let syn = hex::decode(SYN).unwrap();
        assert!(is_rdpudp_syn(&syn));
        assert_eq!(syn_version(&syn), Some(VERSION_2));
        // Not a SYN: an RDPEUDP2 data packet.
        let data = hex::decode("0014c101f40164e064000100160303008e").unwrap();
        assert!(!is_rdpudp_syn(&data));
    }

    #[test]
    fn a_data_packet_gives_its_channel_bytes() {
        // Frame 3: DATA | AOA | DELAYACKINFO, the ClientHello's record header first.
        let p = hex::decode("0014c101f40164e064000100160303008e0100008a0303").unwrap();
        let d = packet_data(&p).unwrap();
        assert_eq!(d.channel_seq, 1);
        assert_eq!(&d.bytes[..5], &[0x16, 0x03, 0x03, 0x00, 0x8e]);
        // Frame 5: ACK | DATA | AOA | OVERHEADSIZE | DELAYACKINFO, the server's record.
        let p = hex::decode("0055c164000301e001000a01f401640064000100160301050b02").unwrap();
        let d = packet_data(&p).unwrap();
        assert_eq!(d.channel_seq, 1);
        assert_eq!(d.bytes, &[0x16, 0x03, 0x01, 0x05, 0x0b, 0x02]);
        // Frame 6: DATA | AOA, channel sequence 2 (its low byte is the swapped byte 7).
        let p = hex::decode("0214c064006500e000bdcdd307").unwrap();
        let d = packet_data(&p).unwrap();
        assert_eq!(d.channel_seq, 2);
        assert_eq!(d.bytes, &[0xbd, 0xcd, 0xd3, 0x07]);
        assert_eq!(d.head, None);
    }

    #[test]
    fn a_data_only_packet_starts_its_bytes_with_the_swapped_one() {
        // Frame 6's packet rebuilt without AOA: prefix 0xe0, flags DATA (0x004) with log window
        // 12, DataSeqNum 0x0065, ChannelSeqNum 2, then the channel bytes bd cd d3; on the wire
        // the prefix goes to offset 7 and the byte there (the first channel byte) to offset 0.
        let p = hex::decode("bd04c0650002 00e0cdd3".replace(' ', "")).unwrap();
        let d = packet_data(&p).unwrap();
        assert_eq!(d.channel_seq, 2);
        assert_eq!(d.head, Some(0xbd));
        assert_eq!(d.bytes, &[0xcd, 0xd3]);
    }

    #[test]
    fn dummy_and_cut_packets_give_nothing() {
        // Frame 4: a dummy packet (type 8 in the prefix byte 0xf0).
        let p = hex::decode("0014c064006500f00000000000000000").unwrap();
        assert_eq!(packet_data(&p), None);
        // Cut inside the header.
        assert_eq!(packet_data(&hex::decode("0055c164").unwrap()), None);
        assert_eq!(packet_data(&[]), None);
    }
}
