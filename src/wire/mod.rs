//! Stage 2: frames to TCP segments.
//!
//! Link layers: Ethernet (with 802.1Q / QinQ tags), Linux cooked capture v1 and v2, raw IP
//! (link types 101, 228, 229), BSD null/loopback, PPP. Network: IPv4 and IPv6 (etherparse, in
//! its lax mode so a frame cut by the snap length still yields the bytes that were captured).
//! Tunnels are unwrapped to the innermost TCP segment: PPPoE, MPLS, IP-in-IP (4in4, 6in4, 4in6,
//! 6in6), GRE (with ERSPAN II/III and PPTP), VXLAN, Geneve, GTP-U. 802.11 data frames (link
//! types 105 and 127, radiotap) are read through their LLC/SNAP header ([`wifi`]). EAPOL
//! (EtherType 0x888E, 802.1X) comes out as [`Decoded::Eapol`] with its MAC addresses
//! ([`eapol`]); RADIUS is UDP,
//! recognized later by content ([`radius`]). Everything else that is not TCP or UDP over IP is
//! reported as [`Decoded::Other`] and counted by the caller.

pub mod defrag;
pub mod eapol;
pub mod radius;
pub mod wifi;

use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::Linktype;

/// The TCP header fields the reassembler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// One TCP segment, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    /// The source address.
    pub src: IpAddr,
    /// The destination address.
    pub dst: IpAddr,
    /// The source port.
    pub sport: u16,
    /// The destination port.
    pub dport: u16,
    /// The sequence number.
    pub seq: u32,
    /// The acknowledgement number.
    pub ack: u32,
    /// The flags the reassembler needs.
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

/// What one frame holds, for the next stage.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A TCP segment.
    Tcp(TcpSegment<'a>),
    /// A UDP datagram.
    Udp(UdpDatagram<'a>),
    /// A fragment of an IP packet, to be reassembled (see `defrag`).
    Fragment(IpFragment<'a>),
    /// An 802.1X EAPOL frame, with the Ethernet addresses it came with.
    Eapol(eapol::EapolFrame<'a>),
    /// A frame that is fine but carries no TCP or UDP over IP (ARP, ICMP, IP fragments...).
    Other,
}

/// A fragment of an IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct IpFragment<'a> {
    /// The source address.
    pub src: IpAddr,
    /// The destination address.
    pub dst: IpAddr,
    /// The fragment's identification (IPv4 16 bits, IPv6 32 bits).
    pub id: u32,
    /// The protocol of the reassembled payload (6 TCP, 17 UDP).
    pub ip_number: u8,
    /// Byte offset of this fragment in the reassembled payload.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
    /// This fragment's bytes.
    pub payload: &'a [u8],
}

/// Decodes the payload of a reassembled IP packet (TCP or UDP).
pub fn transport(
    src: IpAddr,
    dst: IpAddr,
    ip_number: u8,
    data: &[u8],
) -> Result<Decoded<'_>, DecodeError> {
    match ip_number {
        6 => {
            let tcp = etherparse::TcpSlice::from_slice(data)
                .map_err(|e| DecodeError::Malformed(format!("TCP header: {e}")))?;
            Ok(Decoded::Tcp(segment(src, dst, &tcp, 0)))
        }
        17 => {
            let udp = etherparse::UdpSlice::from_slice(data)
                .map_err(|e| DecodeError::Malformed(format!("UDP header: {e}")))?;
            Ok(Decoded::Udp(UdpDatagram {
                src,
                dst,
                sport: udp.source_port(),
                dport: udp.destination_port(),
                payload: udp.payload(),
            }))
        }
        _ => Ok(Decoded::Other),
    }
}

/// One UDP datagram (not a tunnel), borrowing its payload from the frame.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<'a> {
    /// The source address.
    pub src: IpAddr,
    /// The destination address.
    pub dst: IpAddr,
    /// The source port.
    pub sport: u16,
    /// The destination port.
    pub dport: u16,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A link type chainsniff does not read.
    UnsupportedLinktype(i32),
    /// Headers that do not decode, and why.
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

/// How many encapsulations deep a frame may go before it is given up on.
const MAX_DEPTH: u8 = 8;

/// Decodes one frame down to its (innermost) TCP segment, if it has one.
pub fn decode(linktype: Linktype, data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    match linktype {
        Linktype::ETHERNET => ethernet(data, 0),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => ip(data, 0),
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
            match family {
                2 | 10 | 24 | 28 | 30 => ip(rest, 0),
                _ => Ok(Decoded::Other),
            }
        }
        Linktype::LINUX_SLL => {
            let (header, rest) = split_header(data, 16, "Linux cooked")?;
            ether_type(u16::from_be_bytes([header[14], header[15]]), rest, 0)
        }
        Linktype::LINUX_SLL2 => {
            let (header, rest) = split_header(data, 20, "Linux cooked v2")?;
            ether_type(u16::from_be_bytes([header[0], header[1]]), rest, 0)
        }
        Linktype(9) | Linktype(50) => {
            // PPP, optionally in HDLC-like framing (address 0xff, control 0x03).
            let rest = data.strip_prefix(&[0xff, 0x03]).unwrap_or(data);
            let (proto, rest) = split_header(rest, 2, "PPP")?;
            ppp(u16::from_be_bytes([proto[0], proto[1]]), rest, 0)
        }
        Linktype(wifi::LINKTYPE_IEEE802_11) => wifi_data(wifi::ieee80211(data, false, false)?),
        Linktype(wifi::LINKTYPE_RADIOTAP) => wifi_data(wifi::radiotap(data)?),
        other => Err(DecodeError::UnsupportedLinktype(other.0)),
    }
}

/// The payload of an 802.11 data frame: EAPOL, or what its EtherType says.
fn wifi_data(w: Option<wifi::WifiData<'_>>) -> Result<Decoded<'_>, DecodeError> {
    match w {
        Some(w) if w.ethertype == eapol::ETHERTYPE_EAPOL => eapol::eapol(w.da, w.sa, w.payload)
            .map(|mut f| {
                f.wifi = true;
                Decoded::Eapol(f)
            }),
        Some(w) => ether_type(w.ethertype, w.payload, 0),
        None => Ok(Decoded::Other),
    }
}

fn too_deep(depth: u8) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        Err(DecodeError::Malformed(format!(
            "more than {MAX_DEPTH} nested encapsulations"
        )))
    } else {
        Ok(())
    }
}

/// Ethernet II with any number of 802.1Q / 802.1ad tags.
fn ethernet(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    too_deep(depth)?;
    let (dst, src, et, rest) = ethernet_addresses(data)?;
    if et == eapol::ETHERTYPE_EAPOL {
        return eapol::eapol(dst, src, rest).map(Decoded::Eapol);
    }
    ether_type(et, rest, depth)
}

/// An Ethernet II frame's source MAC, and its EtherType and payload after any 802.1Q /
/// 802.1ad tags.
pub fn ethernet_header(data: &[u8]) -> Result<([u8; 6], u16, &[u8]), DecodeError> {
    let (_, src, et, rest) = ethernet_addresses(data)?;
    Ok((src, et, rest))
}

/// An Ethernet II frame's destination and source MACs, its EtherType and its payload.
pub type EthernetParts<'a> = ([u8; 6], [u8; 6], u16, &'a [u8]);

/// An Ethernet II frame's destination and source MACs, and its EtherType and payload after any
/// 802.1Q / 802.1ad tags.
pub fn ethernet_addresses(data: &[u8]) -> Result<EthernetParts<'_>, DecodeError> {
    let (header, mut rest) = split_header(data, 14, "Ethernet")?;
    let mut et = u16::from_be_bytes([header[12], header[13]]);
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        let (tag, r) = split_header(rest, 4, "VLAN tag")?;
        et = u16::from_be_bytes([tag[2], tag[3]]);
        rest = r;
    }
    let mut dst = [0u8; 6];
    dst.copy_from_slice(&header[..6]);
    let mut src = [0u8; 6];
    src.copy_from_slice(&header[6..12]);
    Ok((dst, src, et, rest))
}

fn ether_type(et: u16, data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    too_deep(depth)?;
    match et {
        0x0800 | 0x86dd => ip(data, depth),
        0x6558 => ethernet(data, depth + 1),
        // PPPoE session: version/type, code, session id, length, then the PPP protocol.
        0x8864 => {
            let (_, rest) = split_header(data, 6, "PPPoE")?;
            let (proto, rest) = split_header(rest, 2, "PPP")?;
            ppp(u16::from_be_bytes([proto[0], proto[1]]), rest, depth + 1)
        }
        // MPLS: pop labels to the bottom of the stack, then guess IPv4/IPv6 by version.
        0x8847 | 0x8848 => {
            let mut rest = data;
            loop {
                let (label, r) = split_header(rest, 4, "MPLS label")?;
                rest = r;
                if label[2] & 1 == 1 {
                    break;
                }
            }
            match rest.first().map(|b| b >> 4) {
                Some(4) | Some(6) => ip(rest, depth + 1),
                _ => Ok(Decoded::Other),
            }
        }
        _ => Ok(Decoded::Other),
    }
}

fn ppp(proto: u16, data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    match proto {
        0x0021 | 0x0057 => ip(data, depth),
        _ => Ok(Decoded::Other),
    }
}

/// An IP packet: TCP is the goal; IP-in-IP, GRE and UDP tunnels are unwrapped.
fn ip(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    too_deep(depth)?;
    let packet = LaxSlicedPacket::from_ip(data)
        .map_err(|e| DecodeError::Malformed(format!("IP header: {e}")))?;
    let Some(payload) = packet.net.as_ref().and_then(|n| n.ip_payload_ref()) else {
        return Ok(Decoded::Other);
    };
    if payload.fragmented {
        return Ok(fragment_of(&packet, payload, data));
    }
    let inner = payload.payload;
    match payload.ip_number.0 {
        6 => tcp_of(&packet),
        4 | 41 => ip(inner, depth + 1),
        47 => gre(inner, depth + 1),
        17 => match &packet.transport {
            Some(TransportSlice::Udp(udp)) => {
                let (sport, dport) = (udp.source_port(), udp.destination_port());
                let body = udp.payload();
                if dport == 4789 || sport == 4789 {
                    // VXLAN: 8-byte header, then Ethernet.
                    let (_, rest) = split_header(body, 8, "VXLAN")?;
                    ethernet(rest, depth + 1)
                } else if dport == 6081 || sport == 6081 {
                    geneve(body, depth + 1)
                } else if dport == 2152 || sport == 2152 {
                    gtp_u(body, depth + 1)
                } else {
                    let (src, dst) = match &packet.net {
                        Some(LaxNetSlice::Ipv4(v4)) => (
                            IpAddr::from(v4.header().source_addr()),
                            IpAddr::from(v4.header().destination_addr()),
                        ),
                        Some(LaxNetSlice::Ipv6(v6)) => (
                            IpAddr::from(v6.header().source_addr()),
                            IpAddr::from(v6.header().destination_addr()),
                        ),
                        _ => return Ok(Decoded::Other),
                    };
                    Ok(Decoded::Udp(UdpDatagram {
                        src,
                        dst,
                        sport,
                        dport,
                        payload: body,
                    }))
                }
            }
            _ => Ok(Decoded::Other),
        },
        _ => Ok(Decoded::Other),
    }
}

/// Geneve (RFC 8926): 8 bytes plus options, then the payload named by its protocol type.
fn geneve(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    let (h, _) = split_header(data, 8, "Geneve")?;
    let len = 8 + (h[0] & 0x3f) as usize * 4;
    let (_, rest) = split_header(data, len, "Geneve options")?;
    ether_type(u16::from_be_bytes([h[2], h[3]]), rest, depth)
}

/// GTP-U (3GPP TS 29.281): a G-PDU carries an IP packet after the header and extensions.
fn gtp_u(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    let (h, mut rest) = split_header(data, 8, "GTP-U")?;
    if h[0] >> 5 != 1 || h[1] != 0xff {
        return Ok(Decoded::Other);
    }
    if h[0] & 0x07 != 0 {
        let (opt, r) = split_header(rest, 4, "GTP-U optional fields")?;
        rest = r;
        let mut next = opt[3];
        while next != 0 {
            let len = *rest
                .first()
                .ok_or_else(|| DecodeError::Malformed("GTP-U extension truncated".into()))?
                as usize
                * 4;
            if len == 0 {
                return Err(DecodeError::Malformed("GTP-U extension of length 0".into()));
            }
            let (ext, r) = split_header(rest, len, "GTP-U extension")?;
            next = ext[len - 1];
            rest = r;
        }
    }
    match rest.first().map(|b| b >> 4) {
        Some(4) | Some(6) => ip(rest, depth),
        _ => Ok(Decoded::Other),
    }
}

/// GRE (RFC 2784/2890, and PPTP's enhanced GRE), including ERSPAN types II and III.
fn gre(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    let (h, _) = split_header(data, 4, "GRE")?;
    let flags = u16::from_be_bytes([h[0], h[1]]);
    let proto = u16::from_be_bytes([h[2], h[3]]);
    let version = flags & 0x7;
    let mut len = 4;
    if flags & 0x8000 != 0 {
        len += 4; // checksum + reserved
    }
    if flags & 0x2000 != 0 {
        len += 4; // key
    }
    if flags & 0x1000 != 0 {
        len += 4; // sequence
    }
    if version == 1 && flags & 0x0080 != 0 {
        len += 4; // acknowledgment
    }
    let (_, rest) = split_header(data, len, "GRE")?;
    match proto {
        0x880b => {
            let rest = rest.strip_prefix(&[0xff, 0x03]).unwrap_or(rest);
            let (p, rest) = split_header(rest, 2, "PPP")?;
            ppp(u16::from_be_bytes([p[0], p[1]]), rest, depth)
        }
        // ERSPAN type II: 8-byte header (only with the sequence bit), then Ethernet.
        0x88be if flags & 0x1000 != 0 => {
            let (_, rest) = split_header(rest, 8, "ERSPAN")?;
            ethernet(rest, depth)
        }
        0x88be => ethernet(rest, depth),
        // ERSPAN type III: 12 bytes, plus an 8-byte platform subheader when O is set.
        0x22eb => {
            let (e, _) = split_header(rest, 12, "ERSPAN III")?;
            let len = if e[11] & 0x01 != 0 { 20 } else { 12 };
            let (_, rest) = split_header(rest, len, "ERSPAN III")?;
            ethernet(rest, depth)
        }
        other => ether_type(other, rest, depth),
    }
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

fn fragment_of<'a>(
    packet: &LaxSlicedPacket<'a>,
    payload: &etherparse::LaxIpPayloadSlice<'a>,
    data: &'a [u8],
) -> Decoded<'a> {
    match &packet.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            Decoded::Fragment(IpFragment {
                src: IpAddr::from(h.source_addr()),
                dst: IpAddr::from(h.destination_addr()),
                id: h.identification() as u32,
                ip_number: payload.ip_number.0,
                offset: h.fragments_offset().value() as usize * 8,
                more: h.more_fragments(),
                payload: payload.payload,
            })
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            match ipv6_fragment(data) {
                Some((id, ip_number, offset, more, body)) => Decoded::Fragment(IpFragment {
                    src: IpAddr::from(h.source_addr()),
                    dst: IpAddr::from(h.destination_addr()),
                    id,
                    ip_number,
                    offset,
                    more,
                    payload: body,
                }),
                None => Decoded::Other,
            }
        }
        _ => Decoded::Other,
    }
}

/// Walks an IPv6 packet's extension headers to its Fragment header (RFC 8200, 4.5): returns
/// identification, the next header after it, byte offset, more-fragments and the fragment data.
fn ipv6_fragment(data: &[u8]) -> Option<(u32, u8, usize, bool, &[u8])> {
    let payload_len = u16::from_be_bytes([*data.get(4)?, *data.get(5)?]) as usize;
    let end = (40 + payload_len).min(data.len());
    let mut next = *data.get(6)?;
    let mut at = 40;
    loop {
        let h = data.get(at..end)?;
        match next {
            0 | 43 | 60 => {
                next = *h.first()?;
                at += (*h.get(1)? as usize + 1) * 8;
            }
            51 => {
                next = *h.first()?;
                at += (*h.get(1)? as usize + 2) * 4;
            }
            44 => {
                let f = h.get(..8)?;
                let off_flags = u16::from_be_bytes([f[2], f[3]]);
                let id = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                return Some((
                    id,
                    f[0],
                    (off_flags >> 3) as usize * 8,
                    off_flags & 1 == 1,
                    &h[8..],
                ));
            }
            _ => return None,
        }
    }
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
    Ok(Decoded::Tcp(segment(src, dst, tcp, missing)))
}

/// The segment a TCP header slice describes (`missing`: payload bytes the snap length cut).
fn segment<'a>(
    src: IpAddr,
    dst: IpAddr,
    tcp: &etherparse::TcpSlice<'a>,
    missing: u32,
) -> TcpSegment<'a> {
    TcpSegment {
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
    }
}
