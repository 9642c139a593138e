//! `--format html`: the report as one self-contained page (inline CSS, a few lines of inline
//! script, no fetches) to attach to a ticket or open in a browser: the problems, each server's
//! chain variants with their certificates and the clients that got them, each client's
//! timeline. The page is a minijinja template (`report.html`, auto-escaped)
//! over a view of the report prepared here, so the template only lays out.

use std::collections::BTreeMap;

use minijinja::Environment;
use minijinja::value::{Serde, Value};
use serde::Serialize;

use super::{Style, reaction_text, server_title, verdict_line, who};
use crate::judge::ReactionKind;
use crate::pki::CertSummary;
use crate::pki::{Finding, LinkSource, PathLink, Severity};
use crate::report::{ChainVariant, ClientReport, HandshakeReport, Report, ServerReport};

const TEMPLATE: &str = include_str!("report.html");

/// Most handshakes listed under one chain variant (or one status without a chain).
const MAX_ROWS: usize = 100;

/// Most handshake rows on the whole page, taken in page order (servers with problems first):
/// a browser lays out a few thousand table rows in a second, tens of thousands in many.
const MAX_PAGE_ROWS: usize = 2000;

/// The handshake rows the page may still list.
struct Rows {
    left: usize,
}

impl Rows {
    /// How many of a list of `n` to show: at most [`MAX_ROWS`], within what the page has left.
    fn take(&mut self, n: usize) -> usize {
        let k = n.min(MAX_ROWS).min(self.left);
        self.left -= k;
        k
    }
}

#[derive(Serialize)]
struct Page<'a> {
    generator: &'a str,
    captures: Vec<CaptureView>,
    headlines: &'a [String],
    counts: BTreeMap<&'static str, usize>,
    /// `--group-by`: its name and a line per group.
    group_by: Option<&'static str>,
    groups: Vec<GroupView<'a>>,
    servers: Vec<ServerView<'a>>,
    clients: Vec<ClientView<'a>>,
    /// "... and N more clients" when not all are listed.
    more_clients: Option<String>,
}

#[derive(Serialize)]
struct GroupView<'a> {
    g: &'a crate::report::Group,
    statuses: String,
    clients: String,
}

#[derive(Serialize)]
struct CaptureView {
    path: String,
    kind: String,
    frames: u64,
    truncated: bool,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct ServerView<'a> {
    anchor: String,
    title: String,
    handshakes: usize,
    names: &'a [String],
    findings: Vec<FindingView<'a>>,
    variants: Vec<VariantView<'a>>,
    /// Status, how many, the first few (see [`Rows`]).
    without_chain: Vec<(String, usize, Vec<HandshakeView>)>,
    /// Handshakes over time by verdict, for a server with problems.
    timeline: Option<Timeline>,
}

/// Time bins of a server's handshakes, drawn as stacked bars (inline SVG, nothing fetched), so
/// that "it broke at 14:02 when the pool changed" is seen at a glance.
#[derive(Serialize)]
struct Timeline {
    bars: Vec<Bar>,
    /// The first and last ClientHello times, as written in the report.
    from: String,
    to: String,
}

/// One bin: rectangles from the bottom (invalid, not judged, valid) and what it holds.
#[derive(Serialize)]
struct Bar {
    x: f64,
    /// (y, height, class) of each non-empty part.
    parts: Vec<(f64, f64, &'static str)>,
    title: String,
}

/// Bins of the timeline, and its drawing size (the SVG's viewBox).
const BINS: usize = 120;
const TIMELINE_WIDTH: f64 = 600.0;
const TIMELINE_HEIGHT: f64 = 60.0;

/// Seconds since 1970 of an RFC 3339 time as the report writes them
/// (`2026-11-30T14:02:03.123456Z`), or None.
fn rfc3339_seconds(t: &str) -> Option<f64> {
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac: f64 = match t.get(19..20) {
        Some(".") => {
            let digits: String = t[20..].chars().take_while(char::is_ascii_digit).collect();
            format!("0.{digits}").parse().unwrap_or(0.0)
        }
        _ => 0.0,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + frac)
}

/// The timeline of server `s`, when it has problems and its handshakes span some time.
fn timeline(r: &Report, s: &ServerReport) -> Option<Timeline> {
    let bad = s
        .variants
        .iter()
        .flat_map(|v| &v.findings)
        .chain(&s.findings)
        .any(|f| f.severity != Severity::Info)
        || !s.without_chain.is_empty();
    if !bad {
        return None;
    }
    let ids = s
        .variants
        .iter()
        .flat_map(|v| v.clients.iter().map(|c| c.handshake))
        .chain(s.without_chain.values().flatten().copied());
    let mut points: Vec<(f64, crate::pki::Verdict, String)> = ids
        .filter_map(|id| {
            let h = r.handshakes.get(id);
            let t = h.client_hello_time.or(h.certificate_time)?;
            Some((rfc3339_seconds(&t)?, h.verdict, t))
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span = (t1 - t0).max(1e-6);
    let mut bins = vec![[0usize; 3]; BINS];
    for (t, verdict, _) in &points {
        let b = (((t - t0) / span) * BINS as f64) as usize;
        let lane = match verdict {
            crate::pki::Verdict::Invalid => 0,
            crate::pki::Verdict::NotJudged => 1,
            crate::pki::Verdict::Valid => 2,
        };
        bins[b.min(BINS - 1)][lane] += 1;
    }
    let most = bins
        .iter()
        .map(|b| b.iter().sum::<usize>())
        .max()
        .unwrap_or(1)
        .max(1);
    let w = TIMELINE_WIDTH / BINS as f64;
    let bars = bins
        .iter()
        .enumerate()
        .filter(|(_, b)| b.iter().sum::<usize>() > 0)
        .map(|(i, b)| {
            let mut y = TIMELINE_HEIGHT;
            let mut parts = Vec::new();
            for (n, class) in b.iter().zip(["invalid", "not_judged", "valid"]) {
                if *n > 0 {
                    let h = TIMELINE_HEIGHT * *n as f64 / most as f64;
                    y -= h;
                    parts.push((y, h, class));
                }
            }
            let from = t0 + span * i as f64 / BINS as f64;
            Bar {
                x: i as f64 * w,
                parts,
                title: format!(
                    "+{:.1} s: {} invalid, {} not judged, {} valid",
                    from - t0,
                    b[0],
                    b[1],
                    b[2]
                ),
            }
        })
        .collect();
    Some(Timeline {
        bars,
        from: points[0].2.clone(),
        to: points[points.len() - 1].2.clone(),
    })
}

#[derive(Serialize)]
struct VariantView<'a> {
    id: &'a str,
    /// The verdict (`valid`, `invalid`), drawn as the badge.
    status: &'static str,
    /// The verdict and the status in words.
    status_text: String,
    /// `ok`, `bad` or `warn`: how the variant is drawn.
    class: &'static str,
    sent: Vec<CertView<'a>>,
    path: Vec<LinkView<'a>>,
    findings: Vec<FindingView<'a>>,
    handshakes: Vec<HandshakeView>,
    /// How many handshakes got it (`handshakes` lists the first few, see [`Rows`]).
    count: usize,
    /// How many of its clients went on, and how many aborted (alert, reset, close).
    accepted: usize,
    rejected: usize,
}

#[derive(Serialize)]
struct CertView<'a> {
    sha256: &'a str,
    subject: &'a str,
    details: Option<&'a CertSummary>,
}

#[derive(Serialize)]
struct LinkView<'a> {
    cert: CertView<'a>,
    /// `sent`, `missing` or `anchor`.
    class: &'static str,
    label: String,
}

#[derive(Serialize)]
struct FindingView<'a> {
    severity: &'static str,
    kind: &'static str,
    message: &'a str,
    fix: &'a str,
    frame: Option<u64>,
    filter: Option<&'a str>,
    /// The capture of `frame` and `filter`, shown when the evidence spans several captures.
    capture: Option<usize>,
    more_evidence: &'a [crate::pki::Evidence],
    ca_issuers: &'a [String],
    aia_fetches: Vec<String>,
}

#[derive(Serialize)]
struct HandshakeView {
    h: HandshakeReport,
    reaction: String,
    /// `ok` (went on), `bad` (alert, reset, close) or `none`.
    reaction_class: &'static str,
    chain: String,
    /// Who the client is: DHCP host name, vendor, MAC (what the capture tells).
    who: String,
}

#[derive(Serialize)]
struct ClientView<'a> {
    anchor: String,
    ip: String,
    identity: &'a crate::identity::HostIdentity,
    ja3: &'a [String],
    ja4: &'a [String],
    worst: &'static str,
    timeline: Vec<HandshakeView>,
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn finding(f: &Finding) -> FindingView<'_> {
    FindingView {
        severity: severity(f.severity),
        kind: f.kind.as_str(),
        message: &f.message,
        fix: &f.fix,
        frame: f.frame,
        filter: f.filter.as_deref(),
        capture: f.capture.filter(|_| !f.more_evidence.is_empty()),
        more_evidence: &f.more_evidence,
        ca_issuers: f
            .aia
            .as_ref()
            .map(|a| a.ca_issuers.as_slice())
            .unwrap_or_default(),
        aia_fetches: f
            .aia
            .iter()
            .flat_map(|a| &a.aia_fetches)
            .map(super::fetch_text)
            .collect(),
    }
}

fn handshake(r: &Report, id: usize) -> HandshakeView {
    let h = r.handshakes.get(id);
    let reaction_class = match h.client_reaction.kind {
        ReactionKind::Completed => "ok",
        kind if kind.aborted() => "bad",
        _ => "none",
    };
    HandshakeView {
        who: who(r, h.client.ip),
        reaction: reaction_text(&h.client_reaction),
        reaction_class,
        chain: match &h.chain_variant {
            Some(v) => format!("chain {v}"),
            None => "no chain seen".into(),
        },
        h,
    }
}

fn cert<'a>(r: &'a Report, sha256: &'a str, subject: &'a str) -> CertView<'a> {
    CertView {
        sha256,
        subject,
        details: r.certificates.get(sha256).map(|c| &**c),
    }
}

/// Writes the HTML report to `w`: one self-contained page (the style changes nothing).
pub fn write(r: &Report, w: &mut dyn std::io::Write, _style: &Style) -> std::io::Result<()> {
    let (shown_clients, more_clients) = super::clients_to_show(r);
    let page = page(r, &shown_clients, more_clients);
    w.write_all(render(&page).as_bytes())?;
    w.flush()
}

/// The page: the template over the view, or a page saying what went wrong with the template.
fn render(page: &Page<'_>) -> String {
    let mut env = Environment::new();
    // Every value from the wire is HTML-escaped (the template is `.html`) and, first, has its
    // control characters and bidi overrides made visible, as in the other formats. The
    // template's own markup (macro output) is "safe" and left alone.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if !value.is_safe() => {
            minijinja::escape_formatter(out, state, &Value::from(super::clean(text)))
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    // The template is part of the program: an error in it is a bug, caught by the tests.
    if let Err(e) = env.add_template("report.html", TEMPLATE) {
        return template_error(&e);
    }
    let rendered = env
        .get_template("report.html")
        .and_then(|t| t.render(Value::from(Serde(page))));
    match rendered {
        Ok(s) => s,
        Err(e) => template_error(&e),
    }
}

/// The view of the report the template lays out, with the clients listed (and how many more
/// there are).
fn page<'a>(r: &'a Report, shown_clients: &'a [ClientReport], more_clients: usize) -> Page<'a> {
    let mut rows = Rows {
        left: MAX_PAGE_ROWS,
    };
    let servers = r
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| server(r, i, s, &mut rows))
        .collect();
    Page {
        generator: &r.generator,
        captures: r
            .captures
            .iter()
            .map(|c| CaptureView {
                path: c.summary.path.clone(),
                kind: super::capture_kind(&c.summary),
                frames: c.summary.frames,
                truncated: c.summary.truncated,
                warnings: c.summary.warnings.iter().map(|w| w.text.clone()).collect(),
            })
            .collect(),
        headlines: &r.summary.headlines,
        group_by: r.groups.as_ref().map(|g| super::group_name(g.by)),
        groups: r
            .groups
            .iter()
            .flat_map(|g| &g.groups)
            .map(|g| GroupView {
                g,
                statuses: super::counts(&g.by_status),
                clients: super::joined(&g.clients),
            })
            .collect(),
        counts: BTreeMap::from([
            ("handshakes", r.summary.handshakes),
            ("servers", r.summary.servers),
            ("clients", r.summary.clients),
            ("errors", r.summary.errors),
            ("warnings", r.summary.warnings),
            ("filtered_out", r.summary.filtered_out),
        ]),
        servers,
        more_clients: (more_clients > 0).then(|| super::more_clients(more_clients)),
        clients: shown_clients
            .iter()
            .enumerate()
            .map(|(i, c)| client(r, i, c))
            .collect(),
    }
}

/// The `i`th server: its findings, its chain variants, the handshakes that saw no chain.
fn server<'a>(r: &'a Report, i: usize, s: &'a ServerReport, rows: &mut Rows) -> ServerView<'a> {
    ServerView {
        timeline: timeline(r, s),
        anchor: format!("server-{i}"),
        title: server_title(s),
        handshakes: s.handshakes,
        names: &s.identity.dns_names,
        findings: s.findings.iter().map(finding).collect(),
        variants: s.variants.iter().map(|v| variant(r, v, rows)).collect(),
        without_chain: s
            .without_chain
            .iter()
            .map(|(status, ids)| {
                let list = ids
                    .iter()
                    .take(rows.take(ids.len()))
                    .map(|id| handshake(r, *id))
                    .collect();
                (status.clone(), ids.len(), list)
            })
            .collect(),
    }
}

/// A chain variant: its verdict, certificates, path, findings and (the first) handshakes.
fn variant<'a>(r: &'a Report, v: &'a ChainVariant, rows: &mut Rows) -> VariantView<'a> {
    let worst = v.findings.iter().map(|f| f.severity).min();
    let reactions: Vec<ReactionKind> = v.clients.iter().map(|c| c.reaction.kind).collect();
    VariantView {
        accepted: reactions
            .iter()
            .filter(|k| **k == ReactionKind::Completed)
            .count(),
        rejected: reactions.iter().filter(|k| k.aborted()).count(),
        count: v.clients.len(),
        // A page stays readable: the first rows, then a count (all are in JSON).
        handshakes: v
            .clients
            .iter()
            .take(rows.take(v.clients.len()))
            .map(|c| handshake(r, c.handshake))
            .collect(),
        id: &v.id,
        status: v.verdict.as_str(),
        status_text: verdict_line(v.verdict, v.status),
        class: match worst {
            Some(Severity::Error) => "bad",
            Some(Severity::Warning) => "warn",
            _ => "ok",
        },
        sent: v
            .certificates
            .iter()
            .zip(&v.subjects)
            .map(|(sha, subject)| cert(r, sha, subject))
            .collect(),
        path: v.path.iter().map(|l| link(r, l)).collect(),
        findings: v.findings.iter().map(finding).collect(),
    }
}

/// A link of the path: the certificate, and whether it was sent, missing or the anchor.
fn link<'a>(r: &'a Report, l: &'a PathLink) -> LinkView<'a> {
    let (class, label) = match &l.source {
        LinkSource::Sent { position } => ("sent", format!("sent by the server as #{position}")),
        LinkSource::Anchor => ("anchor", "trust anchor (not sent, as it should be)".into()),
        LinkSource::Capture {
            transport,
            stream,
            frame,
            server,
            ..
        } => (
            "missing",
            format!(
                "NOT SENT by this server: missing link. Seen in {transport}.stream {stream}, frame {frame}, sent by {server}"
            ),
        ),
        LinkSource::TrustFile { file } => (
            "missing",
            format!("NOT SENT by this server: missing link. Known from --trust {file}"),
        ),
    };
    LinkView {
        cert: cert(r, &l.sha256, &l.subject),
        class,
        label,
    }
}

/// The `i`th client listed: who it is, and its handshakes in time order.
fn client<'a>(r: &'a Report, i: usize, c: &'a ClientReport) -> ClientView<'a> {
    let mut timeline: Vec<HandshakeView> =
        c.handshakes.iter().map(|id| handshake(r, *id)).collect();
    timeline.sort_by(|a, b| {
        (a.h.client_hello_time.as_deref(), a.h.id).cmp(&(b.h.client_hello_time.as_deref(), b.h.id))
    });
    let worst = if r.client_got_error(c) { "bad" } else { "ok" };
    ClientView {
        anchor: format!("client-{i}"),
        ip: c.ip.to_string(),
        identity: &c.identity,
        ja3: &c.ja3,
        ja4: &c.ja4,
        worst,
        timeline,
    }
}

/// A page saying what went wrong with the template (a bug: the tests render every capture).
fn template_error(e: &minijinja::Error) -> String {
    let text = e.to_string().replace('&', "&amp;").replace('<', "&lt;");
    format!("<!doctype html><title>chainsniff</title><p>template error: {text}</p>\n")
}
