//! A capture file's TCP connections followed on several threads (`--threads N`, the lanes of
//! `analysis::sharded`) give the report of one thread, byte for byte: on every bundled capture,
//! on a generated one that fills the flow table, on one whose connections are swept as idle, on
//! one whose secrets come in the middle of the file, in a partial analysis, and on the public
//! corpus; and their memory stays that of one thread, whatever the file's size.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{chainsniff, gen_bench, repo, tmp};

/// What chainsniff gives for `capture` with `args` on `threads` threads: exit status, standard
/// output (the report), standard error.
type Outcome = (i32, Vec<u8>, Vec<u8>);

fn report(capture: &Path, args: &[&str], threads: usize) -> Outcome {
    let threads = threads.to_string();
    let mut all = vec![
        "analyze",
        capture.to_str().unwrap(),
        "--color",
        "never",
        "--threads",
        &threads,
    ];
    all.extend_from_slice(args);
    let out = chainsniff(&all);
    // Exit status 2 (an unreadable file in the corpus) is an outcome to compare too; a signal
    // is not.
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "{} {args:?} --threads {threads}: {}",
            capture.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, out.stdout, out.stderr)
}

/// The same outcome on 1, 2 and 3 threads; returns the report.
fn same_on_any_threads(capture: &Path, args: &[&str]) -> Vec<u8> {
    let one = report(capture, args, 1);
    for n in [2, 3] {
        let lanes = report(capture, args, n);
        assert!(
            one == lanes,
            "{} {args:?}: --threads {n} differs from --threads 1",
            capture.display()
        );
    }
    one.1
}

fn bundled() -> Vec<PathBuf> {
    let all = common::bundled_captures();
    assert!(all.len() >= 20, "{all:?}");
    all
}

#[test]
fn every_bundled_capture_gives_the_same_report_on_one_thread_and_on_several() {
    let trust = repo("captures/pki/root.pem");
    let trust = trust.to_str().unwrap();
    for capture in bundled() {
        let keylog = capture.with_extension("keylog");
        let keylog = keylog
            .exists()
            .then(|| format!("--keylog={}", keylog.display()));
        for format in ["json", "text"] {
            let mut args = vec!["--trust", trust, "-f", format];
            if let Some(k) = &keylog {
                args.push(k);
            }
            same_on_any_threads(&capture, &args);
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON report's warnings of a kind, summed over the captures.
fn warnings(report: &[u8], kind: &str) -> usize {
    let v: serde_json::Value = serde_json::from_slice(report).unwrap();
    v["captures"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["warnings"].as_array().unwrap())
        .filter(|w| w["kind"] == kind)
        .count()
}

#[test]
fn a_full_flow_table_and_idle_sweeps_give_the_same_report_on_several_threads() {
    // 12,000 conversations in flight against a table of 8,192 (1,024 per sub-table): the
    // table is full again and again.
    let full = tmp("full.pcap");
    run(Command::new(gen_bench())
        .args([
            "--size",
            "6MiB",
            "--concurrency",
            "12000",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&full));
    let args = ["-f", "json", "--max-flows", "8192"];
    let json = same_on_any_threads(&full, &args);
    assert_eq!(warnings(&json, "flow_table_full"), 1);

    // The same traffic in three pieces, each 700 s after the one before, as one file: the
    // connections the first piece leaves open are swept as idle in the second.
    let dir = tmp("pieces");
    let parts = common::editcap_split(&full, 3000, &dir);
    let mut shifted = Vec::new();
    for (i, part) in parts.iter().take(3).enumerate() {
        let out = dir.join(format!("shifted-{i}.pcap"));
        run(Command::new("editcap")
            .args(["-t", &(700 * i).to_string()])
            .arg(part)
            .arg(&out));
        shifted.push(out);
    }
    let idle = tmp("idle.pcap");
    run(Command::new("mergecap")
        .args(["-a", "-F", "pcap", "-w"])
        .arg(&idle)
        .args(&shifted));
    let json = same_on_any_threads(&idle, &["-f", "json"]);
    // One for TCP (1,858 conversations). The UDP conversations are DNS, given up at their
    // first datagram, so none is left to be swept.
    assert_eq!(warnings(&json, "idle_evicted"), 1);
    let text = String::from_utf8_lossy(&json);
    assert!(
        text.contains("1858 TCP conversations idle for more than 600 s"),
        "{text:.2000}"
    );
    same_on_any_threads(&idle, &["-f", "text", "--details", "all"]);
}

#[test]
fn secrets_in_the_middle_of_the_file_reach_every_thread_there() {
    // A TLS 1.3 capture without secrets, then one with its Decryption Secrets Block: the second
    // file's secrets come after the first file's frames.
    let both = tmp("mid-secrets.pcapng");
    run(Command::new("mergecap")
        .args(["-a", "-F", "pcapng", "-w"])
        .arg(&both)
        .arg(repo("captures/tls13-gnutls.pcapng"))
        .arg(repo("captures/tls13-openssl-dsb.pcapng")));
    let json = same_on_any_threads(&both, &["-f", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let hs = v["handshakes"].as_array().unwrap();
    let decrypted = hs
        .iter()
        .filter(|h| h["certificates"].as_array().is_some_and(|c| !c.is_empty()))
        .count();
    // The second file's handshakes are decrypted with the secrets; the first file's are not.
    assert_eq!((hs.len(), decrypted), (7, 2), "{v:#}");
}

#[test]
fn the_public_corpus_gives_the_same_reports_on_several_threads() {
    let Some(corpus) = common::shared_data(
        "CHAINSNIFF_PUBLIC_CAPTURES",
        "captures/public",
        "truth",
        "the public corpus on several threads",
    ) else {
        return;
    };
    let mut files = Vec::new();
    let mut dirs = vec![corpus];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .is_some_and(|e| ["pcap", "pcapng", "cap", "trace"].iter().any(|x| e == *x))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() > 100, "{} captures", files.len());
    for f in &files {
        let one = report(f, &["-f", "json"], 1);
        assert!(
            one == report(f, &["-f", "json"], 2),
            "{}: --threads 2 differs from --threads 1",
            f.display()
        );
    }
}

#[test]
fn a_partial_analysis_is_the_same_on_several_threads() {
    let capture = repo("captures/lync-vip-phones.pcap");
    let mut partials = Vec::new();
    for threads in ["1", "2"] {
        let out = tmp(&format!("phones-{threads}.part"));
        let run = chainsniff(&[
            "analyze",
            capture.to_str().unwrap(),
            "--partial",
            out.to_str().unwrap(),
            "--threads",
            threads,
        ]);
        assert!(run.status.success(), "{run:?}");
        partials.push(std::fs::read(out).unwrap());
    }
    assert!(partials[0] == partials[1]);
}

/// The peak resident memory (MB) of `chainsniff analyze capture --threads N`, as it prints it
/// with `CHAINSNIFF_TIMINGS` (from /proc: Linux only).
fn peak_rss(capture: &Path, threads: &str) -> Option<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(["analyze", "-q", "--threads", threads])
        .arg(capture)
        .env("CHAINSNIFF_TIMINGS", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().rfind(|l| l.contains("peak RSS"))?;
    line.split("peak RSS ")
        .nth(1)?
        .split(" MB")
        .next()?
        .parse()
        .ok()
}

#[test]
fn lanes_keep_memory_bounded_by_the_live_connections_not_the_file() {
    // Lanes read the payloads in the file's mapping, a little behind the reader: the reader
    // must keep those pages until they are read, then give them back, or the pages read again
    // stay resident for good: on this 229 MB capture 130 MB against 49 MB on one thread, where
    // it is 56 MB.
    let capture = tmp("rss.pcap");
    run(Command::new(gen_bench())
        .args(["--size", "200MiB", "--seed", "3", "--out"])
        .arg(&capture));
    let (Some(one), Some(lanes)) = (peak_rss(&capture, "1"), peak_rss(&capture, "2")) else {
        common::notice("no /proc/self/status: the memory of lanes is not checked");
        return;
    };
    assert!(
        lanes < one + 24,
        "--threads 2: {lanes} MB, --threads 1: {one} MB"
    );
}
