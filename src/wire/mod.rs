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
    // etherparse 0.19 reads the IPv6 Fragment header's offset and M flag from the wrong bits
    // (its issue #150, fixed in 0.20): a fragment at offset 32, 64 or 96 looks whole to it.
    let v6_fragment = matches!(packet.net, Some(LaxNetSlice::Ipv6(_)))
        && ipv6_fragment(data).is_some_and(|(_, _, offset, more, _)| offset != 0 || more);
    if payload.fragmented || v6_fragment {
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
        // The next extension type is read only with E set (TS 29.281 5.1): with only S or
        // PN set, the field is there but means nothing.
        let mut next = if h[0] & 0x04 != 0 { opt[3] } else { 0 };
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

#[cfg(test)]
mod tests {
    //! Every link type and encapsulation `decode` knows, on real bytes: frames cut from the
    //! bundled captures, and for the encapsulations no bundled capture has, the inner bytes of
    //! one of those frames wrapped in headers built here field by field (RFC or standard named
    //! at each). Neither etherparse nor chainsniff checks TCP/UDP checksums, so a segment moved
    //! under another IP header keeps its original checksum.

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// captures/lync-vip-phones.pcap, frame 37: phone 127.0.1.11:33237 sends the server
    /// 127.0.0.10:443 a fatal unknown_ca alert. Ethernet II (14 bytes), IPv4 (20), TCP with
    /// timestamps (32), then the 7-byte TLS record.
    const FRAME_37: &str = concat!(
        "001bd4ace010 0004f2c30011 0800",
        "4500003bef25400040064c827f00010b7f00000a",
        "81d501bb08e8fae842e9f4648018004fff4200000101080a927fecb227f77a5a",
        "15030300020230",
    );
    const PHONE_MAC: [u8; 6] = [0x00, 0x04, 0xf2, 0xc3, 0x00, 0x11];
    const SERVER_MAC: [u8; 6] = [0x00, 0x1b, 0xd4, 0xac, 0xe0, 0x10];
    const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x30];

    fn frame_37() -> Vec<u8> {
        hex(FRAME_37)
    }
    /// Frame 37's IPv4 packet (after the Ethernet header).
    fn ipv4_packet() -> Vec<u8> {
        frame_37()[14..].to_vec()
    }
    /// Frame 37's TCP segment (after the IPv4 header): 32 bytes of header and the alert.
    fn tcp_segment() -> Vec<u8> {
        frame_37()[34..].to_vec()
    }

    /// An IPv4 header (RFC 791) with a correct header checksum: version 4, IHL 5, TOS 0, total
    /// length, identification, flags and fragment offset, TTL 64, protocol, addresses.
    fn ipv4(
        proto: u8,
        id: u16,
        flags_offset: u16,
        src: [u8; 4],
        dst: [u8; 4],
        body: &[u8],
    ) -> Vec<u8> {
        let mut h = vec![0x45, 0x00];
        h.extend_from_slice(&(20 + body.len() as u16).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&flags_offset.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let sum: u32 = h
            .chunks(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
            .sum();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        cat(&[&h, body])
    }

    /// Tunnel endpoints (RFC 5737 documentation addresses).
    const OUTER_SRC: [u8; 4] = [192, 0, 2, 1];
    const OUTER_DST: [u8; 4] = [192, 0, 2, 2];

    /// An outer IPv4 header between the tunnel endpoints, DF set.
    fn outer_v4(proto: u8, body: &[u8]) -> Vec<u8> {
        ipv4(proto, 0x1234, 0x4000, OUTER_SRC, OUTER_DST, body)
    }

    const V6_CLIENT: &str = "2001:db8::11";
    const V6_SERVER: &str = "2001:db8::10";

    /// An IPv6 header (RFC 8200): version 6, traffic class 0, flow label 0, payload length,
    /// next header, hop limit 64, addresses.
    fn ipv6(next: u8, src: &str, dst: &str, body: &[u8]) -> Vec<u8> {
        let mut h = hex("60000000");
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
        h.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
        cat(&[&h, body])
    }

    /// A UDP header (RFC 768): ports, length, checksum 0 (none, allowed over IPv4).
    fn udp(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut h = sport.to_be_bytes().to_vec();
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        cat(&[&h, body])
    }

    /// An Ethernet II header between two locally administered MACs, then `body`.
    fn ether(et: u16, body: &[u8]) -> Vec<u8> {
        cat(&[&hex("020000000002 020000000001"), &et.to_be_bytes(), body])
    }

    /// Asserts that `d` is frame 37's segment, to the byte.
    #[track_caller]
    fn assert_alert_segment(d: Result<Decoded<'_>, DecodeError>) {
        assert_alert_segment_from(d, "127.0.1.11", "127.0.0.10");
    }

    #[track_caller]
    fn assert_alert_segment_from(d: Result<Decoded<'_>, DecodeError>, src: &str, dst: &str) {
        let Ok(Decoded::Tcp(s)) = d else {
            panic!("not a TCP segment: {d:?}");
        };
        assert_eq!(
            (s.src, s.dst, s.sport, s.dport),
            (src.parse().unwrap(), dst.parse().unwrap(), 33237, 443)
        );
        assert_eq!((s.seq, s.ack), (0x08e8_fae8, 0x42e9_f464));
        assert_eq!(
            s.flags,
            TcpFlags {
                ack: true,
                ..TcpFlags::default()
            }
        );
        assert_eq!((s.payload, s.missing), (&ALERT[..], 0));
        assert_eq!(s.seq_len(), 7);
    }

    #[track_caller]
    fn malformed(d: Result<Decoded<'_>, DecodeError>) -> String {
        match d {
            Err(DecodeError::Malformed(m)) => m,
            other => panic!("not malformed: {other:?}"),
        }
    }

    // --- Link layers -------------------------------------------------------------------------

    #[test]
    fn ethernet_ipv4_tcp_frame_from_the_lync_capture() {
        assert_alert_segment(decode(Linktype::ETHERNET, &frame_37()));
    }

    #[test]
    fn ethernet_header_gives_the_macs_and_ethertype() {
        let f = frame_37();
        let (dst, src, et, rest) = ethernet_addresses(&f).unwrap();
        assert_eq!((dst, src, et), (SERVER_MAC, PHONE_MAC, 0x0800));
        assert_eq!(rest, &f[14..]);
        let (src, et, rest) = ethernet_header(&f).unwrap();
        assert_eq!((src, et, rest.len()), (PHONE_MAC, 0x0800, 59));
    }

    #[test]
    fn syn_fin_and_rst_flags_and_their_sequence_space() {
        // captures/lync-vip-phones.pcap frame 22: 127.0.1.21:49800 -> 127.0.0.50:80, SYN,
        // seq 1000, a 20-byte TCP header without options.
        let syn = hex(
            "0050565000500014220ad0210800450000280000400040063b897f0001157f000032\
             c2880050000003e8000000005002ffffe9da0000",
        );
        let Ok(Decoded::Tcp(s)) = decode(Linktype::ETHERNET, &syn) else {
            panic!()
        };
        assert_eq!((s.sport, s.dport, s.seq, s.ack), (49800, 80, 1000, 0));
        assert_eq!(
            s.flags,
            TcpFlags {
                syn: true,
                ..TcpFlags::default()
            }
        );
        assert_eq!((s.payload.len(), s.seq_len()), (0, 1));
        // Frame 27: FIN+ACK, seq 1108, ack 5910.
        let fin = hex(
            "0050565000500014220ad0210800450000280000400040063b897f0001157f000032\
             c288005000000454000017165011ffffd2490000",
        );
        let Ok(Decoded::Tcp(s)) = decode(Linktype::ETHERNET, &fin) else {
            panic!()
        };
        assert_eq!((s.seq, s.ack, s.seq_len()), (1108, 5910, 1));
        assert!(s.flags.fin && s.flags.ack && !s.flags.syn && !s.flags.rst);
        // Frame 38: RST+ACK right after the alert, seq 149486319.
        let rst = hex(
            "001bd4ace0100004f2c30011080045000034ef26400040064c887f00010b7f00000a\
             81d501bb08e8faef42e9f4648014004fff3b00000101080a927fecb227f77a5a",
        );
        let Ok(Decoded::Tcp(s)) = decode(Linktype::ETHERNET, &rst) else {
            panic!()
        };
        assert_eq!((s.seq, s.seq_len()), (149_486_319, 0));
        assert!(s.flags.rst && s.flags.ack && !s.flags.fin);
    }

    #[test]
    fn a_frame_cut_by_the_snap_length_says_what_is_missing() {
        // Frame 37 as a 70-byte snap length would keep it: 4 of the 7 payload bytes.
        let f = frame_37();
        let Ok(Decoded::Tcp(s)) = decode(Linktype::ETHERNET, &f[..70]) else {
            panic!()
        };
        assert_eq!((s.payload, s.missing), (&ALERT[..4], 3));
        assert_eq!(s.seq_len(), 7, "the sequence space is the sent one");
    }

    #[test]
    fn an_ipv6_frame_cut_by_the_snap_length_says_what_is_missing() {
        // Frame 37's segment under IPv6 (with a Hop-by-Hop header), cut 5 bytes short.
        let hbh = hex("06 00 0104 00000000");
        let f = ipv6(0, V6_CLIENT, V6_SERVER, &cat(&[&hbh, &tcp_segment()]));
        let Ok(Decoded::Tcp(s)) = decode(Linktype::IPV6, &f[..f.len() - 5]) else {
            panic!()
        };
        assert_eq!((s.payload, s.missing, s.seq_len()), (&ALERT[..2], 5, 7));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // Frame 37 padded with 6 zero bytes after the IP packet (as a switch pads short
        // frames): the IP total length ends the segment.
        let f = cat(&[&frame_37(), &[0; 6]]);
        assert_alert_segment(decode(Linktype::ETHERNET, &f));
    }

    #[test]
    fn an_8021q_tag_is_skipped() {
        // IEEE 802.1Q: TPID 0x8100, TCI 0x0078 (PCP 0, DEI 0, VLAN 120), then the EtherType.
        let f = frame_37();
        let tagged = cat(&[&f[..12], &hex("8100 0078"), &f[12..]]);
        assert_alert_segment(decode(Linktype::ETHERNET, &tagged));
        let (_, src, et, rest) = ethernet_addresses(&tagged).unwrap();
        assert_eq!((src, et, rest.len()), (PHONE_MAC, 0x0800, 59));
    }

    #[test]
    fn qinq_tags_are_skipped() {
        // IEEE 802.1ad: S-tag TPID 0x88a8 TCI 0x000a (service VLAN 10), C-tag 0x8100 VLAN 120.
        let f = frame_37();
        let qinq = cat(&[&f[..12], &hex("88a8 000a 8100 0078"), &f[12..]]);
        assert_alert_segment(decode(Linktype::ETHERNET, &qinq));
        // The pre-standard QinQ TPID 0x9100 too.
        let old = cat(&[&f[..12], &hex("9100 000a 8100 0078"), &f[12..]]);
        assert_alert_segment(decode(Linktype::ETHERNET, &old));
    }

    #[test]
    fn linux_cooked_v1() {
        // SLL (LINKTYPE_LINUX_SLL 113): packet type 4 (sent by us), ARPHRD_ETHER 1, address
        // length 6, the phone's MAC padded to 8 bytes, protocol 0x0800.
        let f = cat(&[
            &hex("0004 0001 0006 0004f2c30011 0000 0800"),
            &ipv4_packet(),
        ]);
        assert_alert_segment(decode(Linktype::LINUX_SLL, &f));
    }

    #[test]
    fn linux_cooked_v2() {
        // SLL2 (LINKTYPE_LINUX_SLL2 276): protocol 0x0800, reserved 0, interface index 2,
        // ARPHRD_ETHER 1, packet type 4, address length 6, the MAC padded to 8 bytes.
        let f = cat(&[
            &hex("0800 0000 00000002 0001 04 06 0004f2c30011 0000"),
            &ipv4_packet(),
        ]);
        assert_alert_segment(decode(Linktype::LINUX_SLL2, &f));
        assert_eq!(
            malformed(decode(Linktype::LINUX_SLL2, &f[..19])),
            "Linux cooked v2 header truncated (19 of 20 bytes)"
        );
    }

    #[test]
    fn bsd_null_and_loopback_in_either_byte_order() {
        let ip = ipv4_packet();
        // LINKTYPE_NULL (0): AF_INET = 2 in the capturing host's byte order.
        for family in ["02000000", "00000002"] {
            let f = cat(&[&hex(family), &ip]);
            assert_alert_segment(decode(Linktype::NULL, &f));
        }
        // LINKTYPE_LOOP (108, OpenBSD): network byte order always.
        assert_alert_segment(decode(Linktype::LOOP, &cat(&[&hex("00000002"), &ip])));
        // AF_INET6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
        let v6 = ipv6(6, V6_CLIENT, V6_SERVER, &tcp_segment());
        for family in ["18000000", "1c000000", "1e000000", "0a000000"] {
            let f = cat(&[&hex(family), &v6]);
            assert_alert_segment_from(decode(Linktype::NULL, &f), V6_CLIENT, V6_SERVER);
        }
        // AF_APPLETALK (16): not IP.
        assert!(matches!(
            decode(Linktype::NULL, &cat(&[&hex("10000000"), &ip])),
            Ok(Decoded::Other)
        ));
        assert_eq!(
            malformed(decode(Linktype::NULL, &[2, 0])),
            "loopback header truncated (2 of 4 bytes)"
        );
    }

    #[test]
    fn raw_ip_link_types() {
        let ip = ipv4_packet();
        // LINKTYPE_RAW (101) and LINKTYPE_IPV4 (228).
        assert_alert_segment(decode(Linktype::RAW, &ip));
        assert_alert_segment(decode(Linktype::IPV4, &ip));
        // LINKTYPE_IPV6 (229).
        let v6 = ipv6(6, V6_CLIENT, V6_SERVER, &tcp_segment());
        assert_alert_segment_from(decode(Linktype::IPV6, &v6), V6_CLIENT, V6_SERVER);
    }

    #[test]
    fn ppp_with_and_without_hdlc_framing() {
        // LINKTYPE_PPP (9): protocol 0x0021 (IPv4); LINKTYPE_PPP_HDLC (50): address 0xff,
        // control 0x03 first. Protocol 0x0057 is IPv6.
        let ip = ipv4_packet();
        assert_alert_segment(decode(Linktype(9), &cat(&[&hex("0021"), &ip])));
        assert_alert_segment(decode(Linktype(50), &cat(&[&hex("ff03 0021"), &ip])));
        let v6 = ipv6(6, V6_CLIENT, V6_SERVER, &tcp_segment());
        assert_alert_segment_from(
            decode(Linktype(9), &cat(&[&hex("ff03 0057"), &v6])),
            V6_CLIENT,
            V6_SERVER,
        );
        // LCP (0xc021) is not IP.
        assert!(matches!(
            decode(Linktype(9), &hex("c021 01010004")),
            Ok(Decoded::Other)
        ));
    }

    /// An 802.11 QoS data frame from the phone to the server's AP (To DS): frame control
    /// 0x88 0x01, duration, BSSID, SA, DA, sequence control, QoS control, then LLC/SNAP
    /// (aa aa 03, OUI 000000) and the EtherType.
    fn wifi_to_ds(et: u16, body: &[u8]) -> Vec<u8> {
        cat(&[
            &hex("8801 3a01"),
            &SERVER_MAC,
            &PHONE_MAC,
            &SERVER_MAC,
            &hex("1000 0700 aaaa03 000000"),
            &et.to_be_bytes(),
            body,
        ])
    }

    #[test]
    fn wifi_data_frames_with_and_without_radiotap() {
        // LINKTYPE_IEEE802_11 (105).
        let f = wifi_to_ds(0x0800, &ipv4_packet());
        assert_alert_segment(decode(Linktype(105), &f));
        // LINKTYPE_IEEE802_11_RADIOTAP (127): version 0, pad, length 8 (little-endian), no
        // fields present.
        let r = cat(&[&hex("00 00 0800 00000000"), &f]);
        assert_alert_segment(decode(Linktype(127), &r));
        // EAPOL over 802.11 (captures/eapol-wired-leaf-only.pcap frame 9's EAPOL bytes):
        // marked as such.
        let e = wifi_to_ds(0x888e, &hex("0200000d02a1000d0d0015030300020230"));
        let Ok(Decoded::Eapol(x)) = decode(Linktype(105), &e) else {
            panic!()
        };
        assert_eq!(
            (x.src, x.dst, x.wifi, x.body.len()),
            (PHONE_MAC, SERVER_MAC, true, 13)
        );
        // A management frame (a beacon, type 0) is not data.
        let beacon = cat(&[
            &hex("8000 0000 ffffffffffff"),
            &SERVER_MAC,
            &SERVER_MAC,
            &hex("0000"),
        ]);
        assert!(matches!(decode(Linktype(105), &beacon), Ok(Decoded::Other)));
    }

    #[test]
    fn an_unknown_link_type_is_an_error() {
        // LINKTYPE_USER0 (147).
        assert_eq!(
            decode(Linktype(147), &frame_37()).unwrap_err(),
            DecodeError::UnsupportedLinktype(147)
        );
        assert_eq!(
            DecodeError::UnsupportedLinktype(147).to_string(),
            "unsupported link type 147"
        );
    }

    // --- Network layer -----------------------------------------------------------------------

    #[test]
    fn ipv6_tcp() {
        let f = ether(0x86dd, &ipv6(6, V6_CLIENT, V6_SERVER, &tcp_segment()));
        assert_alert_segment_from(decode(Linktype::ETHERNET, &f), V6_CLIENT, V6_SERVER);
    }

    #[test]
    fn ipv6_extension_headers_before_tcp() {
        // A Hop-by-Hop Options header (next header 6, length 0: 8 bytes, PadN of 4) first.
        let hbh = hex("06 00 0104 00000000");
        let f = ipv6(0, V6_CLIENT, V6_SERVER, &cat(&[&hbh, &tcp_segment()]));
        assert_alert_segment_from(decode(Linktype::RAW, &f), V6_CLIENT, V6_SERVER);
    }

    #[test]
    fn udp_over_ipv4_from_the_dtls_capture() {
        // captures/dtls-openssl.pcap frame 11: the client's alert record, 127.0.0.10:55823 ->
        // 127.0.0.10:4433 (zero MACs: a loopback capture written as Ethernet).
        let f = hex(
            "000000000000 000000000000 0800 4500002b6e2140004011ce8c7f00000a7f00000a\
             da0f11510017fe3c 15fefd000000000000000200020230",
        );
        let Ok(Decoded::Udp(u)) = decode(Linktype::ETHERNET, &f) else {
            panic!()
        };
        let lo: IpAddr = "127.0.0.10".parse().unwrap();
        assert_eq!((u.src, u.dst, u.sport, u.dport), (lo, lo, 55823, 4433));
        assert_eq!(u.payload, hex("15fefd000000000000000200020230"));
    }

    #[test]
    fn arp_and_icmp_are_other() {
        // ARP (EtherType 0x0806): a request, who has 127.0.0.10.
        let arp = ether(
            0x0806,
            &hex("0001 0800 06 04 0001 0004f2c30011 7f00010b 000000000000 7f00000a"),
        );
        assert!(matches!(
            decode(Linktype::ETHERNET, &arp),
            Ok(Decoded::Other)
        ));
        // ICMP echo request (protocol 1).
        let icmp = ipv4(1, 1, 0, OUTER_SRC, OUTER_DST, &hex("0800f7ff00000000"));
        assert!(matches!(decode(Linktype::RAW, &icmp), Ok(Decoded::Other)));
    }

    #[test]
    fn transport_of_a_reassembled_packet() {
        let (c, s): (IpAddr, IpAddr) =
            ("127.0.1.11".parse().unwrap(), "127.0.0.10".parse().unwrap());
        assert_alert_segment(transport(c, s, 6, &tcp_segment()));
        let dgram = udp(55823, 4433, &hex("15fefd000000000000000200020230"));
        let Ok(Decoded::Udp(u)) = transport(c, s, 17, &dgram) else {
            panic!()
        };
        assert_eq!((u.sport, u.dport, u.payload.len()), (55823, 4433, 15));
        assert!(matches!(transport(c, s, 1, &dgram), Ok(Decoded::Other)));
        assert!(malformed(transport(c, s, 6, &tcp_segment()[..19])).starts_with("TCP header: "));
        assert!(malformed(transport(c, s, 17, &dgram[..7])).starts_with("UDP header: "));
    }

    // --- Fragments ---------------------------------------------------------------------------

    /// captures/dtls-openssl.pcap frame 2: the server's HelloVerifyRequest, an IPv4 packet of
    /// 76 bytes (UDP 4433 -> 55823, 48 bytes of DTLS).
    const HVR_IP: &str = concat!(
        "4500004c0000400040113c8d7f00000a7f00000a",
        "1151da0f0038fe5d",
        "16feff00000000000000000023030000170000000000000017feff148153373fc9a33a9fd09cceee87534ca69d44ffaf",
    );

    #[test]
    fn ipv4_fragments_come_out_as_fragments() {
        // Frame 2's UDP datagram (56 bytes) split in two, identification 0x6e1f (the original
        // went whole, with DF): 32 bytes with MF set, then 24 bytes at offset 32 (fragment
        // offset field 4, in units of 8 bytes).
        let udp_bytes = hex(HVR_IP)[20..].to_vec();
        let lo = [127, 0, 0, 10];
        let first = ipv4(17, 0x6e1f, 0x2000, lo, lo, &udp_bytes[..32]);
        let second = ipv4(17, 0x6e1f, 4, lo, lo, &udp_bytes[32..]);
        let Ok(Decoded::Fragment(a)) = decode(Linktype::RAW, &first) else {
            panic!()
        };
        let Ok(Decoded::Fragment(b)) = decode(Linktype::RAW, &second) else {
            panic!()
        };
        let lo: IpAddr = Ipv4Addr::from(lo).into();
        assert_eq!((a.src, a.dst, a.id, a.ip_number), (lo, lo, 0x6e1f, 17));
        assert_eq!((a.offset, a.more, a.payload), (0, true, &udp_bytes[..32]));
        assert_eq!((b.offset, b.more, b.payload), (32, false, &udp_bytes[32..]));
        // Put together, the payload is the datagram again.
        let whole = cat(&[a.payload, b.payload]);
        let Ok(Decoded::Udp(u)) = transport(a.src, a.dst, a.ip_number, &whole) else {
            panic!()
        };
        assert_eq!((u.sport, u.dport, u.payload.len()), (4433, 55823, 48));
    }

    #[test]
    fn ipv6_fragments_come_out_as_fragments() {
        // RFC 8200 4.5 Fragment header: next header 17, reserved, offset 3 (24 bytes) with
        // M = 0 (0x0018), identification 0xdeadbeef; behind a Hop-by-Hop header (8 bytes).
        let udp_bytes = hex(HVR_IP)[20..].to_vec();
        let hbh = hex("2c 00 0104 00000000");
        let frag = cat(&[&hbh, &hex("11 00 0018 deadbeef"), &udp_bytes[24..]]);
        let f = ipv6(0, V6_SERVER, V6_CLIENT, &frag);
        let Ok(Decoded::Fragment(x)) = decode(Linktype::IPV6, &f) else {
            panic!()
        };
        assert_eq!(
            (x.src, x.dst),
            (V6_SERVER.parse().unwrap(), V6_CLIENT.parse().unwrap())
        );
        assert_eq!(
            (x.id, x.ip_number, x.offset, x.more),
            (0xdead_beef, 17, 24, false)
        );
        assert_eq!(x.payload, &udp_bytes[24..]);
        // The first fragment, directly after the IPv6 header: offset 0, M = 1.
        let frag = cat(&[&hex("11 00 0001 deadbeef"), &udp_bytes[..24]]);
        let f = ipv6(44, V6_SERVER, V6_CLIENT, &frag);
        let Ok(Decoded::Fragment(x)) = decode(Linktype::IPV6, &f) else {
            panic!()
        };
        assert_eq!((x.offset, x.more, x.payload), (0, true, &udp_bytes[..24]));
    }

    #[test]
    fn ipv6_fragments_at_offsets_etherparse_misreads() {
        // Offset 4 (32 bytes), M = 0: 0x0020. etherparse 0.19 masks byte 3 with 0b1001_1111
        // and sees no fragment; read as UDP, its first bytes would be taken for ports.
        let udp_bytes = hex(HVR_IP)[20..].to_vec();
        for (field, offset, more) in [("0020", 32, false), ("0041", 64, true), ("0060", 96, false)]
        {
            let frag = cat(&[
                &hex("11 00"),
                &hex(field),
                &hex("deadbeef"),
                &udp_bytes[24..],
            ]);
            let f = ipv6(44, V6_SERVER, V6_CLIENT, &frag);
            let Ok(Decoded::Fragment(x)) = decode(Linktype::IPV6, &f) else {
                panic!("{field}: {:?}", decode(Linktype::IPV6, &f))
            };
            assert_eq!(
                (x.id, x.ip_number, x.offset, x.more),
                (0xdead_beef, 17, offset, more)
            );
            assert_eq!(x.payload, &udp_bytes[24..]);
        }
        // A Fragment header saying offset 0 and M = 0 (an atomic fragment, RFC 6946) is whole.
        let frag = cat(&[&hex("11 00 0000 deadbeef"), &udp_bytes]);
        let f = ipv6(44, V6_SERVER, V6_CLIENT, &frag);
        let Ok(Decoded::Udp(u)) = decode(Linktype::IPV6, &f) else {
            panic!("{:?}", decode(Linktype::IPV6, &f))
        };
        assert_eq!((u.sport, u.dport, u.payload.len()), (4433, 55823, 48));
    }

    // --- Tunnels -----------------------------------------------------------------------------

    #[test]
    fn pppoe_session() {
        // RFC 2516: version 1 / type 1 (0x11), code 0 (session data), session id 0x1234,
        // length (PPP protocol + packet = 61), PPP protocol 0x0021.
        let f = ether(
            0x8864,
            &cat(&[&hex("11 00 1234 003d 0021"), &ipv4_packet()]),
        );
        assert_alert_segment(decode(Linktype::ETHERNET, &f));
        // PPPoE discovery (0x8863) is not a session.
        let padi = ether(0x8863, &hex("1109 0000 0004 01010000"));
        assert!(matches!(
            decode(Linktype::ETHERNET, &padi),
            Ok(Decoded::Other)
        ));
        let cut = ether(0x8864, &hex("1100 1234"));
        assert_eq!(
            malformed(decode(Linktype::ETHERNET, &cut)),
            "PPPoE header truncated (4 of 6 bytes)"
        );
    }

    #[test]
    fn mpls_label_stack() {
        // RFC 3032 label stack entries: label (20 bits), TC (3), S (1), TTL (8).
        // Label 16 (S = 0, TTL 64) = 00010040, label 17 (S = 1, TTL 64) = 00011140.
        let f = ether(0x8847, &cat(&[&hex("00010040 00011140"), &ipv4_packet()]));
        assert_alert_segment(decode(Linktype::ETHERNET, &f));
        // IPv6 under one label, on the multicast EtherType 0x8848.
        let v6 = ipv6(6, V6_CLIENT, V6_SERVER, &tcp_segment());
        let f = ether(0x8848, &cat(&[&hex("00011140"), &v6]));
        assert_alert_segment_from(decode(Linktype::ETHERNET, &f), V6_CLIENT, V6_SERVER);
        // A pseudowire control word (first nibble 0) after the stack: not IP.
        let pw = ether(0x8847, &cat(&[&hex("00011140 00000000"), &frame_37()]));
        assert!(matches!(
            decode(Linktype::ETHERNET, &pw),
            Ok(Decoded::Other)
        ));
        // No bottom of stack before the frame ends.
        let cut = ether(0x8847, &hex("00010040 000100"));
        assert_eq!(
            malformed(decode(Linktype::ETHERNET, &cut)),
            "MPLS label header truncated (3 of 4 bytes)"
        );
    }

    #[test]
    fn ip_in_ip_all_four_ways() {
        let v4 = ipv4_packet();
        let v6 = ipv6(6, V6_CLIENT, V6_SERVER, &tcp_segment());
        // 4in4 (RFC 2003, protocol 4) and 6in4 (RFC 4213, protocol 41).
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(4, &v4)));
        assert_alert_segment_from(
            decode(Linktype::RAW, &outer_v4(41, &v6)),
            V6_CLIENT,
            V6_SERVER,
        );
        // 4in6 and 6in6 (RFC 2473, next header 4 and 41).
        let outer6 = |next, body: &[u8]| ipv6(next, "2001:db8:ffff::1", "2001:db8:ffff::2", body);
        assert_alert_segment(decode(Linktype::IPV6, &outer6(4, &v4)));
        assert_alert_segment_from(
            decode(Linktype::IPV6, &outer6(41, &v6)),
            V6_CLIENT,
            V6_SERVER,
        );
    }

    #[test]
    fn gre_plain_with_key_sequence_and_checksum() {
        let v4 = ipv4_packet();
        // RFC 2784: flags and version 0, protocol 0x0800.
        assert_alert_segment(decode(
            Linktype::RAW,
            &outer_v4(47, &cat(&[&hex("0000 0800"), &v4])),
        ));
        // RFC 2890: K and S set (0x3000): key 0x0000002a, sequence 7.
        let gre = hex("3000 0800 0000002a 00000007");
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &cat(&[&gre, &v4]))));
        // C, K and S set (0xb000): checksum + reserved first.
        let gre = hex("b000 0800 00000000 0000002a 00000007");
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &cat(&[&gre, &v4]))));
        // Transparent Ethernet bridging (0x6558): the whole of frame 37.
        let gre = hex("0000 6558");
        assert_alert_segment(decode(
            Linktype::RAW,
            &outer_v4(47, &cat(&[&gre, &frame_37()])),
        ));
        // The key announced but cut off.
        let cut = outer_v4(47, &hex("3000 0800 0000"));
        assert_eq!(
            malformed(decode(Linktype::RAW, &cut)),
            "GRE header truncated (6 of 12 bytes)"
        );
    }

    #[test]
    fn pptp_enhanced_gre() {
        // RFC 2637 4.1: K and S set, A set (0x3081: version 1), protocol 0x880b, key = payload
        // length 63 and call id 0x0005, sequence 9, acknowledgment 8; then PPP in HDLC-like
        // framing (0xff 0x03), protocol 0x0021.
        let ppp = cat(&[&hex("ff03 0021"), &ipv4_packet()]);
        let gre = cat(&[&hex("3081 880b 003f 0005 00000009 00000008"), &ppp]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &gre)));
    }

    #[test]
    fn erspan_types_one_two_and_three() {
        let f = frame_37();
        // Type I: GRE protocol 0x88be without the sequence bit, the mirrored frame directly.
        let t1 = cat(&[&hex("0000 88be"), &f]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &t1)));
        // Type II: S set, sequence 1; ERSPAN header: version 1 + VLAN 0 (0x1000), COS 0, En 3,
        // T 0, session 0x005 (0x1805), reserved + index 0.
        let t2 = cat(&[&hex("1000 88be 00000001"), &hex("1000 1805 00000000"), &f]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &t2)));
        // Type III (protocol 0x22eb): version 2 (0x2000), session 5 (0x0005), timestamp,
        // SGT 0, P/FT/HW/D/Gra/O = 0: 12 bytes.
        let t3 = cat(&[
            &hex("1000 22eb 00000001"),
            &hex("2000 0005 01020304 0000 0000"),
            &f,
        ]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &t3)));
        // With O set, an 8-byte platform-specific subheader follows.
        let t3o = cat(&[
            &hex("1000 22eb 00000001"),
            &hex("2000 0005 01020304 0000 0001"),
            &hex("0800000000000000"),
            &f,
        ]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(47, &t3o)));
        let cut = outer_v4(47, &hex("1000 22eb 00000001 2000 0005"));
        assert_eq!(
            malformed(decode(Linktype::RAW, &cut)),
            "ERSPAN III header truncated (4 of 12 bytes)"
        );
    }

    #[test]
    fn vxlan() {
        // RFC 7348: flags 0x08 (VNI valid), reserved, VNI 100 (0x000064), reserved; then
        // frame 37, in UDP to port 4789.
        let vx = udp(49152, 4789, &cat(&[&hex("08000000 00006400"), &frame_37()]));
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &vx)));
        // The same from the port (a reply).
        let vx = udp(4789, 49152, &cat(&[&hex("08000000 00006400"), &frame_37()]));
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &vx)));
        let cut = udp(49152, 4789, &hex("08000000"));
        assert_eq!(
            malformed(decode(Linktype::RAW, &outer_v4(17, &cut))),
            "VXLAN header truncated (4 of 8 bytes)"
        );
    }

    #[test]
    fn geneve_with_and_without_options() {
        // RFC 8926: version 0, option length 0, flags 0, protocol 0x6558, VNI 100, reserved.
        let g = cat(&[&hex("0000 6558 00006400"), &frame_37()]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &udp(49152, 6081, &g))));
        // Option length 2 (8 bytes): class 0x0103, type 0x80, length 1 (4 bytes of data);
        // protocol 0x0800 (IPv4 directly).
        let g = cat(&[
            &hex("0200 0800 00006400"),
            &hex("0103 80 01 0a0b0c0d"),
            &ipv4_packet(),
        ]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &udp(49152, 6081, &g))));
        // Options announced but missing.
        let g = hex("0200 0800 00006400 0103");
        assert_eq!(
            malformed(decode(Linktype::RAW, &outer_v4(17, &udp(49152, 6081, &g)))),
            "Geneve options header truncated (10 of 16 bytes)"
        );
    }

    #[test]
    fn gtp_u_with_and_without_extension_headers() {
        let v4 = ipv4_packet();
        // 3GPP TS 29.281: version 1, PT 1, no E/S/PN (0x30), G-PDU (0xff), length 59,
        // TEID 0x00000001.
        let g = cat(&[&hex("30ff 003b 00000001"), &v4]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &udp(2152, 2152, &g))));
        // E set (0x34): sequence 0, N-PDU 0, next extension 0x85 (PDU session container):
        // length 1 (4 bytes), content 0x0001, next extension 0.
        let g = cat(&[
            &hex("34ff 0043 00000001 0000 00 85"),
            &hex("01 0001 00"),
            &v4,
        ]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &udp(2152, 2152, &g))));
        // An Echo Request (type 1) carries no user data.
        let echo = hex("3201 0004 00000000 0001 0000");
        assert!(matches!(
            decode(Linktype::RAW, &outer_v4(17, &udp(2152, 2152, &echo))),
            Ok(Decoded::Other)
        ));
        // An extension of length 0 would never end.
        let bad = cat(&[
            &hex("34ff 0043 00000001 0000 00 85"),
            &hex("00 0001 00"),
            &v4,
        ]);
        assert_eq!(
            malformed(decode(Linktype::RAW, &outer_v4(17, &udp(2152, 2152, &bad)))),
            "GTP-U extension of length 0"
        );
    }

    #[test]
    fn gtp_u_next_extension_type_counts_only_with_e_set() {
        // S set, E not (0x32): sequence 7, N-PDU 0, and a stray 0x85 where the next extension
        // type would be; the IP packet follows directly.
        let g = cat(&[&hex("32ff 003f 00000001 0007 00 85"), &ipv4_packet()]);
        assert_alert_segment(decode(Linktype::RAW, &outer_v4(17, &udp(2152, 2152, &g))));
    }

    #[test]
    fn ipv6_outer_tunnels_too() {
        // VXLAN over IPv6 (next header 17).
        let vx = udp(49152, 4789, &cat(&[&hex("08000000 00006400"), &frame_37()]));
        let f = ipv6(17, "2001:db8:ffff::1", "2001:db8:ffff::2", &vx);
        assert_alert_segment(decode(Linktype::IPV6, &f));
        // GRE over IPv6 (next header 47).
        let gre = cat(&[&hex("0000 0800"), &ipv4_packet()]);
        let f = ipv6(47, "2001:db8:ffff::1", "2001:db8:ffff::2", &gre);
        assert_alert_segment(decode(Linktype::IPV6, &f));
    }

    // --- Errors ------------------------------------------------------------------------------

    #[test]
    fn truncated_headers_are_errors_not_panics() {
        let f = frame_37();
        assert_eq!(
            malformed(decode(Linktype::ETHERNET, &f[..10])),
            "Ethernet header truncated (10 of 14 bytes)"
        );
        let tagged = cat(&[&f[..12], &hex("8100 00")]);
        assert_eq!(
            malformed(decode(Linktype::ETHERNET, &tagged)),
            "VLAN tag header truncated (1 of 4 bytes)"
        );
        assert_eq!(
            malformed(decode(Linktype::LINUX_SLL, &f[..15])),
            "Linux cooked header truncated (15 of 16 bytes)"
        );
        // Inside the IPv4 header, and inside the TCP header.
        assert!(malformed(decode(Linktype::ETHERNET, &f[..30])).starts_with("IP header: "));
        assert!(malformed(decode(Linktype::ETHERNET, &f[..44])).starts_with("TCP header: "));
        // Every prefix of every frame above: an answer, never a panic.
        for n in 0..f.len() {
            let _ = decode(Linktype::ETHERNET, &f[..n]);
        }
    }

    #[test]
    fn every_prefix_of_a_tunnelled_frame_is_an_answer() {
        let g = cat(&[
            &hex("34ff 0043 00000001 0000 00 85"),
            &hex("01 0001 00"),
            &ipv4_packet(),
        ]);
        let frames = [
            outer_v4(17, &udp(2152, 2152, &g)),
            outer_v4(
                17,
                &udp(
                    1,
                    6081,
                    &cat(&[&hex("0200 6558 00006400 0103 80 01 0a0b0c0d"), &frame_37()]),
                ),
            ),
            outer_v4(
                47,
                &cat(&[
                    &hex("1000 22eb 00000001 2000 0005 01020304 0000 0001 0800000000000000"),
                    &frame_37(),
                ]),
            ),
            outer_v4(
                47,
                &cat(&[
                    &hex("3081 880b 003f 0005 00000009 00000008 ff03 0021"),
                    &ipv4_packet(),
                ]),
            ),
        ];
        for f in frames {
            assert!(matches!(decode(Linktype::RAW, &f), Ok(Decoded::Tcp(_))));
            for n in 0..f.len() {
                let _ = decode(Linktype::RAW, &f[..n]);
            }
        }
    }

    #[test]
    fn nesting_stops_after_eight_encapsulations() {
        // Frame 37's packet in 8 IP-in-IP headers: decoded; in 9: given up.
        let mut p = ipv4_packet();
        for _ in 0..MAX_DEPTH {
            p = outer_v4(4, &p);
        }
        assert_alert_segment(decode(Linktype::RAW, &p));
        let p = outer_v4(4, &p);
        assert_eq!(
            malformed(decode(Linktype::RAW, &p)),
            "more than 8 nested encapsulations"
        );
        // Ethernet in GRE in Ethernet... (transparent bridging) is counted the same way.
        let mut f = frame_37();
        for _ in 0..MAX_DEPTH + 1 {
            f = ether(0x0800, &outer_v4(47, &cat(&[&hex("0000 6558"), &f])));
        }
        assert_eq!(
            malformed(decode(Linktype::ETHERNET, &f)),
            "more than 8 nested encapsulations"
        );
    }
}
