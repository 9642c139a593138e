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
