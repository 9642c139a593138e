//! Finished records kept out of memory: an append-only list of encoded records that moves to
//! an unnamed temporary file once it outgrows [`MEMORY_LIMIT`].
//!
//! The analysis keeps every finished handshake until the end of the capture (its chain can only
//! be judged once every certificate in the capture is known), and the report lists every
//! handshake. Both go through a [`Spill`], so memory holds where each record is instead of the
//! record: a capture with a million handshakes costs 4 MB of places, not gigabytes of
//! handshakes. Small captures never touch the disk.

use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes of records kept in memory before the list moves to a temporary file; then also the
/// bytes buffered before they are written to it.
pub const MEMORY_LIMIT: usize = 1 << 20;

/// Entries kept per record (offsets, ids) in 8192-entry chunks: a list that is never
/// reallocated, so it never holds two copies of itself while it grows (a `Vec` doubling from
/// half a million offsets would need 12 MB at once), and leaves at most one chunk unused.
#[derive(Debug)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

const CHUNK: usize = 8192;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> Chunked<T> {
    /// Appends `value` (to memory, or to the temporary file once the list is large).
    pub fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(value);
        }
        self.len += 1;
    }

    /// Entry `i`; panics past the end, as slice indexing does.
    pub fn get(&self, i: usize) -> T {
        self.chunks[i / CHUNK][i % CHUNK]
    }

    /// How many values the list holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.chunks.iter().flatten().copied()
    }
}

/// Where each record of a [`Spill`] is, in a bit over 4 bytes a record (8 as offsets; at half
/// a million handshakes, each list saves 2 MB): each record's length, and where every 64th
/// record starts.
#[derive(Debug, Default)]
struct Places {
    lens: Chunked<u32>,
    /// `every[k]`: where record `64 * k` starts.
    every: Vec<u64>,
    end: u64,
}

const EVERY: usize = 64;

impl Places {
    fn len(&self) -> usize {
        self.lens.len()
    }

    /// Notes the next record, `len` bytes long.
    fn push(&mut self, len: usize) -> std::io::Result<()> {
        let len = u32::try_from(len)
            .map_err(|_| std::io::Error::other("a record of 4 GiB or more cannot be kept"))?;
        if self.lens.len().is_multiple_of(EVERY) {
            self.every.push(self.end);
        }
        self.lens.push(len);
        self.end += u64::from(len);
        Ok(())
    }

    /// Where record `i` starts and ends; panics past the end, as slice indexing does.
    fn get(&self, i: usize) -> (u64, u64) {
        let first = i - i % EVERY;
        let start =
            self.every[i / EVERY] + (first..i).map(|j| u64::from(self.lens.get(j))).sum::<u64>();
        (start, start + u64::from(self.lens.get(i)))
    }
}

/// How records are turned into bytes and back.
pub trait Codec<T> {
    /// Appends the encoding of `value` to `out`.
    fn encode(value: &T, out: &mut Vec<u8>) -> std::io::Result<()>;
    /// Decodes one value.
    fn decode(bytes: &[u8]) -> std::io::Result<T>;
}

/// postcard: compact and fast, for types serialized the same way in and out (no skipped fields).
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn encode(value: &T, out: &mut Vec<u8>) -> std::io::Result<()> {
        let bytes = postcard::to_stdvec(value).map_err(std::io::Error::other)?;
        out.extend_from_slice(&bytes);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> std::io::Result<T> {
        postcard::from_bytes(bytes).map_err(std::io::Error::other)
    }
}

/// MessagePack with field names (rmp-serde), for records that are read back rather than
/// printed: self-describing as JSON is, so that skipped, flattened and tagged fields read back
/// (which postcard cannot do), without JSON's text escaping and layout. Values are written as
/// a human-readable format writes them (addresses as text), as serde reads back flattened
/// fields only that way.
pub struct Packed;

impl<T: Serialize + DeserializeOwned> Codec<T> for Packed {
    fn encode(value: &T, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut ser = rmp_serde::Serializer::new(out)
            .with_struct_map()
            .with_human_readable();
        value.serialize(&mut ser).map_err(std::io::Error::other)
    }
    fn decode(bytes: &[u8]) -> std::io::Result<T> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
        T::deserialize(&mut de).map_err(std::io::Error::other)
    }
}

/// An append-only list of records of type `T`, encoded with `C`.
pub struct Spill<T, C> {
    /// Records not yet written to the file (all of them while the list is small).
    buf: Vec<u8>,
    /// The temporary file, once the list outgrew [`MEMORY_LIMIT`]. It has no name: the system
    /// removes it when it is closed, even if chainsniff is killed.
    file: Option<File>,
    /// Bytes in the file; `buf` holds what comes after.
    written: u64,
    /// Where each record is.
    places: Places,
    _t: PhantomData<fn(T) -> C>,
}

impl<T, C> Default for Spill<T, C> {
    fn default() -> Self {
        Spill {
            buf: Vec::new(),
            file: None,
            written: 0,
            places: Places::default(),
            _t: PhantomData,
        }
    }
}

/// The records, decoded.
impl<T: std::fmt::Debug, C: Codec<T>> std::fmt::Debug for Spill<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A sequence of the records, decoded.
impl<T: Serialize, C: Codec<T>> Serialize for Spill<T, C> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = ser.serialize_seq(Some(self.len()))?;
        for i in 0..self.len() {
            seq.serialize_element(&self.get(i).map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

impl<T, C: Codec<T>> Spill<T, C> {
    /// How many values there are.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.places.len() == 0
    }

    /// Appends a record; fails only when the temporary file cannot be created or written.
    pub fn push(&mut self, value: &T) -> std::io::Result<()> {
        let before = self.buf.len();
        C::encode(value, &mut self.buf)?;
        self.appended(before)
    }

    /// Appends a record already encoded with `C` (by another thread, say).
    pub fn push_encoded(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let before = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.appended(before)
    }

    /// Notes the record that starts at `before` in `buf`, and writes `buf` out when it is full.
    fn appended(&mut self, before: usize) -> std::io::Result<()> {
        if let Err(e) = self.places.push(self.buf.len() - before) {
            self.buf.truncate(before);
            return Err(e);
        }
        if self.buf.len() >= MEMORY_LIMIT {
            self.flush()?;
        } else if self.buf.capacity() < MEMORY_LIMIT {
            // Grown once to the limit (plus a record), not doubled past it.
            self.buf
                .reserve_exact(MEMORY_LIMIT + 64 * 1024 - self.buf.len());
        }
        Ok(())
    }

    /// Writes the buffered records to the temporary file (creating it).
    fn flush(&mut self) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile().map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create a temporary file in {} for the handshakes: {e} (set TMPDIR to a writable directory)",
                        std::env::temp_dir().display()
                    ),
                )
            })?),
        };
        file.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// The encoded bytes of record `i`.
    pub fn bytes(&self, i: usize) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        let (start, end) = self.places.get(i);
        if start >= self.written {
            let at = (start - self.written) as usize;
            return Ok(self.buf[at..at + (end - start) as usize].into());
        }
        let mut out = vec![0; (end - start) as usize];
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("spilled record without a file"))?;
        read_at(file, &mut out, start)?;
        Ok(out.into())
    }

    /// Record `i`, decoded.
    pub fn get(&self, i: usize) -> std::io::Result<T> {
        C::decode(&self.bytes(i)?)
    }

    /// Record `i`, decoded; see [`read_back`].
    pub fn read(&self, i: usize) -> T {
        read_back(self.get(i))
    }

    /// The records in order, decoded; see [`read_back`].
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len()).map(|i| self.read(i))
    }
}

/// A record read back from a spill. chainsniff wrote it moments ago, in this process, to
/// memory or an unnamed temporary file; failing to read it back means the disk failed under
/// us, and there is no report to salvage.
pub fn read_back<T>(r: std::io::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("chainsniff: reading back its own temporary file failed: {e}"),
    }
}

#[cfg(unix)]
fn read_at(file: &File, out: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut out: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !out.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, out, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                out = &mut out[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the report's records hold: skipped empty fields, flattened and tagged parts,
    /// addresses.
    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Record {
        ip: std::net::IpAddr,
        #[serde(skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
        #[serde(flatten)]
        identity: Identity,
        source: Vec<Source>,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Identity {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        mac: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(tag = "source", rename_all = "snake_case")]
    enum Source {
        Sent { position: usize },
        Anchor,
    }

    #[test]
    fn packed_records_read_back_with_skipped_flattened_and_tagged_fields() {
        let records = [
            Record {
                ip: "192.0.2.7".parse().unwrap(),
                sni: None,
                identity: Identity {
                    names: Vec::new(),
                    mac: Some("00:11:22:33:44:55".into()),
                },
                source: vec![Source::Sent { position: 0 }, Source::Anchor],
            },
            Record {
                ip: "2001:db8::1".parse().unwrap(),
                sni: Some("lyncpool.contoso.test".into()),
                identity: Identity {
                    names: vec!["phone-17".into()],
                    mac: None,
                },
                source: Vec::new(),
            },
        ];
        let mut s: Spill<Record, Packed> = Spill::default();
        for r in &records {
            s.push(r).unwrap();
        }
        for (i, r) in records.iter().enumerate() {
            assert_eq!(&s.get(i).unwrap(), r);
        }
    }

    #[test]
    fn records_read_back_from_memory_and_from_the_file() {
        let mut s: Spill<Vec<u64>, Postcard> = Spill::default();
        // Enough records to move to the file and keep a tail in memory.
        let record = |i: u64| (0..(i % 300)).map(|j| i * j).collect::<Vec<u64>>();
        let n = 20_000;
        for i in 0..n {
            s.push(&record(i)).unwrap();
        }
        assert!(s.file.is_some() && !s.buf.is_empty());
        assert_eq!(s.len(), n as usize);
        // Every record: each place among the 64 its start is counted from.
        for i in 0..n {
            assert_eq!(s.get(i as usize).unwrap(), record(i));
        }
    }
}
