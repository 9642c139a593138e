//! TLS client fingerprints of a ClientHello: JA3 (Salesforce, BSD-3-Clause) and JA4 (FoxIO,
//! BSD-3-Clause; only JA4 itself, not the JA4+ methods under the FoxIO License).
//!
//! Both are computed from the cipher list and the raw extensions block, so every extension
//! counts in the order and form the client sent it, whether or not chainsniff parses it.

use sha2::{Digest, Sha256};

use crate::model::Protocol;

/// A ClientHello's fingerprints (kept compact: one per handshake stays in memory).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientFingerprint {
    /// JA3: the MD5 of [`ja3_string`]'s output.
    pub ja3: [u8; 16],
    /// JA4, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub ja4: String,
}

impl ClientFingerprint {
    /// JA3 in hex, as JA3 tools print it.
    pub fn ja3_hex(&self) -> String {
        hex::encode(self.ja3)
    }
}

fn push_dec(out: &mut String, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

fn push_hex4(out: &mut String, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in [12, 8, 4, 0] {
        out.push(HEX[(v >> shift & 0xf) as usize] as char);
    }
}

/// `values` joined by `sep`, each written by `push`.
fn push_joined<T: Copy>(out: &mut String, values: &[T], sep: char, push: fn(&mut String, T)) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        push(out, *v);
    }
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// What the extensions block says that the fingerprints need, GREASE values left out (both
/// fingerprints ignore them).
#[derive(Default)]
struct Extensions {
    types: Vec<u16>,
    groups: Vec<u16>,
    point_formats: Vec<u8>,
    signature_algorithms: Vec<u16>,
    versions: Vec<u16>,
    first_alpn: Option<Vec<u8>>,
    sni: bool,
}

/// A list of 16-bit values, GREASE left out.
fn u16_list(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .filter(|v| !is_grease(*v))
        .collect()
}

fn no_grease(v: &[u16]) -> Vec<u16> {
    v.iter().copied().filter(|c| !is_grease(*c)).collect()
}

/// The body after a length prefix of `n` bytes, cut to the length (or to what is there).
fn prefixed(b: &[u8], n: usize) -> &[u8] {
    if b.len() < n {
        return &[];
    }
    let len = b[..n].iter().fold(0usize, |a, &x| a << 8 | x as usize);
    &b[n..(n + len).min(b.len())]
}

fn parse_extensions(mut b: &[u8]) -> Extensions {
    let mut out = Extensions::default();
    while b.len() >= 4 {
        let ty = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        let data = &b[4..(4 + len).min(b.len())];
        b = &b[(4 + len).min(b.len())..];
        if !is_grease(ty) {
            out.types.push(ty);
        }
        match ty {
            0 => out.sni = true,
            10 => out.groups = u16_list(prefixed(data, 2)),
            11 => out.point_formats = prefixed(data, 1).to_vec(),
            13 => out.signature_algorithms = u16_list(prefixed(data, 2)),
            16 => {
                let list = prefixed(data, 2);
                let first = prefixed(list, 1);
                if !list.is_empty() {
                    out.first_alpn = Some(first.to_vec());
                }
            }
            43 => out.versions = u16_list(prefixed(data, 1)),
            _ => {}
        }
    }
    out
}

fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn ja4_alpn(first: Option<&[u8]>) -> String {
    let Some(v) = first.filter(|v| !v.is_empty()) else {
        return "00".into();
    };
    let (a, z) = (v[0], v[v.len() - 1]);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        format!("{}{}", a as char, z as char)
    } else {
        let h = hex::encode(v);
        let h = h.as_bytes();
        format!("{}{}", h[0] as char, h[h.len() - 1] as char)
    }
}

/// JA3's input string: `version,ciphers,extensions,groups,point_formats` in decimal, GREASE
/// left out.
pub fn ja3_string(legacy_version: u16, ciphers: &[u16], extensions: &[u8]) -> String {
    ja3_of(
        legacy_version,
        &no_grease(ciphers),
        &parse_extensions(extensions),
    )
}

/// JA3's input from GREASE-free `ciphers` and extensions.
fn ja3_of(legacy_version: u16, ciphers: &[u16], ext: &Extensions) -> String {
    let mut s = String::with_capacity(256);
    push_dec(&mut s, legacy_version);
    s.push(',');
    push_joined(&mut s, ciphers, '-', push_dec);
    s.push(',');
    push_joined(&mut s, &ext.types, '-', push_dec);
    s.push(',');
    push_joined(&mut s, &ext.groups, '-', push_dec);
    s.push(',');
    let formats: Vec<u16> = ext.point_formats.iter().map(|f| *f as u16).collect();
    push_joined(&mut s, &formats, '-', push_dec);
    s
}

/// Fingerprints of a ClientHello: its legacy version, cipher suites and raw extensions block.
pub fn client(
    protocol: Protocol,
    legacy_version: u16,
    ciphers: &[u16],
    extensions: &[u8],
) -> ClientFingerprint {
    let ext = parse_extensions(extensions);
    let ciphers = no_grease(ciphers);
    let ja3 = md5::Md5::digest(ja3_of(legacy_version, &ciphers, &ext).as_bytes()).into();

    let types = &ext.types;
    let version = ext
        .versions
        .iter()
        .copied()
        .max_by_key(|v| match v {
            // DTLS versions count down.
            0xfe00.. => 0x10000 - *v as u32,
            _ => *v as u32,
        })
        .unwrap_or(legacy_version);
    let mut sorted_ciphers = ciphers.clone();
    sorted_ciphers.sort_unstable();
    let mut sorted_types: Vec<u16> = types
        .iter()
        .copied()
        .filter(|t| *t != 0x0000 && *t != 0x0010)
        .collect();
    sorted_types.sort_unstable();
    let sigs = &ext.signature_algorithms;
    let mut b = String::with_capacity(5 * sorted_ciphers.len());
    push_joined(&mut b, &sorted_ciphers, ',', push_hex4);
    let mut c = String::with_capacity(5 * (sorted_types.len() + sigs.len()) + 1);
    push_joined(&mut c, &sorted_types, ',', push_hex4);
    if !sigs.is_empty() && !c.is_empty() {
        c.push('_');
        push_joined(&mut c, sigs, ',', push_hex4);
    }
    let ja4 = format!(
        "{}{}{}{:02}{:02}{}_{}_{}",
        match protocol {
            // JA4 names TCP, QUIC and DTLS; TLS inside EAP is TLS's handshake: `t`.
            // TLS in RDP's reliable UDP channel is TLS's too (not DTLS's).
            Protocol::Tls
            | Protocol::RdpUdp
            | Protocol::EapTls
            | Protocol::Peap
            | Protocol::EapTtls
            | Protocol::Teap => 't',
            Protocol::Quic => 'q',
            Protocol::Dtls => 'd',
        },
        ja4_version(version),
        if ext.sni { 'd' } else { 'i' },
        ciphers.len().min(99),
        types.len().min(99),
        ja4_alpn(ext.first_alpn.as_deref()),
        hash12(&b),
        hash12(&c),
    );
    ClientFingerprint { ja3, ja4 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x000a));
    }

    #[test]
    fn ja3_of_the_salesforce_readme_example() {
        // 769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0
        let ciphers = [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4];
        let ext = [
            0, 0, 0, 0, // server_name, empty
            0, 10, 0, 8, 0, 6, 0, 23, 0, 24, 0, 25, // supported_groups
            0, 11, 0, 2, 1, 0, // ec_point_formats
        ];
        assert_eq!(
            ja3_string(769, &ciphers, &ext),
            "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
        );
        let f = client(Protocol::Tls, 769, &ciphers, &ext);
        assert_eq!(f.ja3_hex(), "ada70206e40642a3e4461f35503241d5");
        // JA4's hex: lower case, four digits.
        let mut s = String::new();
        push_joined(&mut s, &[0x0a0a_u16, 0x1301, 0x00ff], ',', push_hex4);
        assert_eq!(s, "0a0a,1301,00ff");
    }

    #[test]
    fn alpn_characters() {
        assert_eq!(ja4_alpn(Some(b"h2")), "h2");
        assert_eq!(ja4_alpn(Some(b"http/1.1")), "h1");
        assert_eq!(ja4_alpn(Some(b"h")), "hh");
        assert_eq!(ja4_alpn(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(ja4_alpn(None), "00");
    }
}
