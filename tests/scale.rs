//! Partial analyses and their merge: `chainsniff analyze --partial` per capture file (a ring
//! buffer's files each `--after` the one before), `chainsniff merge` of the partials in
//! capture order, and a tree of merges (`merge --partial`), each give byte for byte the report
//! of `chainsniff analyze` over all the files; so does the Dask recipe
//! (`contrib/dask_chainsniff.py`) on a local cluster of two workers. Bad partials are refused
//! with a clear line, and an unreadable capture fails its own task only.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{chainsniff, notice, repo, repo_path, tmp};

/// The bundled captures a run over many files would meet: separate captures of different
/// kinds (TLS, DTLS, EAP over RADIUS, TLS 1.3 with an embedded key log).
const CAPTURES: &[&str] = &[
    "captures/lync-vip-before.pcapng",
    "captures/lync-vip-fixed.pcap",
    "captures/dtls-openssl.pcap",
    "captures/eap-radius-leaf-only.pcap",
    "captures/tls13-openssl-dsb.pcapng",
    "captures/x509-cases.pcap",
];

fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn strs(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The groups `chainsniff plan` prints for `captures`.
fn plan(captures: &[String]) -> Vec<Vec<String>> {
    let mut args = vec!["plan"];
    args.extend(captures.iter().map(String::as_str));
    let out = chainsniff(&args);
    String::from_utf8(ok(&out).stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A partial per capture in `dir`, as the Dask recipe makes them: each file of a group
/// `--after` the one before. Returns them in capture order.
fn partials(captures: &[String], dir: &Path, read: &[&str]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for group in plan(captures) {
        for (i, capture) in group.iter().enumerate() {
            let part = dir.join(format!("{:04}.part", out.len()));
            let mut args = vec!["analyze", "--partial", part.to_str().unwrap(), "-q"];
            args.extend(read);
            if i > 0 {
                args.extend(["--after", group[i - 1].as_str()]);
            }
            args.push(capture);
            ok(&chainsniff(&args));
            out.push(part);
        }
    }
    assert_eq!(out.len(), captures.len());
    out
}

/// `chainsniff analyze CAPTURES REPORT...` and `chainsniff merge PARTS REPORT...`, in every
/// report format: the same bytes.
fn assert_same_reports(captures: &[String], parts: &[PathBuf], report: &[&str]) {
    for format in ["json", "text", "markdown", "html"] {
        let mut one = vec!["analyze"];
        one.extend(captures.iter().map(String::as_str));
        one.extend(report);
        one.extend(["-f", format]);
        let mut merged = vec!["merge"];
        let parts = strs(parts);
        merged.extend(parts.iter().map(String::as_str));
        merged.extend(report);
        merged.extend(["-f", format]);
        let (one, merged) = (chainsniff(&one), chainsniff(&merged));
        assert_eq!(one.status.code(), merged.status.code(), "{format}");
        assert!(
            one.stdout == merged.stdout,
            "{format}: the merged report differs:\n{}",
            diff(&one.stdout, &merged.stdout)
        );
        assert!(!one.stdout.is_empty());
    }
}

/// The first lines where two reports differ.
fn diff(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    a.lines()
        .zip(b.lines())
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .take(5)
        .map(|(i, (x, y))| format!("line {}:\n- {x}\n+ {y}\n", i + 1))
        .collect()
}

fn have_editcap() -> bool {
    let ok = Command::new("editcap").arg("-h").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("CHAINSNIFF_PUBLIC_CAPTURES").is_none(),
            "CI installs editcap (tshark)"
        );
        notice("editcap not found: the ring-buffer partial tests are skipped");
    }
    ok
}

/// `editcap -c per_file CAPTURE`: its parts, in order, in a directory of their own.
fn split(capture: &Path, per_file: usize, name: &str) -> Vec<PathBuf> {
    common::editcap_split(capture, per_file, &tmp(&format!("split-{name}-{per_file}")))
}

#[test]
fn merging_the_partials_of_captures_gives_their_report() {
    let captures: Vec<String> = CAPTURES.iter().map(|c| repo_path(c)).collect();
    let dir = tmp("partials-bundled");
    let parts = partials(&captures, &dir, &[]);
    let trust = repo_path("captures/pki/root.pem");
    assert_same_reports(&captures, &parts, &["--trust", &trust]);

    // A tree of merges: the first three merged into a partial, then with the rest.
    let left = dir.join("left.part");
    let mut args = vec!["merge", "--partial", left.to_str().unwrap()];
    let names = strs(&parts);
    args.extend(names[..3].iter().map(String::as_str));
    ok(&chainsniff(&args));
    let mut tree = vec![left];
    tree.extend(parts[3..].iter().cloned());
    assert_same_reports(&captures, &tree, &["--trust", &trust]);

    // A partial's size grows with its handshakes, not with the capture: the 18 servers of
    // x509-cases.pcap, each certificate once, in a few kB.
    let x509 = std::fs::metadata(&parts[5]).unwrap().len();
    assert!(x509 < 24 << 10, "{x509} bytes");
}

#[test]
fn a_ring_buffers_parts_merge_into_the_whole_capture() {
    if !have_editcap() {
        return;
    }
    let whole = repo("captures/lync-vip-phones.pcap");
    let trust = repo_path("captures/pki/root.pem");
    let handshakes = |report: &[u8]| -> u64 {
        let r: serde_json::Value = serde_json::from_slice(report).unwrap();
        r["summary"]["handshakes"].as_u64().unwrap()
    };
    let whole_report = chainsniff(&["analyze", whole.to_str().unwrap(), "-f", "json"]);
    for per_file in [10, 25, 40] {
        let files = strs(&split(&whole, per_file, "phones"));
        // One group: the plan gives the files to the partials in order, each after the last.
        assert_eq!(plan(&files), vec![files.clone()]);
        let parts = partials(&files, &tmp(&format!("partials-phones-{per_file}")), &[]);
        assert_same_reports(&files, &parts, &["--trust", &trust]);
        let mut merged = vec!["merge"];
        let names = strs(&parts);
        merged.extend(names.iter().map(String::as_str));
        merged.extend(["-f", "json"]);
        assert_eq!(
            handshakes(&chainsniff(&merged).stdout),
            handshakes(&whole_report.stdout),
            "{per_file} frames a file: the handshake crossing a boundary is one handshake"
        );
    }
}

/// The generator, built beside this test by `cargo test` (which builds the examples).
fn gen_bench() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    dir.join("examples")
        .join(format!("gen-bench{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn split_copies_of_a_generated_capture_merge_into_its_report() {
    if !have_editcap() {
        return;
    }
    let capture = tmp("generated.pcap");
    let status = Command::new(gen_bench())
        .args(["--size", "80MiB", "--seed", "9", "--out"])
        .arg(&capture)
        .status()
        .unwrap();
    assert!(status.success());
    let trust = repo_path("captures/pki/root.pem");
    // Files longer than any conversation of the generator (2,000 in flight, a few dozen
    // frames each): every handshake crossing a boundary is followed.
    let files = strs(&split(&capture, 45_000, "generated"));
    let parts = partials(&files, &tmp("partials-generated"), &[]);
    assert_same_reports(&files, &parts, &["--trust", &trust]);

    // Files shorter than some handshakes: those open over a whole file are the only
    // difference, and the merged report counts them in warnings (each one that may differ:
    // a few of them are reported as the whole capture reports them all the same).
    let files = strs(&split(&capture, 15_000, "generated"));
    let parts = partials(&files, &tmp("partials-generated-short"), &[]);
    let json = |args: Vec<&str>| -> serde_json::Value {
        let mut args: Vec<&str> = args;
        let tail = ["-f", "json", "--trust", trust.as_str()];
        args.extend(tail);
        serde_json::from_slice(&chainsniff(&args).stdout).unwrap()
    };
    let mut one = vec!["analyze"];
    one.extend(files.iter().map(String::as_str));
    let one = json(one);
    let names = strs(&parts);
    let mut merged = vec!["merge"];
    merged.extend(names.iter().map(String::as_str));
    let merged = json(merged);
    let key = |h: &serde_json::Value| h.to_string();
    let one_hs: Vec<String> = one["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let merged_hs: Vec<String> = merged["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    assert_eq!(one_hs.len(), merged_hs.len());
    let differing = one_hs
        .iter()
        .zip(&merged_hs)
        .filter(|(a, b)| a != b)
        .count();
    let warned: u64 = merged["captures"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["warnings"].as_array().unwrap())
        .filter(|w| w["kind"] == "cut_between_partials")
        .map(|w| {
            let text = w["text"].as_str().unwrap();
            text.split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(warned > 0, "files of 15,000 frames cut some handshakes");
    // Handshake ids follow report order, so compare without them.
    let without_id = |hs: &[String]| -> Vec<String> {
        hs.iter()
            .map(|h| {
                let mut v: serde_json::Value = serde_json::from_str(h).unwrap();
                v.as_object_mut().unwrap().remove("id");
                v.to_string()
            })
            .collect()
    };
    let (a, b) = (without_id(&one_hs), without_id(&merged_hs));
    let differing_content = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        differing_content > 0
            && differing_content as u64 <= warned
            && warned < 2 * differing_content as u64,
        "every handshake the merge reports differently is counted in a warning: {differing_content} differ ({differing} with ids), {warned} counted"
    );
    let _ = std::fs::remove_file(&capture);
    let _ = std::fs::remove_file(format!("{}.truth.json", capture.display()));
}

#[test]
fn bad_partials_are_refused_in_one_line() {
    let dir = tmp("partials-bad");
    let captures: Vec<String> = CAPTURES[..2].iter().map(|c| repo_path(c)).collect();
    let parts = partials(&captures, &dir, &[]);
    let refused = |args: &[&str], words: &str| {
        let out = chainsniff(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    };
    let p0 = parts[0].to_str().unwrap();
    let p1 = parts[1].to_str().unwrap();
    // A capture is not a partial.
    refused(
        &["merge", &captures[0]],
        "not a chainsniff partial (make one with chainsniff analyze --partial OUT CAPTURE...)",
    );
    // Another format version.
    let mut bytes = std::fs::read(&parts[1]).unwrap();
    let at = b"chainsniff partial\n".len();
    bytes[at] = bytes[at].wrapping_add(1);
    let other = dir.join("other-version.part");
    std::fs::write(&other, &bytes).unwrap();
    refused(
        &["merge", p0, other.to_str().unwrap()],
        "a partial of format version 2; this chainsniff (0.1.0) reads version 1: make the partials again with this chainsniff",
    );
    // Cut short.
    let cut = dir.join("cut.part");
    let whole = std::fs::read(&parts[0]).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    refused(&["merge", cut.to_str().unwrap()], "damaged or cut short");
    // Read with other options.
    let filtered = dir.join("filtered.part");
    ok(&chainsniff(&[
        "analyze",
        "--partial",
        filtered.to_str().unwrap(),
        "--max-flows",
        "1000",
        &captures[1],
    ]));
    refused(
        &["merge", p0, filtered.to_str().unwrap()],
        "read with --max-flows 1000",
    );
    // Made --after a file that is not the partial before's last.
    let after = dir.join("after.part");
    ok(&chainsniff(&[
        "analyze",
        "--partial",
        after.to_str().unwrap(),
        "--after",
        &captures[1],
        &captures[0],
    ]));
    refused(
        &["merge", p0, after.to_str().unwrap()],
        "give the partials in capture order",
    );
    refused(
        &["merge", after.to_str().unwrap()],
        "whose partial is not merged: give it first",
    );
    // jsonl streams while reading: a merge has nothing to stream.
    refused(
        &["merge", p0, p1, "-f", "jsonl"],
        "merge writes the whole report",
    );
}

#[test]
fn an_unreadable_capture_fails_its_task_only() {
    let dir = tmp("partials-unreadable");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("notes.txt");
    std::fs::write(&bad, "not a capture at all\n").unwrap();
    let bad = bad.to_string_lossy().into_owned();
    // The task's error is the one analyze gives, and its partial names the capture.
    let alone = chainsniff(&["analyze", &bad]);
    let part = dir.join("bad.part");
    let task = chainsniff(&["analyze", "--partial", part.to_str().unwrap(), &bad]);
    assert_eq!(task.status.code(), Some(2));
    assert_eq!(alone.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&task.stderr),
        String::from_utf8_lossy(&alone.stderr)
    );
    let good = dir.join("good.part");
    let fixed = repo_path("captures/lync-vip-fixed.pcap");
    ok(&chainsniff(&[
        "analyze",
        "--partial",
        good.to_str().unwrap(),
        &fixed,
    ]));
    let merged = chainsniff(&[
        "merge",
        good.to_str().unwrap(),
        part.to_str().unwrap(),
        "-f",
        "json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&ok(&merged).stdout).unwrap();
    assert_eq!(
        r["summary"]["handshakes"], 3,
        "the good capture is all there"
    );
    let missing = &r["captures"][1];
    assert_eq!(missing["path"], bad.as_str());
    assert_eq!(missing["frames"], 0);
    let w = &missing["warnings"][0];
    assert_eq!(w["kind"], "not_analyzed");
    let line = String::from_utf8_lossy(&alone.stderr);
    let error = line.trim().trim_start_matches("chainsniff: ");
    assert_eq!(
        w["text"],
        format!("not analyzed, nothing of it is in this report: {error}")
    );

    // The next file of a ring buffer whose file before is the unreadable one: read without
    // it, and merged after the failed partial, all of it is there.
    let next = dir.join("next.part");
    let task = chainsniff(&[
        "analyze",
        "--partial",
        next.to_str().unwrap(),
        "--after",
        &bad,
        &fixed,
    ]);
    assert!(task.status.success());
    assert_eq!(
        String::from_utf8_lossy(&task.stderr),
        format!("chainsniff: warning: --after {error}: read without it\n")
    );
    let merged = chainsniff(&[
        "merge",
        part.to_str().unwrap(),
        next.to_str().unwrap(),
        "-f",
        "json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&ok(&merged).stdout).unwrap();
    assert_eq!(r["summary"]["handshakes"], 3);
    assert_eq!(r["captures"][0]["warnings"][0]["kind"], "not_analyzed");
}

/// A Python that has Dask distributed: `CHAINSNIFF_PYTHON`, else `/usr/bin/python3` (Debian's
/// python3-distributed), else `python3` on the PATH.
fn python_with_dask() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("CHAINSNIFF_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec!["/usr/bin/python3".into(), "python3".into()],
    };
    for p in candidates {
        let ok = Command::new(&p)
            .args(["-c", "import distributed"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(p);
        }
    }
    assert!(
        std::env::var_os("CHAINSNIFF_PUBLIC_CAPTURES").is_none(),
        "CI installs python3-distributed"
    );
    notice("no Python with Dask distributed (python3-distributed): the Dask test is skipped");
    None
}

#[test]
fn a_local_dask_cluster_gives_the_single_run_report() {
    let Some(python) = python_with_dask() else {
        return;
    };
    let mut captures: Vec<String> = CAPTURES.iter().map(|c| repo_path(c)).collect();
    if have_editcap() {
        // A ring buffer among them: its files go to tasks each after the one before.
        captures.extend(strs(&split(
            &repo("captures/lync-vip-phones.pcap"),
            30,
            "dask",
        )));
    }
    let trust = repo_path("captures/pki/root.pem");
    let work = tmp("dask-work");
    for format in ["json", "text"] {
        let report = tmp(&format!("dask-report.{format}"));
        let status = Command::new(&python)
            .arg(repo("contrib/dask_chainsniff.py"))
            .args(["--local-workers", "2", "--fan-in", "3", "--workdir"])
            .arg(&work)
            .arg("--chainsniff")
            .arg(env!("CARGO_BIN_EXE_chainsniff"))
            .args(&captures)
            .args(["--", "--trust", &trust, "-f", format, "-o"])
            .arg(&report)
            .env_remove("COLUMNS")
            .status()
            .unwrap();
        assert!(status.success());
        let mut one = vec!["analyze"];
        one.extend(captures.iter().map(String::as_str));
        one.extend(["--trust", &trust, "-f", format]);
        let one = chainsniff(&one);
        let dask = std::fs::read(&report).unwrap();
        assert!(
            dask == one.stdout,
            "{format}: the Dask run's report differs:\n{}",
            diff(&one.stdout, &dask)
        );
    }
    // The recipe leaves no partial behind.
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}
