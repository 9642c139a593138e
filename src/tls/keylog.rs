//! TLS 1.3 handshake and TLS 1.2 record decryption with the client's key log (NSS key log format).
//!
//! `CLIENT_HANDSHAKE_TRAFFIC_SECRET` / `SERVER_HANDSHAKE_TRAFFIC_SECRET` lines (TLS 1.3) and
//! `CLIENT_RANDOM` lines (TLS 1.2: the master secret), keyed by the ClientHello random, come from
//! `--keylog` files, `SSLKEYLOGFILE`, or pcapng Decryption Secrets Blocks.
//!
//! TLS 1.3: from a traffic secret, the record key and IV are derived with HKDF-Expand-Label
//! (RFC 8446, 7.1 and 7.3) and records are opened with AES-128-GCM, AES-256-GCM or
//! ChaCha20-Poly1305 (RustCrypto), with the per-direction record sequence number in the nonce.
//!
//! TLS 1.2: the key block is the PRF of the master secret, "key expansion" and the server and
//! client randoms (RFC 5246, 5 and 6.3; P_SHA256, or P_SHA384 for the SHA-384 suites). AEAD
//! suites only: AES-GCM (RFC 5288: a 4-byte implicit salt and the record's 8-byte explicit
//! nonce) and ChaCha20-Poly1305 (RFC 7905: the 12-byte IV XORed with the sequence number); the
//! additional data is the sequence number, the record's type and version and the plaintext
//! length. CBC suites are not decrypted.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// The secrets of one connection, by ClientHello random.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// CLIENT_HANDSHAKE_TRAFFIC_SECRET (TLS 1.3).
    pub client_handshake: Option<Vec<u8>>,
    /// SERVER_HANDSHAKE_TRAFFIC_SECRET (TLS 1.3).
    pub server_handshake: Option<Vec<u8>>,
    /// TLS 1.2 (`CLIENT_RANDOM`): the 48-byte master secret.
    pub master_secret: Option<Vec<u8>>,
}

/// Every secret read from key logs.
#[derive(Debug, Clone, Default)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], Secrets>,
}

impl KeyLog {
    /// Whether the key log has no secrets.
    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    /// How many ClientHello randoms it has secrets for.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    /// Adds the lines of a key log; returns how many secrets were read (TLS 1.3 handshake
    /// traffic secrets, TLS 1.2 master secrets). Lines of other kinds (application traffic
    /// secrets, exporters) are skipped.
    pub fn add_text(&mut self, text: &str) -> usize {
        let mut n = 0;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(label), Some(random), Some(secret)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(random), Ok(secret)) = (hex::decode(random), hex::decode(secret)) else {
                continue;
            };
            let Ok(random) = <[u8; 32]>::try_from(random) else {
                continue;
            };
            let entry = self.by_random.entry(random).or_default();
            match label {
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => entry.client_handshake = Some(secret),
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => entry.server_handshake = Some(secret),
                "CLIENT_RANDOM" if secret.len() == 48 => entry.master_secret = Some(secret),
                _ => continue,
            }
            n += 1;
        }
        n
    }

    /// Adds a key log file; returns how many secrets were read. A file with no key line at all
    /// (empty, or not a key log) is an error: it was named to decrypt something. One with key
    /// lines of other kinds only (application traffic secrets) is not.
    pub fn add_file(&mut self, path: &Path) -> Result<usize> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::KeyLog(format!("cannot read key log {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&bytes);
        if !text.lines().any(is_key_line) {
            return Err(Error::KeyLog(format!(
                "key log {} holds no key lines (NSS format: a label such as \
                 CLIENT_HANDSHAKE_TRAFFIC_SECRET, the client random and the secret in hex)",
                path.display()
            )));
        }
        Ok(self.add_text(&text))
    }

    /// The secrets logged for a ClientHello random.
    pub fn get(&self, client_random: &[u8]) -> Option<&Secrets> {
        <[u8; 32]>::try_from(client_random)
            .ok()
            .and_then(|r| self.by_random.get(&r))
    }
}

/// The labels of the NSS key log format (TLS 1.2's `CLIENT_RANDOM`, TLS 1.3's secrets, ECH).
const KEY_LABELS: &[&str] = &[
    "CLIENT_RANDOM",
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EARLY_EXPORTER_SECRET",
    "EXPORTER_SECRET",
    "ECH_SECRET",
    "ECH_CONFIG",
];

/// A line of the NSS key log format: a known label, then two hex fields.
fn is_key_line(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(label), Some(random), Some(secret), None) => {
            KEY_LABELS.contains(&label)
                && [random, secret]
                    .iter()
                    .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
}

/// HKDF-Expand-Label (RFC 8446, 7.1) with an empty context.
pub(crate) fn expand_label(hash: Hash, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0); // empty context
    let mut out = vec![0u8; len];
    match hash {
        Hash::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        Hash::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// HMAC of the concatenated `parts` under `key`.
fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    Some(match hash {
        Hash::Sha256 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
            parts.iter().for_each(|p| m.update(p));
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha384 => {
            let mut m = <Hmac<Sha384> as Mac>::new_from_slice(key).ok()?;
            parts.iter().for_each(|p| m.update(p));
            m.finalize().into_bytes().to_vec()
        }
    })
}

/// The TLS 1.2 PRF (RFC 5246, 5): P_hash(secret, label + seed), `len` bytes.
pub(crate) fn prf(
    hash: Hash,
    secret: &[u8],
    label: &str,
    seed: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len + 48);
    // A(1) = HMAC(secret, label + seed); A(i) = HMAC(secret, A(i-1)).
    let mut a = hmac(hash, secret, &[label.as_bytes(), seed])?;
    while out.len() < len {
        out.extend(hmac(hash, secret, &[&a, label.as_bytes(), seed])?);
        a = hmac(hash, secret, &[&a])?;
    }
    out.truncate(len);
    Some(out)
}

/// The TLS 1.2 AEAD suites chainsniff decrypts: (key length, AES-GCM or ChaCha20, PRF hash).
fn tls12_suite(cipher_suite: u16) -> Option<(usize, bool, Hash)> {
    Some(match cipher_suite {
        // AES_128_GCM_SHA256: RSA, DHE_RSA, DHE_DSS, ECDHE_ECDSA, ECDHE_RSA (RFC 5288, 5289).
        0x009c | 0x009e | 0x00a2 | 0xc02b | 0xc02f => (16, true, Hash::Sha256),
        // AES_256_GCM_SHA384, the same key exchanges.
        0x009d | 0x009f | 0x00a3 | 0xc02c | 0xc030 => (32, true, Hash::Sha384),
        // CHACHA20_POLY1305_SHA256: ECDHE_RSA, ECDHE_ECDSA, DHE_RSA (RFC 7905).
        0xcca8..=0xccaa => (32, false, Hash::Sha256),
        _ => return None,
    })
}

/// True when chainsniff decrypts TLS 1.2 records of this cipher suite.
pub fn tls12_supported(cipher_suite: u16) -> bool {
    tls12_suite(cipher_suite).is_some()
}

/// How a record's nonce and additional data are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// TLS 1.3: IV XOR sequence number; the record header is the additional data; the content
    /// type is inside.
    Tls13,
    /// TLS 1.2 AES-GCM: the 4-byte salt, then the record's first 8 bytes.
    Tls12Explicit,
    /// TLS 1.2 ChaCha20-Poly1305: IV XOR sequence number.
    Tls12Xor,
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// Opens the records of one direction under one traffic secret.
pub struct RecordDecryptor {
    cipher: Cipher,
    iv: [u8; 12],
    seq: u64,
    layout: Layout,
}

impl std::fmt::Debug for RecordDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordDecryptor")
            .field("seq", &self.seq)
            .finish()
    }
}

impl RecordDecryptor {
    /// Keys for a TLS 1.3 cipher suite from a traffic secret; `None` for suites not supported.
    pub fn new(cipher_suite: u16, secret: &[u8]) -> Option<Self> {
        let (cipher, iv) = match cipher_suite {
            0x1301 => {
                let key = expand_label(Hash::Sha256, secret, "key", 16)?;
                (
                    Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(&key).ok()?)),
                    expand_label(Hash::Sha256, secret, "iv", 12)?,
                )
            }
            0x1302 => {
                let key = expand_label(Hash::Sha384, secret, "key", 32)?;
                (
                    Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(&key).ok()?)),
                    expand_label(Hash::Sha384, secret, "iv", 12)?,
                )
            }
            0x1303 => {
                let key = expand_label(Hash::Sha256, secret, "key", 32)?;
                (
                    Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(&key).ok()?)),
                    expand_label(Hash::Sha256, secret, "iv", 12)?,
                )
            }
            _ => return None,
        };
        Some(RecordDecryptor {
            cipher,
            iv: iv.try_into().ok()?,
            seq: 0,
            layout: Layout::Tls13,
        })
    }

    /// TLS 1.2: the keys of one side (`client` or server) from the master secret and both
    /// randoms; `None` for suites not supported (see [`tls12_supported`]).
    pub fn tls12(
        cipher_suite: u16,
        master_secret: &[u8],
        client_random: &[u8],
        server_random: &[u8],
        client: bool,
    ) -> Option<Self> {
        let (key_len, gcm, hash) = tls12_suite(cipher_suite)?;
        let iv_len = if gcm { 4 } else { 12 };
        // key_block: client MAC key, server MAC key (none for AEAD), client key, server key,
        // client IV, server IV.
        let seed = [server_random, client_random].concat();
        let block = prf(
            hash,
            master_secret,
            "key expansion",
            &seed,
            2 * (key_len + iv_len),
        )?;
        let (keys, ivs) = block.split_at(2 * key_len);
        let (key, iv) = if client {
            (&keys[..key_len], &ivs[..iv_len])
        } else {
            (&keys[key_len..], &ivs[iv_len..])
        };
        let mut full_iv = [0u8; 12];
        full_iv[..iv_len].copy_from_slice(iv);
        let cipher = match (gcm, key_len) {
            (true, 16) => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            (true, _) => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            (false, _) => Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?)),
        };
        Some(RecordDecryptor {
            cipher,
            iv: full_iv,
            seq: 0,
            layout: if gcm {
                Layout::Tls12Explicit
            } else {
                Layout::Tls12Xor
            },
        })
    }

    /// Opens one record (`header` is its 5-byte header, the AEAD's additional data). On success
    /// returns the inner content type and the plaintext, and advances the sequence number.
    ///
    /// TLS 1.2: the content type is the record header's, and the plaintext is the whole content.
    pub fn open(&mut self, header: &[u8], body: &[u8]) -> Option<(u8, Vec<u8>)> {
        if self.layout != Layout::Tls13 {
            return self.open_tls12(header, body);
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let payload = Payload {
            msg: body,
            aad: header,
        };
        let plain = self.aead(&nonce, payload)?;
        self.seq += 1;
        // TLSInnerPlaintext: content, content type, zero padding.
        let end = plain.iter().rposition(|&b| b != 0)?;
        let mut plain = plain;
        let content_type = plain[end];
        plain.truncate(end);
        Some((content_type, plain))
    }

    fn aead(&self, nonce: &[u8; 12], payload: Payload<'_, '_>) -> Option<Vec<u8>> {
        match &self.cipher {
            Cipher::Aes128(c) => c.decrypt(nonce.into(), payload).ok(),
            Cipher::Aes256(c) => c.decrypt(nonce.into(), payload).ok(),
            Cipher::ChaCha(c) => c.decrypt(nonce.into(), payload).ok(),
        }
    }

    /// A TLS 1.2 AEAD record (RFC 5246, 6.2.3.3): additional data = sequence number, type,
    /// version, plaintext length.
    fn open_tls12(&mut self, header: &[u8], body: &[u8]) -> Option<(u8, Vec<u8>)> {
        let mut nonce = self.iv;
        let ciphertext = if self.layout == Layout::Tls12Explicit {
            nonce[4..].copy_from_slice(body.get(..8)?);
            &body[8..]
        } else {
            for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
                *n ^= s;
            }
            body
        };
        let plain_len = ciphertext.len().checked_sub(16)?;
        let mut aad = [0u8; 13];
        aad[..8].copy_from_slice(&self.seq.to_be_bytes());
        aad[8..11].copy_from_slice(header.get(..3)?);
        aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
        let plain = self.aead(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )?;
        self.seq += 1;
        Some((header[0], plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_are_recognized() {
        let r = "ab".repeat(32);
        assert!(is_key_line(&format!(
            "CLIENT_RANDOM {r} {}",
            "cd".repeat(48)
        )));
        assert!(is_key_line(&format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {r} {r}"
        )));
        assert!(!is_key_line("# SSL/TLS secrets log file, generated by NSS"));
        assert!(!is_key_line(&format!("CLIENT_RANDOM {r}")));
        assert!(!is_key_line(&format!("SOMETHING {r} {r}")));
        assert!(!is_key_line(&format!("CLIENT_RANDOM {r} not-hex")));
        assert!(!is_key_line(""));
    }

    /// RFC 8448 (simple 1-RTT handshake): the server handshake traffic secret, the derived
    /// write key and IV, and the first encrypted record (EncryptedExtensions...).
    #[test]
    fn rfc8448_server_handshake_keys() {
        let secret =
            hex::decode("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
                .unwrap();
        let key = expand_label(Hash::Sha256, &secret, "key", 16).unwrap();
        let iv = expand_label(Hash::Sha256, &secret, "iv", 12).unwrap();
        assert_eq!(hex::encode(key), "3fce516009c21727d0f2e4e86ee403bc");
        assert_eq!(hex::encode(iv), "5d313eb2671276ee13000b30");
    }

    /// The TLS 1.2 PRF (P_SHA256) test vector published on the IETF TLS list (msg03416).
    #[test]
    fn tls12_prf_sha256() {
        let out = prf(
            Hash::Sha256,
            &hex::decode("9bbe436ba940f017b17652849a71db35").unwrap(),
            "test label",
            &hex::decode("a0ba9f936cda311827a6f796ffd5198c").unwrap(),
            100,
        )
        .unwrap();
        assert_eq!(
            hex::encode(out),
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
        );
    }

    #[test]
    fn keylog_lines() {
        let mut k = KeyLog::default();
        let r = "11".repeat(32);
        let n = k.add_text(&format!(
            "# comment\nCLIENT_RANDOM {r} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {}\n",
            "00".repeat(48),
            "aa".repeat(32),
            "bb".repeat(32)
        ));
        assert_eq!(n, 3);
        let s = k.get(&[0x11; 32]).unwrap();
        assert_eq!(s.master_secret.as_deref(), Some(&[0; 48][..]));
        assert_eq!(s.server_handshake.as_deref(), Some(&[0xaa; 32][..]));
        assert_eq!(s.client_handshake.as_deref(), Some(&[0xbb; 32][..]));
    }
}
