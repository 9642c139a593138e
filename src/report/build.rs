//! Building the report on two stages: judging the handshakes, grouping them in order.

use std::collections::HashMap;

use crate::analysis::Analysis;
use crate::pki::Checker;
use crate::spill::{Codec, Packed};

use super::group::variant_label;
use super::handshake::handshake_report;
use super::model::{HandshakeRecords, HandshakeReport, Records, Report, VariantClient};

/// Builds the report: diagnoses every handshake, groups by server and chain variant. Fails
/// only when the temporary file that holds the handshakes cannot be written. Its handshakes
/// are kept [`Records::Packed`]; see [`build_as`].
pub fn build(analysis: &Analysis) -> crate::Result<Report> {
    build_as(analysis, Records::Packed)
}

/// As [`build`], keeping the handshakes as `records` says: [`Records::Json`] for a report
/// that is printed as JSON.
pub fn build_as(analysis: &Analysis, records: Records) -> crate::Result<Report> {
    // Two stages: helper threads read the handshakes back, judge their chains and encode
    // their records ([`judge`]), taking batches in turn; this thread takes the batches back in
    // the same turn and groups them by server and chain ([`group`]). The order, and so the report, is
    // that of one thread.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let batches = analysis.sessions.len().div_ceil(BATCH);
    std::thread::scope(|scope| {
        let mut inboxes = Vec::new();
        for worker in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<Judged>>>(2);
            scope.spawn(move || judge(analysis, records, worker, workers, tx));
            inboxes.push(rx);
        }
        let in_order = (0..batches).map(|b| {
            inboxes[b % workers].recv().unwrap_or_else(|_| {
                Err(std::io::Error::other(
                    "a report thread stopped before its work was done",
                ))
            })
        });
        super::group::group(analysis, records, in_order)
    })
}

/// Handshakes handed from a judging thread to the grouping one at a time.
const BATCH: usize = 64;

/// One handshake's report, with its record (as [`Records`] says) and, when it has a chain,
/// its line in the chain variant's list of clients.
pub(super) struct Judged {
    pub(super) h: HandshakeReport,
    pub(super) record: Vec<u8>,
    pub(super) client: Option<Vec<u8>>,
}

/// The first stage of [`build`]: every handshake's report, in order, in batches.
/// `worker` of `workers` takes batches `worker`, `worker + workers`, ...
fn judge(
    analysis: &Analysis,
    records: Records,
    worker: usize,
    workers: usize,
    tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<Judged>>>,
) {
    let mut checker = Checker::new(&analysis.store, &analysis.trust);
    // Each distinct AIA URL list is looked up once, however many handshakes lack its issuer.
    let mut fetches: HashMap<Vec<String>, Vec<crate::identity::HttpGet>> = HashMap::new();
    let n = analysis.sessions.len();
    for start in (worker * BATCH..n).step_by(workers * BATCH) {
        let batch = (start..n.min(start + BATCH))
            .map(|id| {
                let variant = analysis.sessions.chain_variant(id);
                judge_one(analysis, records, id, variant, &mut checker, &mut fetches)
            })
            .collect();
        if tx.send(batch).is_err() {
            return; // the grouping stage failed and stopped listening
        }
    }
}

/// One handshake's report, its record and its line in its chain variant's list of clients.
fn judge_one(
    analysis: &Analysis,
    records: Records,
    id: usize,
    variant: Option<u32>,
    checker: &mut Checker<'_>,
    fetches: &mut HashMap<Vec<String>, Vec<crate::identity::HttpGet>>,
) -> std::io::Result<Judged> {
    let session = analysis.sessions.get(id)?;
    let mut h = handshake_report(id, &session, &analysis.store, checker);
    for aia in h.findings.iter_mut().filter_map(|f| f.aia.as_mut()) {
        aia.aia_fetches = fetches
            .entry(aia.ca_issuers.clone())
            .or_insert_with(|| analysis.identities.fetches_of(&aia.ca_issuers))
            .clone();
    }
    let mut client = None;
    if let Some(vi) = variant {
        h.chain_variant = Some(variant_label(vi as usize));
        let mut line = Vec::new();
        Packed::encode(
            &VariantClient {
                handshake: h.id,
                client: h.client,
                transport: h.transport.clone(),
                stream: h.stream,
                client_hello_frame: h.client_hello_frame,
                certificate_frame: h.certificate_frame,
                version: h.version.clone(),
                reaction: h.client_reaction.clone(),
            },
            &mut line,
        )?;
        client = Some(line);
    }
    let record = HandshakeRecords::encode(records, &h)?;
    Ok(Judged { h, record, client })
}
