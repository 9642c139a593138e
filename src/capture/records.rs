//! Record-at-a-time reading for the formats pcap-parser does not read: a buffer that grows to
//! the largest record and hands out borrowed slices, so nothing is allocated per frame.

use std::io::{self, Read};

/// Reads fixed-size pieces from a byte source, remembering the file offset.
pub(super) struct Records<'r> {
    input: &'r mut dyn Read,
    buf: Vec<u8>,
    /// Offset in the (decompressed) file of the next byte to read.
    pub offset: u64,
}

/// What [`Records::take`] found.
pub(super) enum Piece<'b> {
    /// All the bytes asked for.
    Whole(&'b [u8]),
    /// The file ended after this many of them (0: cleanly, between records).
    Short(usize),
}

impl<'r> Records<'r> {
    pub fn new(input: &'r mut dyn Read, offset: u64) -> Self {
        Records {
            input,
            buf: Vec::new(),
            offset,
        }
    }

    /// The next `n` bytes, or how many there were when the file ends first.
    pub fn take(&mut self, n: usize) -> io::Result<Piece<'_>> {
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        let mut got = 0;
        while got < n {
            match self.input.read(&mut self.buf[got..n]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += got as u64;
        Ok(if got == n {
            Piece::Whole(&self.buf[..n])
        } else {
            Piece::Short(got)
        })
    }

    /// Skips `n` bytes; false when the file ends first.
    pub fn skip(&mut self, n: u64) -> io::Result<bool> {
        let skipped = io::copy(&mut (&mut self.input).take(n), &mut io::sink())?;
        self.offset += skipped;
        Ok(skipped == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_short_and_skip() {
        let data: Vec<u8> = (0..10).collect();
        let mut input: &[u8] = &data;
        let mut r = Records::new(&mut input, 0);
        assert!(matches!(r.take(3).unwrap(), Piece::Whole([0, 1, 2])));
        assert!(r.skip(2).unwrap());
        assert!(matches!(r.take(2).unwrap(), Piece::Whole([5, 6])));
        assert!(matches!(r.take(5).unwrap(), Piece::Short(3)));
        assert_eq!(r.offset, 10);
        assert!(matches!(r.take(1).unwrap(), Piece::Short(0)));
    }
}
