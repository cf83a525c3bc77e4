//! A listener as measured (TCP, or a Unix stream socket), and the names it goes by:
//! endpoint, state key, label stem.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One listener as measured, from `sock_diag` or /proc/net/tcp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Local address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Accept queue now.
    pub queue: u32,
    /// Backlog (`sk_max_ack_backlog`), if known.
    pub backlog: Option<u32>,
    /// `sk_drops`, if known.
    pub drops: Option<u64>,
    /// Owner uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
    /// A Unix stream listener: its path (`@name` if abstract); `addr` and `port` are then
    /// `0.0.0.0` and 0 and mean nothing.
    pub unix: Option<String>,
}

impl Listener {
    /// A LISTEN socket from a `sock_diag` dump.
    pub fn from_diag(s: &crate::sock_diag::DiagSocket) -> Listener {
        Listener {
            addr: s.addr,
            port: s.port,
            queue: s.rqueue,
            backlog: Some(s.wqueue),
            drops: s.drops.map(u64::from),
            uid: s.uid,
            inode: u64::from(s.inode),
            unix: None,
        }
    }

    /// A listening Unix socket from a `unix_diag` dump, called `path`.
    #[must_use]
    pub fn from_unix(s: &crate::unix_diag::UnixListener, path: String) -> Listener {
        Listener {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            queue: s.queue,
            backlog: Some(s.backlog),
            drops: None,
            uid: s.uid.unwrap_or(0),
            inode: u64::from(s.inode),
            unix: Some(path),
        }
    }

    /// `127.0.0.1:8080`, `[::1]:8080`, `*:8080`, `[::]:8080`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        if let Some(path) = &self.unix {
            return path.clone();
        }
        match self.addr {
            IpAddr::V4(a) if a.is_unspecified() => format!("*:{}", self.port),
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }

    /// Whether the queue holds backlog+1 connections: the kernel now drops new handshakes.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.backlog.is_some_and(|b| self.queue > b)
    }

    /// `accept queue 5/4 full`, `accept queue 0/128`, `accept queue 3 (backlog unknown)`.
    #[must_use]
    pub fn queue_words(&self) -> String {
        match self.backlog {
            Some(b) if self.queue > b => format!("accept queue {}/{b} full", self.queue),
            Some(b) => format!("accept queue {}/{b}", self.queue),
            None => format!("accept queue {} (backlog unknown)", self.queue),
        }
    }

    /// Whether it serves connections to `addr` (exactly, or as a wildcard of that family;
    /// a `::` listener also takes IPv4 unless it is v6only, which we cannot see here).
    pub(crate) fn serves(&self, addr: IpAddr) -> bool {
        self.addr == addr
            || match (self.addr, addr) {
                (IpAddr::V4(l), IpAddr::V4(_)) => l.is_unspecified(),
                (IpAddr::V6(l), _) => l.is_unspecified(),
                _ => false,
            }
    }

    /// Whether an established socket with local address `local` (and this port) was accepted
    /// from this listener: same family (a dual-stack `::` listener's IPv4 connections are
    /// IPv6 sockets with mapped addresses), and the same address unless it is a wildcard.
    pub(crate) fn accepted(&self, local: IpAddr) -> bool {
        match (self.addr, local) {
            (IpAddr::V4(l), IpAddr::V4(a)) => l.is_unspecified() || l == a,
            (IpAddr::V6(l), IpAddr::V6(a)) => l.is_unspecified() || l == a,
            _ => false,
        }
    }

    /// The address to probe it at: loopback for a wildcard.
    pub(crate) fn probe_host(&self) -> String {
        match self.addr {
            IpAddr::V4(a) if a.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) if a.is_unspecified() => format!("[{}]", Ipv6Addr::LOCALHOST),
            IpAddr::V6(a) => format!("[{a}]"),
        }
    }
}

/// The state keys of `listeners` (sorted): the endpoint, and `#2`, `#3`, ... for further
/// sockets on the same endpoint (`SO_REUSEPORT` groups), in inode order.
pub(crate) fn state_keys(listeners: &[Listener]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for l in listeners {
        let endpoint = l.endpoint();
        let before = listeners
            .iter()
            .take(keys.len())
            .filter(|o| o.endpoint() == endpoint)
            .count();
        keys.push(if before == 0 {
            endpoint
        } else {
            format!("{endpoint}#{}", before + 1)
        });
    }
    keys
}

/// Perfdata label stems, stable across restarts: `--label` or the port; listeners that
/// would share one get `_ipv4`/`_ipv6`, then a number.
pub(crate) fn stems(listeners: &[Listener], label: Option<&str>) -> Vec<String> {
    let ports: std::collections::BTreeSet<u16> = listeners.iter().map(|l| l.port).collect();
    let base = |l: &Listener| match (label, &l.unix) {
        // A Unix socket by its file name: `php-fpm.sock` -> `php-fpm.sock`.
        (None, Some(path)) => unix_stem(path),
        (Some(lbl), Some(path)) if listeners.len() > 1 => format!("{lbl}_{}", unix_stem(path)),
        (Some(lbl), _) if ports.len() <= 1 => lbl.to_string(),
        (Some(lbl), _) => format!("{lbl}_{}", l.port),
        (None, None) => l.port.to_string(),
    };
    let mut out: Vec<String> = Vec::new();
    for l in listeners {
        let b = base(l);
        let same_base = listeners.iter().filter(|o| base(o) == b).count();
        let mut stem = if same_base > 1 {
            format!("{b}_{}", if l.addr.is_ipv6() { "ipv6" } else { "ipv4" })
        } else {
            b
        };
        let taken = out
            .iter()
            .filter(|s| **s == stem || s.starts_with(&format!("{stem}_")))
            .count();
        if taken > 0 {
            stem = format!("{stem}_{}", taken + 1);
        }
        out.push(stem);
    }
    out
}

/// A perfdata stem from a Unix socket's path: its file name (an abstract name without its
/// `@`), only `[A-Za-z0-9_.-]` kept.
fn unix_stem(path: &str) -> String {
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_start_matches('@');
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() {
        "unix".to_string()
    } else {
        stem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(addr: &str, port: u16, queue: u32, backlog: u32) -> Listener {
        Listener {
            addr: addr.parse().unwrap(),
            port,
            queue,
            backlog: Some(backlog),
            drops: Some(0),
            uid: 1000,
            inode: 1,
            unix: None,
        }
    }

    #[test]
    fn unix_listeners_by_path_and_file_name() {
        let s = crate::unix_diag::UnixListener {
            kind: 1,
            inode: 7,
            name: Some("/run/php/php8.2-fpm.sock".into()),
            vfs: None,
            queue: 5,
            backlog: 4,
            uid: Some(33),
        };
        let l = Listener::from_unix(&s, "/run/php/php8.2-fpm.sock".into());
        assert_eq!(l.endpoint(), "/run/php/php8.2-fpm.sock");
        assert_eq!(l.queue_words(), "accept queue 5/4 full");
        assert_eq!(stems(std::slice::from_ref(&l), None), ["php8.2-fpm.sock"]);
        assert_eq!(stems(std::slice::from_ref(&l), Some("php")), ["php"]);
        let g = Listener::from_unix(&s, "@gunicorn app".into());
        assert_eq!(
            stems(&[l, g], Some("web")),
            ["web_php8.2-fpm.sock", "web_gunicorn_app"]
        );
    }

    #[test]
    fn queue_words_and_fullness() {
        let l = listener("127.0.0.1", 8080, 5, 4);
        assert!(l.is_full());
        assert_eq!(l.queue_words(), "accept queue 5/4 full");
        assert_eq!(l.endpoint(), "127.0.0.1:8080");
        let l = listener("::", 80, 4, 4);
        assert!(!l.is_full());
        assert_eq!(l.endpoint(), "[::]:80");
        assert_eq!(l.probe_host(), "[::1]");
        assert!(l.serves("127.0.0.1".parse().unwrap()));
        let l = Listener {
            backlog: None,
            ..listener("0.0.0.0", 80, 3, 0)
        };
        assert_eq!(l.queue_words(), "accept queue 3 (backlog unknown)");
        assert_eq!(l.endpoint(), "*:80");
        assert!(!l.serves("::1".parse().unwrap()));
        assert!(l.accepted("127.0.0.5".parse().unwrap()));
        assert!(!l.accepted("::ffff:127.0.0.5".parse().unwrap()));
        let dual = listener("::", 80, 0, 4);
        assert!(dual.accepted("::ffff:127.0.0.5".parse().unwrap()));
        assert!(!dual.accepted("127.0.0.5".parse().unwrap()));
        assert!(!listener("127.0.0.1", 80, 0, 4).accepted("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn stable_label_stems() {
        let v4 = listener("127.0.0.1", 8080, 0, 4);
        let v6 = listener("::1", 8080, 0, 4);
        let other = listener("0.0.0.0", 9090, 0, 4);
        assert_eq!(stems(std::slice::from_ref(&v4), None), ["8080"]);
        assert_eq!(stems(std::slice::from_ref(&v4), Some("web")), ["web"]);
        assert_eq!(
            stems(&[v4.clone(), v6.clone(), other.clone()], None),
            ["8080_ipv4", "8080_ipv6", "9090"]
        );
        assert_eq!(
            stems(&[v4.clone(), other.clone()], Some("web")),
            ["web_8080", "web_9090"]
        );
        let v4b = listener("127.0.0.2", 8080, 0, 4);
        assert_eq!(
            stems(&[v4, v4b, v6], None),
            ["8080_ipv4", "8080_ipv4_2", "8080_ipv6"]
        );
    }

    #[test]
    fn reuseport_groups_get_distinct_state_keys() {
        let a = listener("127.0.0.1", 8080, 0, 4);
        let b = Listener {
            inode: 2,
            ..a.clone()
        };
        let v6 = listener("::1", 8080, 0, 4);
        assert_eq!(
            state_keys(&[a, b, v6]),
            ["127.0.0.1:8080", "127.0.0.1:8080#2", "[::1]:8080"]
        );
    }
}
