//! `--format markdown`: the report for a ticket or a wiki page. Tables of the captures, the
//! groups, each chain variant's certificates and client handshakes, and the clients; the
//! problems and findings as lists. Every value from the wire is escaped for Markdown, so a
//! certificate name cannot add markup.

use std::fmt::Write as _;

use super::{
    Row, Style, aia_text, capture_kind, clean, clients_to_show, counted, counts, group_name,
    joined, link_text, more_clients, reaction_text, server_title, severity_word, short,
    verdict_line, who,
};
use crate::pki::Finding;
use crate::report::{ChainVariant, ClientReport, Report, ServerReport};

/// The head of a table of client handshakes (a row each: [`client_row`]).
const CLIENT_TABLE: &str = "| client | tcp.stream | ClientHello | Certificate | version | client reaction |\n|---|---|---|---|---|---|\n";

/// Writes the Markdown report to `w` (the style changes nothing: Markdown is not wrapped or
/// colored).
pub fn write(r: &Report, w: &mut dyn std::io::Write, _style: &Style) -> std::io::Result<()> {
    let mut o = String::new();
    head(&mut o, r);
    groups(&mut o, r);
    for s in &r.servers {
        server(&mut o, r, s);
    }
    clients(&mut o, r);
    w.write_all(o.as_bytes())?;
    w.flush()
}

/// The title, the counts, the captures' table and the problems.
fn head(o: &mut String, r: &Report) {
    let s = &r.summary;
    let _ = writeln!(o, "# chainsniff report\n");
    let _ = writeln!(
        o,
        "{} · {}, {}, {}, {}, {}\n",
        r.generator,
        counted(s.captures, "capture"),
        counted(s.frames, "frame"),
        counted(s.handshakes, "TLS handshake"),
        counted(s.servers, "server"),
        counted(s.clients, "client")
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
            md(&c
                .joined
                .iter()
                .map(|j| {
                    let with: Vec<String> = j.captures.iter().map(|c| format!("[{c}]")).collect();
                    format!(
                        "joined: read as one capture with {} ({})",
                        with.join(" "),
                        j.how.replace('_', " ")
                    )
                })
                .chain(c.summary.warnings.iter().map(|w| w.text.clone()))
                .collect::<Vec<_>>()
                .join("; "))
        );
    }
    o.push_str("\n## Problems\n\n");
    if s.headlines.is_empty() {
        o.push_str("No chain problems found.\n");
    }
    for h in &s.headlines {
        let _ = writeln!(o, "- {}", md(h));
    }
}

/// `--group-by`: a table row per group, if asked.
fn groups(o: &mut String, r: &Report) {
    let Some(g) = &r.groups else { return };
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

/// A server: its findings, its chain variants, the handshakes that saw no chain.
fn server(o: &mut String, r: &Report, server: &ServerReport) {
    let _ = writeln!(o, "\n## Server {}\n", md(&server_title(server)));
    for f in &server.findings {
        finding(o, f);
    }
    for v in &server.variants {
        variant(o, r, v);
    }
    for (status, ids) in &server.without_chain {
        let _ = writeln!(o, "\n### No chain seen ({status})\n");
        o.push_str(CLIENT_TABLE);
        for id in ids {
            client_row(o, r, &Row::from(&r.handshakes.get(*id)));
        }
    }
}

/// A chain variant: its verdict, the certificates sent, the path, the findings and the client
/// handshakes that got it.
fn variant(o: &mut String, r: &Report, v: &ChainVariant) {
    let _ = writeln!(
        o,
        "\n### Chain {} ({}): {}\n",
        v.id,
        counted(v.clients.len(), "handshake"),
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
            finding(o, f);
        }
    }
    o.push('\n');
    o.push_str(CLIENT_TABLE);
    for c in &v.clients {
        client_row(o, r, &Row::from(&c));
    }
}

/// The clients' table (the first [`super::MAX_CLIENTS_LISTED`]), if there are clients.
fn clients(o: &mut String, r: &Report) {
    if r.clients.is_empty() {
        return;
    }
    o.push_str("\n## Clients\n\n| client | MAC | vendor | DHCP host name | DHCP vendor class | DHCP options requested | DNS names | JA4 | handshakes |\n|---|---|---|---|---|---|---|---|---|\n");
    let (shown, more) = clients_to_show(r);
    for c in shown {
        identity_row(o, &c);
    }
    if more > 0 {
        let _ = writeln!(o, "\n{}", md(&more_clients(more)));
    }
}

/// A client's row: who it is (MAC, vendor, DHCP, DNS names, JA4) and what it got.
fn identity_row(o: &mut String, c: &ClientReport) {
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

/// A finding as a list item, its AIA, fix and evidence as sub-items.
fn finding(o: &mut String, f: &Finding) {
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

/// A client handshake as a table row.
fn client_row(o: &mut String, r: &Report, h: &Row<'_>) {
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
