//! Hostile captures, generated here: each asserts the bounded, honest outcome (issue 7).

mod common;

use chainsniff::model::At;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use chainsniff::analysis::Limits;
use chainsniff::flow::{FlowLimits, Reassembler};
use chainsniff::model::Timestamp;
use chainsniff::pki::{FindingKind, Status};
use chainsniff::report::{HandshakeReport, Report};
use chainsniff::tls::handshake::TlsConn;
use chainsniff::wire::{TcpFlags, TcpSegment};
use chainsniff::{Options, render};
use common::synth::{self, Conversation, PcapWriter};
use common::{rendered, repo, tmp};

fn der(pem_path: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(repo(pem_path)).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&b64)
}

/// Minimal base64 (standard alphabet) for the PEM fixtures.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn write_pcap(name: &str, frames: &[Vec<u8>]) -> String {
    let path = tmp(name);
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.packet(1_790_000_000_000_000 + i as u64 * 1000, f)
            .unwrap();
    }
    path.to_string_lossy().into_owned()
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)), port)
}

/// A TLS 1.2 handshake up to the server's flight (ServerHello, `flight`, ServerHelloDone).
fn server_flight(conv: &mut Conversation, sni: &str, flight: &[u8], frames: &mut Vec<Vec<u8>>) {
    conv.open(frames);
    conv.send(
        true,
        &synth::handshake_records(&synth::client_hello(sni, [1; 32])),
        frames,
    );
    let mut msgs = synth::server_hello([2; 32]);
    msgs.extend_from_slice(flight);
    msgs.extend(synth::server_hello_done());
    conv.send(false, &synth::handshake_records(&msgs), frames);
}

fn analyze(path: &str, opts: &Options) -> Report {
    chainsniff::run(&[path.to_string()], opts).unwrap()
}

fn only(r: &Report) -> HandshakeReport {
    assert_eq!(r.handshakes.len(), 1, "{:#?}", r.handshakes);
    r.handshakes.get(0)
}

#[test]
fn a_million_syns_keep_the_flow_table_bounded() {
    let limits = FlowLimits::default();
    let mut r = Reassembler::with_limits(TlsConn::new, limits);
    for i in 0..1_000_000u32 {
        let seg = TcpSegment {
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 16))),
            dst: "192.0.2.1".parse().unwrap(),
            sport: (i & 0xffff) as u16,
            dport: 443,
            seq: i,
            ack: 0,
            flags: TcpFlags {
                syn: true,
                ack: false,
                fin: false,
                rst: false,
            },
            payload: &[],
            missing: 0,
        };
        let at = At {
            frame: u64::from(i) + 1,
            ts: Timestamp::from_parts(1_790_000_000 + i64::from(i / 10_000), 0),
        };
        r.process(at, &seg);
        assert!(r.live_handlers() <= limits.max_flows);
        assert!(r.settled() <= limits.max_settled);
    }
    assert_eq!(r.stats.connections, 1_000_000);
    let (handshakes, _, ev) = r.finish();
    assert!(handshakes.is_empty(), "SYNs alone are no handshake");
    // Every conversation beyond the bound was evicted (by the bound or for being idle: the
    // flood lasts 100 s) and counted, and ended ones beyond their own bound forgotten.
    assert!(ev.full + ev.idle >= 1_000_000 - limits.max_flows as u64);
    // The table is full from the frame whose conversation finds its sub-table holding its
    // eighth of the bound (before any idle sweep: the first comes after 30 s, frame 300 001).
    let subs = chainsniff::flow::subs_for(limits);
    let share = limits.max_flows / subs;
    let mut held = vec![0; subs];
    let first_full = (0..1_000_000u32).find_map(|i| {
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 16)));
        let key = (src, (i & 0xffff) as u16, "192.0.2.1".parse().unwrap(), 443);
        let sub = chainsniff::flow::sub_of(&key, subs);
        held[sub] += 1;
        (held[sub] > share).then_some(u64::from(i) + 1)
    });
    assert_eq!(subs, 8);
    assert!(
        first_full.is_some_and(|f| f > 90_000 && f <= 100_001),
        "{first_full:?}"
    );
    assert!(ev.full > 0 && ev.first_full_frame == first_full);
    assert!(ev.forgotten > 0);
}

#[test]
fn a_flood_evicts_and_warns_but_numbers_streams_like_wireshark() {
    let mut frames = Vec::new();
    // A handshake whose server never answers before a flood of 3000 SYNs.
    let mut early = Conversation::new(addr(1, 50000), addr(200, 443), 7);
    early.open(&mut frames);
    early.send(
        true,
        &synth::handshake_records(&synth::client_hello("early.example", [3; 32])),
        &mut frames,
    );
    let mut f = Vec::new();
    for i in 0..3000u16 {
        synth::tcp_frame(
            addr(2, 1024 + i),
            addr(200, 443),
            None,
            u32::from(i),
            0,
            synth::SYN,
            &[],
            &mut f,
        );
        frames.push(f.clone());
    }
    // Then a complete handshake: leaf and issuing CA.
    let (leaf, issuing) = (
        der("captures/pki/leaf.pem"),
        der("captures/pki/issuing.pem"),
    );
    let mut late = Conversation::new(addr(3, 50001), addr(200, 443), 9);
    server_flight(
        &mut late,
        "late.example",
        &synth::certificate(&[&leaf, &issuing]),
        &mut frames,
    );
    let path = write_pcap("flood.pcap", &frames);
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        limits: Limits {
            max_flows: 1000,
            ..Limits::default()
        },
        ..Options::default()
    };
    let r = analyze(&path, &opts);
    let warnings = &r.captures[0].summary.warnings;
    assert!(
        warnings.iter().any(
            |w| w.kind == chainsniff::capture::WarningKind::FlowTableFull
                && w.frame == Some(1004)
                && w.text.contains("--max-flows 1000")
        ),
        "{warnings:?}"
    );
    assert!(r.captures[0].flows_evicted >= 2000);
    assert_eq!(r.handshakes.len(), 2);
    let early = &r.handshakes.get(0);
    assert_eq!(
        (early.stream, early.sni.as_deref()),
        (0, Some("early.example"))
    );
    assert_eq!(early.status, Status::Truncated, "never judged incomplete");
    assert!(
        early
            .notes
            .iter()
            .any(|n| n.kind == chainsniff::judge::NoteKind::Evicted
                && n.frame == Some(1004)
                && n.text
                    .contains("stopped following this connection at frame 1004")),
        "{:?}",
        early.notes
    );
    // 1 + 3000 conversations before it: stream 3001, as Wireshark numbers it.
    let late = &r.handshakes.get(1);
    assert_eq!(late.stream, 3001);
    assert_eq!(late.status, Status::Complete, "{:?}", late.findings);

    // The CLI takes the limit and still exits 0.
    let out = Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(["analyze", &path, "--max-flows", "1000", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-flows 1000"), "{stderr}");
    let bad = Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(["analyze", &path, "--max-flows", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_handshake_declaring_16_mb_is_skipped_and_said() {
    let mut frames = Vec::new();
    let mut conv = Conversation::new(addr(1, 50000), addr(200, 443), 1);
    // A Certificate message declaring 2^24-1 bytes, followed by 2 MB of it, then the server
    // closes the connection.
    let mut huge = vec![11, 0xff, 0xff, 0xff];
    huge.resize(2 << 20, 0x30);
    server_flight(&mut conv, "huge.example", &huge, &mut frames);
    let mut f = Vec::new();
    conv.segment(false, &[], synth::FIN_ACK, &mut f);
    frames.push(f);
    let path = write_pcap("huge.pcap", &frames);
    let r = analyze(&path, &Options::default());
    let h = only(&r);
    assert_eq!(h.status, Status::Truncated);
    assert!(h.certificates.is_empty());
    assert!(
        h.notes.iter().any(|n| n.kind == chainsniff::judge::NoteKind::OversizedMessage && n.text.contains(
            "the Certificate message declares 16777215 bytes, more than --max-handshake-bytes 1048576"
        )),
        "{:?}",
        h.notes
    );
    assert_eq!(r.captures[0].oversized_messages, 1);
    assert!(r.captures[0].summary.warnings.iter().any(|w| w.kind
        == chainsniff::capture::WarningKind::OversizedMessages
        && w.text.contains("larger than --max-handshake-bytes 1048576")));
}

#[test]
fn a_certificate_message_with_thousands_of_certificates_is_reported_in_bounds() {
    let leaf = der("captures/pki/leaf.pem");
    let issuing = der("captures/pki/issuing.pem");
    let mut certs: Vec<&[u8]> = vec![&leaf];
    certs.extend(std::iter::repeat_n(issuing.as_slice(), 3000));
    let mut frames = Vec::new();
    let mut conv = Conversation::new(addr(1, 50000), addr(200, 443), 1);
    server_flight(
        &mut conv,
        "many.example",
        &synth::certificate(&certs),
        &mut frames,
    );
    let path = write_pcap("many.pcap", &frames);
    // 3.5 MB of certificates: over the default limit, so raise it.
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        limits: Limits {
            max_handshake_bytes: 1 << 24,
            ..Limits::default()
        },
        ..Options::default()
    };
    let r = analyze(&path, &opts);
    let h = only(&r);
    assert_eq!(h.certificates.len(), 3001);
    // Sent in full, the chain is complete; the 2999 extra copies are one finding.
    assert_eq!(h.status, Status::Complete);
    let dup: Vec<_> = h
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::DuplicateCertificate)
        .collect();
    assert_eq!(dup.len(), 1, "{:#?}", h.findings);
    assert!(dup[0].message.len() < 400, "{}", dup[0].message);
    let text = rendered(render::text::write, &r);
    assert!(text.len() < 600_000, "text report of {} bytes", text.len());
}

#[test]
fn a_chain_that_loops_ends_and_is_named() {
    let a = std::fs::read(repo("captures/pki/hostile/loop-a.der")).unwrap();
    let b = std::fs::read(repo("captures/pki/hostile/loop-b.der")).unwrap();
    let mut frames = Vec::new();
    let mut conv = Conversation::new(addr(1, 50000), addr(200, 443), 1);
    server_flight(
        &mut conv,
        "loop.example",
        &synth::certificate(&[&a, &b, &a, &b]),
        &mut frames,
    );
    let path = write_pcap("loop.pcap", &frames);
    let r = analyze(&path, &Options::default());
    let h = only(&r);
    // A issued by B issued by A...: no root, so the end of the chain is unknown.
    assert_eq!(h.certificates.len(), 4);
    assert_ne!(h.status, Status::Complete);
    assert!(h.path.len() <= 4, "{:?}", h.path);
    let kinds: Vec<_> = h.findings.iter().map(|f| f.kind).collect();
    assert!(
        kinds.contains(&FindingKind::DuplicateCertificate),
        "{kinds:?}"
    );
    // Named as the loop it is, not as an issuer that was never sent.
    assert!(kinds.contains(&FindingKind::ChainLoop), "{kinds:?}");
    assert!(!kinds.contains(&FindingKind::UnknownIssuer), "{kinds:?}");
    assert_eq!(h.status, Status::Undetermined);
    let lp = h
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::ChainLoop)
        .unwrap();
    assert!(
        lp.message
            .starts_with("CN=Loop CA B is issued by CN=Loop CA A, which is already on the path"),
        "{}",
        lp.message
    );
}

#[test]
fn names_with_control_characters_are_escaped_in_every_format() {
    let evil = std::fs::read(repo("captures/pki/hostile/ctrl-names.der")).unwrap();
    let mut frames = Vec::new();
    let mut conv = Conversation::new(addr(1, 50000), addr(200, 443), 1);
    server_flight(
        &mut conv,
        "sni\u{1b}]0;owned\u{7}.example<b>",
        &synth::certificate(&[&evil]),
        &mut frames,
    );
    let path = write_pcap("ctrl.pcap", &frames);
    let r = analyze(&path, &Options::default());
    let h = only(&r);
    assert!(h.certificates[0].subject.contains("evil"));
    for (format, out) in [
        ("text", rendered(render::text::write, &r)),
        ("markdown", rendered(render::markdown::write, &r)),
        ("json", rendered(render::json::write, &r)),
        ("html", rendered(render::html::write, &r)),
    ] {
        for c in out.chars() {
            assert!(
                !c.is_control() || c == '\n',
                "{format}: raw control character U+{:04X}",
                c as u32
            );
            assert!(
                !('\u{202a}'..='\u{202e}').contains(&c) && !('\u{2066}'..='\u{2069}').contains(&c),
                "{format}: raw bidi override U+{:04X}",
                c as u32
            );
        }
        if format == "markdown" || format == "html" {
            assert!(
                !out.contains("<script>alert"),
                "{format} passes HTML through"
            );
            assert!(!out.contains("example<b>"), "{format} passes HTML through");
        }
        if format == "html" {
            assert!(out.contains("&lt;script&gt;alert(1)&lt;"));
        }
    }
    // JSON keeps the exact name, escaped.
    let json: serde_json::Value = serde_json::from_str(&rendered(render::json::write, &r)).unwrap();
    let subject = json["handshakes"][0]["certificates"][0]["subject"]
        .as_str()
        .unwrap();
    assert!(subject.contains("\u{1b}[31m"), "{subject:?}");
}

#[test]
fn deeply_nested_tunnels_are_refused_not_recursed() {
    // IPv4-in-IPv4 nested 200 times around a TCP segment.
    let mut inner = Vec::new();
    synth::tcp_frame(
        addr(1, 50000),
        addr(200, 443),
        None,
        1,
        0,
        synth::SYN,
        &[],
        &mut inner,
    );
    let mut ip = inner[14..].to_vec();
    for _ in 0..200 {
        let mut outer = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 4, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = (20 + ip.len()).min(0xffff) as u16;
        outer[2..4].copy_from_slice(&total.to_be_bytes());
        outer.extend_from_slice(&ip);
        ip = outer;
    }
    let mut frame = inner[..14].to_vec();
    frame.extend_from_slice(&ip);
    let path = write_pcap("deep.pcap", &[frame]);
    let r = analyze(&path, &Options::default());
    assert_eq!(r.captures[0].undecodable_frames, 1);
    assert!(
        r.captures[0].summary.warnings.iter().any(|w| w.kind
            == chainsniff::capture::WarningKind::UndecodableFrame
            && w.frame == Some(1)
            && w.text.contains("nested encapsulations")),
        "{:?}",
        r.captures[0].summary.warnings
    );
}

#[test]
fn a_conflicting_retransmission_of_the_certificate_is_reported() {
    let leaf = der("captures/pki/leaf.pem");
    let issuing = der("captures/pki/issuing.pem");
    let mut frames = Vec::new();
    let mut conv = Conversation::new(addr(1, 50000), addr(200, 443), 1);
    conv.open(&mut frames);
    conv.send(
        true,
        &synth::handshake_records(&synth::client_hello("conflict.example", [1; 32])),
        &mut frames,
    );
    let mut msgs = synth::server_hello([2; 32]);
    msgs.extend(synth::certificate(&[&leaf, &issuing]));
    msgs.extend(synth::server_hello_done());
    let flight = synth::handshake_records(&msgs);
    let start = conv.server_seq;
    conv.send(false, &flight, &mut frames);
    let sent = frames.len();
    // The first segment again, with other bytes in the middle of the leaf certificate.
    let mut forged = flight[..1000.min(flight.len())].to_vec();
    forged[600] ^= 0xff;
    let mut f = Vec::new();
    synth::tcp_frame(
        conv.server,
        conv.client,
        None,
        start,
        conv.client_seq,
        synth::ACK,
        &forged,
        &mut f,
    );
    frames.push(f);
    let path = write_pcap("conflict.pcap", &frames);
    let opts = Options {
        trust: vec![repo("captures/pki/root.pem")],
        ..Options::default()
    };
    let r = analyze(&path, &opts);
    let h = only(&r);
    // The first copy is used (the chain is the real one) and the conflict is said, with its frame.
    assert_eq!(h.status, Status::Complete);
    let note = format!(
        "frame {}: a retransmission carried different bytes",
        sent + 1
    );
    assert!(
        h.notes
            .iter()
            .any(|n| n.kind == chainsniff::judge::NoteKind::MalformedRecord
                && n.frame == Some(sent as u64 + 1)
                && n.text.starts_with(&note)),
        "{:?}",
        h.notes
    );
}

#[test]
fn a_conflicting_retransmission_of_a_client_hello_begun_in_an_earlier_segment_is_reported() {
    // The ClientHello spans two segments (as a post-quantum key share makes it do); the
    // first, sent again with other bytes, is one the handshake was read from, though no
    // hello was complete when it came.
    let mut frames = Vec::new();
    let mut conv = Conversation::new(addr(1, 50001), addr(200, 443), 1);
    conv.open(&mut frames);
    let hello = synth::handshake_records(&synth::client_hello("split.example", [3; 32]));
    let start = conv.client_seq;
    conv.mss = 40;
    conv.send(true, &hello, &mut frames);
    let mut forged = hello[..40].to_vec();
    forged[20] ^= 0xff;
    let mut f = Vec::new();
    synth::tcp_frame(
        conv.client,
        conv.server,
        None,
        start,
        conv.server_seq,
        synth::ACK,
        &forged,
        &mut f,
    );
    frames.push(f);
    let at = frames.len() as u64;
    let path = write_pcap("conflict-hello.pcap", &frames);
    let r = analyze(&path, &Options::default());
    let h = only(&r);
    assert_eq!(h.sni.as_deref(), Some("split.example"));
    assert!(
        h.notes
            .iter()
            .any(|n| n.kind == chainsniff::judge::NoteKind::MalformedRecord
                && n.frame == Some(at)
                && n.text.contains("a retransmission carried different bytes")),
        "{:?}",
        h.notes
    );
}

#[test]
fn idle_udp_conversations_are_evicted_and_counted() {
    // A datagram, then 20 minutes later a datagram of another conversation: the first,
    // idle for longer than 10 minutes, is evicted (as TCP conversations are). (Not on the DNS
    // ports: a DNS conversation is given up at its first datagram.)
    let path = tmp("idle-udp.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let mut f = Vec::new();
    synth::udp_frame(addr(1, 5000), addr(200, 5000), b"not dtls", &mut f);
    w.packet(1_790_000_000_000_000, &f).unwrap();
    synth::udp_frame(addr(2, 5000), addr(200, 5000), b"not dtls", &mut f);
    w.packet(1_790_001_200_000_000, &f).unwrap();
    drop(w);
    let r = analyze(&path.to_string_lossy(), &Options::default());
    assert_eq!(r.captures[0].flows_evicted, 1);
    assert!(
        r.captures[0]
            .summary
            .warnings
            .iter()
            .any(|w| w.kind == chainsniff::capture::WarningKind::IdleEvicted
                && w.text
                    .starts_with("1 UDP conversation idle for more than 600 s")),
        "{:?}",
        r.captures[0].summary.warnings
    );
}
