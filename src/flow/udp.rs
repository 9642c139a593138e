//! Stage 3–4 for datagrams: UDP conversations to DTLS and QUIC handshakes.
//!
//! Every UDP conversation gets Wireshark's `udp.stream` index (the next index for each new
//! address/port pair). A conversation is recognized by content:
//!
//! * **DTLS 1.0/1.2** records (13-byte header); handshake messages are reassembled from their
//!   fragments by message sequence (retransmissions are dropped), rewritten into TLS layout
//!   (the ClientHello's cookie removed) and handed to the same [`TlsConn`] as TLS over TCP, so
//!   certificates are diagnosed alike. Epoch > 0 is encrypted; DTLS 1.3 (RFC 9147) encrypts the
//!   certificate (`not_visible`).
//! * **QUIC** v1 (RFC 9000/9001), v2 (RFC 9369) and draft 29: Initial packets are decrypted with
//!   keys derived from the client's Destination Connection ID (header protection with AES-ECB,
//!   payload with AES-128-GCM), CRYPTO frames are reassembled by offset, and the ClientHello and
//!   ServerHello they carry are reported. The certificate travels in Handshake packets, whose
//!   keys are not in the capture: `not_visible`.

use std::collections::HashMap;
use std::net::SocketAddr;

use aes::Aes128;
use aes::cipher::BlockEncrypt;
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::decode::UdpDatagram;
use crate::handshake::{Handshake, Protocol, TlsConn};
use crate::keylog::{Hash, expand_label};
use crate::reassembly::{
    At, ConnInfo, Dir, End, Evictor, FlowEvictions, FlowLimits, FlowMap, Key, Recency, Settled,
    StreamHandler, key_of,
};
use crate::tls::TlsEvent;

/// Datagrams looked at before a conversation that is neither DTLS nor QUIC is given up.
const MAX_PROBES: u32 = 4;
/// Most bytes buffered per DTLS message or QUIC CRYPTO stream.
const MAX_BUFFER: usize = 256 << 10;

enum State {
    Probing(u32),
    Dtls(Box<Dtls>),
    Quic(Box<Quic>),
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
        if let Some(h) = finish(conv.state, end) {
            self.finished.push(h);
        }
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
            if let Some(c) = self.convs.remove(&key)
                && let Some(h) = finish(c.state, End::CaptureEnded)
            {
                self.finished.push(h);
            }
        }
        (self.finished, self.evictor.counts)
    }
}

fn finish(state: State, end: End) -> Option<Handshake> {
    match state {
        State::Dtls(d) => d.tls.finish(end),
        State::Quic(q) => q.tls.finish(end),
        State::Probing(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// DTLS

/// A DTLS record header: content type 20–25, version 0xfeff / 0xfefd / 0xfefc.
fn is_dtls(b: &[u8]) -> bool {
    b.len() >= 13 && (20..=25).contains(&b[0]) && b[1] == 0xfe && matches!(b[2], 0xff | 0xfd | 0xfc)
}

/// One DTLS handshake message being reassembled from fragments.
struct Partial {
    msg_type: u8,
    body: Vec<u8>,
    /// Byte ranges received so far (merged).
    have: Vec<(usize, usize)>,
}

struct Dtls {
    tls: TlsConn,
    /// Per direction: the next message sequence to deliver, and messages being assembled.
    next_seq: [u16; 2],
    partial: [HashMap<u16, Partial>; 2],
}

impl Dtls {
    fn new(info: ConnInfo) -> Self {
        let mut tls = TlsConn::new(info);
        tls.set_protocol(Protocol::Dtls);
        Dtls {
            tls,
            next_seq: [0, 0],
            partial: [HashMap::new(), HashMap::new()],
        }
    }

    fn datagram(&mut self, dir: Dir, at: At, mut data: &[u8]) {
        while data.len() >= 13 && is_dtls(data) {
            let epoch = u16::from_be_bytes([data[3], data[4]]);
            let len = u16::from_be_bytes([data[11], data[12]]) as usize;
            let Some(body) = data.get(13..13 + len) else {
                return;
            };
            let header = &data[..13];
            data = &data[13 + len..];
            if data.is_empty() && header[0] == 25 {
                // DTLS 1.3 ACK / unified header content: nothing to read.
                continue;
            }
            match (header[0], epoch) {
                (22, 0) => self.handshake_record(dir, at, body),
                (20, _) => self.tls.record_event(dir, at, TlsEvent::ChangeCipherSpec),
                (21, 0) if body.len() == 2 => self.tls.record_event(
                    dir,
                    at,
                    TlsEvent::Alert {
                        level: body[0],
                        description: body[1],
                    },
                ),
                (21, _) => self.tls.record_event(dir, at, TlsEvent::EncryptedAlert),
                (22, _) => self.tls.record_event(dir, at, TlsEvent::EncryptedHandshake),
                _ => self
                    .tls
                    .record_event(dir, at, TlsEvent::ApplicationData { header, body }),
            }
        }
        // A DTLS 1.3 unified header (001xxxxx) record is encrypted.
        if let Some(&b) = data.first()
            && b & 0xe0 == 0x20
        {
            self.tls.record_event(
                dir,
                at,
                TlsEvent::ApplicationData {
                    header: &data[..1],
                    body: &data[1..],
                },
            );
        }
    }

    fn handshake_record(&mut self, dir: Dir, at: At, mut body: &[u8]) {
        let d = dir.index();
        while body.len() >= 12 {
            let msg_type = body[0];
            let total = u24(&body[1..4]);
            let seq = u16::from_be_bytes([body[4], body[5]]);
            let offset = u24(&body[6..9]);
            let frag_len = u24(&body[9..12]);
            let Some(frag) = body.get(12..12 + frag_len) else {
                return;
            };
            body = &body[12 + frag_len..];
            if total > MAX_BUFFER || offset + frag_len > total {
                continue;
            }
            if seq < self.next_seq[d] {
                // A retransmission of a message already delivered. A whole ClientHello sent
                // again is reported (a client retrying without an answer is worth seeing).
                if msg_type == 1 && offset == 0 && frag_len == total {
                    self.deliver(dir, at, msg_type, frag);
                }
                continue;
            }
            let p = self.partial[d].entry(seq).or_insert_with(|| Partial {
                msg_type,
                body: vec![0; total],
                have: Vec::new(),
            });
            if p.body.len() != total {
                continue;
            }
            p.body[offset..offset + frag_len].copy_from_slice(frag);
            p.have.push((offset, offset + frag_len));
            p.have.sort_unstable();
            let mut covered = 0;
            for &(a, b) in &p.have {
                if a > covered {
                    break;
                }
                covered = covered.max(b);
            }
            if covered >= total {
                let p = self.partial[d].remove(&seq).expect("present");
                self.next_seq[d] = seq.wrapping_add(1);
                self.deliver(dir, at, p.msg_type, &p.body);
            }
        }
    }

    /// Hands a complete message to the TLS stage in TLS layout.
    fn deliver(&mut self, dir: Dir, at: At, msg_type: u8, body: &[u8]) {
        match msg_type {
            1 => {
                if let Some(tls_layout) = client_hello_without_cookie(body) {
                    self.tls.handshake_message(dir, at, 1, &tls_layout);
                }
            }
            3 => {} // HelloVerifyRequest: the client will send its ClientHello again
            _ => self.tls.handshake_message(dir, at, msg_type, body),
        }
    }
}

/// A DTLS ClientHello is a TLS ClientHello with a cookie after the session id.
fn client_hello_without_cookie(body: &[u8]) -> Option<Vec<u8>> {
    let sid_len = *body.get(34)? as usize;
    let cookie_at = 35 + sid_len;
    let cookie_len = *body.get(cookie_at)? as usize;
    let rest = body.get(cookie_at + 1 + cookie_len..)?;
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(body.get(..cookie_at)?);
    out.extend_from_slice(rest);
    Some(out)
}

fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}

// ---------------------------------------------------------------------------------------------
// QUIC

const QUIC_V1: u32 = 0x0000_0001;
const QUIC_V2: u32 = 0x6b33_43cf;
const QUIC_DRAFT29: u32 = 0xff00_001d;

/// The version of a QUIC long-header packet with a version whose Initial keys are known.
fn quic_version(b: &[u8]) -> Option<u32> {
    if b.len() < 7 || b[0] & 0xc0 != 0xc0 {
        return None;
    }
    let v = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
    matches!(v, QUIC_V1 | QUIC_V2 | QUIC_DRAFT29).then_some(v)
}

/// Initial packet keys for one direction.
struct InitialKeys {
    aead: Aes128Gcm,
    iv: [u8; 12],
    hp: Aes128,
}

fn initial_keys(version: u32, dcid: &[u8], client: bool) -> Option<InitialKeys> {
    let salt: &[u8] = match version {
        QUIC_V1 => &hex_lit::<20>("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
        QUIC_V2 => &hex_lit::<20>("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
        _ => &hex_lit::<20>("afbfec289993d24c9e9786f19c6111e04390a899"),
    };
    let (initial, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let secret = expand_label(
        Hash::Sha256,
        &initial,
        if client { "client in" } else { "server in" },
        32,
    )?;
    let (key, iv, hp) = if version == QUIC_V2 {
        ("quicv2 key", "quicv2 iv", "quicv2 hp")
    } else {
        ("quic key", "quic iv", "quic hp")
    };
    Some(InitialKeys {
        aead: Aes128Gcm::new_from_slice(&expand_label(Hash::Sha256, &secret, key, 16)?).ok()?,
        iv: expand_label(Hash::Sha256, &secret, iv, 12)?
            .try_into()
            .ok()?,
        hp: Aes128::new_from_slice(&expand_label(Hash::Sha256, &secret, hp, 16)?).ok()?,
    })
}

fn hex_lit<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    if let Ok(v) = hex::decode(s) {
        out.copy_from_slice(&v[..N]);
    }
    out
}

/// A QUIC variable-length integer; returns the value and its length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let mut v = (first & 0x3f) as u64;
    for &x in &bytes[1..] {
        v = (v << 8) | x as u64;
    }
    Some((v, len))
}

/// One direction's CRYPTO stream: data by offset, handed on in order.
#[derive(Default)]
struct CryptoStream {
    /// Bytes from `delivered` on, as far as contiguous.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Fragments that arrived ahead of `base + buf.len()`.
    ahead: Vec<(u64, Vec<u8>)>,
}

impl CryptoStream {
    fn add(&mut self, offset: u64, data: &[u8]) {
        let end = self.base + self.buf.len() as u64;
        if offset > end {
            if self.ahead.iter().map(|(_, d)| d.len()).sum::<usize>() < MAX_BUFFER {
                self.ahead.push((offset, data.to_vec()));
            }
            return;
        }
        let skip = (end - offset) as usize;
        if skip < data.len() && self.buf.len() < MAX_BUFFER {
            self.buf.extend_from_slice(&data[skip..]);
        }
        // Fragments that now connect.
        loop {
            let end = self.base + self.buf.len() as u64;
            let Some(i) = self.ahead.iter().position(|(o, _)| *o <= end) else {
                break;
            };
            let (o, d) = self.ahead.swap_remove(i);
            let skip = (end - o) as usize;
            if skip < d.len() {
                self.buf.extend_from_slice(&d[skip..]);
            }
        }
    }

    /// Complete handshake messages at the front of the stream.
    fn messages(&mut self, mut emit: impl FnMut(u8, &[u8])) {
        let mut used = 0;
        while self.buf.len() - used >= 4 {
            let m = &self.buf[used..];
            let len = u24(&m[1..4]);
            if m.len() < 4 + len {
                break;
            }
            emit(m[0], &m[4..4 + len]);
            used += 4 + len;
        }
        self.buf.drain(..used);
        self.base += used as u64;
    }
}

struct Quic {
    tls: TlsConn,
    /// The Destination Connection ID of the client's latest Initial (keys both directions).
    client_dcid: Vec<u8>,
    version: u32,
    crypto: [CryptoStream; 2],
    client_dir: Option<Dir>,
    /// A Retry was seen: the client's next Initial brings a new Destination Connection ID.
    after_retry: bool,
}

impl Quic {
    fn new(info: ConnInfo) -> Self {
        let mut tls = TlsConn::new(info);
        tls.set_protocol(Protocol::Quic);
        Quic {
            tls,
            client_dcid: Vec::new(),
            version: QUIC_V1,
            crypto: Default::default(),
            client_dir: None,
            after_retry: false,
        }
    }

    fn datagram(&mut self, dir: Dir, at: At, mut data: &[u8]) {
        // Coalesced packets: each long-header packet says its length.
        while let Some(version) = quic_version(data) {
            let Some(len) = self.packet(dir, at, version, data) else {
                return;
            };
            data = &data[len.min(data.len())..];
        }
    }

    /// Handles one long-header packet; returns its length.
    fn packet(&mut self, dir: Dir, at: At, version: u32, p: &[u8]) -> Option<usize> {
        let ptype = (p[0] >> 4) & 0x03;
        let initial = if version == QUIC_V2 {
            ptype == 1
        } else {
            ptype == 0
        };
        let dcid_len = *p.get(5)? as usize;
        let dcid = p.get(6..6 + dcid_len)?;
        let mut i = 6 + dcid_len;
        let scid_len = *p.get(i)? as usize;
        i += 1 + scid_len;
        if initial {
            let (token_len, n) = varint(p.get(i..)?)?;
            i += n + token_len as usize;
        } else if ptype == if version == QUIC_V2 { 0 } else { 3 } {
            self.after_retry = true;
            return None; // Retry: no length field, ends the datagram
        }
        let (length, n) = varint(p.get(i..)?)?;
        let pn_offset = i + n;
        let end = pn_offset + length as usize;
        if !initial {
            return Some(end);
        }
        let client = match self.client_dir {
            Some(c) => c == dir,
            None => {
                // The first Initial is the client's.
                self.client_dir = Some(dir);
                true
            }
        };
        // Initial keys come from the Destination Connection ID of the client's first Initial
        // (after a Retry, of its first Initial that follows), even when it later switches to the
        // server's connection ID.
        if client && (self.client_dcid.is_empty() || self.after_retry) {
            self.client_dcid = dcid.to_vec();
            self.version = version;
            self.after_retry = false;
        }
        let keys = initial_keys(version, &self.client_dcid, client)?;
        let packet = p.get(..end)?;
        if let Some(plain) = open_initial(&keys, packet, pn_offset) {
            self.frames(dir, at, &plain);
        }
        Some(end)
    }

    fn frames(&mut self, dir: Dir, at: At, mut f: &[u8]) {
        let d = dir.index();
        while let Some(&t) = f.first() {
            match t {
                0x00 | 0x01 => f = &f[1..], // PADDING, PING
                0x02 | 0x03 => {
                    // ACK: largest, delay, range count, first range, ranges, (ECN counts).
                    let mut i = 1;
                    let next = |i: &mut usize| -> Option<u64> {
                        let (v, n) = varint(f.get(*i..)?)?;
                        *i += n;
                        Some(v)
                    };
                    let fields = (|| {
                        next(&mut i)?;
                        next(&mut i)?;
                        let ranges = next(&mut i)?;
                        next(&mut i)?;
                        for _ in 0..ranges.min(256) {
                            next(&mut i)?;
                            next(&mut i)?;
                        }
                        if t == 0x03 {
                            for _ in 0..3 {
                                next(&mut i)?;
                            }
                        }
                        Some(())
                    })();
                    if fields.is_none() {
                        return;
                    }
                    f = &f[i..];
                }
                0x06 => {
                    let Some((offset, n1)) = varint(&f[1..]) else {
                        return;
                    };
                    let Some((len, n2)) = varint(&f[1 + n1..]) else {
                        return;
                    };
                    let start = 1 + n1 + n2;
                    let Some(data) = f.get(start..start + len as usize) else {
                        return;
                    };
                    self.crypto[d].add(offset, data);
                    f = &f[start + len as usize..];
                }
                0x1c | 0x1d => {
                    self.tls.record_event(dir, at, TlsEvent::EncryptedAlert);
                    return;
                }
                _ => return,
            }
        }
        let mut msgs = Vec::new();
        self.crypto[d].messages(|t, body| msgs.push((t, body.to_vec())));
        for (t, body) in msgs {
            self.tls.handshake_message(dir, at, t, &body);
        }
    }
}

/// Removes header protection and decrypts an Initial packet (RFC 9001, 5.4 and 5.3).
fn open_initial(keys: &InitialKeys, packet: &[u8], pn_offset: usize) -> Option<Vec<u8>> {
    let sample = packet.get(pn_offset + 4..pn_offset + 20)?;
    let mut block = aes::Block::clone_from_slice(sample);
    keys.hp.encrypt_block(&mut block);
    let mask = block;
    let mut header = packet.get(..pn_offset + 4)?.to_vec();
    header[0] ^= mask[0] & 0x0f;
    let pn_len = (header[0] & 0x03) as usize + 1;
    let mut pn: u64 = 0;
    for k in 0..pn_len {
        header[pn_offset + k] ^= mask[1 + k];
        pn = (pn << 8) | header[pn_offset + k] as u64;
    }
    header.truncate(pn_offset + pn_len);
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    keys.aead
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: packet.get(pn_offset + pn_len..)?,
                aad: &header,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001, Appendix A.1: keys from the client's DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_initial_keys() {
        let dcid = hex::decode("8394c8f03e515708").unwrap();
        let salt = hex_lit::<20>("38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
        let (initial, _) = Hkdf::<Sha256>::extract(Some(&salt), &dcid);
        let client = expand_label(Hash::Sha256, &initial, "client in", 32).unwrap();
        assert_eq!(
            hex::encode(&client),
            "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
        );
        assert_eq!(
            hex::encode(expand_label(Hash::Sha256, &client, "quic key", 16).unwrap()),
            "1f369613dd76d5467730efcbe3b1a22d"
        );
        assert_eq!(
            hex::encode(expand_label(Hash::Sha256, &client, "quic hp", 16).unwrap()),
            "9f50449e04a0e810283a1e9933adedd2"
        );
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x25]), Some((37, 1)));
        assert_eq!(varint(&[0x7b, 0xbd]), Some((15293, 2)));
        assert_eq!(varint(&[0x9d, 0x7f, 0x3e, 0x7d]), Some((494878333, 4)));
    }
}
