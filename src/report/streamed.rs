//! `--format jsonl`: each handshake's report as soon as it is decided, judged by the same
//! [`handshake_report`] as the final report, with its chain variant labelled in the order chains
//! were decided, and marked `provisional` when the final report may judge it differently; at
//! the end, which lines the final report revised.

use std::collections::HashMap;

use crate::analysis::Session;
use crate::model::Endpoint;
use crate::pki::{CertStore, Checker, FindingKind, Status, Verdict};

use super::group::variant_label;
use super::{HandshakeReport, Report, handshake_report};

/// What identifies a handshake in both the lines and the final report.
type Key = (usize, u64, Option<u64>, Option<u64>);

fn key(h: &HandshakeReport) -> Key {
    (
        h.capture,
        h.stream,
        h.client_hello_frame,
        h.server_hello_frame,
    )
}

/// What a line said, to compare with the final report.
#[derive(PartialEq, Eq)]
struct Said {
    line: usize,
    status: Status,
    verdict: Verdict,
    findings: Vec<FindingKind>,
}

impl Said {
    fn of(line: usize, h: &HandshakeReport) -> Said {
        Said {
            line,
            status: h.status,
            verdict: h.verdict,
            findings: h.findings.iter().map(|f| f.kind).collect(),
        }
    }
}

/// The lines of one `--format jsonl` run.
#[derive(Default)]
pub struct Streamed {
    /// Per server (address, port, SNI): the chains decided so far, in order.
    chains: HashMap<(Endpoint, Option<String>), Vec<Vec<String>>>,
    said: HashMap<Key, Said>,
}

impl Streamed {
    /// The line for the `n`-th handshake decided.
    pub fn line(
        &mut self,
        session: &Session,
        store: &CertStore,
        checker: &mut Checker<'_>,
    ) -> HandshakeReport {
        let n = self.said.len();
        let mut h = handshake_report(n, session, store, checker);
        if !h.certificates.is_empty() {
            let chain: Vec<String> = h.certificates.iter().map(|c| c.sha256.clone()).collect();
            let known = self.chains.entry((h.server, h.sni.clone())).or_default();
            let i = match known.iter().position(|c| *c == chain) {
                Some(i) => i,
                None => {
                    known.push(chain);
                    known.len() - 1
                }
            };
            h.chain_variant = Some(variant_label(i));
        }
        // A certificate still to come in the capture can name the issuer that is unknown now.
        h.provisional = h.findings.iter().any(|f| {
            matches!(
                f.kind,
                FindingKind::MissingIssuer
                    | FindingKind::UnknownIssuer
                    | FindingKind::UntrustedRoot
            )
        });
        self.said.insert(key(&h), Said::of(n, &h));
        h
    }

    /// The lines whose handshake the final report judges differently (status, verdict or
    /// finding kinds), in line order. (Chain variant labels on the lines follow the order the
    /// chains were decided; the final report's follow the ClientHellos.)
    pub fn revised(&self, report: &Report) -> Vec<usize> {
        let mut out: Vec<usize> = report
            .handshakes
            .iter()
            .filter_map(|h| {
                let said = self.said.get(&key(&h))?;
                (Said::of(said.line, &h) != *said).then_some(said.line)
            })
            .collect();
        out.sort_unstable();
        out
    }
}
