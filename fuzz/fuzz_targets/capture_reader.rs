//! The capture reader (pcap, pcapng, compressed) on arbitrary bytes: frames or an error, no panic.
//! Frame numbers only grow (a skipped frame still takes its number, as in Wireshark).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut last = 0u64;
    let result = chainsniff::capture::read_from(
        "fuzz",
        Box::new(std::io::Cursor::new(data.to_vec())),
        |f| {
            assert!(f.number > last, "frame numbers must grow");
            last = f.number;
        },
        |_| {},
    );
    if let Ok(summary) = result {
        assert!(last <= summary.frames);
    }
});
