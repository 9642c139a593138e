//! 802.1X conversations: EAPOL on the supplicant's link ([`EapolFlows`]) and RADIUS between
//! the authenticator and the authentication server (`RadiusFlow`, one per UDP conversation of
//! [`crate::flow::udp`]). Each EAP authentication in them becomes an
//! [`EapSession`], whose TLS goes to a `TlsConn` as TCP's does.
//!
//! **EAPOL.** A conversation is a supplicant's MAC and an authenticator's MAC. The supplicant
//! sends EAP Responses, EAPOL-Start and -Logoff; the authenticator sends EAP Requests, Success
//! and Failure. On a wired port both send to the PAE group address `01:80:c2:00:00:03`, so a
//! group-addressed frame names only its sender: it belongs to the conversation its sender is
//! already in, else it pairs with the other side heard alone most recently (a supplicant's
//! EAPOL-Start, then the authenticator's Request/Identity), and for an authenticator with
//! several supplicants the one whose last EAP identifier the packet follows. Conversations are
//! numbered in the order they begin (Wireshark has no stream index for them), bounded and
//! evicted like the TCP and UDP tables (`--max-flows`, 10 min idle).
//!
//! **RADIUS.** Many authentications share one UDP conversation (a switch uses one port for
//! all its supplicants). An Access-Request without a State attribute begins one; the
//! Access-Challenge that answers it (same Identifier) gives the State that the next request
//! carries, and so on, until Access-Accept or Access-Reject ends it. A retransmitted request
//! (same Identifier and Request Authenticator) is dropped. The EAP-Message attributes of a
//! packet are joined into one EAP packet (RFC 3579).

use std::net::SocketAddr;

use super::table::{ConnInfo, End, Evictor, FlowEvictions, FlowLimits, FlowMap, Recency, Settled};
use crate::model::{At, Mac, mac_endpoint};
use crate::tls::eap::{EapSession, EapTransport, addressing};
use crate::tls::handshake::{EventKind, Handshake};
use crate::wire::eapol::{EapPacket, EapolFrame, code, eap, is_group, method, packet_type};
use crate::wire::radius;

/// Most ends of EAPOL conversations heard through a group address and not yet paired.
const MAX_LONE: usize = 256;
/// How long an end heard alone waits for its other end (capture time; EAP retransmits within
/// 30 s).
const LONE_SECS: i64 = 60;
/// Most supplicants remembered per authenticator for its group-addressed frames.
const MAX_SUPPLICANTS_PER_AUTHENTICATOR: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Supplicant,
    Authenticator,
}

/// An end heard alone (through a group address).
#[derive(Debug, Clone, Copy)]
struct Lone {
    role: Role,
    first: At,
    last: At,
}

struct Conv {
    stream: u64,
    supplicant: Mac,
    authenticator: Mac,
    /// The first frame of the conversation, and of the session in progress.
    first: At,
    last: At,
    addressing: u8,
    /// The identifiers of the last EAP Response and Request, to tell whose a group-addressed
    /// Request is.
    last_response: Option<u8>,
    last_request: Option<u8>,
    session: Option<Box<EapSession>>,
}

impl Recency for Conv {
    fn last(&self) -> At {
        self.last
    }
    fn stream(&self) -> u64 {
        self.stream
    }
}

impl Conv {
    /// True when the authenticator's packet `p` follows this conversation's last exchange.
    fn follows(&self, p: &EapPacket<'_>) -> bool {
        match p.code {
            code::REQUEST => {
                self.last_request == Some(p.id) || self.last_response == Some(p.id.wrapping_sub(1))
            }
            _ => self.last_response == Some(p.id),
        }
    }
}

/// The EAPOL conversation table.
pub struct EapolFlows {
    convs: FlowMap<(Mac, Mac), Conv>,
    /// The authenticator of each supplicant's latest conversation.
    authenticator_of: FlowMap<Mac, Mac>,
    /// The supplicants of each authenticator's conversations, latest last.
    supplicants_of: FlowMap<Mac, Vec<Mac>>,
    lone: FlowMap<Mac, Lone>,
    /// Conversations let go of: their number, should they come back.
    settled: Settled<u64>,
    next_stream: u64,
    evictor: Evictor,
    max_handshake: usize,
    /// Handshakes of sessions already finished.
    pub finished: Vec<Handshake>,
}

impl Default for EapolFlows {
    fn default() -> Self {
        Self::new(FlowLimits::default(), crate::tls::MAX_HANDSHAKE)
    }
}

impl EapolFlows {
    /// An empty table of EAPOL conversations.
    pub fn new(limits: FlowLimits, max_handshake: usize) -> Self {
        EapolFlows {
            convs: FlowMap::default(),
            authenticator_of: FlowMap::default(),
            supplicants_of: FlowMap::default(),
            lone: FlowMap::default(),
            settled: Settled::new(limits.max_settled),
            next_stream: 0,
            evictor: Evictor::new(limits),
            max_handshake,
            finished: Vec::new(),
        }
    }

    /// One EAPOL frame.
    pub fn process(&mut self, at: At, f: &EapolFrame<'_>) {
        let (idle, end) = self.evictor.idle(&mut self.convs, at);
        for (k, c) in idle {
            self.settle(k, c, end);
        }
        if is_group(&f.src) || f.src == [0; 6] {
            return; // no station sends from a group address
        }
        let p = match f.packet_type {
            packet_type::EAP => eap(f.body).ok(),
            _ => None,
        };
        let role = match (f.packet_type, p.map(|p| p.code)) {
            (packet_type::START | packet_type::LOGOFF, _) | (_, Some(code::RESPONSE)) => {
                Role::Supplicant
            }
            (_, Some(code::REQUEST | code::SUCCESS | code::FAILURE)) => Role::Authenticator,
            _ => {
                // EAPOL-Key and the rest: part of a conversation between the two, if any.
                for key in [(f.src, f.dst), (f.dst, f.src)] {
                    if let Some(c) = self.convs.get_mut(&key) {
                        c.last = at;
                        c.addressing |= addressing::UNICAST;
                    }
                }
                return;
            }
        };
        let peer = (!is_group(&f.dst)).then_some(f.dst);
        let Some((key, first)) = self.pair(role, f.src, peer, p.as_ref(), at) else {
            return;
        };
        if !self.convs.contains_key(&key) {
            self.open(key, first, at);
        }
        let max = self.max_handshake;
        let conv = self.convs.get_mut(&key).expect("present");
        conv.last = at;
        conv.addressing |= if peer.is_some() {
            addressing::UNICAST
        } else {
            addressing::GROUP
        };
        if f.wifi {
            conv.addressing |= addressing::WIFI;
        }
        let session_ends = match (f.packet_type, p) {
            (packet_type::START | packet_type::LOGOFF, _) => true,
            (_, Some(p)) => {
                match p.code {
                    code::RESPONSE => conv.last_response = Some(p.id),
                    code::REQUEST => conv.last_request = Some(p.id),
                    _ => {}
                }
                if conv.session.as_ref().is_some_and(|s| s.begins_anew(&p)) {
                    finish_session(conv, End::Closed, &mut self.finished);
                    conv.first = at;
                }
                let (stream, first_at, s, a) =
                    (conv.stream, conv.first, conv.supplicant, conv.authenticator);
                let session = conv.session.get_or_insert_with(|| {
                    let info = ConnInfo {
                        stream,
                        first_src: mac_endpoint(s),
                        first_dst: mac_endpoint(a),
                        first_at,
                        part: crate::model::frame_part(first_at.frame),
                    };
                    let mut session = EapSession::new(info, EapTransport::Eapol, max);
                    session.info_eap.client_mac = Some(s);
                    session.info_eap.server_mac = Some(a);
                    Box::new(session)
                });
                session.packet(at, &p);
                session.ended()
            }
            _ => false,
        };
        if let Some(s) = &mut conv.session {
            s.info_eap.addressing = conv.addressing;
        }
        if session_ends {
            // EAP-Success or -Failure, or the supplicant starts over or leaves.
            finish_session(conv, End::Closed, &mut self.finished);
            conv.first = at;
        }
    }

    /// The conversation (supplicant, authenticator) a frame from `me` in `role` belongs to, and
    /// its first frame; `None` while its other end is not known yet.
    fn pair(
        &mut self,
        role: Role,
        me: Mac,
        peer: Option<Mac>,
        p: Option<&EapPacket<'_>>,
        at: At,
    ) -> Option<((Mac, Mac), At)> {
        let key = match (role, peer) {
            (Role::Supplicant, Some(a)) => (me, a),
            (Role::Authenticator, Some(s)) => (s, me),
            (Role::Supplicant, None) => {
                if let Some(a) = self.authenticator_of.get(&me) {
                    (me, *a)
                } else if let Some((a, lone)) = self.take_lone(Role::Authenticator, at) {
                    return Some(((me, a), lone.first));
                } else {
                    self.remember_lone(me, Role::Supplicant, at);
                    return None;
                }
            }
            (Role::Authenticator, None) => {
                let candidates = self.supplicants_of.get(&me).map(Vec::as_slice);
                let conv = |s: &Mac| self.convs.get(&(*s, me));
                let following = candidates.and_then(|c| {
                    c.iter()
                        .rev()
                        .find(|s| conv(s).is_some_and(|c| p.is_some_and(|p| c.follows(p))))
                        .copied()
                });
                let latest = candidates.and_then(|c| {
                    c.iter()
                        .max_by_key(|s| conv(s).map(|c| c.last.frame))
                        .copied()
                });
                // A Request/Identity opens an authentication: it is for a supplicant that just
                // spoke alone (EAPOL-Start) rather than one whose authentication it happens to
                // follow.
                let identity = p.is_some_and(|p| p.method == Some(method::IDENTITY));
                let lone = if identity || following.is_none() {
                    self.take_lone(Role::Supplicant, at)
                } else {
                    None
                };
                if let Some((s, lone)) = lone {
                    return Some(((s, me), lone.first));
                } else if let Some(s) = following.or(latest) {
                    (s, me)
                } else {
                    self.remember_lone(me, Role::Authenticator, at);
                    return None;
                }
            }
        };
        // Both ends are paired now: neither is alone any more.
        let first = [self.lone.remove(&key.0), self.lone.remove(&key.1)]
            .into_iter()
            .flatten()
            .map(|l| l.first)
            .min_by_key(|a| a.frame);
        Some((key, first.unwrap_or(at)))
    }

    /// The end in `role` heard alone most recently (within [`LONE_SECS`] of `at`), taken out
    /// of the lone ones.
    fn take_lone(&mut self, role: Role, at: At) -> Option<(Mac, Lone)> {
        let since = at.ts.0.saturating_sub(LONE_SECS * 1_000_000_000);
        let mac = self
            .lone
            .iter()
            .filter(|(_, l)| l.role == role && l.last.ts.0 >= since)
            .max_by_key(|(_, l)| l.last.frame)
            .map(|(m, _)| *m)?;
        self.lone.remove(&mac).map(|l| (mac, l))
    }

    fn remember_lone(&mut self, mac: Mac, role: Role, at: At) {
        if let Some(l) = self.lone.get_mut(&mac) {
            l.role = role;
            l.last = at;
            return;
        }
        if self.lone.len() >= MAX_LONE {
            // Keep the more recent half.
            let mut lasts: Vec<u64> = self.lone.values().map(|l| l.last.frame).collect();
            let mid = lasts.len() / 2;
            let cut = *lasts.select_nth_unstable(mid).1;
            self.lone.retain(|_, l| l.last.frame > cut);
        }
        self.lone.insert(
            mac,
            Lone {
                role,
                first: at,
                last: at,
            },
        );
    }

    /// Starts the conversation `key`, evicting the least recently active ones if the table is
    /// full.
    fn open(&mut self, key: (Mac, Mac), first: At, at: At) {
        let (victims, end) = self.evictor.make_room(&mut self.convs, at);
        for (k, c) in victims {
            self.settle(k, c, end);
        }
        let h = self.settled.hash(&key);
        let stream = self.settled.remove(h).unwrap_or_else(|| {
            self.next_stream += 1;
            self.next_stream - 1
        });
        let (s, a) = key;
        self.authenticator_of.insert(s, a);
        let list = self.supplicants_of.entry(a).or_default();
        list.retain(|x| *x != s);
        if list.len() >= MAX_SUPPLICANTS_PER_AUTHENTICATOR {
            list.remove(0);
        }
        list.push(s);
        self.convs.insert(
            key,
            Conv {
                stream,
                supplicant: s,
                authenticator: a,
                first,
                last: at,
                addressing: 0,
                last_response: None,
                last_request: None,
                session: None,
            },
        );
    }

    /// Finishes a conversation's session and remembers its number.
    fn settle(&mut self, key: (Mac, Mac), mut conv: Conv, end: End) {
        finish_session(&mut conv, end, &mut self.finished);
        let (s, a) = key;
        if self.authenticator_of.get(&s) == Some(&a) {
            self.authenticator_of.remove(&s);
        }
        if let Some(list) = self.supplicants_of.get_mut(&a) {
            list.retain(|x| *x != s);
            if list.is_empty() {
                self.supplicants_of.remove(&a);
            }
        }
        let h = self.settled.hash(&key);
        self.evictor.counts.forgotten += self.settled.insert(h, conv.stream, |s| *s);
    }

    /// What was evicted or forgotten so far.
    pub fn evictions(&self) -> FlowEvictions {
        self.evictor.counts
    }

    /// Ends every conversation (end of capture) and returns all handshakes.
    pub fn finish(mut self) -> (Vec<Handshake>, FlowEvictions) {
        let mut live: Vec<(u64, (Mac, Mac))> =
            self.convs.iter().map(|(k, c)| (c.stream, *k)).collect();
        live.sort_unstable();
        for (_, key) in live {
            if let Some(mut c) = self.convs.remove(&key) {
                finish_session(&mut c, End::CaptureEnded, &mut self.finished);
            }
        }
        (self.finished, self.evictor.counts)
    }
}

/// Finishes the conversation's session in progress, if any.
fn finish_session(conv: &mut Conv, end: End, out: &mut Vec<Handshake>) {
    if let Some(mut s) = conv.session.take() {
        s.info_eap.addressing = conv.addressing;
        out.extend(s.finish(end));
    }
}

// ---------------------------------------------------------------------------------------------
// RADIUS

/// One EAP authentication within a RADIUS conversation.
struct RadiusSession {
    /// In the order begun (for eviction).
    id: u32,
    eap: EapSession,
    last: At,
    /// The hash of the State the last Access-Challenge gave.
    state: Option<u64>,
    /// RADIUS User-Name, the identity when EAP gave none.
    user_name: Option<String>,
}

impl Recency for RadiusSession {
    fn last(&self) -> At {
        self.last
    }
    fn stream(&self) -> u64 {
        self.id as u64
    }
}

/// The EAP authentications of one RADIUS (UDP) conversation.
pub(crate) struct RadiusFlow {
    stream: u64,
    /// The part (file of a joined capture) `stream` is numbered in.
    part: u32,
    sessions: FlowMap<u32, RadiusSession>,
    /// A State attribute (hashed) to the session that the next request with it continues.
    by_state: FlowMap<u64, u32>,
    /// The last request of each Identifier: its session and Request Authenticator.
    by_id: FlowMap<u8, (u32, [u8; 16])>,
    hasher: foldhash::fast::RandomState,
    next: u32,
    evictor: Evictor,
    max_handshake: usize,
    /// The EAP packet of the current datagram, joined from its EAP-Message attributes.
    scratch: Vec<u8>,
}

impl RadiusFlow {
    /// The conversation goes on in part `part` of a joined capture as `udp.stream == stream`:
    /// the authentications that begin from now on are numbered so.
    pub(crate) fn renumber(&mut self, part: u32, stream: u64) {
        self.part = part;
        self.stream = stream;
    }

    pub(crate) fn new(stream: u64, limits: FlowLimits, max_handshake: usize) -> Self {
        RadiusFlow {
            stream,
            part: 0,
            sessions: FlowMap::default(),
            by_state: FlowMap::default(),
            by_id: FlowMap::default(),
            hasher: Default::default(),
            next: 0,
            evictor: Evictor::new(limits),
            max_handshake,
            scratch: Vec::new(),
        }
    }

    fn state_hash(&self, state: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(state)
    }

    /// One datagram from `src` to `dst`; handshakes of the authentications it ends go to `out`,
    /// and conversations it lets go of are counted in `evicted`.
    pub(crate) fn datagram(
        &mut self,
        at: At,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        out: &mut Vec<Handshake>,
        evicted: &mut FlowEvictions,
    ) {
        let (idle, end) = self.evictor.idle(&mut self.sessions, at);
        for (_, s) in idle {
            self.drop_session(s, end, out);
        }
        self.datagram_inner(at, src, dst, payload, out);
        evicted.add(std::mem::take(&mut self.evictor.counts));
    }

    fn datagram_inner(
        &mut self,
        at: At,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        out: &mut Vec<Handshake>,
    ) {
        let Ok(r) = radius::parse(payload) else {
            return;
        };
        self.scratch.clear();
        let has_eap = r.eap_message(&mut self.scratch);
        match r.code {
            radius::code::ACCESS_REQUEST if has_eap => {
                if let Some((sid, auth)) = self.by_id.get(&r.id)
                    && auth == r.authenticator
                    && self.sessions.contains_key(sid)
                {
                    return; // retransmitted
                }
                let known = r
                    .attribute(radius::attr::STATE)
                    .map(|st| self.state_hash(st))
                    .and_then(|h| self.by_state.get(&h).copied())
                    .filter(|sid| self.sessions.contains_key(sid));
                let sid = match known {
                    Some(sid) => sid,
                    None => self.begin(at, src, dst, out),
                };
                self.by_id.insert(r.id, (sid, *r.authenticator));
                let s = self.sessions.get_mut(&sid).expect("present");
                s.last = at;
                if s.eap.info_eap.client_mac.is_none() {
                    s.eap.info_eap.client_mac = r
                        .attribute(radius::attr::CALLING_STATION_ID)
                        .and_then(radius::station_mac);
                }
                if s.user_name.is_none()
                    && let Some(u) = r.attribute(radius::attr::USER_NAME)
                {
                    s.user_name = Some(String::from_utf8_lossy(u).into_owned());
                }
                if let Ok(p) = eap(&self.scratch) {
                    s.eap.packet(at, &p);
                }
            }
            radius::code::ACCESS_CHALLENGE
            | radius::code::ACCESS_ACCEPT
            | radius::code::ACCESS_REJECT => {
                let Some(&(sid, _)) = self.by_id.get(&r.id) else {
                    return;
                };
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                s.last = at;
                if r.code == radius::code::ACCESS_CHALLENGE {
                    if let Some(st) = r.attribute(radius::attr::STATE) {
                        let h = {
                            use std::hash::BuildHasher;
                            self.hasher.hash_one(st)
                        };
                        if let Some(old) = s.state.replace(h) {
                            self.by_state.remove(&old);
                        }
                        self.by_state.insert(h, sid);
                    }
                    if let Ok(p) = eap(&self.scratch) {
                        s.eap.packet(at, &p);
                    }
                    return;
                }
                let kind = if r.code == radius::code::ACCESS_ACCEPT {
                    EventKind::EapSuccess
                } else {
                    EventKind::EapFailure {
                        access_reject: true,
                    }
                };
                s.eap.end(at, kind);
                let s = self.sessions.remove(&sid).expect("present");
                self.drop_session(s, End::Closed, out);
            }
            _ => {}
        }
    }

    /// Begins an authentication with the request from `src` (the authenticator) to `dst`.
    fn begin(&mut self, at: At, src: SocketAddr, dst: SocketAddr, out: &mut Vec<Handshake>) -> u32 {
        let (victims, end) = self.evictor.make_room(&mut self.sessions, at);
        for (_, s) in victims {
            self.drop_session(s, end, out);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        let info = ConnInfo {
            stream: self.stream,
            first_src: src,
            first_dst: dst,
            first_at: at,
            part: self.part,
        };
        self.sessions.insert(
            id,
            RadiusSession {
                id,
                eap: EapSession::new(info, EapTransport::Radius, self.max_handshake),
                last: at,
                state: None,
                user_name: None,
            },
        );
        id
    }

    /// Finishes a session taken out of the table and forgets how to find it.
    fn drop_session(&mut self, mut s: RadiusSession, end: End, out: &mut Vec<Handshake>) {
        if let Some(h) = s.state {
            self.by_state.remove(&h);
        }
        if s.eap.info_eap.identity.is_none() {
            s.eap.info_eap.identity = s.user_name.take();
        }
        out.extend(s.eap.finish(end));
    }

    /// Ends every authentication still open.
    pub(crate) fn finish(mut self, end: End, out: &mut Vec<Handshake>) {
        let mut live: Vec<u32> = self.sessions.keys().copied().collect();
        live.sort_unstable();
        for id in live {
            if let Some(s) = self.sessions.remove(&id) {
                self.drop_session(s, end, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn at(frame: u64) -> At {
        At {
            frame,
            ts: Timestamp(frame as i64 * 1_000_000),
        }
    }

    const PHONE: Mac = [0x00, 0x04, 0xf2, 0x00, 0x00, 0x11];
    const SWITCH: Mac = [0x00, 0x1b, 0x54, 0x00, 0x00, 0x01];
    const GROUP: Mac = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x03];

    fn frame<'a>(src: Mac, dst: Mac, body: &'a [u8]) -> EapolFrame<'a> {
        EapolFrame {
            dst,
            src,
            version: 2,
            packet_type: if body.is_empty() { 1 } else { 0 },
            body,
            wifi: false,
        }
    }

    #[test]
    fn group_addressed_ends_pair_up() {
        let mut t = EapolFlows::default();
        // EAPOL-Start from the phone, then the switch's Request/Identity, both to the group.
        t.process(at(1), &frame(PHONE, GROUP, &[]));
        assert!(t.convs.is_empty());
        t.process(
            at(2),
            &frame(SWITCH, GROUP, &hex::decode("019e000501").unwrap()),
        );
        let c = &t.convs[&(PHONE, SWITCH)];
        assert_eq!((c.stream, c.first.frame), (0, 1));
        // Another phone on another port, the switch speaking first this time.
        let (phone2, port2) = ([0, 4, 0xf2, 0, 0, 0x12], [0, 0x1b, 0x54, 0, 0, 2]);
        t.process(
            at(3),
            &frame(port2, GROUP, &hex::decode("0107000501").unwrap()),
        );
        t.process(
            at(4),
            &frame(phone2, GROUP, &hex::decode("020700060161").unwrap()),
        );
        assert_eq!(t.convs[&(phone2, port2)].first.frame, 3);
        assert_eq!(t.convs[&(phone2, port2)].stream, 1);
        // The first phone's Response goes to its own conversation.
        t.process(
            at(5),
            &frame(PHONE, GROUP, &hex::decode("029e00060161").unwrap()),
        );
        assert_eq!(t.convs[&(PHONE, SWITCH)].last.frame, 5);
        assert_eq!(t.convs.len(), 2);
        let (handshakes, _) = t.finish();
        assert!(handshakes.is_empty(), "no TLS yet");
    }

    #[test]
    fn lone_ends_are_bounded() {
        let mut t = EapolFlows::default();
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            t.process(
                at(i as u64),
                &frame([0, 4, b[1], b[2], b[3], 1], GROUP, &[]),
            );
        }
        assert!(t.lone.len() <= MAX_LONE);
        assert!(t.convs.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let limits = FlowLimits {
            max_flows: 64,
            ..FlowLimits::default()
        };
        let mut t = EapolFlows::new(limits, 1 << 20);
        for i in 0..1000u32 {
            let b = i.to_be_bytes();
            let s = [0, 4, b[1], b[2], b[3], 1];
            t.process(at(i as u64), &frame(s, SWITCH, &[]));
        }
        assert!(t.convs.len() <= 64);
        assert!(t.supplicants_of[&SWITCH].len() <= MAX_SUPPLICANTS_PER_AUTHENTICATOR);
        let (_, ev) = t.finish();
        assert!(ev.full > 900);
    }
}
