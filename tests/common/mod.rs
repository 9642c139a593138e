//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod synth;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A path inside the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// SHA-256 (hex) of the DER inside a PEM file of the test PKI (`captures/pki/NAME.pem`).
pub fn pki_sha(name: &str) -> String {
    let pem = std::fs::read(repo(&format!("captures/pki/{name}.pem"))).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    hex::encode(chainsniff::pki::sha256(&pem.contents))
}

/// A path inside the repository as the string the library's `run` takes.
pub fn repo_path(p: &str) -> String {
    repo(p).to_string_lossy().into_owned()
}

/// Runs the `chainsniff` binary.
pub fn chainsniff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chainsniff"))
        .args(args)
        // The text report's width follows COLUMNS: the tests read it at its default, 80.
        .env_remove("COLUMNS")
        .output()
        .unwrap()
}

/// A path in this test binary's own temporary directory.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chainsniff-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The capture generator (`examples/gen-bench`), built beside the test binaries by `cargo test`
/// (which builds the examples).
pub fn gen_bench() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let name = format!("gen-bench{}", std::env::consts::EXE_SUFFIX);
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the whole suite (`cargo test --release`), which builds the examples",
        path.display()
    );
    path
}

/// The bundled captures (`captures/*.pcap`, `captures/*.pcapng`), in name order.
pub fn bundled_captures() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(repo("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    all.sort();
    all
}

/// `editcap -c per_file CAPTURE` into `dir` (a ring buffer's files): the parts, in order.
pub fn editcap_split(capture: &Path, per_file: usize, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("editcap")
        .args(["-c", &per_file.to_string()])
        .arg(capture)
        .arg(dir.join("part.pcap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "editcap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part_")
        })
        .collect();
    parts.sort();
    assert!(parts.len() > 1, "{}: {parts:?}", capture.display());
    parts
}

/// Unix seconds of an RFC 3339 time (`2024-01-01T00:00:00+00:00`, `2026-12-01T10:00:00.123456Z`);
/// fractions of a second are dropped. `None` when it is not one.
pub fn rfc3339_secs(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6)?.parse::<i64>().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// A printer of `chainsniff::render` (`text::write`, `markdown::write`, ...).
pub type Printer = fn(
    &chainsniff::Report,
    &mut dyn std::io::Write,
    &chainsniff::render::Style,
) -> std::io::Result<()>;

/// The report as `write` prints it, with the default style (no colors, 80 columns).
pub fn rendered(write: Printer, r: &chainsniff::Report) -> String {
    let mut out = Vec::new();
    write(r, &mut out, &chainsniff::render::Style::default()).unwrap();
    String::from_utf8(out).unwrap()
}

/// A line in the normal test output, also for a test that passes: the harness captures
/// `println!`/`eprintln!` of passing tests, not writes to the standard error handle.
pub fn notice(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "NOTICE: {text}");
}

/// Third-party test data beside the checkout (`../shared/...`): the folder named by `env_var`
/// (which must then hold `marker`), else `../shared/<beside>` when it holds `marker`, else
/// `None` after a visible notice that `what` was skipped.
pub fn shared_data(env_var: &str, beside: &str, marker: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(env_var) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.join(marker).exists(),
                "{env_var} is set to {} but it has no {marker}",
                p.display()
            );
            Some(p)
        }
        None => {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared")
                .join(beside);
            if p.join(marker).exists() {
                Some(p)
            } else {
                notice(&format!(
                    "{beside} not found (set {env_var}): {what} skipped"
                ));
                None
            }
        }
    }
}

/// The browser for the HTML test: `CHAINSNIFF_CHROMIUM` (set by `.ci/run`; then it must
/// exist), else `chromium` on the PATH, else the test is skipped with a notice.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHAINSNIFF_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "CHAINSNIFF_CHROMIUM is set to {} but it does not exist",
            p.display()
        );
        return Some(p);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.exists())
    });
    if found.is_none() {
        notice("chromium not found (set CHAINSNIFF_CHROMIUM): HTML browser test skipped");
    }
    found
}

/// Runs the headless browser on `page` with `args` (`--dump-dom`, `--screenshot=...`).
pub fn headless(browser: &Path, args: &[&str], page: &Path) -> Output {
    // A profile per page: browsers started by tests running at once must not share one (the
    // second finds it locked and exits).
    let stem = page.file_stem().unwrap_or_default().to_string_lossy();
    let profile = tmp(&format!("chromium-profile-{stem}"));
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}
