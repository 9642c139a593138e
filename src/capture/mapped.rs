//! A plain pcap or pcapng file read straight from its memory mapping: frames are slices of the
//! mapping, never copied out of the kernel nor shifted through a read buffer. Compressed
//! files, standard input and the other formats keep the streaming reader.
//!
//! [`SliceReader`] is pcap-parser's reader interface over the mapping, with the same window
//! of `capacity` bytes its buffered readers have: a block larger than the window asks for a
//! larger one (`BufferTooSmall`), one cut by the end of the file is `UnexpectedEof`, so every
//! warning, offset and error is the one the streaming reader gives. Pages already read are
//! given back to the kernel as reading goes on, so the mapping adds little to the resident
//! memory however large the file.

use std::fs::File;

use memmap2::{Advice, Mmap, UncheckedAdvice};

use super::{Format, Mapping};
use pcap_parser::nom::{self, Needed};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    LegacyPcapBlock, PcapBlockOwned, PcapError, PcapHeader, parse_block_be, parse_block_le,
    parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
};

/// How far reading goes between two hand-backs of the pages already read.
const RELEASE_EVERY: usize = 8 << 20;

/// The mapping of a plain pcap or pcapng file, and which it is; `None` for anything else (or when the file
/// cannot be mapped), which the streaming reader then reads.
pub(super) fn map(path: &str) -> Option<(Mmap, Format)> {
    if path == "-" {
        return None;
    }
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < 4 {
        return None;
    }
    // SAFETY: the mapping is read-only and private to this process; memmap2 needs `unsafe`
    // because another process could change or truncate the file while it is mapped. Capture
    // files are not rewritten in place (a ring buffer's writer appends to its current file
    // and deletes old ones, which leaves a mapping intact); a file truncated under chainsniff
    // would end the process with SIGBUS rather than give a wrong report.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.ok()?;
    let format = super::format_of(&map).filter(|f| matches!(f, Format::Pcap | Format::Pcapng))?;
    let _ = map.advise(Advice::Sequential);
    Some((map, format))
}

type LegacyParse = fn(&[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

/// What the blocks are.
enum Kind {
    /// Classic pcap: its file header, and the record parser its magic asks for.
    Legacy(PcapHeader, LegacyParse),
    /// pcapng, in the byte order of the current section.
    Ng { big_endian: bool },
}

/// pcap-parser's reader interface over a whole file in memory.
pub(super) struct SliceReader<'a> {
    map: &'a Mmap,
    /// Who else reads the mapping, and from where on.
    shared: &'a Mapping,
    pos: usize,
    capacity: usize,
    kind: Kind,
    /// Pages before this offset were given back.
    released: usize,
}

impl<'a> SliceReader<'a> {
    /// A reader of the mapped file with a window of `capacity` bytes; `None` when its header
    /// does not parse (the streaming reader then says why).
    pub(super) fn new(shared: &'a Mapping, pcapng: bool, capacity: usize) -> Option<Self> {
        let map: &'a Mmap = &shared.map;
        let kind = if pcapng {
            Kind::Ng { big_endian: false }
        } else {
            let (_, header) = parse_pcap_header(map).ok()?;
            let parse: LegacyParse = if header.is_modified_format() {
                parse_pcap_frame_modified
            } else if header.is_bigendian() {
                parse_pcap_frame_be
            } else {
                parse_pcap_frame
            };
            Kind::Legacy(header, parse)
        };
        Some(SliceReader {
            map,
            shared,
            pos: 0,
            capacity,
            kind,
            released: 0,
        })
    }

    fn window(&self) -> &'a [u8] {
        let map: &'a [u8] = self.map;
        let end = map.len().min(self.pos.saturating_add(self.capacity));
        &map[self.pos.min(end)..end]
    }

    fn exhausted(&self) -> bool {
        self.pos.saturating_add(self.capacity) >= self.map.len()
    }

    /// Gives the pages read so far back to the kernel (they stay in the page cache).
    fn release(&mut self) {
        let page = 4096;
        let upto = self.shared.releasable(self.pos) / page * page;
        if upto >= self.released + RELEASE_EVERY {
            // SAFETY: MADV_DONTNEED on a read-only private file mapping only drops the pages
            // from this process: the next access reads them from the file again, with the
            // same bytes; nothing is lost, since nothing was written. Pages other threads
            // still read (`Mapping::keep_from`) are kept, so as not to read them twice.
            #[allow(unsafe_code)]
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    UncheckedAdvice::DontNeed,
                    self.released,
                    upto - self.released,
                )
            };
            self.released = upto;
        }
    }
}

impl PcapReaderIterator for SliceReader<'_> {
    fn next(&mut self) -> Result<(usize, PcapBlockOwned<'_>), PcapError<&[u8]>> {
        if let (0, Kind::Legacy(header, _)) = (self.pos, &self.kind) {
            return Ok((header.size(), PcapBlockOwned::from(header.clone())));
        }
        let data = self.window();
        let exhausted = self.exhausted();
        if data.is_empty() && exhausted {
            return Err(PcapError::Eof);
        }
        let parsed = match &mut self.kind {
            Kind::Legacy(_, parse) => parse(data).map(|(rem, b)| (rem, PcapBlockOwned::from(b))),
            Kind::Ng { big_endian } => {
                let parse = if *big_endian {
                    parse_block_be
                } else {
                    parse_block_le
                };
                parse(data).map(|(rem, b)| {
                    if let pcap_parser::Block::SectionHeader(shb) = &b {
                        *big_endian = shb.big_endian();
                    }
                    (rem, PcapBlockOwned::from(b))
                })
            }
        };
        match parsed {
            Ok((rem, block)) => Ok((data.len() - rem.len(), block)),
            Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => Err(e),
            // The whole file is there: a block cut by its end is a truncated file; one larger
            // than the window asks for a larger window, as with the buffered readers.
            Err(nom::Err::Incomplete(_)) if exhausted => Err(PcapError::UnexpectedEof),
            Err(nom::Err::Incomplete(Needed::Size(_) | Needed::Unknown)) => {
                Err(PcapError::BufferTooSmall)
            }
        }
    }

    fn consume(&mut self, offset: usize) {
        self.pos += offset;
        self.release();
    }

    fn consume_noshift(&mut self, offset: usize) {
        self.pos += offset;
    }

    fn consumed(&self) -> usize {
        self.pos
    }

    fn refill(&mut self) -> Result<(), PcapError<&[u8]>> {
        Ok(())
    }

    fn position(&self) -> usize {
        0
    }

    fn grow(&mut self, new_size: usize) -> bool {
        self.capacity = self.capacity.max(new_size);
        true
    }

    fn data(&self) -> &[u8] {
        self.window()
    }

    fn reader_exhausted(&self) -> bool {
        self.exhausted()
    }
}
