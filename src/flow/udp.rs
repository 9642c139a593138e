//! UDP conversations: every one gets Wireshark's `udp.stream` index (the next index for each new
//! address/port pair) and is recognized by content as DTLS ([`crate::tls::dtls`]), QUIC
//! ([`crate::tls::quic`]) or RADIUS carrying EAP ([`super::eap`]), which turn its datagrams
//! into TLS handshake messages for the same [`TlsConn`](crate::tls::TlsConn) as TLS over TCP.
//! Bounded and evicted like TCP's table.

use crate::model::At;
use std::net::SocketAddr;

use super::eap::RadiusFlow;
use super::table::StreamHandler;
use super::table::{
    ConnInfo, Dir, End, Evictor, FlowEvictions, FlowLimits, FlowMap, Key, Recency, Settled, key_of,
};
use crate::tls::dtls::{Dtls, is_dtls};
use crate::tls::handshake::Handshake;
use crate::tls::quic::{Quic, quic_version};
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
    /// Ended (or never TLS) conversations: their stream index.
    settled: Settled<u64>,
    next_stream: u64,
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
    pub fn new(limits: FlowLimits, max_handshake: usize) -> Self {
        UdpFlows {
            convs: FlowMap::default(),
            settled: Settled::new(limits.max_settled),
            next_stream: 0,
            evictor: Evictor::new(limits),
            limits,
            max_handshake,
            finished: Vec::new(),
        }
    }

    pub fn process(&mut self, at: At, d: &UdpDatagram<'_>) {
        let src = SocketAddr::new(d.src, d.sport);
        let dst = SocketAddr::new(d.dst, d.dport);
        let (key, _) = key_of(src, dst);
        let (idle, end) = self.evictor.idle(&mut self.convs, at);
        for (k, c) in idle {
            self.settle(k, c, end);
        }
        let dir = if !self.convs.contains_key(&key) {
            if self.settled.get_mut(self.settled.hash(&key)).is_some() {
                // Not DTLS or QUIC, or finished: only the stream number is kept.
                return;
            }
            self.open(key, src, dst, at);
            Dir::Forward
        } else if self.convs[&key].info.first_src == src {
            Dir::Forward
        } else {
            Dir::Backward
        };
        let conv = self.convs.get_mut(&key).expect("present");
        conv.last = at;
        if let State::Probing(n) = conv.state {
            conv.state = if is_dtls(d.payload) {
                let mut dtls = Box::new(Dtls::new(conv.info));
                dtls.tls.set_max_handshake(self.max_handshake);
                State::Dtls(dtls)
            } else if quic_version(d.payload).is_some() {
                let mut quic = Box::new(Quic::new(conv.info));
                quic.tls.set_max_handshake(self.max_handshake);
                State::Quic(quic)
            } else if is_radius(d) {
                State::Radius(Box::new(RadiusFlow::new(
                    conv.info.stream,
                    self.limits,
                    self.max_handshake,
                )))
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
        self.evictor.counts.forgotten += self.settled.insert(h, conv.info.stream, |s| *s);
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
