//! Which listeners a run looks at, and where the probe goes.
//!
//! `--port` (with `--address`) names the listener; the process selectors name the
//! listeners of those processes. `--url` alone names the listener too, the way `check_http`
//! users start: its port, and its host when that is an address of this host (a name is
//! resolved, and only its local addresses count). `--port` overrides the URL: a probe
//! through a proxy in front of the listener.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs, UdpSocket};

use procguard_common::CheckError;

use crate::args::{url_endpoint, Args};
use crate::listener::Listener;
use crate::probe;

/// The listeners asked for: a port (none: every port of the selected processes) and the
/// addresses they must serve (none: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The port.
    pub port: Option<u16>,
    /// The addresses a listener must serve (exactly, or as a wildcard of that family).
    pub addresses: Vec<IpAddr>,
}

impl Target {
    /// What the options name. Resolves the URL's host when it is a name.
    ///
    /// # Errors
    ///
    /// A usage error: a URL that names no listener of this host.
    pub fn from_args(args: &Args) -> Result<Target, CheckError> {
        // With --unix the URL only says what to ask for over the socket.
        let url = args.url.as_deref().filter(|_| {
            args.port.is_none() && args.select.is_empty() && args.unix.is_none() && !args.unix_only
        });
        let Some(url) = url else {
            return Ok(Target {
                port: args.port,
                addresses: args.address.into_iter().collect(),
            });
        };
        let (host, port) = url_endpoint(url).map_err(CheckError::Usage)?;
        Ok(Target {
            port: Some(port),
            addresses: local_addresses(&host)?,
        })
    }

    /// Whether `l` is one of them (its port is filtered already).
    #[must_use]
    pub fn wants(&self, l: &Listener) -> bool {
        self.addresses.is_empty() || self.addresses.iter().any(|a| l.serves(*a))
    }

    /// `port 8080`, `127.0.0.1:8080`, `[::1]:8080`, `127.0.0.1:8080 or [::1]:8080`.
    #[must_use]
    pub fn describe(&self) -> String {
        let port = self.port.unwrap_or(0);
        if self.addresses.is_empty() {
            return format!("port {port}");
        }
        let each: Vec<String> = self
            .addresses
            .iter()
            .map(|a| match a {
                IpAddr::V6(a) => format!("[{a}]:{port}"),
                IpAddr::V4(a) => format!("{a}:{port}"),
            })
            .collect();
        each.join(" or ")
    }
}

/// The addresses of `host` that belong to this host (can be bound here); none is a usage
/// error, since no listener here can serve them.
fn local_addresses(host: &str) -> Result<Vec<IpAddr>, CheckError> {
    let all: Vec<IpAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip]
    } else {
        let mut ips: Vec<IpAddr> = (host, 0)
            .to_socket_addrs()
            .map_err(|e| {
                CheckError::Usage(format!(
                    "--url host {host}: {e}; give --port for the listener"
                ))
            })?
            .map(|s| s.ip())
            .collect();
        ips.sort();
        ips.dedup();
        ips
    };
    let local: Vec<IpAddr> = all.iter().copied().filter(|ip| is_local(*ip)).collect();
    if local.is_empty() {
        let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
        return Err(CheckError::Usage(format!(
            "--url host {host} ({}) is not an address of this host; give --port for the listener behind it",
            shown.join(", ")
        )));
    }
    Ok(local)
}

/// Whether `ip` is an address of this host: the kernel lets a socket bind to it.
fn is_local(ip: IpAddr) -> bool {
    ip.is_unspecified() || UdpSocket::bind((ip, 0)).is_ok()
}

/// The state key: what the check looks at, not the PIDs.
pub fn state_key(args: &Args, target: &Target) -> String {
    let mut parts = Vec::new();
    if let Some(p) = target.port {
        parts.push(format!("port {p}"));
    }
    if !target.addresses.is_empty() {
        let each: Vec<String> = target.addresses.iter().map(ToString::to_string).collect();
        parts.push(format!("address {}", each.join(",")));
    }
    if !args.select.is_empty() {
        parts.push(args.select.describe());
    }
    parts.join(" ")
}

/// Where to probe, if anywhere, and the inode of the listener it goes to: `--url` (the
/// listener serving the URL's address and port, else with `--port` the first listener on
/// it), or with `--probe` the (first) listener; over its socket for a Unix listener (none
/// when `--unix PATH` has no listener: that is said already).
#[must_use]
pub fn probe(
    args: &Args,
    target: &Target,
    listeners: &[Listener],
) -> Option<(probe::Target, Option<u64>)> {
    let to = |url: String, unix: Option<&String>| probe::Target {
        url,
        host: args.tls.host.clone(),
        unix: unix.map(std::path::PathBuf::from),
    };
    if args.unix.is_some() || args.unix_only {
        let l = listeners.iter().find(|l| l.unix.is_some())?;
        let url = match (&args.url, args.probe) {
            (Some(url), _) => url.clone(),
            (None, true) => "http://localhost/".into(),
            (None, false) => return None,
        };
        return Some((to(url, l.unix.as_ref()), Some(l.inode)));
    }
    let (url, probed) = tcp_probe(args, target, listeners)?;
    Some((to(url, None), probed))
}

/// The TCP URL to probe and its listener.
fn tcp_probe(
    args: &Args,
    target: &Target,
    listeners: &[Listener],
) -> Option<(String, Option<u64>)> {
    if let Some(url) = &args.url {
        let served = url_endpoint(url).ok().and_then(|(host, port)| {
            let ip: Option<IpAddr> = host.parse().ok();
            listeners
                .iter()
                .find(|l| l.port == port && ip.is_none_or(|ip| l.serves(ip)))
        });
        let probed = served.or_else(|| listeners.first().filter(|_| args.port.is_some()));
        return Some((url.clone(), probed.map(|l| l.inode)));
    }
    if !args.probe {
        return None;
    }
    let first = listeners.first();
    let (host, port) = match (target.addresses.first(), first) {
        (Some(IpAddr::V6(a)), _) => (format!("[{a}]"), target.port?),
        (Some(a), _) => (a.to_string(), target.port?),
        (None, Some(l)) => (l.probe_host(), l.port),
        (None, None) => (Ipv4Addr::LOCALHOST.to_string(), target.port?),
    };
    Some((format!("http://{host}:{port}/"), first.map(|l| l.inode)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn target(extra: &[&str]) -> Result<Target, CheckError> {
        let args = Args::try_parse_from(
            std::iter::once("check_http_backlog").chain(extra.iter().copied()),
        )
        .unwrap();
        Target::from_args(&args)
    }

    #[test]
    fn the_url_names_the_listener_unless_port_does() {
        let t = target(&["--url", "http://127.0.0.1:8080/health"]).unwrap();
        assert_eq!(t.port, Some(8080));
        assert_eq!(t.addresses, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(t.describe(), "127.0.0.1:8080");
        let t = target(&["--url", "https://[::1]/"]).unwrap();
        assert_eq!(t.describe(), "[::1]:443");
        // --port overrides: the URL may be a proxy in front of it.
        let t = target(&["--port", "81", "--url", "http://127.0.0.1:8080/"]).unwrap();
        assert_eq!((t.port, t.addresses.len()), (Some(81), 0));
        // With selectors the listeners are theirs; the URL is only probed.
        let t = target(&["--pid", "1", "--url", "http://127.0.0.1:8080/"]).unwrap();
        assert_eq!(t, Target::default());
    }

    #[test]
    fn a_name_counts_by_its_local_addresses() {
        // localhost resolves to 127.0.0.1 (and ::1 where IPv6 is configured): both local.
        let t = target(&["--url", "http://localhost:8080/"]).unwrap();
        assert!(t.addresses.contains(&"127.0.0.1".parse().unwrap()), "{t:?}");
        assert!(t.addresses.iter().all(IpAddr::is_loopback), "{t:?}");
        // TEST-NET-1 is nobody's address.
        let e = target(&["--url", "http://192.0.2.7/"]).unwrap_err();
        assert!(
            matches!(&e, CheckError::Usage(m) if m.contains("192.0.2.7 (192.0.2.7) is not an address of this host")),
            "{e}"
        );
    }
}
