//! `--format text`, the default: the report for a person at a terminal, or pasted into a
//! ticket. The captures and the trust store, the problems, each server with its chain variants
//! (verdict, certificates sent, path, findings, the clients that got it), then the clients and
//! what the capture tells of each; word-wrapped to the style's width (80 columns) and, for a
//! terminal, colored. Written out 64 KiB at a time as it is made, never held whole.

use std::fmt::Write as _;

use super::{
    MAX_HANDSHAKES_LISTED, MAX_SERVERS_DETAILED, Row, Style, aia_text, capture_kind, capture_names,
    clean, clients_to_show, counted, counts, group_name, joined, link_text, more_clients, plural,
    reaction_text, server_title, severity_word, short, verdict_line, who,
};
use crate::judge::ReactionCount;
use crate::pki::Finding;
use crate::report::{
    ChainVariant, ClientReport, Group, MAX_HEADLINES, Report, ServerReport, TrustInfo,
};

/// Writes the text report to `w` as it is made, a chunk of whole lines at a time; with
/// `style.color`, with ANSI colors for a terminal (applied after wrapping, so the layout is
/// the same).
pub fn write(r: &Report, w: &mut dyn std::io::Write, style: &Style) -> std::io::Result<()> {
    let mut sink = TextOut {
        out: w,
        color: style.color,
        error: None,
    };
    let t = Text { r, style };
    let mut o = String::new();
    t.head(&mut o);
    t.problems(&mut o);
    t.groups(&mut o);
    let detailed = if style.all_details {
        r.servers.len()
    } else {
        MAX_SERVERS_DETAILED.min(r.servers.len())
    };
    for server in &r.servers[..detailed] {
        t.server(&mut o, server, &mut sink);
    }
    t.other_servers(&mut o, &r.servers[detailed..]);
    t.clients(&mut o);
    sink.drain(&mut o, true);
    match sink.error {
        Some(e) => Err(e),
        None => sink.out.flush(),
    }
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

/// The report being printed and how: what every part of the text needs (shared by the threads
/// that make the client lines).
#[derive(Clone, Copy)]
struct Text<'a> {
    r: &'a Report,
    style: &'a Style,
}

impl Text<'_> {
    /// Word-wraps `text` to the style's width (see [`Style::wrap`]).
    fn wrap(&self, o: &mut String, first: &str, indent: usize, text: &str) {
        self.style.wrap(o, first, indent, text);
    }

    /// A line of `=` across the page, between servers.
    fn rule(&self, o: &mut String) {
        o.push_str(&"=".repeat(self.style.width));
        o.push('\n');
    }

    /// The first lines: what was read (each capture, the trust store) and the counts.
    fn head(&self, o: &mut String) {
        let r = self.r;
        let s = &r.summary;
        let head = format!(
            "{} - {} capture{}, {} TLS handshake{}, {} server{}, {} client{}",
            r.generator,
            s.captures,
            plural(s.captures),
            s.handshakes,
            plural(s.handshakes),
            s.servers,
            plural(s.servers),
            s.clients,
            plural(s.clients)
        );
        self.wrap(o, "", 2, &head);
        for (i, c) in r.captures.iter().enumerate() {
            let line = format!(
                "{}: {}, {}, {}{}",
                clean(&c.summary.path),
                capture_kind(&c.summary),
                counted(c.summary.frames, "frame"),
                counted(c.tcp_connections, "TCP connection"),
                if c.summary.truncated {
                    ", TRUNCATED"
                } else {
                    ""
                }
            );
            self.wrap(o, &format!("  [{i}] "), 6, &line);
            if let Some(j) = &c.joined {
                let with: Vec<String> = j.captures.iter().map(|c| format!("[{c}]")).collect();
                self.wrap(
                    o,
                    "      joined: ",
                    14,
                    &format!(
                        "read as one capture with {} ({}); frame numbers are each file's own",
                        with.join(" "),
                        j.how.replace('_', " ")
                    ),
                );
            }
            for w in &c.summary.warnings {
                self.wrap(o, "      warning: ", 15, &clean(&w.text));
            }
        }
        let _ = writeln!(o, "  trust: {}", trust_line(&r.trust));
        for n in &r.trust.notes {
            self.wrap(o, "      warning: ", 15, &clean(&n.message()));
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
        // The problems follow under their own heading; without any, a blank line.
        if s.causes.is_empty() {
            o.push('\n');
        }
    }

    /// PROBLEMS: one entry per root cause across servers (what, where, who and how they
    /// fared, the fix), or that there are none; then who fails and who copes with an
    /// incomplete chain.
    fn problems(&self, o: &mut String) {
        let s = &self.r.summary;
        if s.causes.is_empty() {
            if s.handshakes > 0 {
                o.push_str("No chain problems found.\n\n");
            } else {
                o.push_str("No TLS handshake found in the capture.\n\n");
            }
            return;
        }
        let names = capture_names(self.r);
        o.push_str("PROBLEMS (root causes, most failing clients first)\n");
        for (i, c) in s.causes.iter().take(MAX_HEADLINES).enumerate() {
            let title = format!("{} {}", severity_word(c.severity), clean(&c.what));
            self.wrap(o, &format!("{:>2}. ", i + 1), 4, &title);
            let mut at = c.where_text();
            let clients = c.clients_text(&names);
            if !clients.is_empty() {
                at = format!("{at}; {clients}");
            }
            self.wrap(o, "    ", 4, &clean(&at));
            if !c.per_capture.is_empty() {
                self.wrap(
                    o,
                    "    by capture: ",
                    16,
                    &clean(&c.per_capture_text(&names)),
                );
            }
            self.wrap(o, "    fix: ", 9, &clean(&c.fix_text()));
        }
        if let Some(more) = crate::report::more_causes(&s.causes) {
            self.wrap(o, "  ", 4, &more);
        }
        for (i, c) in s.causes.iter().take(MAX_HEADLINES).enumerate() {
            if let Some(coping) = &c.coping {
                let _ = writeln!(o, "\nWHO FAILS AND WHO COPES (cause {})", i + 1);
                self.wrap(o, "  ", 2, &clean(coping));
            }
        }
        o.push('\n');
    }

    /// BY ...: a line per group (`--group-by`), if asked.
    fn groups(&self, o: &mut String) {
        let Some(g) = &self.r.groups else { return };
        let _ = writeln!(o, "BY {}", group_name(g.by).to_uppercase());
        for g in &g.groups {
            self.wrap(o, "  * ", 6, &clean(&group_line(g)));
            if !g.detail.is_empty() {
                self.wrap(o, "      ", 6, &clean(&g.detail));
            }
            self.wrap(o, "      clients: ", 10, &joined(&g.clients));
        }
        o.push('\n');
    }

    /// CLIENTS: who each client is and what it got (the first [`super::MAX_CLIENTS_LISTED`]).
    fn clients(&self, o: &mut String) {
        let r = self.r;
        if r.clients.is_empty() {
            return;
        }
        self.rule(o);
        o.push_str("CLIENTS\n");
        let (shown, more) = clients_to_show(r);
        for c in shown {
            self.identity(o, &c);
        }
        if more > 0 {
            self.wrap(o, "  ", 4, &more_clients(more));
        }
    }

    /// A client: who it is and what it got.
    fn identity(&self, o: &mut String, c: &ClientReport) {
        let who = who(self.r, c.ip);
        let title = if who.is_empty() {
            format!("{}: {}", c.ip, counts(&c.statuses))
        } else {
            format!("{} ({who}): {}", c.ip, counts(&c.statuses))
        };
        self.wrap(o, "  ", 6, &title);
        for (k, v) in client_facts(c) {
            self.wrap(o, &format!("      {k}: "), 10, &clean(&v));
        }
        let streams: Vec<String> = c
            .handshakes
            .iter()
            .map(|id| self.r.handshakes.get(*id).filter)
            .collect();
        self.wrap(o, "      handshakes: ", 10, &streams.join(", "));
    }

    /// A server, its findings, its chain variants and the handshakes that saw no chain.
    fn server(&self, o: &mut String, s: &ServerReport, sink: &mut TextOut<'_>) {
        self.rule(o);
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
        self.wrap(o, "SERVER ", 4, &title);
        for f in &s.findings {
            self.finding(o, f, 2);
        }
        for v in &s.variants {
            self.variant(o, v, sink);
        }
        for (status, ids) in &s.without_chain {
            let _ = writeln!(
                o,
                "\n  No chain seen ({status}): {} handshake{}",
                ids.len(),
                plural(ids.len())
            );
            let shown = self.listed(ids.len());
            lines_in_parallel(o, sink, shown, |i, lines| {
                let h = &self.r.handshakes.get(ids[i]);
                self.client(lines, &Row::from(h), 4);
                for n in &h.notes {
                    self.wrap(lines, "        note: ", 14, &clean(&n.text));
                }
            });
            let listed = ReactionCount::of(
                ids[..shown]
                    .iter()
                    .map(|id| self.r.handshakes.get(*id).client_reaction.kind),
            );
            let all = s.without_chain_reactions.get(status).copied();
            self.more_handshakes(o, all.unwrap_or_default().without(listed), 4);
        }
        o.push('\n');
    }

    /// The servers beyond the bound of detail (servers with problems come first, so these are
    /// the least affected): one line each.
    fn other_servers(&self, o: &mut String, rest: &[ServerReport]) {
        if rest.is_empty() {
            return;
        }
        self.rule(o);
        let _ = writeln!(
            o,
            "{} MORE SERVER{} (each in detail with --details all, or in --format json)",
            rest.len(),
            if rest.len() == 1 { "" } else { "S" }
        );
        for s in rest {
            let chains: Vec<String> = s
                .variants
                .iter()
                .map(|v| {
                    format!(
                        "{} {} {} ({})",
                        v.id,
                        v.verdict.as_str(),
                        v.status.as_str(),
                        counted(v.clients.len(), "handshake")
                    )
                })
                .chain(
                    s.without_chain
                        .iter()
                        .map(|(status, ids)| format!("no chain {status} ({})", ids.len())),
                )
                .collect();
            let line = format!(
                "{}: {}; {}",
                server_title(s),
                counted(s.handshakes, "handshake"),
                chains.join(", ")
            );
            self.wrap(o, "  * ", 6, &line);
        }
        o.push('\n');
    }

    /// "... and 1480 more handshakes of this chain: 1110 aborted, 370 went on (--details all)".
    fn more_handshakes(&self, o: &mut String, rest: ReactionCount, indent: usize) {
        let ReactionCount {
            handshakes: n,
            aborted,
            went_on,
        } = rest;
        if n == 0 {
            return;
        }
        let line = format!(
            "... and {}: {aborted} aborted, {went_on} went on (each with --details all, or in --format json)",
            counted(n, "more handshake")
        );
        self.wrap(o, &" ".repeat(indent), indent + 4, &line);
    }

    /// How many handshakes of `n` to list.
    fn listed(&self, n: usize) -> usize {
        if self.style.all_details {
            n
        } else {
            n.min(MAX_HANDSHAKES_LISTED)
        }
    }

    /// A finding: severity, kind and message, then its AIA, fix and evidence.
    fn finding(&self, o: &mut String, f: &Finding, indent: usize) {
        let head = format!(
            "{}{} {}: ",
            " ".repeat(indent),
            severity_word(f.severity),
            f.kind.as_str()
        );
        self.wrap(o, &head, indent + 4, &clean(&f.message));
        let pad = " ".repeat(indent + 4);
        if let Some(aia) = aia_text(f) {
            self.wrap(o, &format!("{pad}aia: "), indent + 9, &aia);
        }
        self.wrap(o, &format!("{pad}fix: "), indent + 9, &f.fix);
        if let Some(evidence) = evidence(f) {
            self.wrap(o, &format!("{pad}see: "), indent + 9, &evidence);
        }
    }

    /// A chain variant: its verdict, the certificates sent, the path, the findings, and a line
    /// per client handshake that got it.
    fn variant(&self, o: &mut String, v: &ChainVariant, sink: &mut TextOut<'_>) {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "  Chain {} -> {} client handshake{}",
            v.id,
            v.clients.len(),
            plural(v.clients.len())
        );
        self.wrap(o, "    verdict: ", 13, &verdict_line(v.verdict, v.status));
        o.push_str("    sent:\n");
        for (i, (sha, subj)) in v.certificates.iter().zip(&v.subjects).enumerate() {
            self.wrap(
                o,
                &format!("      #{i} "),
                9,
                &format!("{} ({})", clean(subj), short(sha)),
            );
        }
        if !v.path.is_empty() {
            o.push_str("    path (leaf up):\n");
            for l in &v.path {
                self.wrap(o, "      ", 8, &link_text(l));
            }
        }
        if !v.findings.is_empty() {
            o.push_str("    findings:\n");
            for f in &v.findings {
                self.finding(o, f, 6);
            }
        }
        o.push_str("    clients:\n");
        let shown = self.listed(v.clients.len());
        lines_in_parallel(o, sink, shown, |i, lines| {
            self.client(lines, &Row::from(&v.clients.get(i)), 6)
        });
        let listed = ReactionCount::of((0..shown).map(|i| v.clients.get(i).reaction.kind));
        self.more_handshakes(o, v.clients.reactions().without(listed), 6);
    }

    /// A client handshake: the client, its version, frames and reaction.
    fn client(&self, o: &mut String, h: &Row<'_>, indent: usize) {
        let hello = match (h.client_hello_frame, h.renegotiation_frame) {
            (Some(f), _) => format!("ClientHello frame {f}"),
            (None, Some(f)) => format!("renegotiation from frame {f}, encrypted"),
            (None, None) => "ClientHello frame -".into(),
        };
        let frames = format!(
            "{}.stream {}, {hello}{}",
            h.transport,
            h.stream,
            h.certificate_frame
                .map(|f| format!(", Certificate frame {f}"))
                .unwrap_or_default()
        );
        let version = h.version.unwrap_or(if h.renegotiation_frame.is_some() {
            "not seen"
        } else {
            "no ServerHello"
        });
        let who = who(self.r, h.client.ip);
        let head = if who.is_empty() {
            format!("{}{} ", " ".repeat(indent), h.client)
        } else {
            format!("{}{} ({who}) ", " ".repeat(indent), h.client)
        };
        self.wrap(
            o,
            &head,
            indent + 4,
            &format!("{version}, {frames}: {}", reaction_text(h.client_reaction)),
        );
    }
}

/// What the capture tells of a client, as (name, value) lines: MAC, vendor, DHCP, DNS names,
/// fingerprints.
fn client_facts(c: &ClientReport) -> Vec<(&'static str, String)> {
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
    facts
}

/// "Mozilla's 146 roots + 1 from --trust".
fn trust_line(t: &TrustInfo) -> String {
    let store = match t.store {
        crate::pki::TrustSource::Mozilla => {
            format!("Mozilla's {}", counted(t.default_roots, "root"))
        }
        crate::pki::TrustSource::System => {
            format!("the system's {}", counted(t.default_roots, "root"))
        }
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

/// "Polycom: 4 clients, 5 handshakes (3 incomplete, 2 complete); 3 with a faulty chain; 3
/// aborted, 2 went on".
fn group_line(g: &Group) -> String {
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

/// Writes `line(0)` ... `line(n - 1)` in order; each reads its handshake back from the
/// report's spill, so they are made by as many threads as cores, a run of them each.
fn lines_in_parallel(
    o: &mut String,
    sink: &mut TextOut<'_>,
    n: usize,
    line: impl Fn(usize, &mut String) + Sync,
) {
    const RUN: usize = 512;
    // Asked once: on Linux the answer reads the cgroup's files, and a report has a list of
    // lines per chain variant.
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let workers = *WORKERS
        .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4)));
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

/// The text report with ANSI colors for a terminal: severities, missing links, statuses and
/// client reactions. Applied after wrapping, so the layout is the same.
fn colorize(text: &str) -> String {
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
