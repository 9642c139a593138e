//! DTLS 1.0/1.2 (RFC 6347): records (13-byte header); handshake messages are reassembled from
//! their fragments by message sequence (retransmissions are dropped), rewritten into TLS layout
//! (the ClientHello's cookie removed) and handed to a [`TlsConn`], so certificates are diagnosed
//! as for TLS. Epoch > 0 is encrypted; DTLS 1.3 (RFC 9147) encrypts the certificate
//! (`not_visible`).

use crate::model::{At, Protocol};
use std::collections::{HashMap, HashSet};

use crate::flow::table::{ConnInfo, Dir};
use crate::flow::udp::MAX_BUFFER;
use crate::tls::handshake::TlsConn;
use crate::tls::record::TlsEvent;

// ---------------------------------------------------------------------------------------------
// DTLS

/// DTLS 1.0 as OpenSSL before 0.9.8j wrote it (`DTLS1_BAD_VER`, before RFC 4347's 0xfeff was
/// used on the wire).
pub const DTLS_BAD_VERSION: u16 = 0x0100;

/// A DTLS record header: content type 20–25, version 0xfeff / 0xfefd / 0xfefc, or 0x0100 (old
/// OpenSSL; then the record must also fit the datagram, as 0x0100 is a common pair of bytes).
pub(crate) fn is_dtls(b: &[u8]) -> bool {
    if b.len() < 13 || !(20..=25).contains(&b[0]) {
        return false;
    }
    match u16::from_be_bytes([b[1], b[2]]) {
        0xfeff | 0xfefd | 0xfefc => true,
        DTLS_BAD_VERSION => 13 + u16::from_be_bytes([b[11], b[12]]) as usize <= b.len(),
        _ => false,
    }
}

/// One DTLS handshake message being reassembled from fragments.
struct Partial {
    msg_type: u8,
    body: Vec<u8>,
    /// Byte ranges received so far (merged, in order).
    have: Vec<(usize, usize)>,
}

/// Most disjoint byte ranges a message being reassembled may have (fragments out of order).
const MAX_RANGES: usize = 64;

impl Partial {
    /// Records that bytes `a..b` came, merged with those already here; false (and nothing
    /// recorded) when that would leave more than [`MAX_RANGES`] disjoint ranges.
    fn add(&mut self, mut a: usize, mut b: usize) -> bool {
        let mut merged = Vec::with_capacity(self.have.len() + 1);
        for &(x, y) in &self.have {
            if y < a || x > b {
                merged.push((x, y));
            } else {
                (a, b) = (a.min(x), b.max(y));
            }
        }
        merged.push((a, b));
        if merged.len() > MAX_RANGES {
            return false;
        }
        merged.sort_unstable();
        self.have = merged;
        true
    }

    fn complete(&self) -> bool {
        self.have.first() == Some(&(0, self.body.len()))
    }
}

pub(crate) struct Dtls {
    pub(crate) tls: TlsConn,
    /// Per direction: the message sequences delivered, and messages being assembled. A
    /// message completed after a later one (a datagram reordered, or lost and sent again) is
    /// still delivered.
    delivered: [HashSet<u16>; 2],
    partial: [HashMap<u16, Partial>; 2],
    /// Per direction: bytes held by the messages being assembled (at most [`MAX_BUFFER`]).
    buffered: [usize; 2],
}

impl Dtls {
    pub(crate) fn new(info: ConnInfo) -> Self {
        let mut tls = TlsConn::new(info);
        tls.set_protocol(Protocol::Dtls);
        Dtls {
            tls,
            delivered: [HashSet::new(), HashSet::new()],
            partial: [HashMap::new(), HashMap::new()],
            buffered: [0, 0],
        }
    }

    pub(crate) fn datagram(&mut self, dir: Dir, at: At, mut data: &[u8]) {
        while data.len() >= 13 && is_dtls(data) {
            let epoch = u16::from_be_bytes([data[3], data[4]]);
            let len = u16::from_be_bytes([data[11], data[12]]) as usize;
            let Some(body) = data.get(13..13 + len) else {
                return;
            };
            let header = &data[..13];
            data = &data[13 + len..];
            if data.is_empty() && header[0] == 25 {
                // DTLS 1.3 ACK / unified header content: nothing to read.
                continue;
            }
            match (header[0], epoch) {
                (22, 0) => self.handshake_record(dir, at, body),
                (20, _) => self.tls.record_event(dir, at, TlsEvent::ChangeCipherSpec),
                (21, 0) if body.len() == 2 => self.tls.record_event(
                    dir,
                    at,
                    TlsEvent::Alert {
                        level: body[0],
                        description: body[1],
                    },
                ),
                (21, _) => self.tls.record_event(
                    dir,
                    at,
                    TlsEvent::EncryptedAlert {
                        header: &[],
                        body: &[],
                    },
                ),
                (22, _) => self.tls.record_event(
                    dir,
                    at,
                    TlsEvent::EncryptedHandshake {
                        header: &[],
                        body: &[],
                    },
                ),
                _ => self
                    .tls
                    .record_event(dir, at, TlsEvent::ApplicationData { header, body }),
            }
        }
        // A DTLS 1.3 unified header (001xxxxx) record is encrypted.
        if let Some(&b) = data.first()
            && b & 0xe0 == 0x20
        {
            self.tls.record_event(
                dir,
                at,
                TlsEvent::ApplicationData {
                    header: &data[..1],
                    body: &data[1..],
                },
            );
        }
    }

    fn handshake_record(&mut self, dir: Dir, at: At, mut body: &[u8]) {
        let d = dir.index();
        while body.len() >= 12 {
            let msg_type = body[0];
            let total = u24(&body[1..4]);
            let seq = u16::from_be_bytes([body[4], body[5]]);
            let offset = u24(&body[6..9]);
            let frag_len = u24(&body[9..12]);
            let Some(frag) = body.get(12..12 + frag_len) else {
                return;
            };
            body = &body[12 + frag_len..];
            if total > MAX_BUFFER || offset + frag_len > total {
                continue;
            }
            if self.delivered[d].contains(&seq) {
                // A retransmission of a message already delivered. A whole ClientHello sent
                // again is reported (a client retrying without an answer is worth seeing).
                if msg_type == 1 && offset == 0 && frag_len == total {
                    self.deliver(dir, at, msg_type, frag);
                }
                continue;
            }
            if !self.partial[d].contains_key(&seq) {
                // Each new message reserves its whole length: bounded per direction, so that
                // fragment headers claiming large messages cannot make memory grow without end.
                if self.buffered[d] + total > MAX_BUFFER {
                    continue;
                }
                self.buffered[d] += total;
            }
            let p = self.partial[d].entry(seq).or_insert_with(|| Partial {
                msg_type,
                body: vec![0; total],
                have: Vec::new(),
            });
            if p.body.len() != total || !p.add(offset, offset + frag_len) {
                continue;
            }
            p.body[offset..offset + frag_len].copy_from_slice(frag);
            if p.complete() {
                let p = self.partial[d].remove(&seq).expect("present");
                self.buffered[d] -= total;
                self.delivered[d].insert(seq);
                self.deliver(dir, at, p.msg_type, &p.body);
            }
        }
    }

    /// Hands a complete message to the TLS stage in TLS layout.
    fn deliver(&mut self, dir: Dir, at: At, msg_type: u8, body: &[u8]) {
        match msg_type {
            1 => {
                if let Some(tls_layout) = client_hello_without_cookie(body) {
                    self.tls.handshake_message(dir, at, 1, &tls_layout);
                }
            }
            3 => {} // HelloVerifyRequest: the client will send its ClientHello again
            _ => self.tls.handshake_message(dir, at, msg_type, body),
        }
    }
}

/// A DTLS ClientHello is a TLS ClientHello with a cookie after the session id.
fn client_hello_without_cookie(body: &[u8]) -> Option<Vec<u8>> {
    let sid_len = *body.get(34)? as usize;
    let cookie_at = 35 + sid_len;
    let cookie_len = *body.get(cookie_at)? as usize;
    let rest = body.get(cookie_at + 1 + cookie_len..)?;
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(body.get(..cookie_at)?);
    out.extend_from_slice(rest);
    Some(out)
}

pub(crate) fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}

#[cfg(test)]
pub(crate) mod tests {
    //! The first conversation of captures/dtls-openssl.pcap (frames 1 to 11, UDP payloads):
    //! 127.0.0.10:55823 (OpenSSL s_client) to 127.0.0.10:4433 (s_server), DTLS 1.2 with a
    //! HelloVerifyRequest, a 985-byte Certificate in six fragments, and the client's fatal
    //! unknown_ca alert. Then the end of the second conversation (frames 26 to 31), whose
    //! client went on to epoch 1.

    use super::*;
    use crate::flow::table::{End, StreamHandler};
    use crate::model::Side;
    use crate::model::Timestamp;
    use crate::tls::handshake::{EventKind, Handshake};

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// Frame 1 (client), 235 bytes.
    pub(crate) const CLIENT_HELLO: &str = concat!(
        "16feff000000000000000000de010000d200000000000000d2fefd7412b53d9f8bb28b792152791f6011110c",
        "732b5ad9129f1db58326e3b6edc34100000038c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc0",
        "23c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000700000001a0018000015",
        "6c796e63706f6f6c2e636f6e746f736f2e74657374000b000403000102000a000c000a001d0017001e001900",
        "18002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105",
        "010601030303010302040205020602",
    );
    /// Frame 2 (server), 48 bytes.
    const HELLO_VERIFY_REQUEST: &str = concat!(
        "16feff00000000000000000023030000170000000000000017feff148153373fc9a33a9fd09cceee87534ca6",
        "9d44ffaf",
    );
    /// Frame 3 (client), 255 bytes.
    const CLIENT_HELLO_WITH_COOKIE: &str = concat!(
        "16feff000000000000000100f2010000e600010000000000e6fefd7412b53d9f8bb28b792152791f6011110c",
        "732b5ad9129f1db58326e3b6edc34100148153373fc9a33a9fd09cceee87534ca69d44ffaf0038c02cc03000",
        "9fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d00",
        "3c0035002f00ff010000700000001a00180000156c796e63706f6f6c2e636f6e746f736f2e74657374000b00",
        "0403000102000a000c000a001d0017001e00190018002300000016000000170000000d002a00280403050306",
        "03080708080809080a080b080408050806040105010601030303010302040205020602",
    );
    /// Frame 4 (server), 228 bytes.
    const SERVER_HELLO_CERT_0: &str = concat!(
        "16fefd000000000000000100490200003d000100000000003dfefdecf43c6e98409e4794798f8f61110d474d",
        "29c02fb683f25e69bb3354649c40ba00c030000015ff01000100000b000403000102002300000017000016fe",
        "fd000000000000000200810b0003d900020000000000750003d60003d3308203cf308202b7a0030201020201",
        "03300d06092a864886f70d01010b050030323110300e060355040a0c07436f6e746f736f311e301c06035504",
        "030c15436f6e746f736f2049737375696e67204341203031301e170d3236313132343138333230305a170d32",
        "3930323236313833",
    );
    /// Frame 5 (server), 228 bytes.
    const CERT_1: &str = concat!(
        "16fefd000000000000000300d70b0003d900020000750000cb3230305a30323110300e060355040a0c07436f",
        "6e746f736f311e301c06035504030c156c796e63706f6f6c2e636f6e746f736f2e7465737430820122300d06",
        "092a864886f70d01010105000382010f003082010a0282010100bcdd4bf4b9de6cce7834666f46f5b1f17e7b",
        "b8bed982361b40a56fa1cefc8a6fc6ffc20851988797b4717233fdf8e7ed5ac6751528bef68a71aa81fb13ca",
        "dc3ca5bd07adc3e30b31104ae81d92204f35a351ca8716cbf2182d4370e4e1c6055b1434ebc92f4126d7c1a9",
        "5d401190beec5d97",
    );
    /// Frame 6 (server), 228 bytes.
    const CERT_2: &str = concat!(
        "16fefd000000000000000400d70b0003d900020001400000cb4dc05eaebed5bbcb233438d60b830e8f24043e",
        "f43e8028f3c8bb0c8c0251eb2c1bc97070e4376dac3c8a5d25605ea34836c7e56fe6652e1c2791e8e270c77c",
        "ff7d60749fc617474e3ffa6d73c8452129e1000dc87e67b41ed7910736139c0bf1b308ff88b86f026fb3c18b",
        "2ec2f8d393b5359e73afb532602672d89050cfbd262c98d36a0f4ef3db613485c22fef0203010001a381ef30",
        "81ec300c0603551d130101ff04023000300e0603551d0f0101ff0404030205a030130603551d25040c300a06",
        "082b060105050703",
    );
    /// Frame 7 (server), 228 bytes.
    const CERT_3: &str = concat!(
        "16fefd000000000000000500d70b0003d9000200020b0000cb01301d0603551d0e04160414c0f69f36481588",
        "0296df0eefedae171e5b02ba26301f0603551d230418301680143591724396b3555aa924e03891ffe7c2e65a",
        "91c930330603551d11042c302a82156c796e63706f6f6c2e636f6e746f736f2e746573748211666530312e63",
        "6f6e746f736f2e74657374304206082b0601050507010104363034303206082b060105050730028626687474",
        "703a2f2f706b692e636f6e746f736f2e746573742f69737375696e672d63612e637274300d06092a864886f7",
        "0d01010b05000382",
    );
    /// Frame 8 (server), 228 bytes.
    const CERT_4: &str = concat!(
        "16fefd000000000000000600d70b0003d900020002d60000cb010100a3d09ddfc8b8da84afd835a2ff73b248",
        "0933febec352b529057a5b98332985a7ed0944bb369fab4d98cd6329750013b906a727331aaa73ba12946aa9",
        "89617ec021272dfcde262886e628a3ab3c6bbe1f87cc14eab778a91d765d2d233dc06ac0c3f109c1927b89e0",
        "1dbf08b1dcb1e5de896645c7676b56686f313a5a6fa3dfd7e786d1a147a7383e77e13da291784a213be33f1a",
        "b3abfbba348d3ed1d78a4aaa2f2b34c1f24317d1837a1638cac2764221c813ceb89eafc4abf8442e019861bb",
        "95589e06c7b76da8",
    );
    /// Frame 9 (server), 228 bytes.
    const CERT_5_SKE_0: &str = concat!(
        "16fefd000000000000000700440b0003d900020003a100003824325f733e38edb9161faeddfc635097e96d3f",
        "e252d3fdf9bfd9da8af996d1c2ea2290365c1ed534c44a605e4db76c54ee7044278697fcb816fefd00000000",
        "0000000800860c000128000300000000007a03001d20058221465f05595b3f258be88e29de43c5e38c16d776",
        "43eccc13776cc60fe33908040100534885d169b31b7e08748acfc04231f95886f29eb501abb303afbe37495d",
        "d61189290d7f09963f547bedcc90e3b56d3223960ed3504b2854b3e5d2759cac694cfdcd7a251521db097b03",
        "149d14b2696d9f86",
    );
    /// Frame 10 (server), 224 bytes.
    const SKE_1_HELLO_DONE: &str = concat!(
        "16fefd000000000000000900ba0c000128000300007a0000ae2d06c51294defe1de90f58888d0b1a928de848",
        "37f1313824975a2f243993ea5e4da24ce18f3b8e797b7c3a795314f28bc7724f2616cb18f66bc9ed726848e3",
        "e952f3064a93214014fcf4ab83364814d55f2777e2e717fb42aa375bb0904f0ad8ed9759422bf76c4e5f42f1",
        "e7e062824fec29efa537179c9f72140d68de61aa2ef782a32c6d75f1a978abb3e5b0ede21a01afe089cc6490",
        "1f9fff346273ab3df6722e79c8c0ec449c27b6490af7ce16fefd000000000000000a000c0e00000000040000",
        "00000000",
    );
    /// Frame 11 (client), 15 bytes.
    const ALERT: &str = "15fefd000000000000000200020230";

    /// The conversation in capture order: frame number, direction (the client is Forward),
    /// capture time (microseconds after 1795546940 s), bytes.
    const CONVERSATION: [(u64, Dir, u32, &str); 11] = [
        (1, Dir::Forward, 1432, CLIENT_HELLO),
        (2, Dir::Backward, 1665, HELLO_VERIFY_REQUEST),
        (3, Dir::Forward, 1714, CLIENT_HELLO_WITH_COOKIE),
        (4, Dir::Backward, 2062, SERVER_HELLO_CERT_0),
        (5, Dir::Backward, 2075, CERT_1),
        (6, Dir::Backward, 2082, CERT_2),
        (7, Dir::Backward, 2087, CERT_3),
        (8, Dir::Backward, 2093, CERT_4),
        (9, Dir::Backward, 2742, CERT_5_SKE_0),
        (10, Dir::Backward, 2751, SKE_1_HELLO_DONE),
        (11, Dir::Forward, 3172, ALERT),
    ];

    fn at(frame: u64, micros: u32) -> At {
        At {
            frame,
            ts: Timestamp::from_parts(1_795_546_940, micros * 1000),
        }
    }

    fn conn(client_port: u16, server_port: u16) -> Dtls {
        Dtls::new(ConnInfo {
            stream: 0,
            first_src: format!("127.0.0.10:{client_port}").parse().unwrap(),
            first_dst: format!("127.0.0.10:{server_port}").parse().unwrap(),
            first_at: at(1, 1432),
            part: 0,
        })
    }

    /// Feeds the frames of the first conversation named by `frames`, in that order.
    fn replay(frames: &[u64]) -> Handshake {
        let mut d = conn(55823, 4433);
        for &n in frames {
            let (frame, dir, micros, bytes) = CONVERSATION[n as usize - 1];
            d.datagram(dir, at(frame, micros), &hex(bytes));
        }
        d.tls.finish(End::Closed).expect("a handshake")
    }

    /// The handshake body of the first record of a datagram (after the record header and the
    /// 12-byte DTLS handshake header).
    fn first_message(datagram: &str) -> Vec<u8> {
        let b = hex(datagram);
        let len = u24(&b[13 + 9..13 + 12]);
        b[25..25 + len].to_vec()
    }

    #[test]
    fn record_headers_are_recognized() {
        for (_, _, _, bytes) in CONVERSATION {
            assert!(is_dtls(&hex(bytes)), "{bytes}");
        }
        // The ClientHello's record says DTLS 1.0 (0xfeff), the later ones 1.2 (0xfefd).
        assert_eq!(&hex(CLIENT_HELLO)[..3], [22, 0xfe, 0xff]);
        assert_eq!(&hex(SERVER_HELLO_CERT_0)[..3], [22, 0xfe, 0xfd]);
        // A TLS record header (captures/lync-vip-phones.pcap frame 37's alert) is not DTLS.
        assert!(!is_dtls(&hex("15030300020230000000000000")));
        // A QUIC long header (captures/quic-aioquic.pcap frame 1) is not DTLS.
        assert!(!is_dtls(&hex("cd0000000108af48d87c0994b37d")));
        // 13 bytes at least.
        assert!(!is_dtls(&hex(ALERT)[..12]));
        // Content type 26 is not one.
        let mut b = hex(ALERT);
        b[0] = 26;
        assert!(!is_dtls(&b));
    }

    #[test]
    fn the_old_openssl_version_must_fit_the_datagram() {
        // Frame 11's alert with version 0x0100 (DTLS1_BAD_VER): its length (2) fits.
        let mut b = hex(ALERT);
        b[1..3].copy_from_slice(&DTLS_BAD_VERSION.to_be_bytes());
        assert!(is_dtls(&b));
        // Claiming 3 bytes of body where there are 2: not DTLS (0x0100 is a common pair).
        b[12] = 3;
        assert!(!is_dtls(&b));
    }

    #[test]
    fn the_cookie_is_cut_out_of_the_client_hello() {
        // Frame 3 repeats frame 1 with the 20-byte cookie of frame 2: without the cookie both
        // are the same TLS ClientHello.
        let first = first_message(CLIENT_HELLO);
        let second = first_message(CLIENT_HELLO_WITH_COOKIE);
        assert_eq!((first.len(), second.len()), (210, 230));
        let cookie = &first_message(HELLO_VERIFY_REQUEST)[3..];
        assert_eq!(cookie, hex("8153373fc9a33a9fd09cceee87534ca69d44ffaf"));
        assert_eq!(&second[36..56], cookie);
        let tls = client_hello_without_cookie(&second).unwrap();
        assert_eq!(tls, client_hello_without_cookie(&first).unwrap());
        // client_version 0xfefd, the random, session id length 0, then cipher suites (56 bytes).
        assert_eq!(tls.len(), 209);
        assert_eq!(&tls[..2], [0xfe, 0xfd]);
        assert_eq!(&tls[2..34], &first[2..34]);
        assert_eq!(&tls[34..37], [0x00, 0x00, 0x38]);
        // Cut before the cookie length: no ClientHello.
        assert_eq!(client_hello_without_cookie(&second[..35]), None);
        assert_eq!(client_hello_without_cookie(&second[..40]), None);
    }

    #[test]
    fn u24_reads_big_endian() {
        assert_eq!(u24(&[0x00, 0x03, 0xd9]), 985);
        assert_eq!(u24(&[0x01, 0x02, 0x03, 0xff]), 0x010203);
    }

    #[test]
    fn the_whole_conversation() {
        let h = replay(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(h.protocol, Protocol::Dtls);
        assert_eq!(
            (h.client, h.server),
            (
                "127.0.0.10:55823".parse().unwrap(),
                "127.0.0.10:4433".parse().unwrap()
            )
        );
        // Both ClientHellos (before and after the HelloVerifyRequest), cookie removed.
        let frames: Vec<u64> = h.client_hellos.iter().map(|c| c.at.frame).collect();
        assert_eq!(frames, [1, 3]);
        let ch = &h.client_hellos[1];
        assert_eq!(ch.legacy_version, 0xfefd);
        assert_eq!(ch.sni.as_deref(), Some("lyncpool.contoso.test"));
        assert_eq!(ch.cipher_suites.len(), 28);
        assert_eq!(&ch.cipher_suites[..2], [0xc02c, 0xc030]);
        assert_eq!(ch.random, first_message(CLIENT_HELLO)[2..34]);
        // ServerHello: DTLS 1.2, ECDHE-RSA-AES256-GCM-SHA384.
        assert_eq!(h.server_hellos.len(), 1);
        let sh = &h.server_hellos[0];
        assert_eq!(
            (sh.at.frame, sh.legacy_version, sh.cipher_suite),
            (4, 0xfefd, 0xc030)
        );
        // The Certificate, reassembled from frames 4 to 9: one certificate of 979 bytes.
        let cert = h.certificate.as_ref().expect("certificate");
        assert_eq!(cert.at.frame, 9);
        assert_eq!(cert.certs.len(), 1);
        assert_eq!(cert.certs[0].len(), 979);
        assert_eq!(&cert.certs[0][..4], [0x30, 0x82, 0x03, 0xcf]);
        assert_eq!(h.server_key_exchange.map(|a| a.frame), Some(10));
        assert_eq!(h.server_hello_done.map(|a| a.frame), Some(10));
        // The client's fatal unknown_ca alert.
        let alert = h
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Alert { .. }))
            .expect("alert");
        assert_eq!(
            (alert.side, alert.at.frame, &alert.kind),
            (
                Side::Client,
                11,
                &EventKind::Alert {
                    level: 2,
                    description: 48
                }
            )
        );
        assert!(!h.server_cut);
    }

    #[test]
    fn fragments_in_any_order_make_the_same_certificate() {
        let in_order = replay(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let reversed = replay(&[1, 2, 3, 10, 9, 8, 7, 6, 5, 4]);
        let a = in_order.certificate.expect("certificate");
        let b = reversed.certificate.expect("certificate");
        assert_eq!(a.certs, b.certs);
        // Complete when its last missing fragment (frame 4's) came.
        assert_eq!(b.at.frame, 4);
    }

    #[test]
    fn retransmitted_fragments_are_dropped() {
        // Frames 5 and 6 twice, and the whole flight again after it was delivered.
        let h = replay(&[1, 2, 3, 4, 5, 5, 6, 6, 7, 8, 9, 10, 4, 5, 6, 7, 8, 9, 10]);
        let cert = h.certificate.expect("certificate");
        assert_eq!((cert.at.frame, cert.certs[0].len()), (9, 979));
        assert_eq!(h.server_hellos.len(), 1);
    }

    #[test]
    fn a_missing_fragment_leaves_no_certificate_until_the_flight_is_sent_again() {
        // Without frame 6 (bytes 320 to 522 of the Certificate): no certificate; the messages
        // after it (ServerKeyExchange, ServerHelloDone) are complete and delivered.
        let h = replay(&[1, 2, 3, 4, 5, 7, 8, 9, 10]);
        assert!(h.certificate.is_none());
        assert_eq!(h.server_key_exchange.map(|a| a.frame), Some(10));
        // The server sends its flight again (as after the client's retransmission timer):
        // the Certificate completes with the second copy of frame 6, though later messages
        // were delivered before it.
        let h = replay(&[1, 2, 3, 4, 5, 7, 8, 9, 10, 4, 5, 6, 7, 8, 9, 10]);
        let cert = h.certificate.expect("certificate");
        assert_eq!((cert.at.frame, cert.certs[0].len()), (6, 979));
        assert_eq!(h.server_hellos.len(), 1);
    }

    #[test]
    fn one_reordered_datagram_loses_nothing() {
        // Frame 10 (the end of ServerKeyExchange, and ServerHelloDone) before frame 9 (the
        // end of the Certificate, the start of ServerKeyExchange).
        let h = replay(&[1, 2, 3, 4, 5, 6, 7, 8, 10, 9, 11]);
        let cert = h.certificate.expect("certificate");
        assert_eq!((cert.at.frame, cert.certs[0].len()), (9, 979));
        assert_eq!(h.server_key_exchange.map(|a| a.frame), Some(9));
        assert_eq!(h.server_hello_done.map(|a| a.frame), Some(10));
    }

    #[test]
    fn a_client_hello_sent_again_is_reported_again() {
        let h = replay(&[1, 2, 3, 3]);
        let frames: Vec<u64> = h.client_hellos.iter().map(|c| c.at.frame).collect();
        assert_eq!(frames, [1, 3, 3]);
    }

    /// A handshake record of `msg_type` carrying one fragment: message sequence `seq`, total
    /// length `total`, `frag` at `offset` (RFC 6347 4.2.2), under a DTLS 1.2 epoch-0 header.
    fn fragment_record(
        msg_type: u8,
        seq: u16,
        total: usize,
        offset: usize,
        frag: &[u8],
    ) -> Vec<u8> {
        let u24 = |n: usize| [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let mut hs = vec![msg_type];
        hs.extend_from_slice(&u24(total));
        hs.extend_from_slice(&seq.to_be_bytes());
        hs.extend_from_slice(&u24(offset));
        hs.extend_from_slice(&u24(frag.len()));
        hs.extend_from_slice(frag);
        let mut r = hex("16fefd00000000000000000000");
        r[11..13].copy_from_slice(&(hs.len() as u16).to_be_bytes());
        r.extend_from_slice(&hs);
        r
    }

    #[test]
    fn a_client_hello_in_one_byte_fragments_from_the_end() {
        // Frame 1's 210-byte ClientHello cut into 210 one-byte fragments, sent last first:
        // the ranges merge as they come, one at all times.
        let hello = first_message(CLIENT_HELLO);
        let mut d = conn(55823, 4433);
        for offset in (0..hello.len()).rev() {
            let r = fragment_record(1, 0, hello.len(), offset, &hello[offset..offset + 1]);
            d.datagram(Dir::Forward, at(1, 1432), &r);
            if let Some(p) = d.partial[0].get(&0) {
                assert_eq!(p.have, [(offset, hello.len())]);
            }
        }
        assert!(d.partial[0].is_empty());
        assert_eq!(d.buffered, [0, 0]);
        let h = d.tls.finish(End::Closed).expect("a handshake");
        assert_eq!(h.client_hellos.len(), 1);
        assert_eq!(
            h.client_hellos[0].sni.as_deref(),
            Some("lyncpool.contoso.test")
        );
    }

    #[test]
    fn fragments_cannot_make_memory_grow_without_end() {
        let mut d = conn(55823, 4433);
        // 1000 messages of the server, each claiming 200 000 bytes, one byte of each sent:
        // only the first is kept (the budget is MAX_BUFFER per direction).
        for seq in 100..1100 {
            d.datagram(
                Dir::Backward,
                at(4, 0),
                &fragment_record(11, seq, 200_000, 0, &[0]),
            );
        }
        assert_eq!(d.partial[1].len(), 1);
        assert_eq!(d.buffered[1], 200_000);
        // The same fragment sent again and again: one range.
        for _ in 0..1000 {
            d.datagram(
                Dir::Backward,
                at(4, 0),
                &fragment_record(11, 100, 200_000, 0, &[0]),
            );
        }
        assert_eq!(d.partial[1][&100].have, [(0, 1)]);
        // Every other byte: at most MAX_RANGES disjoint ranges are kept.
        for offset in (10..2000).step_by(2) {
            d.datagram(
                Dir::Backward,
                at(4, 0),
                &fragment_record(11, 100, 200_000, offset, &[0]),
            );
        }
        assert_eq!(d.partial[1][&100].have.len(), MAX_RANGES);
        // The real flight still fits beside it and is reassembled.
        for n in 1..=10 {
            let (frame, dir, micros, bytes) = CONVERSATION[n - 1];
            d.datagram(dir, at(frame, micros), &hex(bytes));
        }
        assert_eq!(d.buffered[1], 200_000);
        let h = d.tls.finish(End::Closed).expect("a handshake");
        assert_eq!(h.certificate.expect("certificate").certs[0].len(), 979);
    }

    /// captures/dtls-openssl.pcap frames 26 to 31 (second conversation, 43699 -> 4434).
    const SECOND_TAIL: [(u64, Dir, &str); 5] = [
        // ServerHelloDone (message sequence 4).
        (
            26,
            Dir::Backward,
            "16fefd000000000000000e000c0e0000000004000000000000",
        ),
        // ClientKeyExchange (sequence 2), ChangeCipherSpec, Finished under epoch 1.
        (
            27,
            Dir::Forward,
            concat!(
                "16fefd0000000000000002002d100000210002000000000021207385e8ab399441de044c25ce6fb6",
                "ef3d48a876b78c71f37b63d6be24e592cd2314fefd000000000000000300010116fefd0001000000",
                "0000000030b2250f5b9d08871ca271af2bb1ba52ccb741cb2ae56fd2bc186d764dabeb19a66bf1d5",
                "192f870ee7b6d80d53f0d4d372",
            ),
        ),
        // ChangeCipherSpec, Finished under epoch 1.
        (
            29,
            Dir::Backward,
            concat!(
                "14fefd000000000000001000010116fefd00010000000000000030f078af151b6c040c1ada917b10",
                "881ef22046f0ea7f99d84fe93d3b770c4bebc0d576347547648493ab2592cfc6ebed82",
            ),
        ),
        // Encrypted alerts (close_notify), epoch 1, each way.
        (
            30,
            Dir::Forward,
            "15fefd0001000000000001001ab2250f5b9d08871d83677b8705154899018d797f6cf0b4cf2ecd",
        ),
        (
            31,
            Dir::Backward,
            "15fefd0001000000000001001af078af151b6c040d99c89ebfd8d0cf1c8277f32b9dff1b1d2a9d",
        ),
    ];

    #[test]
    fn epoch_one_records_are_encrypted_events() {
        let mut d = conn(43699, 4434);
        // The first messages of each side were not seen: the sequence starts where it is.
        for (frame, dir, bytes) in SECOND_TAIL {
            d.datagram(dir, at(frame, 0), &hex(bytes));
        }
        let h = d.tls.finish(End::Closed).expect("a handshake");
        let events: Vec<(Side, u64, EventKind)> = h
            .events
            .iter()
            .map(|e| (e.side, e.at.frame, e.kind.clone()))
            .collect();
        assert_eq!(
            events,
            [
                (Side::Client, 27, EventKind::ClientKeyExchange),
                (Side::Client, 27, EventKind::ChangeCipherSpec),
                (Side::Client, 27, EventKind::EncryptedHandshake),
                (Side::Server, 29, EventKind::ChangeCipherSpec),
                (Side::Server, 29, EventKind::EncryptedHandshake),
                (Side::Client, 30, EventKind::EncryptedAlert),
                (Side::Server, 31, EventKind::EncryptedAlert),
            ]
        );
    }

    #[test]
    fn hostile_lengths_are_skipped_not_panics() {
        let mut d = conn(55823, 4433);
        let t = at(1, 0);
        // A record longer than the datagram: nothing read.
        let mut b = hex(CLIENT_HELLO);
        b[12] = 0xff;
        d.datagram(Dir::Forward, t, &b);
        // A fragment claiming more than its message (offset + length > total).
        let mut b = hex(CLIENT_HELLO);
        b[13 + 8] = 0x01; // fragment offset 1
        d.datagram(Dir::Forward, t, &b);
        // A message larger than MAX_BUFFER.
        let mut b = hex(CLIENT_HELLO);
        b[13 + 1..13 + 4].copy_from_slice(&[0x7f, 0xff, 0xff]);
        d.datagram(Dir::Forward, t, &b);
        // A fragment length past the record.
        let mut b = hex(CLIENT_HELLO);
        b[13 + 9..13 + 12].copy_from_slice(&[0x00, 0x00, 0xff]);
        d.datagram(Dir::Forward, t, &b);
        // Every prefix of every datagram.
        for (_, dir, _, bytes) in CONVERSATION {
            let b = hex(bytes);
            for n in 0..b.len() {
                d.datagram(dir, t, &b[..n]);
            }
        }
        // Nothing of it made a ClientHello; the real one still does.
        d.datagram(Dir::Forward, at(1, 1432), &hex(CLIENT_HELLO));
        let h = d.tls.finish(End::Closed).expect("a handshake");
        assert_eq!(h.client_hellos.len(), 1);
        assert_eq!(
            h.client_hellos[0].sni.as_deref(),
            Some("lyncpool.contoso.test")
        );
    }
}
