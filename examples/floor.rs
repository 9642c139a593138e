//! The floor of the benchmark: the least any analyzer of a capture must do, timed beside
//! chainsniff by `benches/run.sh`.
//!
//! ```text
//! cargo run --release --example floor -- /tmp/chainsniff-bench/bench-200MiB.pcap
//! ```
//!
//! It maps the file (memmap2), walks the classic pcap record headers, parses Ethernet (with any
//! 802.1Q / 802.1ad tags), IPv4 or IPv6 and TCP or UDP headers, and adds each packet's transport
//! payload to a byte counter per flow (a foldhash table keyed by the symmetric 5-tuple, as in
//! `src/flow/table.rs`). It prints the packets, flows and bytes so that none of the work can be
//! optimized away. No reassembly, no TLS, no report: whatever chainsniff spends beyond this is
//! the price of its analysis.
//!
//! The headers are parsed by hand (bounds-checked, a dozen loads a packet); `--etherparse`
//! parses the IP and TCP/UDP headers with etherparse's `LaxSlicedPacket::from_ip`, as
//! `src/wire/mod.rs` does, to show what that slicing costs. Classic pcap only (either byte
//! order, micro- or nanosecond); a pcapng file is refused (convert it with `editcap -F pcap`).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use memmap2::Mmap;

#[derive(Parser)]
struct Args {
    /// A classic pcap file.
    capture: PathBuf,
    /// Parse IP and TCP/UDP with etherparse's slicing (chainsniff's data access) instead of by
    /// hand.
    #[arg(long)]
    etherparse: bool,
}

/// A flow, the same whichever way its packet goes: the lower (address, port) end first.
#[derive(PartialEq, Eq, Hash)]
struct FlowKey {
    lo: u128,
    hi: u128,
    /// Low end's port in the high 16 bits, high end's in the low 16.
    ports: u32,
    /// IP protocol number; 4 or 6 in the high byte for the family.
    proto: u16,
}

/// What one packet tells the table: its flow's ends and its transport payload length.
struct Packet {
    src: u128,
    dst: u128,
    sport: u16,
    dport: u16,
    proto: u16,
    payload: usize,
}

impl Packet {
    fn key(&self) -> FlowKey {
        let (lo, lp, hi, hp) = if (self.src, self.sport) <= (self.dst, self.dport) {
            (self.src, self.sport, self.dst, self.dport)
        } else {
            (self.dst, self.dport, self.src, self.sport)
        };
        FlowKey {
            lo,
            hi,
            ports: u32::from(lp) << 16 | u32::from(hp),
            proto: self.proto,
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn addr4(b: &[u8]) -> u128 {
    u128::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn addr6(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}

/// The EtherType and payload of an Ethernet II frame, past any VLAN tags.
fn ethernet(frame: &[u8]) -> Option<(u16, &[u8])> {
    if frame.len() < 14 {
        return None;
    }
    let mut et = be16(frame, 12);
    let mut rest = &frame[14..];
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        if rest.len() < 4 {
            return None;
        }
        et = be16(rest, 2);
        rest = &rest[4..];
    }
    Some((et, rest))
}

/// IPv4 or IPv6, then TCP or UDP, by hand. Other protocols count with ports 0; a fragment
/// after the first one has no ports either.
fn by_hand(ip: &[u8]) -> Option<Packet> {
    let (src, dst, mut proto, mut body, family, first_fragment) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 || ip.len() < ihl {
                return None;
            }
            let end = usize::from(be16(ip, 2)).clamp(ihl, ip.len());
            let frag_offset = be16(ip, 6) & 0x1fff;
            (
                addr4(&ip[12..16]),
                addr4(&ip[16..20]),
                ip[9],
                &ip[ihl..end],
                4u16,
                frag_offset == 0,
            )
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let end = (40 + usize::from(be16(ip, 4))).min(ip.len());
            (
                addr6(&ip[8..24]),
                addr6(&ip[24..40]),
                ip[6],
                &ip[40..end],
                6,
                true,
            )
        }
        _ => return None,
    };
    let mut first = first_fragment;
    if family == 6 {
        // Extension headers: hop-by-hop, routing, destination options, fragment.
        loop {
            match proto {
                0 | 43 | 60 if body.len() >= 8 => {
                    let len = (usize::from(body[1]) + 1) * 8;
                    if body.len() < len {
                        return None;
                    }
                    proto = body[0];
                    body = &body[len..];
                }
                44 if body.len() >= 8 => {
                    first = be16(body, 2) >> 3 == 0;
                    proto = body[0];
                    body = &body[8..];
                }
                _ => break,
            }
        }
    }
    let (sport, dport, payload) = match proto {
        6 if first && body.len() >= 20 => {
            let doff = usize::from(body[12] >> 4) * 4;
            if doff < 20 || body.len() < doff {
                return None;
            }
            (be16(body, 0), be16(body, 2), body.len() - doff)
        }
        17 if first && body.len() >= 8 => (be16(body, 0), be16(body, 2), body.len() - 8),
        _ => (0, 0, body.len()),
    };
    Some(Packet {
        src,
        dst,
        sport,
        dport,
        proto: family << 8 | u16::from(proto),
        payload,
    })
}

/// The same with etherparse's lax slicing, as chainsniff's `wire` stage does.
fn with_etherparse(ip: &[u8]) -> Option<Packet> {
    let packet = LaxSlicedPacket::from_ip(ip).ok()?;
    let (src, dst, family, payload) = match packet.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                u128::from(u32::from(h.source_addr())),
                u128::from(u32::from(h.destination_addr())),
                4u16,
                v4.payload(),
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                u128::from(h.source_addr()),
                u128::from(h.destination_addr()),
                6,
                v6.payload(),
            )
        }
        _ => return None,
    };
    let proto = family << 8 | u16::from(payload.ip_number.0);
    let (sport, dport, len) = match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => (
            tcp.source_port(),
            tcp.destination_port(),
            tcp.payload().len(),
        ),
        Some(TransportSlice::Udp(udp)) => (
            udp.source_port(),
            udp.destination_port(),
            udp.payload().len(),
        ),
        _ => (0, 0, payload.payload.len()),
    };
    Some(Packet {
        src,
        dst,
        sport,
        dport,
        proto,
        payload: len,
    })
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let file = File::open(&args.capture).with_context(|| format!("{}", args.capture.display()))?;
    // SAFETY: the capture is opened read-only and nothing modifies or truncates it during the run.
    let map = unsafe { Mmap::map(&file) }.with_context(|| format!("{}", args.capture.display()))?;
    #[cfg(unix)]
    map.advise(memmap2::Advice::Sequential)?;
    let data: &[u8] = &map;

    if data.len() < 24 {
        bail!("{}: too short for a pcap header", args.capture.display());
    }
    let magic = [data[0], data[1], data[2], data[3]];
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        [0x0a, 0x0d, 0x0d, 0x0a] => bail!(
            "{}: pcapng is not supported by the floor (classic pcap only: editcap -F pcap)",
            args.capture.display()
        ),
        _ => bail!("{}: not a pcap file", args.capture.display()),
    };
    let u32_at = |at: usize| {
        let b = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let ethernet_link = match u32_at(20) & 0x0fff_ffff {
        1 => true,
        101 | 228 | 229 => false, // raw IP
        other => bail!(
            "{}: link type {other} (Ethernet or raw IP only)",
            args.capture.display()
        ),
    };

    let parse = if args.etherparse {
        with_etherparse
    } else {
        by_hand
    };
    let mut flows: HashMap<FlowKey, u64, foldhash::fast::RandomState> = HashMap::default();
    let (mut packets, mut other) = (0u64, 0u64);
    let mut at = 24;
    while at < data.len() {
        if data.len() - at < 16 {
            bail!(
                "{}: truncated record header at byte {at}",
                args.capture.display()
            );
        }
        let caplen = u32_at(at + 8) as usize;
        let body = at + 16;
        if data.len() - body < caplen {
            bail!("{}: truncated record at byte {at}", args.capture.display());
        }
        let frame = &data[body..body + caplen];
        at = body + caplen;
        packets += 1;
        let ip = if ethernet_link {
            match ethernet(frame) {
                Some((0x0800 | 0x86dd, ip)) => ip,
                _ => {
                    other += 1;
                    continue;
                }
            }
        } else {
            frame
        };
        let Some(p) = parse(ip) else {
            other += 1;
            continue;
        };
        *flows.entry(p.key()).or_default() += p.payload as u64;
    }
    let bytes: u64 = flows.values().sum();
    println!(
        "{packets} packets, {} flows, {bytes} payload bytes, {other} other frames",
        flows.len()
    );
    eprintln!("floor: {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
}
