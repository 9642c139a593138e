//! One packet through decode, IP reassembly and TCP reassembly into the TLS stage, twice (the
//! second copy is a retransmission). The first byte picks the link type.
#![no_main]

use chainsniff::capture::Timestamp;
use chainsniff::decode::{Decoded, decode, transport};
use chainsniff::defrag::Defragmenter;
use chainsniff::handshake::TlsConn;
use chainsniff::reassembly::{At, Reassembler};
use chainsniff::udp::UdpFlows;
use libfuzzer_sys::fuzz_target;
use pcap_parser::Linktype;

const LINKTYPES: [i32; 9] = [1, 101, 228, 229, 0, 108, 113, 276, 9];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = Linktype(LINKTYPES[pick as usize % LINKTYPES.len()]);
    let mut reasm = Reassembler::new(TlsConn::new);
    let mut udp = UdpFlows::default();
    let mut defrag = Defragmenter::default();
    for n in 1..=2u64 {
        let at = At {
            frame: n,
            ts: Timestamp::from_parts(1_790_000_000, 0),
        };
        let whole;
        let decoded = match decode(linktype, frame) {
            Ok(Decoded::Fragment(f)) => match defrag.add(at.ts, &f) {
                Some(w) => {
                    whole = w;
                    transport(whole.src, whole.dst, whole.ip_number, &whole.payload)
                }
                None => continue,
            },
            other => other,
        };
        match decoded {
            Ok(Decoded::Tcp(seg)) => reasm.process(at, &seg),
            Ok(Decoded::Udp(d)) => udp.process(at, &d),
            _ => {}
        }
    }
    let _ = reasm.finish();
    let _ = udp.finish();
});
