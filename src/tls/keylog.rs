//! TLS 1.3 handshake decryption with the client's key log (NSS key log format).
//!
//! `CLIENT_HANDSHAKE_TRAFFIC_SECRET` / `SERVER_HANDSHAKE_TRAFFIC_SECRET` lines, keyed by the
//! ClientHello random, come from `--keylog` files, `SSLKEYLOGFILE`, or pcapng Decryption Secrets
//! Blocks. From a traffic secret, the record key and IV are derived with HKDF-Expand-Label
//! (RFC 8446, 7.1 and 7.3) and records are opened with AES-128-GCM, AES-256-GCM or
//! ChaCha20-Poly1305 (RustCrypto), with the per-direction record sequence number in the nonce.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::{Sha256, Sha384};

/// The secrets of one connection, by ClientHello random.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
}

/// Every secret read from key logs.
#[derive(Debug, Clone, Default)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], Secrets>,
}

impl KeyLog {
    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    /// Adds the lines of a key log; returns how many handshake secrets were read.
    /// Lines of other kinds (CLIENT_RANDOM for TLS 1.2, traffic secrets) are skipped.
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
                _ => continue,
            }
            n += 1;
        }
        n
    }

    /// Adds a key log file; returns how many handshake secrets were read. A file with no key
    /// line at all (empty, or not a key log) is an error: it was named to decrypt something.
    /// One with key lines of other kinds only (`CLIENT_RANDOM`, for TLS 1.2) is not.
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
        })
    }

    /// Opens one record (`header` is its 5-byte header, the AEAD's additional data). On success
    /// returns the inner content type and the plaintext, and advances the sequence number.
    pub fn open(&mut self, header: &[u8], body: &[u8]) -> Option<(u8, Vec<u8>)> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let payload = Payload {
            msg: body,
            aad: header,
        };
        let plain = match &self.cipher {
            Cipher::Aes128(c) => c.decrypt((&nonce).into(), payload).ok()?,
            Cipher::Aes256(c) => c.decrypt((&nonce).into(), payload).ok()?,
            Cipher::ChaCha(c) => c.decrypt((&nonce).into(), payload).ok()?,
        };
        self.seq += 1;
        // TLSInnerPlaintext: content, content type, zero padding.
        let end = plain.iter().rposition(|&b| b != 0)?;
        let mut plain = plain;
        let content_type = plain[end];
        plain.truncate(end);
        Some((content_type, plain))
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
        assert_eq!(n, 2);
        let s = k.get(&[0x11; 32]).unwrap();
        assert_eq!(s.server_handshake.as_deref(), Some(&[0xaa; 32][..]));
        assert_eq!(s.client_handshake.as_deref(), Some(&[0xbb; 32][..]));
    }
}
