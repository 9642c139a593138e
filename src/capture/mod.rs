//! Stage 1: capture files to frames.
//!
//! Reads classic pcap (micro- and nanosecond, either byte order) and pcapng (several sections and
//! interfaces, each with its own link type and timestamp resolution), Microsoft Network
//! Monitor 2.x (`netmon.rs`) and Sun snoop (`snoop.rs`), compressed (gzip, zstd, lz4 frames, as
//! Wireshark reads them, and xz, bzip2) or not,
//! from a file or standard input. The format is detected by magic bytes, never by file name.
//!
//! Frames are handed to a callback as borrowed slices of the reader's buffer, so nothing is
//! allocated per packet, and memory stays at the reader's buffer size whatever the file size.
//! Frame numbers are Wireshark's: 1-based, in file order, across all interfaces.

mod mapped;
mod netmon;
mod records;
mod snoop;
pub mod warning;

use crate::model::Timestamp;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
pub use warning::{Warning, WarningKind};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Linktype, PcapBlockOwned, PcapError};
use serde::Serialize;

/// Initial size of the reader's buffer; it grows for larger blocks up to [`MAX_BLOCK`].
const BUFFER_SIZE: usize = 1 << 20;
/// Largest single block accepted (a pcapng block or pcap record). Anything larger is corruption.
const MAX_BLOCK: usize = 256 << 20;

/// The container format of a capture, as detected from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// libpcap's format (any of its magic numbers).
    Pcap,
    /// pcapng.
    Pcapng,
    /// Microsoft Network Monitor 2.x (`.cap`).
    Netmon2,
    /// Sun snoop (RFC 1761).
    Snoop,
}

impl Format {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
            Format::Netmon2 => "netmon2",
            Format::Snoop => "snoop",
        }
    }
}

/// How a capture file was compressed (read by content, not by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
    /// LZ4 frame format.
    Lz4,
    /// xz (LZMA2).
    Xz,
    /// bzip2.
    Bzip2,
}

impl Compression {
    /// Every compression read, by name, for `--help` and the docs.
    pub const NAMES: &'static str = "gzip, zstd, lz4, xz or bzip2";

    /// "gzip", "zstd", "lz4", "xz", "bzip2", or `None` when not compressed.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Lz4 => Some("lz4"),
            Compression::Xz => Some("xz"),
            Compression::Bzip2 => Some("bzip2"),
        }
    }
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Wireshark's frame number (1-based, file order).
    pub number: u64,
    /// The frame's capture time.
    pub ts: Timestamp,
    /// The frame's link type (`LINKTYPE_*`).
    pub linktype: Linktype,
    /// The captured bytes (possibly fewer than `orig_len` when the snap length cut the frame).
    pub data: &'a [u8],
    /// The frame's length on the wire (more than its data when the snap length cut it).
    pub orig_len: u32,
}

/// What was learned about the file itself while reading it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CaptureSummary {
    /// The path given (or `-` for standard input).
    pub path: String,
    /// The file format, once recognized.
    pub format: Option<Format>,
    /// The compression read through.
    pub compression: Compression,
    /// Number of frames read.
    pub frames: u64,
    /// True when the file ends in the middle of a block or record.
    pub truncated: bool,
    /// What was wrong with the file or the capture, in the order found.
    pub warnings: Vec<Warning>,
}

/// An input that cannot be read as a capture at all (exit status 2).
#[derive(Debug)]
pub struct CaptureError {
    /// The path given.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for CaptureError {}

/// Opens `path` (or standard input for `-`) and calls `on_frame` for every frame in file order,
/// and `on_secrets` with the text of every TLS key log embedded in the file (pcapng Decryption
/// Secrets Blocks).
pub fn read_capture(
    path: &str,
    on_frame: impl FnMut(&Frame<'_>),
    on_secrets: impl FnMut(&[u8]),
) -> Result<CaptureSummary, CaptureError> {
    read_capture_mapped(path, |_| {}, on_frame, on_secrets)
}

/// As [`read_capture`]; when the file is read from its memory mapping, `on_map` is given the
/// mapping first: every [`Frame::data`] is then a slice of it (see [`Mapping::offset_of`]).
pub fn read_capture_mapped(
    path: &str,
    on_map: impl FnOnce(Mapping),
    mut on_frame: impl FnMut(&Frame<'_>),
    mut on_secrets: impl FnMut(&[u8]),
) -> Result<CaptureSummary, CaptureError> {
    // A plain pcap or pcapng file is read from its mapping; anything else (and a file whose
    // header does not parse, for the streaming reader's words) as a stream.
    if let Some((map, format)) = mapped::map(path) {
        let map = Mapping {
            map: std::sync::Arc::new(map),
            keep_from: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
        };
        let head = &map.bytes()[..map.bytes().len().min(64 << 10)];
        let header_len = match format {
            Format::Pcapng => prefix_header_len(head),
            _ => 24,
        };
        let capacity = BUFFER_SIZE.max(head.len());
        // The streaming reader's own check of the file header, on the same first bytes.
        let header_ok = head.len() >= header_len
            && pcap_parser::create_reader(capacity, io::Cursor::new(head)).is_ok();
        if let Some(reader) = header_ok
            .then(|| mapped::SliceReader::new(&map, format == Format::Pcapng, capacity))
            .flatten()
        {
            on_map(map.clone());
            let mut summary = CaptureSummary::new(path, format, Compression::None);
            let result = pump(
                Box::new(reader),
                &mut summary,
                &mut on_frame,
                &mut on_secrets,
            );
            return summary.end(result).map_err(|message| CaptureError {
                path: path.to_string(),
                message,
            });
        }
    }
    read_from(path, open(path)?, on_frame, on_secrets)
}

/// A capture file's memory mapping, shared with the threads that read its frames' bytes after
/// the reader has gone on (`analysis::sharded`).
#[derive(Clone)]
pub struct Mapping {
    map: std::sync::Arc<memmap2::Mmap>,
    /// The reader gives back the pages it has read only below this offset: those from here
    /// on are still to be read by someone else.
    keep_from: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({} bytes)", self.map.len())
    }
}

impl Mapping {
    /// Where `data` starts in the mapping, when it is a slice of it.
    pub fn offset_of(&self, data: &[u8]) -> Option<usize> {
        let base = self.map.as_ptr() as usize;
        let at = data.as_ptr() as usize;
        (at >= base && at + data.len() <= base + self.map.len()).then(|| at - base)
    }

    /// The mapped file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The bytes from `offset` on are still to be read (by another thread): the reader keeps
    /// their pages until told otherwise, so that they are not read from the file again and
    /// stay mapped (`usize::MAX`: nothing is still to be read).
    pub fn keep_from(&self, offset: usize) {
        self.keep_from
            .store(offset, std::sync::atomic::Ordering::Release);
    }

    /// Below which offset the reader may give pages back.
    fn releasable(&self, pos: usize) -> usize {
        pos.min(self.keep_from.load(std::sync::atomic::Ordering::Acquire))
    }
}

/// The format an uncompressed capture's first bytes announce.
fn format_of(head: &[u8]) -> Option<Format> {
    match head.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => Some(Format::Pcapng),
        Some([0xd4, 0xc3, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0xc3, 0xd4])
        | Some([0x4d, 0x3c, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0x3c, 0x4d]) => Some(Format::Pcap),
        Some(m) if m == netmon::MAGIC => Some(Format::Netmon2),
        _ if head.starts_with(snoop::MAGIC) => Some(Format::Snoop),
        _ => None,
    }
}

/// Opens a capture file, or standard input for `-`.
pub fn open(path: &str) -> Result<Box<dyn Read + Send>, CaptureError> {
    let err = |message: String| CaptureError {
        path: path.to_string(),
        message,
    };
    if path == "-" {
        return Ok(Box::new(io::stdin()));
    }
    let p = Path::new(path);
    if p.is_dir() {
        return Err(err("is a directory, not a capture file".into()));
    }
    Ok(Box::new(
        File::open(p).map_err(|e| err(format!("cannot open: {e}")))?,
    ))
}

/// Reads a capture from any byte source (file, pipe, decompressor, memory).
pub fn read_from(
    path: &str,
    mut input: Box<dyn Read + Send>,
    on_frame: impl FnMut(&Frame<'_>),
    on_secrets: impl FnMut(&[u8]),
) -> Result<CaptureSummary, CaptureError> {
    let err = |message: String| CaptureError {
        path: path.to_string(),
        message,
    };
    let mut head =
        read_prefix(&mut input, 64 << 10).map_err(|e| err(format!("read error: {e}")))?;
    // Compressed captures are decompressed as a stream, never inflated whole.
    let compression = match head.get(..4) {
        Some([0x1f, 0x8b, ..]) => Compression::Gzip,
        Some([0x28, 0xb5, 0x2f, 0xfd]) => Compression::Zstd,
        Some([0x04, 0x22, 0x4d, 0x18]) => Compression::Lz4,
        _ if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) => Compression::Xz,
        Some([b'B', b'Z', b'h', b'1'..=b'9']) => Compression::Bzip2,
        _ => Compression::None,
    };
    if compression != Compression::None {
        let raw = io::Cursor::new(head).chain(input);
        input = match compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(raw)
                    .map_err(|e| err(format!("zstd stream is corrupt: {e}")))?,
            ),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(raw)),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
            _ => Box::new(lz4_flex::frame::FrameDecoder::new(raw)),
        };
        head = read_prefix(&mut input, 64 << 10).map_err(|e| {
            err(format!(
                "{} stream is corrupt: {e}",
                compression.name().unwrap_or_default()
            ))
        })?;
    }
    if head.is_empty() {
        return Err(err("the file is empty".into()));
    }
    let Some(format) = format_of(&head) else {
        return Err(err(format!(
            "not a pcap, pcapng, Network Monitor 2.x or snoop capture (offset 0: magic bytes {})",
            hex::encode(&head[..head.len().min(4)])
        )));
    };
    if compression != Compression::None {
        // Decompression runs on the other core, ahead of the analysis.
        input = Box::new(ReadAhead::spawn(input));
    }
    let prefix_len = head.len();
    let source = io::Cursor::new(head).chain(input);
    let capacity = BUFFER_SIZE.max(prefix_len);
    let name = format.name();
    // The header must be there whole: 24 bytes (pcap), or the section header block's length.
    let header_len = match format {
        Format::Pcap => 24,
        Format::Pcapng => prefix_header_len(&source_head(&source)),
        Format::Netmon2 => netmon::HEADER_LEN,
        Format::Snoop => snoop::HEADER_LEN,
    };
    if prefix_len < header_len {
        return Err(err(format!(
            "the file ends inside its {name} header ({prefix_len} of {header_len} bytes)"
        )));
    }
    if matches!(format, Format::Netmon2 | Format::Snoop) {
        return read_records(path, format, compression, source, header_len, on_frame);
    }
    let reader = pcap_parser::create_reader(capacity, source).map_err(|e| {
        err(format!(
            "offset 0: cannot parse the {name} file header ({e:?})"
        ))
    })?;
    let mut summary = CaptureSummary::new(path, format, compression);
    let result = pump(reader, &mut summary, on_frame, on_secrets);
    summary.end(result).map_err(err)
}

impl CaptureSummary {
    /// Nothing read yet.
    fn new(path: &str, format: Format, compression: Compression) -> Self {
        CaptureSummary {
            path: path.to_string(),
            format: Some(format),
            compression,
            frames: 0,
            truncated: false,
            warnings: Vec::new(),
        }
    }

    /// What a reader's `result` makes of the capture: corruption after some frames is a
    /// warning on a capture that still reports them; before any, the capture is unreadable.
    fn end(mut self, result: Result<(), Warning>) -> Result<Self, String> {
        if let Err(warning) = result {
            if self.frames == 0 {
                return Err(warning.text);
            }
            self.warnings.push(warning);
        }
        Ok(self)
    }
}

/// Reads a Network Monitor or snoop capture (record formats pcap-parser does not read).
fn read_records(
    path: &str,
    format: Format,
    compression: Compression,
    mut source: impl Read,
    header_len: usize,
    mut on_frame: impl FnMut(&Frame<'_>),
) -> Result<CaptureSummary, CaptureError> {
    let err = |message: String| CaptureError {
        path: path.to_string(),
        message,
    };
    let mut summary = CaptureSummary::new(path, format, compression);
    let mut header = vec![0u8; header_len];
    source
        .read_exact(&mut header)
        .map_err(|e| err(format!("read error: {e}")))?;
    let mut records = records::Records::new(&mut source, header_len as u64);
    let result = match format {
        Format::Netmon2 => netmon::pump(&header, &mut records, &mut summary, &mut on_frame),
        _ => snoop::pump(&header, &mut records, &mut summary, &mut on_frame),
    };
    summary.end(result).map_err(err)
}

fn source_head<R>(source: &io::Chain<io::Cursor<Vec<u8>>, R>) -> Vec<u8> {
    let head = source.get_ref().0.get_ref();
    head[..head.len().min(12)].to_vec()
}

/// Length of a pcapng section header block, from its total-length field (either byte order).
fn prefix_header_len(head: &[u8]) -> usize {
    if head.len() < 12 {
        return 28;
    }
    let magic = &head[8..12];
    let len = if magic == [0x4d, 0x3c, 0x2b, 0x1a] {
        u32::from_le_bytes([head[4], head[5], head[6], head[7]])
    } else {
        u32::from_be_bytes([head[4], head[5], head[6], head[7]])
    };
    (len as usize).clamp(28, 1 << 20)
}

/// Reads up to `limit` bytes, looping over short reads (pipes deliver data in small pieces).
fn read_prefix(input: &mut dyn Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit);
    input.take(limit as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Per-interface state of a pcapng section.
#[derive(Clone, Copy)]
struct Interface {
    linktype: Linktype,
    snaplen: u32,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

/// Drives the reader; returns `Err(message)` for corruption that stops the reading.
fn pump(
    mut reader: Box<dyn PcapReaderIterator + Send + '_>,
    summary: &mut CaptureSummary,
    mut on_frame: impl FnMut(&Frame<'_>),
    mut on_secrets: impl FnMut(&[u8]),
) -> Result<(), Warning> {
    let mut legacy_linktype = Linktype::ETHERNET;
    let mut legacy_nanos = false;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut capacity = BUFFER_SIZE;
    loop {
        let offset_before = reader.consumed();
        match reader.next() {
            Ok((len, block)) => {
                let frame = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_linktype = h.network;
                        legacy_nanos = h.is_nanosecond_precision();
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let nanos = if legacy_nanos {
                            b.ts_usec
                        } else {
                            b.ts_usec.saturating_mul(1000)
                        };
                        Some((
                            Timestamp::from_parts(b.ts_sec as i64, nanos),
                            legacy_linktype,
                            b.data,
                            b.origlen,
                        ))
                    }
                    PcapBlockOwned::NG(Block::DecryptionSecrets(dsb)) => {
                        if dsb.secrets_type.0 == 0x544c_534b {
                            // "TLSK": an NSS key log.
                            let len = (dsb.secrets_len as usize).min(dsb.data.len());
                            on_secrets(&dsb.data[..len]);
                        }
                        None
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        interfaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            linktype: idb.linktype,
                            snaplen: idb.snaplen,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset_secs: idb.ts_offset(),
                        });
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let number = summary.frames + 1;
                        match interfaces.get(epb.if_id as usize) {
                            Some(iface) => {
                                let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                                let nanos =
                                    (raw as u128 * 1_000_000_000 / iface.resolution as u128) as i64;
                                let ts = Timestamp(nanos.saturating_add(
                                    iface.offset_secs.saturating_mul(1_000_000_000),
                                ));
                                let caplen = (epb.caplen as usize).min(epb.data.len());
                                Some((ts, iface.linktype, &epb.data[..caplen], epb.origlen))
                            }
                            None => {
                                summary.warnings.push(Warning::unknown_interface(
                                    number,
                                    offset_before as u64,
                                    Some(epb.if_id),
                                ));
                                summary.frames += 1;
                                None
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let number = summary.frames + 1;
                        match interfaces.first() {
                            Some(iface) => {
                                let mut caplen = (spb.origlen as usize).min(spb.data.len());
                                if iface.snaplen > 0 {
                                    caplen = caplen.min(iface.snaplen as usize);
                                }
                                Some((
                                    Timestamp::default(),
                                    iface.linktype,
                                    &spb.data[..caplen],
                                    spb.origlen,
                                ))
                            }
                            None => {
                                summary.warnings.push(Warning::unknown_interface(
                                    number,
                                    offset_before as u64,
                                    None,
                                ));
                                summary.frames += 1;
                                None
                            }
                        }
                    }
                    _ => None,
                };
                if let Some((ts, linktype, data, orig_len)) = frame {
                    summary.frames += 1;
                    on_frame(&Frame {
                        number: summary.frames,
                        ts,
                        linktype,
                        data,
                        orig_len,
                    });
                }
                reader.consume(len);
            }
            Err(PcapError::Eof) => return Ok(()),
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return truncated(summary, offset_before);
                }
                reader
                    .refill()
                    .map_err(|e| Warning::read_error(offset_before as u64, &format!("{e:?}")))?;
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BLOCK {
                    return Err(Warning::oversized_block(
                        offset_before as u64,
                        summary.frames,
                        MAX_BLOCK >> 20,
                    ));
                }
                capacity *= 4;
                reader.grow(capacity);
                reader
                    .refill()
                    .map_err(|e| Warning::read_error(offset_before as u64, &format!("{e:?}")))?;
            }
            Err(PcapError::UnexpectedEof) => return truncated(summary, offset_before),
            Err(e) => {
                return Err(Warning::corrupt(
                    "block",
                    offset_before as u64,
                    summary.frames,
                    &describe_error(&e),
                ));
            }
        }
    }
}

fn truncated(summary: &mut CaptureSummary, offset: usize) -> Result<(), Warning> {
    summary.truncated = true;
    summary
        .warnings
        .push(Warning::truncated(offset as u64, summary.frames));
    Ok(())
}

fn describe_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::HeaderNotRecognized => "unrecognized header".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("parse error: {kind:?}")
        }
        other => format!("{other:?}"),
    }
}

/// Reads a byte source on its own thread, a few chunks ahead of the consumer: a decompressor
/// then runs on one core while the analysis runs on the other. The bytes, their order, the end
/// and any error are exactly the inner reader's.
struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl ReadAhead {
    /// Chunks of this size, at most this many waiting.
    const CHUNK: usize = 256 << 10;
    const AHEAD: usize = 8;

    fn spawn(mut inner: Box<dyn Read + Send>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(Self::AHEAD);
        std::thread::spawn(move || {
            loop {
                let mut chunk = vec![0u8; Self::CHUNK];
                let mut filled = 0;
                let result = loop {
                    match inner.read(&mut chunk[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == chunk.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                // A short chunk: the inner reader ended (or failed) after it.
                let last = filled < Self::CHUNK;
                chunk.truncate(filled);
                // The bytes before an error are delivered first, then the error.
                if filled > 0 && tx.send(Ok(chunk)).is_err() {
                    return; // the consumer is gone
                }
                match result {
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Ok(()) if last => {
                        let _ = tx.send(Ok(Vec::new())); // the end
                        return;
                    }
                    Ok(()) => {}
                }
            }
        });
        ReadAhead {
            chunks: rx,
            current: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The reading thread ended without a word: it panicked.
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the reading thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as read: number, time, link type, bytes, length on the wire.
    type Seen = (u64, i64, u16, Vec<u8>, u32);

    /// Every frame and the summary of a capture read one way.
    fn frames_of(
        read: impl FnOnce(&mut dyn FnMut(&Frame<'_>)) -> Result<CaptureSummary, CaptureError>,
    ) -> (Vec<Seen>, String) {
        let mut frames = Vec::new();
        let summary = read(&mut |f: &Frame<'_>| {
            frames.push((
                f.number,
                f.ts.0,
                f.linktype.0 as u16,
                f.data.to_vec(),
                f.orig_len,
            ))
        });
        (frames, format!("{summary:?}"))
    }

    #[test]
    fn a_mapped_file_reads_as_the_stream_does_whole_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let captures = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/captures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pcap" | "pcapng")
                )
            });
        let mut read = 0;
        for capture in captures {
            let bytes = std::fs::read(&capture).unwrap();
            // The whole file, and cut inside its header, its first blocks and its last.
            let len = bytes.len();
            for cut in [len, 3, 20, 30, 100, 1000, len / 2, len - 1, len - 7] {
                let file = dir.path().join("cut.cap");
                std::fs::write(&file, &bytes[..cut.min(len)]).unwrap();
                let path = file.to_str().unwrap();
                let mapped = frames_of(|f| read_capture(path, f, |_| {}));
                let streamed = frames_of(|f| read_from(path, open(path).unwrap(), f, |_| {}));
                assert_eq!(mapped, streamed, "{} cut at {cut}", capture.display());
                read += 1;
            }
        }
        assert!(read > 100);
    }

    /// Gives `data` in odd-sized pieces, then fails (or ends).
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        fail: bool,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if self.fail {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(7919).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn read_ahead_gives_the_same_bytes_end_and_error() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 % 251) as u8).collect();
        for fail in [false, true] {
            let inner = Pieces {
                data: data.clone(),
                at: 0,
                fail,
            };
            let mut r = ReadAhead::spawn(Box::new(inner));
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let end = loop {
                match r.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break Some(e.kind()),
                }
            };
            assert_eq!(got, data);
            assert_eq!(end, fail.then_some(io::ErrorKind::InvalidData));
            // After the end, it stays ended.
            assert!(matches!(r.read(&mut buf), Ok(0)));
        }
    }
}
