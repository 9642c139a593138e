//! Every input a fuzz target ever failed on (tests/fuzz-regressions/, named
//! `<target>-<what it showed>`), replayed through the reader and the whole analysis.

use std::path::Path;

use chainsniff::{Options, render};

#[test]
fn fuzz_findings_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let mut last = 0;
        let summary = chainsniff::capture::read_from(
            "fuzz",
            Box::new(std::io::Cursor::new(data.clone())),
            |f| {
                assert!(
                    f.number > last,
                    "{}: frame numbers must grow",
                    path.display()
                );
                last = f.number;
            },
            |_| {},
        );
        if let Ok(s) = summary {
            assert!(last <= s.frames);
        }
        let opts = Options {
            no_default_trust: true,
            ..Options::default()
        };
        if let Ok(r) = chainsniff::run_reader("fuzz", Box::new(std::io::Cursor::new(data)), &opts) {
            let (sink, style) = (&mut std::io::sink(), &render::Style::default());
            let _ = render::text::write(&r, sink, style);
            let _ = render::markdown::write(&r, sink, style);
            let _ = render::json::write(&r, sink, style);
        }
        n += 1;
    }
    assert!(n >= 1);
}
