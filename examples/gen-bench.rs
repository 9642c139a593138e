//! Writes a large, realistic capture for the benchmark, and the truth to check the answer with.
//!
//! ```text
//! cargo run --release --example gen-bench -- --size 2GiB --seed 1 --out /tmp/bench-2g.pcap
//! ```
//!
//! The TLS conversations are real: every TCP conversation of the bundled captures recorded from
//! OpenSSL (`captures/lync-vip-before.pcapng`, `lync-vip-fixed.pcap`, `tls13-openssl.pcapng`) is
//! reassembled and its byte streams replayed, turn by turn, with new addresses and ports (443,
//! 5061, 4443): TLS 1.2 with leaf-only, leaf + intermediate and leaf, leaf, intermediate, root
//! chains and the clients' real reactions (alert `unknown_ca`, Finished), and TLS 1.3. Conversations
//! that completed go on with application-data records of random length. Thousands of conversations
//! run at once, their packets interleaved; flights are split into segments of at most 1448 bytes,
//! some segments arrive out of order and some are retransmitted. Around them: HTTP over TCP port
//! 80 and DNS over UDP. Ethernet, some frames VLAN-tagged, some conversations over IPv6.
//!
//! The truth file (`<out>.truth.json`) counts what chainsniff must report with
//! `--trust captures/pki/root.pem`: handshakes, Certificate messages, and statuses, derived here
//! from the template bytes (a server flight whose Certificate message holds one certificate is
//! `incomplete`, as the intermediate is sent elsewhere in the capture; more is `complete`; TLS 1.3
//! without a key log is `not_visible`).
//!
//! `--sparse` (or `--handshakes-per-mb N`) writes a span-port-like capture instead: mostly bulk
//! application data, with about 26 (or N) TLS 1.2 handshakes per MB (10^6 bytes) of capture.
//!
//! ```text
//! cargo run --release --example gen-bench -- --size 1GiB --sparse --out /tmp/bench-1g-sparse.pcap
//! ```
//!
//! `--bulk-flows` bulk conversations (default 200) are always in flight: 70 % are TLS
//! connections that began before the capture (no SYN, no handshake, the first segment starting
//! inside an application-data record), 30 % HTTP downloads on port 80 opened in the capture;
//! each carries 64 KiB to 8 MiB (log-uniform) from the server, with a pure ACK from the client
//! every second segment, and a new one starts when one ends. Beside them, a short TLS 1.2
//! conversation (a template above, then application data as in the default mode) starts
//! whenever the capture written so far is owed a handshake, half of them after a DNS query. At
//! the size, the bulk conversations stop where they are (the capture ends) and the short ones
//! are finished. Same truth file, with the handshakes per MB reached and the bulk flows added.

#[path = "../tests/common/synth.rs"]
mod synth;

use chainsniff::model::At;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chainsniff::flow::{ConnInfo, Dir, End, Reassembler, StreamHandler};
use chainsniff::wire::{Decoded, decode};
use clap::Parser;
use synth::{ACK, Flags, PcapWriter, Rng, SYN, SYN_ACK};

#[derive(Parser)]
struct Args {
    /// Size of the capture to write: bytes, or with KiB/MiB/GiB.
    #[arg(long, default_value = "200MiB")]
    size: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Conversations in flight at once.
    #[arg(long, default_value_t = 2000)]
    concurrency: usize,
    /// Mean application data per completed TLS conversation, in bytes.
    #[arg(long, default_value_t = 12_000)]
    mean_data: usize,
    #[arg(long, default_value = "bench.pcap")]
    out: PathBuf,
    /// A span-port-like capture: mostly bulk application data, 26 TLS 1.2 handshakes per MB.
    #[arg(long)]
    sparse: bool,
    /// The sparse capture with this many TLS 1.2 handshakes per MB (10^6 bytes) instead of 26.
    #[arg(long)]
    handshakes_per_mb: Option<f64>,
    /// Bulk conversations in flight at once in the sparse capture.
    #[arg(long, default_value_t = 200)]
    bulk_flows: usize,
}

fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (num, mult) = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        .iter()
        .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    (num.trim().parse::<f64>().expect("a size like 2GiB") * mult as f64) as u64
}

// ---------------------------------------------------------------------------------------------
// Templates: real conversations, reassembled by chainsniff's own TCP stage.

/// The byte streams of one conversation as turns: (from the client, bytes).
#[derive(Default)]
struct Collector {
    client: Option<Dir>,
    turns: Vec<(bool, Vec<u8>)>,
    ended_by_client_rst_or_alert: bool,
}

impl StreamHandler for Collector {
    type Output = Collector;
    fn on_data(&mut self, dir: Dir, _: At, data: &[u8]) {
        let client = *self.client.get_or_insert(dir);
        let from_client = dir == client;
        match self.turns.last_mut() {
            Some((c, bytes)) if *c == from_client => bytes.extend_from_slice(data),
            _ => self.turns.push((from_client, data.to_vec())),
        }
    }
    fn on_gap(&mut self, _: Dir, _: At, _: u64) {}
    fn on_syn(&mut self, dir: Dir, ack: bool) {
        self.client = Some(if ack { dir.reverse() } else { dir });
    }
    fn on_fin(&mut self, _: Dir, _: At) {}
    fn on_rst(&mut self, _: Dir, _: At) {
        self.ended_by_client_rst_or_alert = true;
    }
    fn wants_data(&self, _: Dir) -> bool {
        true
    }
    fn is_done(&self) -> bool {
        false
    }
    fn finish(self, _: End) -> Option<Collector> {
        (!self.turns.is_empty()).then_some(self)
    }
}

struct Template {
    turns: Vec<(bool, Vec<u8>)>,
    /// Certificates in the server's Certificate message (None: none in plaintext).
    certs: Option<usize>,
    /// The certificates of that message, DER.
    chain: Vec<Vec<u8>>,
    /// The client sent an alert after the server's flight.
    client_alert: bool,
    tls13: bool,
    /// The client went on after the server's flight (application data may follow).
    completed: bool,
}

fn load_templates(root: &Path) -> Vec<Template> {
    let mut out = Vec::new();
    for name in [
        "lync-vip-before.pcapng",
        "lync-vip-fixed.pcap",
        "tls13-openssl.pcapng",
    ] {
        let path = root.join("captures").join(name);
        let mut r = Reassembler::new(|_: ConnInfo| Collector::default());
        chainsniff::capture::read_capture(
            path.to_str().unwrap(),
            |f| {
                if let Ok(Decoded::Tcp(seg)) = decode(f.linktype, f.data) {
                    r.process(
                        At {
                            frame: f.number,
                            ts: f.ts,
                        },
                        &seg,
                    );
                }
            },
            |_| {},
        )
        .expect("bundled capture");
        let (convs, _, _) = r.finish();
        for c in convs {
            let server: Vec<u8> = c
                .turns
                .iter()
                .filter(|(from_client, _)| !from_client)
                .flat_map(|(_, b)| b.clone())
                .collect();
            let (chain, tls13) = scan_server_flight(&server);
            let certs = chain.as_ref().map(Vec::len);
            let client_alert = c
                .turns
                .iter()
                .any(|(from_client, b)| *from_client && b.first() == Some(&21));
            out.push(Template {
                completed: !client_alert && !c.ended_by_client_rst_or_alert,
                turns: c.turns,
                certs,
                chain: chain.unwrap_or_default(),
                client_alert,
                tls13,
            });
        }
    }
    assert!(out.len() >= 8, "templates: {}", out.len());
    out
}

/// Walks the server's plaintext records: the certificates of its Certificate message, and
/// whether the ServerHello chose TLS 1.3 (supported_versions 0x0304).
fn scan_server_flight(b: &[u8]) -> (Option<Vec<Vec<u8>>>, bool) {
    let mut hs = Vec::new();
    let mut o = 0;
    while o + 5 <= b.len() {
        let len = u16::from_be_bytes([b[o + 3], b[o + 4]]) as usize;
        if b[o] == 22 {
            hs.extend_from_slice(&b[o + 5..(o + 5 + len).min(b.len())]);
        } else if b[o] == 20 {
            break; // ChangeCipherSpec: the rest is encrypted
        }
        o += 5 + len;
    }
    let (mut certs, mut tls13) = (None, false);
    let mut o = 0;
    while o + 4 <= hs.len() {
        let t = hs[o];
        let len = u32::from_be_bytes([0, hs[o + 1], hs[o + 2], hs[o + 3]]) as usize;
        let body = &hs[o + 4..(o + 4 + len).min(hs.len())];
        match t {
            2 => tls13 = body.windows(6).any(|w| w == [0, 0x2b, 0, 2, 3, 4]),
            11 => {
                let mut chain = Vec::new();
                let mut p = 3;
                while p + 3 <= body.len() {
                    let l = u32::from_be_bytes([0, body[p], body[p + 1], body[p + 2]]) as usize;
                    chain.push(body[(p + 3).min(body.len())..(p + 3 + l).min(body.len())].to_vec());
                    p += 3 + l;
                }
                certs = Some(chain);
            }
            _ => {}
        }
        o += 4 + len;
    }
    (certs, tls13)
}

/// The first template with the same certificates as `template`: chains are told apart by
/// their bytes, as chainsniff's chain variants are.
fn template_chain_id(templates: &[Template], template: usize) -> usize {
    let chain = &templates[template].chain;
    templates
        .iter()
        .position(|t| !t.tls13 && t.chain == *chain)
        .unwrap_or(template)
}

// ---------------------------------------------------------------------------------------------
// Conversations in flight.

enum Kind {
    Tls {
        template: usize,
        app_data: usize,
    },
    Http {
        body: usize,
    },
    Dns,
    /// A bulk conversation of the sparse capture: its data is made as it is sent.
    Bulk(Bulk),
}

/// Which conversation to start.
#[derive(Clone, Copy)]
enum Pick {
    /// The default mix: 80 % TLS (any template), 12 % HTTP, 8 % DNS.
    Mixed,
    /// A TLS 1.2 conversation (sparse capture).
    Tls12,
    /// A bulk conversation (sparse capture).
    Bulk,
    Dns,
}

struct Bulk {
    /// TLS application data (else an HTTP response body).
    tls: bool,
    /// Server bytes still to make.
    remaining: usize,
    /// Bytes of the first chunk not sent: the capture began inside a record.
    skip: usize,
    /// The HTTP response header is still to send.
    header: bool,
}

/// Bulk data is made and queued this much at a time.
const BULK_CHUNK: usize = 64 * 1024;

struct Flow {
    conv: synth::Conversation,
    kind: Kind,
    /// Segments still to send: (from the client, payload, flags).
    queue: std::collections::VecDeque<(bool, Vec<u8>, Flags)>,
    /// A segment held back to be sent after the next one (reordering).
    held: Option<(bool, u32, u32, Vec<u8>)>,
    opened: bool,
}

impl Flow {
    fn is_bulk(&self) -> bool {
        matches!(self.kind, Kind::Bulk(_))
    }
}

fn app_records(rng: &mut Rng, total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + 64);
    while out.len() < total {
        let len = (512 + rng.below(16_384 - 512) as usize).min(total - out.len() + 24);
        out.extend_from_slice(&[23, 3, 3]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        let start = out.len();
        out.resize(start + len, 0);
        for chunk in out[start..].chunks_mut(8) {
            let r = rng.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    out
}

struct Gen {
    rng: Rng,
    templates: Vec<Template>,
    /// The TLS 1.2 templates (indices into `templates`), for the sparse capture.
    tls12: Vec<usize>,
    mean_data: usize,
    next_client: u32,
    truth: Truth,
}

#[derive(Default, serde::Serialize)]
struct Truth {
    seed: u64,
    bytes: u64,
    frames: u64,
    tls_handshakes: u64,
    certificate_messages: u64,
    status: BTreeMap<&'static str, u64>,
    http_conversations: u64,
    dns_queries: u64,
    /// Sparse capture only: TLS handshakes per 10^6 bytes of capture, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    handshakes_per_mb: Option<f64>,
    /// Sparse capture only: bulk conversations started (TLS from mid-stream and HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    bulk_flows: Option<u64>,
    /// Sparse capture only: bytes of bulk data (TLS records or HTTP body) sent by the servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    bulk_bytes: Option<u64>,
    /// The root causes chainsniff must name (`summary.causes`), by kind, with their counts.
    causes: BTreeMap<&'static str, CauseTruth>,
    /// Per server (address and port): the distinct chains it sent, for `inconsistent_chains`.
    #[serde(skip)]
    chains_of: BTreeMap<SocketAddr, std::collections::BTreeSet<usize>>,
    /// Per cause: the servers that sent such a chain.
    #[serde(skip)]
    cause_servers: BTreeMap<&'static str, std::collections::BTreeSet<SocketAddr>>,
}

/// What one root cause counts: every TLS conversation has its own client address.
#[derive(Default, serde::Serialize)]
struct CauseTruth {
    /// Server chains with it (one per server address and port: the template's chain).
    chains: u64,
    handshakes: u64,
    clients: u64,
    /// Clients whose template shows the client's alert after the server's flight.
    failed_clients: u64,
    /// Of the servers, those that send other clients another chain.
    mixed_servers: u64,
}

impl Gen {
    /// A TLS conversation replaying `template`, counted in the truth.
    fn tls_kind(&mut self, template: usize) -> (Kind, u16) {
        let t = &self.templates[template];
        let app_data = if t.completed {
            (self.rng.below(2 * self.mean_data as u64)) as usize
        } else {
            0
        };
        self.truth.tls_handshakes += 1;
        let status = match (t.certs, t.tls13) {
            (_, true) => "not_visible",
            (Some(1), _) => "incomplete",
            (Some(_), _) => "complete",
            (None, _) => "no_certificate",
        };
        *self.truth.status.entry(status).or_default() += 1;
        if t.certs.is_some() {
            self.truth.certificate_messages += 1;
        }
        let port = [443, 5061, 4443][self.rng.below(3) as usize];
        (Kind::Tls { template, app_data }, port)
    }

    /// The root causes of a conversation replaying `template` with `server`, derived from the
    /// template's bytes: one certificate sent (the intermediate is elsewhere in the capture) is
    /// `missing_intermediate`; a certificate sent twice is `duplicate_certificate`; TLS 1.3
    /// without a key log is `not_judged`.
    fn count_causes(&mut self, template: usize, server: SocketAddr) {
        let t = &self.templates[template];
        let mut kinds: Vec<&'static str> = Vec::new();
        if t.tls13 {
            kinds.push("not_judged");
        } else if t.certs == Some(1) {
            kinds.push("missing_intermediate");
        }
        if (1..t.chain.len()).any(|i| t.chain[..i].contains(&t.chain[i])) {
            kinds.push("duplicate_certificate");
        }
        if !t.tls13 && t.certs.is_some() {
            self.truth
                .chains_of
                .entry(server)
                .or_default()
                .insert(template_chain_id(&self.templates, template));
        }
        for kind in kinds {
            let c = self.truth.causes.entry(kind).or_default();
            c.handshakes += 1;
            c.clients += 1;
            c.failed_clients += u64::from(t.client_alert);
            if kind != "not_judged" {
                self.truth
                    .cause_servers
                    .entry(kind)
                    .or_default()
                    .insert(server);
            }
        }
    }

    /// A bulk conversation of 64 KiB to 8 MiB (log-uniform) from the server.
    fn bulk_kind(&mut self) -> (Kind, u16) {
        let tls = self.rng.below(10) < 7;
        let u = self.rng.below(1 << 20) as f64 / (1u64 << 20) as f64;
        let remaining = ((64.0 * 1024.0) * 128f64.powf(u)) as usize;
        let skip = if tls {
            self.rng.below(1000) as usize
        } else {
            0
        };
        let t = self.truth.bulk_flows.get_or_insert(0);
        *t += 1;
        if !tls {
            self.truth.http_conversations += 1;
        }
        let bulk = Bulk {
            tls,
            remaining,
            skip,
            header: !tls,
        };
        (Kind::Bulk(bulk), if tls { 443 } else { 80 })
    }

    fn new_flow(&mut self, pick: Pick) -> Flow {
        self.next_client += 1;
        let n = self.next_client;
        let v6 = self.rng.chance(150);
        let (client_ip, server_ip): (IpAddr, IpAddr) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    1,
                    0,
                    0,
                    0,
                    (n >> 16) as u16,
                    n as u16,
                )),
                IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    2,
                    0,
                    0,
                    0,
                    0,
                    1 + (n % 4) as u16,
                )),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::from(0x0a10_0000 | (n & 0xf_ffff))),
                IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1 + (n % 4) as u8)),
            )
        };
        let (kind, port) = match pick {
            Pick::Mixed => {
                let roll = self.rng.below(100);
                if roll < 80 {
                    let template = self.rng.below(self.templates.len() as u64) as usize;
                    self.tls_kind(template)
                } else if roll < 92 {
                    self.truth.http_conversations += 1;
                    (
                        Kind::Http {
                            body: 200 + self.rng.below(40_000) as usize,
                        },
                        80,
                    )
                } else {
                    self.truth.dns_queries += 1;
                    (Kind::Dns, 53)
                }
            }
            Pick::Tls12 => {
                let template = self.tls12[self.rng.below(self.tls12.len() as u64) as usize];
                self.tls_kind(template)
            }
            Pick::Bulk => self.bulk_kind(),
            Pick::Dns => {
                self.truth.dns_queries += 1;
                (Kind::Dns, 53)
            }
        };
        let client = SocketAddr::new(client_ip, 10_000 + (n % 50_000) as u16);
        let server = SocketAddr::new(server_ip, port);
        if let Kind::Tls { template, .. } = &kind {
            self.count_causes(*template, server);
        }
        let mut conv = synth::Conversation::new(client, server, self.rng.next() as u32);
        conv.mss = 1448;
        if self.rng.chance(200) {
            conv.vlan = Some(100 + (n % 8) as u16);
        }
        let mut queue = std::collections::VecDeque::new();
        let mut push = |from_client: bool, bytes: &[u8], mss: usize| {
            for chunk in bytes.chunks(mss) {
                queue.push_back((from_client, chunk.to_vec(), ACK));
            }
        };
        match &kind {
            Kind::Tls { template, app_data } => {
                for (from_client, bytes) in &self.templates[*template].turns {
                    push(*from_client, bytes, conv.mss);
                }
                if *app_data > 0 {
                    let req = app_records(&mut self.rng, 300 + *app_data / 20);
                    push(true, &req, conv.mss);
                    let resp = app_records(&mut self.rng, *app_data);
                    push(false, &resp, conv.mss);
                }
            }
            Kind::Http { body } => {
                push(
                    true,
                    b"GET /index.html HTTP/1.1\r\nHost: intranet.contoso.test\r\n\r\n",
                    conv.mss,
                );
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {body}\r\n\r\n"
                )
                .into_bytes();
                resp.extend(std::iter::repeat_n(b'x', *body));
                push(false, &resp, conv.mss);
            }
            Kind::Bulk(b) if b.tls => {}
            Kind::Bulk(_) => push(
                true,
                b"GET /backup.tar HTTP/1.1\r\nHost: files.contoso.test\r\n\r\n",
                conv.mss,
            ),
            Kind::Dns => {}
        }
        if !matches!(kind, Kind::Dns | Kind::Bulk(_)) {
            let fin = Flags { fin: true, ..ACK };
            queue.push_back((true, Vec::new(), fin));
            queue.push_back((false, Vec::new(), fin));
        }
        Flow {
            // A TLS bulk conversation began before the capture: no three-way handshake.
            opened: matches!(&kind, Kind::Bulk(b) if b.tls),
            conv,
            kind,
            queue,
            held: None,
        }
    }

    /// Queues the next chunk of a bulk conversation's data (a pure ACK from the client after
    /// every second segment), and its FINs after the last one.
    fn refill(&mut self, flow: &mut Flow) {
        let Kind::Bulk(b) = &mut flow.kind else {
            return;
        };
        if b.remaining == 0 {
            return;
        }
        let n = b.remaining.min(BULK_CHUNK);
        b.remaining -= n;
        let mut data = if b.tls {
            app_records(&mut self.rng, n)
        } else {
            let mut d = Vec::with_capacity(n + 100);
            if std::mem::take(&mut b.header) {
                d.extend_from_slice(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n\
                         Content-Length: {}\r\n\r\n",
                        n + b.remaining
                    )
                    .as_bytes(),
                );
            }
            d.resize(d.len() + n, b'x');
            d
        };
        let skip = std::mem::take(&mut b.skip).min(data.len());
        data.drain(..skip);
        self.truth.bulk_bytes = Some(self.truth.bulk_bytes.unwrap_or(0) + data.len() as u64);
        for (i, chunk) in data.chunks(flow.conv.mss).enumerate() {
            flow.queue.push_back((false, chunk.to_vec(), ACK));
            if i % 2 == 1 {
                flow.queue.push_back((true, Vec::new(), ACK));
            }
        }
        if b.remaining == 0 {
            let fin = Flags { fin: true, ..ACK };
            flow.queue.push_back((false, Vec::new(), fin));
            flow.queue.push_back((true, Vec::new(), fin));
        }
    }

    /// The next frame of `flow` into `out`; false when the flow has nothing more to send.
    fn next_frame(&mut self, flow: &mut Flow, out: &mut Vec<Vec<u8>>) -> bool {
        if let Kind::Dns = flow.kind {
            let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(b"\x08intranet\x06contoso\x04test\x00\x00\x01\x00\x01");
            let (IpAddr::V4(_), IpAddr::V4(_)) = (flow.conv.client.ip(), flow.conv.server.ip())
            else {
                return false; // DNS over IPv4 only
            };
            let mut f = Vec::new();
            synth::udp_frame(flow.conv.client, flow.conv.server, &q, &mut f);
            out.push(f.clone());
            let mut a = q.clone();
            a[2] = 0x81;
            a[3] = 0x80;
            a[7] = 1;
            a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 0, 80]);
            synth::udp_frame(flow.conv.server, flow.conv.client, &a, &mut f);
            out.push(f);
            return false;
        }
        if !flow.opened {
            flow.opened = true;
            let c = &mut flow.conv;
            let mut f = Vec::new();
            synth::tcp_frame(
                c.client,
                c.server,
                c.vlan,
                c.client_seq,
                0,
                SYN,
                &[],
                &mut f,
            );
            out.push(f.clone());
            synth::tcp_frame(
                c.server,
                c.client,
                c.vlan,
                c.server_seq,
                c.client_seq.wrapping_add(1),
                SYN_ACK,
                &[],
                &mut f,
            );
            out.push(f.clone());
            c.client_seq = c.client_seq.wrapping_add(1);
            c.server_seq = c.server_seq.wrapping_add(1);
            synth::tcp_frame(
                c.client,
                c.server,
                c.vlan,
                c.client_seq,
                c.server_seq,
                ACK,
                &[],
                &mut f,
            );
            out.push(f);
            return true;
        }
        if flow.queue.is_empty() {
            self.refill(flow);
        }
        let Some((from_client, payload, flags)) = flow.queue.pop_front() else {
            if let Some((fc, seq, ack, data)) = flow.held.take() {
                out.push(self.segment_at(flow, fc, seq, ack, &data));
            }
            return false;
        };
        let (seq, ack) = if from_client {
            (flow.conv.client_seq, flow.conv.server_seq)
        } else {
            (flow.conv.server_seq, flow.conv.client_seq)
        };
        // Some segments are held back and sent after the next one (reordering), some are sent
        // twice (retransmission).
        let next_same_side = flow
            .queue
            .front()
            .is_some_and(|(c, p, _)| *c == from_client && !p.is_empty());
        let mut f = Vec::new();
        flow.conv.segment(from_client, &payload, flags, &mut f);
        if flow.held.is_none() && !payload.is_empty() && next_same_side && self.rng.chance(20) {
            flow.held = Some((from_client, seq, ack, payload));
            return true;
        }
        out.push(f);
        if let Some((fc, s, a, data)) = flow.held.take() {
            out.push(self.segment_at(flow, fc, s, a, &data));
        }
        if !payload.is_empty() && self.rng.chance(5) {
            out.push(self.segment_at(flow, from_client, seq, ack, &payload));
        }
        true
    }

    fn segment_at(
        &self,
        flow: &Flow,
        from_client: bool,
        seq: u32,
        ack: u32,
        data: &[u8],
    ) -> Vec<u8> {
        let c = &flow.conv;
        let (src, dst) = if from_client {
            (c.client, c.server)
        } else {
            (c.server, c.client)
        };
        let mut f = Vec::new();
        synth::tcp_frame(src, dst, c.vlan, seq, ack, ACK, data, &mut f);
        f
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let target = parse_size(&args.size);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let templates = load_templates(root);
    let tls12 = (0..templates.len())
        .filter(|&i| !templates[i].tls13)
        .collect();
    let mut g = Gen {
        rng: Rng(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        templates,
        tls12,
        mean_data: args.mean_data,
        next_client: 0,
        truth: Truth {
            seed: args.seed,
            ..Truth::default()
        },
    };
    let file = std::fs::File::create(&args.out)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut flows: Vec<Flow> = Vec::new();
    let mut frames = Vec::new();
    let mut ts: u64 = 1_796_000_000_000_000; // 2026-11-30, inside the PKI's validity
    let mut stopping = false;
    let sparse = (args.sparse || args.handshakes_per_mb.is_some())
        .then(|| args.handshakes_per_mb.unwrap_or(26.0));
    let mut bulk_in_flight = 0;
    while w.bytes < target || !flows.is_empty() {
        if !stopping && w.bytes >= target {
            stopping = true;
            if sparse.is_some() {
                // The capture ends in the middle of the bulk transfers.
                flows.retain(|f| !f.is_bulk());
            }
        }
        if let Some(per_mb) = sparse {
            while !stopping && bulk_in_flight < args.bulk_flows {
                flows.push(g.new_flow(Pick::Bulk));
                bulk_in_flight += 1;
            }
            while !stopping && (g.truth.tls_handshakes as f64) < per_mb * w.bytes as f64 / 1e6 {
                if g.rng.chance(500) {
                    flows.push(g.new_flow(Pick::Dns));
                }
                flows.push(g.new_flow(Pick::Tls12));
            }
        }
        while sparse.is_none() && !stopping && flows.len() < args.concurrency {
            let f = g.new_flow(Pick::Mixed);
            flows.push(f);
        }
        if flows.is_empty() {
            break;
        }
        let i = g.rng.below(flows.len() as u64) as usize;
        let mut flow = flows.swap_remove(i);
        let more = g.next_frame(&mut flow, &mut frames);
        for f in frames.drain(..) {
            ts += 1 + g.rng.below(20);
            w.packet(ts, &f)?;
        }
        if more {
            flows.push(flow);
        } else if flow.is_bulk() {
            bulk_in_flight -= 1;
        }
    }
    g.truth.bytes = w.bytes;
    g.truth.frames = w.packets;
    // A server that sends different chains is told in the cause of its faulty one (the
    // leaf-only chain); only the others form the `inconsistent_chains` cause.
    let cause_servers = std::mem::take(&mut g.truth.cause_servers);
    let faulty = cause_servers
        .get("missing_intermediate")
        .cloned()
        .unwrap_or_default();
    let mixed: Vec<(SocketAddr, usize)> = g
        .truth
        .chains_of
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(s, c)| (*s, c.len()))
        .collect();
    for (kind, servers) in &cause_servers {
        let c = g.truth.causes.entry(kind).or_default();
        c.chains = servers.len() as u64;
        if *kind == "missing_intermediate" {
            c.mixed_servers = mixed.iter().filter(|(s, _)| servers.contains(s)).count() as u64;
        }
    }
    let inconsistent: Vec<usize> = mixed
        .iter()
        .filter(|(s, _)| !faulty.contains(s))
        .map(|(_, n)| *n)
        .collect();
    if !inconsistent.is_empty() {
        let c = g.truth.causes.entry("inconsistent_chains").or_default();
        c.chains = inconsistent.iter().sum::<usize>() as u64;
    }
    if sparse.is_some() {
        g.truth.handshakes_per_mb = Some(g.truth.tls_handshakes as f64 / (w.bytes as f64 / 1e6));
        g.truth.bulk_flows.get_or_insert(0);
        g.truth.bulk_bytes.get_or_insert(0);
    }
    w.into_inner().flush()?;
    let truth_path = PathBuf::from(format!("{}.truth.json", args.out.display()));
    std::fs::write(&truth_path, serde_json::to_string_pretty(&g.truth)? + "\n")?;
    eprintln!(
        "wrote {} ({} bytes, {} frames, {} TLS handshakes) and {}",
        args.out.display(),
        g.truth.bytes,
        g.truth.frames,
        g.truth.tls_handshakes,
        truth_path.display()
    );
    Ok(())
}
