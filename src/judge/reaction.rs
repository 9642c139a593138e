//! How the client reacted to the server's flight: a fatal alert, a reset or close, or going
//! on. Decided from the events the TLS stage recorded; the TLS stage itself decides nothing.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{At, Side};
use crate::tls::handshake::{Event, EventKind, Handshake, is_tls13};

/// What the client did once the server's certificate (or hello) arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionKind {
    /// The client sent a plaintext alert (e.g. unknown_ca).
    Alert,
    /// The client sent an alert after ChangeCipherSpec (its content is encrypted).
    EncryptedAlert,
    /// The client went on: key exchange, ChangeCipherSpec/Finished, or application data.
    Completed,
    /// The client reset the connection.
    Reset,
    /// The client closed the connection (FIN) without going on.
    Closed,
    /// The server ended the handshake (alert or reset) before the client reacted; over EAP
    /// also an EAP-Failure or RADIUS Access-Reject before the client went on or sent an alert
    /// (`detail` says which): typically a supplicant that gave up on the chain without saying
    /// why, or stopped answering.
    ServerAborted,
    /// Nothing from the client after the server's flight in the capture.
    None,
}

/// Handshakes counted by how their clients reacted: what a report says of the handshakes it
/// does not list one by one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactionCount {
    /// Handshakes counted.
    pub handshakes: usize,
    /// Of them, those whose client gave up ([`ReactionKind::aborted`]).
    pub aborted: usize,
    /// Of them, those whose client went on.
    pub went_on: usize,
}

impl ReactionCount {
    /// Counts one more handshake whose client reacted so.
    pub fn add(&mut self, kind: ReactionKind) {
        self.handshakes += 1;
        self.aborted += usize::from(kind.aborted());
        self.went_on += usize::from(kind == ReactionKind::Completed);
    }

    /// The handshakes of `kinds`, counted.
    pub fn of(kinds: impl Iterator<Item = ReactionKind>) -> Self {
        let mut count = ReactionCount::default();
        kinds.for_each(|k| count.add(k));
        count
    }

    /// These handshakes but those of `some` (counted among them).
    pub fn without(self, some: ReactionCount) -> Self {
        ReactionCount {
            handshakes: self.handshakes.saturating_sub(some.handshakes),
            aborted: self.aborted.saturating_sub(some.aborted),
            went_on: self.went_on.saturating_sub(some.went_on),
        }
    }
}

impl ReactionKind {
    /// The client gave up: an alert, a reset, or a close without going on.
    pub fn aborted(self) -> bool {
        matches!(
            self,
            ReactionKind::Alert
                | ReactionKind::EncryptedAlert
                | ReactionKind::Reset
                | ReactionKind::Closed
        )
    }
}

/// How the client reacted to the server's flight (`client_reaction`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reaction {
    /// What the client did (docs/report.md, "Client reactions").
    pub kind: ReactionKind,
    /// The frame it did it in, Wireshark's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// The capture `frame` is in, when it is not the handshake's (a joined capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<usize>,
    /// When it did it (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Milliseconds from the server's Certificate (or ServerHello) to the reaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// What `delay_ms` is measured from: `certificate` or `server_hello`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_from: Option<Cow<'static, str>>,
    /// The alert's name (`unknown_ca`), for alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The alert's level (`warning`, `fatal`), for an alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_level: Option<String>,
    /// What the client sent that shows it went on, or other detail.
    pub detail: String,
}

impl Handshake {
    /// The moment the client's reaction is measured from: the server's Certificate, else the
    /// last ServerHello, else the ClientHello.
    pub fn reaction_reference(&self) -> Option<At> {
        self.certificate
            .as_ref()
            .map(|c| c.at)
            .or_else(|| self.server_hellos.last().map(|s| s.at))
    }

    /// How the client reacted to the server's flight.
    pub fn client_reaction(&self) -> Reaction {
        let reference = self.reaction_reference();
        // The events recorded after the reference (not those of a later frame number: in a
        // merged capture one direction's frames may all come after the other's).
        let from = if reference.is_some() {
            self.reaction_from as usize
        } else {
            0
        };
        let tls13 = self.version().is_some_and(is_tls13);
        let make = |kind, e: Option<&Event>, detail: String| Reaction {
            kind,
            frame: e.map(|e| e.at.frame),
            capture: None,
            time: e.map(|e| e.at.ts.to_rfc3339()),
            delay_ms: match (e, reference) {
                (Some(e), Some(r)) => Some((e.at.ts.millis_since(r.ts) * 1000.0).round() / 1000.0),
                _ => None,
            },
            delay_from: match (e, reference) {
                (Some(_), Some(_)) if self.certificate.is_some() => Some("certificate".into()),
                (Some(_), Some(_)) => Some("server_hello".into()),
                _ => None,
            },
            alert: None,
            alert_level: None,
            detail,
        };
        for e in self.events.iter().skip(from) {
            if e.side == Side::Server {
                match e.kind {
                    EventKind::Alert {
                        level: 2,
                        description,
                    } => {
                        let mut r = make(
                            ReactionKind::ServerAborted,
                            Some(e),
                            format!(
                                "the server sent alert {}",
                                crate::tls::alert_name(description)
                            ),
                        );
                        r.alert = Some(crate::tls::alert_name(description));
                        r.alert_level = Some("fatal".into());
                        return r;
                    }
                    EventKind::Rst => {
                        return make(
                            ReactionKind::ServerAborted,
                            Some(e),
                            "the server reset the connection".into(),
                        );
                    }
                    EventKind::EapFailure { access_reject } => {
                        return make(
                            ReactionKind::ServerAborted,
                            Some(e),
                            if access_reject {
                                "the authentication failed (Access-Reject) before the client reacted".into()
                            } else {
                                "the authentication failed (EAP-Failure) before the client reacted"
                                    .into()
                            },
                        );
                    }
                    EventKind::EapSuccess => {
                        return make(
                            ReactionKind::Completed,
                            Some(e),
                            "the authentication succeeded: EAP-Success".into(),
                        );
                    }
                    _ => continue,
                }
            }
            match &e.kind {
                EventKind::Alert { level, description } => {
                    let name = crate::tls::alert_name(*description);
                    let mut r = make(ReactionKind::Alert, Some(e), format!("alert {name}"));
                    r.alert = Some(name);
                    r.alert_level = Some(if *level == 2 { "fatal" } else { "warning" }.into());
                    return r;
                }
                EventKind::EncryptedAlert => {
                    return make(
                        ReactionKind::EncryptedAlert,
                        Some(e),
                        "an encrypted alert".into(),
                    );
                }
                EventKind::Finished => {
                    return make(
                        ReactionKind::Completed,
                        Some(e),
                        "Finished, decrypted".into(),
                    );
                }
                EventKind::ClientKeyExchange if !tls13 => {
                    return make(ReactionKind::Completed, Some(e), "ClientKeyExchange".into());
                }
                EventKind::ChangeCipherSpec if !tls13 => {
                    return make(ReactionKind::Completed, Some(e), "ChangeCipherSpec".into());
                }
                EventKind::ApplicationData if tls13 && self.client_encrypted_records >= 2 => {
                    return make(
                        ReactionKind::Completed,
                        Some(e),
                        "encrypted Finished and data, TLS 1.3".into(),
                    );
                }
                EventKind::ApplicationData | EventKind::EncryptedHandshake => {
                    return make(ReactionKind::Completed, Some(e), "application data".into());
                }
                EventKind::Rst => {
                    return make(
                        ReactionKind::Reset,
                        Some(e),
                        "the client reset the connection".into(),
                    );
                }
                EventKind::Fin => {
                    return make(
                        ReactionKind::Closed,
                        Some(e),
                        "the client closed the connection".into(),
                    );
                }
                _ => {}
            }
        }
        make(
            ReactionKind::None,
            None,
            if self.capture_ended {
                "the capture ends before the client reacted".into()
            } else {
                "no reaction from the client was captured".into()
            },
        )
    }
}
