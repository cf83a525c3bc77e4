//! Reading sockets and TCP counters in one network namespace: the plugin's own, or another
//! one ([`NetNs`]), through `sock_diag` when it can, else through `/proc/.../net/tcp{,6}`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use procguard_common::proc::ProcRoot;
use procguard_common::CheckError;

use crate::evaluate::HostCounters;
use crate::listener::Listener;
use crate::netns::NetNs;
use crate::procnet::{self, TcpExt};
use crate::sock_diag::{self, DiagError, Families};

/// Where the listeners came from (by default `sock_diag`, the one tried first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// `NETLINK_SOCK_DIAG`: queue, backlog and drops.
    #[default]
    SockDiag,
    /// /proc/net/tcp{,6}: the queue only.
    ProcNetTcp,
}

/// One network namespace's view of the sockets.
#[derive(Debug, Clone, Copy)]
pub struct Net<'a> {
    /// The /proc tree.
    pub root: &'a ProcRoot,
    /// `None`: the plugin's own namespace.
    pub ns: Option<&'a NetNs>,
    /// Read /proc as where `sock_diag` is unavailable (a test seam).
    pub no_sock_diag: bool,
}

/// Why `sock_diag` was not used.
enum NoDiag {
    /// The namespace could not be joined (no `CAP_SYS_ADMIN`).
    Outside(std::io::Error),
    /// `sock_diag` itself said no.
    Diag(DiagError),
}

impl std::fmt::Display for NoDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoDiag::Outside(e) => e.fmt(f),
            NoDiag::Diag(e) => e.fmt(f),
        }
    }
}

impl Net<'_> {
    /// `FILE` under `net/`: `/proc/net/FILE`, or that of the namespace.
    fn read(&self, file: &str) -> Result<String, CheckError> {
        match self.ns {
            None => self.root.read(&format!("net/{file}")),
            Some(ns) => ns.read_net(self.root, file),
        }
    }

    /// Where `read` reads `FILE`, for messages.
    fn path(&self, file: &str) -> String {
        match self.ns.and_then(|n| n.pid) {
            Some(pid) => self
                .root
                .process(pid)
                .path(&format!("net/{file}"))
                .display()
                .to_string(),
            None => self
                .root
                .path()
                .join("net")
                .join(file)
                .display()
                .to_string(),
        }
    }

    /// Runs a `sock_diag` query in the namespace.
    fn diag<T: Send>(&self, f: impl FnOnce() -> Result<T, DiagError> + Send) -> Result<T, NoDiag> {
        match self.ns {
            None => f().map_err(NoDiag::Diag),
            Some(ns) => ns.run_in(f).map_err(NoDiag::Outside)?.map_err(NoDiag::Diag),
        }
    }

    /// Runs `f` (a probe) where the namespace's addresses are: on a thread that joined it.
    ///
    /// # Errors
    ///
    /// The namespace cannot be joined: the words for an UNKNOWN finding.
    pub fn connect_from<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        match self.ns {
            None => Ok(f()),
            Some(ns) => ns.run_in(f).map_err(|e| {
                format!(
                    "probe not run: connecting inside {} needs CAP_SYS_ADMIN ({e})",
                    ns.describe()
                )
            }),
        }
    }

    /// LISTEN sockets (on `port`, if given): `sock_diag`, else /proc/net/tcp{,6} with
    /// `backlog` as the backlog. The third value says why `sock_diag` was not used.
    ///
    /// # Errors
    ///
    /// Neither `sock_diag` nor the /proc files can be read.
    pub fn listeners(
        &self,
        port: Option<u16>,
        backlog: Option<u32>,
    ) -> Result<(Vec<Listener>, Source, Option<String>), CheckError> {
        let why_not = if self.no_sock_diag {
            "sock_diag not used (turned off by a test)".to_string()
        } else {
            match self.diag(move || sock_diag::listeners(port)) {
                Ok(sockets) => {
                    let listeners = sockets.iter().map(Listener::from_diag).collect();
                    return Ok((listeners, Source::SockDiag, None));
                }
                Err(NoDiag::Outside(e)) => format!(
                    "read {} (sock_diag inside {} needs CAP_SYS_ADMIN: {e})",
                    self.path("tcp{,6}"),
                    self.ns.map(NetNs::describe).unwrap_or_default()
                ),
                Err(NoDiag::Diag(DiagError::Os(e))) => {
                    format!("sock_diag unavailable ({e}), read {}", self.path("tcp{,6}"))
                }
                Err(NoDiag::Diag(e)) => return Err(CheckError::Other(e.to_string())),
            }
        };
        let listeners = self
            .proc_net_tcp(sock_diag::TCP_LISTEN, Families { v4: true, v6: true })?
            .into_iter()
            .filter(|r| port.is_none_or(|p| r.port == p))
            .map(|r| Listener {
                addr: r.addr,
                port: r.port,
                queue: r.rx_queue,
                backlog,
                drops: None,
                uid: r.uid,
                inode: r.inode,
                unix: None,
            })
            .collect();
        Ok((listeners, Source::ProcNetTcp, Some(why_not)))
    }

    /// The rows in `state` of tcp and tcp6, as far as `families` asks for them (a kernel
    /// without IPv6 has no tcp6).
    fn proc_net_tcp(
        &self,
        state: u8,
        families: Families,
    ) -> Result<Vec<procnet::TcpRow>, CheckError> {
        let mut rows = Vec::new();
        let files = [(families.v4, "tcp"), (families.v6, "tcp6")];
        for file in files.into_iter().filter(|(on, _)| *on).map(|(_, f)| f) {
            let text = match self.read(file) {
                Ok(t) => t,
                Err(e) if file == "tcp6" && e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            rows.extend(
                procnet::parse_tcp(&text, state)
                    .map_err(|m| CheckError::parse(self.path(file), m))?,
            );
        }
        Ok(rows)
    }

    /// `TcpExt` `ListenOverflows` and `ListenDrops`.
    ///
    /// # Errors
    ///
    /// `netstat` cannot be read or parsed.
    pub fn counters(&self) -> Result<Option<HostCounters>, CheckError> {
        let text = self.read("netstat")?;
        let t = TcpExt::parse(&text).map_err(|m| CheckError::parse(self.path("netstat"), m))?;
        Ok(t.get("ListenOverflows").zip(t.get("ListenDrops")).map(
            |(listen_overflows, listen_drops)| HostCounters {
                listen_overflows,
                listen_drops,
            },
        ))
    }

    /// The drop counter of each listener on `port` now (by inode), from `sock_diag`.
    #[must_use]
    pub fn drops(&self, port: u16) -> BTreeMap<u64, u64> {
        self.diag(move || sock_diag::listeners(Some(port)))
            .map(|sockets| {
                sockets
                    .into_iter()
                    .filter_map(|s| Some((u64::from(s.inode), u64::from(s.drops?))))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The established connections of each listened port (their local addresses).
    #[must_use]
    pub fn established(
        &self,
        source: Source,
        listeners: &[Listener],
    ) -> BTreeMap<u16, Result<Vec<IpAddr>, String>> {
        // Only the families listening on a port can hold its connections: an IPv4
        // listener's are all AF_INET, so the (costly) AF_INET6 walk is skipped.
        let mut ports: BTreeMap<u16, Families> = BTreeMap::new();
        for l in listeners.iter().filter(|l| l.unix.is_none()) {
            let f = ports.entry(l.port).or_default();
            f.v4 |= l.addr.is_ipv4();
            f.v6 |= l.addr.is_ipv6();
        }
        if source == Source::SockDiag {
            return ports
                .into_iter()
                .map(|(port, families)| {
                    let found = self
                        .diag(move || sock_diag::established_on(port, families))
                        .map_err(|e| e.to_string());
                    (port, found)
                })
                .collect();
        }
        // /proc/net/tcp{,6} cannot be filtered: read the ESTABLISHED rows once, of the
        // families anything listens on, and share them out by port.
        let families = Families {
            v4: ports.values().any(|f| f.v4),
            v6: ports.values().any(|f| f.v6),
        };
        let rows = match self.proc_net_tcp(sock_diag::TCP_ESTABLISHED, families) {
            Ok(rows) => rows,
            Err(e) => {
                let e = e.to_string();
                return ports.into_keys().map(|p| (p, Err(e.clone()))).collect();
            }
        };
        let mut out: BTreeMap<u16, Vec<IpAddr>> = ports.keys().map(|&p| (p, Vec::new())).collect();
        for r in rows {
            let Some(f) = ports.get(&r.port) else {
                continue;
            };
            if (r.addr.is_ipv4() && f.v4) || (r.addr.is_ipv6() && f.v6) {
                out.entry(r.port).or_default().push(r.addr);
            }
        }
        out.into_iter().map(|(p, addrs)| (p, Ok(addrs))).collect()
    }
}

/// A syscall's returned fd as an fd number.
fn fd_number(r: libc::c_long) -> std::io::Result<i32> {
    i32::try_from(r).map_err(std::io::Error::other)
}

/// The accept queue and backlog of a listener, asked of the socket itself: a duplicate of
/// `pid`'s fd `fd` (`pidfd_getfd`, Linux 5.6, with ptrace access to `pid`; no
/// `CAP_SYS_ADMIN`) and `TCP_INFO`, which for a listener reports the accept queue in
/// `tcpi_unacked` and the backlog in `tcpi_sacked`. What /proc/PID/net/tcp lacks, from any
/// network namespace.
///
/// # Errors
///
/// No pidfd (Linux < 5.6, no ptrace access), no such fd, or not a listening TCP socket.
pub fn queue_of_held(pid: i32, fd: i32) -> std::io::Result<(u32, u32)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let check = |r: libc::c_long| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: plain syscalls; each returned fd is owned (closed on drop) right away.
    let pidfd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd_number(pidfd)?) };
    let sock = check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            fd,
            0,
        )
    })?;
    let sock = unsafe { OwnedFd::from_raw_fd(fd_number(sock)?) };
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>())
        .map_err(std::io::Error::other)?;
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &raw mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if i32::from(info.tcpi_state) != i32::from(sock_diag::TCP_LISTEN) {
        return Err(std::io::Error::other("not a listening socket"));
    }
    Ok((info.tcpi_unacked, info.tcpi_sacked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn established_rows_are_read_once_for_the_families_listening() {
        let dir = std::env::temp_dir().join(format!("backlog-sockets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net")).unwrap();
        let head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let row = |local: &str, state: &str| {
            format!("   0: {local} 0100007F:C350 {state} 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 20 4 30 10 -1\n")
        };
        // 127.0.0.1: two connections on 80, one on 443, one on a port nobody listens on,
        // and the LISTEN row of 80.
        let tcp = [
            row("0100007F:0050", "01"),
            row("0100007F:0050", "01"),
            row("0100007F:01BB", "01"),
            row("0100007F:270F", "01"),
            row("00000000:0050", "0A"),
        ]
        .concat();
        std::fs::write(dir.join("net/tcp"), format!("{head}{tcp}")).unwrap();
        // Read only when something listens on IPv6.
        std::fs::write(dir.join("net/tcp6"), format!("{head}   0: garbage\n")).unwrap();
        let root = ProcRoot::new(&dir);
        let net = Net {
            root: &root,
            ns: None,
            no_sock_diag: true,
        };
        let listener = |addr: &str, port: u16| Listener {
            addr: addr.parse().unwrap(),
            port,
            queue: 0,
            backlog: None,
            drops: None,
            uid: 0,
            inode: u64::from(port),
            unix: None,
        };
        let v4 = [listener("0.0.0.0", 80), listener("127.0.0.1", 443)];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            net.established(Source::ProcNetTcp, &v4),
            BTreeMap::from([(80, Ok(vec![local, local])), (443, Ok(vec![local]))])
        );
        // An IPv6 listener: tcp6 is read, and its error is every port's.
        let both = [listener("0.0.0.0", 80), listener("::", 8443)];
        let found = net.established(Source::ProcNetTcp, &both);
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), [80, 8443]);
        assert!(
            found
                .values()
                .all(|r| r.as_ref().is_err_and(|e| e.contains("tcp6"))),
            "{found:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_listener_tells_its_queue_and_backlog_through_a_duplicate() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: listen() again on our own socket only changes the backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 4) }, 0);
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let me = crate::netns::own_pid();
        assert_eq!(queue_of_held(me, l.as_raw_fd()).unwrap(), (2, 4));
        // A socket that is not listening is refused.
        assert!(queue_of_held(me, clients[0].as_raw_fd()).is_err());
    }
}
