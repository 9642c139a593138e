//! The connection state machine on real bytes: TCP stream 1 of `captures/lync-vip-phones.pcap`
//! (a desk phone that gets the leaf only and aborts with unknown_ca), its payloads as tshark
//! prints them (`-T fields -e tcp.payload`), fed to [`TlsConn`] the way the reassembler does.

use super::*;
use crate::flow::StreamHandler;
use crate::model::Timestamp;

/// Frame 33, phone to server: the ClientHello (192 bytes).
const CLIENT_HELLO: &[&str] = &[
    "16030100bb010000b70303eb64e78e08c54d58200bb4106324b55ed0f2607850aa2fa1de5f8d932164313900001ec02c",
    "c030c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff010000700000001a00180000156c796e63706f6f",
    "6c2e636f6e746f736f2e74657374000b000403000102000a000c000a001d0017001e0019001800230000001600000017",
    "0000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602",
];

/// Frame 35, server to phone: ServerHello, Certificate (the leaf only), ServerKeyExchange,
/// ServerHelloDone in one segment (1378 bytes).
const SERVER_FLIGHT: &[&str] = &[
    "16030300410200003d0303bae765c5b7e6dbe11e0c661d1abf24821fc0c1447ef04b44b3085be7658f397c00c0300000",
    "15ff01000100000b000403000102002300000017000016030303dd0b0003d90003d60003d3308203cf308202b7a00302",
    "0102020103300d06092a864886f70d01010b050030323110300e060355040a0c07436f6e746f736f311e301c06035504",
    "030c15436f6e746f736f2049737375696e67204341203031301e170d3236313132343138333230305a170d3239303232",
    "363138333230305a30323110300e060355040a0c07436f6e746f736f311e301c06035504030c156c796e63706f6f6c2e",
    "636f6e746f736f2e7465737430820122300d06092a864886f70d01010105000382010f003082010a0282010100bcdd4b",
    "f4b9de6cce7834666f46f5b1f17e7bb8bed982361b40a56fa1cefc8a6fc6ffc20851988797b4717233fdf8e7ed5ac675",
    "1528bef68a71aa81fb13cadc3ca5bd07adc3e30b31104ae81d92204f35a351ca8716cbf2182d4370e4e1c6055b1434eb",
    "c92f4126d7c1a95d401190beec5d974dc05eaebed5bbcb233438d60b830e8f24043ef43e8028f3c8bb0c8c0251eb2c1b",
    "c97070e4376dac3c8a5d25605ea34836c7e56fe6652e1c2791e8e270c77cff7d60749fc617474e3ffa6d73c8452129e1",
    "000dc87e67b41ed7910736139c0bf1b308ff88b86f026fb3c18b2ec2f8d393b5359e73afb532602672d89050cfbd262c",
    "98d36a0f4ef3db613485c22fef0203010001a381ef3081ec300c0603551d130101ff04023000300e0603551d0f0101ff",
    "0404030205a030130603551d25040c300a06082b06010505070301301d0603551d0e04160414c0f69f364815880296df",
    "0eefedae171e5b02ba26301f0603551d230418301680143591724396b3555aa924e03891ffe7c2e65a91c93033060355",
    "1d11042c302a82156c796e63706f6f6c2e636f6e746f736f2e746573748211666530312e636f6e746f736f2e74657374",
    "304206082b0601050507010104363034303206082b060105050730028626687474703a2f2f706b692e636f6e746f736f",
    "2e746573742f69737375696e672d63612e637274300d06092a864886f70d01010b05000382010100a3d09ddfc8b8da84",
    "afd835a2ff73b2480933febec352b529057a5b98332985a7ed0944bb369fab4d98cd6329750013b906a727331aaa73ba",
    "12946aa989617ec021272dfcde262886e628a3ab3c6bbe1f87cc14eab778a91d765d2d233dc06ac0c3f109c1927b89e0",
    "1dbf08b1dcb1e5de896645c7676b56686f313a5a6fa3dfd7e786d1a147a7383e77e13da291784a213be33f1ab3abfbba",
    "348d3ed1d78a4aaa2f2b34c1f24317d1837a1638cac2764221c813ceb89eafc4abf8442e019861bb95589e06c7b76da8",
    "24325f733e38edb9161faeddfc635097e96d3fe252d3fdf9bfd9da8af996d1c2ea2290365c1ed534c44a605e4db76c54",
    "ee7044278697fcb8160303012c0c00012803001d2028e5ee7161c79d7c2108f79bc7f61fa2b00f0f614e89b9e2d8fc22",
    "f5bcfbc347080401008737712670ae8c284a6a11d9cd1b0425d1d3ed380f6fb9740dac6e56b049a323ee08dcc956c154",
    "c7282209df5ffc14b63587c9e6901bd29ce3c54ce8462701e50ae06a4e5a2af2974636a50bf125f6c574649402857a47",
    "b6b6f3a8f812f977b8a8a35d3b6657a7a82ffbd4aec8cfc687a5fd86a0f95ca786212f6b9bd213bd9f3b0d02ef400d40",
    "377d29b19218ce4638fe34dee1eea630225a4a6619e12898bc654e033787a2b5e39b2f274fb136296b2be6cba56f6c26",
    "58a654570910a2e3a210f1eb2c664a69acab84c9dcffacd96efa7388758ec77a216f610a46ab0a00708c71c38e173725",
    "42e11eecd6116f51eed62a6a9301b086d1d9a92ca6085c323316030300040e000000",
];

/// Frame 37, phone to server: alert fatal unknown_ca.
const ALERT: &str = "15030300020230";

fn bytes(parts: &[&str]) -> Vec<u8> {
    hex::decode(parts.concat()).unwrap()
}

fn at(frame: u64) -> At {
    At {
        frame,
        ts: Timestamp::from_parts(1_764_000_000, frame as u32),
    }
}

fn conn() -> TlsConn {
    TlsConn::new(ConnInfo {
        stream: 1,
        first_src: "127.0.1.11:40000".parse().unwrap(),
        first_dst: "127.0.0.10:443".parse().unwrap(),
        first_at: at(31),
        part: 0,
    })
}

/// The leaf's DER, cut from the flight by hand: the ServerHello's record (5 + its length),
/// the Certificate's record header (5), message header (4), list length (3), certificate
/// length (3).
fn leaf_der() -> Vec<u8> {
    let f = bytes(SERVER_FLIGHT);
    let cert = 5 + u16::from_be_bytes([f[3], f[4]]) as usize + 5;
    assert_eq!(f[cert], 11, "a Certificate message follows the ServerHello");
    let len = u32::from_be_bytes([0, f[cert + 7], f[cert + 8], f[cert + 9]]) as usize;
    f[cert + 10..cert + 10 + len].to_vec()
}

#[test]
fn a_leaf_only_flight_and_the_phones_alert() {
    let mut c = conn();
    c.on_data(Dir::Forward, at(33), &bytes(CLIENT_HELLO));
    c.on_data(Dir::Backward, at(35), &bytes(SERVER_FLIGHT));
    c.on_data(Dir::Forward, at(37), &hex::decode(ALERT).unwrap());
    let hs = c.finish(End::Closed).expect("a handshake");
    let ch = &hs.client_hellos[0];
    assert_eq!(ch.at.frame, 33);
    assert_eq!(ch.sni.as_deref(), Some("lyncpool.contoso.test"));
    assert_eq!(
        hex::encode(&ch.random),
        "eb64e78e08c54d58200bb4106324b55ed0f2607850aa2fa1de5f8d9321643139"
    );
    assert_eq!(ch.cipher_suites.len(), 15);
    assert!(ch.session_id.is_empty());
    let sh = &hs.server_hellos[0];
    assert_eq!((sh.at.frame, sh.cipher_suite), (35, 0xc030));
    assert_eq!(hs.version(), Some(0x0303));
    let cert = hs.certificate.as_ref().expect("the Certificate message");
    assert_eq!(cert.at.frame, 35);
    assert_eq!(cert.certs, vec![leaf_der()]);
    assert_eq!(cert.certs[0].len(), 979);
    assert_eq!(hs.server_key_exchange.map(|a| a.frame), Some(35));
    assert_eq!(hs.server_hello_done.map(|a| a.frame), Some(35));
    let alert = hs
        .first(Side::Client, |k| matches!(k, EventKind::Alert { .. }))
        .expect("the alert");
    assert_eq!(alert.at.frame, 37);
    assert_eq!(
        alert.kind,
        EventKind::Alert {
            level: 2,
            description: 48 // unknown_ca
        }
    );
    assert_eq!(hs.client.to_string(), "127.0.1.11:40000");
    assert_eq!(hs.server.to_string(), "127.0.0.10:443");
}

#[test]
fn a_flight_in_pieces_completes_in_the_frame_of_its_last_piece() {
    let flight = bytes(SERVER_FLIGHT);
    let mut c = conn();
    c.on_data(Dir::Forward, at(33), &bytes(CLIENT_HELLO));
    // Cut inside the record header, inside the ServerHello, inside the certificate.
    for (frame, piece) in [
        (35, &flight[..3]),
        (36, &flight[3..60]),
        (38, &flight[60..500]),
    ] {
        c.on_data(Dir::Backward, at(frame), piece);
    }
    c.on_data(Dir::Backward, at(40), &flight[500..]);
    let hs = c.finish(End::Closed).expect("a handshake");
    assert_eq!(hs.server_hellos[0].at.frame, 38);
    let cert = hs.certificate.as_ref().unwrap();
    assert_eq!(cert.at.frame, 40);
    assert_eq!(cert.certs, vec![leaf_der()]);
}

#[test]
fn a_cut_flight_leaves_no_certificate_and_says_the_server_was_cut() {
    let flight = bytes(SERVER_FLIGHT);
    let mut c = conn();
    c.on_data(Dir::Forward, at(33), &bytes(CLIENT_HELLO));
    c.on_data(Dir::Backward, at(35), &flight[..700]);
    c.on_gap(Dir::Backward, at(36), 678);
    let hs = c.finish(End::CaptureEnded).expect("a handshake");
    assert!(hs.certificate.is_none());
    assert_eq!(hs.server_hellos.len(), 1);
    assert!(hs.server_cut);
    let gap = hs
        .first(Side::Server, |k| matches!(k, EventKind::Gap { .. }))
        .unwrap();
    assert_eq!(
        (gap.at.frame, &gap.kind),
        (
            36,
            &EventKind::Gap {
                len: 678,
                snaplen: false
            }
        )
    );
}
