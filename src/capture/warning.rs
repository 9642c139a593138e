//! Warnings on a capture (`captures[].warnings` in the JSON report): typed values with stable
//! JSON kinds and the frame or file offset they are about, and their words, in one place.
//! Readers return them as errors too: the same corruption before the first frame makes the
//! capture unreadable (its words become the one-line error).

use serde::Serialize;

/// What a warning is about (`captures[].warnings[].kind`; docs/report.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The file ends inside a block or record.
    Truncated,
    /// A block or record that cannot be read; the rest of the file was not read.
    CorruptBlock,
    /// The operating system failed to read the file.
    ReadError,
    /// A file format version chainsniff does not read.
    UnsupportedVersion,
    /// A pcapng packet names an interface that was never described.
    UnknownInterface,
    /// A frame whose headers do not decode.
    UndecodableFrame,
    /// More conversations were open than `--max-flows`.
    FlowTableFull,
    /// Conversations idle for longer than the idle window were let go.
    IdleEvicted,
    /// Ended conversations forgotten to bound memory (stream numbers may differ).
    ForgottenConversations,
    /// Handshake messages larger than `--max-handshake-bytes` were skipped.
    OversizedMessages,
    /// A capture of a distributed run whose partial analysis failed: nothing of it is in the
    /// report.
    NotAnalyzed,
    /// Merged from partial analyses: handshakes open at the end of this file depend on what
    /// came before the file before it, so the next file's partial could not go on with them.
    CutBetweenPartials,
}

/// One warning on a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Warning {
    /// What the warning is about.
    pub kind: WarningKind,
    /// The frame it is about (Wireshark's number), if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// The byte offset in the (decompressed) file, if the warning is about the file itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The warning in words, as the text report and standard error print it.
    pub text: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Warning {
    fn new(kind: WarningKind, frame: Option<u64>, offset: Option<u64>, text: String) -> Self {
        Warning {
            kind,
            frame,
            offset,
            text,
        }
    }

    /// The file ends inside the record that starts at `offset`, after `frames` frames.
    pub fn truncated(offset: u64, frames: u64) -> Self {
        Self::new(
            WarningKind::Truncated,
            Some(frames),
            Some(offset),
            format!(
                "the capture is truncated: it ends inside the record that starts at offset {offset}, after frame {frames}"
            ),
        )
    }

    /// A corrupt `what` ("block", "snoop record") at `offset` after frame `frames`; `detail`
    /// says what is wrong with it.
    pub fn corrupt(what: &str, offset: u64, frames: u64, detail: &str) -> Self {
        Self::new(
            WarningKind::CorruptBlock,
            Some(frames),
            Some(offset),
            format!(
                "offset {offset}: corrupt {what} after frame {frames} ({detail}); the rest of the file was not read"
            ),
        )
    }

    /// A pcapng block larger than `max_mib` MiB at `offset`, after `frames` frames.
    pub fn oversized_block(offset: u64, frames: u64, max_mib: usize) -> Self {
        Self::new(
            WarningKind::CorruptBlock,
            Some(frames),
            Some(offset),
            format!(
                "offset {offset}: a block larger than {max_mib} MiB; the file is corrupt from here on, {} read before it",
                crate::render::counted(frames, "frame")
            ),
        )
    }

    /// Reading the file failed at `offset`.
    pub fn read_error(offset: u64, error: &dyn std::fmt::Display) -> Self {
        Self::new(
            WarningKind::ReadError,
            None,
            Some(offset),
            format!("read error at offset {offset}: {error}"),
        )
    }

    /// A format version not read: `what` names it ("snoop version 1"), `read` says what is
    /// read instead and what to do.
    pub fn unsupported_version(offset: u64, what: &str, read: &str) -> Self {
        Self::new(
            WarningKind::UnsupportedVersion,
            None,
            Some(offset),
            format!("offset {offset}: {what}; {read}"),
        )
    }

    /// Frame `frame` at `offset` names pcapng interface `interface`, never described (`None`:
    /// a simple packet block in a file without interfaces).
    pub fn unknown_interface(frame: u64, offset: u64, interface: Option<u32>) -> Self {
        let text = match interface {
            Some(i) => format!(
                "frame {frame} (offset {offset}): packet names interface {i} which was never described; frame skipped"
            ),
            None => format!(
                "frame {frame} (offset {offset}): simple packet block without an interface; frame skipped"
            ),
        };
        Self::new(
            WarningKind::UnknownInterface,
            Some(frame),
            Some(offset),
            text,
        )
    }

    /// Frame `frame` does not decode (`error` says why).
    pub fn undecodable(frame: u64, error: &dyn std::fmt::Display) -> Self {
        Self::new(
            WarningKind::UndecodableFrame,
            Some(frame),
            None,
            format!("frame {frame}: {error}; skipped"),
        )
    }

    /// `more` undecodable frames beyond those listed.
    pub fn more_undecodable(more: u64) -> Self {
        Self::new(
            WarningKind::UndecodableFrame,
            None,
            None,
            format!("{more} more undecodable frames not listed"),
        )
    }

    /// More than `max_flows` `what` ("TCP") conversations were open from frame `from` on;
    /// `evicted` were let go.
    pub fn flow_table_full(what: &str, max_flows: usize, from: u64, evicted: u64) -> Self {
        Self::new(
            WarningKind::FlowTableFull,
            Some(from),
            None,
            format!(
                "more than --max-flows {max_flows} {what} conversations were open at once from frame {from} on: the {evicted} least recently active were evicted and reported as they stood (raise --max-flows)"
            ),
        )
    }

    /// `count` `what` conversations idle for more than `secs` seconds were let go.
    pub fn idle_evicted(what: &str, count: u64, secs: i64) -> Self {
        Self::new(
            WarningKind::IdleEvicted,
            None,
            None,
            format!(
                "{} idle for more than {secs} s of capture time {} evicted and reported as {} stood",
                crate::render::counted(count, &format!("{what} conversation")),
                if count == 1 { "was" } else { "were" },
                if count == 1 { "it" } else { "they" }
            ),
        )
    }

    /// `count` ended `what` conversations were forgotten to bound memory.
    pub fn forgotten(what: &str, count: u64) -> Self {
        Self::new(
            WarningKind::ForgottenConversations,
            None,
            None,
            format!(
                "{} {} forgotten to bound memory: a later packet of {} would get a new stream index, unlike Wireshark",
                crate::render::counted(count, &format!("ended {what} conversation")),
                if count == 1 { "was" } else { "were" },
                if count == 1 { "it" } else { "one of them" }
            ),
        )
    }

    /// `count` handshake messages were larger than `limit` bytes and skipped.
    pub fn oversized_messages(count: u64, limit: usize) -> Self {
        Self::new(
            WarningKind::OversizedMessages,
            None,
            None,
            format!(
                "{count} handshake messages were larger than --max-handshake-bytes {limit} and skipped (see the handshakes' notes)"
            ),
        )
    }
}

impl Warning {
    /// A capture whose analysis failed with `error` (`chainsniff analyze --partial` recorded
    /// the failure): it is named in the report, with nothing read from it.
    pub fn not_analyzed(error: &str) -> Self {
        Self::new(
            WarningKind::NotAnalyzed,
            None,
            None,
            format!("not analyzed, nothing of it is in this report: {error}"),
        )
    }

    /// Merged from partial analyses made `--after` the file before: `count` handshakes open at
    /// the end of this file depend on what came before the file before it.
    pub fn cut_between_partials(count: usize) -> Self {
        let (n, were) = if count == 1 {
            ("1 handshake".to_string(), "was")
        } else {
            (format!("{count} handshakes"), "were")
        };
        Self::new(
            WarningKind::CutBetweenPartials,
            None,
            None,
            format!(
                "{n} open at the end of this file {were} not followed exactly into the next: merged from partial analyses, each file read --after the one before, and these depend on what came before that file (they began earlier, or their ClientHello was not captured), so they are reported as this file's partial left them (analyze the files together, or make the ring buffer's files longer than the slowest handshake, to follow them to their end)"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_list_every_warning_kind() {
        let docs = include_str!("../../docs/report.md");
        for kind in [
            WarningKind::Truncated,
            WarningKind::CorruptBlock,
            WarningKind::ReadError,
            WarningKind::UnsupportedVersion,
            WarningKind::UnknownInterface,
            WarningKind::UndecodableFrame,
            WarningKind::FlowTableFull,
            WarningKind::IdleEvicted,
            WarningKind::ForgottenConversations,
            WarningKind::OversizedMessages,
            WarningKind::NotAnalyzed,
            WarningKind::CutBetweenPartials,
        ] {
            let name = serde_json::to_string(&kind).unwrap();
            let row = format!("| `{}` |", name.trim_matches('"'));
            assert!(
                docs.contains(&row),
                "docs/report.md lacks the warning kind {row}"
            );
        }
    }

    #[test]
    fn a_warning_in_json_has_its_kind_place_and_words() {
        let w = Warning::truncated(10432, 68);
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({
                "kind": "truncated", "frame": 68, "offset": 10432,
                "text": "the capture is truncated: it ends inside the record that starts at offset 10432, after frame 68"
            })
        );
    }
}
