//! Every Wireshark display filter chainsniff prints, checked against Wireshark itself.
//!
//! Users paste a report's filters (`tcp.stream == 3`, `tcp.stream in {0,1,3,5}`, and beyond 40
//! handshakes `ip.src == S && (tcp.srcport == P) && tls.handshake.type == 11`) into Wireshark 4,
//! so each must parse there and select what the report says it shows. For every bundled capture
//! in `captures/` (those with a key log beside them, `NAME.keylog`, also with it, and tshark then
//! gets it too), for captures generated here from real handshake bytes (over 40 handshakes to
//! one server; the same with a second name on the server's address; TLS and DTLS on one port),
//! and for a report of two captures, this runs `chainsniff --format json`, collects every
//! `filter` anywhere in the report, runs each distinct one once through `tshark -Y` on each
//! capture of the report, and asserts:
//!
//! - tshark accepts it: exit status 0, no syntax error or warning on stderr;
//! - a handshake's filter, and its findings' (`handshakes[].filter`,
//!   `handshakes[].findings[].filter`): every frame selected is in the handshake's stream, and
//!   every frame the report names for the handshake is selected (ClientHello, ServerHello,
//!   Certificate, ..., the client's reaction, the findings' frames);
//! - a chain variant's finding filter (`servers[].variants[].findings[].filter`) selects exactly
//!   the streams of the variant's clients, and a server finding's (`servers[].findings[].filter`,
//!   `inconsistent_chains`) exactly the streams of the server's handshakes that got a chain;
//!   over 40 handshakes, where the filter names the server's Certificate messages instead, it
//!   selects exactly the frames that completed the Certificate messages of the server's
//!   handshakes; either way the finding's frame is among those selected;
//! - in a report of several captures, on each capture a filter selects what the report claims
//!   of that capture (`handshakes[].capture`), and nothing when it claims nothing there.
//!
//! Frame numbers in the report are Wireshark's (1-based), `stream` is `tcp.stream` or
//! `udp.stream` as `transport` says; for `eapol` it is chainsniff's number of an EAPOL
//! conversation, which Wireshark does not have: an EAPOL frame tshark selects belongs to the
//! conversation of the report whose supplicant and authenticator MACs (`client_mac`,
//! `server_mac`) are its source and destination, or its source when it is sent to a group
//! address (both ends of a wired port send to the PAE group address), and to no stream when no
//! conversation, or more than one, fits. A `filter` key this file does not know the meaning of
//! fails the test, so that a new one gets checked too.
//!
//! The other printers must show the same strings: the text report's "Wireshark filter: ..." lines
//! (unwrapped) and its clients' "handshakes:" lists hold exactly the JSON's filters; the Markdown
//! report's "Wireshark filter `...`" exactly those of the servers' and chain variants' findings;
//! the HTML report's `<code>` filters exactly the JSON's filters; `--format jsonl` exactly the
//! JSON's filters.
//!
//! Without tshark (of Wireshark 4 or later) on PATH the tests print a notice and pass, unless
//! `CI` is set (CI installs it). Temporary files go to [`common::tmp`]; nothing is written into
//! the source tree.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::synth::{self, Conversation, PcapWriter};
use common::{repo, tmp};
use serde_json::Value;

/// Most handshakes a filter lists by stream (`MAX_FILTER_STREAMS` in src/report.rs); beyond it
/// the filter names the server's Certificate messages.
const MAX_LISTED: usize = 40;

/// A capture, and the key log tshark needs to see what chainsniff decrypted with it.
#[derive(Clone, Debug)]
struct Input {
    path: PathBuf,
    keylog: Option<PathBuf>,
}

impl Input {
    fn new(path: PathBuf) -> Self {
        Input { path, keylog: None }
    }

    fn name(&self) -> String {
        let file = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        match &self.keylog {
            Some(k) => format!("{} with {}", file(&self.path), file(k)),
            None => file(&self.path),
        }
    }
}

/// A stream as Wireshark numbers it within one capture: transport (`tcp`, `udp`) and index;
/// `eapol` and the report's number of an EAPOL conversation.
type Stream = (String, u64);

/// The EAPOL conversations a report names in one capture: (number, supplicant MAC,
/// authenticator MAC).
type EapolConversations = Vec<(u64, String, String)>;

// ---------------------------------------------------------------------------------------------
// tshark

/// Whether tshark of Wireshark 4 or later runs; without it a notice (visible in the test
/// output), or a failure under CI.
fn have_tshark() -> bool {
    let version = Command::new("tshark")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    // "TShark (Wireshark) 4.0.17 (...)"
    let major = version.as_deref().and_then(|v| {
        let v = v.split("(Wireshark) ").nth(1)?;
        v.split('.').next()?.parse::<u32>().ok()
    });
    let why = match major {
        Some(m) if m >= 4 => return true,
        Some(_) => "tshark on PATH is older than Wireshark 4",
        None => "tshark is not on PATH",
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}, and CI is set (CI installs tshark)"
    );
    // Straight to stderr, not `eprintln!`: libtest would hide it with the output of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: {why}: the Wireshark display filter checks of tests/filters.rs are skipped"
    );
    false
}

/// An empty directory for tshark's configuration: Wireshark's defaults, whatever the profile of
/// whoever runs the tests.
fn wireshark_home() -> PathBuf {
    let dir = tmp("wireshark-home");
    std::fs::create_dir_all(dir.join(".config")).unwrap();
    dir
}

/// What a display filter selected: each frame with its stream (`None`: in no TCP/UDP stream).
type Selection = BTreeMap<u64, Option<Stream>>;

/// Runs `tshark -r CAPTURE -Y FILTER`; an error when tshark exits with failure or complains.
fn select(input: &Input, filter: &str) -> Result<Selection, String> {
    select_in(input, filter, &[])
}

/// As [`select`], EAPOL frames given the stream of the conversation of `eapol` they belong to.
fn select_in(
    input: &Input,
    filter: &str,
    eapol: &[(u64, String, String)],
) -> Result<Selection, String> {
    let home = wireshark_home();
    let mut cmd = Command::new("tshark");
    cmd.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .arg("-r")
        .arg(&input.path);
    if let Some(k) = &input.keylog {
        cmd.arg("-o")
            .arg(format!("tls.keylog_file:{}", k.display()));
    }
    cmd.args(["-Y", filter, "-T", "fields"]);
    cmd.args(["-e", "frame.number", "-e", "tcp.stream", "-e", "udp.stream"]);
    cmd.args(["-e", "eapol.type", "-e", "eth.src", "-e", "eth.dst"]);
    cmd.args(["-e", "wlan.sa", "-e", "wlan.da"]);
    let out = cmd
        .output()
        .map_err(|e| format!("tshark did not run: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.lines().any(is_complaint) {
        return Err(format!(
            "tshark exited with {} and said: {}",
            out.status,
            stderr.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| selected_frame(l, eapol))
        .collect())
}

/// A line of tshark's stderr that objects to the filter (tshark also warns about running as
/// root: that is not about us).
fn is_complaint(line: &str) -> bool {
    let l = line.to_lowercase();
    [
        "unexpected",
        "syntax error",
        "invalid",
        "not a valid",
        "isn't a valid",
        "neither a field nor a protocol",
        "deprecated",
        "warning",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// `frame.number`, `tcp.stream`, `udp.stream` (innermost when a field repeats, as in tunnels);
/// an EAPOL frame (`eapol.type`) in none of those is in the conversation of `eapol` its
/// Ethernet addresses (`eth.src`, `eth.dst`), or 802.11 ones (`wlan.sa`, `wlan.da`), fit.
fn selected_frame(line: &str, eapol: &[(u64, String, String)]) -> (u64, Option<Stream>) {
    let mut fields = line.split('\t');
    let frame = fields.next().unwrap().parse().expect("a frame number");
    fn innermost(f: Option<&str>) -> Option<&str> {
        f.and_then(|v| v.rsplit(',').next())
            .filter(|v| !v.is_empty())
    }
    let last = |f: Option<&str>| innermost(f).map(|v| v.parse::<u64>().expect("a stream index"));
    let tcp = last(fields.next());
    let udp = last(fields.next());
    let is_eapol = innermost(fields.next()).is_some();
    let (eth_src, eth_dst) = (innermost(fields.next()), innermost(fields.next()));
    let (wlan_sa, wlan_da) = (innermost(fields.next()), innermost(fields.next()));
    let (src, dst) = (eth_src.or(wlan_sa), eth_dst.or(wlan_da));
    let stream = match (tcp, udp) {
        (Some(s), _) => Some(("tcp".to_string(), s)),
        (None, Some(s)) => Some(("udp".to_string(), s)),
        (None, None) if is_eapol => src
            .zip(dst)
            .and_then(|(src, dst)| eapol_conversation(src, dst, eapol))
            .map(|n| ("eapol".to_string(), n)),
        (None, None) => None,
    };
    (frame, stream)
}

/// The EAPOL conversation of `eapol` that a frame from `src` to `dst` belongs to: from one end
/// to the other, or from one end to a group address (the I/G bit of the first octet); `None`
/// when none or several fit.
fn eapol_conversation(src: &str, dst: &str, eapol: &[(u64, String, String)]) -> Option<u64> {
    let group = u8::from_str_radix(dst.get(..2)?, 16).ok()? & 1 == 1;
    let fits: BTreeSet<u64> = eapol
        .iter()
        .filter(|(_, s, a)| (src == s && (dst == a || group)) || (src == a && (dst == s || group)))
        .map(|(n, _, _)| *n)
        .collect();
    match fits.len() {
        1 => fits.first().copied(),
        _ => None,
    }
}

/// `f` over `items` on a few threads (tshark takes ~0.3 s to start), results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().min(6));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    results.into_iter().map(Option::unwrap).collect()
}

// ---------------------------------------------------------------------------------------------
// chainsniff

/// The report of `inputs` analyzed together, in `format`.
fn report(inputs: &[Input], format: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chainsniff"));
    cmd.env_remove("SSLKEYLOGFILE").arg("analyze");
    for i in inputs {
        cmd.arg(&i.path);
    }
    cmd.arg("--trust").arg(repo("captures/pki/root.pem"));
    for k in inputs.iter().filter_map(|i| i.keylog.as_ref()) {
        cmd.arg("--keylog").arg(k);
    }
    let out = cmd.args(["--format", format]).output().unwrap();
    assert!(
        out.status.success(),
        "chainsniff --format {format} on {inputs:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every `filter` string in a JSON value, with its path (`handshakes/3/findings/0/filter`).
fn filters(v: &Value) -> Vec<(Vec<String>, String)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    path.push(k.clone());
                    match x {
                        Value::String(s) if k == "filter" => out.push((path.clone(), s.clone())),
                        _ if k == "filter" && !x.is_null() => {
                            panic!("{} is not a string: {x}", path.join("/"))
                        }
                        _ => walk(x, path, out),
                    }
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(i.to_string());
                    walk(x, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// What the report says of one handshake.
struct Handshake {
    capture: usize,
    stream: Stream,
    /// Every frame it names for the handshake.
    frames: BTreeSet<u64>,
    certificate_frame: Option<u64>,
}

fn frame(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn handshakes(report: &Value) -> Vec<Handshake> {
    let list = report["handshakes"].as_array().expect("handshakes[]");
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            assert_eq!(h["id"].as_u64(), Some(i as u64), "handshakes[] by id");
            let mut frames: BTreeSet<u64> = [
                "client_hello_frame",
                "server_hello_frame",
                "certificate_frame",
                "certificate_status_frame",
                "server_hello_done_frame",
                "certificate_verify_frame",
                "client_certificate_frame",
            ]
            .iter()
            .filter_map(|k| frame(&h[*k]))
            .collect();
            let more = h["more_client_hello_frames"].as_array();
            frames.extend(more.into_iter().flatten().filter_map(frame));
            frames.extend(frame(&h["client_reaction"]["frame"]));
            let findings = h["findings"].as_array().into_iter().flatten();
            frames.extend(findings.filter_map(|f| frame(&f["frame"])));
            Handshake {
                capture: h["capture"].as_u64().unwrap() as usize,
                stream: (
                    h["transport"].as_str().unwrap().to_string(),
                    h["stream"].as_u64().unwrap(),
                ),
                frames,
                certificate_frame: frame(&h["certificate_frame"]),
            }
        })
        .collect()
}

/// What a report says one of its filters shows.
#[derive(Debug)]
enum Claim {
    /// A handshake's filter, or one of its findings': this handshake's stream, nothing else.
    Handshake(usize),
    /// A chain variant's or a server's finding: the streams of `ids` exactly, or beyond
    /// [`MAX_LISTED`] of them the Certificate messages of the server's handshakes (`server`);
    /// and the finding's `frame` among what is selected.
    Handshakes {
        ids: Vec<usize>,
        server: Vec<usize>,
        frame: Option<u64>,
        /// The capture the filter is for (`capture` beside it; `more_evidence[]` gives the
        /// other captures' filters): on the others it claims nothing.
        capture: usize,
        /// The filter names the server's Certificate messages instead of listing streams.
        certificates: bool,
    },
}

fn ids(v: &Value, key: &str) -> Vec<usize> {
    let list = v.as_array().into_iter().flatten();
    list.map(|c| c[key].as_u64().unwrap() as usize).collect()
}

/// The handshakes of `servers[s]`: the clients of each chain variant, and those without one.
fn server_handshakes(server: &Value) -> (Vec<usize>, Vec<usize>) {
    let variants = server["variants"].as_array().unwrap();
    let with_chain: Vec<usize> = variants
        .iter()
        .flat_map(|v| ids(&v["clients"], "handshake"))
        .collect();
    let mut all = with_chain.clone();
    for list in server["without_chain"].as_object().into_iter().flatten() {
        all.extend(
            list.1
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize),
        );
    }
    (with_chain, all)
}

/// What the filter at `path` claims to show, from where it is in the report.
fn claim(report: &Value, path: &[String]) -> Result<Claim, String> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let index = |s: &str| s.parse::<usize>().unwrap();
    // The object that holds the filter: a finding, or one of its `more_evidence` entries.
    let holder = || {
        let pointer = format!("/{}", p[..p.len() - 1].join("/"));
        report.pointer(&pointer).unwrap().clone()
    };
    let evidence = || {
        let h = holder();
        let filter = h["filter"].as_str().unwrap_or_default();
        (
            frame(&h["frame"]),
            h["capture"]
                .as_u64()
                .expect("a variant's or server's finding names its capture") as usize,
            filter.contains("handshake.type == 11"),
        )
    };
    match p.as_slice() {
        ["handshakes", h, "filter"] | ["handshakes", h, "findings", _, "filter"] => {
            Ok(Claim::Handshake(index(h)))
        }
        ["servers", s, "variants", v, "findings", _, "filter"]
        | [
            "servers",
            s,
            "variants",
            v,
            "findings",
            _,
            "more_evidence",
            _,
            "filter",
        ] => {
            let server = &report["servers"][index(s)];
            let clients = &server["variants"][index(v)]["clients"];
            let (frame, capture, certificates) = evidence();
            Ok(Claim::Handshakes {
                ids: ids(clients, "handshake"),
                server: server_handshakes(server).1,
                frame,
                capture,
                certificates,
            })
        }
        ["servers", s, "findings", _, "filter"]
        | ["servers", s, "findings", _, "more_evidence", _, "filter"] => {
            let (with_chain, all) = server_handshakes(&report["servers"][index(s)]);
            let (frame, capture, certificates) = evidence();
            Ok(Claim::Handshakes {
                ids: with_chain,
                server: all,
                frame,
                capture,
                certificates,
            })
        }
        _ => Err(format!(
            "a filter at {} that tests/filters.rs does not know the meaning of: teach it",
            p.join("/")
        )),
    }
}

/// "{1, 2, 3}" for a failure message.
fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("{{{}}}", v.join(", "))
}

/// "tcp.stream 3", or "no stream".
fn stream_name(s: Option<&Stream>) -> String {
    s.map_or("no stream".into(), |(t, n)| format!("{t}.stream {n}"))
}

/// The EAPOL conversations of each of `captures` captures that the report names.
fn eapol_conversations(report: &Value, captures: usize) -> Vec<EapolConversations> {
    let mut out = vec![EapolConversations::new(); captures];
    for h in report["handshakes"].as_array().expect("handshakes[]") {
        if h["transport"] != "eapol" {
            continue;
        }
        let mac = |k: &str| {
            h[k].as_str()
                .unwrap_or_else(|| panic!("an EAPOL handshake names its {k}"))
                .to_string()
        };
        let conv = (
            h["stream"].as_u64().unwrap(),
            mac("client_mac"),
            mac("server_mac"),
        );
        let list = &mut out[h["capture"].as_u64().unwrap() as usize];
        if !list.contains(&conv) {
            list.push(conv);
        }
    }
    out
}

/// What is wrong with what a filter selected (`sel[c]` on capture `c`) against `claim`.
fn judge(claim: &Claim, hs: &[Handshake], sel: &[Selection]) -> Vec<String> {
    match claim {
        Claim::Handshake(id) => judge_handshake(*id, &hs[*id], &sel[hs[*id].capture]),
        Claim::Handshakes {
            ids,
            server,
            frame,
            capture,
            certificates,
        } => {
            let of_capture = |ids: &[usize]| -> Vec<usize> {
                ids.iter()
                    .copied()
                    .filter(|i| hs[*i].capture == *capture)
                    .collect()
            };
            let ids = of_capture(ids);
            let got = &sel[*capture];
            let mut wrong: Vec<String> = if *certificates {
                // Only for many handshakes: a list of streams would be unreadable.
                let few = (ids.len() <= MAX_LISTED).then(|| {
                    format!(
                        "{} handshakes are named by their Certificate messages, not listed",
                        ids.len()
                    )
                });
                few.into_iter()
                    .chain(judge_certificates(ids.len(), &of_capture(server), hs, got))
                    .collect()
            } else {
                judge_streams(&ids, hs, got).into_iter().collect()
            };
            wrong = wrong
                .into_iter()
                .map(|w| format!("in capture {capture}, {w}"))
                .collect();
            if let Some(f) = frame
                && !got.contains_key(f)
            {
                wrong.push(format!(
                    "the finding names frame {f} of capture {capture}; it is not selected"
                ));
            }
            wrong
        }
    }
}

/// A handshake's filter: nothing outside its stream, every frame the report names for it.
fn judge_handshake(id: usize, h: &Handshake, got: &Selection) -> Vec<String> {
    let mut wrong = Vec::new();
    let outside: Vec<String> = got
        .iter()
        .filter(|(_, s)| s.as_ref() != Some(&h.stream))
        .map(|(f, s)| format!("{f} ({})", stream_name(s.as_ref())))
        .collect();
    if !outside.is_empty() {
        wrong.push(format!(
            "handshake {id} is {}, but frames {} of other streams are selected",
            stream_name(Some(&h.stream)),
            list(outside)
        ));
    }
    let missing: Vec<&u64> = h.frames.iter().filter(|f| !got.contains_key(f)).collect();
    if !missing.is_empty() {
        wrong.push(format!(
            "the report names frames {} for handshake {id}; {} are not selected",
            list(&h.frames),
            list(missing)
        ));
    }
    wrong
}

/// A filter for these handshakes of one capture: exactly their streams.
fn judge_streams(ids: &[usize], hs: &[Handshake], got: &Selection) -> Option<String> {
    let want: BTreeSet<Option<&Stream>> = ids.iter().map(|i| Some(&hs[*i].stream)).collect();
    let got: BTreeSet<Option<&Stream>> = got.values().map(Option::as_ref).collect();
    let got_names = list(got.iter().copied().map(stream_name));
    (got != want).then(|| match ids {
        [] => format!("it stands for no handshake of this capture, but selects {got_names}"),
        _ => format!(
            "it stands for handshakes {} in {}, but selects {got_names}",
            list(ids),
            list(want.into_iter().map(stream_name)),
        ),
    })
}

/// A filter for `count` handshakes (over [`MAX_LISTED`]) that names the Certificate messages of
/// their server, whose handshakes in this capture are `server`: exactly the frames that
/// completed those.
fn judge_certificates(
    count: usize,
    server: &[usize],
    hs: &[Handshake],
    got: &Selection,
) -> Option<String> {
    let want: BTreeSet<u64> = server
        .iter()
        .filter_map(|i| hs[*i].certificate_frame)
        .collect();
    let got: BTreeSet<u64> = got.keys().copied().collect();
    (got != want).then(|| {
        format!(
            "it stands for {count} handshakes, so for the Certificate messages of the server's {} handshakes here: the {} frames that completed them; it selects {} frames: extra {}, missing {}",
            server.len(),
            want.len(),
            got.len(),
            list(got.difference(&want)),
            list(want.difference(&got))
        )
    })
}

/// What one report's check found.
struct Checked {
    /// Every filter in the JSON report (with repeats).
    filters: Vec<String>,
    failures: Vec<String>,
}

/// Checks the report of `inputs`: every filter through tshark on every capture, and the other
/// formats against the JSON.
fn check(inputs: &[Input]) -> Checked {
    let name = inputs
        .iter()
        .map(Input::name)
        .collect::<Vec<_>>()
        .join(" + ");
    let json: Value = serde_json::from_str(&report(inputs, "json")).unwrap();
    let hs = handshakes(&json);
    assert!(!hs.is_empty(), "{name}: no handshakes");
    let found = filters(&json);
    let mut failures = Vec::new();
    let mut claims: BTreeMap<&str, Vec<(String, Claim)>> = BTreeMap::new();
    for (path, filter) in &found {
        match claim(&json, path) {
            Ok(c) => claims.entry(filter).or_default().push((path.join("/"), c)),
            Err(e) => failures.push(format!("{name}: `{filter}`: {e}")),
        }
    }
    let eapol = eapol_conversations(&json, inputs.len());
    let jobs: Vec<(&str, usize)> = claims
        .keys()
        .flat_map(|f| (0..inputs.len()).map(move |i| (*f, i)))
        .collect();
    let mut results = parallel(&jobs, |(f, i)| select_in(&inputs[*i], f, &eapol[*i])).into_iter();
    for (filter, claimed) in &claims {
        let sel: Result<Vec<Selection>, String> =
            inputs.iter().map(|_| results.next().unwrap()).collect();
        let sel = match sel {
            Ok(sel) => sel,
            Err(e) => {
                let at: Vec<&str> = claimed.iter().map(|(p, _)| p.as_str()).collect();
                failures.push(format!(
                    "{name}: `{filter}` (at {}) is rejected: {e}",
                    at.join(", ")
                ));
                continue;
            }
        };
        // The same problem of several findings with one filter, once.
        let mut problems: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (at, c) in claimed {
            for w in judge(c, &hs, &sel) {
                problems.entry(w).or_default().push(at);
            }
        }
        for (w, at) in problems {
            failures.push(format!("{name}: `{filter}` (at {}): {w}", at.join(", ")));
        }
    }
    failures.extend(other_formats(&name, inputs, &found));
    eprintln!(
        "{name}: {} filters in the report, {} distinct, {} tshark runs",
        found.len(),
        claims.len(),
        jobs.len()
    );
    Checked {
        filters: found.into_iter().map(|(_, f)| f).collect(),
        failures,
    }
}

// ---------------------------------------------------------------------------------------------
// The other formats

/// The text report's filters: its findings' "see: ... Wireshark filter: F" and its clients'
/// "handshakes: F, F" (wrapped lines joined again).
fn text_filters(text: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeSet::new();
    let mut in_clients = false;
    for (i, line) in lines.iter().enumerate() {
        in_clients |= *line == "CLIENTS";
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let (evidence, rest) = match (
            body.strip_prefix("see: "),
            body.strip_prefix("handshakes: "),
        ) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) if in_clients => (false, rest),
            _ => continue,
        };
        // Wrapped lines go on, indented deeper.
        let mut joined = rest.to_string();
        for next in &lines[i + 1..] {
            let b = next.trim_start();
            if b.is_empty() || next.len() - b.len() <= indent {
                break;
            }
            joined.push(' ');
            joined.push_str(b);
        }
        if evidence {
            // One per capture when the evidence spans several: "[0] frame 6, Wireshark
            // filter: F; [1] frame 3, Wireshark filter: G".
            for part in joined.split("Wireshark filter: ").skip(1) {
                let f = part.split("; [").next().unwrap_or(part);
                out.insert(f.to_string());
            }
        } else {
            out.extend(joined.split(", ").map(str::to_string));
        }
    }
    out
}

/// The Markdown report's "Wireshark filter `F`".
fn markdown_filters(md: &str) -> BTreeSet<String> {
    md.split("Wireshark filter `")
        .skip(1)
        .map(|s| s.split('`').next().unwrap().to_string())
        .collect()
}

/// The HTML report's `<code>` elements that hold a display filter.
fn html_filters(html: &str) -> BTreeSet<String> {
    html.split("<code>")
        .skip(1)
        .map(|s| unescape(s.split("</code>").next().unwrap()))
        .filter(|s| {
            s.contains(".stream ") || s.contains("tls.handshake.type") || s.contains("eapol && ")
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// Every filter of the JSON-lines report (its handshake lines and summary).
fn jsonl_filters(jsonl: &str) -> BTreeSet<String> {
    jsonl
        .lines()
        .flat_map(|l| filters(&serde_json::from_str(l).unwrap()))
        .map(|(_, f)| f)
        .collect()
}

/// Takes the filter strings out of a report in one format.
type Extract = fn(&str) -> BTreeSet<String>;

/// The filter strings of the text, Markdown, HTML and JSON-lines reports against the JSON's.
fn other_formats(name: &str, inputs: &[Input], json: &[(Vec<String>, String)]) -> Vec<String> {
    let all: BTreeSet<String> = json.iter().map(|(_, f)| f.clone()).collect();
    let of_servers: BTreeSet<String> = json
        .iter()
        .filter(|(p, _)| p[0] == "servers")
        .map(|(_, f)| f.clone())
        .collect();
    let formats: [(&str, Extract, &BTreeSet<String>, &str); 4] = [
        ("text", text_filters, &all, "every filter of the JSON"),
        (
            "markdown",
            markdown_filters,
            &of_servers,
            "the filters of the JSON's server and chain variant findings",
        ),
        ("html", html_filters, &all, "every filter of the JSON"),
        ("jsonl", jsonl_filters, &all, "every filter of the JSON"),
    ];
    let mut wrong = Vec::new();
    for (format, extract, want, what) in formats {
        let got = extract(&report(inputs, format));
        if got != *want {
            wrong.push(format!(
                "{name}: --format {format} should print {what}; it prints {} that the JSON does not have, and lacks {}",
                list(got.difference(want)),
                list(want.difference(&got))
            ));
        }
    }
    wrong
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} display filter problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Generated captures

/// The DER of `captures/pki/NAME.pem`.
fn der(name: &str) -> Vec<u8> {
    let pem = std::fs::read(repo(&format!("captures/pki/{name}.pem"))).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.contents
}

/// The server of the generated captures.
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 200)), 443);

/// The `n`th client of the generated captures.
fn client(n: u32) -> SocketAddr {
    let ip = Ipv4Addr::new(10, 0, 1 + (n / 200) as u8, 1 + (n % 200) as u8);
    SocketAddr::new(IpAddr::V4(ip), 40000 + n as u16)
}

/// A capture being generated.
#[derive(Default)]
struct Generated {
    frames: Vec<Vec<u8>>,
    conversations: u32,
}

impl Generated {
    /// A capture that starts with a TCP conversation that is not TLS (a plain HTTP request),
    /// so that Wireshark's stream numbers are not the handshakes' numbers.
    fn new() -> Self {
        let mut g = Generated::default();
        let http = SocketAddr::new(SERVER.ip(), 80);
        let mut conv = Conversation::new(client(999), http, 7);
        conv.open(&mut g.frames);
        conv.send(true, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut g.frames);
        g
    }

    /// A TLS 1.2 handshake to [`SERVER`]: the server sends `chain`; the client then sends
    /// alert unknown_ca when `abort`, and closes.
    fn tls(&mut self, sni: &str, chain: &[&[u8]], abort: bool) {
        let n = self.conversations;
        self.conversations += 1;
        let mut conv = Conversation::new(client(n), SERVER, 1000 + n * 7919);
        conv.open(&mut self.frames);
        let random = [n as u8; 32];
        let hello = synth::handshake_records(&synth::client_hello(sni, random));
        conv.send(true, &hello, &mut self.frames);
        let mut flight = synth::server_hello(random);
        flight.extend(synth::certificate(chain));
        flight.extend(synth::server_hello_done());
        conv.send(false, &synth::handshake_records(&flight), &mut self.frames);
        if abort {
            conv.send(true, &synth::alert(48), &mut self.frames);
        }
        let mut fin = Vec::new();
        conv.segment(true, &[], synth::FIN_ACK, &mut fin);
        self.frames.push(fin);
    }

    /// The DTLS 1.2 handshake of `dtls-openssl.pcap` on port 4434 (leaf + intermediate), as if
    /// between the next client and UDP port 443 of [`SERVER`].
    fn dtls(&mut self) {
        let n = self.conversations;
        self.conversations += 1;
        let mut f = Vec::new();
        for (from_client, payload) in datagrams(&repo("captures/dtls-openssl.pcap"), 4434) {
            let (src, dst) = if from_client {
                (client(n), SERVER)
            } else {
                (SERVER, client(n))
            };
            synth::udp_frame(src, dst, &payload, &mut f);
            self.frames.push(f.clone());
        }
    }

    /// Writes the capture (frames 1 ms apart) to a temporary file.
    fn write(&self, name: &str) -> Input {
        let path = tmp(name);
        let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        for (i, f) in self.frames.iter().enumerate() {
            w.packet(1_800_000_000_000_000 + i as u64 * 1000, f)
                .unwrap();
        }
        Input::new(path)
    }
}

/// The UDP payloads to and from `port` in a classic pcap (Ethernet): (from the client, payload).
fn datagrams(pcap: &Path, port: u16) -> Vec<(bool, Vec<u8>)> {
    let bytes = std::fs::read(pcap).unwrap();
    assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(bytes[20..24], [1, 0, 0, 0], "Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &bytes[at + 16..at + 16 + len];
        at += 16 + len;
        let packet = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
        if let Some(etherparse::TransportSlice::Udp(u)) = packet.transport {
            if u.destination_port() == port {
                out.push((true, u.payload().to_vec()));
            } else if u.source_port() == port {
                out.push((false, u.payload().to_vec()));
            }
        }
    }
    assert!(out.len() > 10, "the DTLS handshake on port {port}");
    out
}

/// The SNI the test PKI's leaf is for.
const SNI: &str = "lyncpool.contoso.test";

/// 44 TLS handshakes to one server: 41 get the leaf only (and abort), 3 leaf, intermediate,
/// intermediate again. So chain A's finding and the server's `inconsistent_chains` stand for
/// over 40 handshakes, chain B's `duplicate_certificate` for 3.
fn over_forty(g: &mut Generated) {
    let (leaf, issuing) = (der("leaf"), der("issuing"));
    for i in 0..44 {
        if i % 15 == 7 {
            g.tls(SNI, &[&leaf, &issuing, &issuing], false);
        } else {
            g.tls(SNI, &[&leaf], true);
        }
    }
}

/// Asserts that the report had a filter of the over-40 form, so that it was checked.
fn assert_over_forty_form(c: &Checked) {
    assert!(
        c.filters
            .iter()
            .any(|f| f.contains("tls.handshake.type == 11")),
        "no filter names the server's Certificate messages: {:?}",
        c.filters
    );
}

/// The frames of a bundled little-endian microsecond pcap (Ethernet), with their timestamps.
fn pcap_frames(name: &str) -> Vec<(u64, Vec<u8>)> {
    let b = std::fs::read(repo(&format!("captures/{name}"))).unwrap();
    assert_eq!(
        b[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "{name}: little-endian pcap"
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

/// The phone of the wired 802.1X captures.
const WIRED_PHONE: [u8; 6] = [0x00, 0x04, 0xf2, 0x00, 0x00, 0x11];
const PAE_GROUP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x03];

/// A wired 802.1X conversation of the bundled captures (`eapol-wired-*.pcap`) between `phone`
/// and `switch`: to each other when `unicast` (as on Wi-Fi), else to the PAE group address as
/// recorded; behind an 802.1Q tag when `vlan`.
fn eapol_conversation_frames(
    capture: &str,
    phone: [u8; 6],
    switch: [u8; 6],
    unicast: bool,
    vlan: Option<u16>,
    g: &mut Generated,
) {
    for (_, f) in pcap_frames(capture) {
        let from_phone = f[6..12] == WIRED_PHONE;
        let (dst, src) = match (from_phone, unicast) {
            (true, true) => (switch, phone),
            (false, true) => (phone, switch),
            (true, false) => (PAE_GROUP, phone),
            (false, false) => (PAE_GROUP, switch),
        };
        let mut out = Vec::with_capacity(f.len() + 4);
        out.extend_from_slice(&dst);
        out.extend_from_slice(&src);
        if let Some(id) = vlan {
            out.extend_from_slice(&[0x81, 0x00]);
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(&f[12..]);
        g.frames.push(out);
    }
}

/// A phone of the generated 802.1X captures.
fn phone(n: u16) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x00, 0x04, 0xf2, 0x10, b[0], b[1]]
}

const SWITCH_PORT_1: [u8; 6] = [0x00, 0x1b, 0x54, 0x00, 0x00, 0x01];
const SWITCH_PORT_2: [u8; 6] = [0x00, 0x1b, 0x54, 0x00, 0x00, 0x02];

// ---------------------------------------------------------------------------------------------
// The tests

/// The bundled captures, and those with a key log beside them (`NAME.keylog`) again with it.
fn bundled() -> Vec<Input> {
    let mut inputs = Vec::new();
    for path in common::bundled_captures() {
        let keylog = path.with_extension("keylog");
        inputs.push(Input::new(path.clone()));
        if keylog.exists() {
            inputs.push(Input {
                path,
                keylog: Some(keylog),
            });
        }
    }
    assert!(inputs.len() >= 12, "the bundled captures: {inputs:?}");
    assert!(inputs.iter().filter(|i| i.keylog.is_some()).count() >= 2);
    inputs
}

/// The checker itself: tshark must refuse what Wireshark 4 refuses (space-separated set
/// elements, as chainsniff printed them before), or the other tests prove nothing.
#[test]
fn tshark_refuses_a_set_without_commas() {
    if !have_tshark() {
        return;
    }
    let input = Input::new(repo("captures/lync-vip-before.pcapng"));
    let refused = select(&input, "tcp.stream in {0 1}").expect_err("Wireshark 4 refuses it");
    assert!(refused.contains("unexpected"), "{refused}");
    let selected = select(&input, "tcp.stream in {0,1}").unwrap();
    let streams: BTreeSet<_> = selected.values().collect();
    assert_eq!(streams.len(), 2, "{selected:?}");
}

#[test]
fn every_filter_of_every_bundled_capture_selects_what_it_claims() {
    if !have_tshark() {
        return;
    }
    let mut failures = Vec::new();
    for input in bundled() {
        failures.extend(check(&[input]).failures);
    }
    assert_no_failures(&failures);
}

#[test]
fn over_forty_handshakes_to_one_server_name_its_certificate_messages() {
    if !have_tshark() {
        return;
    }
    let mut g = Generated::new();
    over_forty(&mut g);
    let checked = check(&[g.write("over-forty.pcap")]);
    assert_over_forty_form(&checked);
    assert_no_failures(&checked.failures);
}

/// The same, with one more handshake to the same address and port under another name: a
/// server is (address, port, SNI), and its filters must not select the other name's.
#[test]
fn over_forty_handshakes_with_another_name_on_the_same_address() {
    if !have_tshark() {
        return;
    }
    let mut g = Generated::new();
    over_forty(&mut g);
    let (leaf, issuing) = (der("leaf"), der("issuing"));
    g.tls("meet.contoso.test", &[&leaf, &issuing], false);
    let checked = check(&[g.write("over-forty-two-names.pcap")]);
    // A filter on the address would take the other name's Certificate too: the streams are
    // listed however many there are.
    assert!(
        checked
            .filters
            .iter()
            .any(|f| f.starts_with("tcp.stream in {") && f.matches(',').count() >= MAX_LISTED),
        "the 44 streams are listed: {:?}",
        checked.filters
    );
    assert_no_failures(&checked.failures);
}

/// TLS over TCP and DTLS over UDP on the same address and port (a VPN gateway's pattern) are
/// one server with both kinds of stream: under 40 handshakes the filters list `tcp.stream` and
/// `udp.stream`, over 40 they name Certificate messages of both.
#[test]
fn tls_and_dtls_on_one_port() {
    if !have_tshark() {
        return;
    }
    let (leaf, issuing) = (der("leaf"), der("issuing"));
    let mut failures = Vec::new();
    for (name, tls) in [("tls-dtls-few.pcap", 3), ("tls-dtls-many.pcap", 41)] {
        let mut g = Generated::new();
        for i in 0..tls {
            if i == 1 {
                g.dtls();
            }
            // Leaf only to the first, so that the server has two chain variants.
            if i == 0 {
                g.tls(SNI, &[&leaf], true);
            } else {
                g.tls(SNI, &[&leaf, &issuing], false);
            }
        }
        let checked = check(&[g.write(name)]);
        let both = |f: &String| f.contains("tcp.") && f.contains("udp.");
        assert!(
            checked.filters.iter().any(both),
            "{name}: no filter with both TCP and UDP: {:?}",
            checked.filters
        );
        failures.extend(checked.failures);
    }
    assert_no_failures(&failures);
}

/// Two captures analyzed together: stream numbers and frame numbers are each capture's own,
/// and a server seen in both has handshakes in both.
#[test]
fn a_report_of_two_captures() {
    if !have_tshark() {
        return;
    }
    let inputs = [
        Input::new(repo("captures/lync-vip-before.pcapng")),
        Input::new(repo("captures/lync-vip-fixed.pcap")),
    ];
    assert_no_failures(&check(&inputs).failures);
}

/// EAPOL, which has no Wireshark stream index, and RADIUS: a switch that sends the leaf only to
/// one phone and the full chain to another (unicast, behind a VLAN tag), a wired port of another
/// switch addressed to the PAE group, and two RADIUS authentications in one UDP conversation;
/// then 41 phones on one switch, where the chain variants' filters name the switch's
/// Certificate messages.
#[test]
fn eapol_and_radius_conversations() {
    if !have_tshark() {
        return;
    }
    let mut failures = Vec::new();
    let mut few = Generated::default();
    eapol_conversation_frames(
        "eapol-wired-leaf-only.pcap",
        phone(1),
        SWITCH_PORT_1,
        true,
        Some(120),
        &mut few,
    );
    eapol_conversation_frames(
        "eapol-wired-full-chain.pcap",
        phone(2),
        SWITCH_PORT_1,
        true,
        Some(120),
        &mut few,
    );
    eapol_conversation_frames(
        "eapol-wired-leaf-only.pcap",
        phone(3),
        SWITCH_PORT_2,
        false,
        None,
        &mut few,
    );
    for name in ["eap-radius-leaf-only.pcap", "eap-radius-full-chain.pcap"] {
        // Both over the first one's UDP conversation: the NAS's port stays the same.
        let frames = pcap_frames(name);
        let first = pcap_frames("eap-radius-leaf-only.pcap");
        let ports = |f: &[u8]| {
            (
                u16::from_be_bytes([f[34], f[35]]),
                u16::from_be_bytes([f[36], f[37]]),
            )
        };
        let (nas_port, _) = ports(&first[0].1);
        for (_, mut f) in frames {
            let (sport, dport) = ports(&f);
            if dport == 1812 {
                f[34..36].copy_from_slice(&nas_port.to_be_bytes());
            } else {
                assert_eq!(sport, 1812);
                f[36..38].copy_from_slice(&nas_port.to_be_bytes());
            }
            f[40..42].copy_from_slice(&[0, 0]); // no UDP checksum
            few.frames.push(f);
        }
    }
    let checked = check(&[few.write("eapol-radius-few.pcap")]);
    let joined = |f: &String| f.starts_with("(eapol && ") && f.contains(") || (eapol && ");
    assert!(
        checked.filters.iter().any(joined),
        "no filter joins two EAPOL conversations: {:?}",
        checked.filters
    );
    assert!(
        checked
            .filters
            .iter()
            .any(|f| f.contains("eth.dst.ig == 1"))
    );
    failures.extend(checked.failures);

    let mut many = Generated::default();
    for n in 0..41 {
        eapol_conversation_frames(
            "eapol-wired-leaf-only.pcap",
            phone(100 + n),
            SWITCH_PORT_1,
            true,
            None,
            &mut many,
        );
    }
    eapol_conversation_frames(
        "eapol-wired-full-chain.pcap",
        phone(200),
        SWITCH_PORT_1,
        true,
        None,
        &mut many,
    );
    let checked = check(&[many.write("eapol-many.pcap")]);
    let over_forty = checked.filters.clone();
    assert!(
        over_forty
            .iter()
            .any(|f| f == "eapol && eth.src == 00:1b:54:00:00:01 && tls.handshake.type == 11"),
        "no filter names the switch's Certificate messages: {over_forty:?}",
    );
    failures.extend(checked.failures);

    // Wi-Fi (radiotap): two stations of one access point, the first getting the leaf only.
    let ap = [0x00, 0x1b, 0x54, 0x00, 0x00, 0x0a];
    let mut frames = Vec::new();
    for (capture, station) in [
        ("eapol-wired-leaf-only.pcap", phone(301)),
        ("eapol-wired-full-chain.pcap", phone(302)),
    ] {
        for (_, f) in pcap_frames(capture) {
            let mut out = vec![0, 0, 9, 0, 0x02, 0, 0, 0, 0x00]; // radiotap, Flags
            if f[6..12] == WIRED_PHONE {
                out.extend_from_slice(&[0x88, 0x01, 0x3a, 0x01]); // QoS data, To DS
                for a in [ap, station, ap] {
                    out.extend_from_slice(&a);
                }
                out.extend_from_slice(&[0x10, 0x00, 0x07, 0x00]);
            } else {
                out.extend_from_slice(&[0x08, 0x02, 0x3a, 0x01]); // data, From DS
                for a in [station, ap, ap] {
                    out.extend_from_slice(&a);
                }
                out.extend_from_slice(&[0x20, 0x00]);
            }
            out.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x88, 0x8e]);
            out.extend_from_slice(&f[14..]);
            frames.push(out);
        }
    }
    let checked = check(&[write_linktype("wifi-two-stations.pcap", 127, &frames)]);
    assert!(
        checked
            .filters
            .iter()
            .any(|f| f.contains("wlan.addr == ") && f.contains(") || (eapol && wlan.addr")),
        "no filter joins the two stations: {:?}",
        checked.filters
    );
    failures.extend(checked.failures);
    assert_no_failures(&failures);
}

/// A classic pcap of `linktype` (microsecond timestamps, 1 ms apart).
fn write_linktype(name: &str, linktype: u32, frames: &[Vec<u8>]) -> Input {
    let path = tmp(name);
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        let ts = 1_800_000_000_000_000u64 + i as u64 * 1000;
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(&path, out).unwrap();
    Input::new(path)
}
