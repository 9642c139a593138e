//! chainsniff: a passive, offline TLS handshake analyzer.
//!
//! It reads captures (pcap, pcapng, Network Monitor, snoop), follows every TLS, DTLS, QUIC,
//! STARTTLS and EAP conversation, extracts the handshakes and tells, for every client, which
//! certificate chain each server sent it, whether a strict client accepts that chain, and how
//! the client reacted. The pipeline, one folder per stage:
//!
//! frames ([`capture`]) → segments ([`wire`]) → stream bytes ([`flow`]) → TLS events and
//! handshakes ([`tls`]) → the client's reaction ([`judge`]) and the chain's verdict ([`pki`]) →
//! report ([`report`], printed by [`render`]). [`analysis`] drives the stages; [`model`] is
//! their shared vocabulary and [`Error`] the library's errors. [`run`] does it all in one call.

// No unsafe code but the two calls memmap2 needs (capture/mapped.rs), each justified there.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod analysis;
pub mod capture;
pub mod error;
pub mod export;
pub mod filter;
pub mod flow;
pub mod identity;
pub mod json;
pub mod judge;
pub mod model;
pub mod partial;
pub mod pki;
pub mod render;
pub mod report;
pub mod spill;
pub mod tls;
pub mod wire;

pub use analysis::{Limits, Options, analyze};
pub use error::{Error, Result};
pub use report::{Report, build};

/// Analyzes the captures and builds the report in one call.
pub fn run(paths: &[String], opts: &Options) -> Result<Report> {
    let analysis = analyze(paths, opts)?;
    build(&analysis)
}

/// As [`run`], for one capture read from any byte source (`name` labels it in the report).
pub fn run_reader(
    name: &str,
    input: Box<dyn std::io::Read + Send>,
    opts: &Options,
) -> Result<Report> {
    build(&analysis::analyze_reader(name, input, opts)?)
}

/// As [`run`], and calls `emit` with each handshake's report as soon as the handshake is decided
/// (its chain judged with the certificates seen up to then), for output that streams
/// (`--format jsonl`, a live pipe from tcpdump). Returns the final report and the handshakes
/// (by line, in the order emitted) that it judges differently than their line did.
pub fn run_streaming(
    paths: &[String],
    opts: &Options,
    mut emit: impl FnMut(&report::HandshakeReport),
) -> Result<(Report, Vec<usize>)> {
    let mut lines = report::Streamed::default();
    let analysis = analysis::analyze_streaming(paths, opts, |session, store, trust| {
        let mut checker = pki::Checker::new(store, trust);
        emit(&lines.line(session, store, &mut checker));
    })?;
    let report = report::build_as(&analysis, report::Records::Json)?;
    let revised = lines.revised(&report);
    Ok((report, revised))
}
