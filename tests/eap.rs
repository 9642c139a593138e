//! TLS inside EAP (802.1X), end to end: the six captures recorded from FreeRADIUS 3.2.1,
//! eapol_test, hostapd and wpa_supplicant 2.10 (captures/README.md, "The 802.1X captures, frame
//! by frame") must give exactly their handshakes: protocol and transport, client and server,
//! the certificates sent, the frames, the chain's status and verdict with the Tailspin root, the
//! supplicant's reaction and identity. Then captures built from their frames: an EAPOL
//! conversation behind a VLAN tag and addressed unicast (as on Wi-Fi), two supplicants of one
//! authenticator on one link, two authentications in one RADIUS conversation, and every
//! capture cut after each frame.

mod common;
use common::synth::{PcapWriter, udp_frame};
use common::{pki_sha, repo, repo_path, tmp};

use std::net::SocketAddr;

use chainsniff::judge::ReactionKind;
use chainsniff::model::Protocol;
use chainsniff::pki::{FindingKind, Status, Verdict};
use chainsniff::report::HandshakeReport;
use chainsniff::{Options, Report};

const PHONE: &str = "00:04:f2:00:00:11";
const SWITCH: &str = "00:1b:54:00:00:01";
const WIRED_FILTER: &str =
    "eapol && eth.dst.ig == 1 && (eth.src == 00:04:f2:00:00:11 || eth.src == 00:1b:54:00:00:01)";

fn tailspin() -> Options {
    Options {
        trust: vec![repo("captures/pki/eap/root.pem")],
        no_default_trust: true,
        ..Default::default()
    }
}

fn run(path: &str) -> Report {
    chainsniff::run(&[path.to_string()], &tailspin()).unwrap()
}

fn only(r: &Report) -> HandshakeReport {
    assert_eq!(r.handshakes.len(), 1, "one handshake");
    r.handshakes.get(0)
}

fn shas(c: &[std::sync::Arc<chainsniff::pki::CertSummary>]) -> Vec<String> {
    c.iter().map(|c| c.sha256.clone()).collect()
}

fn kinds(h: &HandshakeReport) -> Vec<FindingKind> {
    h.findings.iter().map(|f| f.kind).collect()
}

/// What one capture must give.
struct Expected {
    capture: &'static str,
    protocol: Protocol,
    json_protocol: &'static str,
    identity: &'static str,
    client_hello: u64,
    certificate: u64,
    /// The server sent the leaf only.
    leaf_only: bool,
    /// The phone's Certificate (EAP-TLS with the full chain).
    client_certificate: Option<u64>,
    reaction: ReactionKind,
    reaction_frame: u64,
}

fn check_common(e: &Expected, h: &HandshakeReport) {
    let c = e.capture;
    assert_eq!(h.protocol, e.protocol, "{c}");
    let json = serde_json::to_value(h).unwrap();
    assert_eq!(json["protocol"], e.json_protocol, "{c}");
    assert_eq!(h.stream, 0, "{c}");
    assert_eq!(
        h.client_mac.as_deref(),
        Some(PHONE),
        "{c}: the supplicant's MAC"
    );
    assert_eq!(h.eap_identity.as_deref(), Some(e.identity), "{c}");
    assert_eq!(h.sni, None, "{c}: wpa_supplicant sends no SNI");
    assert_eq!(h.version.as_deref(), Some("TLS 1.2"), "{c}");
    assert_eq!(
        h.cipher_suite.as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        "{c}"
    );
    assert_eq!(h.client_hello_frame, Some(e.client_hello), "{c}");
    assert_eq!(h.certificate_frame, Some(e.certificate), "{c}");
    let (radius, issuing) = (pki_sha("eap/radius"), pki_sha("eap/issuing"));
    if e.leaf_only {
        assert_eq!(shas(&h.certificates), std::slice::from_ref(&radius), "{c}");
        assert_eq!(h.status, Status::Incomplete, "{c}");
        assert_eq!(h.verdict, Verdict::Invalid, "{c}");
        assert_eq!(kinds(h), [FindingKind::MissingIssuer], "{c}");
        let f = &h.findings[0];
        assert_eq!(f.frame, Some(e.certificate), "{c}");
        assert!(
            f.message.contains("Tailspin Issuing CA"),
            "{c}: {}",
            f.message
        );
    } else {
        assert_eq!(
            shas(&h.certificates),
            [radius.clone(), issuing.clone()],
            "{c}"
        );
        assert_eq!(h.status, Status::Complete, "{c}");
        assert_eq!(h.verdict, Verdict::Valid, "{c}");
        assert!(h.findings.is_empty(), "{c}: {:?}", kinds(h));
    }
    assert_eq!(
        h.certificates[0].subject,
        "O=Tailspin, CN=radius.tailspin.test"
    );
    match e.client_certificate {
        Some(frame) => {
            assert_eq!(
                shas(&h.client_certificates),
                [pki_sha("eap/phone-0011"), issuing],
                "{c}"
            );
            assert_eq!(h.client_certificate_frame, Some(frame), "{c}");
        }
        None => assert!(h.client_certificates.is_empty(), "{c}"),
    }
    let r = &h.client_reaction;
    assert_eq!(r.kind, e.reaction, "{c}: {}", r.detail);
    assert_eq!(r.frame, Some(e.reaction_frame), "{c}: {}", r.detail);
    if e.reaction == ReactionKind::Alert {
        assert_eq!(r.alert.as_deref(), Some("unknown_ca"), "{c}");
        assert_eq!(r.alert_level.as_deref(), Some("fatal"), "{c}");
    }
}

#[test]
fn radius_eap_tls_leaf_only_unknown_ca() {
    let e = Expected {
        capture: "captures/eap-radius-leaf-only.pcap",
        protocol: Protocol::EapTls,
        json_protocol: "eap-tls",
        identity: "phone-0011@tailspin.test",
        client_hello: 3,
        certificate: 6,
        leaf_only: true,
        client_certificate: None,
        reaction: ReactionKind::Alert,
        reaction_frame: 7,
    };
    let r = run(&repo_path(e.capture));
    let h = only(&r);
    check_common(&e, &h);
    assert_eq!(h.transport, "udp");
    assert_eq!(h.filter, "udp.stream == 0");
    assert_eq!(h.client.ip.to_string(), "127.0.4.2", "the NAS, eapol_test");
    assert_eq!(h.server.to_string(), "127.0.4.1:1812");
    assert_eq!(h.server_mac, None);
    assert_eq!(
        h.server_hello_frame,
        Some(6),
        "reassembled with the Certificate"
    );
    assert_eq!(h.server_hello_done_frame, Some(6));
    assert_eq!(h.findings[0].filter.as_deref(), Some("udp.stream == 0"));
    assert_eq!(
        r.summary.headlines,
        [
            "missing issuer O=Tailspin, CN=Tailspin Issuing CA (not in the capture): 1 chain of 127.0.4.1:1812; 1 client (1 JA4 t12i280500_d943125447b4_a44c6288192a: phone-0011@tailspin.test): 1 failed (alert unknown_ca, first in frame 7). Fix: Send the issuing CA certificate after the leaf."
        ]
    );
    assert_eq!(r.captures[0].other_frames, 0);
}

#[test]
fn radius_eap_tls_full_chain() {
    let e = Expected {
        capture: "captures/eap-radius-full-chain.pcap",
        protocol: Protocol::EapTls,
        json_protocol: "eap-tls",
        identity: "phone-0011@tailspin.test",
        client_hello: 3,
        certificate: 8,
        leaf_only: false,
        client_certificate: Some(11),
        reaction: ReactionKind::Completed,
        reaction_frame: 11,
    };
    let r = run(&repo_path(e.capture));
    let h = only(&r);
    check_common(&e, &h);
    assert_eq!(
        (h.transport.as_ref(), h.filter.as_str()),
        ("udp", "udp.stream == 0")
    );
    assert_eq!(h.server.to_string(), "127.0.4.1:1812");
    assert!(h.notes.is_empty(), "{:?}", h.notes);
    assert!(r.summary.headlines.is_empty(), "{:?}", r.summary.headlines);
}

#[test]
fn radius_peap() {
    let e = Expected {
        capture: "captures/eap-peap-radius.pcap",
        protocol: Protocol::Peap,
        json_protocol: "peap",
        identity: "anonymous@tailspin.test",
        client_hello: 3,
        certificate: 8,
        leaf_only: false,
        client_certificate: None,
        reaction: ReactionKind::Completed,
        reaction_frame: 9,
    };
    let h = only(&run(&repo_path(e.capture)));
    check_common(&e, &h);
    assert_eq!(
        (h.transport.as_ref(), h.filter.as_str()),
        ("udp", "udp.stream == 0")
    );
}

#[test]
fn radius_ttls() {
    let e = Expected {
        capture: "captures/eap-ttls-radius.pcap",
        protocol: Protocol::EapTtls,
        json_protocol: "eap-ttls",
        identity: "anonymous@tailspin.test",
        client_hello: 3,
        certificate: 8,
        leaf_only: false,
        client_certificate: None,
        reaction: ReactionKind::Completed,
        reaction_frame: 9,
    };
    let h = only(&run(&repo_path(e.capture)));
    check_common(&e, &h);
    assert_eq!(
        (h.transport.as_ref(), h.filter.as_str()),
        ("udp", "udp.stream == 0")
    );
}

fn check_wired(h: &HandshakeReport) {
    assert_eq!(h.transport, "eapol");
    assert_eq!(h.filter, WIRED_FILTER);
    assert_eq!(
        h.client.to_string(),
        PHONE,
        "an EAPOL end is shown as its MAC"
    );
    assert_eq!(h.server.to_string(), SWITCH);
    assert_eq!(
        h.client
            .mac()
            .map(|m| chainsniff::model::mac_string(&m))
            .as_deref(),
        Some(PHONE)
    );
    assert_eq!(h.server_mac.as_deref(), Some(SWITCH));
    let json = serde_json::to_value(h).unwrap();
    assert_eq!(json["client"]["ip"], "fe80::204:f2ff:fe00:11");
    assert_eq!(json["client"]["port"], 0);
    assert_eq!(json["client_mac"], PHONE);
    assert_eq!(json["server_mac"], SWITCH);
    assert_eq!(json["transport"], "eapol");
}

#[test]
fn wired_eapol_leaf_only_unknown_ca() {
    let e = Expected {
        capture: "captures/eapol-wired-leaf-only.pcap",
        protocol: Protocol::EapTls,
        json_protocol: "eap-tls",
        identity: "phone-0011@tailspin.test",
        client_hello: 5,
        certificate: 8,
        leaf_only: true,
        client_certificate: None,
        reaction: ReactionKind::Alert,
        reaction_frame: 9,
    };
    let r = run(&repo_path(e.capture));
    let h = only(&r);
    check_common(&e, &h);
    check_wired(&h);
    assert_eq!(h.findings[0].filter.as_deref(), Some(WIRED_FILTER));
    assert_eq!(
        r.summary.headlines,
        [
            "missing issuer O=Tailspin, CN=Tailspin Issuing CA (not in the capture): 1 chain of 00:1b:54:00:00:01; 1 client (1 Polycom: phone-0011@tailspin.test): 1 failed (alert unknown_ca, first in frame 9). Fix: Send the issuing CA certificate after the leaf."
        ]
    );
    // The chain variant's finding shows the conversation too.
    let v = &r.servers[0].variants[0];
    assert_eq!(v.findings[0].filter.as_deref(), Some(WIRED_FILTER));
    // Who the client is: the phone's MAC, a Polycom.
    let c = r.clients.get(0);
    assert_eq!(c.identity.mac.as_deref(), Some(PHONE));
    assert!(c.identity.vendor.as_deref().unwrap().contains("Polycom"));
    assert_eq!(
        r.captures[0].other_frames, 0,
        "EAPOL frames are not 'other'"
    );
}

#[test]
fn wired_eapol_full_chain() {
    let e = Expected {
        capture: "captures/eapol-wired-full-chain.pcap",
        protocol: Protocol::EapTls,
        json_protocol: "eap-tls",
        identity: "phone-0011@tailspin.test",
        client_hello: 5,
        certificate: 10,
        leaf_only: false,
        client_certificate: Some(13),
        reaction: ReactionKind::Completed,
        reaction_frame: 13,
    };
    let r = run(&repo_path(e.capture));
    let h = only(&r);
    check_common(&e, &h);
    check_wired(&h);
    assert!(r.summary.headlines.is_empty(), "{:?}", r.summary.headlines);
}

// ---------------------------------------------------------------------------------------------
// Captures built from the recorded frames

/// The frames of a little-endian microsecond pcap, with their timestamps.
fn frames(path: &str) -> Vec<(u64, Vec<u8>)> {
    let b = std::fs::read(repo(path)).unwrap();
    assert_eq!(
        b[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "{path}: little-endian pcap"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let u = |o: usize| u32::from_le_bytes(b[at + o..at + o + 4].try_into().unwrap()) as u64;
        let (ts, len) = (u(0) * 1_000_000 + u(4), u(8) as usize);
        out.push((ts, b[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    out
}

fn write(name: &str, frames: &[(u64, Vec<u8>)]) -> String {
    let path = tmp(name);
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (ts, f) in frames {
        w.packet(*ts, f).unwrap();
    }
    path.to_string_lossy().into_owned()
}

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// The EAPOL frames of the wired capture with their addresses replaced by `addr(frame, from
/// the phone)` and an 802.1Q tag when `vlan`.
fn rewritten(
    path: &str,
    vlan: Option<u16>,
    addr: impl Fn(bool) -> ([u8; 6], [u8; 6]),
) -> Vec<(u64, Vec<u8>)> {
    frames(path)
        .into_iter()
        .map(|(ts, f)| {
            let from_phone = f[6..12] == mac(PHONE);
            let (dst, src) = addr(from_phone);
            let mut out = Vec::with_capacity(f.len() + 4);
            out.extend_from_slice(&dst);
            out.extend_from_slice(&src);
            if let Some(id) = vlan {
                out.extend_from_slice(&[0x81, 0x00]);
                out.extend_from_slice(&id.to_be_bytes());
            }
            out.extend_from_slice(&f[12..]);
            (ts, out)
        })
        .collect()
}

#[test]
fn eapol_behind_a_vlan_tag_and_addressed_unicast() {
    let (phone, switch) = (mac(PHONE), mac(SWITCH));
    let unicast = rewritten(
        "captures/eapol-wired-leaf-only.pcap",
        Some(120),
        |from_phone| {
            if from_phone {
                (switch, phone)
            } else {
                (phone, switch)
            }
        },
    );
    let r = run(&write("eapol-vlan-unicast.pcap", &unicast));
    let h = only(&r);
    assert_eq!(h.transport, "eapol");
    assert_eq!(
        h.filter,
        "eapol && eth.addr == 00:04:f2:00:00:11 && eth.addr == 00:1b:54:00:00:01"
    );
    assert_eq!(
        (h.client_hello_frame, h.certificate_frame),
        (Some(5), Some(8))
    );
    assert_eq!(h.status, Status::Incomplete);
    assert_eq!(h.client_reaction.kind, ReactionKind::Alert);
    assert_eq!(h.client_reaction.frame, Some(9));
    assert_eq!(h.eap_identity.as_deref(), Some("phone-0011@tailspin.test"));
}

#[test]
fn two_supplicants_of_one_authenticator_on_one_link() {
    // The leaf-only conversation, then the full-chain one from another phone, to the group
    // address, both with the same switch: two conversations, numbered in order.
    let phone2 = mac("00:04:f2:00:00:12");
    let group = mac("01:80:c2:00:00:03");
    let first = rewritten("captures/eapol-wired-leaf-only.pcap", None, |from_phone| {
        if from_phone {
            (group, mac(PHONE))
        } else {
            (group, mac(SWITCH))
        }
    });
    let second = rewritten("captures/eapol-wired-full-chain.pcap", None, |from_phone| {
        if from_phone {
            (group, phone2)
        } else {
            (group, mac(SWITCH))
        }
    });
    let last = first.last().unwrap().0;
    let all: Vec<(u64, Vec<u8>)> = first
        .iter()
        .cloned()
        .chain(
            second
                .into_iter()
                .map(|(ts, f)| (ts - ts.min(last) + last + 1_000_000, f)),
        )
        .collect();
    let r = run(&write("eapol-two-phones.pcap", &all));
    assert_eq!(r.handshakes.len(), 2);
    let (a, b) = (r.handshakes.get(0), r.handshakes.get(1));
    assert_eq!((a.stream, b.stream), (0, 1));
    assert_eq!(a.client_mac.as_deref(), Some(PHONE));
    assert_eq!(b.client_mac.as_deref(), Some("00:04:f2:00:00:12"));
    assert_eq!((a.status, b.status), (Status::Incomplete, Status::Complete));
    assert_eq!(
        (a.certificate_frame, b.certificate_frame),
        (Some(8), Some(20))
    );
    assert_eq!(b.client_reaction.kind, ReactionKind::Completed);
    // One server, two chain variants: the switch's two configurations.
    assert_eq!(r.servers.len(), 1);
    assert_eq!(r.servers[0].variants.len(), 2);
    // The issuer the switch left out for the first phone, it sent to the second.
    assert_eq!(kinds(&a), [FindingKind::MissingIntermediate]);
}

/// The RADIUS payloads of a capture: (from the NAS, payload).
fn radius_payloads(path: &str) -> Vec<(u64, bool, Vec<u8>)> {
    frames(path)
        .into_iter()
        .map(|(ts, f)| {
            let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                panic!("{path}: UDP only");
            };
            (ts, u.destination_port() == 1812, u.payload().to_vec())
        })
        .collect()
}

#[test]
fn two_authentications_in_one_radius_conversation() {
    // A switch sends every supplicant's requests from one port: the leaf-only authentication,
    // then the full-chain one, on one UDP conversation (and on a port that is not RADIUS's:
    // it is recognized by content).
    let nas: SocketAddr = "10.9.0.2:40000".parse().unwrap();
    let server: SocketAddr = "10.9.0.1:18120".parse().unwrap();
    let mut frames = Vec::new();
    let mut offset = 0;
    for capture in [
        "captures/eap-radius-leaf-only.pcap",
        "captures/eap-radius-full-chain.pcap",
    ] {
        let payloads = radius_payloads(capture);
        let base = payloads[0].0;
        for (ts, from_nas, p) in &payloads {
            let mut f = Vec::new();
            if *from_nas {
                udp_frame(nas, server, p, &mut f);
            } else {
                udp_frame(server, nas, p, &mut f);
            }
            frames.push((offset + ts - base, f));
        }
        offset = frames.last().unwrap().0 + 5_000_000;
    }
    let r = run(&write("radius-two-authentications.pcap", &frames));
    assert_eq!(r.handshakes.len(), 2);
    let (a, b) = (r.handshakes.get(0), r.handshakes.get(1));
    for h in [&a, &b] {
        assert_eq!((h.transport.as_ref(), h.stream), ("udp", 0));
        assert_eq!(h.client.to_string(), nas.to_string());
        assert_eq!(h.server.to_string(), server.to_string());
        assert_eq!(h.client_mac.as_deref(), Some(PHONE));
    }
    assert_eq!(
        (a.client_hello_frame, a.certificate_frame),
        (Some(3), Some(6))
    );
    assert_eq!(
        (b.client_hello_frame, b.certificate_frame),
        (Some(11), Some(16))
    );
    assert_eq!((a.status, b.status), (Status::Incomplete, Status::Complete));
    assert_eq!(a.client_reaction.kind, ReactionKind::Alert);
    assert_eq!(b.client_reaction.kind, ReactionKind::Completed);
    assert_eq!(r.servers.len(), 1);
    assert_eq!(r.servers[0].variants.len(), 2);
}

#[test]
fn an_access_reject_without_an_alert_is_the_server_ending_it() {
    // The leaf-only authentication with the supplicant's alert (frame 7) replaced by an
    // acknowledgement-like empty EAP-TLS response: the Access-Reject (frame 8) ends it.
    let payloads = radius_payloads("captures/eap-radius-leaf-only.pcap");
    let (nas, server): (SocketAddr, SocketAddr) = (
        "10.9.0.2:40000".parse().unwrap(),
        "10.9.0.1:1812".parse().unwrap(),
    );
    let mut frames = Vec::new();
    for (i, (ts, from_nas, p)) in payloads.iter().enumerate() {
        let mut p = p.clone();
        if i == 6 {
            // Frame 7's EAP-Message: type 79, its length, then the EAP Response (code 2, id,
            // length, type 13), flags 0x00 and the 7-byte alert record. Drop the record and
            // shorten the attribute, the EAP packet and the RADIUS packet by as much.
            let attr = (20..p.len() - 8)
                .find(|&a| p[a] == 79 && p[a + 2] == 2 && p[a + 6] == 13)
                .unwrap();
            assert_eq!(p[attr + 8..attr + 15], [0x15, 3, 3, 0, 2, 2, 48]);
            p.drain(attr + 8..attr + 15);
            p[attr + 1] -= 7;
            let l = u16::from_be_bytes([p[attr + 4], p[attr + 5]]) - 7;
            p[attr + 4..attr + 6].copy_from_slice(&l.to_be_bytes());
            let total = (p.len() as u16).to_be_bytes();
            p[2..4].copy_from_slice(&total);
        }
        let mut f = Vec::new();
        if *from_nas {
            udp_frame(nas, server, &p, &mut f);
        } else {
            udp_frame(server, nas, &p, &mut f);
        }
        frames.push((*ts, f));
    }
    let r = run(&write("radius-silent-reject.pcap", &frames));
    let h = only(&r);
    assert_eq!(h.status, Status::Incomplete);
    let reaction = &h.client_reaction;
    assert_eq!(
        reaction.kind,
        ReactionKind::ServerAborted,
        "{}",
        reaction.detail
    );
    assert_eq!(reaction.frame, Some(8));
    assert!(
        reaction.detail.contains("Access-Reject"),
        "{}",
        reaction.detail
    );
}

#[test]
fn every_capture_cut_after_each_frame() {
    for capture in [
        "captures/eap-radius-leaf-only.pcap",
        "captures/eap-radius-full-chain.pcap",
        "captures/eap-peap-radius.pcap",
        "captures/eap-ttls-radius.pcap",
        "captures/eapol-wired-leaf-only.pcap",
        "captures/eapol-wired-full-chain.pcap",
    ] {
        let whole = only(&run(&repo_path(capture)));
        let all = frames(capture);
        for n in 1..all.len() {
            let name = format!("cut-{n}-{}", capture.rsplit('/').next().unwrap());
            let r = run(&write(&name, &all[..n]));
            let ch = whole.client_hello_frame.unwrap();
            if (n as u64) < ch {
                assert_eq!(r.handshakes.len(), 0, "{capture} cut after {n}");
                continue;
            }
            let h = only(&r);
            assert_eq!(h.client_hello_frame, Some(ch), "{capture} cut after {n}");
            if whole.certificate_frame.is_some_and(|f| f <= n as u64) {
                assert_eq!(
                    shas(&h.certificates),
                    shas(&whole.certificates),
                    "{capture} {n}"
                );
                assert_eq!(h.status, whole.status, "{capture} cut after {n}");
            } else {
                assert!(h.certificates.is_empty(), "{capture} cut after {n}");
                assert_eq!(h.status, Status::Truncated, "{capture} cut after {n}");
                assert_eq!(h.verdict, Verdict::NotJudged, "{capture} cut after {n}");
            }
        }
    }
}

#[test]
fn mutated_eap_frames_never_panic() {
    // Every frame of the six captures with bytes flipped, lengths rewritten and cut short:
    // the EAPOL, EAP, RADIUS and EAP-TLS decoders and the reassembly must hold.
    let mut rng = common::synth::Rng(0x8021_0001);
    for capture in [
        "captures/eap-radius-leaf-only.pcap",
        "captures/eap-radius-full-chain.pcap",
        "captures/eap-peap-radius.pcap",
        "captures/eap-ttls-radius.pcap",
        "captures/eapol-wired-leaf-only.pcap",
        "captures/eapol-wired-full-chain.pcap",
    ] {
        let all = frames(capture);
        for round in 0..40 {
            let mutated: Vec<(u64, Vec<u8>)> = all
                .iter()
                .map(|(ts, f)| {
                    let mut f = f.clone();
                    for _ in 0..1 + rng.below(4) {
                        // Past the Ethernet header, mostly in the first 64 bytes (the headers).
                        let span = if rng.chance(700) {
                            64.min(f.len())
                        } else {
                            f.len()
                        };
                        let i = 14 + rng.index(span.saturating_sub(14).max(1));
                        if i < f.len() {
                            f[i] = rng.next() as u8;
                        }
                    }
                    if rng.chance(100) {
                        let keep = rng.index(f.len());
                        f.truncate(keep.max(15));
                    }
                    (*ts, f)
                })
                .collect();
            let name = format!("mutated-{round}-{}", capture.rsplit('/').next().unwrap());
            let r = run(&write(&name, &mutated));
            assert!(r.handshakes.len() <= all.len(), "{capture} round {round}");
        }
    }
}

/// A classic pcap of `linktype`, microsecond timestamps.
fn write_linktype(name: &str, linktype: u32, frames: &[(u64, Vec<u8>)]) -> String {
    let path = tmp(name);
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (ts, f) in frames {
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(&path, out).unwrap();
    path.to_string_lossy().into_owned()
}

/// The wired conversation's EAPOL bytes in 802.11 data frames between the phone and an access
/// point (QoS data to the AP, plain data from it), each behind a radiotap header (Flags field
/// present) when `radiotap`.
fn wifi_frames(path: &str, ap: [u8; 6], radiotap: bool) -> Vec<(u64, Vec<u8>)> {
    let phone = mac(PHONE);
    frames(path)
        .into_iter()
        .map(|(ts, f)| {
            let mut out = Vec::new();
            if radiotap {
                out.extend_from_slice(&[0, 0, 9, 0, 0x02, 0, 0, 0, 0x00]);
            }
            if f[6..12] == phone {
                out.extend_from_slice(&[0x88, 0x01, 0x3a, 0x01]);
                for a in [ap, phone, ap] {
                    out.extend_from_slice(&a);
                }
                out.extend_from_slice(&[0x10, 0x00, 0x07, 0x00]);
            } else {
                out.extend_from_slice(&[0x08, 0x02, 0x3a, 0x01]);
                for a in [phone, ap, ap] {
                    out.extend_from_slice(&a);
                }
                out.extend_from_slice(&[0x20, 0x00]);
            }
            out.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x88, 0x8e]);
            out.extend_from_slice(&f[14..]);
            (ts, out)
        })
        .collect()
}

#[test]
fn eapol_over_wifi_radiotap_and_plain_802_11() {
    let ap = mac("00:1b:54:00:00:0a");
    for (linktype, radiotap) in [(127, true), (105, false)] {
        for (capture, leaf_only) in [
            ("captures/eapol-wired-leaf-only.pcap", true),
            ("captures/eapol-wired-full-chain.pcap", false),
        ] {
            let name = format!("wifi-{linktype}-{}", capture.rsplit('/').next().unwrap());
            let r = run(&write_linktype(
                &name,
                linktype,
                &wifi_frames(capture, ap, radiotap),
            ));
            let h = only(&r);
            assert_eq!(
                (h.protocol, h.transport.as_ref()),
                (Protocol::EapTls, "eapol")
            );
            assert_eq!(
                h.filter,
                "eapol && wlan.addr == 00:04:f2:00:00:11 && wlan.addr == 00:1b:54:00:00:0a"
            );
            assert_eq!(h.client.to_string(), PHONE);
            assert_eq!(h.server.to_string(), "00:1b:54:00:00:0a");
            assert_eq!(h.eap_identity.as_deref(), Some("phone-0011@tailspin.test"));
            if leaf_only {
                assert_eq!(h.certificate_frame, Some(8));
                assert_eq!(h.status, Status::Incomplete);
                assert_eq!(h.client_reaction.kind, ReactionKind::Alert);
                assert_eq!(h.client_reaction.frame, Some(9));
            } else {
                assert_eq!(h.certificate_frame, Some(10));
                assert_eq!(h.status, Status::Complete);
                assert_eq!(h.client_reaction.kind, ReactionKind::Completed);
            }
            assert_eq!(r.captures[0].undecodable_frames, 0);
        }
    }
}
