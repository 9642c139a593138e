//! TLS inside EAP (802.1X): EAP-TLS (RFC 5216, RFC 9190), PEAP, EAP-TTLS (RFC 5281) and TEAP
//! (RFC 7170) carry TLS records in EAP Requests (from the authenticator: the server) and EAP
//! Responses (from the supplicant: the client). Each direction's EAP-TLS fragments are
//! reassembled (flags L: a 4-byte TLS message length follows, M: more fragments, S: start; an
//! empty message acknowledges a fragment) and the TLS bytes of each complete message are handed
//! to a [`TlsConn`], as TCP hands it stream bytes, at the frame of the last fragment (where
//! Wireshark shows the reassembled message). The conversation ends with EAP-Success or
//! EAP-Failure (over RADIUS: Access-Accept or Access-Reject), recorded for the client's
//! reaction. EAPOL and RADIUS conversations are followed in [`crate::flow::eap`].

use serde::{Deserialize, Serialize};

use crate::flow::{ConnInfo, Dir, End, StreamHandler};
use crate::model::{At, Mac, Protocol, mac_string};
use crate::tls::handshake::{EventKind, Handshake, TlsConn};
use crate::wire::eapol::{EapPacket, code, method};

/// EAP-TLS flags (RFC 5216 3.1; TEAP's O, RFC 7170 4.1).
pub mod flags {
    /// L: a TLS Message Length field follows the flags.
    pub const LENGTH: u8 = 0x80;
    /// M: more fragments follow.
    pub const MORE: u8 = 0x40;
    /// S: the server starts the TLS conversation.
    pub const START: u8 = 0x20;
    /// TEAP: an Outer TLV Length follows the TLS Message Length.
    pub const OUTER_TLVS: u8 = 0x10;
}

/// Most bytes of an EAP identity kept (RADIUS User-Name holds at most 253).
const MAX_IDENTITY: usize = 253;

/// How an EAP conversation reached the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EapTransport {
    /// EAPOL frames on the supplicant's link (wired 802.1X, Wi-Fi).
    #[default]
    Eapol,
    /// RADIUS between the authenticator (NAS) and the authentication server.
    Radius,
}

/// What an EAP handshake adds to a [`Handshake`]: the transport and the supplicant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EapInfo {
    /// What carried the EAP packets (EAPOL, RADIUS, 802.11).
    pub transport: EapTransport,
    /// The supplicant's MAC: the EAPOL source, or the RADIUS Calling-Station-Id.
    pub client_mac: Option<Mac>,
    /// EAPOL: the authenticator's MAC.
    pub server_mac: Option<Mac>,
    /// The identity the supplicant gave: EAP Response/Identity, else RADIUS User-Name.
    pub identity: Option<String>,
    /// EAPOL: how the conversation's frames were addressed so far ([`addressing`] bits), for its
    /// display filter.
    pub addressing: u8,
}

/// How the frames of an EAPOL conversation were addressed.
pub mod addressing {
    /// Between the supplicant and the authenticator, either way.
    pub const UNICAST: u8 = 0x01;
    /// From either to a group address (the PAE group address `01:80:c2:00:00:03` on wired
    /// ports).
    pub const GROUP: u8 = 0x02;
    /// In 802.11 frames: Wireshark names their addresses `wlan.sa`, `wlan.da`, `wlan.addr`.
    pub const WIFI: u8 = 0x04;
}

impl Handshake {
    /// Which of Wireshark's stream indices `stream` is: `tcp`, `udp` (DTLS, QUIC, RADIUS), or
    /// `eapol`, chainsniff's own numbering of EAPOL conversations (Wireshark has none) in order
    /// of their first frame.
    pub fn transport(&self) -> &'static str {
        match self.eap.as_deref().map(|e| e.transport) {
            Some(EapTransport::Eapol) => "eapol",
            Some(EapTransport::Radius) => "udp",
            None if self.protocol == Protocol::Tls => "tcp",
            None => "udp",
        }
    }

    /// EAP: the supplicant's MAC (`00:04:f2:00:00:11`).
    pub fn eap_client_mac(&self) -> Option<String> {
        self.eap.as_ref()?.client_mac.as_ref().map(mac_string)
    }

    /// EAPOL: the authenticator's MAC.
    pub fn eap_server_mac(&self) -> Option<String> {
        self.eap.as_ref()?.server_mac.as_ref().map(mac_string)
    }

    /// EAP: the identity the supplicant gave.
    pub fn eap_identity(&self) -> Option<String> {
        self.eap.as_ref()?.identity.clone()
    }

    /// The Wireshark display filter that shows this handshake's conversation: `tcp.stream == 3`;
    /// for EAPOL the frames between the two MACs and those either sent to a group address.
    /// The display filter of this connection in part `part` of a joined capture (its stream
    /// index there), if it was seen there.
    pub fn display_filter_in(&self, part: u32) -> Option<String> {
        match self.eap.as_deref() {
            Some(EapInfo {
                transport: EapTransport::Eapol,
                ..
            }) => Some(self.display_filter()),
            _ => self
                .stream_in(part)
                .map(|s| format!("{}.stream == {s}", self.transport())),
        }
    }

    /// The Wireshark display filter that shows this conversation.
    pub fn display_filter(&self) -> String {
        match self.eap.as_deref() {
            Some(EapInfo {
                transport: EapTransport::Eapol,
                client_mac: Some(s),
                server_mac: Some(a),
                addressing,
                ..
            }) => eapol_filter(s, a, *addressing),
            _ => format!("{}.stream == {}", self.transport(), self.stream),
        }
    }
}

/// The display filter of the EAPOL conversation of supplicant `s` and authenticator `a`.
/// `eth.dst.ig == 1` is a group destination: on a wired port both ends send to the PAE group
/// address, so their frames are told apart by source only.
pub fn eapol_filter(s: &Mac, a: &Mac, how: u8) -> String {
    let (s, a) = (mac_string(s), mac_string(a));
    if how & addressing::WIFI != 0 {
        // 802.11: `wlan.addr` is any of the frame's addresses (the BSSID too); EAPOL between a
        // station and its access point is unicast.
        return format!("eapol && wlan.addr == {s} && wlan.addr == {a}");
    }
    let unicast = format!("eth.addr == {s} && eth.addr == {a}");
    let group = format!("eth.dst.ig == 1 && (eth.src == {s} || eth.src == {a})");
    match (how & addressing::UNICAST != 0, how & addressing::GROUP != 0) {
        (true, false) => format!("eapol && {unicast}"),
        (false, true) => format!("eapol && {group}"),
        _ => format!("eapol && (({unicast}) || ({group}))"),
    }
}

/// The protocol of an EAP method type that carries TLS.
pub fn tls_method(t: u8) -> Option<Protocol> {
    match t {
        method::EAP_TLS => Some(Protocol::EapTls),
        method::EAP_TTLS => Some(Protocol::EapTtls),
        method::PEAP => Some(Protocol::Peap),
        method::TEAP => Some(Protocol::Teap),
        _ => None,
    }
}

/// The header of an EAP-TLS-family message: flags, the TLS Message Length (flag L), and the
/// TLS data (TEAP's outer TLVs after it left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EapTlsHeader<'a> {
    /// The EAP-TLS flags byte.
    pub flags: u8,
    /// The TLS Message Length, when the L flag is set.
    pub length: Option<u32>,
    /// This fragment's TLS bytes.
    pub tls: &'a [u8],
}

impl EapTlsHeader<'_> {
    /// More fragments follow (the M flag).
    pub fn more(&self) -> bool {
        self.flags & flags::MORE != 0
    }
    /// The server starts the conversation (the S flag).
    pub fn start(&self) -> bool {
        self.flags & flags::START != 0
    }
}

/// Splits the data of an EAP-TLS, PEAP, EAP-TTLS or TEAP message (after the EAP type).
pub fn eap_tls_header(protocol: Protocol, data: &[u8]) -> Option<EapTlsHeader<'_>> {
    let (&f, mut rest) = data.split_first()?;
    let mut length = None;
    if f & flags::LENGTH != 0 {
        let l = rest.get(..4)?;
        length = Some(u32::from_be_bytes([l[0], l[1], l[2], l[3]]));
        rest = &rest[4..];
    }
    if protocol == Protocol::Teap && f & flags::OUTER_TLVS != 0 {
        let l = rest.get(..4)?;
        let outer = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        rest = &rest[4..];
        rest = &rest[..rest.len().checked_sub(outer)?];
    }
    Some(EapTlsHeader {
        flags: f,
        length,
        tls: rest,
    })
}

/// One direction's EAP-TLS message being reassembled.
#[derive(Default)]
struct Reassembly {
    buf: Vec<u8>,
    /// The TLS Message Length of the first fragment.
    declared: Option<u32>,
    /// Too large to hold (`--max-handshake-bytes`): the fragments go on to the TLS stage as
    /// they come, until the last.
    streaming: bool,
    /// The last fragment held.
    at: Option<At>,
}

/// One EAP authentication (from Identity, or from the method's Start, to Success or Failure)
/// as a TLS handshake. The client's direction is [`Dir::Forward`] (EAP Responses).
pub struct EapSession {
    info: ConnInfo,
    max_handshake: usize,
    tls: Option<TlsConn>,
    /// The transport and the supplicant, filled by the conversation that owns the session.
    pub info_eap: EapInfo,
    method: Option<Protocol>,
    reasm: [Reassembly; 2],
    /// The identifier of the last Request (server) and Response (client) handled: a packet
    /// with the same one again is a retransmission.
    last_id: [Option<u8>; 2],
    ended: bool,
}

impl EapSession {
    /// A session of the conversation `info` (its stream, client and server addresses, first
    /// packet); EAP-TLS messages up to `max_handshake` bytes are reassembled.
    pub fn new(info: ConnInfo, transport: EapTransport, max_handshake: usize) -> Self {
        EapSession {
            info,
            max_handshake,
            tls: None,
            info_eap: EapInfo {
                transport,
                ..EapInfo::default()
            },
            method: None,
            reasm: Default::default(),
            last_id: [None, None],
            ended: false,
        }
    }

    /// True when `p` opens another authentication (an Identity exchange, or the method's Start)
    /// after this one carried TLS: the owner then finishes this session and starts a new one.
    pub fn begins_anew(&self, p: &EapPacket<'_>) -> bool {
        if self.tls.is_none() {
            return false;
        }
        match (p.code, p.method) {
            (code::REQUEST | code::RESPONSE, Some(method::IDENTITY)) => {
                self.last_id[dir_of(p.code).index()] != Some(p.id)
            }
            (code::REQUEST, Some(t)) => {
                self.last_id[Dir::Backward.index()] != Some(p.id)
                    && tls_method(t)
                        .and_then(|m| eap_tls_header(m, p.data))
                        .is_some_and(|h| h.start())
            }
            _ => false,
        }
    }

    /// True once EAP-Success or EAP-Failure ended the session.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// True once TLS was seen.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// One EAP packet of the conversation, at `at`.
    pub fn packet(&mut self, at: At, p: &EapPacket<'_>) {
        match p.code {
            code::REQUEST | code::RESPONSE => {
                let dir = dir_of(p.code);
                if self.last_id[dir.index()] == Some(p.id) {
                    return; // retransmitted
                }
                self.last_id[dir.index()] = Some(p.id);
                match p.method {
                    Some(method::IDENTITY) if p.code == code::RESPONSE => {
                        let id = &p.data[..p.data.len().min(MAX_IDENTITY)];
                        self.info_eap.identity = Some(String::from_utf8_lossy(id).into_owned());
                    }
                    Some(t) => {
                        if let Some(protocol) = tls_method(t) {
                            self.tls_message(dir, at, protocol, p.data);
                        }
                    }
                    None => {}
                }
            }
            code::SUCCESS => self.end(at, EventKind::EapSuccess),
            code::FAILURE => self.end(
                at,
                EventKind::EapFailure {
                    access_reject: false,
                },
            ),
            _ => {}
        }
    }

    /// The authenticator ended the conversation: `kind` is [`EventKind::EapSuccess`] or
    /// [`EventKind::EapFailure`].
    pub fn end(&mut self, at: At, kind: EventKind) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.flush();
        if let Some(tls) = &mut self.tls {
            tls.eap_result(at, kind);
        }
    }

    fn tls_message(&mut self, dir: Dir, at: At, protocol: Protocol, data: &[u8]) {
        let Some(h) = eap_tls_header(protocol, data) else {
            return;
        };
        if h.start() {
            // The server names the method; a Start carries no TLS (TEAP's outer TLVs aside).
            self.method = Some(protocol);
            if let Some(tls) = &mut self.tls {
                tls.set_protocol(protocol);
            }
            return;
        }
        if h.tls.is_empty() {
            return; // a fragment acknowledged
        }
        let protocol = *self.method.get_or_insert(protocol);
        let (info, max) = (self.info, self.max_handshake);
        let tls = self.tls.get_or_insert_with(|| {
            let mut tls = TlsConn::new(info);
            tls.set_max_handshake(max);
            tls.set_protocol(protocol);
            tls
        });
        let r = &mut self.reasm[dir.index()];
        if !tls.wants_data(dir) {
            *r = Reassembly::default();
            return;
        }
        r.at = Some(at);
        if r.streaming {
            tls.on_data(dir, at, h.tls);
            r.streaming = h.more();
            return;
        }
        if r.buf.is_empty() {
            r.declared = h.length;
        }
        let declared = r.declared.unwrap_or(0) as usize;
        if r.buf.len() + h.tls.len() > max || declared > max {
            // Too large to hold: what is held and the rest go on as they come (the TLS stage
            // skips an oversized message itself, and notes it).
            if !r.buf.is_empty() {
                tls.on_data(dir, at, &r.buf);
                r.buf = Vec::new();
            }
            tls.on_data(dir, at, h.tls);
            r.streaming = h.more();
            return;
        }
        r.buf.extend_from_slice(h.tls);
        if h.more() {
            return;
        }
        match r.declared {
            Some(n) if (n as usize) > r.buf.len() => {
                // Fragments were lost: the TLS stage resynchronizes after the gap.
                tls.on_gap(dir, at, n as u64 - r.buf.len() as u64);
            }
            _ => tls.on_data(dir, at, &r.buf),
        }
        r.buf.clear();
        r.declared = None;
    }

    /// Drops the fragments of messages the conversation never finished: the TLS stage learns
    /// that a message was cut (Wireshark shows no reassembled message either).
    fn flush(&mut self) {
        for dir in [Dir::Forward, Dir::Backward] {
            let r = std::mem::take(&mut self.reasm[dir.index()]);
            if let Some(tls) = &mut self.tls
                && (r.streaming || !r.buf.is_empty())
            {
                tls.message_cut(dir);
            }
        }
    }

    /// The session's handshake, if it carried TLS.
    pub fn finish(mut self, end: End) -> Option<Handshake> {
        self.flush();
        let mut hs = self.tls.take()?.finish(end)?;
        hs.eap = Some(Box::new(self.info_eap));
        Some(hs)
    }
}

/// Requests come from the authenticator, Responses from the supplicant (the client, Forward).
fn dir_of(code: u8) -> Dir {
    if code == code::RESPONSE {
        Dir::Forward
    } else {
        Dir::Backward
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::wire::eapol::eap;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// Test bytes from hex, for as long as the test runs.
    fn b(s: &str) -> &'static [u8] {
        Box::leak(hex::decode(s).unwrap().into_boxed_slice())
    }

    fn at(frame: u64) -> At {
        At {
            frame,
            ts: Timestamp(frame as i64 * 1000),
        }
    }

    fn info() -> ConnInfo {
        ConnInfo {
            stream: 0,
            first_src: crate::model::mac_endpoint([0, 4, 0xf2, 0, 0, 0x11]),
            first_dst: crate::model::mac_endpoint([0, 0x1b, 0x54, 0, 0, 1]),
            first_at: at(1),
            part: 0,
        }
    }

    #[test]
    fn headers_of_the_captures() {
        // FreeRADIUS, EAP-TLS, first of two fragments: L and M, length 1461.
        let h = eap_tls_header(Protocol::EapTls, b("c0000005b516030300")).unwrap();
        assert_eq!((h.length, h.more(), h.start()), (Some(1461), true, false));
        assert_eq!(h.tls, hex("16030300"));
        // hostapd's Start, and an acknowledgement.
        let h = eap_tls_header(Protocol::EapTls, &[0x20]).unwrap();
        assert!(h.start() && h.tls.is_empty() && h.length.is_none());
        assert!(
            eap_tls_header(Protocol::EapTls, &[0x00])
                .unwrap()
                .tls
                .is_empty()
        );
        // PEAP version 0 with L only (the ClientHello of eap-peap-radius.pcap).
        let h = eap_tls_header(Protocol::Peap, b("80000000b816")).unwrap();
        assert_eq!(
            (h.flags & 0x07, h.length, h.tls),
            (0, Some(184), &[0x16][..])
        );
        // TEAP: outer TLVs (here 4 bytes) after the TLS data are left out.
        let h = eap_tls_header(Protocol::Teap, b("91000000030000000416030300040000")).unwrap();
        assert_eq!(h.tls, hex("160303"));
        // Truncated or lying headers.
        assert!(eap_tls_header(Protocol::EapTls, &[]).is_none());
        assert!(eap_tls_header(Protocol::EapTls, &hex("800000")).is_none());
        assert!(eap_tls_header(Protocol::Teap, &hex("9000000003000000ff160303")).is_none());
    }

    #[test]
    fn display_filters() {
        let (s, a) = ([0, 4, 0xf2, 0, 0, 0x11], [0, 0x1b, 0x54, 0, 0, 1]);
        assert_eq!(
            eapol_filter(&s, &a, addressing::GROUP),
            "eapol && eth.dst.ig == 1 && (eth.src == 00:04:f2:00:00:11 || eth.src == 00:1b:54:00:00:01)"
        );
        assert_eq!(
            eapol_filter(&s, &a, addressing::UNICAST),
            "eapol && eth.addr == 00:04:f2:00:00:11 && eth.addr == 00:1b:54:00:00:01"
        );
        assert!(eapol_filter(&s, &a, 3).starts_with("eapol && ((eth.addr"));
    }

    /// The wired leaf-only conversation of captures/eapol-wired-leaf-only.pcap, its EAP
    /// packets as bytes, the server's flight made up so that it needs two fragments.
    #[test]
    fn fragments_are_reassembled_and_the_alert_and_failure_recorded() {
        let mut s = EapSession::new(info(), EapTransport::Eapol, 1 << 20);
        let identity = hex("029e001d0170686f6e652d30303131407461696c7370696e2e74657374");
        s.packet(at(3), &eap(&identity).unwrap());
        s.packet(at(4), &eap(&hex("019f00060d20")).unwrap());
        assert_eq!(s.method, Some(Protocol::EapTls));
        assert!(!s.has_tls());
        // A ClientHello record (TLS 1.2, no extensions) in one fragment.
        let mut hello = hex("160301002d010000290303");
        hello.extend_from_slice(&[7; 32]);
        hello.extend_from_slice(&hex("000002c02f0100"));
        let body = [&[0x00][..], &hello].concat();
        let mut p = vec![2, 0x9f, 0, 0, 13];
        p.extend_from_slice(&body);
        let n = p.len() as u16;
        p[2..4].copy_from_slice(&n.to_be_bytes());
        s.packet(at(5), &eap(&p).unwrap());
        assert!(s.has_tls());
        // The same message again (a retransmission) is ignored.
        s.packet(at(6), &eap(&p).unwrap());
        // A ServerHello record in two fragments: L+M, then the rest.
        let mut sh = hex("160303002a020000260303");
        sh.extend_from_slice(&[9; 32]);
        sh.extend_from_slice(&hex("00c02f00"));
        let (a, b) = sh.split_at(20);
        let frag = |id: u8, flags: &[u8], data: &[u8]| {
            let mut p = vec![1, id, 0, 0, 13];
            p.extend_from_slice(flags);
            p.extend_from_slice(data);
            let n = p.len() as u16;
            p[2..4].copy_from_slice(&n.to_be_bytes());
            p
        };
        let len = (sh.len() as u32).to_be_bytes();
        s.packet(
            at(7),
            &eap(&frag(0xa0, &[&[0xc0][..], &len].concat(), a)).unwrap(),
        );
        s.packet(at(8), &eap(&hex("02a000060d00")).unwrap()); // ACK
        s.packet(at(9), &eap(&frag(0xa1, &[0x00], b)).unwrap());
        // The alert, then EAP-Failure.
        s.packet(at(10), &eap(&hex("02a1000d0d0015030300020230")).unwrap());
        s.packet(at(11), &eap(&hex("04a10004")).unwrap());
        assert!(s.ended());
        s.info_eap.identity.as_deref().unwrap();
        let hs = s.finish(End::Closed).unwrap();
        assert_eq!(hs.protocol, Protocol::EapTls);
        assert_eq!(hs.client_hellos[0].at.frame, 5);
        assert_eq!(
            hs.client_hellos.len(),
            1,
            "the retransmission is not a second hello"
        );
        assert_eq!(
            hs.server_hellos[0].at.frame, 9,
            "the frame of the last fragment"
        );
        let kinds: Vec<(u64, &EventKind)> =
            hs.events.iter().map(|e| (e.at.frame, &e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (
                    10,
                    &EventKind::Alert {
                        level: 2,
                        description: 48
                    }
                ),
                (
                    11,
                    &EventKind::EapFailure {
                        access_reject: false
                    }
                )
            ]
        );
        let eap = hs.eap.as_deref().unwrap();
        assert_eq!(eap.identity.as_deref(), Some("phone-0011@tailspin.test"));
        assert_eq!(hs.transport(), "eapol");
        assert!(!hs.capture_ended);
    }

    #[test]
    fn a_message_over_the_limit_is_not_held() {
        let mut s = EapSession::new(info(), EapTransport::Radius, 64);
        let mut hello = hex("160301002d010000290303");
        hello.extend_from_slice(&[7; 32]);
        hello.extend_from_slice(&hex("000002c02f0100"));
        let mut p = vec![2, 1, 0, 0, 13, 0];
        p.extend_from_slice(&hello);
        let n = p.len() as u16;
        p[2..4].copy_from_slice(&n.to_be_bytes());
        s.packet(at(2), &eap(&p).unwrap());
        // The server declares a 16 MiB message: nothing is buffered.
        let big = hex("0102000d0dc001000000160303");
        s.packet(at(3), &eap(&big).unwrap());
        assert!(s.reasm[Dir::Backward.index()].buf.is_empty());
        assert!(s.reasm[Dir::Backward.index()].streaming);
        let hs = s.finish(End::CaptureEnded).unwrap();
        assert_eq!(hs.transport(), "udp");
        assert_eq!(hs.display_filter(), "udp.stream == 0");
    }
}
