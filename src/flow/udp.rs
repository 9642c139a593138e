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
            } else if n + 1 >= MAX_PROBES {
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
