//! Who a client is, beyond its IP address, from what else the capture holds: the MAC address
//! its connections came from (and the vendor the IEEE registry gives that MAC), its DHCP
//! request (host name, vendor class, requested options), names from DNS answers, and the
//! plain-HTTP requests it made (an AIA fetch of a missing intermediate shows here).
//!
//! It looks at frames beside the TLS pipeline, once per connection rather than per packet
//! (TCP SYNs, UDP datagrams), and its tables are bounded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::capture::Frame;
use crate::flow::FlowMap;
use crate::wire::Decoded;

/// Most addresses (and MACs) remembered; beyond it new ones are not recorded.
const MAX_HOSTS: usize = 65_536;
/// Most DNS names remembered per address.
const MAX_NAMES: usize = 8;
/// Most plain-HTTP requests for certificate files remembered.
const MAX_HTTP: usize = 4096;
/// A MAC that is the source of more addresses than this is a router's.
const ROUTER_ADDRESSES: u32 = 8;

/// What a DHCP request said about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Dhcp {
    /// Option 12.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Option 60 (e.g. `Polycom-VVX500`, `MSFT 5.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_class: Option<String>,
    /// Option 55, the parameter request list (43 = vendor-specific, 120 = SIP servers, ...).
    pub requested_options: Vec<u8>,
    /// The frame of the request.
    pub frame: u64,
}

/// A plain-HTTP GET seen in the capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HttpGet {
    /// The client that made the request.
    pub client: IpAddr,
    /// `http://host/path`.
    pub url: String,
    /// The frame of the request.
    pub frame: u64,
}

/// Everything known about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HostIdentity {
    /// `00:04:f2:12:34:56`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The IEEE registry's organization for the MAC's prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// The MAC is also the source of many other addresses: a router between the capture point
    /// and the host, so it says nothing about the host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mac_is_router: bool,
    /// What the host said in DHCP, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<Dhcp>,
    /// Names that DNS answers in the capture gave this address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

/// The identity tables of one or more captures.
#[derive(Debug, Default)]
pub struct Identities {
    mac_of_ip: FlowMap<IpAddr, [u8; 6]>,
    addresses_of_mac: FlowMap<[u8; 6], u32>,
    dhcp_of_mac: FlowMap<[u8; 6], Dhcp>,
    mac_of_lease: FlowMap<IpAddr, [u8; 6]>,
    names: FlowMap<IpAddr, Vec<String>>,
    http: Vec<HttpGet>,
}

/// The identity tables as plain lists (each sorted), as a partial analysis stores them.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Tables {
    mac_of_ip: Vec<(IpAddr, [u8; 6])>,
    addresses_of_mac: Vec<([u8; 6], u32)>,
    dhcp_of_mac: Vec<([u8; 6], Dhcp)>,
    mac_of_lease: Vec<(IpAddr, [u8; 6])>,
    names: Vec<(IpAddr, Vec<String>)>,
    http: Vec<HttpGet>,
}

/// A map's entries, sorted by key.
fn sorted<K: Ord + Clone, V: Clone>(map: &FlowMap<K, V>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Identities {
    /// The tables as lists.
    pub fn tables(&self) -> Tables {
        Tables {
            mac_of_ip: sorted(&self.mac_of_ip),
            addresses_of_mac: sorted(&self.addresses_of_mac),
            dhcp_of_mac: sorted(&self.dhcp_of_mac),
            mac_of_lease: sorted(&self.mac_of_lease),
            names: sorted(&self.names),
            http: self.http.clone(),
        }
    }

    /// The identities the lists of [`Identities::tables`] hold.
    pub fn from_tables(t: Tables) -> Self {
        Identities {
            mac_of_ip: t.mac_of_ip.into_iter().collect(),
            addresses_of_mac: t.addresses_of_mac.into_iter().collect(),
            dhcp_of_mac: t.dhcp_of_mac.into_iter().collect(),
            mac_of_lease: t.mac_of_lease.into_iter().collect(),
            names: t.names.into_iter().collect(),
            http: t.http,
        }
    }
}

/// The vendor of a MAC address from the IEEE registries (MA-L, MA-M, MA-S, IAB).
pub fn vendor(mac: &[u8; 6]) -> Option<&'static str> {
    if mac[0] & 0x02 != 0 {
        return None; // locally administered (randomized): no vendor
    }
    if mac[..3] == [0, 0, 0] {
        // Xerox's old block on paper; in captures, loopback and made-up addresses.
        return None;
    }
    oui_data::lookup(&hex::encode_upper(mac)).map(|o| o.organization())
}

/// The source MAC and source IP of an Ethernet frame carrying IP directly (not tunnelled).
fn ethernet_source(data: &[u8]) -> Option<([u8; 6], IpAddr)> {
    let (mac, ethertype, ip) = crate::wire::ethernet_header(data).ok()?;
    let src = match ethertype {
        0x0800 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?)),
        0x86dd => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?)),
        _ => return None,
    };
    Some((mac, src))
}

impl Identities {
    /// The plain-HTTP requests for any of `urls` (the host compared without case), at most 20.
    pub fn fetches_of(&self, urls: &[String]) -> Vec<HttpGet> {
        self.http
            .iter()
            .filter(|g| urls.iter().any(|u| u.eq_ignore_ascii_case(&g.url)))
            .take(20)
            .cloned()
            .collect()
    }

    /// Looks at one decoded frame.
    pub fn observe(&mut self, frame: &Frame<'_>, decoded: &Decoded<'_>) {
        let (data, number) = (frame.data, frame.number);
        let (src, first_of_conversation) = match decoded {
            Decoded::Tcp(seg) => {
                if seg.dport == 80 && seg.payload.starts_with(b"GET ") {
                    self.http_get(number, seg.src, seg.payload);
                }
                (seg.src, seg.flags.syn)
            }
            Decoded::Udp(d) => {
                match (d.sport, d.dport) {
                    (68, 67) | (67, 68) => self.dhcp(number, d.payload),
                    (53, _) | (5353, _) => self.dns(d.payload),
                    _ => {}
                }
                (d.src, true)
            }
            _ => return,
        };
        if first_of_conversation
            && frame.linktype == pcap_parser::Linktype::ETHERNET
            && let Some((mac, ip)) = ethernet_source(data)
            && ip == src
            && !ip.is_unspecified()
            && mac != [0; 6]
            && mac[0] & 0x01 == 0
            && !self.mac_of_ip.contains_key(&ip)
            && self.mac_of_ip.len() < MAX_HOSTS
        {
            self.mac_of_ip.insert(ip, mac);
            if self.addresses_of_mac.len() < MAX_HOSTS || self.addresses_of_mac.contains_key(&mac) {
                *self.addresses_of_mac.entry(mac).or_default() += 1;
            }
        }
    }

    fn http_get(&mut self, frame: u64, client: IpAddr, payload: &[u8]) {
        if self.http.len() >= MAX_HTTP {
            return;
        }
        let head = &payload[..payload.len().min(2048)];
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let Some(path) = lines
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
        else {
            return;
        };
        let host = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.trim().to_string());
        // Only what an AIA caIssuers fetch looks like: a certificate file.
        let file = path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if ![".crt", ".cer", ".der", ".p7c", ".p7b", ".pem"]
            .iter()
            .any(|ext| file.ends_with(ext))
        {
            return;
        }
        let url = match host {
            Some(h) if path.starts_with('/') => format!("http://{h}{path}"),
            _ => path.to_string(),
        };
        self.http.push(HttpGet { client, url, frame });
    }

    /// DHCP (RFC 2131/2132): requests name the client by its hardware address; an ACK binds
    /// that address to the leased IP.
    fn dhcp(&mut self, frame: u64, p: &[u8]) {
        if p.len() < 240 || p[236..240] != [0x63, 0x82, 0x53, 0x63] || p[1] != 1 || p[2] != 6 {
            return; // not Ethernet DHCP
        }
        let op = p[0];
        let Ok(chaddr) = <[u8; 6]>::try_from(&p[28..34]) else {
            return;
        };
        let yiaddr = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let mut msg_type = 0;
        let mut info = Dhcp {
            frame,
            ..Default::default()
        };
        let mut opts = &p[240..];
        while let [code, rest @ ..] = opts {
            match code {
                0 => {
                    opts = rest;
                    continue;
                }
                255 => break,
                _ => {}
            }
            let [len, rest @ ..] = rest else { break };
            let Some(value) = rest.get(..*len as usize) else {
                break;
            };
            let text = || {
                Some(
                    String::from_utf8_lossy(value)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            };
            match code {
                53 => msg_type = value.first().copied().unwrap_or(0),
                12 => info.hostname = text(),
                60 => info.vendor_class = text(),
                55 => info.requested_options = value.to_vec(),
                _ => {}
            }
            opts = &rest[*len as usize..];
        }
        match (op, msg_type) {
            // DISCOVER, REQUEST, INFORM from the client: keep the latest.
            (1, 1 | 3 | 8)
                if self.dhcp_of_mac.len() < MAX_HOSTS || self.dhcp_of_mac.contains_key(&chaddr) =>
            {
                self.dhcp_of_mac.insert(chaddr, info);
            }
            // ACK from the server.
            (2, 5) if !yiaddr.is_unspecified() && self.mac_of_lease.len() < MAX_HOSTS => {
                self.mac_of_lease.insert(IpAddr::V4(yiaddr), chaddr);
            }
            _ => {}
        }
    }

    /// DNS responses: A/AAAA answers name the address with the question's name; PTR answers
    /// name the address they are for.
    fn dns(&mut self, payload: &[u8]) {
        let Ok(packet) = simple_dns::Packet::parse(payload) else {
            return;
        };
        if !packet.has_flags(simple_dns::PacketFlag::RESPONSE) {
            return;
        }
        let question = packet.questions.first().map(|q| q.qname.to_string());
        for rr in &packet.answers {
            let (ip, name) = match &rr.rdata {
                simple_dns::rdata::RData::A(a) => (
                    IpAddr::V4(Ipv4Addr::from(a.address)),
                    question.clone().unwrap_or_else(|| rr.name.to_string()),
                ),
                simple_dns::rdata::RData::AAAA(a) => (
                    IpAddr::V6(Ipv6Addr::from(a.address)),
                    question.clone().unwrap_or_else(|| rr.name.to_string()),
                ),
                simple_dns::rdata::RData::PTR(target) => {
                    let Some(ip) = ptr_address(&rr.name.to_string()) else {
                        continue;
                    };
                    (ip, target.0.to_string())
                }
                _ => continue,
            };
            let name = name.trim_end_matches('.').to_string();
            if name.is_empty() || (self.names.len() >= MAX_HOSTS && !self.names.contains_key(&ip)) {
                continue;
            }
            let names = self.names.entry(ip).or_default();
            if names.len() < MAX_NAMES && !names.contains(&name) {
                names.push(name);
            }
        }
    }

    /// Merges the tables of a later capture into these.
    pub fn merge(&mut self, other: Identities) {
        if self.is_empty() {
            // The first capture's tables are taken as they are, not copied entry by entry.
            *self = other;
            return;
        }
        for (ip, mac) in other.mac_of_ip {
            if !self.mac_of_ip.contains_key(&ip) && self.mac_of_ip.len() < MAX_HOSTS {
                self.mac_of_ip.insert(ip, mac);
                *self.addresses_of_mac.entry(mac).or_default() += 1;
            }
        }
        self.dhcp_of_mac.extend(other.dhcp_of_mac);
        self.mac_of_lease.extend(other.mac_of_lease);
        for (ip, names) in other.names {
            let mine = self.names.entry(ip).or_default();
            for n in names {
                if mine.len() < MAX_NAMES && !mine.contains(&n) {
                    mine.push(n);
                }
            }
        }
        let room = MAX_HTTP.saturating_sub(self.http.len());
        self.http.extend(other.http.into_iter().take(room));
    }

    fn is_empty(&self) -> bool {
        self.mac_of_ip.is_empty()
            && self.addresses_of_mac.is_empty()
            && self.dhcp_of_mac.is_empty()
            && self.mac_of_lease.is_empty()
            && self.names.is_empty()
            && self.http.is_empty()
    }

    /// What is known about `ip`.
    pub fn of(&self, ip: IpAddr) -> HostIdentity {
        let known = self.known(ip);
        HostIdentity {
            mac: known.mac.map(|m| crate::model::mac_string(&m)),
            vendor: known.vendor.map(str::to_string),
            mac_is_router: known.router,
            dhcp: known.dhcp.cloned(),
            dns_names: known.dns_names.to_vec(),
        }
    }

    /// What is known about `ip`, borrowed from the tables (for a look that copies out only
    /// what it uses).
    pub fn known(&self, ip: IpAddr) -> Known<'_> {
        // An IPv6 link-local address with a modified EUI-64 identifier is made from its MAC
        // (EAPOL ends are named by such addresses: `model::mac_endpoint`).
        let mac = self
            .mac_of_lease
            .get(&ip)
            .or_else(|| self.mac_of_ip.get(&ip))
            .copied()
            .or_else(|| crate::model::mac_of(ip));
        let router = mac.is_some_and(|m| {
            !self.mac_of_lease.contains_key(&ip)
                && self.addresses_of_mac.get(&m).copied().unwrap_or(0) > ROUTER_ADDRESSES
        });
        Known {
            mac,
            vendor: mac.filter(|_| !router).and_then(|m| vendor(&m)),
            router,
            dhcp: mac.and_then(|m| self.dhcp_of_mac.get(&m)),
            dns_names: self.names.get(&ip).map_or(&[], Vec::as_slice),
        }
    }
}

/// [`HostIdentity`], borrowed: what [`Identities::known`] finds.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// Its MAC address, if known.
    pub mac: Option<crate::model::Mac>,
    /// The MAC's vendor, unless the MAC is a router's.
    pub vendor: Option<&'static str>,
    /// The MAC is a router's ([`HostIdentity::mac_is_router`]).
    pub router: bool,
    /// What the host said in DHCP.
    pub dhcp: Option<&'a Dhcp>,
    /// Names DNS answers gave the address.
    pub dns_names: &'a [String],
}

/// The address a reverse-DNS name stands for (`4.3.2.1.in-addr.arpa` → 1.2.3.4).
fn ptr_address(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut parts: Vec<u8> = v4
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        if parts.len() != 4 {
            return None;
        }
        parts.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(
            parts[0], parts[1], parts[2], parts[3],
        )));
    }
    let v6 = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = v6
        .split('.')
        .rev()
        .map(|n| u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, pair) in nibbles.chunks(2).enumerate() {
        b[i] = pair[0] << 4 | pair[1];
    }
    Some(IpAddr::V6(Ipv6Addr::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            ptr_address("12.1.0.127.in-addr.arpa."),
            Some("127.0.1.12".parse().unwrap())
        );
        assert_eq!(
            ptr_address("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(ptr_address("example.com"), None);
    }

    #[test]
    fn vendors_from_the_ieee_registry() {
        // 00:04:F2 is Polycom's; 02:... is locally administered (a randomized MAC).
        assert!(
            vendor(&[0x00, 0x04, 0xf2, 1, 2, 3])
                .unwrap()
                .contains("Polycom")
        );
        assert_eq!(vendor(&[0x02, 0x04, 0xf2, 1, 2, 3]), None);
        // Loopback captures have all-zero MACs: no vendor.
        assert_eq!(vendor(&[0, 0, 0, 0, 0, 1]), None);
    }
}
