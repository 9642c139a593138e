//! Per-stage benchmarks (`cargo bench`), on a bundled capture held in memory so that only the
//! stage is measured: reading frames, decoding them, TCP reassembly into the TLS stage, and the
//! whole analysis with its report. The whole-process benchmark on large captures is
//! `benches/run.sh`.

use chainsniff::model::{At, Timestamp};
use std::io::Cursor;

use chainsniff::capture::read_from;
use chainsniff::flow::Reassembler;
use chainsniff::tls::handshake::TlsConn;
use chainsniff::wire::{Decoded, decode};
use chainsniff::{Options, render};
use divan::counter::BytesCount;

fn main() {
    divan::main();
}

fn capture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/lync-vip-before.pcapng"
    ))
    .unwrap()
}

/// Owned frames of the capture: (link type, bytes).
fn frames() -> Vec<(pcap_parser::Linktype, Vec<u8>)> {
    let mut out = Vec::new();
    read_from(
        "bench",
        Box::new(Cursor::new(capture())),
        |f| out.push((f.linktype, f.data.to_vec())),
        |_| {},
    )
    .unwrap();
    out
}

#[divan::bench]
fn read_frames(bencher: divan::Bencher) {
    let data = capture();
    bencher.counter(BytesCount::new(data.len())).bench(|| {
        let mut n = 0u64;
        read_from(
            "bench",
            Box::new(Cursor::new(data.clone())),
            |_| n += 1,
            |_| {},
        )
        .unwrap();
        n
    });
}

#[divan::bench]
fn decode_frames(bencher: divan::Bencher) {
    let frames = frames();
    let bytes: usize = frames.iter().map(|(_, f)| f.len()).sum();
    bencher.counter(BytesCount::new(bytes)).bench(|| {
        frames
            .iter()
            .filter(|(lt, f)| matches!(decode(*lt, f), Ok(Decoded::Tcp(_))))
            .count()
    });
}

#[divan::bench]
fn reassemble_and_extract_tls(bencher: divan::Bencher) {
    let frames = frames();
    let bytes: usize = frames.iter().map(|(_, f)| f.len()).sum();
    bencher.counter(BytesCount::new(bytes)).bench(|| {
        let mut r = Reassembler::new(TlsConn::new);
        for (i, (lt, f)) in frames.iter().enumerate() {
            if let Ok(Decoded::Tcp(seg)) = decode(*lt, f) {
                let at = At {
                    frame: i as u64 + 1,
                    ts: Timestamp::from_parts(1_796_000_000, 0),
                };
                r.process(at, &seg);
            }
        }
        r.finish().0.len()
    });
}

#[divan::bench]
fn analyze_and_report(bencher: divan::Bencher) {
    let data = capture();
    let opts = Options {
        trust: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/captures/pki/root.pem").into()],
        no_default_trust: true,
        ..Options::default()
    };
    bencher.counter(BytesCount::new(data.len())).bench(|| {
        let r =
            chainsniff::run_reader("bench", Box::new(Cursor::new(data.clone())), &opts).unwrap();
        let mut text = Vec::new();
        render::text::write(&r, &mut text, &render::Style::default()).unwrap();
        text.len()
    });
}
