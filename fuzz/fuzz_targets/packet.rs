//! One packet through the stages after the reader (decode, IP reassembly, TCP/UDP
//! conversations, TLS), twice (the second copy is a retransmission), as the analysis runs them.
//! The first byte picks the link type.
#![no_main]

use chainsniff::model::Timestamp;
use chainsniff::analysis::{FramePipeline, Limits};
use chainsniff::capture::Frame;
use libfuzzer_sys::fuzz_target;
use pcap_parser::Linktype;

const LINKTYPES: [i32; 11] = [1, 101, 228, 229, 0, 108, 113, 276, 9, 105, 127];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = Linktype(LINKTYPES[pick as usize % LINKTYPES.len()]);
    let mut pipeline = FramePipeline::new(&Default::default(), Limits::default());
    let mut sink = |_| {};
    for number in 1..=2u64 {
        let f = Frame {
            number,
            ts: Timestamp::from_parts(1_790_000_000, 0),
            linktype,
            data: frame,
            orig_len: frame.len() as u32,
        };
        pipeline.frame(&f, &mut sink);
    }
    let summary = chainsniff::capture::CaptureSummary {
        path: "fuzz".into(),
        format: None,
        compression: chainsniff::capture::Compression::None,
        frames: 2,
        truncated: false,
        warnings: Vec::new(),
    };
    let _ = pipeline.finish(summary, &mut sink);
});
