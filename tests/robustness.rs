//! Bad input never panics: the bundled captures with bytes flipped, runs of bytes overwritten,
//! and packets duplicated, all analyzed to a report (or a clean error), never a panic.

use std::path::Path;

mod common;
use common::synth::Rng;

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    // Keep the file header so the mutants reach the packet parsers.
    let header = 200.min(b.len());
    for _ in 0..1 + rng.index(8) {
        let at = header + rng.index(b.len() - header);
        match rng.index(4) {
            0 => b[at] ^= 1 << rng.index(8),
            1 => b[at] = [0x00, 0xff, 0x7f, 0x80, 0x16, 0x03][rng.index(6)],
            2 => {
                let len = rng.index(16).min(b.len() - at);
                for x in &mut b[at..at + len] {
                    *x = rng.next() as u8;
                }
            }
            _ => {
                // Duplicate a slice in place (shifts everything after it).
                let len = rng.index(64).min(b.len() - at);
                let dup = b[at..at + len].to_vec();
                b.splice(at..at, dup);
            }
        }
    }
    b
}

#[test]
fn mutated_captures_never_panic() {
    let dir = std::env::temp_dir().join(format!("chainsniff-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut reports = 0;
    for name in [
        "lync-vip-before.pcapng",
        "lync-vip-fixed.pcap",
        // TLS 1.3 with an embedded key log: mutations reach the decryption path.
        "tls13-openssl-dsb.pcapng",
    ] {
        let base = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("captures")
                .join(name),
        )
        .unwrap();
        for i in 0..300 {
            let m = mutate(&mut rng, &base);
            let path = dir.join(format!("m-{i}-{name}"));
            std::fs::write(&path, &m).unwrap();
            let p = path.to_string_lossy().into_owned();
            let result = std::panic::catch_unwind(|| {
                chainsniff::run(std::slice::from_ref(&p), &Default::default()).and_then(|r| {
                    let (sink, style) = (&mut std::io::sink(), &Default::default());
                    chainsniff::render::text::write(&r, sink, style)?;
                    chainsniff::render::json::write(&r, sink, style)?;
                    Ok(())
                })
            });
            match result {
                Ok(Ok(_)) => reports += 1,
                Ok(Err(_)) => {} // a clean error (exit 2 in the CLI) is fine
                Err(_) => panic!("mutant {i} of {name} made chainsniff panic (kept at {p})"),
            }
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert!(reports > 750, "only {reports} mutants produced a report");
}
