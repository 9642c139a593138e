//! DTLS 1.0/1.2 (RFC 6347): records (13-byte header); handshake messages are reassembled from
//! their fragments by message sequence (retransmissions are dropped), rewritten into TLS layout
//! (the ClientHello's cookie removed) and handed to a [`TlsConn`], so certificates are diagnosed
//! as for TLS. Epoch > 0 is encrypted; DTLS 1.3 (RFC 9147) encrypts the certificate
//! (`not_visible`).

use crate::model::{At, Protocol};
use std::collections::HashMap;

use crate::flow::table::{ConnInfo, Dir};
use crate::flow::udp::MAX_BUFFER;
use crate::tls::handshake::TlsConn;
use crate::tls::record::TlsEvent;

// ---------------------------------------------------------------------------------------------
// DTLS

/// DTLS 1.0 as OpenSSL before 0.9.8j wrote it (`DTLS1_BAD_VER`, before RFC 4347's 0xfeff was
/// used on the wire).
pub const DTLS_BAD_VERSION: u16 = 0x0100;

/// A DTLS record header: content type 20–25, version 0xfeff / 0xfefd / 0xfefc, or 0x0100 (old
/// OpenSSL; then the record must also fit the datagram, as 0x0100 is a common pair of bytes).
pub(crate) fn is_dtls(b: &[u8]) -> bool {
    if b.len() < 13 || !(20..=25).contains(&b[0]) {
        return false;
    }
    match u16::from_be_bytes([b[1], b[2]]) {
        0xfeff | 0xfefd | 0xfefc => true,
        DTLS_BAD_VERSION => 13 + u16::from_be_bytes([b[11], b[12]]) as usize <= b.len(),
        _ => false,
    }
}

/// One DTLS handshake message being reassembled from fragments.
struct Partial {
    msg_type: u8,
    body: Vec<u8>,
    /// Byte ranges received so far (merged).
    have: Vec<(usize, usize)>,
}

pub(crate) struct Dtls {
    pub(crate) tls: TlsConn,
    /// Per direction: the next message sequence to deliver, and messages being assembled.
    next_seq: [u16; 2],
    partial: [HashMap<u16, Partial>; 2],
}

impl Dtls {
    pub(crate) fn new(info: ConnInfo) -> Self {
        let mut tls = TlsConn::new(info);
        tls.set_protocol(Protocol::Dtls);
        Dtls {
            tls,
            next_seq: [0, 0],
            partial: [HashMap::new(), HashMap::new()],
        }
    }

    pub(crate) fn datagram(&mut self, dir: Dir, at: At, mut data: &[u8]) {
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
                (21, _) => self.tls.record_event(
                    dir,
                    at,
                    TlsEvent::EncryptedAlert {
                        header: &[],
                        body: &[],
                    },
                ),
                (22, _) => self.tls.record_event(
                    dir,
                    at,
                    TlsEvent::EncryptedHandshake {
                        header: &[],
                        body: &[],
                    },
                ),
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

pub(crate) fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}
