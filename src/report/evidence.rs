//! Evidence for a group of handshakes: the streams per capture and the display filter that
//! selects them in Wireshark.

use std::collections::BTreeMap;

use crate::model::Endpoint;
use crate::pki::Evidence;
use crate::pki::Finding;

/// The streams of some handshakes with one server, per capture (Wireshark numbers streams and
/// frames per file), for display filters.
#[derive(Default)]
pub(super) struct Streams {
    per_capture: BTreeMap<usize, CaptureStreams>,
}

/// The streams of some handshakes in one capture.
#[derive(Default)]
struct CaptureStreams {
    count: usize,
    /// Up to [`MAX_KEPT_STREAMS`] streams per transport.
    by_transport: BTreeMap<String, Vec<u64>>,
    transports: std::collections::BTreeSet<String>,
    /// The first Certificate frame of these handshakes.
    min_certificate_frame: Option<u64>,
    /// EAPOL conversations have no Wireshark stream index: their handshakes' own filters.
    eapol_filters: std::collections::BTreeSet<String>,
}

impl Streams {
    pub(super) fn add(
        &mut self,
        capture: usize,
        transport: &str,
        stream: u64,
        filter: &str,
        certificate_frame: Option<u64>,
    ) {
        let c = self.per_capture.entry(capture).or_default();
        c.count += 1;
        if !c.transports.contains(transport) {
            c.transports.insert(transport.to_string());
        }
        if transport == "eapol" {
            if c.count <= MAX_KEPT_STREAMS {
                c.eapol_filters.insert(filter.to_string());
            }
        } else if c.count <= MAX_KEPT_STREAMS {
            c.by_transport
                .entry(transport.to_string())
                .or_default()
                .push(stream);
        }
        c.min_certificate_frame = match (c.min_certificate_frame, certificate_frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Where these handshakes are seen, one [`Evidence`] per capture, in capture order.
    /// `shared`: another server name (SNI) is served on the same address and port, so a filter
    /// on the address alone would select its handshakes too.
    pub(super) fn evidence(&self, server: Endpoint, shared: bool) -> Vec<Evidence> {
        self.per_capture
            .iter()
            .map(|(&capture, c)| Evidence {
                capture,
                frame: c.min_certificate_frame,
                filter: c.filter(server, shared),
            })
            .collect()
    }
}

impl CaptureStreams {
    /// `tcp.stream == 3`, or `tcp.stream in {0,1,5}` (Wireshark 4 separates set elements with
    /// commas), with `||` between transports when both occur. For more than
    /// [`MAX_FILTER_STREAMS`] handshakes (unless another name shares the address), every
    /// Certificate message from the server: `tls.handshake.type == 11` over TCP, and over UDP
    /// the DTLS fragment that completes one (`dtls.handshake.certificates`).
    fn filter(&self, server: Endpoint, shared: bool) -> String {
        if self.count > MAX_KEPT_STREAMS || (self.count > MAX_FILTER_STREAMS && !shared) {
            if let Some(mac) = server.mac() {
                // An EAPOL authenticator: its frames that complete a Certificate message.
                return format!(
                    "eapol && eth.src == {} && tls.handshake.type == 11",
                    crate::model::mac_string(&mac)
                );
            }
            let ip = if server.ip.is_ipv4() { "ip" } else { "ipv6" };
            let parts: Vec<String> = self
                .transports
                .iter()
                .map(|t| match t.as_str() {
                    "udp" => format!(
                        "udp.srcport == {} && dtls.handshake.type == 11 && dtls.handshake.certificates",
                        server.port
                    ),
                    t => format!("{t}.srcport == {} && tls.handshake.type == 11", server.port),
                })
                .collect();
            return match parts.as_slice() {
                [one] => format!("{ip}.src == {} && {one}", server.ip),
                _ => format!("{ip}.src == {} && (({}))", server.ip, parts.join(") || (")),
            };
        }
        let parts: Vec<String> = self
            .by_transport
            .iter()
            .map(|(t, streams)| {
                let mut streams = streams.clone();
                streams.sort_unstable();
                streams.dedup();
                match streams.as_slice() {
                    [one] => format!("{t}.stream == {one}"),
                    _ => format!(
                        "{t}.stream in {{{}}}",
                        streams
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }
            })
            .collect();
        let parts = parts.into_iter().chain(match self.eapol_filters.len() {
            0 => None,
            1 => self.eapol_filters.first().cloned(),
            _ => Some(
                self.eapol_filters
                    .iter()
                    .map(|f| format!("({f})"))
                    .collect::<Vec<_>>()
                    .join(" || "),
            ),
        });
        parts.collect::<Vec<_>>().join(" || ")
    }
}

/// Sets a variant's or server's finding's evidence: the first capture's frame and filter, and
/// the other captures' in `more_evidence`.
pub(super) fn set_evidence(
    f: &mut Finding,
    mut evidence: Vec<Evidence>,
    frame: Option<(usize, u64)>,
) {
    // The capture of `frame` first (a server's finding names the frame where it shows).
    if let Some((capture, _)) = frame
        && let Some(i) = evidence.iter().position(|e| e.capture == capture)
    {
        let e = evidence.remove(i);
        evidence.insert(0, e);
    }
    let mut it = evidence.into_iter();
    if let Some(first) = it.next() {
        f.capture = Some(first.capture);
        f.frame = match frame {
            Some((_, fr)) => Some(fr),
            None => first.frame,
        };
        f.filter = Some(first.filter);
    }
    f.more_evidence = it.collect();
}

/// Most streams a filter lists; beyond it, the filter names the server's certificate messages.
const MAX_FILTER_STREAMS: usize = 40;

/// Most streams kept per capture for a filter: a server that shares its address with another
/// name lists up to this many (a filter on the address would select the other's too).
const MAX_KEPT_STREAMS: usize = 4096;
