//! The `chainsniff` binary: formats, exit statuses, bad and truncated input.

use std::process::Command;

use chainsniff::pki::Status;

mod common;
use common::{chainsniff, repo_path as repo, tmp};

#[test]
fn json_report_has_the_documented_shape() {
    let out = chainsniff(&[
        "analyze",
        &repo("captures/lync-vip-before.pcapng"),
        "--trust",
        &repo("captures/pki/root.pem"),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "chainsniff/1");
    assert_eq!(v["captures"][0]["format"], "pcapng");
    assert_eq!(v["captures"][0]["frames"], 69);
    assert_eq!(v["captures"][0]["truncated"], false);
    assert!(v["captures"][0]["warnings"].as_array().unwrap().is_empty());
    let h = &v["handshakes"][0];
    assert_eq!(h["stream"], 0);
    assert_eq!(h["client"]["ip"], "127.0.1.11");
    assert_eq!(
        h["server"],
        serde_json::json!({"ip": "127.0.0.10", "port": 443})
    );
    assert_eq!(h["sni"], "lyncpool.contoso.test");
    assert_eq!(h["version"], "TLS 1.2");
    assert_eq!(h["client_hello_frame"], 4);
    assert_eq!(h["certificate_frame"], 6);
    assert_eq!(h["status"], "incomplete");
    let c = &h["certificates"][0];
    assert_eq!(c["subject"], "O=Contoso, CN=lyncpool.contoso.test");
    assert_eq!(c["issuer"], "O=Contoso, CN=Contoso Issuing CA 01");
    assert_eq!(c["is_ca"], false);
    assert_eq!(c["sha256"].as_str().unwrap().len(), 64);
    assert!(c["not_before"].as_str().unwrap().ends_with('Z'));
    assert_eq!(h["filter"], "tcp.stream == 0");
    assert_eq!(h["ja4"], "t12d150700_d68b136fe8d9_e7e480e5a997");
    assert_eq!(h["ja3"].as_str().unwrap().len(), 32);
    let f = &h["findings"][0];
    assert_eq!(f["kind"], "missing_intermediate");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["frame"], 6);
    assert_eq!(f["filter"], "tcp.stream == 0");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .starts_with("Configure the full chain")
    );
    assert_eq!(
        f["ca_issuers"],
        serde_json::json!(["http://pki.contoso.test/issuing-ca.crt"])
    );
    assert_eq!(f.get("aia_fetches"), Some(&serde_json::json!([])));
    // Every certificate of a path is described once, at the top.
    for link in h["path"].as_array().unwrap() {
        let sha = link["sha256"].as_str().unwrap();
        assert_eq!(v["certificates"][sha]["sha256"], sha);
    }
    assert!(v.get("groups").is_none());
    assert_eq!(v["summary"]["filtered_out"], 0);
    assert_eq!(h["client_reaction"]["kind"], "alert");
    assert_eq!(h["client_reaction"]["alert"], "unknown_ca");
    assert_eq!(h["client_reaction"]["frame"], 8);
    assert_eq!(
        v["servers"][0]["findings"][0]["kind"],
        "inconsistent_chains"
    );
    assert_eq!(v["servers"][0]["variants"].as_array().unwrap().len(), 2);
    assert_eq!(v["clients"].as_array().unwrap().len(), 5);
}

#[test]
fn text_and_markdown_tell_the_story() {
    for format in ["text", "markdown"] {
        let out = chainsniff(&[
            "analyze",
            &repo("captures/lync-vip-before.pcapng"),
            "--trust",
            &repo("captures/pki/root.pem"),
            "-f",
            format,
        ]);
        assert_eq!(out.status.code(), Some(0));
        let s = String::from_utf8(out.stdout).unwrap();
        for needle in [
            "lyncpool.contoso.test",
            "Contoso Issuing CA 01",
            "127.0.1.12",
            "unknown\\_ca",
            "inconsistent",
        ] {
            let needle = if format == "text" {
                needle.replace("\\_", "_")
            } else {
                needle.to_string()
            };
            assert!(s.contains(&needle), "{format} lacks {needle}:\n{s}");
        }
        if format == "text" {
            assert!(
                s.lines().all(|l| l.chars().count() <= 80),
                "a line over 80 columns:\n{s}"
            );
        }
    }
}

#[test]
fn exit_status_follows_fail_on() {
    let cap = repo("captures/lync-vip-before.pcapng");
    let root = repo("captures/pki/root.pem");
    let base = [
        "analyze",
        cap.as_str(),
        "--trust",
        root.as_str(),
        "-f",
        "json",
    ];
    assert_eq!(chainsniff(&base).status.code(), Some(0));
    let with = |sev: &str| {
        let mut a = base.to_vec();
        a.extend(["--fail-on", sev]);
        chainsniff(&a).status.code()
    };
    assert_eq!(with("error"), Some(1));
    assert_eq!(with("warning"), Some(1));
    // After the fix there are warnings (duplicate certificate) but no errors.
    let fixed = repo("captures/lync-vip-fixed.pcap");
    let args = [
        "analyze",
        fixed.as_str(),
        "--trust",
        root.as_str(),
        "--fail-on",
    ];
    let mut e = args.to_vec();
    e.push("error");
    assert_eq!(chainsniff(&e).status.code(), Some(0));
    let mut w = args.to_vec();
    w.push("warning");
    assert_eq!(chainsniff(&w).status.code(), Some(1));
}

#[test]
fn unreadable_input_is_exit_2_with_a_clear_message() {
    let missing = chainsniff(&["analyze", "/nonexistent/capture.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/capture.pcap"));

    let garbage = tmp("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all\n").unwrap();
    let out = chainsniff(&["analyze", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("garbage.pcap") && err.contains("offset 0"),
        "{err}"
    );

    let empty = tmp("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        chainsniff(&["analyze", empty.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );

    assert_eq!(chainsniff(&["analyze"]).status.code(), Some(2));
    assert_eq!(
        chainsniff(&["analyze", "x.pcap", "--format", "xml"])
            .status
            .code(),
        Some(2)
    );
    let bad_trust = chainsniff(&[
        "analyze",
        &repo("captures/lync-vip-fixed.pcap"),
        "--trust",
        &repo("README.md"),
    ]);
    assert_eq!(bad_trust.status.code(), Some(2));
}

#[test]
fn compressed_captures_and_stdin_are_read() {
    use std::io::Write;
    let raw = std::fs::read(repo("captures/lync-vip-fixed.pcap")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz4.write_all(&raw).unwrap();
    let compressed = [
        ("gzip", gz.finish().unwrap()),
        ("zstd", zstd::encode_all(raw.as_slice(), 3).unwrap()),
        ("lz4", lz4.finish().unwrap()),
    ];
    for (name, bytes) in compressed {
        // No telling file name: the content decides.
        let file = tmp(&format!("fixed-{name}.cap"));
        std::fs::write(&file, bytes).unwrap();
        let out = chainsniff(&["analyze", file.to_str().unwrap(), "-f", "json"]);
        assert_eq!(out.status.code(), Some(0), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["captures"][0]["compression"], name);
        assert_eq!(v["handshakes"].as_array().unwrap().len(), 3, "{name}");
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(["analyze", "-", "-f", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Feed it in small pieces, as a pipe from tcpdump would.
    for chunk in raw.chunks(100) {
        stdin.write_all(chunk).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["handshakes"].as_array().unwrap().len(), 3);
    assert_eq!(v["handshakes"][2]["certificate_frame"], 34);
}

/// Cut the capture at many offsets: every cut gives a report of what came before it, marked
/// truncated, and never calls a chain incomplete because the capture lost part of it.
#[test]
fn truncated_captures_report_what_came_before_the_cut() {
    let path = repo("captures/lync-vip-before.pcapng");
    let full = chainsniff::run(std::slice::from_ref(&path), &Default::default()).unwrap();
    let raw = std::fs::read(&path).unwrap();
    let cut_file = tmp("cut.pcapng");
    let mut truncated_runs = 0;
    let mut truncated_handshakes = 0;
    // Past the section header and interface description: from there on, frames can be read.
    let le = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap()) as usize;
    let first_packet = le(4) + le(le(4) + 4);
    let mut offsets: Vec<usize> = (first_packet..raw.len()).step_by(23).collect();
    // A cut inside the softphone's certificate flight (frame 38).
    offsets.push(raw.len() * 38 / 69);
    for cut in offsets {
        std::fs::write(&cut_file, &raw[..cut]).unwrap();
        let r = match chainsniff::run(
            &[cut_file.to_string_lossy().into_owned()],
            &Default::default(),
        ) {
            Ok(r) => r,
            Err(e) => panic!("cut at {cut}: {e}"),
        };
        let c = &r.captures[0];
        if c.summary.truncated {
            truncated_runs += 1;
            assert!(
                c.summary
                    .warnings
                    .iter()
                    .any(|w| w.contains("truncated") && w.contains("after frame")),
                "cut at {cut}: {:?}",
                c.summary.warnings
            );
        }
        for h in r.handshakes.iter() {
            let whole = full
                .handshakes
                .iter()
                .find(|f| f.stream == h.stream)
                .unwrap();
            if !h.certificates.is_empty() {
                // A certificate message is reported whole or not at all.
                assert_eq!(
                    h.certificates.len(),
                    whole.certificates.len(),
                    "cut at {cut}"
                );
            }
            // Less of the capture may name less (an intermediate seen only after the cut makes
            // a leaf-only chain `undetermined`), but a cut never makes a chain `incomplete`.
            if h.status == Status::Incomplete {
                assert_eq!(whole.status, Status::Incomplete, "cut at {cut}");
            }
            if h.status == Status::Truncated {
                truncated_handshakes += 1;
            }
        }
    }
    assert!(truncated_runs > 100);
    assert!(
        truncated_handshakes > 0,
        "no cut fell inside a certificate flight"
    );
}

/// `--format jsonl`: one line per handshake as it is decided, judged with the certificates seen
/// so far, then the summary line of the final report.
#[test]
fn jsonl_streams_handshakes_as_they_are_decided() {
    let out = chainsniff(&[
        "analyze",
        &repo("captures/lync-vip-before.pcapng"),
        "--trust",
        &repo("captures/pki/root.pem"),
        "-f",
        "jsonl",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    let streams: Vec<u64> = lines[..6]
        .iter()
        .map(|l| l["stream"].as_u64().unwrap())
        .collect();
    assert_eq!(streams, vec![0, 1, 2, 3, 4, 5]);
    assert!(lines[..6].iter().all(|l| l["type"] == "handshake"));
    // Before stream 2 brought the intermediate, nothing in the capture names it yet: the
    // leaf's issuer is missing all the same.
    assert_eq!(lines[0]["status"], "incomplete");
    assert_eq!(lines[0]["verdict"], "invalid");
    assert_eq!(lines[0]["findings"][0]["kind"], "missing_issuer");
    assert_eq!(lines[3]["status"], "incomplete");
    assert_eq!(lines[5]["status"], "incomplete");
    assert_eq!(lines[5]["client_reaction"]["alert"], "unknown_ca");
    assert_eq!(lines[6]["type"], "summary");
    assert_eq!(lines[6]["summary"]["by_status"]["incomplete"], 4);
}
