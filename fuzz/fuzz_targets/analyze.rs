//! The whole analysis on a capture, and every report format: a report or a clean error.
#![no_main]

use chainsniff::{Options, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = Options {
        no_default_trust: true,
        ..Options::default()
    };
    if let Ok(r) =
        chainsniff::run_reader("fuzz", Box::new(std::io::Cursor::new(data.to_vec())), &opts)
    {
        let (sink, style) = (&mut std::io::sink(), &render::Style::default());
        let _ = render::text::write(&r, sink, style);
        let _ = render::markdown::write(&r, sink, style);
        let _ = render::json::write(&r, sink, style);
    }
});
