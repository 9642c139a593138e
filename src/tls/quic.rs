//! QUIC v1 (RFC 9000/9001), v2 (RFC 9369) and draft 29: Initial packets are decrypted with keys
//! derived from the client's Destination Connection ID (header protection with AES-ECB, payload
//! with AES-128-GCM), CRYPTO frames are reassembled by offset, and the ClientHello and
//! ServerHello they carry are handed to a [`TlsConn`]. The certificate travels in Handshake
//! packets, whose keys are not in the capture: `not_visible`.

use crate::model::{At, Protocol};
use aes::Aes128;
use aes::cipher::BlockEncrypt;
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::flow::table::{ConnInfo, Dir};
use crate::flow::udp::MAX_BUFFER;
use crate::tls::dtls::u24;
use crate::tls::handshake::TlsConn;
use crate::tls::keylog::{Hash, expand_label};
use crate::tls::record::TlsEvent;

// ---------------------------------------------------------------------------------------------
// QUIC

const QUIC_V1: u32 = 0x0000_0001;
const QUIC_V2: u32 = 0x6b33_43cf;
const QUIC_DRAFT29: u32 = 0xff00_001d;

/// The version of a QUIC long-header packet with a version whose Initial keys are known.
pub(crate) fn quic_version(b: &[u8]) -> Option<u32> {
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

pub(crate) struct Quic {
    pub(crate) tls: TlsConn,
    /// The Destination Connection ID of the client's latest Initial (keys both directions).
    client_dcid: Vec<u8>,
    version: u32,
    crypto: [CryptoStream; 2],
    client_dir: Option<Dir>,
    /// A Retry was seen: the client's next Initial brings a new Destination Connection ID.
    after_retry: bool,
}

impl Quic {
    pub(crate) fn new(info: ConnInfo) -> Self {
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

    pub(crate) fn datagram(&mut self, dir: Dir, at: At, mut data: &[u8]) {
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
                    self.tls.record_event(
                        dir,
                        at,
                        TlsEvent::EncryptedAlert {
                            header: &[],
                            body: &[],
                        },
                    );
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
