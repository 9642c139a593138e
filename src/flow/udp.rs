//! UDP conversations: every one gets Wireshark's `udp.stream` index (the next index for each new
//! address/port pair) and is recognized by content as DTLS ([`crate::tls::dtls`]), QUIC
//! ([`crate::tls::quic`]), RDP's UDP transport ([`crate::tls::rdpudp`]) or RADIUS carrying EAP
//! ([`super::eap`]), which turn its datagrams
//! into TLS handshake messages for the same [`TlsConn`](crate::tls::TlsConn) as TLS over TCP.
//! Bounded and evicted like TCP's table.

use crate::model::{At, PART_SHIFT, frame_part};
use std::net::SocketAddr;

use super::eap::RadiusFlow;
use super::table::StreamHandler;
use super::table::{
    ConnInfo, Dir, End, Evictor, FlowEvictions, FlowLimits, FlowMap, Key, Recency, Settled, key_of,
};
use crate::tls::dtls::{Dtls, is_dtls};
use crate::tls::handshake::Handshake;
use crate::tls::quic::{Quic, quic_version};
use crate::tls::rdpudp::{RdpUdp, is_rdpudp_syn};
use crate::wire::UdpDatagram;
use crate::wire::radius;

/// Datagrams looked at before a conversation that is neither DTLS nor QUIC is given up.
const MAX_PROBES: u32 = 4;
/// Most bytes buffered per DTLS message or QUIC CRYPTO stream.
pub(crate) const MAX_BUFFER: usize = 256 << 10;

/// A datagram to or from the DNS or mDNS port. DNS over DTLS and over QUIC have a port of their
/// own (853), so a conversation on these whose first datagram is none of the protocols looked
/// for is given up at once: a capture's DNS queries are most of its UDP conversations, and each
/// would be kept until idle (600 s) for nothing.
fn is_plain_dns(d: &UdpDatagram<'_>) -> bool {
    [d.sport, d.dport].iter().any(|p| matches!(p, 53 | 5353))
}

enum State {
    Probing(u32),
    Dtls(Box<Dtls>),
    Quic(Box<Quic>),
    /// RDP-UDP: TLS in the reliable channel of MS-RDPEUDP2.
    RdpUdp(Box<RdpUdp>),
    /// RADIUS: any number of EAP authentications, each its own handshake.
    Radius(Box<RadiusFlow>),
}

struct Conv {
    info: ConnInfo,
    state: State,
    /// The last datagram seen (for eviction).
    last: At,
}

impl Recency for Conv {
    fn last(&self) -> At {
        self.last
    }
    fn stream(&self) -> u64 {
        self.info.stream
    }
}

/// The UDP conversation table: conversations being probed or followed (bounded like TCP's),
/// and compactly the others, for `udp.stream` numbering.
pub struct UdpFlows {
    convs: FlowMap<Key, Conv>,
    /// Ended (or never TLS) conversations: their part (above [`PART_SHIFT`]) and stream index.
    settled: Settled<u64>,
    next_stream: u64,
    /// The part (file of a joined capture) being read: stream indices restart with each.
    part: u32,
    evictor: Evictor,
    limits: FlowLimits,
    max_handshake: usize,
    /// Handshakes of conversations already finished.
    pub finished: Vec<Handshake>,
}

impl Default for UdpFlows {
    fn default() -> Self {
        Self::new(FlowLimits::default(), crate::tls::MAX_HANDSHAKE)
    }
}

impl UdpFlows {
    /// An empty table.
    pub fn new(limits: FlowLimits, max_handshake: usize) -> Self {
        UdpFlows {
            convs: FlowMap::default(),
            settled: Settled::new(limits.max_settled),
            next_stream: 0,
            part: 0,
            evictor: Evictor::new(limits),
            limits,
            max_handshake,
            finished: Vec::new(),
        }
    }

    /// The next file of a joined capture begins: Wireshark numbers its conversations from 0.
    pub fn new_part(&mut self) {
        self.part += 1;
        self.next_stream = 0;
    }

    /// Takes one datagram of any conversation.
    pub fn process(&mut self, at: At, d: &UdpDatagram<'_>) {
        let src = SocketAddr::new(d.src, d.sport);
        let dst = SocketAddr::new(d.dst, d.dport);
        let (key, _) = key_of(src, dst);
        let (idle, end) = self.evictor.idle(&mut self.convs, at);
        for (k, c) in idle {
            self.settle(k, c, end);
        }
        let dir = if !self.convs.contains_key(&key) {
            let (part, next) = (self.part, self.next_stream);
            if let Some(v) = self.settled.get_mut(self.settled.hash(&key)) {
                // Not DTLS or QUIC, or finished: only the stream number is kept (numbered
                // anew when first seen in another file).
                if frame_part(*v) != part {
                    *v = (u64::from(part) << PART_SHIFT) | next;
                    self.next_stream += 1;
                }
                return;
            }
            self.open(key, src, dst, at);
            Dir::Forward
        } else if self.convs[&key].info.first_src == src {
            Dir::Forward
        } else {
            Dir::Backward
        };
        let (part, next) = (self.part, self.next_stream);
        let conv = self.convs.get_mut(&key).expect("present");
        conv.last = at;
        if conv.info.part != part {
            // Goes on in a new file of a joined capture.
            conv.info.part = part;
            conv.info.stream = next;
            self.next_stream += 1;
            match &mut conv.state {
                State::Dtls(dtls) => dtls.tls.on_part(part, next),
                State::Quic(quic) => quic.tls.on_part(part, next),
                State::RdpUdp(rdp) => rdp.tls.on_part(part, next),
                State::Radius(r) => r.renumber(part, next),
                State::Probing(_) => {}
            }
        }
        if let State::Probing(n) = conv.state {
            conv.state = if is_dtls(d.payload) {
                let mut dtls = Box::new(Dtls::new(conv.info));
                dtls.tls.set_max_handshake(self.max_handshake);
                State::Dtls(dtls)
            } else if quic_version(d.payload).is_some() {
                let mut quic = Box::new(Quic::new(conv.info));
                quic.tls.set_max_handshake(self.max_handshake);
                State::Quic(quic)
            } else if is_rdpudp_syn(d.payload) {
                let mut rdp = Box::new(RdpUdp::new(conv.info));
                rdp.tls.set_max_handshake(self.max_handshake);
                State::RdpUdp(rdp)
            } else if is_radius(d) {
                {
                    let mut r = RadiusFlow::new(conv.info.stream, self.limits, self.max_handshake);
                    r.renumber(conv.info.part, conv.info.stream);
                    State::Radius(Box::new(r))
                }
            } else if n + 1 >= MAX_PROBES || is_plain_dns(d) {
                let conv = self.convs.remove(&key).expect("present");
                self.settle(key, conv, End::Closed);
                return;
            } else {
                State::Probing(n + 1)
            };
        }
        let done = match &mut conv.state {
            State::Dtls(dtls) => {
                dtls.datagram(dir, at, d.payload);
                dtls.tls.done()
            }
            State::Quic(quic) => {
                quic.datagram(dir, at, d.payload);
                quic.tls.done()
            }
            State::RdpUdp(rdp) => {
                rdp.datagram(dir, at, d.payload);
                rdp.tls.done()
            }
            State::Radius(r) => {
                r.datagram(
                    at,
                    src,
                    dst,
                    d.payload,
                    &mut self.finished,
                    &mut self.evictor.counts,
                );
                false
            }
            State::Probing(_) => false,
        };
        if done {
            let conv = self.convs.remove(&key).expect("present");
            self.settle(key, conv, End::Closed);
        }
    }

    /// Starts a conversation, evicting the least recently active ones if the table is full.
    fn open(&mut self, key: Key, src: SocketAddr, dst: SocketAddr, at: At) {
        let (victims, end) = self.evictor.make_room(&mut self.convs, at);
        for (k, c) in victims {
            self.settle(k, c, end);
        }
        let stream = self.next_stream;
        self.next_stream += 1;
        let info = ConnInfo {
            stream,
            first_src: src,
            first_dst: dst,
            first_at: at,
            part: self.part,
        };
        self.convs.insert(
            key,
            Conv {
                info,
                state: State::Probing(0),
                last: at,
            },
        );
    }

    /// Finishes a conversation's handshake (if any) and remembers its stream index.
    fn settle(&mut self, key: Key, conv: Conv, end: End) {
        finish(conv.state, end, &mut self.finished);
        let h = self.settled.hash(&key);
        let v = (u64::from(conv.info.part) << PART_SHIFT) | conv.info.stream;
        self.evictor.counts.forgotten += self.settled.insert(h, v, |s| *s);
    }

    /// What was evicted or forgotten so far.
    pub fn evictions(&self) -> FlowEvictions {
        self.evictor.counts
    }

    /// Ends every conversation (end of capture) and returns all handshakes.
    pub fn finish(mut self) -> (Vec<Handshake>, FlowEvictions) {
        // In stream order, taken out of the table one at a time.
        let mut live: Vec<(u64, _)> = self
            .convs
            .iter()
            .map(|(k, c)| (c.info.stream, *k))
            .collect();
        live.sort_unstable_by_key(|(stream, _)| *stream);
        for (_, key) in live {
            if let Some(c) = self.convs.remove(&key) {
                finish(c.state, End::CaptureEnded, &mut self.finished);
            }
        }
        (self.finished, self.evictor.counts)
    }
}

fn finish(state: State, end: End, out: &mut Vec<Handshake>) {
    match state {
        State::Dtls(d) => out.extend(d.tls.finish(end)),
        State::Quic(q) => out.extend(q.tls.finish(end)),
        State::RdpUdp(r) => out.extend(r.tls.finish(end)),
        State::Radius(r) => r.finish(end, out),
        State::Probing(_) => {}
    }
}

/// RADIUS carrying EAP on any port, or any RADIUS access packet on its own ports (where the
/// first packets may be another method's).
fn is_radius(d: &UdpDatagram<'_>) -> bool {
    radius::is_eap_radius(d.payload)
        || (radius::PORTS.contains(&d.dport) || radius::PORTS.contains(&d.sport))
            && radius::parse(d.payload).is_ok_and(|r| r.is_access())
}

#[cfg(test)]
mod tests {
    //! The UDP table driven with real datagrams: a DTLS ClientHello, a QUIC Initial, RADIUS
    //! carrying EAP and a DNS response, cut from the bundled captures (UDP payloads).

    use super::*;
    use crate::flow::table::{EvictReason, Eviction};
    use crate::model::{Protocol, Timestamp};

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// captures/dtls-openssl.pcap frame 1: the DTLS ClientHello, 127.0.0.10:55823 -> 127.0.0.10:4433, 235 bytes (time 1795546940.001432).
    use crate::tls::dtls::tests::CLIENT_HELLO as DTLS_CLIENT_HELLO;
    /// captures/quic-aioquic.pcap frame 1: the client's QUIC v1 Initial (ClientHello), 127.0.0.10:41306 -> 127.0.0.10:4443, 1200 bytes (time 1795546946.921506).
    const QUIC_INITIAL: &str = concat!(
        "cd0000000108af48d87c0994b37d081f0bd66d1453970a0041f847a0f187f3949932a412fbada25139042dbe",
        "7d8cb015260bc4e8183ff217bc4e8d426f68e5fae7a65eb5d04bf555779b608608f445735d10b9852869edcc",
        "b8158df8d12d67e43b791aedc4261af7a7ba2ef22c7324c6200ffd7979c0cda9fdf3778f28b60d620b4b2d1c",
        "66004703426d58375b9fc645a96fe744133a9e78c1f4392073b2df1b2498eeb2f18689e92adcd7f5998220a9",
        "74bc975e2112706f24eaec1e0b94163e4dc24ae28d05649ca22adc65b31a21339c23d0c3aa5f45520c14af0c",
        "e011fe9457e80f75bc453ba04b8625c71586715ae406238f82b097e867405afc18377a8bc0e7543adbdb7cba",
        "4fee4526713855082c08dcf9cbe979ffe8efa483fae9d272f5622b313e5b4ec679e469de9953adfcb93e0fb4",
        "c638997ca7c71e7c979f501e535dfa5b68f2eb3078d4d0643338760647e7444295eb6d3fa64e86d43f0b2f2f",
        "c90b805be051560a54161aef1b8c3169e28d1bee1eb83d1f78f8e3e3790613de815bbc67d08268c57b9fa367",
        "011b377395f9137e4c29293c78b9cda534538f530d97e419a2c5cd302588efe8cefa14ece8e328233298c5f9",
        "f3249ad26c34b47c21376cc9812add5db150adfc99e071457bf4dd74489a4fec64840ad9be129e9500807474",
        "ee2b0bdc4364490b43ad1eac056de261d0caee6743f5d3e2b35aceefac20d2822d9f5120c626bb9e8f1c64b1",
        "a7e3000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
    );
    /// captures/eap-peap-radius.pcap frame 1: Access-Request with EAP-Response/Identity, 127.0.4.2:59514 -> 127.0.4.1:1812, 189 bytes (time 1796115964.375587).
    const RADIUS_IDENTITY: &str = concat!(
        "010000bda4b0ff3e9352011452687c0775f23e460119616e6f6e796d6f7573407461696c7370696e2e746573",
        "7404067f0000011f1330302d30342d46322d30302d30302d31310c06000005780606000000024d27434f4e4e",
        "4543542045746865726e657420313030304d6270732046756c6c206475706c6578200e73772d616363657373",
        "2d30313d060000000f4f1e02fa001c01616e6f6e796d6f7573407461696c7370696e2e746573745012be8fa6",
        "33f3dcda2419308dce4efbb9d9",
    );
    /// captures/eap-peap-radius.pcap frame 2: Access-Challenge with EAP-Request/PEAP Start, 127.0.4.1:1812 -> 127.0.4.2:59514, 64 bytes (time 1796115964.376089).
    const RADIUS_PEAP_START: &str = concat!(
        "0b0000404f2f51bcffe37ab25ecd2d7682fe6b054f0801fb0006192050124be4476813283008975c163954a7",
        "3a4c1812ea09c676eaf2dfa56b69f9fe47584f92",
    );
    /// captures/eap-peap-radius.pcap frame 3: Access-Request with the PEAP ClientHello, 127.0.4.2:59514 -> 127.0.4.1:1812, 373 bytes (time 1796115964.376928).
    const RADIUS_CLIENT_HELLO: &str = concat!(
        "01010175098f55e11ecd34d7eba429bc2942114e0119616e6f6e796d6f7573407461696c7370696e2e746573",
        "7404067f0000011f1330302d30342d46322d30302d30302d31310c06000005780606000000024d27434f4e4e",
        "4543542045746865726e657420313030304d6270732046756c6c206475706c6578200e73772d616363657373",
        "2d30313d060000000f4fc402fb00c21980000000b816030100b3010000af03034491379d4f48a0d1c6f9f008",
        "67abe962152008a15cf142a235de08f9ae0b9cf9000038c02cc030009fcca9cca8ccaac02bc02f009ec024c0",
        "28006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff0100004e000b000403",
        "000102000a000c000a001d0017001e001900180016000000170000000d002a00280403050306030807080808",
        "09080a080b0804080508060401050106010303030103020402050206021812ea09c676eaf2dfa56b69f9fe47",
        "584f9250127e1902494ad83826af18116723bc18b8",
    );
    /// captures/lync-vip-phones.pcap frame 15: a DNS response (A lyncpool.contoso.test), 127.0.0.53:53 -> 127.0.1.11:40256, 55 bytes (time 1795545061.596337).
    const DNS_RESPONSE: &str = concat!(
        "010081800001000100000000086c796e63706f6f6c07636f6e746f736f04746573740000010001c00c000100",
        "010000012c00047f00000a",
    );

    fn at(frame: u64, secs: i64) -> At {
        At {
            frame,
            ts: Timestamp::from_parts(secs, 0),
        }
    }

    /// A datagram of `payload` from `src` to `dst` ("address:port").
    fn dgram<'a>(src: &str, dst: &str, payload: &'a [u8]) -> UdpDatagram<'a> {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        UdpDatagram {
            src: s.ip(),
            dst: d.ip(),
            sport: s.port(),
            dport: d.port(),
            payload,
        }
    }

    const DTLS_CLIENT: &str = "127.0.0.10:55823";
    const DTLS_SERVER: &str = "127.0.0.10:4433";

    /// The DTLS ClientHello from client port `port` to the DTLS server.
    fn dtls_hello(flows: &mut UdpFlows, at: At, port: u16, hello: &[u8]) {
        flows.process(
            at,
            &dgram(&format!("127.0.0.10:{port}"), DTLS_SERVER, hello),
        );
    }

    #[test]
    fn a_dtls_client_hello_is_recognized() {
        let hello = hex(DTLS_CLIENT_HELLO);
        let mut flows = UdpFlows::default();
        flows.process(
            at(1, 1_795_546_940),
            &dgram(DTLS_CLIENT, DTLS_SERVER, &hello),
        );
        let (hs, counts) = flows.finish();
        assert_eq!(hs.len(), 1);
        let h = &hs[0];
        assert_eq!((h.stream, h.protocol), (0, Protocol::Dtls));
        assert_eq!(
            (h.client, h.server),
            (DTLS_CLIENT.parse().unwrap(), DTLS_SERVER.parse().unwrap())
        );
        assert_eq!(h.sni(), Some("lyncpool.contoso.test"));
        assert_eq!(h.client_hellos[0].at.frame, 1);
        assert!(h.capture_ended && h.evicted.is_none());
        assert_eq!(counts, FlowEvictions::default());
    }

    #[test]
    fn a_quic_initial_is_recognized_and_decrypted() {
        let initial = hex(QUIC_INITIAL);
        assert_eq!(initial.len(), 1200);
        let mut flows = UdpFlows::default();
        flows.process(
            at(1, 1_795_546_946),
            &dgram("127.0.0.10:41306", "127.0.0.10:4443", &initial),
        );
        let (hs, _) = flows.finish();
        assert_eq!(hs.len(), 1);
        let h = &hs[0];
        assert_eq!((h.stream, h.protocol), (0, Protocol::Quic));
        assert_eq!(h.client, "127.0.0.10:41306".parse().unwrap());
        // The ClientHello came out of the Initial's CRYPTO frames (RFC 9001 Initial keys).
        assert_eq!(h.client_hellos.len(), 1);
        assert_eq!(h.client_hellos[0].supported_versions, [0x0304]);
        assert_eq!(h.client_hellos[0].alpn, ["h3"]);
    }

    #[test]
    fn radius_carrying_eap_is_recognized() {
        let (client, server) = ("127.0.4.2:59514", "127.0.4.1:1812");
        let mut flows = UdpFlows::default();
        let t = 1_796_115_964;
        let (a, b, c) = (
            hex(RADIUS_IDENTITY),
            hex(RADIUS_PEAP_START),
            hex(RADIUS_CLIENT_HELLO),
        );
        flows.process(at(1, t), &dgram(client, server, &a));
        flows.process(at(2, t), &dgram(server, client, &b));
        flows.process(at(3, t), &dgram(client, server, &c));
        let (hs, _) = flows.finish();
        assert_eq!(hs.len(), 1);
        let h = &hs[0];
        assert_eq!((h.stream, h.protocol), (0, Protocol::Peap));
        assert_eq!(h.client_hellos.len(), 1);
        assert_eq!(h.client_hellos[0].at.frame, 3);
    }

    #[test]
    fn other_conversations_are_numbered_and_given_up() {
        let dns = hex(DNS_RESPONSE);
        let hello = hex(DTLS_CLIENT_HELLO);
        let mut flows = UdpFlows::default();
        // Three conversations with a service on port 5000 (udp.stream 0, 1, 2), the first with
        // 5 datagrams: after MAX_PROBES datagrams it is no longer looked at, but keeps its
        // number.
        let t = 1_795_545_061;
        for (frame, port) in [(1, 40256), (2, 40256), (3, 40257), (4, 40256), (5, 40258)] {
            flows.process(
                at(frame, t),
                &dgram("127.0.0.53:5000", &format!("127.0.1.11:{port}"), &dns),
            );
        }
        flows.process(
            at(6, t),
            &dgram("127.0.1.11:40256", "127.0.0.53:5000", &dns),
        );
        flows.process(
            at(7, t),
            &dgram("127.0.0.53:5000", "127.0.1.11:40256", &dns),
        );
        assert_eq!(flows.next_stream, 3);
        assert_eq!(flows.convs.len(), 2, "the first was given up");
        // DNS conversations (udp.stream 3 and 4) are given up at their first datagram, and
        // keep their numbers.
        for frame in [8, 9, 10] {
            let port = if frame == 9 { 40260 } else { 40259 };
            flows.process(
                at(frame, t),
                &dgram(&format!("127.0.1.11:{port}"), "127.0.0.53:53", &dns),
            );
        }
        flows.process(at(11, t), &dgram("127.0.0.53:53", "127.0.1.11:40259", &dns));
        assert_eq!(flows.next_stream, 5);
        assert_eq!(flows.convs.len(), 2, "the DNS ones were given up at once");
        // The DTLS conversation after them is udp.stream 5.
        dtls_hello(&mut flows, at(12, t), 55823, &hello);
        let (hs, _) = flows.finish();
        assert_eq!(hs.len(), 1);
        assert_eq!((hs[0].stream, hs[0].protocol), (5, Protocol::Dtls));
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_active() {
        let hello = hex(DTLS_CLIENT_HELLO);
        let limits = FlowLimits {
            max_flows: 2,
            idle_secs: 600,
            max_settled: 100,
        };
        let mut flows = UdpFlows::new(limits, crate::tls::MAX_HANDSHAKE);
        let t = 1_795_546_940;
        dtls_hello(&mut flows, at(1, t), 50001, &hello);
        dtls_hello(&mut flows, at(2, t), 50002, &hello);
        // The first is active again: the second is now the least recently active.
        dtls_hello(&mut flows, at(3, t), 50001, &hello);
        dtls_hello(&mut flows, at(4, t), 50003, &hello);
        assert_eq!(flows.finished.len(), 1);
        let evicted = &flows.finished[0];
        assert_eq!(evicted.stream, 1);
        assert_eq!(evicted.client.port(), 50002);
        assert_eq!(
            evicted.evicted,
            Some(Eviction {
                at: at(4, t),
                reason: EvictReason::FlowTableFull
            })
        );
        let (hs, counts) = flows.finish();
        let streams: Vec<u64> = hs.iter().map(|h| h.stream).collect();
        assert_eq!(streams, [1, 0, 2]);
        assert_eq!(hs[1].client_hellos.len(), 2, "both of port 50001's");
        assert_eq!(
            (counts.full, counts.first_full_frame, counts.idle),
            (1, Some(4), 0)
        );
    }

    #[test]
    fn an_evicted_conversation_seen_again_keeps_its_stream_number() {
        let hello = hex(DTLS_CLIENT_HELLO);
        let limits = FlowLimits {
            max_flows: 1,
            idle_secs: 600,
            max_settled: 100,
        };
        let mut flows = UdpFlows::new(limits, crate::tls::MAX_HANDSHAKE);
        let t = 1_795_546_940;
        dtls_hello(&mut flows, at(1, t), 50001, &hello);
        dtls_hello(&mut flows, at(2, t), 50002, &hello); // evicts 50001 (stream 0)
        dtls_hello(&mut flows, at(3, t), 50001, &hello); // settled: not followed again
        dtls_hello(&mut flows, at(4, t), 50003, &hello); // evicts 50002 (stream 1)
        let (hs, counts) = flows.finish();
        let streams: Vec<(u64, u16)> = hs.iter().map(|h| (h.stream, h.client.port())).collect();
        assert_eq!(streams, [(0, 50001), (1, 50002), (2, 50003)]);
        assert_eq!(counts.full, 2);
    }

    #[test]
    fn an_idle_conversation_is_evicted() {
        let hello = hex(DTLS_CLIENT_HELLO);
        let dns = hex(DNS_RESPONSE);
        let limits = FlowLimits {
            max_flows: 100,
            idle_secs: 60,
            max_settled: 100,
        };
        let mut flows = UdpFlows::new(limits, crate::tls::MAX_HANDSHAKE);
        let t = 1_795_546_940;
        dtls_hello(&mut flows, at(1, t), 50001, &hello);
        // 59 s later: not idle yet (and idle sweeps are 30 s apart).
        dtls_hello(&mut flows, at(2, t + 59), 50002, &hello);
        assert!(flows.finished.is_empty());
        // 100 s after the first: it has been idle for more than 60 s; the second not.
        let dns_at = at(3, t + 100);
        flows.process(dns_at, &dgram("127.0.0.53:53", "127.0.1.11:40256", &dns));
        assert_eq!(flows.finished.len(), 1);
        assert_eq!(flows.finished[0].client.port(), 50001);
        assert_eq!(
            flows.finished[0].evicted,
            Some(Eviction {
                at: dns_at,
                reason: EvictReason::Idle
            })
        );
        let (hs, counts) = flows.finish();
        assert_eq!(hs.len(), 2);
        assert_eq!((counts.idle, counts.full), (1, 0));
    }

    #[test]
    fn stream_numbers_restart_in_each_part_of_a_joined_capture() {
        let hello = hex(DTLS_CLIENT_HELLO);
        let mut flows = UdpFlows::default();
        let t = 1_795_546_940;
        dtls_hello(&mut flows, at(1, t), 50001, &hello);
        dtls_hello(&mut flows, at(2, t), 50002, &hello);
        flows.new_part();
        let part1 = |frame: u64| At {
            frame: (1u64 << PART_SHIFT) | frame,
            ts: Timestamp::from_parts(t + 1, 0),
        };
        // In the second file: a new conversation first (stream 0 there), then 50001 again.
        dtls_hello(&mut flows, part1(1), 50003, &hello);
        dtls_hello(&mut flows, part1(2), 50001, &hello);
        let (hs, _) = flows.finish();
        // Client port, part and stream index it was first numbered in, later parts.
        type Numbering = (u16, u32, u64, Vec<(u32, u64)>);
        let mut seen: Vec<Numbering> = hs
            .iter()
            .map(|h| {
                (
                    h.client.port(),
                    h.stream_part,
                    h.stream,
                    h.continued.clone(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (50001, 0, 0, vec![(1, 1)]),
                (50002, 0, 1, vec![]),
                (50003, 1, 0, vec![]),
            ]
        );
    }

    #[test]
    fn is_radius_wants_eap_or_the_radius_ports() {
        let a = hex(RADIUS_IDENTITY);
        assert!(is_radius(&dgram("127.0.4.2:59514", "127.0.4.1:1812", &a)));
        // EAP inside: recognized on any port.
        assert!(is_radius(&dgram("127.0.4.2:59514", "127.0.4.1:9999", &a)));
        // The DNS response is no RADIUS packet, on any port.
        let dns = hex(DNS_RESPONSE);
        assert!(!is_radius(&dgram(
            "127.0.0.53:1812",
            "127.0.1.11:40256",
            &dns
        )));
    }
}
