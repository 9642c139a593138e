//! Stage 6: diagnoses to the report model.
//!
//! One [`Report`] holds everything; the text, Markdown and JSON printers in [`crate::render`]
//! are views of it. The JSON form is the report itself (`"schema": "chainsniff/1"`), documented
//! in docs/report.md.

//! The stage's files, in the order data goes through them: `handshake` (one handshake's
//! report), `build` (judging the handshakes on helper threads, grouping them in order),
//! `group` (servers, chain variants, clients, counts), `evidence` (streams and display
//! filters for a group of handshakes), `causes` (root causes across servers, the
//! headlines), `model` (the types), `streamed` (the `--format jsonl` lines).

use crate::analysis::CaptureResult;

mod build;
mod causes;
mod evidence;
mod group;
mod handshake;
mod ip_map;
mod model;
mod streamed;

pub use build::{build, build_as};
pub use causes::{
    CaptureCount, Cause, CauseServer, ClientKind, FrameRef, MAX_HEADLINES, more_causes,
};
pub use handshake::handshake_report;
pub use model::*;
pub use streamed::Streamed;

/// The name and version of the JSON report's schema.
pub const SCHEMA: &str = "chainsniff/1";

/// Each capture's name in cause lines: its file name, and for the first file of a joined
/// capture how many files were joined to it ("ring_00001.pcap (and 2 joined files)").
pub fn capture_labels(captures: &[CaptureResult]) -> Vec<String> {
    captures
        .iter()
        .enumerate()
        .map(|(i, c)| match &c.joined {
            Some(j) if j.captures.len() > 1 && j.captures.first() == Some(&i) => format!(
                "{} (and {} joined file{})",
                capture_name(&c.summary.path),
                j.captures.len() - 1,
                if j.captures.len() == 2 { "" } else { "s" }
            ),
            _ => capture_name(&c.summary.path),
        })
        .collect()
}

/// The file name of a capture path, as cause lines name it ("before.pcapng").
pub fn capture_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}
