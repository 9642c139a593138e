//! Notes on how a handshake was captured (gaps, the snap length, malformed records, skipped
//! messages, eviction, a flight cut short): typed values with stable JSON kinds, and their
//! words, in one place.

use serde::{Deserialize, Serialize};

use crate::flow::EvictReason;
use crate::model::{FramePlace, Side, local_frame};
use crate::pki::Status;
use crate::tls::handshake::{EventKind, Handshake};

/// What a note is about (`notes[].kind` in the JSON report; docs/report.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// A TLS 1.2 renegotiation, decrypted with the key log of the handshake before it.
    Renegotiation,
    /// Bytes of the connection are missing from the capture.
    Gap,
    /// Bytes were cut by the capture's snap length.
    SnapLength,
    /// A record or message did not parse.
    MalformedRecord,
    /// A handshake message was larger than `--max-handshake-bytes` and skipped.
    OversizedMessage,
    /// chainsniff stopped following the connection (flow table full, or idle).
    Evicted,
    /// The server's Certificate message was too large to keep: the chain cannot be judged.
    CertificateSkipped,
    /// The connection was evicted before the server's certificate flight.
    EvictedBeforeCertificate,
    /// The server's certificate flight was cut (a gap, the snap length, the capture's end).
    CertificateFlightCut,
    /// The capture ends before the server's certificate flight.
    CaptureEnded,
}

/// One note on a handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// What the note is about.
    pub kind: NoteKind,
    /// The frame it is about, Wireshark's number in `capture` (else in the handshake's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// The file of a joined capture `frame` is in, when not the handshake's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<usize>,
    /// The note in words, as the text report prints it.
    pub text: String,
}

impl Note {
    fn at(kind: NoteKind, frame: u64, place: FramePlace, text: String) -> Self {
        let capture = place.capture_of(frame);
        Note {
            kind,
            frame: Some(local_frame(frame)),
            capture: (capture != place.capture).then_some(capture),
            text,
        }
    }

    fn about(kind: NoteKind, text: &str) -> Self {
        Note {
            kind,
            frame: None,
            capture: None,
            text: text.to_string(),
        }
    }
}

/// The notes on `hs`, whose status is `status`, in the order of its events.
pub fn notes(hs: &Handshake, status: Status, place: FramePlace) -> Vec<Note> {
    let mut notes = Vec::new();
    if let Some(r) = hs.renegotiation.as_ref().filter(|r| r.unseen.is_none()) {
        notes.push(Note::at(
            NoteKind::Renegotiation,
            r.at.frame,
            place,
            format!(
                "a TLS 1.2 renegotiation: its messages travelled encrypted under the keys of the handshake whose ClientHello is in frame {}, and were decrypted with that handshake's CLIENT_RANDOM line in the key log",
                place.text(r.of.frame)
            ),
        ));
    }
    for e in &hs.events {
        let (frame, side) = (e.at.frame, side_name(e.side));
        let text = place.text(frame);
        match &e.kind {
            EventKind::Gap { len, snaplen: true } => notes.push(Note::at(
                NoteKind::SnapLength,
                frame,
                place,
                format!("{len} bytes from the {side} in frame {text} were cut by the capture's snap length"),
            )),
            EventKind::Gap { len, snaplen: false } => notes.push(Note::at(
                NoteKind::Gap,
                frame,
                place,
                format!("{len} bytes from the {side} missing from the capture before frame {text}"),
            )),
            EventKind::Malformed(m) => notes.push(Note::at(
                NoteKind::MalformedRecord,
                frame,
                place,
                format!("frame {text}: {m}"),
            )),
            EventKind::Oversized {
                msg_type,
                len,
                limit,
            } => notes.push(Note::at(
                NoteKind::OversizedMessage,
                frame,
                place,
                format!(
                    "frame {text}: the {} message declares {len} bytes, more than --max-handshake-bytes {limit}; it was skipped (raise the limit to read it)",
                    handshake_type_name(*msg_type)
                ),
            )),
            _ => {}
        }
    }
    if let Some(ev) = hs.evicted {
        let why = match ev.reason {
            EvictReason::FlowTableFull => "more conversations were open than --max-flows",
            EvictReason::Idle => "nothing was seen on it for 10 minutes",
        };
        notes.push(Note::at(
            NoteKind::Evicted,
            ev.at.frame,
            place,
            format!(
                "chainsniff stopped following this connection at frame {}: {why}",
                place.text(ev.at.frame)
            ),
        ));
    }
    if status == Status::Truncated {
        notes.push(if super::status::certificate_skipped(hs) {
            Note::about(
                NoteKind::CertificateSkipped,
                "the server's Certificate message was too large to keep; the chain cannot be judged",
            )
        } else if hs.evicted.is_some() && !hs.server_cut {
            Note::about(
                NoteKind::EvictedBeforeCertificate,
                "the connection was evicted before the server's certificate flight; the chain cannot be judged",
            )
        } else if hs.server_cut {
            Note::about(
                NoteKind::CertificateFlightCut,
                "the server's certificate flight was cut (a gap, the snap length or the end of the capture); the chain cannot be judged",
            )
        } else {
            Note::about(
                NoteKind::CaptureEnded,
                "the capture ends before the server's certificate flight; the chain cannot be judged",
            )
        });
    }
    notes
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

/// The name of a handshake message type, as in RFC 8446 (or its number).
pub fn handshake_type_name(t: u8) -> String {
    match t {
        1 => "ClientHello".into(),
        2 => "ServerHello".into(),
        4 => "NewSessionTicket".into(),
        8 => "EncryptedExtensions".into(),
        11 => "Certificate".into(),
        12 => "ServerKeyExchange".into(),
        13 => "CertificateRequest".into(),
        14 => "ServerHelloDone".into(),
        15 => "CertificateVerify".into(),
        16 => "ClientKeyExchange".into(),
        20 => "Finished".into(),
        22 => "CertificateStatus".into(),
        _ => format!("handshake type {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_list_every_note_kind() {
        let docs = include_str!("../../docs/report.md");
        for kind in [
            NoteKind::Renegotiation,
            NoteKind::Gap,
            NoteKind::SnapLength,
            NoteKind::MalformedRecord,
            NoteKind::OversizedMessage,
            NoteKind::Evicted,
            NoteKind::CertificateSkipped,
            NoteKind::EvictedBeforeCertificate,
            NoteKind::CertificateFlightCut,
            NoteKind::CaptureEnded,
        ] {
            let name = serde_json::to_string(&kind).unwrap();
            let row = format!("| `{}` |", name.trim_matches('"'));
            assert!(
                docs.contains(&row),
                "docs/report.md lacks the note kind {row}"
            );
        }
    }
}
