//! Captures in pieces: one file per direction concatenated (late flights), the two files of a
//! network TAP, the parts of a ring buffer. Each must give the diagnosis of the capture in
//! time order. The pieces are made at test time with Wireshark's tools (tshark, editcap,
//! mergecap) in a temporary directory.

mod common;

use common::{chainsniff, repo, tmp};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// True when Wireshark's command-line tools are installed (CI installs them).
fn have_tools() -> bool {
    let ok = ["tshark", "editcap", "mergecap"]
        .iter()
        .all(|t| Command::new(t).arg("-h").output().is_ok());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs tshark, editcap and mergecap"
        );
        eprintln!("tshark, editcap or mergecap not found: the split-capture tests are skipped");
    }
    ok
}

fn run(tool: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The packets of `capture` that `filter` selects, written to `out`.
fn select(capture: &Path, filter: &str, out: &Path) {
    run(
        "tshark",
        &[
            "-r".as_ref(),
            capture.as_os_str(),
            "-Y".as_ref(),
            filter.as_ref(),
            "-F".as_ref(),
            "pcap".as_ref(),
            "-w".as_ref(),
            out.as_os_str(),
        ],
    );
}

/// `mergecap -a` (concatenated, not by time) of `parts`.
fn concatenate(parts: &[&Path], out: &Path) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["-a".as_ref(), "-w".as_ref(), out.as_os_str()];
    args.extend(parts.iter().map(|p| p.as_os_str()));
    run("mergecap", &args);
}

/// A bundled capture split by direction: the server's packets (lower port) and the rest.
fn split_by_direction(capture: &str) -> (PathBuf, PathBuf) {
    let name = capture.replace('/', "_");
    let server = tmp(&format!("{name}.server.pcap"));
    let client = tmp(&format!("{name}.client.pcap"));
    let server_side = "tcp && tcp.srcport < tcp.dstport";
    select(&repo(capture), server_side, &server);
    select(&repo(capture), &format!("!({server_side})"), &client);
    (client, server)
}

fn report(paths: &[&Path]) -> Value {
    let mut args = vec!["analyze", "--format", "json"];
    let paths: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let out = chainsniff(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{paths:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a report diagnoses, handshake by handshake, without the frame numbers (which depend
/// on the order of the packets in the file): the connection, the chain, the verdict, the
/// findings, how the client reacted, the notes.
fn diagnosis(report: &Value) -> Vec<Value> {
    report["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let findings: Vec<Value> = h["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| serde_json::json!([f["kind"], f["severity"]]))
                .collect();
            let r = &h["client_reaction"];
            serde_json::json!({
                "client": h["client"], "server": h["server"], "sni": h["sni"],
                "version": h["version"], "status": h["status"], "verdict": h["verdict"],
                "variant": h["chain_variant"],
                "chain": h["certificates"].as_array().unwrap().iter()
                    .map(|c| c["sha256"].clone()).collect::<Vec<_>>(),
                "findings": findings,
                "reaction": [r["kind"], r["alert"], r["delay_ms"], r["delay_from"]],
                "notes": h["notes"],
                "has_certificate_frame": h["certificate_frame"].is_u64(),
            })
        })
        .collect()
}

const TCP_CAPTURES: &[&str] = &[
    "captures/lync-vip-phones.pcap",
    "captures/lync-vip-before.pcapng",
    "captures/lync-vip-fixed.pcap",
    "captures/lync-vip-phone-port.pcap",
    "captures/x509-cases.pcap",
    "captures/smtp-starttls.pcap",
    "captures/tls13-openssl.pcapng",
];

#[test]
fn one_direction_after_the_other_gives_the_time_ordered_diagnosis() {
    if !have_tools() {
        return;
    }
    for capture in TCP_CAPTURES {
        let expected = diagnosis(&report(&[&repo(capture)]));
        assert!(!expected.is_empty(), "{capture}");
        let (client, server) = split_by_direction(capture);
        let name = capture.replace('/', "_");
        for (order, parts) in [
            ("client first", [&client, &server]),
            ("server first", [&server, &client]),
        ] {
            let joined = tmp(&format!("{name}.{}.pcap", order.replace(' ', "-")));
            concatenate(&[parts[0], parts[1]], &joined);
            let got = diagnosis(&report(&[&joined]));
            assert_eq!(got, expected, "{capture}, {order}");
        }
    }
}

#[test]
fn the_phones_capture_with_its_directions_concatenated_names_the_missing_intermediate() {
    if !have_tools() {
        return;
    }
    let (client, server) = split_by_direction("captures/lync-vip-phones.pcap");
    let joined = tmp("phones-concatenated.pcap");
    concatenate(&[&client, &server], &joined);
    let r = report(&[&joined]);
    let statuses: Vec<&str> = r["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "incomplete",
            "incomplete",
            "undetermined",
            "incomplete",
            "undetermined",
            "incomplete"
        ]
    );
    let first = &r["handshakes"][0];
    assert_eq!(first["client_reaction"]["alert"], "unknown_ca");
    // Frame numbers are those of the concatenated file: the client's alert comes before the
    // server's Certificate in the file, and is still its reaction to it.
    let alert = first["client_reaction"]["frame"].as_u64().unwrap();
    let certificate = first["certificate_frame"].as_u64().unwrap();
    assert!(alert < certificate, "{alert} {certificate}");
    // Wireshark reads the server's flight of such a file only without its sequence analysis
    // (by default it takes the late segments for retransmissions); `reordercap` sorts it.
    let shown = |frame: u64, filter: &str| {
        let out = Command::new("tshark")
            .args(["-o", "tcp.analyze_sequence_numbers:FALSE", "-r"])
            .arg(&joined)
            .args(["-Y", &format!("frame.number == {frame} && {filter}")])
            .output()
            .unwrap();
        !out.stdout.is_empty()
    };
    assert!(shown(alert, "tls.alert_message.desc == 48"));
    assert!(shown(certificate, "tls.handshake.type == 11"));
}

/// `editcap -c per_file` of a bundled capture: its parts, in order.
fn ring_parts(capture: &str, per_file: usize) -> Vec<PathBuf> {
    let dir = tmp(&format!("ring-{}-{per_file}", capture.replace('/', "_")));
    common::editcap_split(&repo(capture), per_file, &dir)
}

/// Whether tshark shows a frame of `file` that `filter` selects.
fn tshark_shows(file: &Path, filter: &str) -> bool {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", filter])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    !out.stdout.is_empty()
}

#[test]
fn a_ring_buffers_parts_are_one_capture() {
    if !have_tools() {
        return;
    }
    // The issue's repro: the phones capture in three files; a handshake crosses the second
    // boundary (its ClientHello in the second file, its Certificate in the third).
    let parts = ring_parts("captures/lync-vip-phones.pcap", 40);
    assert_eq!(parts.len(), 3);
    let paths: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    let r = report(&paths);
    let expected = diagnosis(&report(&[&repo("captures/lync-vip-phones.pcap")]));
    assert_eq!(diagnosis(&r), expected);
    assert_eq!(r["handshakes"].as_array().unwrap().len(), 6);
    for c in r["captures"].as_array().unwrap() {
        assert_eq!(c["joined"]["captures"], serde_json::json!([0, 1, 2]));
        assert_eq!(c["joined"]["how"], "ring_buffer");
    }
    let crossing: Vec<&Value> = r["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["frame_captures"].is_object())
        .collect();
    assert_eq!(crossing.len(), 1);
    assert_eq!(crossing[0]["capture"], 1);
    assert_eq!(crossing[0]["frame_captures"]["certificate_frame"], 2);
    assert_eq!(crossing[0]["continued"][0]["capture"], 2);
    // The missing intermediate's cause counts the ring buffer as one capture (no per-file counts), and its first
    // failure is frame 37 of the first file.
    let cause = r["summary"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "missing_intermediate")
        .unwrap();
    assert_eq!(
        (cause["clients"].as_u64(), cause["failed_clients"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(cause.get("per_capture").is_none(), "{cause}");
    assert_eq!(
        cause["first_failure"],
        serde_json::json!({"capture": 0, "frame": 37})
    );

    check_evidence(&r, &parts);
}

/// Every frame the report prints is Wireshark's in the file it names, and every filter selects
/// that frame there (stream indices are each file's own): checked with tshark on each file.
fn check_evidence(r: &Value, parts: &[PathBuf]) {
    let file = |c: &Value| parts[c.as_u64().unwrap() as usize].as_path();
    for h in r["handshakes"].as_array().unwrap() {
        let own = file(&h["capture"]);
        let ch = h["client_hello_frame"].as_u64().unwrap();
        let filter = h["filter"].as_str().unwrap();
        assert!(
            tshark_shows(
                own,
                &format!("frame.number == {ch} && ({filter}) && tls.handshake.type == 1")
            ),
            "{h}"
        );
        let cert = h["certificate_frame"].as_u64().unwrap();
        let (cert_file, cert_filter) = match h["frame_captures"].get("certificate_frame") {
            Some(c) => {
                let k = h["continued"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["capture"] == *c)
                    .unwrap();
                (file(c), k["filter"].as_str().unwrap())
            }
            None => (own, filter),
        };
        assert!(
            tshark_shows(
                cert_file,
                &format!("frame.number == {cert} && ({cert_filter}) && tls.handshake.type == 11")
            ),
            "{h}"
        );
        if let Some(f) = h["client_reaction"]["frame"].as_u64() {
            let c = h["client_reaction"].get("capture").unwrap_or(&h["capture"]);
            assert!(
                tshark_shows(file(c), &format!("frame.number == {f} && tls")),
                "{h}"
            );
        }
        for f in h["findings"].as_array().unwrap() {
            let c = f.get("capture").unwrap_or(&h["capture"]);
            let (frame, filter) = (f["frame"].as_u64().unwrap(), f["filter"].as_str().unwrap());
            assert!(
                tshark_shows(
                    file(c),
                    &format!("frame.number == {frame} && ({filter}) && tls.handshake.type == 11")
                ),
                "{f}"
            );
        }
    }
    // The chain variants' and servers' evidence: one entry per file.
    for s in r["servers"].as_array().unwrap() {
        for v in s["variants"].as_array().unwrap() {
            for f in v["findings"].as_array().unwrap() {
                let mut evidence = vec![(
                    f["capture"].clone(),
                    f["frame"].clone(),
                    f["filter"].clone(),
                )];
                for e in f["more_evidence"].as_array().into_iter().flatten() {
                    evidence.push((
                        e["capture"].clone(),
                        e["frame"].clone(),
                        e["filter"].clone(),
                    ));
                }
                for (c, frame, filter) in evidence {
                    let (frame, filter) = (frame.as_u64().unwrap(), filter.as_str().unwrap());
                    assert!(
                        tshark_shows(
                            file(&c),
                            &format!(
                                "frame.number == {frame} && ({filter}) && tls.handshake.type == 11"
                            )
                        ),
                        "{f}"
                    );
                }
            }
        }
    }
}

#[test]
fn ring_buffers_of_every_size_give_the_whole_captures_diagnosis() {
    if !have_tools() {
        return;
    }
    for capture in [
        "captures/lync-vip-phones.pcap",
        "captures/lync-vip-before.pcapng",
    ] {
        let expected = diagnosis(&report(&[&repo(capture)]));
        for per_file in [7, 13, 25] {
            let parts = ring_parts(capture, per_file);
            let paths: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
            assert_eq!(
                diagnosis(&report(&paths)),
                expected,
                "{capture}, {per_file} a file"
            );
        }
    }
}

#[test]
fn captures_of_other_conversations_stay_separate() {
    if !have_tools() {
        return;
    }
    // Every bundled capture, in name order: several are captures of the same made-up traffic
    // at other points (the same addresses, ports and sequence numbers, overlapping in time).
    let all = common::bundled_captures();
    let paths: Vec<&Path> = all.iter().map(PathBuf::as_path).collect();
    let r = report(&paths);
    for cap in r["captures"].as_array().unwrap() {
        assert!(cap.get("joined").is_none(), "{cap}");
    }
    // Each file's handshakes as when it is read alone: the same connections, chains seen
    // (its own Decryption Secrets Blocks only), reactions, streams and frames. (Findings and
    // statuses may differ: an intermediate seen in one capture is named in another's.)
    let seen = |r: &Value| -> Vec<Value> {
        r["handshakes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let chain: Vec<&Value> = h["certificates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| &c["sha256"])
                    .collect();
                serde_json::json!([
                    h["client"],
                    h["server"],
                    h["stream"],
                    h["client_hello_frame"],
                    h["certificate_frame"],
                    chain,
                    h["client_reaction"],
                    h["decrypted"]
                ])
            })
            .collect()
    };
    let alone: Vec<Value> = paths.iter().flat_map(|p| seen(&report(&[p]))).collect();
    assert_eq!(seen(&r), alone);
}

#[test]
fn the_two_files_of_a_tap_are_one_capture() {
    if !have_tools() {
        return;
    }
    for capture in TCP_CAPTURES {
        let expected = diagnosis(&report(&[&repo(capture)]));
        let (client, server) = split_by_direction(capture);
        for files in [[&client, &server], [&server, &client]] {
            let parts: Vec<PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
            let r = report(&[files[0], files[1]]);
            assert_eq!(diagnosis(&r), expected, "{capture}: {files:?}");
            for c in r["captures"].as_array().unwrap() {
                assert_eq!(
                    c["joined"]["captures"],
                    serde_json::json!([0, 1]),
                    "{capture}"
                );
                assert_eq!(c["joined"]["how"], "tap");
            }
            if capture.ends_with("lync-vip-phones.pcap") {
                check_evidence(&r, &parts);
            }
        }
    }
}
