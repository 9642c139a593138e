//! Stage 7: the report, printed. Text (for a terminal or a ticket, 80 columns), Markdown, HTML
//! (`html.rs`), JSON.
//! Each printer is a view of the same [`Report`]; none computes anything of its own.

mod html;

use std::fmt::Write;

pub use html::html;

use crate::judge::{Reaction, ReactionKind};
use crate::pki::{Finding, LinkSource, PathLink, Severity, Status, Verdict};
use crate::report::{ChainVariant, HandshakeReport, Report, ServerReport};

const WIDTH: usize = 80;

/// Escapes control characters so that names from certificates cannot drive the terminal.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            // Control characters, and the bidirectional overrides and isolates that make text
            // read differently from what it is ("Trojan Source").
            if c.is_control() || crate::json::is_bidi(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Word-wraps `text` to `WIDTH`, the first line after `first`, the rest indented by `indent`.
fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let mut line = first.to_string();
    let mut line_len = first.chars().count();
    let mut empty = true;
    for word in text.split_whitespace() {
        let wlen = word.chars().count();
        if !empty && line_len + 1 + wlen > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            line_len = indent;
            empty = true;
        }
        if !empty {
            line.push(' ');
            line_len += 1;
        }
        line.push_str(word);
        line_len += wlen;
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

pub fn reaction_text(r: &Reaction) -> String {
    let when = match (r.frame, r.delay_ms) {
        (Some(f), Some(d)) => format!(
            ", frame {f}, {} after the {}",
            ms(d),
            match r.delay_from.as_deref() {
                Some("server_hello") => "ServerHello",
                _ => "certificate",
            }
        ),
        (Some(f), None) => format!(", frame {f}"),
        _ => String::new(),
    };
    let what = match r.kind {
        ReactionKind::Alert => format!(
            "rejected it: {} alert {}",
            r.alert_level.as_deref().unwrap_or("fatal"),
            r.alert.as_deref().unwrap_or("?")
        ),
        ReactionKind::EncryptedAlert => "sent an encrypted alert".to_string(),
        ReactionKind::Completed => format!("accepted it and went on ({})", r.detail),
        ReactionKind::Reset => "reset the connection".to_string(),
        ReactionKind::Closed => "closed the connection without going on".to_string(),
        ReactionKind::ServerAborted => r.detail.clone(),
        ReactionKind::None => r.detail.clone(),
    };
    format!("{what}{when}")
}

fn ms(d: f64) -> String {
    if d >= 1000.0 {
        format!("{:.2} s", d / 1000.0)
    } else if d >= 10.0 {
        format!("{d:.0} ms")
    } else {
        format!("{d:.1} ms")
    }
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "ERROR",
        Severity::Warning => "WARN",
        Severity::Info => "INFO",
    }
}

fn link_text(l: &PathLink) -> String {
    let src = match &l.source {
        LinkSource::Sent { position } => format!("sent #{position}"),
        LinkSource::Anchor => "trust anchor, not sent".to_string(),
        LinkSource::Capture {
            transport,
            stream,
            frame,
            server,
            ..
        } => format!("NOT SENT - seen in {transport}.stream {stream} frame {frame} from {server}"),
        LinkSource::TrustFile { file } => format!("NOT SENT - known from --trust {file}"),
    };
    format!("{} [{src}]", clean(&l.subject))
}

/// "Mozilla's 146 roots + 1 from --trust".
fn trust_line(t: &crate::report::TrustInfo) -> String {
    let store = match t.store {
        crate::pki::TrustSource::Mozilla => format!("Mozilla's {} roots", t.default_roots),
        crate::pki::TrustSource::System => format!("the system's {} roots", t.default_roots),
        crate::pki::TrustSource::None => "no default roots".to_string(),
    };
    let mut s = format!(
        "{store} + {} from --trust{}",
        t.user_anchors,
        if t.partial_chain {
            " (intermediates trusted as anchors: --trust-intermediates)"
        } else {
            ""
        }
    );
    let known = t.notes.iter().filter(|n| n.kind == "known_issuer").count();
    if known > 0 {
        let _ = write!(
            s,
            "; {known} intermediate{} known, not trusted",
            plural(known)
        );
    }
    s
}

/// The verdict first, then how complete the chain is: "INVALID: INCOMPLETE: ...".
fn verdict_line(v: Verdict, s: Status) -> String {
    match (v, s) {
        (Verdict::Valid, _) => format!(
            "valid: a strict client that trusts these anchors accepts it ({})",
            status_line(s)
        ),
        (Verdict::Invalid, Status::Complete) => {
            "INVALID: strict clients reject it; the chain is complete but breaks a rule (see the findings)".into()
        }
        (Verdict::Invalid, _) => format!("INVALID: strict clients reject it; {}", status_line(s)),
        (Verdict::NotJudged, _) => format!("not judged: {}", status_line(s)),
    }
}

fn status_line(s: Status) -> &'static str {
    match s {
        Status::Complete => "complete: a path to a trust anchor exists from what was sent",
        Status::Incomplete => "INCOMPLETE: an intermediate CA certificate was not sent",
        Status::Untrusted => "UNTRUSTED: the chain ends at a root that is not trusted",
        Status::Undetermined => "undetermined: the last issuer is not known here",
        Status::NotVisible => "not visible: TLS 1.3 encrypts the certificate",
        Status::NoCertificate => "no certificate sent (resumed session, PSK, or aborted)",
        Status::Truncated => "truncated: the capture lost part of the server's flight",
    }
}

/// The plain-text report.
pub fn text(r: &Report) -> String {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_text(r, &mut out, false);
    String::from_utf8(out).unwrap_or_default()
}

/// Bytes of text gathered before they go to the output: the report is written as it is made,
/// not held whole (a capture with half a million handshakes makes 100 MB of text).
const TEXT_CHUNK: usize = 1 << 16;

/// Text on its way to the output, written out (colored if asked) a chunk of whole lines at a
/// time.
struct TextOut<'a> {
    out: &'a mut dyn std::io::Write,
    color: bool,
    error: Option<std::io::Error>,
}

impl TextOut<'_> {
    /// Writes `o` out when it has grown past [`TEXT_CHUNK`] (or at the end, `all`).
    fn drain(&mut self, o: &mut String, all: bool) {
        if o.is_empty() || (o.len() < TEXT_CHUNK && !all) {
            return;
        }
        if self.error.is_none() {
            let colored;
            let bytes = if self.color {
                colored = colorize(o);
                colored.as_bytes()
            } else {
                o.as_bytes()
            };
            if let Err(e) = self.out.write_all(bytes) {
                self.error = Some(e);
            }
        }
        o.clear();
    }
}

/// The plain-text report, written to `out` as it is made; `color` adds terminal colors
/// ([`colorize`]).
pub fn write_text(r: &Report, out: &mut dyn std::io::Write, color: bool) -> std::io::Result<()> {
    let mut sink = TextOut {
        out,
        color,
        error: None,
    };
    let mut o = String::new();
    let s = &r.summary;
    let head = format!(
        "{} - {} capture{}, {} frames, {} TLS handshake{}, {} server{}, {} client{}",
        r.generator,
        s.captures,
        plural(s.captures),
        s.frames,
        s.handshakes,
        plural(s.handshakes),
        s.servers,
        plural(s.servers),
        s.clients,
        plural(s.clients)
    );
    wrap(&mut o, "", 2, &head);
    for (i, c) in r.captures.iter().enumerate() {
        let line = format!(
            "{}: {}, {} frames, {} TCP connections{}",
            clean(&c.summary.path),
            capture_kind(&c.summary),
            c.summary.frames,
            c.tcp_connections,
            if c.summary.truncated {
                ", TRUNCATED"
            } else {
                ""
            }
        );
        wrap(&mut o, &format!("  [{i}] "), 6, &line);
        for w in &c.summary.warnings {
            wrap(&mut o, "      warning: ", 15, &clean(w));
        }
    }
    let _ = writeln!(o, "  trust: {}", trust_line(&r.trust));
    for n in &r.trust.notes {
        wrap(&mut o, "      warning: ", 15, &clean(&n.message()));
    }
    if !s.by_status.is_empty() {
        let _ = writeln!(o, "  handshakes: {}", counts(&s.by_status));
        let _ = writeln!(o, "  verdicts: {}", counts(&s.by_verdict));
    }
    if s.filtered_out > 0 {
        let _ = writeln!(
            o,
            "  left out: {} handshake{} not matching --client / --server / --sni",
            s.filtered_out,
            plural(s.filtered_out)
        );
    }
    o.push('\n');
    if s.headlines.is_empty() {
        if s.handshakes > 0 {
            o.push_str("No chain problems found.\n\n");
        } else {
            o.push_str("No TLS handshake found in the capture.\n\n");
        }
    } else {
        o.push_str("PROBLEMS\n");
        for h in &s.headlines {
            wrap(&mut o, "  * ", 4, &clean(h));
        }
        o.push('\n');
    }
    if let Some(g) = &r.groups {
        let _ = writeln!(o, "BY {}", group_name(g.by).to_uppercase());
        for g in &g.groups {
            wrap(&mut o, "  * ", 6, &clean(&group_line(g)));
            if !g.detail.is_empty() {
                wrap(&mut o, "      ", 6, &clean(&g.detail));
            }
            wrap(&mut o, "      clients: ", 10, &joined(&g.clients));
        }
        o.push('\n');
    }
    for server in &r.servers {
        text_server(&mut o, r, server, &mut sink);
    }
    if !r.clients.is_empty() {
        let _ = writeln!(o, "{}\nCLIENTS", "=".repeat(WIDTH));
        let (shown, more) = clients_to_show(r);
        for c in shown {
            text_identity(&mut o, r, &c);
        }
        if more > 0 {
            wrap(&mut o, "  ", 4, &more_clients(more));
        }
    }
    sink.drain(&mut o, true);
    match sink.error {
        Some(e) => Err(e),
        None => sink.out.flush(),
    }
}

/// A client: who it is and what it got.
fn text_identity(o: &mut String, r: &Report, c: &crate::report::ClientReport) {
    let who = who(r, c.ip);
    let title = if who.is_empty() {
        format!("{}: {}", c.ip, counts(&c.statuses))
    } else {
        format!("{} ({who}): {}", c.ip, counts(&c.statuses))
    };
    wrap(o, "  ", 6, &title);
    let id = &c.identity;
    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Some(m) = &id.mac {
        let router = if id.mac_is_router {
            " (a router's: the client is behind it)"
        } else {
            ""
        };
        facts.push(("MAC", format!("{m}{router}")));
    }
    if let Some(v) = &id.vendor {
        facts.push(("vendor", v.clone()));
    }
    if let Some(d) = &id.dhcp {
        if let Some(h) = &d.hostname {
            facts.push(("DHCP host name", h.clone()));
        }
        if let Some(v) = &d.vendor_class {
            facts.push(("DHCP vendor class", v.clone()));
        }
        let opts: Vec<String> = d.requested_options.iter().map(u8::to_string).collect();
        facts.push((
            "DHCP options requested",
            format!("{} (frame {})", opts.join(", "), d.frame),
        ));
    }
    if !id.dns_names.is_empty() {
        facts.push(("DNS names", id.dns_names.join(", ")));
    }
    if !c.ja3.is_empty() {
        facts.push(("JA3", c.ja3.join(", ")));
    }
    if !c.ja4.is_empty() {
        facts.push(("JA4", c.ja4.join(", ")));
    }
    for (k, v) in facts {
        wrap(o, &format!("      {k}: "), 10, &clean(&v));
    }
    let streams: Vec<String> = c
        .handshakes
        .iter()
        .map(|id| r.handshakes.get(*id).filter)
        .collect();
    wrap(o, "      handshakes: ", 10, &streams.join(", "));
}

fn group_name(by: crate::report::GroupBy) -> &'static str {
    use crate::report::GroupBy;
    match by {
        GroupBy::Server => "server",
        GroupBy::Client => "client",
        GroupBy::Fingerprint => "fingerprint (JA4)",
        GroupBy::Vendor => "vendor",
    }
}

/// "Polycom: 4 clients, 5 handshakes (3 incomplete, 2 complete); 3 with a faulty chain; 3
/// aborted, 2 went on".
fn group_line(g: &crate::report::Group) -> String {
    format!(
        "{}: {} client{}, {} handshake{} ({}); {} with a faulty chain; {} aborted, {} went on",
        g.key,
        g.clients.len(),
        plural(g.clients.len()),
        g.handshakes.len(),
        plural(g.handshakes.len()),
        counts(&g.by_status),
        g.faulty_chain,
        g.aborted,
        g.went_on
    )
}

/// The text report with ANSI colors for a terminal: severities, missing links, statuses and
/// client reactions. Applied after wrapping, so the layout is the same.
pub fn colorize(text: &str) -> String {
    const RED: &str = "\x1b[1;31m";
    const YELLOW: &str = "\x1b[33m";
    const GREEN: &str = "\x1b[32m";
    const CYAN: &str = "\x1b[36m";
    const BOLD: &str = "\x1b[1m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        let mut l = line.to_string();
        if l.starts_with("PROBLEMS")
            || l.starts_with("SERVER ")
            || l.starts_with("CLIENTS")
            || l.starts_with("BY ")
        {
            l = format!("{BOLD}{l}{RESET}");
        }
        for (word, color) in [
            ("ERROR ", RED),
            ("WARN ", YELLOW),
            ("INFO ", CYAN),
            ("NOT SENT", RED),
            ("INCOMPLETE", RED),
            ("UNTRUSTED", RED),
            ("rejected it", RED),
            ("reset the connection", RED),
            ("accepted it", GREEN),
            ("INVALID", RED),
            ("verdict: valid", GREEN),
        ] {
            if let Some(at) = l.find(word) {
                l = format!("{}{color}{word}{RESET}{}", &l[..at], &l[at + word.len()..]);
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// "2 complete, 4 incomplete": counts by name.
fn counts(by_name: &std::collections::BTreeMap<String, usize>) -> String {
    joined(by_name.iter().map(|(name, n)| format!("{n} {name}")))
}

/// Items joined by ", ".
fn joined<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "pcapng", "pcap (gzip)".
fn capture_kind(c: &crate::capture::CaptureSummary) -> String {
    let format = c.format.map_or("unknown", crate::capture::Format::name);
    match c.compression.name() {
        Some(name) => format!("{format} ({name})"),
        None => format.to_string(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn server_title(s: &ServerReport) -> String {
    match &s.sni {
        Some(sni) => format!("{} (SNI {})", s.server, clean(sni)),
        None => format!("{} (no SNI)", s.server),
    }
}

fn text_server(o: &mut String, r: &Report, s: &ServerReport, sink: &mut TextOut<'_>) {
    let _ = writeln!(o, "{}", "=".repeat(WIDTH));
    let title = format!(
        "{}: {} handshake{}, {}",
        server_title(s),
        s.handshakes,
        plural(s.handshakes),
        match s.variants.len() {
            0 => "no chain visible".to_string(),
            n => format!("{n} chain variant{}", plural(n)),
        }
    );
    wrap(o, "SERVER ", 4, &title);
    for f in &s.findings {
        text_finding(o, f, 2);
    }
    for v in &s.variants {
        text_variant(o, r, v, sink);
    }
    for (status, ids) in &s.without_chain {
        let _ = writeln!(
            o,
            "\n  No chain seen ({status}): {} handshake{}",
            ids.len(),
            plural(ids.len())
        );
        lines_in_parallel(o, sink, ids.len(), |i, lines| {
            let h = &r.handshakes.get(ids[i]);
            text_client(lines, r, &Row::from(h), 4);
            for n in &h.notes {
                wrap(lines, "        note: ", 14, &clean(n));
            }
        });
    }
    o.push('\n');
}

fn text_finding(o: &mut String, f: &Finding, indent: usize) {
    let head = format!(
        "{}{} {}: ",
        " ".repeat(indent),
        severity_word(f.severity),
        f.kind.as_str()
    );
    wrap(o, &head, indent + 4, &clean(&f.message));
    let pad = " ".repeat(indent + 4);
    if let Some(aia) = aia_text(f) {
        wrap(o, &format!("{pad}aia: "), indent + 9, &aia);
    }
    wrap(o, &format!("{pad}fix: "), indent + 9, &f.fix);
    if let Some(evidence) = evidence(f) {
        wrap(o, &format!("{pad}see: "), indent + 9, &evidence);
    }
}

/// "frame 6, Wireshark filter: tcp.stream in {0,1,3,5}"; when the handshakes come from several
/// captures, each capture's ("[0] frame 6, Wireshark filter: ...; [1] frame 3, ...").
fn evidence(f: &Finding) -> Option<String> {
    let one = |frame: Option<u64>, filter: Option<&str>| match (frame, filter) {
        (Some(frame), Some(filter)) => Some(format!("frame {frame}, Wireshark filter: {filter}")),
        (None, Some(filter)) => Some(format!("Wireshark filter: {filter}")),
        (Some(frame), None) => Some(format!("frame {frame}")),
        (None, None) => None,
    };
    let first = one(f.frame, f.filter.as_deref())?;
    if f.more_evidence.is_empty() {
        return Some(first);
    }
    let mut parts = vec![format!("[{}] {first}", f.capture.unwrap_or(0))];
    for e in &f.more_evidence {
        parts.extend(one(e.frame, Some(&e.filter)).map(|t| format!("[{}] {t}", e.capture)));
    }
    Some(parts.join("; "))
}

fn text_variant(o: &mut String, r: &Report, v: &ChainVariant, sink: &mut TextOut<'_>) {
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  Chain {} -> {} client handshake{}",
        v.id,
        v.clients.len(),
        plural(v.clients.len())
    );
    wrap(o, "    verdict: ", 13, &verdict_line(v.verdict, v.status));
    o.push_str("    sent:\n");
    for (i, (sha, subj)) in v.certificates.iter().zip(&v.subjects).enumerate() {
        wrap(
            o,
            &format!("      #{i} "),
            9,
            &format!("{} ({})", clean(subj), short(sha)),
        );
    }
    if !v.path.is_empty() {
        o.push_str("    path (leaf up):\n");
        for l in &v.path {
            wrap(o, "      ", 8, &link_text(l));
        }
    }
    if !v.findings.is_empty() {
        o.push_str("    findings:\n");
        for f in &v.findings {
            text_finding(o, f, 6);
        }
    }
    o.push_str("    clients:\n");
    lines_in_parallel(o, sink, v.clients.len(), |i, lines| {
        text_client(lines, r, &Row::from(&v.clients.get(i)), 6)
    });
}

/// Writes `line(0)` ... `line(n - 1)` in order; each reads its handshake back from the
/// report's spill, so they are made by as many threads as cores, a run of them each.
fn lines_in_parallel(
    o: &mut String,
    sink: &mut TextOut<'_>,
    n: usize,
    line: impl Fn(usize, &mut String) + Sync,
) {
    const RUN: usize = 512;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let line = &line;
    let mut start = 0;
    while start < n {
        let runs: Vec<(usize, usize)> = (0..workers)
            .map(|k| start + k * RUN)
            .take_while(|&from| from < n)
            .map(|from| (from, n.min(from + RUN)))
            .collect();
        start = runs.last().map_or(n, |&(_, to)| to);
        let lines = |(from, to): (usize, usize)| {
            let mut lines = String::new();
            for i in from..to {
                line(i, &mut lines);
            }
            lines
        };
        let texts: Vec<String> = if runs.len() == 1 {
            runs.into_iter().map(lines).collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .into_iter()
                    .map(|run| scope.spawn(move || lines(run)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        for t in texts {
            o.push_str(&t);
            sink.drain(o, false);
        }
    }
}

/// Most clients listed one by one in the text, Markdown and HTML reports.
const MAX_CLIENTS_LISTED: usize = 200;

/// The clients to list: those that got a chain with an error first, then by address; and how
/// many more there are.
fn clients_to_show(r: &Report) -> (Vec<crate::report::ClientReport>, usize) {
    let n = r.clients.len();
    // The list is by address: all of it when it fits, else those with an error first.
    let picked: Vec<usize> = if n <= MAX_CLIENTS_LISTED {
        (0..n).collect()
    } else {
        let got_error = |i: &usize| r.clients.got_error(*i);
        (0..n)
            .filter(got_error)
            .chain((0..n).filter(|i| !got_error(i)))
            .take(MAX_CLIENTS_LISTED)
            .collect()
    };
    (
        picked.into_iter().map(|i| r.clients.get(i)).collect(),
        n.saturating_sub(MAX_CLIENTS_LISTED),
    )
}

fn more_clients(n: usize) -> String {
    format!(
        "... and {n} more client{} (every client is in --format json; --group-by vendor or fingerprint sums them up)",
        plural(n)
    )
}

/// Who the client at `ip` is, as far as the capture tells: "CX3000-11 · Polycom · 00:04:f2:..".
fn who(r: &Report, ip: std::net::IpAddr) -> String {
    let Some(client) = r.client(ip) else {
        return String::new();
    };
    let id = &client.identity;
    let mut parts: Vec<&str> = Vec::new();
    if let Some(h) = id.dhcp.as_ref().and_then(|d| d.hostname.as_deref()) {
        parts.push(h);
    } else if let Some(n) = id.dns_names.first() {
        parts.push(n);
    }
    if let Some(v) = &id.vendor {
        parts.push(v);
    }
    if let Some(m) = &id.mac {
        parts.push(m);
    }
    clean(&parts.join(" · "))
}

/// "127.0.1.21 fetched it in frame 25".
fn fetch_text(g: &crate::identity::HttpGet) -> String {
    format!("{} fetched it in frame {}", g.client, g.frame)
}

/// The AIA line of a finding about a missing issuer, if it has one.
fn aia_text(f: &Finding) -> Option<String> {
    let aia = f.aia.as_ref()?;
    let fetched = if aia.aia_fetches.is_empty() {
        "this capture shows no fetch of it".to_string()
    } else {
        aia.aia_fetches
            .iter()
            .map(fetch_text)
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(clean(&format!(
        "the issuer is published at {} (AIA caIssuers): clients that fetch it complete the chain themselves, others fail; {fetched}",
        aia.ca_issuers.join(", ")
    )))
}

/// What a client's line shows of one handshake: from the handshake, or from the chain
/// variant's list of clients (which has it without reading the handshake back).
struct Row<'a> {
    client: crate::model::Endpoint,
    transport: &'a str,
    stream: u64,
    client_hello_frame: Option<u64>,
    certificate_frame: Option<u64>,
    version: Option<&'a str>,
    client_reaction: &'a Reaction,
}

impl<'a> From<&'a HandshakeReport> for Row<'a> {
    fn from(h: &'a HandshakeReport) -> Self {
        Row {
            client: h.client,
            transport: &h.transport,
            stream: h.stream,
            client_hello_frame: h.client_hello_frame,
            certificate_frame: h.certificate_frame,
            version: h.version.as_deref(),
            client_reaction: &h.client_reaction,
        }
    }
}

impl<'a> From<&'a crate::report::VariantClient> for Row<'a> {
    fn from(c: &'a crate::report::VariantClient) -> Self {
        Row {
            client: c.client,
            transport: &c.transport,
            stream: c.stream,
            client_hello_frame: c.client_hello_frame,
            certificate_frame: c.certificate_frame,
            version: c.version.as_deref(),
            client_reaction: &c.reaction,
        }
    }
}

fn text_client(o: &mut String, r: &Report, h: &Row<'_>, indent: usize) {
    let frames = format!(
        "{}.stream {}, ClientHello frame {}{}",
        h.transport,
        h.stream,
        h.client_hello_frame
            .map(|f| f.to_string())
            .unwrap_or_else(|| "-".into()),
        h.certificate_frame
            .map(|f| format!(", Certificate frame {f}"))
            .unwrap_or_default()
    );
    let version = h.version.unwrap_or("no ServerHello");
    let who = who(r, h.client.ip);
    let head = if who.is_empty() {
        format!("{}{} ", " ".repeat(indent), h.client)
    } else {
        format!("{}{} ({who}) ", " ".repeat(indent), h.client)
    };
    wrap(
        o,
        &head,
        indent + 4,
        &format!("{version}, {frames}: {}", reaction_text(h.client_reaction)),
    );
}

/// The Markdown report (for tickets and wikis).
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(o, "# chainsniff report\n");
    let _ = writeln!(
        o,
        "{} · {} capture(s), {} frames, {} TLS handshakes, {} servers, {} clients\n",
        r.generator, s.captures, s.frames, s.handshakes, s.servers, s.clients
    );
    o.push_str(
        "| # | capture | format | frames | truncated | warnings |\n|---|---|---|---|---|---|\n",
    );
    for (i, c) in r.captures.iter().enumerate() {
        let _ = writeln!(
            o,
            "| {i} | `{}` | {} | {} | {} | {} |",
            md(&c.summary.path),
            capture_kind(&c.summary),
            c.summary.frames,
            c.summary.truncated,
            md(&c.summary.warnings.join("; "))
        );
    }
    o.push_str("\n## Problems\n\n");
    if s.headlines.is_empty() {
        o.push_str("No chain problems found.\n");
    }
    for h in &s.headlines {
        let _ = writeln!(o, "- {}", md(h));
    }
    if let Some(g) = &r.groups {
        let _ = writeln!(
            o,
            "\n## By {}\n\n| group | clients | handshakes | statuses | faulty chain | aborted | went on |\n|---|---|---|---|---|---|---|",
            group_name(g.by)
        );
        for g in &g.groups {
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} | {} | {} |",
                md(&g.key),
                if g.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", md(&g.detail))
                },
                joined(&g.clients),
                g.handshakes.len(),
                counts(&g.by_status),
                g.faulty_chain,
                g.aborted,
                g.went_on
            );
        }
    }
    for server in &r.servers {
        let _ = writeln!(o, "\n## Server {}\n", md(&server_title(server)));
        for f in &server.findings {
            md_finding(&mut o, f);
        }
        for v in &server.variants {
            let _ = writeln!(
                o,
                "\n### Chain {} ({} handshakes): {}\n",
                v.id,
                v.clients.len(),
                verdict_line(v.verdict, v.status)
            );
            o.push_str("| # | subject | sha256 |\n|---|---|---|\n");
            for (i, (sha, subj)) in v.certificates.iter().zip(&v.subjects).enumerate() {
                let _ = writeln!(o, "| {i} | {} | `{}` |", md(subj), short(sha));
            }
            if !v.path.is_empty() {
                o.push_str("\nPath (leaf up):\n\n");
                for l in &v.path {
                    let _ = writeln!(o, "1. {}", md(&link_text(l)));
                }
            }
            if !v.findings.is_empty() {
                o.push_str("\nFindings:\n\n");
                for f in &v.findings {
                    md_finding(&mut o, f);
                }
            }
            o.push_str("\n| client | tcp.stream | ClientHello | Certificate | version | client reaction |\n|---|---|---|---|---|---|\n");
            for c in &v.clients {
                md_client_row(&mut o, r, &Row::from(&c));
            }
        }
        for (status, ids) in &server.without_chain {
            let _ = writeln!(o, "\n### No chain seen ({status})\n");
            o.push_str("| client | tcp.stream | ClientHello | Certificate | version | client reaction |\n|---|---|---|---|---|---|\n");
            for id in ids {
                md_client_row(&mut o, r, &Row::from(&r.handshakes.get(*id)));
            }
        }
    }
    if !r.clients.is_empty() {
        o.push_str("\n## Clients\n\n| client | MAC | vendor | DHCP host name | DHCP vendor class | DHCP options requested | DNS names | JA4 | handshakes |\n|---|---|---|---|---|---|---|---|---|\n");
        let (shown, more) = clients_to_show(r);
        for c in shown {
            let id = &c.identity;
            let dhcp = id.dhcp.as_ref();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.ip,
                id.mac.as_deref().unwrap_or(""),
                md(id.vendor.as_deref().unwrap_or("")),
                md(dhcp.and_then(|d| d.hostname.as_deref()).unwrap_or("")),
                md(dhcp.and_then(|d| d.vendor_class.as_deref()).unwrap_or("")),
                dhcp.map(|d| {
                    d.requested_options
                        .iter()
                        .map(u8::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
                md(&id.dns_names.join(", ")),
                md(&c.ja4.join(", ")),
                counts(&c.statuses)
            );
        }
        if more > 0 {
            let _ = writeln!(o, "\n{}", md(&more_clients(more)));
        }
    }
    o
}

/// A finding as a list item, its AIA, fix and evidence as sub-items.
fn md_finding(o: &mut String, f: &Finding) {
    let _ = writeln!(
        o,
        "- **{}** `{}`: {}",
        severity_word(f.severity),
        f.kind.as_str(),
        md(&f.message)
    );
    if let Some(aia) = aia_text(f) {
        let _ = writeln!(o, "  - AIA: {}", md(&aia));
    }
    let _ = writeln!(o, "  - Fix: {}", md(&f.fix));
    let multi = !f.more_evidence.is_empty();
    let first = (f.capture.unwrap_or(0), f.frame, f.filter.as_deref());
    let rest = f
        .more_evidence
        .iter()
        .map(|e| (e.capture, e.frame, Some(e.filter.as_str())));
    for (capture, frame, filter) in std::iter::once(first).chain(rest) {
        let at = if multi {
            format!("capture [{capture}]: ")
        } else {
            String::new()
        };
        match (frame, filter) {
            (Some(frame), Some(filter)) => {
                let _ = writeln!(
                    o,
                    "  - {at}Seen in frame {frame}; Wireshark filter `{filter}`"
                );
            }
            (None, Some(filter)) => {
                let _ = writeln!(o, "  - {at}Wireshark filter `{filter}`");
            }
            (Some(frame), None) => {
                let _ = writeln!(o, "  - {at}Seen in frame {frame}");
            }
            (None, None) => {}
        }
    }
}

fn md_client_row(o: &mut String, r: &Report, h: &Row<'_>) {
    let who = who(r, h.client.ip);
    let _ = writeln!(
        o,
        "| {}{} | {} | {} | {} | {} | {} |",
        h.client,
        if who.is_empty() {
            String::new()
        } else {
            format!(" ({})", md(&who))
        },
        h.stream,
        h.client_hello_frame
            .map(|f| f.to_string())
            .unwrap_or_default(),
        h.certificate_frame
            .map(|f| f.to_string())
            .unwrap_or_default(),
        h.version.unwrap_or("-"),
        md(&reaction_text(h.client_reaction))
    );
}

/// Escapes text for Markdown table cells and paragraphs.
fn md(s: &str) -> String {
    clean(s)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('*', "\\*")
        .replace('_', "\\_")
        .replace('`', "\\`")
}

/// The JSON report (the full result; schema in docs/report.md).
pub fn json(r: &Report) -> String {
    let mut out = Vec::new();
    if let Err(e) = write_json(r, &mut out) {
        return format!("{{\"error\":\"{e}\"}}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the JSON report to `out` as it is serialized (no copy of it in memory). The
/// handshakes are copied out as the report stored them (see [`crate::report::HandshakeList`]).
pub fn write_json(r: &Report, out: impl std::io::Write) -> std::io::Result<()> {
    use crate::json::write_pretty;
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let w = &mut out;
    // The layout is serde_json's pretty one, as if the whole report were serialized at once
    // (a test checks that it is).
    fn field<W: Write>(
        w: &mut W,
        first: bool,
        name: &str,
        v: &impl serde::Serialize,
    ) -> std::io::Result<()> {
        w.write_all(if first { b"\n  \"" } else { b",\n  \"" })?;
        w.write_all(name.as_bytes())?;
        w.write_all(b"\": ")?;
        write_pretty(v, 1, w)
    }
    w.write_all(b"{")?;
    field(w, true, "schema", &r.schema)?;
    field(w, false, "generator", &r.generator)?;
    field(w, false, "captures", &r.captures)?;
    field(w, false, "trust", &r.trust)?;
    field(w, false, "summary", &r.summary)?;
    w.write_all(b",\n  \"handshakes\": [")?;
    for id in 0..r.handshakes.len() {
        w.write_all(if id == 0 { b"\n    " } else { b",\n    " })?;
        w.write_all(&r.handshakes.json(id)?)?;
    }
    w.write_all(if r.handshakes.is_empty() {
        b"]"
    } else {
        b"\n  ]"
    })?;
    field(w, false, "servers", &r.servers)?;
    field(w, false, "clients", &r.clients)?;
    field(w, false, "certificates", &r.certificates)?;
    if let Some(groups) = &r.groups {
        field(w, false, "groups", groups)?;
    }
    w.write_all(b"\n}\n")?;
    w.flush()
}

/// One JSON line for a handshake decided while reading (`--format jsonl`).
pub fn jsonl_handshake(h: &HandshakeReport) -> String {
    let mut v = serde_json::to_value(h).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), "handshake".into());
    }
    format!("{}\n", crate::json::compact(&v))
}

/// The closing JSON line of `--format jsonl`: the summary, captures and servers of the final
/// report.
pub fn jsonl_summary(r: &Report) -> String {
    let v = serde_json::json!({
        "type": "summary",
        "schema": r.schema,
        "generator": r.generator,
        "captures": r.captures,
        "trust": r.trust,
        "summary": r.summary,
        "servers": r.servers,
        "clients": r.clients,
    });
    format!("{}\n", crate::json::compact(&v))
}
