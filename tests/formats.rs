//! Windows and Solaris capture formats: every bundled capture that Wireshark's own writer can
//! save as Microsoft Network Monitor 2.x (`editcap -F netmon2`) or Sun snoop (`editcap -F snoop`)
//! must give the same report as the original, field for field (but the file's path and format),
//! and a copy cut short must still give a report of what it holds, with a warning.

mod common;
use common::{chainsniff, repo, tmp};

use std::process::Command;

/// The JSON report of `path`, without what names the file itself.
fn report(path: &str, keylog: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "analyze",
        path,
        "--trust",
        "captures/pki/root.pem",
        "-f",
        "json",
        "-q",
    ];
    if let Some(k) = keylog {
        args.extend(["--keylog", k]);
    }
    let root = repo("");
    let out = Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(&args)
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in v["captures"].as_array_mut().unwrap() {
        c["path"] = serde_json::Value::Null;
        c["format"] = serde_json::Value::Null;
    }
    v
}

fn have_editcap() -> bool {
    let ok = Command::new("editcap").arg("-h").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs editcap (tshark's package)"
        );
        eprintln!("editcap not found: the Network Monitor and snoop tests are skipped");
    }
    ok
}

/// `editcap -F FORMAT` of a bundled capture, or `None` when Wireshark cannot write it in that
/// format (a link type the format has no code for).
fn convert(capture: &str, format: &str) -> Option<String> {
    let out = tmp(&format!("{}.{format}", capture.replace('/', "_")));
    let status = Command::new("editcap")
        .args(["-F", format])
        .arg(repo(capture))
        .arg(&out)
        .output()
        .unwrap();
    status
        .status
        .success()
        .then(|| out.to_string_lossy().into_owned())
}

#[test]
fn netmon_and_snoop_copies_give_the_pcap_report() {
    if !have_editcap() {
        return;
    }
    let captures = [
        ("captures/lync-vip-phones.pcap", None),
        ("captures/lync-vip-before.pcapng", None),
        ("captures/lync-vip-fixed.pcap", None),
        ("captures/x509-cases.pcap", None),
        ("captures/dtls-openssl.pcap", None),
        ("captures/smtp-starttls.pcap", None),
        (
            "captures/tls13-openssl.pcapng",
            Some("captures/tls13-openssl.keylog"),
        ),
    ];
    let mut compared = 0;
    for (capture, keylog) in captures {
        let original = report(capture, keylog);
        assert!(
            original["summary"]["handshakes"].as_u64().unwrap() > 0,
            "{capture}"
        );
        for format in ["netmon2", "snoop"] {
            let Some(copy) = convert(capture, format) else {
                continue;
            };
            let got = report(&copy, keylog);
            assert_eq!(got, original, "{capture} as {format}");
            compared += 1;
        }
    }
    // The phones' capture and the load-balancer captures at least, in both formats.
    assert!(compared >= 10, "{compared} copies compared");
}

#[test]
fn a_cut_netmon_or_snoop_copy_reports_what_it_holds() {
    if !have_editcap() {
        return;
    }
    for format in ["netmon2", "snoop"] {
        let copy = convert("captures/lync-vip-phones.pcap", format).unwrap();
        let bytes = std::fs::read(&copy).unwrap();
        // Cut inside the records, half-way through the file.
        let cut = tmp(&format!("cut.{format}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let out = chainsniff(&["analyze", cut.to_str().unwrap(), "-f", "json", "-q"]);
        assert_eq!(out.status.code(), Some(0), "{format}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames = v["captures"][0]["frames"].as_u64().unwrap();
        assert!(frames > 10 && frames < 98, "{format}: {frames} frames");
        let warnings = v["captures"][0]["warnings"].to_string();
        assert!(
            warnings.contains("offset"),
            "{format}: a warning names the offset: {warnings}"
        );
    }
}
