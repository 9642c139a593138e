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
        let _ = render::text(&r);
        let _ = render::markdown(&r);
        let _ = render::json(&r);
    }
});
