//! Which handshakes a report is about: `--client CIDR`, `--server CIDR[:PORT]`, `--sni GLOB`.
//! Each is repeatable; a handshake is kept when it matches one value of every kind given.
//! Left-out handshakes still lend their certificates to the chain checks (a missing
//! intermediate sent elsewhere is still found).

use std::net::{IpAddr, SocketAddr};

use crate::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;

/// A server address range, with a port or any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The addresses.
    pub net: IpNet,
    /// The port, if one was given.
    pub port: Option<u16>,
}

/// Which handshakes a report keeps (`--client`, `--server`, `--sni`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    clients: Vec<IpNet>,
    servers: Vec<ServerSpec>,
    sni: Option<GlobSet>,
    /// The options it was made from (`--client 10.0.0.0/8`), as a partial analysis records
    /// them.
    given: Vec<String>,
}

/// `10.0.0.0/24`, `10.0.0.5` (a host), `2001:db8::/32`.
pub fn parse_net(s: &str) -> Result<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    let ip: IpAddr = s
        .parse()
        .map_err(|e| Error::Filter(format!("{s:?} is not an address or CIDR range: {e}")))?;
    Ok(IpNet::from(ip))
}

/// `10.0.0.0/24`, `10.0.0.5:443`, `[2001:db8::/32]:5061`, `2001:db8::1`.
pub fn parse_server(s: &str) -> Result<ServerSpec> {
    let port = |p: &str| {
        if p.is_empty() {
            return Err(Error::Filter("no port after ':'".into()));
        }
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Filter(format!("port {p:?} is not a number")));
        }
        match p.parse::<u32>() {
            Ok(n @ 1..=65535) => Ok(n as u16),
            _ => Err(Error::Filter(format!(
                "port {p} is out of range (1 to 65535)"
            ))),
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((net, after)) = rest.split_once(']') else {
            return Err(Error::Filter(format!("{s:?}: missing ']'")));
        };
        let port = match after {
            "" => None,
            _ => Some(port(after.strip_prefix(':').unwrap_or(after))?),
        };
        return Ok(ServerSpec {
            net: parse_net(net)?,
            port,
        });
    }
    match s.split_once(':') {
        Some((net, p)) if !p.contains(':') => Ok(ServerSpec {
            net: parse_net(net)?,
            port: Some(port(p)?),
        }),
        _ => Ok(ServerSpec {
            net: parse_net(s)?,
            port: None,
        }),
    }
}

impl Filter {
    /// From the command line's values.
    pub fn new(clients: &[String], servers: &[String], sni: &[String]) -> Result<Self> {
        let given = (clients.iter().map(|c| format!("--client {c}")))
            .chain(servers.iter().map(|s| format!("--server {s}")))
            .chain(sni.iter().map(|g| format!("--sni {g}")))
            .collect();
        let sni = if sni.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for g in sni {
                set.add(
                    GlobBuilder::new(g)
                        .case_insensitive(true)
                        .literal_separator(false)
                        .build()
                        .map_err(|e| Error::Filter(format!("--sni {g:?}: {e}")))?,
                );
            }
            Some(
                set.build()
                    .map_err(|e| Error::Filter(format!("--sni: {e}")))?,
            )
        };
        Ok(Filter {
            clients: clients
                .iter()
                .map(|c| parse_net(c).map_err(|e| Error::Filter(format!("--client {c:?}: {e}"))))
                .collect::<Result<_>>()?,
            servers: servers
                .iter()
                .map(|s| parse_server(s).map_err(|e| Error::Filter(format!("--server {s:?}: {e}"))))
                .collect::<Result<_>>()?,
            sni,
            given,
        })
    }

    /// The options it was made from, one per element (`--client 10.0.0.0/8`); empty when it
    /// keeps every handshake.
    pub fn given(&self) -> &[String] {
        &self.given
    }

    /// Whether a handshake between `client` and `server` (asking for `sni`) is kept.
    pub fn matches(&self, client: SocketAddr, server: SocketAddr, sni: Option<&str>) -> bool {
        (self.clients.is_empty() || self.clients.iter().any(|n| n.contains(&client.ip())))
            && (self.servers.is_empty()
                || self.servers.iter().any(|s| {
                    s.net.contains(&server.ip()) && s.port.is_none_or(|p| p == server.port())
                }))
            && self
                .sni
                .as_ref()
                .is_none_or(|set| sni.is_some_and(|n| set.is_match(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn server_specs() {
        let s = parse_server("10.0.0.0/24:443").unwrap();
        assert_eq!(
            (s.net.to_string(), s.port),
            ("10.0.0.0/24".into(), Some(443))
        );
        let s = parse_server("10.0.0.5").unwrap();
        assert_eq!((s.net.to_string(), s.port), ("10.0.0.5/32".into(), None));
        let s = parse_server("[2001:db8::/32]:5061").unwrap();
        assert_eq!(
            (s.net.to_string(), s.port),
            ("2001:db8::/32".into(), Some(5061))
        );
        let s = parse_server("2001:db8::1").unwrap();
        assert_eq!(
            (s.net.to_string(), s.port),
            ("2001:db8::1/128".into(), None)
        );
        assert!(parse_server("10.0.0.5:https").is_err());
        for (bad, message) in [
            ("10.0.0.1:70000", "port 70000 is out of range (1 to 65535)"),
            ("10.0.0.1:0", "port 0 is out of range (1 to 65535)"),
            (
                "10.0.0.1:99999999999",
                "port 99999999999 is out of range (1 to 65535)",
            ),
            (
                "[2001:db8::1]:65536",
                "port 65536 is out of range (1 to 65535)",
            ),
            ("10.0.0.1:", "no port after ':'"),
            ("10.0.0.1:-1", "port \"-1\" is not a number"),
        ] {
            assert_eq!(parse_server(bad).unwrap_err().to_string(), message);
        }
        assert_eq!(parse_server("10.0.0.1:65535").unwrap().port, Some(65535));
        assert!(parse_server("lyncpool").is_err());
    }

    #[test]
    fn kinds_and_values_combine() {
        let f = Filter::new(
            &["127.0.1.0/28".into(), "10.1.1.1".into()],
            &["127.0.0.10:443".into()],
            &["*.CONTOSO.test".into()],
        )
        .unwrap();
        let (c, s) = (sa("127.0.1.11:5000"), sa("127.0.0.10:443"));
        assert!(f.matches(c, s, Some("lyncpool.contoso.test")));
        assert!(f.matches(sa("10.1.1.1:1"), s, Some("a.contoso.test")));
        assert!(!f.matches(sa("127.0.1.21:5000"), s, Some("lyncpool.contoso.test")));
        assert!(!f.matches(c, sa("127.0.0.10:5061"), Some("lyncpool.contoso.test")));
        assert!(!f.matches(c, s, Some("example.com")));
        assert!(!f.matches(c, s, None));
        assert!(Filter::default().matches(c, s, None));
    }
}
