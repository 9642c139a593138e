//! Partial analyses: what reading some captures built, before any chain is judged
//! ([`CapturePart`]), in a file that `chainsniff merge` combines with others into the report
//! `chainsniff analyze` gives for all the captures together.
//!
//! A partial is written by `chainsniff analyze --partial OUT CAPTURE...` (on one machine of a
//! cluster, say) and holds the captures' summaries and counters, the host identities, every
//! distinct certificate with the places it was sent, and every handshake as read. Its size
//! grows with the handshakes and certificates, not with the capture bytes. Merging partials in
//! capture order absorbs them exactly as `analyze` absorbs the captures it reads in parallel,
//! so the report is the same byte for byte; a merge can be written as a partial again
//! (`merge --partial OUT`), for a tree reduction.
//!
//! The files of one capture (a ring buffer's) can be analyzed apart and still give the report
//! of the whole capture: the partial of file `k` is made with `--after` file `k-1`, which is
//! read first only to go on with the conversations still open at its end. Each partial keeps
//! apart what ending its last file added (the handshakes still open then, and the counters;
//! its *tail*): the merge keeps it unless the next partial went on with the capture, which
//! then has those handshakes whole.
//!
//! The file: the line `chainsniff partial` and the format version (`u32`, little-endian), then
//! a Zstandard stream of blocks, each a `u32` little-endian length and its bytes: first the
//! `Meta` (JSON), then each certificate (postcard of DER and sightings), then each handshake
//! in report order, then each handshake of the tail with its certificates (postcard of
//! [`Session`], as the spill stores them).

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analysis::{CapturePart, Counts, FileRecord, Session, Tail, report_key};
use crate::capture::{CaptureSummary, Compression, Warning};
use crate::identity::{Identities, Tables};
use crate::pki::Sighting;
use crate::{Error, Result};

/// The first bytes of a partial.
const MAGIC: &[u8] = b"chainsniff partial\n";

/// The version of the format this build writes and reads. A partial of another version is
/// refused: the handshakes inside are the pipeline's own types, which change between versions.
pub const FORMAT_VERSION: u32 = 1;

/// Largest block read back (a handshake with its certificates is far smaller).
const MAX_BLOCK: usize = 256 << 20;

/// What a partial says of itself and of its files, besides the certificates and handshakes
/// that follow it.
#[derive(Serialize, Deserialize)]
struct Meta {
    /// The chainsniff that wrote it.
    generator: String,
    /// The options that change what is read (`--client`, `--max-flows`, ...): partials merged
    /// together must have been read alike.
    reading: Vec<String>,
    max_flows: usize,
    max_handshake_bytes: usize,
    /// The file read before the first only to go on with its conversations (`--after`): the
    /// handshakes' capture indices count it as capture 0.
    after: Option<String>,
    files: Vec<FileRecord>,
    identities: Tables,
    filtered_out: usize,
    certificates: usize,
    handshakes: usize,
    tail_handshakes: usize,
    tail_filtered_out: usize,
    tail_counts: Counts,
    /// The report keys ([`report_key`]) of the handshakes whose ClientHello is in the lead-in
    /// (`--after`), in the body or the tail: each takes the place of the partial before's
    /// tail handshake with the same key.
    heads: Vec<u64>,
    /// The keys of the tail's handshakes a `cut_between_partials` warning already counts (a
    /// merge written as a partial again): a later merge does not count them again.
    warned: Vec<u64>,
}

/// A place a certificate was sent, as stored ([`Sighting`] with its transport by name).
#[derive(Serialize, Deserialize)]
struct Seen {
    transport: String,
    capture: usize,
    stream: u64,
    frame: u64,
    server: SocketAddr,
}

/// The parts of partials merged: the analysis, and for a merge written as a partial again
/// what it needs to go on.
pub struct Merged {
    /// The analysis of every capture of the partials (with the last partial's tail, ended,
    /// unless it is to be written as a partial again).
    pub part: CapturePart,
    /// The options that changed what was read, one per element (`--max-flows 1000`).
    pub reading: Vec<String>,
    /// The file the first partial went on from (`--after`), if any.
    pub after: Option<String>,
}

/// The reading options of `opts` a partial records.
pub fn reading(opts: &crate::Options) -> Vec<String> {
    let defaults = crate::Limits::default();
    let mut r = opts.filter.given().to_vec();
    if opts.limits.max_flows != defaults.max_flows {
        r.push(format!("--max-flows {}", opts.limits.max_flows));
    }
    if opts.limits.max_handshake_bytes != defaults.max_handshake_bytes {
        r.push(format!(
            "--max-handshake-bytes {}",
            opts.limits.max_handshake_bytes
        ));
    }
    r
}

/// Writes `part` to `out` (through a temporary file beside it, renamed when complete, so a
/// partial that exists is whole). `after` is the file read before its first (`--after`).
pub fn write(
    part: &CapturePart,
    reading: &[String],
    after: Option<&str>,
    out: &Path,
) -> Result<()> {
    let cannot = |e: std::io::Error| Error::Partial(format!("cannot write {}: {e}", out.display()));
    let tmp = out.with_file_name(format!(
        ".{}.tmp{}",
        out.file_name()
            .map_or("partial".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp).map_err(cannot)?;
    let written = write_to(part, reading, after, BufWriter::new(file));
    let written = written.and_then(|()| std::fs::rename(&tmp, out));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(cannot(e));
    }
    Ok(())
}

fn write_to(
    part: &CapturePart,
    reading: &[String],
    after: Option<&str>,
    mut w: impl Write,
) -> std::io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())?;
    let mut z = zstd::Encoder::new(w, 3)?;
    let meta = Meta {
        generator: format!("chainsniff {}", env!("CARGO_PKG_VERSION")),
        reading: reading.to_vec(),
        max_flows: part.limits.max_flows,
        max_handshake_bytes: part.limits.max_handshake_bytes,
        after: after.map(str::to_string),
        files: part.files.clone(),
        identities: part.identities.tables(),
        filtered_out: part.filtered_out,
        certificates: part.store.entries().count(),
        handshakes: part.sessions.len(),
        tail_handshakes: part.tail.sessions.len(),
        tail_filtered_out: part.tail.filtered_out,
        tail_counts: part.tail.counts.clone(),
        heads: Vec::new(),
        warned: part.warned.clone(),
    };
    let mut meta = meta;
    if after.is_some() {
        for i in 0..part.sessions.len() {
            let s = part.sessions.get(i)?;
            if s.capture == 0 {
                meta.heads.push(report_key(&s));
            }
        }
        let tail = part.tail.sessions.iter().filter(|s| s.capture == 0);
        meta.heads.extend(tail.map(report_key));
    }
    let encode = |e: postcard::Error| std::io::Error::other(e);
    block(
        &mut z,
        &serde_json::to_vec(&meta).map_err(std::io::Error::other)?,
    )?;
    for (der, sightings) in part.store.entries() {
        let seen: Vec<Seen> = sightings
            .iter()
            .map(|s| Seen {
                transport: s.transport.to_string(),
                capture: s.capture,
                stream: s.stream,
                frame: s.frame,
                server: s.server,
            })
            .collect();
        block(
            &mut z,
            &postcard::to_allocvec(&(der, seen)).map_err(encode)?,
        )?;
    }
    for i in 0..part.sessions.len() {
        let session = part.sessions.get(i)?;
        block(&mut z, &postcard::to_allocvec(&session).map_err(encode)?)?;
    }
    for session in &part.tail.sessions {
        block(&mut z, &postcard::to_allocvec(session).map_err(encode)?)?;
    }
    z.finish()?.flush()
}

fn block(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(bytes)
}

/// A partial for captures that could not be read: each is named with the error (a
/// `not_analyzed` warning), nothing else, so that a merge says which captures are missing.
pub fn failed(paths: &[String], error: &str, opts: &crate::Options) -> CapturePart {
    CapturePart {
        files: paths
            .iter()
            .map(|p| FileRecord {
                summary: CaptureSummary {
                    path: p.clone(),
                    format: None,
                    compression: Compression::None,
                    frames: 0,
                    truncated: false,
                    warnings: vec![Warning::not_analyzed(error)],
                },
                counts: Counts::default(),
                joined: None,
            })
            .collect(),
        limits: opts.limits,
        ..CapturePart::default()
    }
}

/// A partial opened, its meta read: the certificates and handshakes follow in `z`.
struct Opened {
    meta: Meta,
    z: zstd::Decoder<'static, BufReader<BufReader<std::fs::File>>>,
}

/// Opens the partial at `path` and reads its meta.
fn open(path: &Path) -> Result<Opened> {
    let bad = |what: String| Error::Partial(format!("{}: {what}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mut r = BufReader::new(file);
    let mut head = vec![0u8; MAGIC.len() + 4];
    if r.read_exact(&mut head).is_err() || !head.starts_with(MAGIC) {
        return Err(bad(
            "not a chainsniff partial (make one with chainsniff analyze --partial OUT CAPTURE...)"
                .into(),
        ));
    }
    let version = u32::from_le_bytes(head[MAGIC.len()..].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "a partial of format version {version}; this chainsniff ({}) reads version {FORMAT_VERSION}: make the partials again with this chainsniff",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let mut z = zstd::Decoder::new(r).map_err(|e| bad(format!("damaged: {e}")))?;
    let meta: Meta = next_block(&mut z)
        .map_err(|e| bad(format!("damaged or cut short: {e}")))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| bad(format!("damaged: {e}"))))?;
    Ok(Opened { meta, z })
}

/// Reads the rest of an opened partial into a part, its capture indices moved up by `shift`;
/// its tail, when `tail` says so.
fn read_rest(
    path: &Path,
    opened: Opened,
    shift: usize,
    keep: &dyn Fn(&Session) -> bool,
) -> Result<(CapturePart, Tail)> {
    let bad = |what: String| Error::Partial(format!("{}: {what}", path.display()));
    let cut = |e: std::io::Error| bad(format!("damaged or cut short: {e}"));
    let Opened { meta, mut z } = opened;
    let mut part = CapturePart {
        files: meta.files,
        limits: crate::Limits {
            max_flows: meta.max_flows,
            max_handshake_bytes: meta.max_handshake_bytes,
        },
        identities: Identities::from_tables(meta.identities),
        filtered_out: meta.filtered_out,
        ..CapturePart::default()
    };
    for _ in 0..meta.certificates {
        let (der, seen): (Vec<u8>, Vec<Seen>) =
            postcard::from_bytes(&next_block(&mut z).map_err(cut)?)
                .map_err(|e| bad(format!("damaged certificate: {e}")))?;
        let seen: Vec<Sighting> = seen
            .into_iter()
            .map(|s| Sighting {
                transport: transport(&s.transport),
                capture: s.capture + shift,
                stream: s.stream,
                frame: s.frame,
                server: s.server,
            })
            .collect();
        part.store.add_seen(&der, &seen);
    }
    let session = |z: &mut zstd::Decoder<'static, _>| -> Result<Session> {
        let mut s: Session = postcard::from_bytes(&next_block(z).map_err(cut)?)
            .map_err(|e| bad(format!("damaged handshake: {e}")))?;
        s.capture += shift;
        s.base += shift;
        Ok(s)
    };
    for _ in 0..meta.handshakes {
        let s = session(&mut z)?;
        if keep(&s) {
            part.sessions.push_last(&s)?;
        }
    }
    let mut ended = Tail {
        filtered_out: meta.tail_filtered_out,
        counts: meta.tail_counts,
        ..Tail::default()
    };
    for _ in 0..meta.tail_handshakes {
        let s = session(&mut z)?;
        if keep(&s) {
            ended.sessions.push(s);
        }
    }
    Ok((part, ended))
}

fn next_block(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_BLOCK {
        return Err(std::io::Error::other(format!("a block of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The transport names a sighting has ([`crate::tls::Handshake::transport`]).
fn transport(name: &str) -> &'static str {
    match name {
        "tcp" => "tcp",
        "eapol" => "eapol",
        _ => "udp",
    }
}

/// Reads the partials in order and absorbs them: the part of all their captures, in report
/// order. A partial's tail is kept unless the next partial goes on with its capture
/// (`--after`). With `keep_tail` the last partial's tail stays a tail (for a merge written as
/// a partial again). Partials read with other options than the first are refused, and so is
/// one made `--after` a file that is not the last of the partial before it.
pub fn merge(paths: &[impl AsRef<Path>], keep_tail: bool) -> Result<Merged> {
    let paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
    if paths.is_empty() {
        return Err(Error::Partial("no partial to merge".into()));
    }
    // The metas first: whether each tail is kept depends on the partial after it.
    let metas: Vec<Meta> = paths
        .iter()
        .map(|p| open(p).map(|o| o.meta))
        .collect::<Result<_>>()?;
    check_order(&paths, &metas, keep_tail)?;
    // Capture 0 of a partial made --after a file is that file.
    let mut next_capture = usize::from(metas[0].after.is_some());
    let mut all = CapturePart::default();
    // The tail of the partials so far: what ending the capture at the last one's end would
    // add, unless the next goes on with the capture.
    let mut pending = Tail::default();
    // The keys of the handshakes of a tail that go on beyond the next partial's lead-in.
    let mut deferred: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let lift = |keys: &[u64], shift: usize| {
        keys.iter()
            .map(|k| k + ((shift as u64) << crate::model::PART_SHIFT))
            .collect::<Vec<u64>>()
    };
    for (i, path) in paths.iter().enumerate() {
        let meta = &metas[i];
        let shift = next_capture - usize::from(meta.after.is_some());
        next_capture += meta.files.len();
        deferred.extend(lift(&meta.warned, shift));
        let continues =
            meta.after.is_some() && meta.files.first().is_some_and(|f| f.joined.is_some());
        // The handshakes of the tail before that this partial has whole (their ClientHello in
        // its lead-in), by key; its other lead-in handshakes were decided before (the partial
        // before has them) or are not the same conversation.
        let mut taken: std::collections::HashSet<u64> = std::collections::HashSet::new();
        if continues {
            let heads: std::collections::HashSet<u64> =
                lift(&meta.heads, shift).into_iter().collect();
            pending.sessions.retain(|s| {
                let key = report_key(s);
                let whole_here = heads.contains(&key);
                if whole_here {
                    taken.insert(key);
                }
                !whole_here
            });
            // Those left began before this partial's lead-in: it cannot go on with them. And
            // a handshake this partial found still open at the end of its lead-in, which the
            // partial before decided in that file, was seen differently by the two (each
            // lacks what came before its first file): the partial before's stays.
            let cut = pending
                .sessions
                .iter()
                .filter(|s| deferred.insert(report_key(s)))
                .count()
                + if i > 0 { heads.len() - taken.len() } else { 0 };
            if let (true, Some(last)) = (cut > 0, all.files.last_mut()) {
                last.summary
                    .warnings
                    .push(Warning::cut_between_partials(cut));
            }
            // What ending the capture counted is counted again at its new end.
            pending.counts = Counts::default();
        } else {
            all.end_with(std::mem::take(&mut pending))?;
        }
        let head = |s: &Session| meta.after.is_some() && s.capture == shift;
        // The first partial's heads wait for a merge with the partial before it.
        let keep = |s: &Session| !head(s) || i == 0 || taken.contains(&report_key(s));
        let (part, tail) = read_rest(path, open(path)?, shift, &keep)?;
        if i == 0 {
            all = part;
        } else {
            all.absorb(part)?;
        }
        // Handshakes of an earlier tail this partial did not have whole stay open until the
        // capture ends (they crossed more than one file).
        pending.sessions.extend(tail.sessions);
        pending.filtered_out += tail.filtered_out;
        pending.counts = tail.counts;
    }
    if keep_tail {
        all.warned = pending
            .sessions
            .iter()
            .map(report_key)
            .filter(|k| deferred.contains(k))
            .collect();
        all.tail = pending;
    } else {
        all.end_with(pending)?;
    }
    all.sessions.sort()?;
    Ok(Merged {
        part: all,
        reading: metas[0].reading.clone(),
        after: metas[0].after.clone(),
    })
}

/// The partials can be merged in this order: read alike, each made `--after` the last file of
/// the one before, and the first not `--after` a file unless the merge is a partial again.
fn check_order(paths: &[&Path], metas: &[Meta], keep_tail: bool) -> Result<()> {
    for (i, m) in metas.iter().enumerate().skip(1) {
        if m.reading != metas[0].reading {
            return Err(Error::Partial(format!(
                "{}: read with {}, {} with {}: make the partials with the same options",
                paths[i].display(),
                options(&m.reading),
                paths[0].display(),
                options(&metas[0].reading)
            )));
        }
        if let Some(after) = &m.after {
            let before = metas[i - 1].files.last().map(|f| f.summary.path.as_str());
            if before != Some(after.as_str()) {
                return Err(Error::Partial(format!(
                    "{}: made --after {after}, but the partial before it, {}, ends with {}: give the partials in capture order",
                    paths[i].display(),
                    paths[i - 1].display(),
                    before.unwrap_or("no capture")
                )));
            }
        }
    }
    if let (Some(after), false) = (&metas[0].after, keep_tail) {
        return Err(Error::Partial(format!(
            "{}: made --after {after}, whose partial is not merged: give it first (a failed analysis leaves a partial too)",
            paths[0].display()
        )));
    }
    Ok(())
}

fn options(reading: &[String]) -> String {
    if reading.is_empty() {
        "the default options".into()
    } else {
        reading.join(" ")
    }
}
