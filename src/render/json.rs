//! `--format json` and `--format jsonl`: the report for programs (schema in docs/report.md).
//! JSON is the whole report, every handshake and client included, streamed through the
//! formatter as it is serialized; JSON lines is a line per handshake as it is decided while the
//! capture is read, then a closing summary line.

use std::io::Write;

use super::Style;
use crate::json::{compact, write_pretty};
use crate::report::{HandshakeReport, Report};

/// Writes the JSON report to `w` as it is serialized (no copy of it in memory). The handshakes
/// are copied out as the report stored them when it kept their JSON
/// ([`crate::report::Records::Json`]), else made from their records (see
/// [`crate::report::HandshakeList`]). The style changes nothing.
pub fn write(r: &Report, w: &mut dyn Write, _style: &Style) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, w);
    let w = &mut out;
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

/// One field of the report's top-level object. The layout is serde_json's pretty one, as if
/// the whole report were serialized at once (a test checks that it is).
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

/// Writes the JSON line of a handshake decided while reading (`--format jsonl`), in one write.
pub fn write_handshake_line(h: &HandshakeReport, w: &mut dyn Write) -> std::io::Result<()> {
    let mut v = serde_json::to_value(h).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), "handshake".into());
    }
    w.write_all(format!("{}\n", compact(&v)).as_bytes())
}

/// Writes the closing JSON line of `--format jsonl`: the summary, captures and servers of the
/// final report, and the lines (by `id`) whose handshake it judges differently.
pub fn write_summary_line(r: &Report, revised: &[usize], w: &mut dyn Write) -> std::io::Result<()> {
    let v = serde_json::json!({
        "type": "summary",
        "revised": revised,
        "schema": r.schema,
        "generator": r.generator,
        "captures": r.captures,
        "trust": r.trust,
        "summary": r.summary,
        "servers": r.servers,
        "clients": r.clients,
    });
    w.write_all(format!("{}\n", compact(&v)).as_bytes())
}
