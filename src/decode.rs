//! Stage 2: frames to TCP segments.
//!
//! Link layers: Ethernet (with 802.1Q / QinQ tags), Linux cooked capture v1 and v2, raw IP
//! (link types 101, 228, 229), BSD null/loopback. Network: IPv4 and IPv6 (etherparse, in its
//! lax mode so a frame cut by the snap length still yields the bytes that were captured).
//! Everything that is not TCP over IP is reported as [`Decoded::Other`] and counted by the caller.

use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::Linktype;

/// The TCP header fields the reassembler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One TCP segment, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// Payload bytes the sender sent but the capture did not keep (snap length).
    pub missing: u32,
}

impl TcpSegment<'_> {
    /// Sequence space the segment occupies (payload, SYN and FIN each count).
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + self.missing + self.flags.syn as u32 + self.flags.fin as u32
    }
}

#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(TcpSegment<'a>),
    /// A frame that is fine but carries no TCP over IP (ARP, UDP, ICMP, IP fragments...).
    Other,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    UnsupportedLinktype(i32),
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnsupportedLinktype(l) => write!(f, "unsupported link type {l}"),
            DecodeError::Malformed(m) => f.write_str(m),
        }
    }
}

/// Decodes one frame down to its TCP segment, if it has one.
pub fn decode(linktype: Linktype, data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let packet = match linktype {
        Linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data)
            .map_err(|e| DecodeError::Malformed(format!("Ethernet header: {e}")))?,
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => LaxSlicedPacket::from_ip(data)
            .map_err(|e| DecodeError::Malformed(format!("IP header: {e}")))?,
        Linktype::NULL | Linktype::LOOP => {
            let (family, rest) = split_header(data, 4, "loopback")?;
            let ne = u32::from_be_bytes([family[0], family[1], family[2], family[3]]);
            let le = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            // AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30 depending on the OS.
            let family = if linktype == Linktype::LOOP || ne < 256 {
                ne
            } else {
                le
            };
            let ether_type = match family {
                2 => EtherType::IPV4,
                10 | 24 | 28 | 30 => EtherType::IPV6,
                _ => return Ok(Decoded::Other),
            };
            LaxSlicedPacket::from_ether_type(ether_type, rest)
        }
        Linktype::LINUX_SLL => {
            let (header, rest) = split_header(data, 16, "Linux cooked")?;
            let ether_type = u16::from_be_bytes([header[14], header[15]]);
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), rest)
        }
        Linktype::LINUX_SLL2 => {
            let (header, rest) = split_header(data, 20, "Linux cooked v2")?;
            let ether_type = u16::from_be_bytes([header[0], header[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), rest)
        }
        other => return Err(DecodeError::UnsupportedLinktype(other.0)),
    };
    tcp_of(&packet)
}

fn split_header<'a>(
    data: &'a [u8],
    len: usize,
    what: &str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    if data.len() < len {
        return Err(DecodeError::Malformed(format!(
            "{what} header truncated ({} of {len} bytes)",
            data.len()
        )));
    }
    Ok(data.split_at(len))
}

fn tcp_of<'a>(packet: &LaxSlicedPacket<'a>) -> Result<Decoded<'a>, DecodeError> {
    let (src, dst, ip_payload) = match &packet.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                v4.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                v6.payload(),
            )
        }
        _ => return Ok(Decoded::Other),
    };
    if ip_payload.fragmented || ip_payload.ip_number != etherparse::IpNumber::TCP {
        return Ok(Decoded::Other);
    }
    let tcp = match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        _ => {
            let reason = packet
                .stop_err
                .as_ref()
                .map(|(e, _)| e.to_string())
                .unwrap_or_else(|| "no TCP header".into());
            return Err(DecodeError::Malformed(format!("TCP header: {reason}")));
        }
    };
    // When the snap length cut the frame, etherparse gives what was captured; the IP length
    // fields still say how much was sent.
    let missing = if ip_payload.incomplete {
        let claimed = match &packet.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                (h.total_len() as usize).saturating_sub(h.slice().len())
            }
            Some(LaxNetSlice::Ipv6(v6)) => (v6.header().payload_length() as usize)
                .saturating_sub(v6.extensions().slice().len()),
            _ => 0,
        };
        claimed.saturating_sub(tcp.slice().len()) as u32
    } else {
        0
    };
    Ok(Decoded::Tcp(TcpSegment {
        src,
        dst,
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: TcpFlags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
        },
        payload: tcp.payload(),
        missing,
    }))
}
