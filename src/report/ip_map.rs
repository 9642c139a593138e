//! A table keyed by an IP address, kept small for the report's per-client tables.
//!
//! An [`IpAddr`] is 17 bytes with its tag, so an entry keyed by one takes 24 bytes for a
//! 4-byte value; a capture's clients are mostly IPv4, whose address is a `u32`. [`IpMap`] keeps
//! the IPv4 keys as `u32` (8 bytes with that value) and the IPv6 ones as their 16 bytes, in two
//! tables. With half a million clients the root causes' tables take a third of what they did
//! (docs/performance.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::FlowMap;

/// A map from IP address to `V`; [`IpMap::sorted`] gives it in address order (`IpAddr`'s: all
/// IPv4 first).
pub(super) struct IpMap<V> {
    v4: FlowMap<u32, V>,
    v6: FlowMap<[u8; 16], V>,
}

impl<V> Default for IpMap<V> {
    fn default() -> Self {
        IpMap {
            v4: FlowMap::default(),
            v6: FlowMap::default(),
        }
    }
}

impl<V> IpMap<V> {
    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub(super) fn get(&self, ip: &IpAddr) -> Option<&V> {
        match ip {
            IpAddr::V4(a) => self.v4.get(&a.to_bits()),
            IpAddr::V6(a) => self.v6.get(&a.octets()),
        }
    }

    pub(super) fn contains_key(&self, ip: &IpAddr) -> bool {
        self.get(ip).is_some()
    }

    pub(super) fn insert(&mut self, ip: IpAddr, v: V) {
        match ip {
            IpAddr::V4(a) => self.v4.insert(a.to_bits(), v),
            IpAddr::V6(a) => self.v6.insert(a.octets(), v),
        };
    }

    /// The value at `ip`, made with `V::default()` if there was none.
    pub(super) fn entry_or_default(&mut self, ip: IpAddr) -> &mut V
    where
        V: Default,
    {
        match ip {
            IpAddr::V4(a) => self.v4.entry(a.to_bits()).or_default(),
            IpAddr::V6(a) => self.v6.entry(a.octets()).or_default(),
        }
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.v4.values().chain(self.v6.values())
    }

    /// The entries in address order, with their values copied out (a list of these is
    /// made, 8 bytes an IPv4 entry for a 2-byte value, where one of `(IpAddr, &V)` would take
    /// 32).
    pub(super) fn sorted(&self) -> impl Iterator<Item = (IpAddr, V)>
    where
        V: Copy,
    {
        let mut v4: Vec<(u32, V)> = self.v4.iter().map(|(k, v)| (*k, *v)).collect();
        v4.sort_unstable_by_key(|(k, _)| *k);
        let mut v6: Vec<([u8; 16], V)> = self.v6.iter().map(|(k, v)| (*k, *v)).collect();
        v6.sort_unstable_by_key(|(k, _)| *k);
        let v4 = v4
            .into_iter()
            .map(|(k, v)| (IpAddr::V4(Ipv4Addr::from_bits(k)), v));
        let v6 = v6
            .into_iter()
            .map(|(k, v)| (IpAddr::V6(Ipv6Addr::from(k)), v));
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_both_families_and_sorts_as_ip_addr_does() {
        let ips: Vec<IpAddr> = [
            "10.0.0.2",
            "::1",
            "10.0.0.10",
            "2001:db8::1",
            "9.255.255.255",
            "fe80::1",
            "0.0.0.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let mut m: IpMap<u32> = IpMap::default();
        for (i, ip) in ips.iter().enumerate() {
            *m.entry_or_default(*ip) += i as u32 + 1;
        }
        *m.entry_or_default(ips[1]) += 100;
        m.insert(ips[4], 7);
        assert_eq!(m.len(), ips.len());
        assert_eq!(m.get(&ips[1]), Some(&102));
        assert_eq!(m.get(&ips[4]), Some(&7));
        assert!(!m.contains_key(&"10.0.0.3".parse().unwrap()));
        assert!(!m.contains_key(&"::2".parse().unwrap()));
        let mut expected = ips.clone();
        expected.sort();
        let got: Vec<IpAddr> = m.sorted().map(|(ip, _)| ip).collect();
        assert_eq!(got, expected);
        assert_eq!(m.values().sum::<u32>(), 1 + 102 + 3 + 4 + 7 + 6 + 7);
    }
}
