//! Builds captures packet by packet: a classic pcap writer, TCP conversations over Ethernet
//! (IPv4 or IPv6, optionally VLAN-tagged) with etherparse's packet builder, and TLS records.
//! Shared by the adversarial tests and the benchmark generator (`examples/gen-bench.rs`).
#![allow(dead_code)]

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use etherparse::{PacketBuilder, VlanId};

/// A classic pcap file (microsecond timestamps, Ethernet), written as packets come.
pub struct PcapWriter<W: Write> {
    out: W,
    pub packets: u64,
    pub bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            packets: 0,
            bytes: 24,
        })
    }

    /// Writes one frame captured at `ts_us` microseconds since the epoch.
    pub fn packet(&mut self, ts_us: u64, frame: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        self.packets += 1;
        self.bytes += 16 + frame.len() as u64;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
pub const SYN_ACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
pub const FIN_ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
};

/// An Ethernet frame carrying one TCP segment (checksums computed).
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    vlan: Option<u16>,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    macro_rules! finish {
        ($ip:expr) => {{
            let mut b = $ip.tcp(src.port(), dst.port(), seq, 64240);
            if flags.syn {
                b = b.syn();
            }
            if flags.ack {
                b = b.ack(ack);
            }
            if flags.fin {
                b = b.fin();
            }
            if flags.rst {
                b = b.rst();
            }
            if !payload.is_empty() {
                b = b.psh();
            }
            b.write(out, payload).expect("writes to a Vec");
        }};
    }
    match (src.ip(), dst.ip(), vlan) {
        (IpAddr::V4(s), IpAddr::V4(d), None) => finish!(eth.ipv4(s.octets(), d.octets(), 64)),
        (IpAddr::V4(s), IpAddr::V4(d), Some(v)) => finish!(
            eth.single_vlan(VlanId::try_new(v).expect("12-bit VLAN"))
                .ipv4(s.octets(), d.octets(), 64)
        ),
        (IpAddr::V6(s), IpAddr::V6(d), None) => finish!(eth.ipv6(s.octets(), d.octets(), 64)),
        (IpAddr::V6(s), IpAddr::V6(d), Some(v)) => finish!(
            eth.single_vlan(VlanId::try_new(v).expect("12-bit VLAN"))
                .ipv6(s.octets(), d.octets(), 64)
        ),
        _ => panic!("mixed address families"),
    }
}

/// An Ethernet frame carrying one UDP datagram over IPv4.
pub fn udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only");
    };
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(s.octets(), d.octets(), 64)
        .udp(src.port(), dst.port())
        .write(out, payload)
        .expect("writes to a Vec");
}

/// One TCP conversation: its endpoints and both sides' next sequence numbers.
pub struct Conversation {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub vlan: Option<u16>,
    pub client_seq: u32,
    pub server_seq: u32,
    /// Largest payload per segment.
    pub mss: usize,
}

impl Conversation {
    pub fn new(client: SocketAddr, server: SocketAddr, isn: u32) -> Self {
        Conversation {
            client,
            server,
            vlan: None,
            client_seq: isn,
            server_seq: isn.wrapping_mul(2_654_435_761),
            mss: 1460,
        }
    }

    /// The three-way handshake: SYN, SYN-ACK, ACK.
    pub fn open(&mut self, frames: &mut Vec<Vec<u8>>) {
        let mut f = Vec::new();
        tcp_frame(
            self.client,
            self.server,
            self.vlan,
            self.client_seq,
            0,
            SYN,
            &[],
            &mut f,
        );
        frames.push(f.clone());
        tcp_frame(
            self.server,
            self.client,
            self.vlan,
            self.server_seq,
            self.client_seq.wrapping_add(1),
            SYN_ACK,
            &[],
            &mut f,
        );
        frames.push(f.clone());
        self.client_seq = self.client_seq.wrapping_add(1);
        self.server_seq = self.server_seq.wrapping_add(1);
        tcp_frame(
            self.client,
            self.server,
            self.vlan,
            self.client_seq,
            self.server_seq,
            ACK,
            &[],
            &mut f,
        );
        frames.push(f);
    }

    /// `data` from the client (or the server), split into segments of at most `mss` bytes.
    pub fn send(&mut self, from_client: bool, data: &[u8], frames: &mut Vec<Vec<u8>>) {
        for chunk in data.chunks(self.mss.max(1)) {
            let mut f = Vec::new();
            self.segment(from_client, chunk, ACK, &mut f);
            frames.push(f);
        }
    }

    /// One segment from one side, advancing its sequence number.
    pub fn segment(&mut self, from_client: bool, payload: &[u8], flags: Flags, out: &mut Vec<u8>) {
        let (src, dst, seq, ack) = if from_client {
            (self.client, self.server, self.client_seq, self.server_seq)
        } else {
            (self.server, self.client, self.server_seq, self.client_seq)
        };
        tcp_frame(src, dst, self.vlan, seq, ack, flags, payload, out);
        let advance = payload.len() as u32 + u32::from(flags.fin || flags.syn);
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(advance);
        } else {
            self.server_seq = self.server_seq.wrapping_add(advance);
        }
    }
}

/// A TLS record.
pub fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// Handshake messages in as many records (of at most 2^14 bytes) as they need.
pub fn handshake_records(messages: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in messages.chunks(1 << 14) {
        out.extend(record(22, chunk));
    }
    out
}

/// A handshake message: type, 24-bit length, body.
pub fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

fn u16_prefixed(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// A TLS 1.2 ClientHello with SNI.
pub fn client_hello(sni: &str, random: [u8; 32]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&random);
    b.push(0); // session id
    b.extend(u16_prefixed(&[0xc0, 0x2f, 0xc0, 0x30, 0x00, 0x9c]));
    b.extend_from_slice(&[1, 0]); // compression: null
    let mut name = vec![0];
    name.extend(u16_prefixed(sni.as_bytes()));
    let sni_ext = u16_prefixed(&name);
    let mut exts = vec![0, 0];
    exts.extend(u16_prefixed(&sni_ext));
    b.extend(u16_prefixed(&exts));
    message(1, &b)
}

/// A TLS 1.2 ServerHello choosing ECDHE-RSA-AES128-GCM-SHA256.
pub fn server_hello(random: [u8; 32]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&random);
    b.push(32);
    b.extend_from_slice(&[7; 32]);
    b.extend_from_slice(&[0xc0, 0x2f, 0]);
    b.extend_from_slice(&[0, 0]); // no extensions
    message(2, &b)
}

/// A Certificate message with these DER certificates.
pub fn certificate(certs: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for c in certs {
        list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
        list.extend_from_slice(c);
    }
    let mut b = (list.len() as u32).to_be_bytes()[1..].to_vec();
    b.extend(list);
    message(11, &b)
}

pub fn server_hello_done() -> Vec<u8> {
    message(14, &[])
}

/// A fatal alert record.
pub fn alert(description: u8) -> Vec<u8> {
    record(21, &[2, description])
}

/// A small deterministic generator (xorshift64*), so that generated captures and mutants
/// reproduce from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// An index in 0..n (0 when n is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// True with the given probability in thousandths.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}
