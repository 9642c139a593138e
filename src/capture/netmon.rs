//! Microsoft Network Monitor 2.x captures (`.cap`, what Lync and Skype for Business admins have
//! from Netmon 3.4 and Message Analyzer, and `editcap -F netmon2`): a 128-byte header
//! ("GMBU", version, network type, the capture's start as a SYSTEMTIME, the frame table's
//! offset), then records of a 64-bit microsecond offset from the start, original and included
//! length, the data and, from version 2.1, a trailer with the record's own network type (2.3
//! adds its UTC time as a FILETIME). All little-endian. The frame table at the end lists the
//! records in order; files are written with the records in that order, so they are read as they
//! come, up to the table, which keeps the reading a stream (compressed files, pipes).

use pcap_parser::Linktype;

use super::records::{Piece, Records};
use super::{CaptureSummary, Frame, Warning};
use crate::model::Timestamp;

/// The file's magic bytes.
pub const MAGIC: &[u8; 4] = b"GMBU";
/// Header length, magic included.
pub const HEADER_LEN: usize = 128;
/// Largest record accepted; anything larger is corruption.
const MAX_RECORD: u32 = 256 << 20;

/// The pcap link type of a Netmon network type, as Wireshark maps them; special records
/// (network info, DNS cache, filters: 0xFFE0 and up) and types not decoded here get a
/// link type no decoder takes, so they count as frames (Wireshark numbers them) and are
/// skipped.
fn linktype(network: u16) -> Linktype {
    match network {
        0 | 1 => Linktype::ETHERNET,
        7..=9 => Linktype::RAW,
        n @ 0xE000..=0xEFFF => Linktype((n - 0xE000) as i32),
        n => Linktype(0x2_0000 | n as i32),
    }
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What the header says.
#[derive(Debug)]
struct Header {
    minor: u8,
    start: Timestamp,
    network: u16,
    frame_table: u64,
}

fn header(h: &[u8]) -> Result<Header, Warning> {
    let u16le = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    let u32le = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let (minor, major) = (h[4], h[5]);
    if major != 2 {
        return Err(Warning::unsupported_version(
            5,
            &format!("Network Monitor {major}.{minor} capture"),
            "only 2.x is read (save it as 2.x or pcapng)",
        ));
    }
    // SYSTEMTIME: year, month, day of week, day, hour, minute, second, millisecond. Taken as
    // UTC (Wireshark takes it as the reading machine's local time).
    let (year, month, day) = (u16le(8) as i64, u16le(10) as i64, u16le(14) as i64);
    let (hour, min, sec, ms) = (
        u16le(16) as i64,
        u16le(18) as i64,
        u16le(20) as i64,
        u16le(22) as u32,
    );
    let secs = days_from_civil(year, month.clamp(1, 12), day.clamp(1, 31)) * 86_400
        + hour * 3600
        + min * 60
        + sec;
    Ok(Header {
        minor,
        start: Timestamp::from_parts(secs, ms.min(999) * 1_000_000),
        network: u16le(6),
        frame_table: u32le(24) as u64,
    })
}

/// FILETIME (100 ns since 1601-01-01 UTC) to a timestamp.
fn from_filetime(t: u64) -> Timestamp {
    const FROM_1601: i64 = 11_644_473_600;
    let secs = (t / 10_000_000) as i64 - FROM_1601;
    Timestamp::from_parts(secs, ((t % 10_000_000) * 100) as u32)
}

/// Reads the frames after the 128-byte `head`; `Err` for corruption that stops the reading.
pub(super) fn pump(
    head: &[u8],
    r: &mut Records<'_>,
    summary: &mut CaptureSummary,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<(), Warning> {
    let h = header(head)?;
    let trailer = match h.minor {
        0 => 0,
        1 => 2,
        2 => 6,
        _ => 15,
    };
    let le32 = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    // The records run up to the frame table (or, without one, to the end of the file).
    let end = if h.frame_table >= HEADER_LEN as u64 {
        h.frame_table
    } else {
        u64::MAX
    };
    while r.offset + 16 <= end {
        let start = r.offset;
        let read_err = |e: std::io::Error| Warning::read_error(start, &e);
        let (delta, orig_len, incl_len) = match r.take(16).map_err(read_err)? {
            Piece::Whole(b) => (
                u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                le32(b, 8),
                le32(b, 12),
            ),
            Piece::Short(0) if end == u64::MAX => return Ok(()),
            Piece::Short(_) => return super::truncated(summary, start as usize),
        };
        if incl_len > MAX_RECORD || start + 16 + incl_len as u64 + trailer as u64 > end {
            return Err(Warning::corrupt(
                "Network Monitor record",
                start,
                summary.frames,
                &format!("included length {incl_len}"),
            ));
        }
        let mut ts = Timestamp(
            h.start
                .0
                .saturating_add((delta as i64).saturating_mul(1000)),
        );
        let data_end = incl_len as usize;
        let whole = match r.take(data_end + trailer).map_err(read_err)? {
            Piece::Whole(b) => b,
            Piece::Short(_) => return super::truncated(summary, start as usize),
        };
        let (data, trl) = whole.split_at(data_end);
        let network = if trailer >= 2 {
            u16::from_le_bytes([trl[0], trl[1]])
        } else {
            h.network
        };
        if trailer >= 15 {
            ts = from_filetime(u64::from_le_bytes(trl[6..14].try_into().expect("8 bytes")));
        }
        summary.frames += 1;
        on_frame(&Frame {
            number: summary.frames,
            ts,
            linktype: linktype(network),
            data,
            orig_len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header `editcap -F netmon2` wrote for captures/lync-vip-phones.pcap.
    const HEAD: &str = "474d425500020100ea070b000200180012001f0001005a014d64000088010000";

    #[test]
    fn header_fields() {
        let mut head = hex::decode(HEAD).unwrap();
        head.resize(HEADER_LEN, 0);
        let h = header(&head).unwrap();
        assert_eq!(h.minor, 0);
        assert_eq!(h.network, 1);
        assert_eq!(h.frame_table, 25677);
        // 2026-11-24 18:31:01.346 UTC
        assert_eq!(h.start, Timestamp::from_parts(1_795_545_061, 346_000_000));
    }

    #[test]
    fn civil_dates_and_filetimes() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(from_filetime(116_444_736_000_000_000), Timestamp(0));
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        let mut head = vec![0u8; HEADER_LEN];
        head[..4].copy_from_slice(MAGIC);
        head[5] = 1;
        assert!(
            header(&head)
                .unwrap_err()
                .text
                .contains("Network Monitor 1.0")
        );
    }
}
