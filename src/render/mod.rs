//! Stage 7: the report, printed, one file a format: [`text`] (for a terminal or a ticket, 80
//! columns), [`markdown`], [`html`], [`json`] (and JSON lines). Each printer is a view of the
//! same [`Report`] and computes nothing of its own; each is called the same way,
//! `write(report, out, style)`. This file holds what they share: [`clean`] (control characters
//! and bidi overrides made visible), word wrapping, [`Style`], and the wording of verdicts,
//! statuses, reactions and counts.

pub mod html;
pub mod json;
pub mod markdown;
pub mod text;

use crate::judge::{Reaction, ReactionKind};
use crate::pki::{Finding, LinkSource, PathLink, Severity, Status, Verdict};
use crate::report::{HandshakeReport, Report, ServerReport};

/// How a report is printed: with terminal colors or not, and how wide the text is (the text
/// printer uses both; the others print the same whatever the style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// ANSI colors for a terminal (text only).
    pub color: bool,
    /// The column text is word-wrapped to (text only).
    pub width: usize,
    /// Every server and handshake in detail (`--details all`); otherwise (text only) the
    /// [`MAX_SERVERS_DETAILED`] servers with problems first in detail, each chain with its
    /// first [`MAX_HANDSHAKES_LISTED`] handshakes, and the rest as counts.
    pub all_details: bool,
}

/// Servers shown in detail in the text report without `--details all`.
pub const MAX_SERVERS_DETAILED: usize = 20;
/// Handshakes listed per chain variant (and per status without a chain) in the text report
/// without `--details all`.
pub const MAX_HANDSHAKES_LISTED: usize = 20;

impl Default for Style {
    /// No colors, 80 columns, details bounded.
    fn default() -> Self {
        Style {
            color: false,
            width: 80,
            all_details: false,
        }
    }
}

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

impl Style {
    /// Word-wraps `text` to the width, the first line after `first`, the rest indented by
    /// `indent`.
    fn wrap(&self, out: &mut String, first: &str, indent: usize, text: &str) {
        let mut line = first.to_string();
        let mut line_len = first.chars().count();
        let mut empty = true;
        for word in text.split_whitespace() {
            let wlen = word.chars().count();
            if !empty && line_len + 1 + wlen > self.width {
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
}

/// The first 16 hex digits of a SHA-256.
fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

/// What the client did with the chain, and when: "rejected it: fatal alert unknown_ca, frame 9,
/// 1.2 ms after the certificate".
pub fn reaction_text(r: &Reaction) -> String {
    // In another file of a joined capture than the handshake's: "frame 3 of capture [2]".
    let frame = r.frame.map(|f| match r.capture {
        Some(c) => format!("{f} of capture [{c}]"),
        None => f.to_string(),
    });
    let when = match (frame, r.delay_ms) {
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

fn group_name(by: crate::report::GroupBy) -> &'static str {
    use crate::report::GroupBy;
    match by {
        GroupBy::Server => "server",
        GroupBy::Client => "client",
        GroupBy::Fingerprint => "fingerprint (JA4)",
        GroupBy::Vendor => "vendor",
    }
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

/// "1 frame", "2 frames": a number and its noun, singular for one (the nouns the reports count
/// all take an "s").
pub fn counted<N: Copy + PartialEq + From<u8> + std::fmt::Display>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn server_title(s: &ServerReport) -> String {
    match &s.sni {
        Some(sni) => format!("{} (SNI {})", s.server, clean(sni)),
        None => format!("{} (no SNI)", s.server),
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

/// Each capture's file name, as cause lines name them.
fn capture_names(r: &Report) -> Vec<String> {
    crate::report::capture_labels(&r.captures)
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
    /// A renegotiation: the frame of its first record.
    renegotiation_frame: Option<u64>,
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
            renegotiation_frame: h.renegotiation_frame,
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
            renegotiation_frame: None,
        }
    }
}
