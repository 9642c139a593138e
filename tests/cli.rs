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
                    .any(|w| w.kind == chainsniff::capture::WarningKind::Truncated
                        && w.text.contains("after frame")),
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

    // Every field of the final report's handshakes[] entries, the chain variant included;
    // the lines whose missing issuer a later certificate explained are marked provisional and
    // listed as revised by the summary line.
    let report = json_report(&["captures/lync-vip-before.pcapng"]);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| k != "type" && k != "provisional");
        k.sort();
        k
    };
    let finals = report["handshakes"].as_array().unwrap();
    for line in &lines[..6] {
        let stream = line["stream"].as_u64().unwrap();
        let f = finals.iter().find(|h| h["stream"] == stream).unwrap();
        assert_eq!(keys(line), keys(f), "stream {stream}");
        assert_eq!(line["chain_variant"], f["chain_variant"], "stream {stream}");
    }
    let provisional: Vec<u64> = lines[..6]
        .iter()
        .filter(|l| l["provisional"] == true)
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        provisional,
        [0, 1],
        "the two leaf-only chains before stream 2"
    );
    assert_eq!(lines[6]["revised"], serde_json::json!([0, 1]));
    assert_eq!(finals[0]["findings"][0]["kind"], "missing_intermediate");
}

/// The JSON report of bundled captures, trusting the story's root.
fn json_report(captures: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec!["analyze".into()];
    args.extend(captures.iter().map(|c| repo(c)));
    args.extend([
        "--trust".into(),
        repo("captures/pki/root.pem"),
        "-f".into(),
        "json".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = chainsniff(&args);
    assert_eq!(out.status.code(), Some(0));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The bundled capture and trust anchor the command-line tests read.
fn phones() -> Vec<String> {
    vec![
        repo("captures/lync-vip-phones.pcap"),
        "--trust".into(),
        repo("captures/pki/root.pem"),
    ]
}

#[test]
fn short_form_is_analyze() {
    let args = phones();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for format in ["text", "json", "markdown"] {
        let long = chainsniff(&[&["analyze"], &args[..], &["-f", format]].concat());
        let short = chainsniff(&[&args[..], &["-f", format]].concat());
        assert_eq!(long.status.code(), Some(0), "{format}");
        assert_eq!(short.status.code(), long.status.code(), "{format}");
        assert!(!long.stdout.is_empty());
        assert_eq!(short.stdout, long.stdout, "{format}");
        assert_eq!(short.stderr, long.stderr, "{format}");
    }
    // An option first is the short form too.
    let long = chainsniff(&[&["analyze", "-f", "json"], &args[..]].concat());
    let short = chainsniff(&[&["-f", "json"], &args[..]].concat());
    assert_eq!(short.status.code(), Some(0));
    assert_eq!(short.stdout, long.stdout);
    // The short form's errors are analyze's.
    let missing = chainsniff(&["/nonexistent/capture.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "chainsniff: /nonexistent/capture.pcap: cannot open: No such file or directory (os error 2)"
    );
    // --help and --version are still the command's own.
    let help = chainsniff(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("chainsniff [analyze] [OPTIONS] <CAPTURE>..."),
        "{help}"
    );
    assert!(
        help.contains("completions") && help.contains("man"),
        "{help}"
    );
    let version = chainsniff(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("chainsniff {}", env!("CARGO_PKG_VERSION"))
    );
    // No argument at all: the usage, on standard error, status 2.
    let none = chainsniff(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("Usage:"));
}

#[test]
fn completions_and_man_page_come_from_the_command_line_definition() {
    for (shell, marker, values) in [
        ("bash", "complete -F _chainsniff", true),
        ("zsh", "#compdef chainsniff", true),
        ("fish", "complete -c chainsniff", true),
        // PowerShell's and Elvish's scripts offer options, not their values.
        ("powershell", "Register-ArgumentCompleter", false),
        ("elvish", "edit:completion:arg-completer[chainsniff]", false),
    ] {
        let out = chainsniff(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        // The options of analyze are offered, and the values of --trust-store.
        for word in ["export-certs", "trust-store", "keylog", "completions"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
        if values {
            assert!(script.contains("mozilla"), "{shell} lacks mozilla");
        }
    }
    let bad = chainsniff(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));

    let out = chainsniff(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH chainsniff 1"), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH COMMANDS",
    ] {
        assert!(page.contains(section), "{section}");
    }
    // The options are analyze's (roff escapes the dashes), the commands are listed.
    for word in [
        r"\-\-export\-certs",
        r"\-\-trust\-store",
        r"\-\-keylog",
        "CAPTURE",
        "completions",
        "bzip2",
    ] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
    // It renders, where man is installed.
    let page_file = tmp("chainsniff.1");
    std::fs::write(&page_file, &out.stdout).unwrap();
    if let Ok(rendered) = Command::new("man")
        .arg("-l")
        .arg(&page_file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        && rendered.status.success()
    {
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(text.contains("--export-certs"), "{text}");
    }
}

#[test]
fn help_names_every_compression_read() {
    let out = chainsniff(&["analyze", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    let capture = help.split("Options:").next().unwrap();
    for name in ["gzip", "zstd", "lz4", "xz", "bzip2"] {
        assert!(
            capture.contains(name),
            "--help of CAPTURE lacks {name}: {help}"
        );
    }
}

#[test]
fn xz_and_bzip2_captures_read_as_the_plain_one() {
    use std::io::Write;
    let raw = std::fs::read(repo("captures/lync-vip-phones.pcap")).unwrap();
    let xz = |data: &[u8]| {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let bz2 = |data: &[u8]| {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let (head, tail) = raw.split_at(raw.len() / 2);
    let mut files = vec![
        ("xz", xz(&raw)),
        ("bzip2", bz2(&raw)),
        // Several streams one after the other (pixz, pbzip2) are one capture.
        ("xz", [xz(head), xz(tail)].concat()),
        ("bzip2", [bz2(head), bz2(tail)].concat()),
    ];
    // The tools' own output too, where they are installed.
    for (name, tool) in [("xz", "xz"), ("bzip2", "bzip2")] {
        let made = Command::new(tool)
            .arg("-c")
            .arg(repo("captures/lync-vip-phones.pcap"))
            .output();
        if let Ok(made) = made
            && made.status.success()
        {
            files.push((name, made.stdout));
        }
    }
    // The report of the plain capture, its path and compression aside.
    let report = |path: &str| {
        let out = chainsniff(&[
            path,
            "--trust",
            &repo("captures/pki/root.pem"),
            "-f",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{path}");
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let compression = v["captures"][0]["compression"].take();
        v["captures"][0]["path"].take();
        (v, compression)
    };
    let (plain, none) = report(&repo("captures/lync-vip-phones.pcap"));
    assert_eq!(none, "none");
    assert_eq!(plain["handshakes"].as_array().unwrap().len(), 6);
    for (i, (name, bytes)) in files.into_iter().enumerate() {
        // No telling file name: the content decides.
        let file = tmp(&format!("phones-{i}.cap"));
        std::fs::write(&file, bytes).unwrap();
        let (v, compression) = report(file.to_str().unwrap());
        assert_eq!(compression, name);
        assert_eq!(v, plain, "{name} ({i})");
    }
    // A corrupt stream is a clear error.
    let mut corrupt = xz(&raw);
    corrupt.truncate(40);
    let file = tmp("corrupt.xz");
    std::fs::write(&file, corrupt).unwrap();
    let out = chainsniff(&[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("xz"));
}

/// Runs chainsniff with `COLUMNS` set (or not), its output a pipe.
fn with_columns(columns: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chainsniff"));
    cmd.args(args).env_remove("COLUMNS");
    if let Some(c) = columns {
        cmd.env("COLUMNS", c);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn text_width_follows_columns_and_is_80_in_a_pipe() {
    let args = phones();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let widest = |text: &str| text.lines().map(|l| l.chars().count()).max().unwrap();
    let pipe = with_columns(None, &args);
    assert_eq!(pipe, with_columns(Some("80"), &args));
    assert!(widest(&pipe) <= 80, "{pipe}");
    let wide = with_columns(Some("150"), &args);
    assert!(widest(&wide) > 80 && widest(&wide) <= 150, "{wide}");
    assert!(wide.lines().count() < pipe.lines().count());
    // Kept within 60..=200; nonsense is ignored.
    assert_eq!(
        with_columns(Some("10"), &args),
        with_columns(Some("60"), &args)
    );
    assert_eq!(
        with_columns(Some("5000"), &args),
        with_columns(Some("200"), &args)
    );
    assert_eq!(with_columns(Some("wide"), &args), pipe);
}

/// Runs chainsniff on the bundled capture with `extra` options: it fails with status 2 and one
/// line on standard error, which is returned.
fn one_line_error(extra: &[&str]) -> String {
    let mut args = phones();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(&args)
        .env_remove("SSLKEYLOGFILE")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
    assert!(out.stdout.is_empty(), "{extra:?}");
    assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
    assert!(err.starts_with("chainsniff: "), "{err}");
    assert!(
        !err.contains("Der(") && !err.contains("Parsing Error"),
        "{err}"
    );
    err.trim_end().to_string()
}

#[test]
fn bad_trust_keylog_port_and_export_paths_are_one_clear_line() {
    let text = tmp("not-a-cert.pem");
    std::fs::write(&text, "just some text\n").unwrap();
    let t = text.display();
    assert_eq!(
        one_line_error(&["--trust", &text.to_string_lossy()]),
        format!("chainsniff: --trust {t}: holds no PEM or DER certificate")
    );
    let der = tmp("not-a-cert.der");
    std::fs::write(&der, [0x30, 0x03, 0x02, 0x01, 0x05]).unwrap();
    assert_eq!(
        one_line_error(&["--trust", &der.to_string_lossy()]),
        format!(
            "chainsniff: --trust {}: holds no PEM or DER certificate",
            der.display()
        )
    );
    let key = repo("captures/pki/leaf.key");
    assert_eq!(
        one_line_error(&["--trust", &key]),
        format!("chainsniff: --trust {key}: holds no certificate (only PEM PRIVATE KEY)")
    );
    let bad_pem = tmp("bad-cert.pem");
    std::fs::write(
        &bad_pem,
        "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert_eq!(
        one_line_error(&["--trust", &bad_pem.to_string_lossy()]),
        format!(
            "chainsniff: --trust {}: PEM certificate 1 is not a valid X.509 certificate",
            bad_pem.display()
        )
    );

    for (name, body) in [
        ("empty.keylog", ""),
        (
            "comments.keylog",
            "# SSL/TLS secrets log file\n\nnot a key line\n",
        ),
    ] {
        let keylog = tmp(name);
        std::fs::write(&keylog, body).unwrap();
        let err = one_line_error(&["--keylog", &keylog.to_string_lossy()]);
        assert!(
            err.starts_with(&format!(
                "chainsniff: key log {} holds no key lines (NSS format",
                keylog.display()
            )),
            "{err}"
        );
    }

    assert_eq!(
        one_line_error(&["--server", "10.0.0.1:70000"]),
        r#"chainsniff: --server "10.0.0.1:70000": port 70000 is out of range (1 to 65535)"#
    );
    assert_eq!(
        one_line_error(&["--server", "10.0.0.1:https"]),
        r#"chainsniff: --server "10.0.0.1:https": port "https" is not a number"#
    );

    let file = tmp("export-here");
    std::fs::write(&file, "a file").unwrap();
    assert_eq!(
        one_line_error(&["--export-certs", &file.to_string_lossy()]),
        format!(
            "chainsniff: --export-certs {}: is a file, not a directory (name a new or existing directory)",
            file.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a file");
}

#[test]
fn a_key_log_of_tls_1_2_lines_only_is_no_error() {
    let keylog = tmp("tls12.keylog");
    std::fs::write(
        &keylog,
        format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48)),
    )
    .unwrap();
    let mut args = phones();
    args.extend(["--keylog".into(), keylog.to_string_lossy().into_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(chainsniff(&args).status.code(), Some(0));
}

/// Each count in a report is followed by its noun in the right number: no "1 handshakes".
fn assert_plurals_right(text: &str, context: &str) {
    let nouns = [
        "capture",
        "frame",
        "handshake",
        "server",
        "client",
        "connection",
        "certificate",
        "chain",
        "bundle",
        "root",
        "variant",
    ];
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "<>()[],;:".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        // "1" then the noun, maybe after an adjective ("1 TLS handshake", "1 chain variant").
        let before_one = i.checked_sub(1).map(|j| words[j]);
        if *w != "1" || before_one.is_some_and(|b| b == "of" || b.ends_with('.')) {
            continue;
        }
        for next in words.iter().skip(i + 1).take(2) {
            let next = next.trim_matches(|c: char| !c.is_alphanumeric());
            if nouns.iter().any(|n| next == format!("{n}s")) {
                panic!("{context}: \"1 {next}\" in {text}");
            }
        }
    }
}

#[test]
fn one_of_a_thing_is_singular() {
    // One capture, one frame-count line, one handshake, one server, one client, one chain.
    let capture = repo("captures/smtp-starttls.pcap");
    let export = tmp("plural-export");
    for format in ["text", "markdown", "html"] {
        let out = chainsniff(&[&capture, "-f", format, "--group-by", "vendor"]);
        assert_eq!(out.status.code(), Some(0));
        let report = String::from_utf8(out.stdout).unwrap();
        assert_plurals_right(&report, format);
        match format {
            "text" => {
                // The capture line wraps where the path makes it long: read it unwrapped.
                let flat = report.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    flat.contains("1 capture, 1 TLS handshake, 1 server, 1 client")
                        && flat.contains("pcap, 19 frames, 1 TCP connection trust:"),
                    "{report}"
                )
            }
            "markdown" => assert!(
                report.contains("1 capture, 19 frames, 1 TLS handshake, 1 server, 1 client"),
                "{report}"
            ),
            _ => assert!(report.contains("<b>1</b> TLS handshake<"), "{report}"),
        }
    }
    let out = chainsniff(&[
        &capture,
        "--trust",
        &repo("captures/pki/root.pem"),
        "--export-certs",
        &export.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("wrote 2 certificates, 1 chain and 1 bundle to "),
        "{err}"
    );
    assert_plurals_right(&err, "--export-certs");
    // A report of several captures says so in the plural.
    let out = chainsniff(&[&capture, &capture, "-f", "markdown"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 captures, 38 frames"));
}
