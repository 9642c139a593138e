//! TCP byte streams through the TLS extractor. The input is a list of chunks, each a header
//! byte (bit 7: from the server; bit 6: a gap before it; bit 5: end with FIN) and a 16-bit
//! length, then the bytes.
#![no_main]

use chainsniff::model::At;
use chainsniff::model::Timestamp;
use chainsniff::tls::handshake::TlsConn;
use chainsniff::flow::{ConnInfo, Dir, End, StreamHandler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let info = ConnInfo {
        stream: 0,
        first_src: "10.0.0.1:50000".parse().unwrap(),
        first_dst: "10.0.0.2:443".parse().unwrap(),
        first_at: At {
            frame: 1,
            ts: Timestamp::from_parts(1_790_000_000, 0),
        },
        part: 0,
    };
    let mut conn = TlsConn::new(info);
    conn.on_syn(Dir::Forward, false);
    let mut rest = data;
    let mut frame = 1;
    while rest.len() >= 3 {
        let (h, len) = (rest[0], u16::from_be_bytes([rest[1], rest[2]]) as usize);
        rest = &rest[3..];
        let chunk = &rest[..len.min(rest.len())];
        rest = &rest[chunk.len()..];
        frame += 1;
        let dir = if h & 0x80 != 0 {
            Dir::Backward
        } else {
            Dir::Forward
        };
        let at = At {
            frame,
            ts: Timestamp::from_parts(1_790_000_000, frame as u32),
        };
        if h & 0x40 != 0 {
            conn.on_gap(dir, at, u64::from(h & 0x1f) + 1);
        }
        if conn.wants_data(dir) {
            conn.on_data(dir, at, chunk);
        }
        if h & 0x20 != 0 {
            conn.on_fin(dir, at);
        }
        if conn.is_done() {
            break;
        }
    }
    let _ = conn.finish(End::CaptureEnded);
});
