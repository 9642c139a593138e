//! Sun snoop captures (RFC 1761; what Solaris `snoop` writes, and `editcap -F snoop`): a 16-byte
//! header ("snoop\0\0\0", version 2, datalink type), then records of original length, included
//! length, record length (header, data and padding), cumulative drops, seconds and
//! microseconds, all big-endian.

use pcap_parser::Linktype;

use super::records::{Piece, Records};
use super::{CaptureSummary, Frame, Warning};
use crate::model::Timestamp;

/// The file's magic bytes.
pub const MAGIC: &[u8; 8] = b"snoop\0\0\0";
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Largest record accepted; anything larger is corruption.
const MAX_RECORD: u32 = 256 << 20;

/// The pcap link type of a snoop datalink type, as Wireshark maps them.
fn linktype(datalink: u32) -> Linktype {
    match datalink {
        // IEEE 802.3 and Ethernet both carry Ethernet II or 802.3 framing.
        0 | 4 => Linktype::ETHERNET,
        2 => Linktype(6),           // IEEE 802.4 token bus: not decoded
        8 => Linktype(10),          // FDDI
        0x12 => Linktype::ETHERNET, // "IP over Ethernet" on some SunOS releases
        other => Linktype(0x1_0000 | other as i32), // unknown: counted, never decoded
    }
}

/// Reads the frames after the 16-byte `header`; `Err` for corruption that stops the reading.
pub(super) fn pump(
    header: &[u8],
    r: &mut Records<'_>,
    summary: &mut CaptureSummary,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<(), Warning> {
    let version = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if version != 2 {
        return Err(Warning::unsupported_version(
            8,
            &format!("snoop version {version}"),
            "only version 2 is defined",
        ));
    }
    let linktype = linktype(u32::from_be_bytes([
        header[12], header[13], header[14], header[15],
    ]));
    let be = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    loop {
        let start = r.offset;
        let head = match r.take(24).map_err(|e| Warning::read_error(start, &e))? {
            Piece::Whole(h) => [be(h, 0), be(h, 4), be(h, 8), be(h, 16), be(h, 20)],
            Piece::Short(0) => return Ok(()),
            Piece::Short(_) => return super::truncated(summary, start as usize),
        };
        let [orig_len, incl_len, rec_len, secs, usecs] = head;
        if rec_len > MAX_RECORD || (rec_len as u64) < 24 + incl_len as u64 {
            return Err(Warning::corrupt(
                "snoop record",
                start,
                summary.frames,
                &format!("record length {rec_len}, included length {incl_len}"),
            ));
        }
        let data = match r
            .take(incl_len as usize)
            .map_err(|e| Warning::read_error(start, &e))?
        {
            Piece::Whole(d) => d,
            Piece::Short(_) => return super::truncated(summary, start as usize),
        };
        summary.frames += 1;
        on_frame(&Frame {
            number: summary.frames,
            ts: Timestamp::from_parts(secs as i64, usecs.min(999_999) * 1000),
            linktype,
            data,
            orig_len,
        });
        let pad = rec_len as u64 - 24 - incl_len as u64;
        if !r.skip(pad).map_err(|e| Warning::read_error(start, &e))? {
            return Ok(()); // padding cut at the end of the file: the frame was whole
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first record of `editcap -F snoop captures/lync-vip-phones.pcap`, cut to its
    /// Ethernet header: a DHCP request from a Polycom phone.
    #[test]
    fn reads_a_record() {
        let mut file = Vec::new();
        file.extend_from_slice(b"snoop\0\0\0\0\0\0\x02\0\0\0\x04");
        // orig 326, incl 16, record 40 (24 + 16), drops 0, 1764000000 s, 346337 us
        for v in [326u32, 16, 40, 0, 1_764_000_000, 346_337] {
            file.extend_from_slice(&v.to_be_bytes());
        }
        file.extend_from_slice(&hex::decode("ffffffffffff0004f2c300110800").unwrap());
        file.extend_from_slice(&[0x45, 0x00]);
        let mut input: &[u8] = &file[HEADER_LEN..];
        let mut r = Records::new(&mut input, HEADER_LEN as u64);
        let mut summary = CaptureSummary {
            path: "t".into(),
            format: None,
            compression: super::super::Compression::None,
            frames: 0,
            truncated: false,
            warnings: Vec::new(),
        };
        let mut seen = Vec::new();
        pump(&file[..HEADER_LEN], &mut r, &mut summary, &mut |f| {
            seen.push((f.number, f.ts, f.linktype, f.data.len(), f.orig_len))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(
                1,
                Timestamp::from_parts(1_764_000_000, 346_337_000),
                Linktype::ETHERNET,
                16,
                326
            )]
        );
        assert!(!summary.truncated);
    }
}
