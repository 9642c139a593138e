//! chainsniff's chain verdicts against `openssl verify` (OpenSSL 3.0), on real captures.
//!
//! For every server chain seen in the bundled captures (`captures/`, each with the root its README
//! names and its key log) and in the public capture corpus (`CHAINSNIFF_PUBLIC_CAPTURES`, judged
//! against the default Mozilla roots), the chain is given to
//! `openssl verify -no-CApath -no-CAstore -CAfile <the analysis's trust anchors> -untrusted <the certificates sent after
//! the leaf> -attime <the Certificate's time> -purpose sslserver [-verify_hostname <SNI>] <leaf>`
//! and its exit status (0 = valid) is compared with the handshake's verdict (handshakes without a
//! verdict, `not_judged`, are skipped). Identical jobs (same chain, anchors, SNI, and the same
//! validity of every certificate at the handshake's time) run once.
//!
//! A disagreement fails the test unless [`EXCEPTIONS`] explains it: one handshake or certificate,
//! or a general rule (where OpenSSL is knowingly laxer than a strict client). The test prints
//! every disagreement and a summary line.
//!
//! A second test checks, on the bundled captures, that each error finding kind chainsniff gives
//! on a rejected chain is one OpenSSL names too: `openssl verify` reports the error that kind
//! stands for (at `-auth_level 2`, a default client's level, for weak keys and signatures).
//!
//! The corpus comes from `CHAINSNIFF_PUBLIC_CAPTURES` as for tests/conformance.rs: when unset,
//! `../shared/captures/public` is used if present, else that part is skipped with a notice; when
//! set but missing, the test fails. Everything is written under the test's temporary directory.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use chainsniff::pki::{FindingKind, Severity, Sha, Verdict, sha_from_hex};
use chainsniff::{Options, analyze, build};

/// Which disagreements an exception covers.
#[allow(dead_code)] // not every kind of scope is in use at every moment
enum Scope {
    /// One handshake: the capture's path (relative to its folder) and its stream.
    Stream(&'static str, u64),
    /// Every chain whose leaf's SHA-256 starts with this hex prefix.
    Leaf(&'static str),
    /// Every disagreement the rule matches.
    Rule(fn(&Disagreement) -> bool),
}

/// Disagreements explained, each with its reason. The test fails if one of them no longer
/// matches any disagreement (so the list stays true).
const EXCEPTIONS: &[(Scope, &str)] = &[
    (
        Scope::Rule(key_usage_for_the_key_exchange),
        "The leaf's keyUsage lacks what the negotiated key exchange needs (digitalSignature for \
         ECDHE): `openssl verify` judges the chain without the cipher suite and accepts it, while \
         the OpenSSL client in the same handshake aborts (x509-cases.pcap stream 19: \
         handshake_failure, BAD_ECC_CERT).",
    ),
    (
        Scope::Rule(ca_as_leaf),
        "OpenSSL accepts a CA certificate (basicConstraints cA TRUE) as the server's; strict \
         clients (rustls-webpki: CaUsedAsEndEntity, Firefox) refuse it, and so does chainsniff \
         (ca_as_leaf). The bundled x509-cases.pcap shows OpenSSL's client completing with it.",
    ),
    (
        Scope::Rule(weak_only_at_level_1),
        "`openssl verify` checks at security level 1, which accepts RSA keys of 1024 bits and \
         SHA-1 signatures; at level 2 (a default OpenSSL 3 client's, Debian's) it rejects the \
         same chain (EE key too weak, CA signature digest too weak: checked by re-running it \
         with -auth_level 2), as rustls and browsers do and chainsniff does (weak_key, \
         weak_signature).",
    ),
];

/// chainsniff rejects the chain only because its leaf is a CA certificate.
/// chainsniff rejects the chain only because the leaf's keyUsage does not allow what the
/// negotiated key exchange does with its key: `openssl verify` is not told the cipher suite.
fn key_usage_for_the_key_exchange(d: &Disagreement) -> bool {
    !d.chainsniff_valid
        && d.errors.iter().eq([FindingKind::WrongKeyUsage].iter())
        && d.key_exchange_only
}

fn ca_as_leaf(d: &Disagreement) -> bool {
    !d.chainsniff_valid && d.errors.iter().eq([FindingKind::CaAsLeaf].iter())
}

/// chainsniff rejects the chain only for weak keys or signatures, which OpenSSL accepts at its
/// default verify level (1) and rejects at a default client's level (2).
fn weak_only_at_level_1(d: &Disagreement) -> bool {
    !d.chainsniff_valid
        && !d.errors.is_empty()
        && d.errors
            .iter()
            .all(|k| matches!(k, FindingKind::WeakKey | FindingKind::WeakSignature))
        && !d.openssl_level2_valid
}

/// One chain that chainsniff and OpenSSL judge differently, with what a rule may look at.
struct Disagreement {
    /// chainsniff says valid (and OpenSSL invalid), or the other way round.
    chainsniff_valid: bool,
    /// The kinds of chainsniff's error findings.
    errors: BTreeSet<FindingKind>,
    /// OpenSSL's verdict at `-auth_level 2` (a default client's security level).
    openssl_level2_valid: bool,
    /// chainsniff's wrong_key_usage findings are all about the leaf's key usage for the
    /// negotiated key exchange (which `openssl verify` is not told).
    key_exchange_only: bool,
}

/// One `openssl verify` run.
struct Job {
    chain: Vec<Vec<u8>>,
    anchors: PathBuf,
    at: i64,
    sni: Option<String>,
}

/// What OpenSSL said.
#[derive(Clone, Default)]
struct OpensslResult {
    valid: bool,
    /// Its `error N at D depth lookup: ...` lines (or what it printed when it failed otherwise).
    lines: Vec<String>,
    codes: Vec<u32>,
}

/// One handshake compared.
struct Compared {
    capture: String,
    stream: u64,
    transport: String,
    sni: Option<String>,
    subjects: Vec<String>,
    leaf_sha: String,
    verdict: Verdict,
    kinds: Vec<(FindingKind, Severity)>,
    /// Every wrong_key_usage finding is about the leaf (its keyUsage against the negotiated
    /// key exchange), none about an issuer.
    key_usage_of_leaf_only: bool,
    job: usize,
}

fn public_corpus() -> Option<PathBuf> {
    common::shared_data(
        "CHAINSNIFF_PUBLIC_CAPTURES",
        "captures/public",
        "truth",
        "comparing the public corpus's chains with openssl",
    )
}

fn is_capture(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    [".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap"]
        .iter()
        .any(|e| name.ends_with(e))
}

fn captures_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            captures_under(&p, out);
        } else if is_capture(&p) {
            out.push(p);
        }
    }
}

/// The bundled captures, each with its options: the root its README names (only that root, as
/// the recorded clients had), and its key log when there is one.
fn bundled() -> Vec<(PathBuf, Options)> {
    let mut files = Vec::new();
    captures_under(&common::repo("captures"), &mut files);
    assert!(files.len() >= 10, "bundled captures not found");
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let root = if name.starts_with("x509-cases") {
                "captures/pki/x509/root.pem"
            } else if name.starts_with("eap") {
                "captures/pki/eap/root.pem"
            } else {
                "captures/pki/root.pem"
            };
            let stem = name.split('.').next().unwrap();
            let keylog = common::repo(&format!("captures/{stem}.keylog"));
            let opts = Options {
                trust: vec![common::repo(root)],
                no_default_trust: true,
                keylog: if keylog.is_file() {
                    vec![keylog]
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            (f, opts)
        })
        .collect()
}

fn pem(ders: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        s.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(line).unwrap());
            s.push('\n');
        }
        s.push_str("-----END CERTIFICATE-----\n");
    }
    s
}

/// What an `openssl verify` run depends on: the chain, the anchors' file, the SNI, and whether
/// each certificate (sent, then anchor) was before or after its validity at the handshake.
type JobKey = (Vec<Sha>, PathBuf, Option<String>, Vec<(bool, bool)>);

/// Handshakes, `openssl verify` jobs and anchor files, gathered over every analysis.
#[derive(Default)]
struct Gathered {
    compared: Vec<Compared>,
    jobs: Vec<Job>,
    job_index: HashMap<JobKey, usize>,
    anchor_files: HashMap<Vec<Sha>, PathBuf>,
    /// Captures chainsniff could not read (the conformance test judges those).
    unreadable: Vec<String>,
}

impl Gathered {
    /// Analyzes one capture and queues a job for each judged server chain.
    fn add_capture(&mut self, path: &Path, label: &str, opts: &Options) {
        let a = match analyze(&[path.to_string_lossy().into_owned()], opts) {
            Ok(a) => a,
            Err(e) => {
                self.unreadable.push(format!("{label}: {e}"));
                return;
            }
        };
        let r = build(&a).unwrap();
        let mut anchor_shas: Vec<Sha> = a.trust.anchors.iter().map(|(s, _)| *s).collect();
        anchor_shas.sort();
        let n = self.anchor_files.len();
        let anchors = self
            .anchor_files
            .entry(anchor_shas.clone())
            .or_insert_with(|| {
                let ders: Vec<Vec<u8>> = anchor_shas
                    .iter()
                    .map(|s| a.trust.store.get(s).unwrap().der.clone())
                    .collect();
                let file = common::tmp(&format!("differential-anchors-{n}.pem"));
                std::fs::write(&file, pem(&ders)).unwrap();
                file
            })
            .clone();
        for h in r.handshakes.iter() {
            if h.certificates.is_empty() {
                continue;
            }
            if h.verdict == Verdict::NotJudged {
                continue;
            }
            let shas: Vec<Sha> = h
                .certificates
                .iter()
                .map(|c| sha_from_hex(&c.sha256).unwrap())
                .collect();
            let at = common::rfc3339_secs(h.certificate_time.as_deref().unwrap())
                .expect("an RFC 3339 certificate time");
            // The verdict depends on the time only through the validity of each certificate.
            let validity: Vec<(bool, bool)> = shas
                .iter()
                .map(|s| a.store.meta(s))
                .chain(anchor_shas.iter().map(|s| a.trust.store.meta(s)))
                .map(|m| m.map_or((false, false), |m| (at < m.not_before, at > m.not_after)))
                .collect();
            let sni = h.sni.clone();
            let key = (shas.clone(), anchors.clone(), sni.clone(), validity);
            let next = self.jobs.len();
            let job = *self.job_index.entry(key).or_insert(next);
            if job == next {
                self.jobs.push(Job {
                    chain: shas
                        .iter()
                        .map(|s| a.store.get(s).unwrap().der.clone())
                        .collect(),
                    anchors: anchors.clone(),
                    at,
                    sni: sni.clone(),
                });
            }
            self.compared.push(Compared {
                capture: label.to_string(),
                stream: h.stream,
                transport: h.transport.to_string(),
                sni,
                subjects: h.certificates.iter().map(|c| c.subject.clone()).collect(),
                leaf_sha: h.certificates[0].sha256.clone(),
                verdict: h.verdict,
                kinds: h.findings.iter().map(|f| (f.kind, f.severity)).collect(),
                key_usage_of_leaf_only: h
                    .findings
                    .iter()
                    .filter(|f| f.kind == FindingKind::WrongKeyUsage)
                    .all(|f| f.certificate.as_deref() == Some(&h.certificates[0].sha256)),
                job,
            });
        }
    }
}

/// Runs `openssl verify` for a job (its files are named after `id`).
fn openssl_verify(job: &Job, id: &str, extra: &[&str]) -> OpensslResult {
    let leaf = common::tmp(&format!("differential-{id}-leaf.pem"));
    std::fs::write(&leaf, pem(&job.chain[..1])).unwrap();
    let mut cmd = Command::new("openssl");
    // Only these anchors: not the system's certificate directory or store as well.
    cmd.args(["verify", "-no-CApath", "-no-CAstore", "-CAfile"])
        .arg(&job.anchors);
    if job.chain.len() > 1 {
        let untrusted = common::tmp(&format!("differential-{id}-untrusted.pem"));
        std::fs::write(&untrusted, pem(&job.chain[1..])).unwrap();
        cmd.arg("-untrusted").arg(untrusted);
    }
    cmd.args(["-attime", &job.at.to_string(), "-purpose", "sslserver"]);
    if let Some(sni) = &job.sni {
        cmd.args(["-verify_hostname", sni]);
    }
    cmd.args(extra).arg(&leaf);
    let out = cmd
        .output()
        .expect("openssl is needed for this test (.ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("error ") && l.contains(" depth lookup"))
        .map(str::to_string)
        .collect();
    let codes = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    if lines.is_empty() && !out.status.success() {
        lines = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .map(|l| l.replace(&*leaf.to_string_lossy(), "leaf.pem"))
            .collect();
    }
    OpensslResult {
        valid: out.status.success(),
        lines,
        codes,
    }
}

/// Runs every job, a few at a time.
fn run_jobs(jobs: &[Job], extra: &[&str], tag: &str) -> Vec<OpensslResult> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![OpensslResult::default(); jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= jobs.len() {
                        break;
                    }
                    let r = openssl_verify(&jobs[i], &format!("{tag}{i}"), extra);
                    results.lock().unwrap()[i] = r;
                }
            });
        }
    });
    results.into_inner().unwrap()
}

fn error_kinds(kinds: &[(FindingKind, Severity)]) -> BTreeSet<FindingKind> {
    kinds
        .iter()
        .filter(|(_, s)| *s == Severity::Error)
        .map(|(k, _)| *k)
        .collect()
}

fn kinds_list(kinds: &[(FindingKind, Severity)]) -> String {
    let v: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn covered(scope: &Scope, c: &Compared, d: &Disagreement) -> bool {
    match scope {
        Scope::Stream(capture, stream) => c.capture == *capture && c.stream == *stream,
        Scope::Leaf(prefix) => c.leaf_sha.starts_with(prefix),
        Scope::Rule(rule) => rule(d),
    }
}

#[test]
fn verdicts_agree_with_openssl_verify() {
    let mut g = Gathered::default();
    for (path, opts) in bundled() {
        let label = path.file_name().unwrap().to_string_lossy().into_owned();
        g.add_capture(&path, &label, &opts);
    }
    let bundled_chains = g.compared.len();
    let corpus = public_corpus();
    let corpus_compared = corpus.is_some();
    if let Some(root) = corpus {
        let mut files = Vec::new();
        captures_under(&root, &mut files);
        assert!(
            files.len() > 100,
            "expected the whole corpus, found {} captures",
            files.len()
        );
        for f in &files {
            let label = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            g.add_capture(f, &label, &Options::default());
        }
    }
    let results = run_jobs(&g.jobs, &[], "j");
    // OpenSSL at a default client's security level, for the chains it accepted and chainsniff
    // did not (a rule may need it).
    let mut level2: HashMap<usize, bool> = HashMap::new();
    for c in &g.compared {
        let r = &results[c.job];
        if r.valid && c.verdict != Verdict::Valid && !level2.contains_key(&c.job) {
            let job = &g.jobs[c.job];
            let again = openssl_verify(job, &format!("l{}", c.job), &["-auth_level", "2"]);
            level2.insert(c.job, again.valid);
        }
    }
    let (mut both_valid, mut both_invalid) = (0, 0);
    let mut excepted = 0;
    let mut used = vec![false; EXCEPTIONS.len()];
    let mut failures = Vec::new();
    for c in &g.compared {
        let r = &results[c.job];
        let ours = c.verdict == Verdict::Valid;
        if ours == r.valid {
            if ours {
                both_valid += 1;
            } else {
                both_invalid += 1;
            }
            continue;
        }
        let d = Disagreement {
            chainsniff_valid: ours,
            errors: error_kinds(&c.kinds),
            openssl_level2_valid: level2.get(&c.job).copied().unwrap_or(r.valid),
            key_exchange_only: c.key_usage_of_leaf_only,
        };
        if let Some(i) = EXCEPTIONS.iter().position(|(s, _)| covered(s, c, &d)) {
            used[i] = true;
            excepted += 1;
            continue;
        }
        failures.push(format!(
            "{} {}.stream {} (SNI {}): chainsniff {}, openssl {}\n    chain: {}\n    leaf sha256 {}\n    openssl: {}\n    chainsniff findings: {}",
            c.capture,
            c.transport,
            c.stream,
            c.sni.as_deref().unwrap_or("none"),
            c.verdict.as_str(),
            if r.valid { "valid" } else { "invalid" },
            c.subjects.join(" | "),
            &c.leaf_sha[..16],
            if r.lines.is_empty() {
                "OK".to_string()
            } else {
                r.lines.join("; ")
            },
            kinds_list(&c.kinds),
        ));
    }
    let unused: Vec<&str> = EXCEPTIONS
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((_, reason), _)| *reason)
        .collect();
    println!(
        "differential: {} chains compared ({bundled_chains} bundled, {} public; {} openssl runs), {} agree ({both_valid} valid, {both_invalid} invalid), {excepted} listed exceptions, {} disagreements",
        g.compared.len(),
        g.compared.len() - bundled_chains,
        g.jobs.len(),
        both_valid + both_invalid,
        failures.len(),
    );
    for u in &g.unreadable {
        println!("not read: {u}");
    }
    assert!(bundled_chains >= 20, "too few bundled chains compared");
    // Without the corpus, an exception about its chains has nothing to match.
    if corpus_compared {
        assert!(
            unused.is_empty(),
            "these exceptions match no disagreement any more; remove them: {unused:#?}"
        );
    } else if !unused.is_empty() {
        common::notice(&format!(
            "exceptions not checked without the corpus: {unused:?}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} chains judged differently by chainsniff and openssl verify:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What each error finding kind stands for in `openssl verify`: the error numbers
/// (`X509_V_ERR_*`) that name the same problem, or `None` with why OpenSSL has none.
fn openssl_codes(kind: FindingKind) -> Result<&'static [u32], &'static str> {
    use FindingKind::*;
    Ok(match kind {
        // No issuer to be found: unable to get (local) issuer certificate.
        MissingIntermediate | MissingIssuer | UnknownIssuer | ChainLoop => &[2, 20],
        // The sent issuer's key does not verify: OpenSSL does not take it as the issuer (20),
        // or takes it and fails the signature (7).
        BadSignature => &[2, 7, 20],
        // Self-signed certificate (in the chain) that is not trusted.
        UntrustedRoot => &[18, 19],
        // Invalid CA certificate.
        NotACa => &[24, 79],
        PathLengthExceeded => &[25],
        // Key usage does not include certificate signing (also invalid CA, unsuitable purpose).
        WrongKeyUsage => &[32],
        // Unsuitable certificate purpose.
        WrongExtendedKeyUsage => &[26],
        // Permitted or excluded subtree violation.
        NameConstraintViolation => &[47, 48],
        UnhandledCriticalExtension => &[34],
        Expired => &[10],
        NotYetValid => &[9],
        // Hostname or IP address mismatch.
        NameMismatch => &[62, 64],
        // CA signature digest algorithm too weak (at -auth_level 2).
        WeakSignature => &[68],
        // EE or CA key too weak (at -auth_level 2).
        WeakKey => &[66, 67],
        CaAsLeaf => {
            return Err("OpenSSL accepts a CA certificate as the server's (no such error)");
        }
        RejectedByClient => return Err("about the client's reaction, not the chain"),
        ValidationFailed => return Err("rustls-webpki's reason, whatever OpenSSL calls it"),
        UnparsableCertificate => return Err("OpenSSL fails to load it, with no verify error"),
        other => {
            return Err(if other.severity() == Severity::Error {
                "NO ENTRY: add this kind to openssl_codes"
            } else {
                "not an error"
            });
        }
    })
}

/// On the bundled captures: every error finding kind on a rejected chain is a problem
/// `openssl verify -auth_level 2` reports too, with the error that kind stands for.
#[test]
fn finding_kinds_are_openssl_errors() {
    let mut g = Gathered::default();
    for (path, opts) in bundled() {
        let label = path.file_name().unwrap().to_string_lossy().into_owned();
        g.add_capture(&path, &label, &opts);
    }
    let results = run_jobs(&g.jobs, &["-auth_level", "2"], "k");
    // Per kind: the handshakes that have it, and those where OpenSSL names something else.
    let mut seen: BTreeMap<FindingKind, (usize, Vec<String>)> = BTreeMap::new();
    let mut no_entry = BTreeSet::new();
    for c in g.compared.iter().filter(|c| c.verdict == Verdict::Invalid) {
        let r = &results[c.job];
        for kind in error_kinds(&c.kinds) {
            // The leaf's keyUsage against the negotiated key exchange: `openssl verify` is not
            // told the cipher suite (OpenSSL's client checks it in the handshake instead).
            if kind == FindingKind::WrongKeyUsage && c.key_usage_of_leaf_only {
                continue;
            }
            let entry = seen.entry(kind).or_default();
            entry.0 += 1;
            match openssl_codes(kind) {
                Ok(codes) if !r.codes.iter().any(|n| codes.contains(n)) => {
                    entry.1.push(format!(
                        "{} {}.stream {} (SNI {}): openssl says {} (expected error {codes:?}); chainsniff: {}",
                        c.capture,
                        c.transport,
                        c.stream,
                        c.sni.as_deref().unwrap_or("none"),
                        if r.lines.is_empty() {
                            "OK".to_string()
                        } else {
                            r.lines.join("; ")
                        },
                        kinds_list(&c.kinds)
                    ));
                }
                Err(why) if why.starts_with("NO ENTRY") => {
                    no_entry.insert(kind.as_str());
                }
                _ => {}
            }
        }
    }
    let mut failures = Vec::new();
    for (kind, (n, wrong)) in &seen {
        let how = match openssl_codes(*kind) {
            Ok(codes) => format!("openssl error {codes:?}"),
            Err(why) => format!("not compared: {why}"),
        };
        println!("{:<28} {n:>3} handshakes, {how}", kind.as_str());
        failures.extend(wrong.iter().map(|w| format!("{}: {w}", kind.as_str())));
    }
    assert!(
        seen.len() >= 10,
        "too few finding kinds on the bundled captures: {seen:?}"
    );
    assert!(
        no_entry.is_empty(),
        "finding kinds with no entry in openssl_codes: {no_entry:?}"
    );
    assert!(
        failures.is_empty(),
        "{} findings that openssl verify does not report:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
