//! Truncation everywhere: every bundled capture cut at many offsets (the smallest at every
//! byte) gives a report of what came before the cut, says it was truncated, and never calls a
//! chain `incomplete` because its flight was cut.

mod common;
use common::repo;

use std::path::Path;

use chainsniff::Options;
use chainsniff::pki::Status;
use chainsniff::report::Report;

/// Offsets where a frame (pcap record, pcapng block) ends, and where the first frame starts.
fn boundaries(raw: &[u8]) -> (usize, Vec<usize>) {
    let mut ends = Vec::new();
    if raw[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let le = raw[8..12] == [0x4d, 0x3c, 0x2b, 0x1a];
        let u32_at = |o: usize| {
            let b: [u8; 4] = raw[o..o + 4].try_into().unwrap();
            if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let mut o = 0;
        let mut first = None;
        while o + 12 <= raw.len() {
            let kind = u32_at(o);
            let len = u32_at(o + 4) as usize;
            if (kind == 6 || kind == 3) && first.is_none() {
                first = Some(o);
            }
            o += len;
            ends.push(o);
        }
        (first.unwrap(), ends)
    } else {
        let le = raw[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || raw[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
        let mut o = 24;
        ends.push(o);
        while o + 16 <= raw.len() {
            let b: [u8; 4] = raw[o + 8..o + 12].try_into().unwrap();
            let caplen = if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            } as usize;
            o += 16 + caplen;
            ends.push(o);
        }
        (24, ends)
    }
}

fn run(path: &Path, opts: &Options) -> Report {
    chainsniff::run(&[path.to_string_lossy().into_owned()], opts)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

#[test]
fn every_bundled_capture_cut_anywhere_reports_what_came_before() {
    let dir = std::env::temp_dir().join(format!("chainsniff-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(repo("captures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 9, "{names:?}");
    let smallest = names
        .iter()
        .min_by_key(|n| {
            std::fs::metadata(repo(&format!("captures/{n}")))
                .unwrap()
                .len()
        })
        .unwrap()
        .clone();
    let mut cuts_total = 0;
    let mut cut_flights = 0;
    for name in &names {
        let path = repo(&format!("captures/{name}"));
        let mut opts = Options {
            trust: vec![repo("captures/pki/root.pem")],
            no_default_trust: true,
            ..Options::default()
        };
        let keylog = path.with_extension("keylog");
        if keylog.exists() {
            opts.keylog.push(keylog);
        }
        let full = run(&path, &opts);
        assert!(!full.captures[0].summary.truncated, "{name}");
        let raw = std::fs::read(&path).unwrap();
        let (first, ends) = boundaries(&raw);
        assert_eq!(*ends.last().unwrap(), raw.len(), "{name}: frame walk");
        let step = if *name == smallest {
            1
        } else {
            (raw.len() / 1500).max(1)
        };
        let cut_path = dir.join(name);
        for cut in (first..raw.len()).step_by(step) {
            cuts_total += 1;
            std::fs::write(&cut_path, &raw[..cut]).unwrap();
            let r = run(&cut_path, &opts);
            let c = &r.captures[0];
            let at_boundary = ends.contains(&cut);
            assert_eq!(
                c.summary.truncated, !at_boundary,
                "{name} cut at {cut}: {:?}",
                c.summary.warnings
            );
            if c.summary.truncated {
                assert!(
                    // The warning names the record the file ends in: at or before the cut.
                    c.summary
                        .warnings
                        .iter()
                        .any(|w| w.kind == chainsniff::capture::WarningKind::Truncated
                            && w.offset.is_some_and(|o| o < cut as u64)
                            && w.text.contains("truncated")),
                    "{name} cut at {cut}: {:?}",
                    c.summary.warnings
                );
            }
            let frames_read = c.summary.frames;
            for whole in full.handshakes.iter() {
                // Everything the full capture said happened before the cut is reported.
                let Some(ch) = whole.client_hello_frame else {
                    continue;
                };
                if ch > frames_read {
                    continue;
                }
                // A TLS 1.2 renegotiation is a second handshake on its stream.
                let h = r
                    .handshakes
                    .iter()
                    .find(|h| {
                        h.stream == whole.stream
                            && h.transport == whole.transport
                            && h.renegotiation_frame.is_some()
                                == whole.renegotiation_frame.is_some()
                    })
                    .unwrap_or_else(|| {
                        panic!(
                            "{name} cut at {cut} ({frames_read} frames): {} stream {} lost",
                            whole.transport, whole.stream
                        )
                    });
                assert_eq!(h.client_hello_frame, Some(ch), "{name} cut at {cut}");
                assert_eq!(h.sni, whole.sni, "{name} cut at {cut}");
                if whole.certificate_frame.is_some_and(|f| f <= frames_read) {
                    assert_eq!(
                        shas(&h.certificates),
                        shas(&whole.certificates),
                        "{name} cut at {cut}"
                    );
                }
            }
            for h in r.handshakes.iter() {
                let whole = full
                    .handshakes
                    .iter()
                    .find(|w| w.stream == h.stream && w.transport == h.transport)
                    .unwrap_or_else(|| panic!("{name} cut at {cut}: stream {}", h.stream));
                if !h.certificates.is_empty() {
                    // A certificate message is reported whole or not at all.
                    assert_eq!(
                        shas(&h.certificates),
                        shas(&whole.certificates),
                        "{name} cut at {cut}"
                    );
                }
                // A cut never makes a chain `incomplete`.
                if h.status == Status::Incomplete {
                    assert_eq!(whole.status, Status::Incomplete, "{name} cut at {cut}");
                }
                if h.status == Status::Truncated {
                    cut_flights += 1;
                }
            }
        }
    }
    assert!(cuts_total > 10_000, "{cuts_total} cuts");
    assert!(
        cut_flights > 100,
        "only {cut_flights} cuts fell in a flight"
    );
}

fn shas(c: &[std::sync::Arc<chainsniff::pki::CertSummary>]) -> Vec<&str> {
    c.iter().map(|c| c.sha256.as_str()).collect()
}
