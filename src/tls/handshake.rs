//! Stage 4b: TLS events to handshakes.
//!
//! One [`TlsConn`] per TCP connection turns both directions' TLS events into a [`Handshake`]:
//! who is client and server, the hellos, the certificate message (every DER certificate in the
//! order sent), and what each side did afterwards, each with the frame that completed it. It
//! tells the reassembler when it needs no more bytes, so memory is held only for handshakes that
//! are still being decided.

use crate::model::At;
use crate::model::{Protocol, Side};
use std::borrow::Cow;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake};

use crate::flow::{ConnInfo, Dir, End, Eviction, StreamHandler};
use crate::tls::fingerprint::is_grease;
use crate::tls::keylog::{KeyLog, RecordDecryptor};
use crate::tls::{TlsDirection, TlsEvent};

/// The TLS 1.3 version number.
pub const TLS13: u16 = 0x0304;

/// TLS 1.3, a TLS 1.3 draft, or DTLS 1.3: the certificate is encrypted.
pub fn is_tls13(v: u16) -> bool {
    v == TLS13 || v >> 8 == 0x7f || v == 0xfefc
}

/// A ClientHello, as far as the report needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientHello {
    /// Where it was captured (the frame that completed it).
    pub at: At,
    /// The legacy_version field.
    pub legacy_version: u16,
    /// From the supported_versions extension, in the client's order (GREASE removed).
    pub supported_versions: Vec<u16>,
    /// The server name it asked for (SNI).
    pub sni: Option<String>,
    /// The protocols it offered (ALPN).
    pub alpn: Vec<String>,
    /// The cipher suites it offered, in order.
    pub cipher_suites: Vec<u16>,
    /// Its legacy_session_id.
    pub session_id: Vec<u8>,
    /// The 32-byte random (keys the key log).
    pub random: Vec<u8>,
    /// An SSLv2-compatible hello (no extensions, so no SNI).
    pub sslv2: bool,
    /// JA3 and JA4 (not for an SSLv2-compatible hello).
    pub fingerprint: Option<crate::tls::fingerprint::ClientFingerprint>,
}

/// A ServerHello, as far as the report needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerHello {
    /// Where it was captured.
    pub at: At,
    /// The legacy_version field.
    pub legacy_version: u16,
    /// The supported_versions extension's choice (TLS 1.3).
    pub selected_version: Option<u16>,
    /// The chosen cipher suite.
    pub cipher_suite: u16,
    /// Its legacy_session_id (the client's when resuming a TLS 1.2 session).
    pub session_id: Vec<u8>,
    /// A HelloRetryRequest (TLS 1.3), not a real ServerHello.
    pub hello_retry: bool,
    /// TLS 1.3: the server accepted a pre-shared key (pre_shared_key extension): a resumption.
    #[serde(default)]
    pub psk: bool,
}

/// True when the extension block `exts` (type, length, data, ...) holds extension `wanted`.
fn has_extension(mut exts: &[u8], wanted: u16) -> bool {
    while exts.len() >= 4 {
        let t = u16::from_be_bytes([exts[0], exts[1]]);
        let l = u16::from_be_bytes([exts[2], exts[3]]) as usize;
        if t == wanted {
            return true;
        }
        let Some(rest) = exts.get(4 + l..) else {
            return false;
        };
        exts = rest;
    }
    false
}

/// The pre_shared_key extension.
const EXT_PRE_SHARED_KEY: u16 = 41;

impl ServerHello {
    /// The version it chose: supported_versions, else the legacy version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// A Certificate handshake message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateMsg {
    /// Where the message was captured (the frame that completed it).
    pub at: At,
    /// The DER certificates, until the pipeline moves them into the certificate store.
    pub certs: Vec<Vec<u8>>,
    /// SHA-256 of each certificate, in the order sent (filled by the pipeline).
    pub shas: Vec<crate::pki::Sha>,
    /// TLS 1.3: the extension types sent with each certificate (5 = OCSP, 18 = SCT).
    pub extensions: Vec<Vec<u16>>,
}

/// Something a side did, in capture order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A ChangeCipherSpec record.
    ChangeCipherSpec,
    /// A plaintext alert.
    Alert {
        /// The alert level (1 warning, 2 fatal).
        level: u8,
        /// The alert description (RFC 8446 6).
        description: u8,
    },
    /// An alert record after ChangeCipherSpec (its content encrypted).
    EncryptedAlert,
    /// The client's key exchange (TLS 1.2: it went on).
    ClientKeyExchange,
    /// A decrypted TLS 1.3 Finished (the client accepted the server's flight).
    Finished,
    /// An encrypted handshake record (Finished, or what follows it).
    EncryptedHandshake,
    /// An application-data record.
    ApplicationData,
    /// The side closed its half (TCP FIN).
    Fin,
    /// The side reset the connection (TCP RST).
    Rst,
    /// Bytes of this side were not captured (`snaplen`: the capture's snap length cut them).
    Gap {
        /// How many bytes are missing.
        len: u64,
        /// True when the snap length cut them (else the capture lost them).
        snaplen: bool,
    },
    /// A record or message that did not parse, and why.
    Malformed(String),
    /// A handshake message larger than `--max-handshake-bytes` was skipped.
    Oversized {
        /// The handshake message type.
        msg_type: u8,
        /// The length it declared.
        len: usize,
        /// The limit (`--max-handshake-bytes`).
        limit: usize,
    },
    /// EAP (802.1X): the authenticator ended the conversation with EAP-Success (or RADIUS
    /// Access-Accept).
    EapSuccess,
    /// EAP: EAP-Failure, or a RADIUS Access-Reject (`access_reject`, with or without the
    /// EAP-Failure inside).
    EapFailure {
        /// True for a RADIUS Access-Reject, false for an EAP-Failure.
        access_reject: bool,
    },
}

/// One thing a side did on the connection, for the client's reaction and the notes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Who did it.
    pub side: Side,
    /// Where and when.
    pub at: At,
    /// What happened.
    pub kind: EventKind,
}

/// Everything chainsniff learned about one TLS handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    /// Wireshark's `tcp.stream` (TLS) or `udp.stream` (DTLS, QUIC).
    pub stream: u64,
    /// What carried the handshake.
    pub protocol: Protocol,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The server's address and port.
    pub server: SocketAddr,
    /// Every ClientHello (a second one follows a HelloRetryRequest).
    pub client_hellos: Vec<ClientHello>,
    /// The ServerHellos, in order (a HelloRetryRequest first, if any).
    pub server_hellos: Vec<ServerHello>,
    /// The server's Certificate message, if seen.
    pub certificate: Option<CertificateMsg>,
    /// The client's Certificate message (client authentication), if seen.
    pub client_certificate: Option<CertificateMsg>,
    /// The stapled OCSP response (CertificateStatus), if any.
    pub certificate_status: Option<At>,
    /// The ServerKeyExchange, if any.
    pub server_key_exchange: Option<At>,
    /// The CertificateRequest (the server asked for a client certificate), if any.
    pub certificate_request: Option<At>,
    /// The ServerHelloDone (TLS 1.2 and earlier).
    pub server_hello_done: Option<At>,
    /// What each side did, in capture order.
    pub events: Vec<Event>,
    /// How many of `events` were recorded before the server's Certificate (else its last
    /// ServerHello): the client's reaction is looked for in the events after them, in the
    /// order the two directions were read (causal order, also when a merged capture has the
    /// frames of one direction after the other's).
    pub reaction_from: u32,
    /// The part (file of a joined capture) `stream` is numbered in (0 for a single file).
    #[serde(default)]
    pub stream_part: u32,
    /// The later parts the connection goes on in, with its stream index in each.
    #[serde(default)]
    pub continued: Vec<(u32, u64)>,
    /// The capture ended (or chainsniff stopped following the connection) while the handshake
    /// was still being decided.
    pub capture_ended: bool,
    /// chainsniff stopped following the connection before it ended (flow table full, idle).
    pub evicted: Option<Eviction>,
    /// A record or handshake message of the server was cut off (gap or end of capture).
    pub server_cut: bool,
    /// The connection's first packet (for the timeline).
    pub first_at: At,
    /// Encrypted records the client sent after a TLS 1.3 ServerHello.
    pub client_encrypted_records: u32,
    /// TLS 1.3 with a key log: what decryption achieved.
    pub decryption: Option<Decryption>,
    /// TLS 1.3 decrypted: the CertificateVerify.
    pub certificate_verify: Option<At>,
    /// The plaintext protocol that upgraded to TLS (`smtp-starttls`), if TLS did not start
    /// with the connection.
    pub upgrade: Option<Cow<'static, str>>,
    /// TLS inside EAP (802.1X): the transport and who the supplicant is.
    #[serde(default)]
    pub eap: Option<Box<crate::tls::eap::EapInfo>>,
    /// TLS 1.2: this handshake is a renegotiation, a handshake of its own on the same
    /// connection, under the keys of the one before.
    #[serde(default)]
    pub renegotiation: Option<Box<Renegotiation>>,
}

/// A TLS 1.2 renegotiation: its messages travel encrypted under the keys of the handshake
/// before it on the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renegotiation {
    /// The ClientHello of the handshake whose keys protect it.
    pub of: At,
    /// Its first record (an encrypted ClientHello, or the server's HelloRequest).
    pub at: At,
    /// The SNI of the handshake before (the same connection, so the same server).
    pub sni: Option<String>,
    /// The version the handshake before negotiated.
    pub version: Option<u16>,
    /// Why its messages could not be read; `None` when they were (decrypted with the key log).
    pub unseen: Option<Decryption>,
}

/// The outcome of decrypting a TLS 1.3 handshake (or a TLS 1.2 renegotiation) with the key log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decryption {
    /// The server's handshake flight was decrypted.
    Decrypted,
    /// The key log has no such secret for this ClientHello random (the label it lacks).
    MissingSecret(Cow<'static, str>),
    /// Records did not decrypt with the logged secret (wrong key log, or a gap).
    Failed {
        /// The side whose record did not open.
        side: Side,
        /// The frame of that record.
        frame: u64,
    },
    /// The cipher suite is not one chainsniff decrypts.
    UnsupportedCipher(u16),
    /// A TLS 1.3 draft (negotiated version 0x7f00 + N): its record protection differs from
    /// RFC 8446, and chainsniff does not decrypt drafts.
    Draft(u8),
    /// TLS 1.2: no key log was given.
    NoKeyLog,
}

impl Handshake {
    /// The stream index of this connection in part `part` of a joined capture, if it was seen
    /// there.
    pub fn stream_in(&self, part: u32) -> Option<u64> {
        if part == self.stream_part {
            return Some(self.stream);
        }
        self.continued
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, s)| *s)
    }

    /// The negotiated version: the ServerHello's (selected supported_version first), else `None`.
    pub fn version(&self) -> Option<u16> {
        self.server_hellos
            .iter()
            .rev()
            .find(|s| !s.hello_retry)
            .map(|s| s.version())
    }

    /// The SNI of the ClientHello (a renegotiation not seen: the one of the handshake before).
    pub fn sni(&self) -> Option<&str> {
        match self.client_hellos.first() {
            Some(c) => c.sni.as_deref(),
            None => self.renegotiation.as_ref().and_then(|r| r.sni.as_deref()),
        }
    }

    /// The first event of `side` that `pred` accepts.
    pub fn first(&self, side: Side, pred: impl Fn(&EventKind) -> bool) -> Option<&Event> {
        self.events.iter().find(|e| e.side == side && pred(&e.kind))
    }
}

/// Readable name of a protocol version.
pub fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSL 2.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v >> 8 == 0x7f => format!("TLS 1.3 (draft {})", v & 0xff),
        0xfeff => "DTLS 1.0".into(),
        0xfefd => "DTLS 1.2".into(),
        0xfefc => "DTLS 1.3".into(),
        0x0100 => "DTLS 1.0 (OpenSSL before 0.9.8j, 0x0100)".into(),
        v => format!("0x{v:04x}"),
    }
}

/// The SHA-256 of the HelloRetryRequest "random" (RFC 8446, 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Most events kept per handshake (the first few of each side are what matters).
const MAX_EVENTS: usize = 64;

/// The TLS stage of one TCP connection.
pub struct TlsConn {
    info: ConnInfo,
    dirs: [TlsDirection; 2],
    /// The direction the client sends in, once known.
    client_dir: Option<Dir>,
    hs: Handshake,
    seen_tls: bool,
    server_done: bool,
    client_done: bool,
    /// A HelloRetryRequest or TLS 1.3 ServerHello was seen: the parsers must know.
    tls13_seen: bool,
    /// Application data records seen without any handshake (capture started mid-connection).
    orphan_records: u32,
    keylog: Rc<RefCell<KeyLog>>,
    /// TLS 1.3 handshake-traffic decryptors, by side (client, server).
    decryptors: [Option<RecordDecryptor>; 2],
    /// Records each side failed to open before its first success (0-RTT data is skipped so).
    failures: [u32; 2],
    opened: [bool; 2],
    /// Parsers of decrypted content, by side.
    inner: [TlsDirection; 2],
    /// TLS 1.2: the random of the last ServerHello (with the client's, keys the key block).
    server_random: Vec<u8>,
    /// TLS 1.2: why records under the current keys cannot be read, once a side changed keys
    /// (no key log, no CLIENT_RANDOM line, cipher, records that did not open).
    tls12_unseen: Option<Decryption>,
    /// TLS 1.2: encrypted handshake records of each side since its ChangeCipherSpec (the
    /// first is Finished; another is a renegotiation).
    encrypted_handshakes: [u32; 2],
    /// The bytes of a side are past what the handshake needed (its `*_done`): what they hold
    /// is no longer recorded, only watched for a renegotiation.
    muted: [bool; 2],
    /// Both sides are done: the handshake is decided, and records are watched for a TLS 1.2
    /// renegotiation (`watch` records each side at most).
    settled: bool,
    watch: [u32; 2],
    /// Decrypted content is being fed (a ClientHello in it is a renegotiation).
    in_decrypted: bool,
    /// Events of the data being fed are not recorded (a muted side).
    quiet: bool,
    /// Where a decided handshake goes at once (TCP), so that watching the connection for a
    /// renegotiation does not hold it back; `hs` is then only what a renegotiation needs.
    outbox: Option<Rc<RefCell<Vec<Handshake>>>>,
    /// `hs` went to the outbox.
    emitted: bool,
    /// The handshake before a renegotiation: its ClientHello and SNI.
    decided: Option<(At, Option<String>)>,
    /// Renegotiations seen on the connection.
    renegotiations: usize,
}

/// Records of each side looked at after a TLS 1.2 handshake is decided, for a renegotiation
/// (one that starts later is not seen).
const WATCH_RECORDS: u32 = 16;

/// A handshake of connection `info` before anything is known.
fn empty_handshake(info: &ConnInfo) -> Handshake {
    Handshake {
        stream: info.stream,
        protocol: Protocol::Tls,
        client: info.first_src,
        server: info.first_dst,
        client_hellos: Vec::new(),
        server_hellos: Vec::new(),
        certificate: None,
        client_certificate: None,
        certificate_status: None,
        server_key_exchange: None,
        certificate_request: None,
        server_hello_done: None,
        events: Vec::new(),
        reaction_from: 0,
        stream_part: info.part,
        continued: Vec::new(),
        capture_ended: false,
        evicted: None,
        server_cut: false,
        first_at: info.first_at,
        client_encrypted_records: 0,
        decryption: None,
        certificate_verify: None,
        upgrade: None,
        eap: None,
        renegotiation: None,
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

/// Renegotiations followed on one connection (each one a handshake of its own).
const MAX_RENEGOTIATIONS: usize = 16;

/// Records a side may fail to open before its first success (early data uses other keys).
const MAX_SKIPPED_RECORDS: u32 = 8;

impl TlsConn {
    /// A connection's state machine, without a key log.
    pub fn new(info: ConnInfo) -> Self {
        Self::with_keylog(info, Rc::default())
    }

    /// A connection whose TLS 1.3 handshakes are decrypted with the secrets in `keylog`.
    pub fn with_keylog(info: ConnInfo, keylog: Rc<RefCell<KeyLog>>) -> Self {
        TlsConn {
            info,
            dirs: Default::default(),
            client_dir: None,
            hs: empty_handshake(&info),
            seen_tls: false,
            server_done: false,
            client_done: false,
            orphan_records: 0,
            tls13_seen: false,
            keylog,
            decryptors: [None, None],
            failures: [0, 0],
            opened: [false, false],
            inner: Default::default(),
            server_random: Vec::new(),
            tls12_unseen: None,
            encrypted_handshakes: [0, 0],
            muted: [false, false],
            settled: false,
            watch: [WATCH_RECORDS; 2],
            in_decrypted: false,
            quiet: false,
            outbox: None,
            emitted: false,
            decided: None,
            renegotiations: 0,
        }
    }

    /// Where a decided TLS 1.2 handshake goes while the connection is watched for a
    /// renegotiation (each renegotiation, when it is decided, too).
    pub fn set_outbox(&mut self, outbox: Rc<RefCell<Vec<Handshake>>>) {
        self.outbox = Some(outbox);
    }

    /// Largest handshake message kept (`--max-handshake-bytes`); larger ones are skipped and
    /// reported.
    pub fn set_max_handshake(&mut self, bytes: usize) {
        for d in self.dirs.iter_mut().chain(self.inner.iter_mut()) {
            d.max_handshake = bytes;
        }
    }

    /// For datagram protocols (DTLS, QUIC), which feed messages and records themselves.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.hs.protocol = protocol;
    }

    /// A complete plaintext handshake message (DTLS: reassembled and in TLS layout; QUIC: from
    /// the CRYPTO stream).
    pub fn handshake_message(&mut self, dir: Dir, at: At, msg_type: u8, body: &[u8]) {
        self.on_message(dir, at, msg_type, body);
    }

    /// Any other record-level event of a datagram protocol.
    pub fn record_event(&mut self, dir: Dir, at: At, ev: TlsEvent<'_>) {
        self.on_event(dir, at, ev);
    }

    /// EAP: the authenticator ended the conversation (EAP-Success or EAP-Failure, RADIUS
    /// Access-Accept or Access-Reject); nothing more is to come.
    pub fn eap_result(&mut self, at: At, kind: EventKind) {
        if self.seen_tls {
            self.push(Side::Server, at, kind);
        }
        self.server_done = true;
        self.client_done = true;
    }

    /// A message of `dir` was cut off by the end of the capture or of the conversation, before
    /// it reached this stage (EAP-TLS fragments).
    pub fn message_cut(&mut self, dir: Dir) {
        if self.side(dir) == Side::Server && !self.server_done {
            self.hs.server_cut = true;
        }
    }

    /// The protocol set so far.
    pub fn protocol(&self) -> Protocol {
        self.hs.protocol
    }

    /// True once nothing more is needed from this connection.
    pub fn done(&self) -> bool {
        self.server_done && self.client_done
    }

    fn side(&self, dir: Dir) -> Side {
        match self.client_dir {
            Some(c) if c == dir => Side::Client,
            Some(_) => Side::Server,
            None if dir == Dir::Forward => Side::Client,
            None => Side::Server,
        }
    }

    fn set_client(&mut self, client: Dir) {
        if self.client_dir == Some(client) {
            return;
        }
        let swapped =
            self.client_dir.is_none() && client == Dir::Backward || self.client_dir.is_some();
        self.client_dir = Some(client);
        let (c, s) = if client == Dir::Forward {
            (self.info.first_src, self.info.first_dst)
        } else {
            (self.info.first_dst, self.info.first_src)
        };
        self.hs.client = c;
        self.hs.server = s;
        if swapped {
            for e in &mut self.hs.events {
                e.side = match e.side {
                    Side::Client => Side::Server,
                    Side::Server => Side::Client,
                };
            }
        }
    }

    fn push(&mut self, side: Side, at: At, kind: EventKind) {
        if self.settled || self.quiet {
            return;
        }
        // A run of application data from one side is one event (its first record): only where
        // the run starts matters, and handshakes are kept until the report is built.
        let repeat = |e: &Event| e.side == side && e.kind == kind;
        if matches!(
            kind,
            EventKind::ApplicationData | EventKind::EncryptedHandshake
        ) && self
            .hs
            .events
            .iter()
            .rev()
            .find(|e| e.side == side)
            .is_some_and(repeat)
        {
            return;
        }
        if self.hs.events.len() < MAX_EVENTS {
            self.hs.events.push(Event { side, at, kind });
        }
    }

    fn tls13(&self) -> bool {
        self.tls13_seen || self.hs.version().is_some_and(is_tls13)
    }

    fn on_event(&mut self, dir: Dir, at: At, ev: TlsEvent<'_>) {
        if self.quiet && !self.in_decrypted {
            let i = side_index(self.side(dir));
            self.watch[i] = self.watch[i].saturating_sub(1);
        }
        match ev {
            TlsEvent::Handshake { msg_type, body } => self.on_message(dir, at, msg_type, body),
            TlsEvent::Sslv2ClientHello { body } => {
                self.seen_tls = true;
                self.set_client(dir);
                if let Some(ch) = parse_sslv2_hello(at, body) {
                    self.hs.client_hellos.push(ch);
                }
            }
            TlsEvent::ChangeCipherSpec => {
                let side = self.side(dir);
                self.push(side, at, EventKind::ChangeCipherSpec);
                if self.watches() {
                    self.tls12_keys(side);
                }
                if side == Side::Server && !self.tls13() && self.seen_tls {
                    // Abbreviated (resumed) handshake, or the end of the server's full flight.
                    self.server_done = true;
                }
                if side == Side::Client && !self.tls13() && self.server_done {
                    self.client_done = true;
                }
            }
            TlsEvent::Alert { level, description } => {
                let side = self.side(dir);
                self.push(side, at, EventKind::Alert { level, description });
                if level == 2 {
                    match side {
                        Side::Client => self.client_done = true,
                        Side::Server => self.server_done = true,
                    }
                }
            }
            TlsEvent::EncryptedAlert { header, body } => {
                let side = self.side(dir);
                // Decrypted (TLS 1.2 with the key log), the alert itself is recorded.
                if self.tls12_record(side, at, header, body).is_none() {
                    self.push(side, at, EventKind::EncryptedAlert);
                }
            }
            TlsEvent::EncryptedHandshake { header, body } => {
                let side = self.side(dir);
                let i = side_index(side);
                let earlier = self.encrypted_handshakes[i];
                self.encrypted_handshakes[i] += 1;
                let decrypted = self.tls12_record(side, at, header, body).is_some();
                if !decrypted && earlier >= 1 && self.watches() {
                    // After its Finished, a side's next encrypted handshake record starts a
                    // renegotiation (ClientHello, or the server's HelloRequest) that stays
                    // encrypted.
                    self.renegotiation_unseen(at);
                    return;
                }
                // A decrypted record is under this handshake's keys once the side changed
                // them (Finished); before, it carries a renegotiation's plaintext messages.
                let own_keys = !decrypted
                    || self
                        .hs
                        .events
                        .iter()
                        .any(|e| e.side == side && e.kind == EventKind::ChangeCipherSpec);
                if own_keys
                    && self
                        .hs
                        .first(side, |k| *k == EventKind::EncryptedHandshake)
                        .is_none()
                {
                    self.push(side, at, EventKind::EncryptedHandshake);
                }
            }
            TlsEvent::ApplicationData { header, body } => {
                if !self.seen_tls {
                    self.orphan_records += 1;
                    return;
                }
                let side = self.side(dir);
                if !self.tls13() {
                    // TLS 1.2: opened (with the key log) only to keep the sequence numbers.
                    self.tls12_record(side, at, header, body);
                } else if self.decrypt(side, at, header, body) {
                    return;
                }
                self.application_data(side, at);
            }
            TlsEvent::Heartbeat => {
                if !self.seen_tls {
                    self.orphan_records += 1;
                    return;
                }
                let side = self.side(dir);
                self.application_data(side, at);
            }
            TlsEvent::Oversized { msg_type, len } => {
                let side = self.side(dir);
                let limit = self.dirs[0].max_handshake;
                self.push(
                    side,
                    at,
                    EventKind::Oversized {
                        msg_type,
                        len,
                        limit,
                    },
                );
            }
            TlsEvent::Malformed(what) => {
                if self.seen_tls {
                    let side = self.side(dir);
                    self.push(side, at, EventKind::Malformed(what.to_string()));
                }
            }
        }
    }

    fn on_message(&mut self, dir: Dir, at: At, msg_type: u8, body: &[u8]) {
        if self.tls13() && matches!(msg_type, 4 | 8 | 11 | 13 | 15 | 20 | 24) {
            return self.on_tls13_message(dir, at, msg_type, body);
        }
        // Re-frame for tls-parser, which parses a message with its 4-byte header.
        let side_before = self.side(dir);
        let mut framed = Vec::with_capacity(body.len() + 4);
        framed.push(msg_type);
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        framed.extend_from_slice(body);
        let parsed = tls_parser::parse_tls_message_handshake(&framed);
        let msg = match parsed {
            Ok((_, TlsMessage::Handshake(m))) => m,
            _ => {
                // A TLS 1.3 draft ServerHello (drafts before 18 differ in layout): version,
                // random, cipher suite.
                if msg_type == 2 && body.len() >= 36 && (body[0] == 0x7f || body[..2] == [3, 4]) {
                    self.seen_tls = true;
                    self.set_client(dir.reverse());
                    let version = u16::from_be_bytes([body[0], body[1]]);
                    self.server_hello(ServerHello {
                        at,
                        legacy_version: version,
                        selected_version: Some(version),
                        cipher_suite: u16::from_be_bytes([body[34], body[35]]),
                        session_id: Vec::new(),
                        hello_retry: false,
                        psk: false,
                    });
                    return;
                }
                if let Some(sh) = (msg_type == 2)
                    .then(|| parse_server_hello(at, body))
                    .flatten()
                {
                    self.seen_tls = true;
                    self.set_client(dir.reverse());
                    self.server_hello(sh);
                    return;
                }
                if self.seen_tls || msg_type == 1 || msg_type == 2 {
                    self.push(
                        side_before,
                        at,
                        EventKind::Malformed(format!(
                            "handshake message type {msg_type} ({} bytes) could not be parsed",
                            body.len()
                        )),
                    );
                }
                // A Certificate message tls-parser rejects is still split by hand below.
                if msg_type == 11 {
                    self.seen_tls = true;
                    self.certificate(dir, at, parse_certificate_list(body), Vec::new());
                }
                return;
            }
        };
        self.seen_tls = true;
        match msg {
            TlsMessageHandshake::ClientHello(ch) => {
                if self.in_decrypted && !self.tls13() && !self.hs.server_hellos.is_empty() {
                    if self.renegotiations >= MAX_RENEGOTIATIONS {
                        self.watch = [0, 0];
                        return;
                    }
                    self.begin_renegotiation(at, None);
                }
                self.set_client(dir);
                let mut out = ClientHello {
                    at,
                    legacy_version: ch.version.0,
                    supported_versions: Vec::new(),
                    sni: None,
                    alpn: Vec::new(),
                    cipher_suites: ch.ciphers.iter().map(|c| c.0).collect(),
                    session_id: ch.session_id.unwrap_or_default().to_vec(),
                    random: ch.random.to_vec(),
                    sslv2: false,
                    fingerprint: Some(crate::tls::fingerprint::client(
                        self.hs.protocol,
                        ch.version.0,
                        &ch.ciphers.iter().map(|c| c.0).collect::<Vec<_>>(),
                        ch.ext.unwrap_or_default(),
                    )),
                };
                if let Some(ext) = ch.ext
                    && let Ok((_, exts)) = tls_parser::parse_tls_client_hello_extensions(ext)
                {
                    for e in exts {
                        match e {
                            TlsExtension::SNI(names) => {
                                out.sni = names
                                    .first()
                                    .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
                            }
                            TlsExtension::SupportedVersions(vs) => {
                                out.supported_versions =
                                    vs.iter().map(|v| v.0).filter(|v| !is_grease(*v)).collect()
                            }
                            TlsExtension::ALPN(protos) => {
                                out.alpn = protos
                                    .iter()
                                    .map(|p| String::from_utf8_lossy(p).into_owned())
                                    .collect()
                            }
                            _ => {}
                        }
                    }
                }
                self.hs.client_hellos.push(out);
            }
            TlsMessageHandshake::ServerHello(sh) => {
                self.set_client(dir.reverse());
                let mut selected = None;
                if let Some(ext) = sh.ext
                    && let Ok((_, exts)) = tls_parser::parse_tls_server_hello_extensions(ext)
                {
                    for e in exts {
                        if let TlsExtension::SupportedVersions(vs) = e {
                            selected = vs.first().map(|v| v.0);
                        }
                    }
                }
                let hello_retry = sh.random == HRR_RANDOM;
                self.server_random = sh.random.to_vec();
                self.server_hello(ServerHello {
                    at,
                    legacy_version: sh.version.0,
                    selected_version: selected,
                    cipher_suite: sh.cipher.0,
                    session_id: sh.session_id.unwrap_or_default().to_vec(),
                    hello_retry,
                    psk: sh.ext.is_some_and(|e| has_extension(e, EXT_PRE_SHARED_KEY)),
                });
            }
            TlsMessageHandshake::ServerHelloV13Draft18(sh) => {
                self.set_client(dir.reverse());
                self.server_hello(ServerHello {
                    at,
                    legacy_version: sh.version.0,
                    selected_version: Some(sh.version.0),
                    cipher_suite: sh.cipher.0,
                    session_id: Vec::new(),
                    hello_retry: false,
                    psk: false,
                });
            }
            TlsMessageHandshake::HelloRetryRequest(hrr) => {
                self.set_client(dir.reverse());
                self.server_hello(ServerHello {
                    at,
                    legacy_version: hrr.version.0,
                    selected_version: Some(hrr.version.0),
                    cipher_suite: hrr.cipher.0,
                    session_id: Vec::new(),
                    hello_retry: true,
                    psk: false,
                });
            }
            TlsMessageHandshake::Certificate(c) => {
                let certs = c.cert_chain.iter().map(|c| c.data.to_vec()).collect();
                self.certificate(dir, at, certs, Vec::new());
            }
            TlsMessageHandshake::CertificateStatus(_) => self.hs.certificate_status = Some(at),
            TlsMessageHandshake::ServerKeyExchange(_) => self.hs.server_key_exchange = Some(at),
            TlsMessageHandshake::CertificateRequest(_) => self.hs.certificate_request = Some(at),
            TlsMessageHandshake::ServerDone(_) => {
                self.hs.server_hello_done = Some(at);
                self.server_done = true;
            }
            TlsMessageHandshake::ClientKeyExchange(_) => {
                let side = self.side(dir);
                self.push(side, at, EventKind::ClientKeyExchange);
            }
            _ => {}
        }
    }

    /// A message of the encrypted part of a TLS 1.3 handshake (decrypted with the key log).
    fn on_tls13_message(&mut self, dir: Dir, at: At, msg_type: u8, body: &[u8]) {
        let side = self.side(dir);
        match msg_type {
            11 => match parse_tls13_certificate(body) {
                Some((certs, exts)) => self.certificate(dir, at, certs, exts),
                None => self.push(
                    side,
                    at,
                    EventKind::Malformed(
                        "a TLS 1.3 Certificate message could not be parsed".into(),
                    ),
                ),
            },
            13 if side == Side::Server => self.hs.certificate_request = Some(at),
            15 if side == Side::Server => self.hs.certificate_verify = Some(at),
            20 => {
                // Finished: from here on the side uses application traffic keys.
                self.decryptors[side_index(side)] = None;
                match side {
                    Side::Server => self.server_done = true,
                    Side::Client => {
                        self.push(side, at, EventKind::Finished);
                        self.client_done = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn server_hello(&mut self, sh: ServerHello) {
        let version = sh.version();
        let tls13 = !sh.hello_retry && is_tls13(version);
        if tls13 || sh.hello_retry {
            self.tls13_seen = true;
        }
        let cipher = sh.cipher_suite;
        if self.hs.certificate.is_none() {
            self.hs.reaction_from = self.hs.events.len() as u32;
        }
        self.hs.server_hellos.push(sh);
        if tls13 {
            // The rest of the server's flight, the Certificate included, is encrypted: without
            // its secrets there is nothing more to read.
            self.server_done = !self.start_decryption(cipher, version);
        }
    }

    /// Sets up TLS 1.3 handshake decryption from the key log; true when the server's flight
    /// can be decrypted.
    fn start_decryption(&mut self, cipher: u16, version: u16) -> bool {
        let keylog = self.keylog.borrow();
        if keylog.is_empty() {
            return false;
        }
        if version >> 8 == 0x7f {
            // Drafts protect records otherwise (no additional data before draft 25, other
            // HKDF labels before 20): the key log is not tried.
            self.hs.decryption = Some(Decryption::Draft(version as u8));
            return false;
        }
        let random = self.hs.client_hellos.first().map(|c| c.random.as_slice());
        let secrets = random
            .and_then(|r| keylog.get(r))
            .cloned()
            .unwrap_or_default();
        drop(keylog);
        let Some(server_secret) = secrets.server_handshake else {
            self.hs.decryption = Some(Decryption::MissingSecret(
                "SERVER_HANDSHAKE_TRAFFIC_SECRET".into(),
            ));
            return false;
        };
        let Some(server) = RecordDecryptor::new(cipher, &server_secret) else {
            self.hs.decryption = Some(Decryption::UnsupportedCipher(cipher));
            return false;
        };
        self.decryptors[side_index(Side::Server)] = Some(server);
        self.decryptors[side_index(Side::Client)] = secrets
            .client_handshake
            .and_then(|s| RecordDecryptor::new(cipher, &s));
        true
    }

    /// Tries to open an encrypted record of `side` with its handshake keys; true when the record
    /// was consumed (decrypted, or skipped as not yet decryptable).
    fn decrypt(&mut self, side: Side, at: At, header: &[u8], body: &[u8]) -> bool {
        let i = side_index(side);
        let Some(dec) = self.decryptors[i].as_mut() else {
            return false;
        };
        match dec.open(header, body) {
            Some((content_type, plain)) => {
                self.opened[i] = true;
                if side == Side::Server {
                    self.hs.decryption.get_or_insert(Decryption::Decrypted);
                }
                let mut inner = std::mem::take(&mut self.inner[i]);
                let dir = self.dir_of(side);
                inner.feed_decrypted(content_type, &plain, &mut |ev| self.on_event(dir, at, ev));
                self.inner[i] = inner;
                true
            }
            None if side == Side::Client
                && !self.opened[i]
                && self.failures[i] < MAX_SKIPPED_RECORDS =>
            {
                // Perhaps the client's 0-RTT data (other keys): try the next record.
                self.failures[i] += 1;
                true
            }
            None => {
                // Wrong secrets, or the keys changed (after Finished): stop decrypting this side.
                self.decryptors[i] = None;
                if !self.opened[i] || side == Side::Server && self.hs.certificate.is_none() {
                    self.hs.decryption = Some(Decryption::Failed {
                        side,
                        frame: at.frame,
                    });
                }
                if side == Side::Server {
                    self.server_done = true;
                }
                false
            }
        }
    }

    /// TLS 1.2 over TCP: records after ChangeCipherSpec are decrypted with the key log's
    /// master secret, and watched for a renegotiation once the handshake is decided.
    fn watches(&self) -> bool {
        self.hs.protocol == Protocol::Tls && self.seen_tls && !self.tls13()
    }

    /// `side` changed keys (TLS 1.2 ChangeCipherSpec): its records from here on are opened with
    /// the keys of the current handshake, if the key log has its master secret.
    fn tls12_keys(&mut self, side: Side) {
        let i = side_index(side);
        self.encrypted_handshakes[i] = 0;
        self.decryptors[i] = None;
        let keylog = self.keylog.borrow();
        if keylog.is_empty() {
            self.tls12_unseen = Some(Decryption::NoKeyLog);
            return;
        }
        let (Some(ch), Some(sh)) = (self.hs.client_hellos.last(), self.hs.server_hellos.last())
        else {
            return;
        };
        let master = keylog.get(&ch.random).and_then(|s| s.master_secret.clone());
        drop(keylog);
        let Some(master) = master else {
            self.tls12_unseen = Some(Decryption::MissingSecret("CLIENT_RANDOM".into()));
            return;
        };
        let dec = RecordDecryptor::tls12(
            sh.cipher_suite,
            &master,
            &ch.random,
            &self.server_random,
            side == Side::Client,
        );
        match dec {
            Some(d) => self.decryptors[i] = Some(d),
            None => self.tls12_unseen = Some(Decryption::UnsupportedCipher(sh.cipher_suite)),
        }
    }

    /// A TLS 1.2 record after ChangeCipherSpec: opened if the side has keys, its handshake
    /// messages and alerts parsed like plaintext ones. Returns the content type when opened.
    fn tls12_record(&mut self, side: Side, at: At, header: &[u8], body: &[u8]) -> Option<u8> {
        if self.tls13() {
            return None;
        }
        let i = side_index(side);
        let opened = self.decryptors[i].as_mut()?.open(header, body);
        let Some((content_type, plain)) = opened else {
            self.decryptors[i] = None;
            // The first failure is the one to name.
            if !matches!(self.tls12_unseen, Some(Decryption::Failed { .. })) {
                self.tls12_unseen = Some(Decryption::Failed {
                    side,
                    frame: at.frame,
                });
            }
            return None;
        };
        if matches!(
            content_type,
            crate::tls::record::HANDSHAKE | crate::tls::record::ALERT
        ) {
            let mut inner = std::mem::take(&mut self.inner[i]);
            let dir = self.dir_of(side);
            let was = std::mem::replace(&mut self.in_decrypted, true);
            inner.feed_decrypted(content_type, &plain, &mut |ev| self.on_event(dir, at, ev));
            self.in_decrypted = was;
            self.inner[i] = inner;
        }
        Some(content_type)
    }

    /// A renegotiation starts under the current keys and cannot be read: it is a handshake of
    /// its own that says why, and nothing more is looked at.
    fn renegotiation_unseen(&mut self, at: At) {
        let cause = self.tls12_unseen.clone().unwrap_or(Decryption::NoKeyLog);
        self.begin_renegotiation(at, Some(cause));
        self.server_done = true;
        self.client_done = true;
        self.watch = [0, 0];
    }

    /// A renegotiation starts at `at` (a decrypted ClientHello, or an encrypted record that
    /// cannot be read, `unseen`): the handshake before is reported as it stood, and a new one,
    /// on the same connection, begins.
    fn begin_renegotiation(&mut self, at: At, unseen: Option<Decryption>) {
        self.renegotiations += 1;
        let version = self.hs.version();
        let (of, sni) = match self.decided.take() {
            Some(d) => d,
            None => (
                self.hs
                    .client_hellos
                    .first()
                    .map_or(self.hs.first_at, |c| c.at),
                self.hs.sni().map(str::to_string),
            ),
        };
        let mut next = empty_handshake(&self.info);
        next.stream = self.hs.stream;
        next.stream_part = self.hs.stream_part;
        next.continued = self.hs.continued.clone();
        next.client = self.hs.client;
        next.server = self.hs.server;
        next.first_at = at;
        next.decryption = unseen.is_none().then_some(Decryption::Decrypted);
        next.renegotiation = Some(Box::new(Renegotiation {
            of,
            at,
            sni,
            version,
            unseen,
        }));
        let mut prev = std::mem::replace(&mut self.hs, next);
        if !self.emitted {
            // Not handed out yet (no outbox, or not decided): it goes now.
            self.finalize(&mut prev);
            if let Some(o) = &self.outbox {
                o.borrow_mut().push(prev);
            }
        }
        self.emitted = false;
        self.tls12_unseen = None;
        self.server_done = false;
        self.client_done = false;
        self.settled = false;
        self.muted = [false, false];
        self.quiet = false;
        self.watch = [WATCH_RECORDS; 2];
    }

    /// What a handshake gets when it is handed out: the upgrade it followed, whether the
    /// server's flight was cut.
    fn finalize(&self, hs: &mut Handshake) {
        let client = self.client_dir.unwrap_or(Dir::Forward);
        let server = client.reverse();
        hs.upgrade = crate::tls::upgrade_name(
            &self.dirs[client.index()].prelude_head,
            &self.dirs[server.index()].prelude_head,
        )
        .map(Cow::Borrowed);
        if self.dirs[server.index()].has_partial() && !self.server_done {
            hs.server_cut = true;
        }
        hs.events.shrink_to_fit();
    }

    /// A decided TLS 1.2 handshake goes to the outbox, as it would have left the reassembler
    /// before watching; what a renegotiation needs of it is kept.
    fn emit_decided(&mut self) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        if self.emitted {
            return;
        }
        let of = self
            .hs
            .client_hellos
            .first()
            .map_or(self.hs.first_at, |c| c.at);
        let sni = self.hs.sni().map(str::to_string);
        // The skeleton keeps what the watching and a renegotiation read: the hellos (for
        // the keys), the events (for ChangeCipherSpec), the stream.
        let mut skeleton = empty_handshake(&self.info);
        skeleton.stream = self.hs.stream;
        skeleton.stream_part = self.hs.stream_part;
        skeleton.continued = self.hs.continued.clone();
        skeleton.client = self.hs.client;
        skeleton.server = self.hs.server;
        skeleton.client_hellos = self.hs.client_hellos.clone();
        skeleton.server_hellos = self.hs.server_hellos.clone();
        skeleton.events = self.hs.events.clone();
        let mut hs = std::mem::replace(&mut self.hs, skeleton);
        self.finalize(&mut hs);
        outbox.borrow_mut().push(hs);
        self.emitted = true;
        self.decided = Some((of, sni));
    }

    fn dir_of(&self, side: Side) -> Dir {
        let client = self.client_dir.unwrap_or(Dir::Forward);
        match side {
            Side::Client => client,
            Side::Server => client.reverse(),
        }
    }

    fn application_data(&mut self, side: Side, at: At) {
        if self
            .hs
            .first(side, |k| *k == EventKind::ApplicationData)
            .is_none()
        {
            self.push(side, at, EventKind::ApplicationData);
        }
        match side {
            Side::Client if self.tls13() => {
                self.hs.client_encrypted_records += 1;
                if self.hs.client_encrypted_records >= 2 {
                    self.client_done = true;
                }
            }
            Side::Client => self.client_done = true,
            Side::Server => self.server_done = true,
        }
    }

    fn certificate(&mut self, dir: Dir, at: At, certs: Vec<Vec<u8>>, extensions: Vec<Vec<u16>>) {
        let msg = CertificateMsg {
            at,
            certs,
            shas: Vec::new(),
            extensions,
        };
        if self.side(dir) == Side::Client {
            self.hs.client_certificate.get_or_insert(msg);
        } else if self.hs.certificate.is_none() {
            self.hs.reaction_from = self.hs.events.len() as u32;
            self.hs.certificate = Some(msg);
        }
    }
}

/// A ServerHello by hand (used when tls-parser rejects one, e.g. DTLS 1.3's): version, random,
/// session id, cipher suite, compression, extensions (supported_versions read).
fn parse_server_hello(at: At, body: &[u8]) -> Option<ServerHello> {
    let version = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let random = body.get(2..34)?;
    let sid_len = *body.get(34)? as usize;
    let session_id = body.get(35..35 + sid_len)?.to_vec();
    let mut i = 35 + sid_len;
    let cipher_suite = u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]);
    i += 3;
    let mut selected = None;
    let mut psk = false;
    if let Some(len) = body.get(i..i + 2) {
        let mut ext = body.get(i + 2..i + 2 + u16::from_be_bytes([len[0], len[1]]) as usize)?;
        while ext.len() >= 4 {
            let t = u16::from_be_bytes([ext[0], ext[1]]);
            let l = u16::from_be_bytes([ext[2], ext[3]]) as usize;
            let data = ext.get(4..4 + l)?;
            if t == 43 && l == 2 {
                selected = Some(u16::from_be_bytes([data[0], data[1]]));
            }
            psk |= t == EXT_PRE_SHARED_KEY;
            ext = &ext[4 + l..];
        }
    }
    Some(ServerHello {
        at,
        legacy_version: version,
        selected_version: selected,
        cipher_suite,
        session_id,
        hello_retry: random == HRR_RANDOM,
        psk,
    })
}

/// A TLS 1.3 Certificate message: request context, then entries of a certificate and its
/// extensions (RFC 8446, 4.4.2). Returns the certificates and each one's extension types.
/// Certificates (DER) and, for each, the extension types sent with it.
type CertificatesWithExtensions = (Vec<Vec<u8>>, Vec<Vec<u16>>);

fn parse_tls13_certificate(body: &[u8]) -> Option<CertificatesWithExtensions> {
    let ctx_len = *body.first()? as usize;
    let rest = body.get(1 + ctx_len..)?;
    let list_len = u24(rest)?;
    let mut list = rest.get(3..3 + list_len)?;
    let (mut certs, mut exts) = (Vec::new(), Vec::new());
    while !list.is_empty() {
        let len = u24(list)?;
        certs.push(list.get(3..3 + len)?.to_vec());
        list = list.get(3 + len..)?;
        let ext_len = u16::from_be_bytes([*list.first()?, *list.get(1)?]) as usize;
        let mut e = list.get(2..2 + ext_len)?;
        let mut types = Vec::new();
        while e.len() >= 4 {
            types.push(u16::from_be_bytes([e[0], e[1]]));
            let l = u16::from_be_bytes([e[2], e[3]]) as usize;
            e = e.get(4 + l..)?;
        }
        exts.push(types);
        list = &list[2 + ext_len..];
    }
    Some((certs, exts))
}

fn u24(b: &[u8]) -> Option<usize> {
    Some(((*b.first()? as usize) << 16) | ((*b.get(1)? as usize) << 8) | *b.get(2)? as usize)
}

/// Splits a Certificate message body by hand (24-bit list length, then 24-bit lengths).
/// Used when tls-parser rejects the message, so that what was sent is still reported.
fn parse_certificate_list(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(rest) = body.get(3..) else {
        return out;
    };
    let mut rest = rest;
    while rest.len() >= 3 {
        let len = ((rest[0] as usize) << 16) | ((rest[1] as usize) << 8) | rest[2] as usize;
        let Some(cert) = rest.get(3..3 + len) else {
            break;
        };
        out.push(cert.to_vec());
        rest = &rest[3 + len..];
    }
    out
}

/// An SSLv2 CLIENT-HELLO body: msg type, version, cipher-spec/session-id/challenge lengths.
fn parse_sslv2_hello(at: At, body: &[u8]) -> Option<ClientHello> {
    if body.len() < 9 || body[0] != 1 {
        return None;
    }
    let version = u16::from_be_bytes([body[1], body[2]]);
    let cs_len = u16::from_be_bytes([body[3], body[4]]) as usize;
    let specs = body.get(9..9 + cs_len).unwrap_or_default();
    let cipher_suites = specs
        .chunks_exact(3)
        .filter(|c| c[0] == 0)
        .map(|c| u16::from_be_bytes([c[1], c[2]]))
        .collect();
    Some(ClientHello {
        at,
        legacy_version: version,
        supported_versions: Vec::new(),
        sni: None,
        alpn: Vec::new(),
        cipher_suites,
        session_id: Vec::new(),
        random: Vec::new(),
        sslv2: true,
        fingerprint: None,
    })
}

impl TlsConn {
    /// The capture lost `len` bytes of `dir` before `at`.
    fn lost(&mut self, dir: Dir, at: At, len: u64, snaplen: bool) {
        let parser = &mut self.dirs[dir.index()];
        let was_cut = parser.has_partial();
        parser.gap();
        let i = side_index(self.side(dir));
        if self.decryptors[i].is_some() && !self.tls13() {
            // The sequence number is lost with the bytes.
            self.decryptors[i] = None;
            self.tls12_unseen = Some(Decryption::Failed {
                side: self.side(dir),
                frame: at.frame,
            });
        }
        if self.settled || self.muted[i] {
            return;
        }
        if self.seen_tls {
            let side = self.side(dir);
            if side == Side::Server && (was_cut || !self.server_done) {
                self.hs.server_cut = true;
            }
            self.push(side, at, EventKind::Gap { len, snaplen });
        }
    }
}

impl StreamHandler for TlsConn {
    type Output = Handshake;

    fn on_data(&mut self, dir: Dir, at: At, data: &[u8]) {
        let mut parser = std::mem::take(&mut self.dirs[dir.index()]);
        let side = side_index(self.side(dir));
        // Application data is opened only with keys (TLS 1.2's to keep the sequence numbers,
        // TLS 1.3's handshake keys); without, its bodies are passed over.
        parser.want_bodies(self.decryptors[side].is_some());
        self.quiet = self.settled || self.muted[side];
        parser.feed(data, &mut |ev| self.on_event(dir, at, ev));
        self.quiet = false;
        self.dirs[dir.index()] = parser;
        if self.watches() {
            // What the reassembler stopped delivering before is still read, but not recorded.
            self.muted = [self.client_done, self.server_done];
            self.settled = self.client_done && self.server_done;
            if self.settled {
                self.emit_decided();
            }
        }
        if self.tls13_seen {
            for d in &mut self.dirs {
                d.set_tls13();
            }
        }
    }

    fn on_gap(&mut self, dir: Dir, at: At, len: u64) {
        self.lost(dir, at, len, false);
    }

    fn on_snaplen(&mut self, dir: Dir, at: At, len: u64) {
        self.lost(dir, at, len, true);
    }

    fn on_syn(&mut self, dir: Dir, ack: bool) {
        if !self.seen_tls {
            self.set_client(if ack { dir.reverse() } else { dir });
        }
    }

    fn on_fin(&mut self, dir: Dir, at: At) {
        let side = self.side(dir);
        self.push(side, at, EventKind::Fin);
    }

    fn on_rst(&mut self, dir: Dir, at: At) {
        let side = self.side(dir);
        self.push(side, at, EventKind::Rst);
    }

    fn on_conflict(&mut self, dir: Dir, at: At) {
        if self.seen_tls {
            let side = self.side(dir);
            self.push(
                side,
                at,
                EventKind::Malformed(
                    "a retransmission carried different bytes than the first copy (the first copy was used)".into(),
                ),
            );
        }
    }

    fn on_part(&mut self, part: u32, stream: u64) {
        if self.hs.continued.len() < MAX_EVENTS {
            self.hs.continued.push((part, stream));
        }
    }

    fn wants_data(&self, dir: Dir) -> bool {
        if !self.dirs[dir.index()].active() {
            return false;
        }
        let side = self.side(dir);
        let done = match side {
            Side::Server => self.server_done,
            Side::Client => self.client_done,
        };
        !done || self.watches() && self.watch[side_index(side)] > 0
    }

    fn keeps_history(&self, dir: Dir) -> bool {
        // While the handshake is being read: not before it begins (a plaintext prelude, the
        // records of a connection seen from its middle: the bulk of a span port's bytes,
        // which no finding is about), nor while watching for a renegotiation.
        let parser = &self.dirs[dir.index()];
        parser.active()
            && (self.seen_tls || parser.handshake_begun())
            && match self.side(dir) {
                Side::Server => !self.server_done,
                Side::Client => !self.client_done,
            }
    }

    fn is_done(&self) -> bool {
        (self.server_done && self.client_done && (!self.watches() || self.watch == [0, 0]))
            || (!self.dirs[0].active() && !self.dirs[1].active())
            || (!self.seen_tls && self.orphan_records >= 8)
    }

    fn finish(mut self, end: End) -> Option<Handshake> {
        if !self.seen_tls || self.emitted {
            return None;
        }
        let mut hs = std::mem::replace(&mut self.hs, empty_handshake(&self.info));
        self.finalize(&mut hs);
        self.hs = hs;
        let open = !(self.server_done && self.client_done);
        match end {
            End::Closed => {}
            End::CaptureEnded => self.hs.capture_ended = open,
            // A decided handshake watched for a renegotiation ends as it stood.
            End::Evicted(_) if self.settled => {}
            End::Evicted(e) => {
                self.hs.capture_ended = open;
                self.hs.evicted = Some(e);
            }
        }
        Some(self.hs)
    }
}

#[cfg(test)]
mod tests;
