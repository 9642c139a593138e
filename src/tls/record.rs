//! Stage 4a: stream bytes to TLS records and handshake messages, one direction at a time.
//!
//! TLS is recognized by content, on any port: a direction whose first bytes are a TLS record
//! header is TLS; one that starts with something else (a STARTTLS dialogue, a proxy CONNECT) is
//! watched, at segment boundaries, for a record header that opens a handshake. Handshake
//! messages are reassembled across records (and so across segments), and several messages in
//! one record are split. Nothing is allocated while records and messages arrive whole; a record
//! or message that spans deliveries is buffered (up to [`MAX_HANDSHAKE`]).

/// TLS record content types.
pub const CHANGE_CIPHER_SPEC: u8 = 20;
/// The alert content type.
pub const ALERT: u8 = 21;
/// The handshake content type.
pub const HANDSHAKE: u8 = 22;
/// The application-data content type.
pub const APPLICATION_DATA: u8 = 23;
/// The heartbeat content type (RFC 6520).
pub const HEARTBEAT: u8 = 24;

/// Largest record body accepted: 2^14 plus the 2048 bytes of expansion TLS 1.2 allows.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// Largest handshake message buffered by default (`--max-handshake-bytes`; a certificate flight
/// is a few KiB; 2^24 is the format's limit).
pub const MAX_HANDSHAKE: usize = 1 << 20;
/// How many bytes of a plaintext prelude are kept to name the upgrade.
const PRELUDE_HEAD: usize = 512;
/// How far into a non-TLS direction to look for a STARTTLS upgrade before giving up.
const MAX_PRELUDE: u64 = 256 << 10;

/// What a direction's bytes yielded.
#[derive(Debug)]
pub enum TlsEvent<'a> {
    /// A complete plaintext handshake message: its type and body (header stripped).
    Handshake {
        /// The handshake message type (1 ClientHello, 2 ServerHello, 11 Certificate, ...).
        msg_type: u8,
        /// The message body.
        body: &'a [u8],
    },
    /// A handshake record after ChangeCipherSpec (encrypted Finished and what follows): its
    /// 5-byte header and body (both empty where the datagram layer does not give them).
    EncryptedHandshake {
        /// The record header.
        header: &'a [u8],
        /// The record body.
        body: &'a [u8],
    },
    /// A ChangeCipherSpec record.
    ChangeCipherSpec,
    /// A plaintext alert.
    Alert {
        /// The alert level (1 warning, 2 fatal).
        level: u8,
        /// The alert description (RFC 8446 6).
        description: u8,
    },
    /// An alert record after ChangeCipherSpec: its content is encrypted (header and body as
    /// for `EncryptedHandshake`).
    EncryptedAlert {
        /// The record header.
        header: &'a [u8],
        /// The record body.
        body: &'a [u8],
    },
    /// An application-data record: its 5-byte header and (encrypted) body.
    ApplicationData {
        /// The record header.
        header: &'a [u8],
        /// The record body.
        body: &'a [u8],
    },
    /// A heartbeat record (RFC 6520).
    Heartbeat,
    /// A handshake message larger than the direction's limit was skipped.
    Oversized {
        /// The handshake message type.
        msg_type: u8,
        /// The length the message declared.
        len: usize,
    },
    /// Bytes that are not TLS where a record was expected; the direction resynchronizes.
    Malformed(&'static str),
    /// An SSLv2-compatible ClientHello (old clients).
    Sslv2ClientHello {
        /// The SSLv2 record's body.
        body: &'a [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet.
    Start,
    /// Inside TLS records.
    Records,
    /// Not (or no longer) aligned on records: look for a record header at each delivery.
    Searching,
    /// Gave up: too much non-TLS prelude.
    Off,
}

/// The parser of one direction of one connection.
#[derive(Debug)]
pub struct TlsDirection {
    mode: Mode,
    /// Bytes of a record not yet complete.
    record_buf: Vec<u8>,
    /// Fragments of a handshake message not yet complete.
    hs_buf: Vec<u8>,
    /// Set when the handshake message being assembled is larger than we keep.
    hs_skip: usize,
    after_ccs: bool,
    /// TLS 1.3 (or a HelloRetryRequest): handshake records stay plaintext after a
    /// (middlebox-compatibility) ChangeCipherSpec; encrypted ones are application data.
    tls13: bool,
    /// Bytes seen before TLS started (STARTTLS prelude) or while searching.
    prelude: u64,
    /// The first bytes of a plaintext prelude (to name the upgrade: SMTP, IMAP, ...).
    pub prelude_head: Vec<u8>,
    /// Whether the direction has ever been seen as TLS.
    pub is_tls: bool,
    /// Largest handshake message buffered; larger ones are skipped ([`TlsEvent::Oversized`]).
    pub max_handshake: usize,
    /// A handshake record was seen in this direction.
    handshake_seen: bool,
    /// The owner may still open application data records (see [`TlsDirection::want_bodies`]).
    bodies_wanted: bool,
    /// Bytes still to pass of an application data record whose body is not kept (its header
    /// waits in `record_buf`).
    opaque_left: usize,
}

impl Default for TlsDirection {
    fn default() -> Self {
        TlsDirection {
            mode: Mode::Start,
            record_buf: Vec::new(),
            hs_buf: Vec::new(),
            hs_skip: 0,
            after_ccs: false,
            tls13: false,
            prelude: 0,
            prelude_head: Vec::new(),
            max_handshake: MAX_HANDSHAKE,
            is_tls: false,
            handshake_seen: false,
            bodies_wanted: true,
            opaque_left: 0,
        }
    }
}

/// True when `b` starts with something that looks like a TLS record header.
fn looks_like_record(b: &[u8]) -> bool {
    b.len() >= 5
        && (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&b[0])
        && b[1] == 3
        && b[2] <= 4
        && (u16::from_be_bytes([b[3], b[4]]) as usize) <= MAX_RECORD
}

/// SSLv2 record header with a CLIENT-HELLO (msg type 1) and a 3.x or 2.0 version.
fn looks_like_sslv2_hello(b: &[u8]) -> bool {
    b.len() >= 5 && b[0] & 0x80 != 0 && b[2] == 1 && (b[3] == 3 || (b[3] == 0 && b[4] == 2))
}

impl TlsDirection {
    /// True while the direction is still being read as (or searched for) TLS.
    pub fn active(&self) -> bool {
        self.mode != Mode::Off
    }

    /// Marks the connection as TLS 1.3 (see the `tls13` field).
    pub fn set_tls13(&mut self) {
        self.tls13 = true;
    }

    /// Feeds the plaintext of a decrypted TLS 1.3 record (its inner content type and content).
    /// Use a `TlsDirection` of its own for decrypted content: messages are reassembled across
    /// decrypted records as across plaintext ones.
    pub fn feed_decrypted(
        &mut self,
        content_type: u8,
        plain: &[u8],
        emit: &mut impl FnMut(TlsEvent<'_>),
    ) {
        self.is_tls = true;
        match content_type {
            HANDSHAKE => self.handshake_fragment(plain, emit),
            ALERT if plain.len() == 2 => emit(TlsEvent::Alert {
                level: plain[0],
                description: plain[1],
            }),
            _ => {}
        }
    }

    /// True when part of a record or handshake message is waiting for more bytes.
    pub fn has_partial(&self) -> bool {
        !self.record_buf.is_empty() || !self.hs_buf.is_empty() || self.hs_skip > 0
    }

    /// Whether the direction has begun a handshake: a handshake record seen, or one begun.
    /// Until then its bytes are a plaintext prelude, a search for records, or the records
    /// of a connection seen from its middle.
    pub fn handshake_begun(&self) -> bool {
        self.handshake_seen || self.record_buf.first() == Some(&HANDSHAKE)
    }

    /// Says whether the owner may open this direction's application data records (it has
    /// keys for them); until it says so again, a handshake or ChangeCipherSpec record (which
    /// may bring keys) counts as yes.
    pub fn want_bodies(&mut self, wanted: bool) {
        self.bodies_wanted = wanted;
    }

    /// Whether the body of an application data record with this header is passed over
    /// rather than kept: so it is before the direction's first handshake record, or when the
    /// owner has no keys for it. Such records are a connection seen from its middle (the
    /// capture began after its handshake), or application data that no key log opens; they
    /// are the bulk of a span port's bytes, and only their headers count. (A direction's
    /// records that a key log may open all come after its hello: the client's early data
    /// after its ClientHello, the server's after its ServerHello.)
    fn passes_over(&self, header: &[u8]) -> bool {
        header[0] == APPLICATION_DATA && (!self.handshake_seen || !self.bodies_wanted)
    }

    /// The capture lost bytes of this direction: drop partial state and resynchronize.
    pub fn gap(&mut self) {
        self.record_buf.clear();
        self.opaque_left = 0;
        self.hs_buf.clear();
        self.hs_skip = 0;
        if self.mode == Mode::Records {
            self.mode = Mode::Searching;
        }
    }

    /// Feeds in-order bytes; calls `emit` for every event, in order.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(TlsEvent<'_>)) {
        if data.is_empty() {
            return;
        }
        match self.mode {
            Mode::Off => return,
            Mode::Records => {}
            Mode::Start | Mode::Searching => {
                let start = self.mode == Mode::Start;
                let opens = if self.is_tls {
                    // Resynchronizing after a gap: any record header will do.
                    looks_like_record(data)
                } else {
                    // Plaintext never starts with a record header; after a plaintext prelude
                    // only a handshake or an alert opens TLS.
                    (looks_like_record(data) && (start || matches!(data[0], ALERT | HANDSHAKE)))
                        || (start && data.len() < 5 && looks_like_record_prefix(data))
                };
                if opens {
                    self.mode = Mode::Records;
                } else if start && looks_like_sslv2_hello(data) {
                    let len = (((data[0] & 0x7f) as usize) << 8) | data[1] as usize;
                    let end = (2 + len).min(data.len());
                    self.is_tls = true;
                    emit(TlsEvent::Sslv2ClientHello {
                        body: &data[2..end],
                    });
                    self.mode = Mode::Records;
                    data = &data[end..];
                } else {
                    self.prelude += data.len() as u64;
                    if !self.is_tls && self.prelude_head.len() < PRELUDE_HEAD {
                        let take = (PRELUDE_HEAD - self.prelude_head.len()).min(data.len());
                        self.prelude_head.extend_from_slice(&data[..take]);
                    }
                    self.mode = if self.prelude > MAX_PRELUDE {
                        Mode::Off
                    } else {
                        Mode::Searching
                    };
                    return;
                }
            }
        }
        self.records(data, emit);
    }

    fn records(&mut self, mut data: &[u8], emit: &mut impl FnMut(TlsEvent<'_>)) {
        while !data.is_empty() {
            if self.opaque_left > 0 {
                // Passing over a record's body (see `passes_over`): it ends as if it were
                // empty.
                let n = self.opaque_left.min(data.len());
                self.opaque_left -= n;
                data = &data[n..];
                if self.opaque_left > 0 {
                    return;
                }
                let mut header = std::mem::take(&mut self.record_buf);
                self.record(&header[..5], &[], emit);
                header.clear();
                self.record_buf = header;
                if self.mode != Mode::Records {
                    return;
                }
                continue;
            }
            if !self.record_buf.is_empty() {
                // Complete the record left over from an earlier delivery.
                if self.record_buf.len() < 5 {
                    let take = (5 - self.record_buf.len()).min(data.len());
                    self.record_buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.record_buf.len() < 5 {
                        return;
                    }
                    if !looks_like_record(&self.record_buf) {
                        self.desync(emit);
                        return;
                    }
                    let len = record_len(&self.record_buf);
                    if len > 0 && self.passes_over(&self.record_buf) {
                        self.opaque_left = len;
                        continue;
                    }
                }
                let total = record_len(&self.record_buf) + 5;
                let take = (total - self.record_buf.len()).min(data.len());
                self.record_buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.record_buf.len() < total {
                    return;
                }
                let mut rec = std::mem::take(&mut self.record_buf);
                self.record(&rec[..5], &rec[5..], emit);
                rec.clear();
                self.record_buf = rec;
                if self.mode != Mode::Records {
                    return;
                }
                continue;
            }
            // Whole records straight from the delivery, without copying.
            if data.len() < 5 {
                if looks_like_record_prefix(data) {
                    self.record_buf.extend_from_slice(data);
                } else {
                    self.desync(emit);
                }
                return;
            }
            if !looks_like_record(data) {
                self.desync(emit);
                return;
            }
            let len = record_len(data);
            if data.len() < 5 + len {
                if self.passes_over(data) {
                    self.record_buf.extend_from_slice(&data[..5]);
                    self.opaque_left = 5 + len - data.len();
                } else {
                    self.record_buf.extend_from_slice(data);
                }
                return;
            }
            self.record(&data[..5], &data[5..5 + len], emit);
            if self.mode != Mode::Records {
                return;
            }
            data = &data[5 + len..];
        }
    }

    fn desync(&mut self, emit: &mut impl FnMut(TlsEvent<'_>)) {
        emit(TlsEvent::Malformed("bytes that are not a TLS record"));
        self.gap();
        self.mode = Mode::Searching;
    }

    fn record(&mut self, header: &[u8], body: &[u8], emit: &mut impl FnMut(TlsEvent<'_>)) {
        let content_type = header[0];
        self.is_tls = true;
        self.handshake_seen |= content_type == HANDSHAKE;
        self.bodies_wanted |= matches!(content_type, HANDSHAKE | CHANGE_CIPHER_SPEC);
        match content_type {
            CHANGE_CIPHER_SPEC => {
                self.after_ccs = true;
                emit(TlsEvent::ChangeCipherSpec);
            }
            ALERT if (self.after_ccs && !self.tls13) || body.len() != 2 => {
                emit(TlsEvent::EncryptedAlert { header, body })
            }
            ALERT => emit(TlsEvent::Alert {
                level: body[0],
                description: body[1],
            }),
            HANDSHAKE if self.after_ccs && !self.tls13 => {
                emit(TlsEvent::EncryptedHandshake { header, body })
            }
            HANDSHAKE => self.handshake_fragment(body, emit),
            APPLICATION_DATA => emit(TlsEvent::ApplicationData { header, body }),
            _ => emit(TlsEvent::Heartbeat),
        }
    }

    fn handshake_fragment(&mut self, mut body: &[u8], emit: &mut impl FnMut(TlsEvent<'_>)) {
        while !body.is_empty() {
            if self.hs_skip > 0 {
                let n = self.hs_skip.min(body.len());
                self.hs_skip -= n;
                body = &body[n..];
                continue;
            }
            if !self.hs_buf.is_empty() {
                // Complete the message left over from earlier records.
                if self.hs_buf.len() < 4 {
                    let take = (4 - self.hs_buf.len()).min(body.len());
                    self.hs_buf.extend_from_slice(&body[..take]);
                    body = &body[take..];
                    if self.hs_buf.len() < 4 {
                        return;
                    }
                    let len = msg_len(&self.hs_buf);
                    if len > self.max_handshake {
                        emit(TlsEvent::Oversized {
                            msg_type: self.hs_buf[0],
                            len,
                        });
                        self.hs_skip = len;
                        self.hs_buf.clear();
                        continue;
                    }
                }
                let total = msg_len(&self.hs_buf) + 4;
                let take = (total - self.hs_buf.len()).min(body.len());
                self.hs_buf.extend_from_slice(&body[..take]);
                body = &body[take..];
                if self.hs_buf.len() < total {
                    return;
                }
                let mut msg = std::mem::take(&mut self.hs_buf);
                emit(TlsEvent::Handshake {
                    msg_type: msg[0],
                    body: &msg[4..],
                });
                msg.clear();
                self.hs_buf = msg;
                continue;
            }
            if body.len() < 4 {
                self.hs_buf.extend_from_slice(body);
                return;
            }
            let len = msg_len(body);
            if len > self.max_handshake {
                emit(TlsEvent::Oversized {
                    msg_type: body[0],
                    len,
                });
                self.hs_skip = len;
                body = &body[4..];
                continue;
            }
            if body.len() < 4 + len {
                self.hs_buf.extend_from_slice(body);
                return;
            }
            emit(TlsEvent::Handshake {
                msg_type: body[0],
                body: &body[4..4 + len],
            });
            body = &body[4 + len..];
        }
    }
}

fn record_len(h: &[u8]) -> usize {
    u16::from_be_bytes([h[3], h[4]]) as usize
}

fn msg_len(h: &[u8]) -> usize {
    ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize
}

fn looks_like_record_prefix(b: &[u8]) -> bool {
    match b {
        [] => true,
        [t, rest @ ..] => {
            (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(t)
                && rest.first().is_none_or(|&v| v == 3)
                && rest.get(1).is_none_or(|&v| v <= 4)
        }
    }
}

/// The RFC name of an alert description (`unknown_ca`), or its number.
pub fn alert_name(description: u8) -> String {
    let name = match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        other => return format!("alert_{other}"),
    };
    name.to_string()
}

/// Names the plaintext protocol that upgraded to TLS, from the first bytes each side sent before
/// the handshake (`client`, `server`): `smtp-starttls`, `imap-starttls`, `pop3-stls`,
/// `ftp-auth-tls`, `xmpp-starttls`, `ldap-starttls`, `postgresql-sslrequest`, `mysql-ssl`,
/// `irc-starttls`, `socks`, `http-connect`, or `unknown-prelude`.
pub fn upgrade_name(client: &[u8], server: &[u8]) -> Option<&'static str> {
    if client.is_empty() && server.is_empty() {
        return None;
    }
    let upper = |b: &[u8]| String::from_utf8_lossy(b).to_ascii_uppercase();
    let (c, s) = (upper(client), upper(server));
    let name = if client.starts_with(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]) {
        "postgresql-sslrequest"
    } else if client.first() == Some(&0x30)
        && client.windows(22).any(|w| w == b"1.3.6.1.4.1.1466.20037")
    {
        "ldap-starttls"
    } else if server.len() > 4 && server[3] == 0 && server[4] == 0x0a {
        // A MySQL greeting: 3-byte length, sequence 0, protocol version 10.
        "mysql-ssl"
    } else if c.starts_with("CONNECT ") {
        "http-connect"
    } else if matches!(client.first(), Some(4 | 5)) && client.len() < 64 {
        "socks"
    } else if c.contains("<STREAM:STREAM") || c.starts_with("<?XML") {
        "xmpp-starttls"
    } else if c.starts_with("EHLO") || c.starts_with("HELO") || c.contains("\nEHLO") {
        "smtp-starttls"
    } else if c.starts_with("AUTH TLS") || c.starts_with("AUTH SSL") || c.contains("\nAUTH TLS") {
        "ftp-auth-tls"
    } else if s.starts_with("* OK") || c.contains(" STARTTLS") && !c.starts_with("STARTTLS") {
        "imap-starttls"
    } else if s.starts_with("+OK") || c.starts_with("STLS") || c.contains("\nSTLS") {
        "pop3-stls"
    } else if c.starts_with("NICK") || c.starts_with("CAP ") || c.starts_with("STARTTLS") {
        "irc-starttls"
    } else if s.starts_with("220") && s.contains("FTP") {
        "ftp-auth-tls"
    } else if s.starts_with("220") {
        "smtp-starttls"
    } else {
        "unknown-prelude"
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events, handshake messages and application data records with their body's length.
    fn collect(dir: &mut TlsDirection, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for c in chunks {
            dir.feed(c, &mut |e| {
                out.push(match e {
                    TlsEvent::Handshake { msg_type, body } => {
                        format!("hs{msg_type}:{}", body.len())
                    }
                    TlsEvent::ApplicationData { header, body } => {
                        format!("app{}:{}", record_len(header), body.len())
                    }
                    TlsEvent::EncryptedAlert { .. } => "EncryptedAlert".into(),
                    other => format!("{other:?}"),
                })
            });
        }
        out
    }

    #[test]
    fn messages_split_across_records_and_deliveries() {
        // One handshake message (type 11, 6 bytes) split over two records, the second record
        // split over two deliveries, followed by a ServerHelloDone in the same record.
        let rec1 = [22, 3, 3, 0, 5, 11, 0, 0, 6, 1];
        let rec2 = [22, 3, 3, 0, 9, 2, 3, 4, 5, 6, 14, 0, 0, 0];
        let mut d = TlsDirection::default();
        let ev = collect(&mut d, &[&rec1, &rec2[..3], &rec2[3..]]);
        assert_eq!(ev, vec!["hs11:6", "hs14:0"]);
        assert!(!d.has_partial());
    }

    #[test]
    fn application_data_before_any_handshake_is_passed_over_after_it_kept() {
        // A connection seen from its middle: a record split over three deliveries (its body
        // passed over, not kept), one whole; then a handshake record, after which a split
        // record's body is kept (a key log may open it).
        let split = [[23, 3, 3, 0, 6].as_slice(), &[1, 2, 3, 4, 5, 6]].concat();
        let whole = [23, 3, 3, 0, 2, 7, 8];
        let hello = [22, 3, 3, 0, 4, 1, 0, 0, 0];
        let mut d = TlsDirection::default();
        let ev = collect(
            &mut d,
            &[
                &split[..3],
                &split[3..7],
                &[&split[7..], &whole[..]].concat(),
                &hello,
                &split[..8],
                &split[8..],
            ],
        );
        assert_eq!(ev, vec!["app6:0", "app2:2", "hs1:0", "app6:6"]);
        assert!(!d.has_partial());
        // Without keys for them, bodies are passed over again; a ChangeCipherSpec (which may
        // bring keys) keeps the next ones until the owner says otherwise.
        d.want_bodies(false);
        let ccs = [20, 3, 3, 0, 1, 1];
        let ev = collect(
            &mut d,
            &[
                &split[..8],
                &[&split[8..], &ccs[..]].concat(),
                &split[..8],
                &split[8..],
            ],
        );
        assert_eq!(ev, vec!["app6:0", "ChangeCipherSpec", "app6:6"]);
    }

    #[test]
    fn starttls_prelude_then_records() {
        let mut d = TlsDirection::default();
        let ev = collect(
            &mut d,
            &[
                b"220 ready\r\n",
                b"220 go ahead\r\n",
                &[22, 3, 1, 0, 4, 1, 0, 0, 0],
            ],
        );
        assert_eq!(ev, vec!["hs1:0"]);
    }

    #[test]
    fn alerts_plain_and_encrypted() {
        let mut d = TlsDirection::default();
        let ev = collect(
            &mut d,
            &[
                &[21, 3, 3, 0, 2, 2, 48],
                &[20, 3, 3, 0, 1, 1],
                &[21, 3, 3, 0, 2, 1, 0],
            ],
        );
        assert_eq!(
            ev,
            vec![
                "Alert { level: 2, description: 48 }",
                "ChangeCipherSpec",
                "EncryptedAlert"
            ]
        );
        assert_eq!(alert_name(48), "unknown_ca");
    }
}
