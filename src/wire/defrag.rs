//! Stage 2b: IPv4 and IPv6 fragments to whole packets (bounded, with a timeout).
//!
//! Fragments are kept per (source, destination, identification, protocol) until every byte up to
//! the last fragment has arrived; then the reassembled payload is decoded as TCP or UDP. At most
//! [`MAX_PENDING`] packets of at most 64 KiB wait at once, each for at most [`TIMEOUT_NS`] of
//! capture time; what is dropped is counted.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::Timestamp;
use crate::wire::IpFragment;

/// Packets being reassembled at once.
pub const MAX_PENDING: usize = 1024;
/// Capture time a packet may wait for its missing fragments (30 s, as Linux's ipfrag_time).
pub const TIMEOUT_NS: i64 = 30_000_000_000;
const MAX_PACKET: usize = 65_535;

type Key = (IpAddr, IpAddr, u32, u8);

struct Pending {
    data: Vec<u8>,
    /// Byte ranges received (unsorted).
    have: Vec<(usize, usize)>,
    /// Length of the whole payload, once the last fragment is seen.
    total: Option<usize>,
    first_seen: Timestamp,
}

/// Reassembles fragmented IPv4 and IPv6 packets, within bounds.
#[derive(Default)]
pub struct Defragmenter {
    pending: HashMap<Key, Pending>,
    /// Packets given up (timeout, too many, too large).
    pub dropped: u64,
    /// Packets reassembled from fragments.
    pub reassembled: u64,
}

/// A reassembled packet's payload with its addresses and protocol.
pub struct Whole {
    /// The packet's source address.
    pub src: IpAddr,
    /// The packet's destination address.
    pub dst: IpAddr,
    /// The protocol the payload is (6 TCP, 17 UDP, ...).
    pub ip_number: u8,
    /// The reassembled payload.
    pub payload: Vec<u8>,
}

impl Defragmenter {
    /// Adds a fragment; returns the whole payload once the packet is complete.
    pub fn add(&mut self, ts: Timestamp, f: &IpFragment<'_>) -> Option<Whole> {
        self.expire(ts);
        let end = f.offset + f.payload.len();
        if end > MAX_PACKET {
            self.dropped += 1;
            return None;
        }
        let key = (f.src, f.dst, f.id, f.ip_number);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
            return None;
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            data: Vec::new(),
            have: Vec::new(),
            total: None,
            first_seen: ts,
        });
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        // The first copy of a byte wins.
        if p.have.iter().all(|&(a, b)| b <= f.offset || end <= a) {
            p.data[f.offset..end].copy_from_slice(f.payload);
        } else {
            for (i, &byte) in f.payload.iter().enumerate() {
                let at = f.offset + i;
                if !p.have.iter().any(|&(a, b)| a <= at && at < b) {
                    p.data[at] = byte;
                }
            }
        }
        p.have.push((f.offset, end));
        if !f.more {
            p.total = Some(end);
        }
        let total = p.total?;
        p.have.sort_unstable();
        let mut covered = 0;
        for &(a, b) in &p.have {
            if a > covered {
                return None;
            }
            covered = covered.max(b);
        }
        if covered < total {
            return None;
        }
        let mut p = self.pending.remove(&key)?;
        p.data.truncate(total);
        self.reassembled += 1;
        Some(Whole {
            src: f.src,
            dst: f.dst,
            ip_number: f.ip_number,
            payload: p.data,
        })
    }

    /// Packets still waiting for fragments.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn expire(&mut self, now: Timestamp) {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now.0.saturating_sub(p.first_seen.0) <= TIMEOUT_NS);
        self.dropped += (before - self.pending.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(offset: usize, more: bool, payload: &[u8]) -> IpFragment<'_> {
        IpFragment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id: 7,
            ip_number: 17,
            offset,
            more,
            payload,
        }
    }

    #[test]
    fn out_of_order_fragments_make_one_packet() {
        let mut d = Defragmenter::default();
        let t = Timestamp(0);
        assert!(d.add(t, &frag(8, false, b"world")).is_none());
        let whole = d.add(t, &frag(0, true, b"hello, w")).unwrap();
        assert_eq!(whole.payload, b"hello, wworld");
        assert_eq!(d.reassembled, 1);
    }

    #[test]
    fn a_packet_waits_no_longer_than_the_timeout() {
        let mut d = Defragmenter::default();
        assert!(d.add(Timestamp(0), &frag(0, true, b"12345678")).is_none());
        assert!(
            d.add(Timestamp(TIMEOUT_NS + 1), &frag(8, false, b"9"))
                .is_none()
        );
        assert_eq!(d.dropped, 1);
    }
}
