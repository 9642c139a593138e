//! The status of a handshake without a chain: resumed, encrypted, cut short, or no
//! certificate at all. (A handshake with a chain gets its status from [`crate::pki`].)

use crate::model::Side;
use crate::pki::Status;
use crate::tls::handshake::{EventKind, Handshake, is_tls13};

/// Whether the handshake resumed a session, so that no certificate was due.
pub fn resumed(hs: &Handshake) -> bool {
    let tls13 = hs.version().is_some_and(is_tls13);
    let (Some(c), Some(s)) = (
        hs.client_hellos.first(),
        hs.server_hellos.iter().rev().find(|s| !s.hello_retry),
    ) else {
        return false;
    };
    // TLS 1.3: the server accepted a pre-shared key (RFC 8446 2.2: no Certificate).
    tls13 && s.psk
        || !tls13 && !s.session_id.is_empty() && s.session_id == c.session_id
        || (!tls13
            && hs.certificate.is_none()
            && hs.server_hello_done.is_none()
            && hs
                .first(Side::Server, |k| *k == EventKind::ChangeCipherSpec)
                .is_some())
}

/// The status of a handshake in which no certificate was seen.
pub fn without_chain(hs: &Handshake, resumed: bool) -> Status {
    if resumed {
        Status::NoCertificate
    } else if hs.version().is_some_and(is_tls13)
        || hs
            .renegotiation
            .as_ref()
            .is_some_and(|r| r.unseen.is_some())
    {
        // Encrypted: TLS 1.3, or a TLS 1.2 renegotiation without the keys to open it.
        Status::NotVisible
    } else if hs.server_cut
        || certificate_skipped(hs)
        || (hs.capture_ended && !server_flight_over(hs))
    {
        Status::Truncated
    } else {
        Status::NoCertificate
    }
}

/// The server's Certificate message was skipped for exceeding `--max-handshake-bytes`.
pub fn certificate_skipped(hs: &Handshake) -> bool {
    hs.certificate.is_none()
        && hs
            .first(Side::Server, |k| {
                matches!(
                    k,
                    EventKind::Oversized {
                        msg_type: 11, // Certificate
                        ..
                    }
                )
            })
            .is_some()
}

/// The server's flight is over when it said ServerHelloDone, changed cipher, or went quiet
/// because the client answered.
fn server_flight_over(hs: &Handshake) -> bool {
    hs.server_hello_done.is_some()
        || hs
            .first(Side::Server, |k| {
                matches!(
                    k,
                    EventKind::ChangeCipherSpec
                        | EventKind::Alert { .. }
                        | EventKind::Fin
                        | EventKind::Rst
                )
            })
            .is_some()
}
