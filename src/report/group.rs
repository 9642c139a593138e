//! Grouping handshakes by server and chain variant (the report's sections), counting them,
//! and the other groupings of `--group-by`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::analysis::Analysis;
use crate::model::Endpoint;
use crate::pki::CertSummary;
use crate::pki::{Finding, FindingKind, Severity, Status, Verdict, inconsistent_message};
use crate::spill::{Packed, Spill};

use super::build::Judged;
use super::causes::{self, Causes, NotJudged, ServerFacts};
use super::evidence::{Streams, set_evidence};
use super::model::{
    ChainVariant, ClientList, ClientReport, Group, GroupBy, Grouping, HandshakeList,
    HandshakeReport, Records, Report, ServerReport, Summary, TrustInfo, VariantClient,
    VariantClients,
};
use super::{SCHEMA, capture_labels};

/// What a chain variant gathers while its handshakes go by.
#[derive(Default)]
struct VariantTally {
    /// The causes its findings are part of ([`Causes`] indices).
    causes: Vec<u32>,
    /// The captures its handshakes came from.
    captures: std::collections::BTreeSet<usize>,
    /// Its clients' lines in the shared list.
    lines: Vec<u32>,
    /// Their handshakes by how the clients reacted.
    reactions: crate::judge::ReactionCount,
    /// The first handshake's capture and Certificate frame.
    first_certificate: Option<(usize, u64)>,
    streams: Streams,
}

/// What a server gathers while its handshakes go by.
#[derive(Default)]
struct ServerTally {
    variants: Vec<VariantTally>,
    /// The streams of every handshake with a chain.
    streams: Streams,
    /// Its handshakes per capture.
    per_capture: BTreeMap<usize, usize>,
}

/// One handshake as the clients' section needs it: kept compact, one per handshake, until
/// the handshakes are sorted by client and each client's report is written out.
#[derive(Clone, Copy)]
struct ClientSeen {
    /// The client's address: an IPv4 address itself, or (`v6`) an index in
    /// [`ClientsSeen::v6`]. Most clients are IPv4, and an `IpAddr` would make each line 32
    /// bytes, not 20.
    addr: u32,
    v6: bool,
    handshake: u32,
    /// Index of the server in [`group`]'s list.
    server: u32,
    /// Its JA3 and JA4, an index in [`ClientsSeen::pairs`] (one `u32` where two would make
    /// each line 4 bytes longer).
    fingerprints: u32,
    status: Status,
    /// The handshake has an error finding.
    error: bool,
}

// One line per handshake: half a million at 8 GiB.
const _: () = assert!(std::mem::size_of::<ClientSeen>() == 20);

const NO_FINGERPRINT: u32 = u32::MAX;

#[derive(Default)]
struct ClientsSeen {
    seen: Vec<ClientSeen>,
    fingerprints: Vec<String>,
    fingerprint_ids: HashMap<String, u32>,
    /// The (JA3, JA4) pairs seen, as indices in `fingerprints` ([`NO_FINGERPRINT`] without a
    /// ClientHello, not an `Option`, which would take twice the room).
    pairs: Vec<(u32, u32)>,
    pair_ids: HashMap<(u32, u32), u32>,
    /// The IPv6 clients' addresses, each once.
    v6: Vec<std::net::Ipv6Addr>,
    v6_ids: HashMap<std::net::Ipv6Addr, u32>,
}

/// A line's client address as it sorts: `IpAddr`'s order (every IPv4 address first).
fn order_of(v6: &[std::net::Ipv6Addr], c: &ClientSeen) -> (bool, u128) {
    if c.v6 {
        (true, u128::from(v6[c.addr as usize]))
    } else {
        (false, u128::from(c.addr))
    }
}

impl ClientsSeen {
    fn fingerprint(&mut self, f: &Option<String>) -> u32 {
        let Some(f) = f.as_ref() else {
            return NO_FINGERPRINT;
        };
        if let Some(id) = self.fingerprint_ids.get(f) {
            return *id;
        }
        let id = self.fingerprints.len() as u32;
        self.fingerprints.push(f.clone());
        self.fingerprint_ids.insert(f.clone(), id);
        id
    }

    fn pair(&mut self, ja3: &Option<String>, ja4: &Option<String>) -> u32 {
        let pair = (self.fingerprint(ja3), self.fingerprint(ja4));
        let next = self.pairs.len() as u32;
        *self.pair_ids.entry(pair).or_insert_with(|| {
            self.pairs.push(pair);
            next
        })
    }

    /// A client address as a line keeps it: `(addr, v6)` ([`ClientSeen::addr`]).
    fn addr_of(&mut self, ip: std::net::IpAddr) -> (u32, bool) {
        match ip {
            std::net::IpAddr::V4(a) => (a.to_bits(), false),
            std::net::IpAddr::V6(a) => {
                let next = self.v6.len() as u32;
                let id = *self.v6_ids.entry(a).or_insert_with(|| {
                    self.v6.push(a);
                    next
                });
                (id, true)
            }
        }
    }

    fn add(&mut self, h: &HandshakeReport, server: u32) {
        let (addr, v6) = self.addr_of(h.client.ip);
        let seen = ClientSeen {
            addr,
            v6,
            handshake: h.id as u32,
            server,
            fingerprints: self.pair(&h.ja3, &h.ja4),
            status: h.status,
            error: h.has_error(),
        };
        self.seen.push(seen);
    }

    /// Puts the lines in the order [`ClientsSeen::finish`] takes them: last client first,
    /// so that each client's lines can be taken off the end and their room given back while
    /// the client list grows (the two are never both whole); a client's lines last handshake
    /// first.
    fn sort(&mut self) {
        let v6 = &self.v6;
        self.seen
            .sort_unstable_by_key(|c| std::cmp::Reverse((order_of(v6, c), c.handshake)));
    }

    /// The client address of a line.
    fn ip(&self, c: &ClientSeen) -> std::net::IpAddr {
        if c.v6 {
            std::net::IpAddr::V6(self.v6[c.addr as usize])
        } else {
            std::net::IpAddr::V4(std::net::Ipv4Addr::from_bits(c.addr))
        }
    }

    /// The first JA4 (in report order) of the client at `ip`, once the lines are sorted: the
    /// first of its client report's `ja4`.
    fn first_ja4(&self, ip: std::net::IpAddr) -> Option<&str> {
        let key = match ip {
            std::net::IpAddr::V4(a) => (false, u128::from(a.to_bits())),
            std::net::IpAddr::V6(a) => (true, u128::from(a)),
        };
        let from = self.seen.partition_point(|c| order_of(&self.v6, c) > key);
        let to = self.seen.partition_point(|c| order_of(&self.v6, c) >= key);
        let id = self.seen[from..to]
            .iter()
            .rev()
            .map(|c| self.pairs[c.fingerprints as usize].1)
            .find(|&f| f != NO_FINGERPRINT)?;
        self.fingerprints.get(id as usize).map(String::as_str)
    }

    /// Every client's report, by address, from the sorted lines ([`ClientsSeen::sort`]).
    fn finish(
        mut self,
        analysis: &Analysis,
        servers: &[ServerReport],
    ) -> std::io::Result<ClientList> {
        let same = |a: &ClientSeen, b: &ClientSeen| (a.addr, a.v6) == (b.addr, b.v6);
        let clients = self.seen.chunk_by(|a, b| same(a, b)).count();
        let mut out = ClientList {
            records: Spill::default(),
            ips: Vec::with_capacity(clients),
            got_error: Vec::with_capacity(clients),
        };
        let mut one: Vec<ClientSeen> = Vec::new();
        let mut given_back = self.seen.len();
        while let Some(&last) = self.seen.last() {
            let from = self
                .seen
                .iter()
                .rposition(|c| !same(c, &last))
                .map_or(0, |i| i + 1);
            one.clear();
            one.extend(self.seen.drain(from..).rev());
            if given_back - self.seen.len() >= 1 << 16 {
                self.seen.shrink_to_fit();
                given_back = self.seen.len();
            }
            let one = &one;
            let ip = self.ip(&last);
            let mut c = ClientReport {
                ip,
                identity: analysis.identities.of(ip),
                ja3: Vec::new(),
                ja4: Vec::new(),
                handshakes: Vec::with_capacity(one.len()),
                statuses: BTreeMap::new(),
                servers: Vec::new(),
            };
            for h in one.iter() {
                c.handshakes.push(h.handshake as usize);
                let (ja3, ja4) = self.pairs[h.fingerprints as usize];
                for (mine, fp) in [(&mut c.ja3, ja3), (&mut c.ja4, ja4)] {
                    if let Some(fp) = self.fingerprints.get(fp as usize)
                        && !mine.contains(fp)
                    {
                        mine.push(fp.clone());
                    }
                }
                *c.statuses.entry(h.status.as_str().to_string()).or_default() += 1;
                let endpoint = servers[h.server as usize].server;
                if !c.servers.contains(&endpoint) {
                    c.servers.push(endpoint);
                }
            }
            out.push(&c, one.iter().any(|h| h.error))?;
        }
        Ok(out)
    }
}

/// The second stage of [`build`]: the report from the handshakes, in order, in batches.
pub(super) fn group(
    analysis: &Analysis,
    records: Records,
    batches: impl Iterator<Item = std::io::Result<Vec<Judged>>>,
) -> crate::Result<Report> {
    // Group by server (address, port, SNI), then by the exact chain sent. Handshakes go to
    // `handshakes` one at a time: only their grouping stays in memory.
    let mut server_index: HashMap<(Endpoint, Option<String>), usize> = HashMap::new();
    let mut servers: Vec<ServerReport> = Vec::new();
    let mut tallies: Vec<ServerTally> = Vec::new();
    // What stays in memory per handshake is reserved once, not grown by doubling.
    let n = analysis.sessions.len();
    let mut lines: Spill<VariantClient, Packed> = Spill::default();
    let mut handshakes = HandshakeList::new(records, n);
    let mut seen = ClientsSeen {
        seen: Vec::with_capacity(n),
        ..Default::default()
    };
    let mut by_status = BTreeMap::new();
    let mut by_verdict = BTreeMap::new();
    // A joined capture's files count as its first file for the per-capture counts.
    let capture_of: Vec<usize> = analysis
        .captures
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.joined
                .as_ref()
                .and_then(|j| j.captures.first().copied())
                .unwrap_or(i)
        })
        .collect();
    let mut causes = Causes::new(capture_of.clone());
    let mut not_judged_count = 0;
    let (mut errors, mut warnings) = (0, 0);
    let mut failed = None;
    let judged = batches
        .map_while(|b| b.map_err(|e| failed = Some(e)).ok())
        .flatten();
    for Judged { h, record, client } in judged {
        let key = (h.server, h.sni.clone());
        let si = *server_index.entry(key).or_insert_with(|| {
            servers.push(ServerReport {
                server: h.server,
                identity: analysis.identities.of(h.server.ip),
                sni: h.sni.clone(),
                handshakes: 0,
                variants: Vec::new(),
                without_chain: BTreeMap::new(),
                without_chain_reactions: BTreeMap::new(),
                findings: Vec::new(),
            });
            tallies.push(ServerTally::default());
            servers.len() - 1
        });
        let server = &mut servers[si];
        let tally = &mut tallies[si];
        server.handshakes += 1;
        let capture = capture_of.get(h.capture).copied().unwrap_or(h.capture);
        *tally.per_capture.entry(capture).or_default() += 1;
        match (&h.chain_variant, client) {
            (Some(label), Some(line)) => {
                let vi = match server.variants.iter().position(|v| v.id == *label) {
                    Some(i) => i,
                    None => {
                        server.variants.push(ChainVariant {
                            id: label.clone(),
                            subjects: h.certificates.iter().map(|c| c.subject.clone()).collect(),
                            certificates: h.certificates.iter().map(|c| c.sha256.clone()).collect(),
                            status: h.status,
                            verdict: h.verdict,
                            findings: h
                                .findings
                                .iter()
                                .filter(|f| f.kind != FindingKind::RejectedByClient)
                                .cloned()
                                .collect(),
                            path: h.path.clone(),
                            clients: VariantClients::default(),
                        });
                        // The issuer a `missing_issuer` finding names: the one of the
                        // last certificate on the path.
                        let missing_issuer = h
                            .findings
                            .iter()
                            .any(|f| f.kind == FindingKind::MissingIssuer)
                            .then(|| {
                                let last = h.path.last()?;
                                h.certificates
                                    .iter()
                                    .find(|c| c.sha256 == last.sha256)
                                    .map(|c| c.issuer.clone())
                            })
                            .flatten();
                        let variant_causes = causes.variant(
                            si as u32,
                            server.variants.last().expect("just pushed"),
                            missing_issuer.as_deref(),
                        );
                        tally.variants.push(VariantTally {
                            causes: variant_causes,
                            ..Default::default()
                        });
                        server.variants.len() - 1
                    }
                };
                let v = &mut tally.variants[vi];
                v.lines.push(lines.len() as u32);
                v.reactions.add(h.client_reaction.kind);
                lines.push_encoded(&line)?;
                let (cert_capture, cert_stream, cert_filter) = h.certificate_place();
                if v.lines.len() == 1 {
                    v.first_certificate = h.certificate_frame.map(|f| (cert_capture, f));
                }
                v.streams.add(
                    cert_capture,
                    &h.transport,
                    cert_stream,
                    cert_filter,
                    h.certificate_frame,
                );
                v.captures.insert(capture);
                for &c in &v.causes {
                    causes.handshake(c, si as u32, Some(label), &h, &analysis.identities);
                }
                if h.findings
                    .iter()
                    .any(|f| f.kind == FindingKind::RejectedByClient)
                {
                    let c = causes.rejected(si as u32, &server.variants[vi]);
                    causes.handshake(c, si as u32, Some(label), &h, &analysis.identities);
                }
                tally.streams.add(
                    cert_capture,
                    &h.transport,
                    cert_stream,
                    cert_filter,
                    h.certificate_frame,
                );
            }
            _ => {
                let status = h.status.as_str();
                if !server.without_chain.contains_key(status) {
                    server.without_chain.insert(status.to_string(), Vec::new());
                    let count = crate::judge::ReactionCount::default();
                    server
                        .without_chain_reactions
                        .insert(status.to_string(), count);
                }
                if let Some(ids) = server.without_chain.get_mut(status) {
                    ids.push(h.id);
                }
                if let Some(count) = server.without_chain_reactions.get_mut(status) {
                    count.add(h.client_reaction.kind);
                }
            }
        }

        seen.add(&h, si as u32);
        *by_status.entry(h.status.as_str().to_string()).or_insert(0) += 1;
        *by_verdict
            .entry(h.verdict.as_str().to_string())
            .or_insert(0) += 1;
        if h.verdict == Verdict::NotJudged
            && let Some(why) = NotJudged::of(&h)
        {
            not_judged_count += 1;
            let c = causes.not_judged(why);
            causes.handshake(c, si as u32, None, &h, &analysis.identities);
        }
        for f in &h.findings {
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => {}
            }
        }
        handshakes.push_encoded(&record, h.findings.iter().map(|f| f.severity).min())?;
    }
    if let Some(e) = failed {
        return Err(e.into());
    }

    let lines = Arc::new(lines);
    // Addresses that serve several names: a filter on the address alone would mix them.
    let mut names_per_endpoint: HashMap<Endpoint, usize> = HashMap::new();
    for s in &servers {
        *names_per_endpoint.entry(s.server).or_default() += 1;
    }
    for (si, (s, tally)) in servers.iter_mut().zip(&mut tallies).enumerate() {
        let shared = names_per_endpoint.get(&s.server).is_some_and(|n| *n > 1);
        for (v, t) in s.variants.iter_mut().zip(&mut tally.variants) {
            v.clients = VariantClients {
                list: (lines.clone(), std::mem::take(&mut t.lines)),
                reactions: t.reactions,
            };
            let evidence = t.streams.evidence(s.server, shared);
            for f in &mut v.findings {
                set_evidence(f, evidence.clone(), None);
            }
        }
        if s.variants.len() > 1 {
            let captures: Vec<_> = tally.variants.iter().map(|v| &v.captures).collect();
            causes.inconsistent(si as u32, &s.variants, &captures);
            let sock = SocketAddr::new(s.server.ip, s.server.port);
            let mut f = Finding::new(
                FindingKind::InconsistentChains,
                inconsistent_message(&sock, s.sni.as_deref(), s.variants.len()),
                None,
            );
            // The first handshake of the second variant: where the chains start to differ.
            let evidence = tally.streams.evidence(s.server, shared);
            set_evidence(&mut f, evidence, tally.variants[1].first_certificate);
            s.findings.push(f);
        }
        for f in &s.findings {
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => {}
            }
        }
    }
    // The causes first, which then give back their per-client tables before the client list
    // is made (at 8 GiB, 24 MB that were alive beside it).
    seen.sort();
    let causes = {
        let facts: Vec<ServerFacts<'_>> = servers
            .iter()
            .zip(&tallies)
            .map(|(s, t)| ServerFacts {
                server: s.server,
                sni: s.sni.as_deref(),
                per_capture: &t.per_capture,
                bundle: crate::export::bundle_path(analysis, s)
                    .map(|_| crate::export::bundle_name(s)),
            })
            .collect();
        let names = capture_labels(&analysis.captures);
        let ja4_of = |ip| seen.first_ja4(ip);
        causes.finish(&facts, &names, &ja4_of)
    };
    let clients = seen.finish(analysis, &servers)?;
    // Servers with problems first, then by address.
    let mut servers: Vec<(ServerReport, ServerTally)> = servers.into_iter().zip(tallies).collect();
    servers.sort_by_key(|(s, _)| {
        let worst = s
            .variants
            .iter()
            .flat_map(|v| v.findings.iter())
            .chain(s.findings.iter())
            .map(|f| f.severity)
            .min()
            .unwrap_or(Severity::Info);
        (worst, s.server, s.sni.clone())
    });
    let mut headlines: Vec<String> = causes
        .iter()
        .take(causes::MAX_HEADLINES)
        .map(|c| c.headline.clone())
        .collect();
    headlines.extend(causes::more_causes(&causes));
    let servers: Vec<ServerReport> = servers.into_iter().map(|(s, _)| s).collect();
    Ok(Report {
        schema: SCHEMA,
        generator: format!("chainsniff {}", env!("CARGO_PKG_VERSION")),
        summary: Summary {
            captures: analysis.captures.len(),
            frames: analysis.captures.iter().map(|c| c.summary.frames).sum(),
            handshakes: handshakes.len(),
            servers: servers.len(),
            clients: clients.len(),
            by_status,
            by_verdict,
            not_judged: not_judged_count,
            errors,
            warnings,
            headlines,
            causes,
            filtered_out: analysis.filtered_out,
        },
        captures: analysis.captures.clone(),
        trust: TrustInfo {
            store: analysis.trust.source,
            default_roots: analysis.trust.default_roots,
            user_anchors: analysis.trust.user,
            partial_chain: analysis.trust.partial_chain,
            notes: analysis.trust.notes.clone(),
        },
        certificates: certificate_index(analysis, &servers),
        groups: None,
        handshakes,
        servers,
        clients,
    })
}

/// The certificates sent in the captures and the anchors the servers' paths end at.
fn certificate_index(
    analysis: &Analysis,
    servers: &[ServerReport],
) -> BTreeMap<String, Arc<CertSummary>> {
    let mut out = BTreeMap::new();
    for sha in &analysis.store.order {
        if let Some(m) = analysis.store.meta(sha) {
            out.insert(hex::encode(sha), m.summary.clone());
        }
    }
    for link in servers
        .iter()
        .flat_map(|s| s.variants.iter())
        .flat_map(|v| v.path.iter())
    {
        if out.contains_key(&link.sha256) {
            continue;
        }
        let meta =
            crate::pki::sha_from_hex(&link.sha256).and_then(|sha| analysis.trust.store.meta(&sha));
        if let Some(m) = meta {
            out.insert(link.sha256.clone(), m.summary.clone());
        }
    }
    out
}

pub(super) fn variant_label(i: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if i < 26 {
        (letters[i] as char).to_string()
    } else {
        format!("V{}", i + 1)
    }
}

impl Report {
    /// Groups the handshakes by `by` into [`Report::groups`].
    pub fn group_by(&mut self, by: GroupBy) {
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for h in self.handshakes.iter() {
            let client = self.client(h.client.ip);
            let identity = client.as_ref().map(|c| &c.identity);
            let (key, detail) = match by {
                GroupBy::Server => (
                    match &h.sni {
                        Some(sni) => format!("{} ({sni})", h.server),
                        None => h.server.to_string(),
                    },
                    String::new(),
                ),
                GroupBy::Client => (h.client.ip.to_string(), String::new()),
                GroupBy::Fingerprint => (
                    h.ja4.clone().unwrap_or_else(|| "(no ClientHello)".into()),
                    h.ja3
                        .as_ref()
                        .map(|j| format!("JA3 {j}"))
                        .unwrap_or_default(),
                ),
                GroupBy::Vendor => {
                    let vendor = identity
                        .and_then(|i| i.vendor.clone())
                        .unwrap_or_else(|| "(unknown vendor)".into());
                    match identity
                        .and_then(|i| i.dhcp.as_ref())
                        .and_then(|d| d.vendor_class.as_deref())
                    {
                        Some(class) => (
                            format!("{vendor}, DHCP vendor class {class}"),
                            String::new(),
                        ),
                        None => (vendor, String::new()),
                    }
                }
            };
            let gi = *index.entry(key.clone()).or_insert_with(|| {
                groups.push(Group {
                    key,
                    detail,
                    clients: Vec::new(),
                    handshakes: Vec::new(),
                    by_status: BTreeMap::new(),
                    faulty_chain: 0,
                    aborted: 0,
                    went_on: 0,
                });
                groups.len() - 1
            });
            let g = &mut groups[gi];
            if !g.clients.contains(&h.client.ip) {
                g.clients.push(h.client.ip);
            }
            g.handshakes.push(h.id);
            *g.by_status
                .entry(h.status.as_str().to_string())
                .or_default() += 1;
            if self.handshakes.has_error(h.id) {
                g.faulty_chain += 1;
            }
            let reaction = h.client_reaction.kind;
            if reaction.aborted() {
                g.aborted += 1;
            } else if reaction == crate::judge::ReactionKind::Completed {
                g.went_on += 1;
            }
        }
        // The groups with the most faulty chains first.
        groups.sort_by(|a, b| {
            (b.faulty_chain, b.handshakes.len(), &a.key).cmp(&(
                a.faulty_chain,
                a.handshakes.len(),
                &b.key,
            ))
        });
        self.groups = Some(Grouping { by, groups });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines keep their clients' addresses in 4 bytes, IPv6 ones as an index: sorted, they
    /// are in `IpAddr`'s order (IPv4 first), and each client's JA4 is found by its address.
    #[test]
    fn client_lines_sort_in_address_order_with_ipv6_by_index() {
        let mut seen = ClientsSeen::default();
        let ips = [
            "2001:db8::9",
            "10.0.0.2",
            "2001:db8::1",
            "9.9.9.9",
            "10.0.0.2",
            "::1",
        ];
        for (i, ip) in ips.iter().enumerate() {
            let (addr, v6) = seen.addr_of(ip.parse().unwrap());
            let ja4 = Some(format!("ja4-{i}"));
            let fingerprints = seen.pair(&None, &ja4);
            seen.seen.push(ClientSeen {
                addr,
                v6,
                handshake: i as u32,
                server: 0,
                fingerprints,
                status: Status::Complete,
                error: false,
            });
        }
        seen.sort();
        let order: Vec<(String, u32)> = seen
            .seen
            .iter()
            .map(|c| (seen.ip(c).to_string(), c.handshake))
            .collect();
        let want = [
            ("2001:db8::9", 0),
            ("2001:db8::1", 2),
            ("::1", 5),
            ("10.0.0.2", 4),
            ("10.0.0.2", 1),
            ("9.9.9.9", 3),
        ];
        let want: Vec<(String, u32)> = want.iter().map(|(a, h)| (a.to_string(), *h)).collect();
        assert_eq!(order, want, "last client first, its last handshake first");
        assert_eq!(seen.first_ja4("10.0.0.2".parse().unwrap()), Some("ja4-1"));
        assert_eq!(
            seen.first_ja4("2001:db8::1".parse().unwrap()),
            Some("ja4-2")
        );
        assert_eq!(seen.first_ja4("2001:db8::2".parse().unwrap()), None);
    }
}
