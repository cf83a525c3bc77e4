//! Acquisition: everything the check reads from the system, gathered into a plain
//! [`Observation`]. The listeners (sock_diag, else /proc/net/tcp{,6}), the sockets of the
//! selected processes, the probe, the host's TcpExt counters, the established connections,
//! and, when the evaluation asks for them, the processes holding the listeners.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use procguard_common::proc::ProcRoot;
use procguard_common::{CheckError, Report};

use crate::args::Args;
use crate::evaluate::{HostCounters, Prior, Saved};
use crate::listener::Listener;
use crate::owner::{self, Owner};
use crate::probe::{self, Outcome, Probe};
use crate::procnet::{self, TcpExt};
use crate::sock_diag::{self, DiagError, Families};
use crate::tls::Setup;

/// Where the listeners came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// NETLINK_SOCK_DIAG: queue, backlog and drops.
    SockDiag,
    /// /proc/net/tcp{,6}: the queue only.
    ProcNetTcp,
}

/// The most holders of one listener looked at (a pre-forking server's master and workers).
const MAX_HOLDERS: usize = 256;

/// What one run saw. Plain data: the evaluation needs nothing else.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The listeners checked, sorted by port, family, address and inode.
    pub listeners: Vec<Listener>,
    /// Where they came from.
    pub source: Source,
    /// Why sock_diag was not used, if it was not.
    pub fallback: Option<String>,
    /// With selectors: the selected processes as `name[pid]` (empty: none runs).
    pub selected: Option<Vec<String>>,
    /// With selectors: for each socket inode of the selected processes, who holds it.
    pub held_by_selected: BTreeMap<u64, Vec<i32>>,
    /// What selection and reading already found (not running, unreadable fds, ...).
    pub notes: Report,
    /// The probe's URL and result.
    pub probe: Option<(String, Probe)>,
    /// The inode of the listener the probe went to, if it is among `listeners`.
    pub probed: Option<u64>,
    /// The host's (or namespace's) TcpExt ListenOverflows and ListenDrops.
    pub host: Option<HostCounters>,
    /// Drop counters read again after a probe whose SYN went unanswered (listener inode
    /// -> drops, and the host counters): the next baseline, so the probe's own dropped
    /// SYNs are never counted as new drops on the next run.
    pub after_probe: Option<(BTreeMap<u64, u64>, Option<HostCounters>)>,
    /// The boot id (a reboot resets every counter).
    pub boot_id: String,
    /// Per port: the local addresses of its established connections, or why not read.
    pub established: BTreeMap<u16, Result<Vec<IpAddr>, String>>,
    /// The processes holding each listener (by inode), once looked up.
    pub owners: Option<BTreeMap<u64, Vec<Owner>>>,
}

impl Observation {
    /// Nothing seen yet.
    pub fn new(source: Source, fallback: Option<String>) -> Observation {
        Observation {
            listeners: Vec::new(),
            source,
            fallback,
            selected: None,
            held_by_selected: BTreeMap::new(),
            notes: Report::default(),
            probe: None,
            probed: None,
            host: None,
            after_probe: None,
            boot_id: String::new(),
            established: BTreeMap::new(),
            owners: None,
        }
    }
}

/// Reads everything but the owners. Selection failures ("not running") are in `notes`,
/// with no listeners.
pub fn observe(args: &Args, root: &ProcRoot, deadline: Instant) -> Result<Observation, CheckError> {
    let (mut listeners, source, fallback) = read_listeners(args, root)?;
    if let Some(addr) = args.address {
        listeners.retain(|l| l.serves(addr));
    }
    let mut obs = Observation::new(source, fallback);
    if !args.select.is_empty() {
        select(args, root, deadline, &mut obs)?;
        if obs.selected.as_ref().is_some_and(Vec::is_empty) {
            return Ok(obs);
        }
        listeners.retain(|l| obs.held_by_selected.contains_key(&l.inode));
    }
    listeners.sort_by_key(|l| (l.port, l.addr.is_ipv6(), l.addr, l.inode));
    obs.listeners = listeners;
    if let Some((url, probed)) = crate::probe_target(args, &obs.listeners) {
        let tls = Setup::new(&args.tls).map_err(CheckError::Other)?;
        let target = probe::Target {
            url: url.clone(),
            host: args.tls.host.clone(),
            unix: None,
        };
        let p = probe::run_target(&target, &tls, args.method, args.probe_timeout);
        obs.probe = Some((url, p));
        obs.probed = probed;
    }
    obs.host = host_counters(root, &mut obs.notes);
    if obs
        .probe
        .as_ref()
        .is_some_and(|(_, p)| p.outcome == Outcome::ConnectTimeout)
    {
        obs.after_probe = Some(drops_after_probe(args, root, &obs.listeners));
    }
    obs.boot_id = root.boot_id().unwrap_or_default();
    obs.established = established_by_port(root, source, &obs.listeners);
    Ok(obs)
}

/// The selected processes and the socket inodes among their fds.
fn select(
    args: &Args,
    root: &ProcRoot,
    deadline: Instant,
    obs: &mut Observation,
) -> Result<(), CheckError> {
    let selected = args
        .select
        .resolve(root, args.common.label.as_deref(), &mut obs.notes)?;
    obs.selected = Some(selected.iter().map(|s| s.display()).collect());
    // Reading the selected processes' fds may take a while (one readlink per fd): leave
    // time for the probe and for printing.
    let probing = args.probe || args.url.is_some();
    let scan_until = deadline
        .checked_sub(Duration::from_millis(500))
        .and_then(|d| {
            d.checked_sub(if probing {
                args.probe_timeout
            } else {
                Duration::ZERO
            })
        })
        .unwrap_or_else(Instant::now);
    for s in &selected {
        match owner::socket_inodes(root, s.pid, scan_until) {
            Ok((inodes, cut)) => {
                for i in inodes {
                    obs.held_by_selected.entry(i).or_default().push(s.pid);
                }
                if cut {
                    obs.notes.unknown(format!(
                        "{}: stopped reading its fds at the time limit (-t); listeners may be missing",
                        s.display()
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => obs
                .notes
                .unknown(CheckError::io(root.process(s.pid).path("fd"), e)),
        }
    }
    Ok(())
}

/// Lists LISTEN sockets (on `--port`, if given): sock_diag, else /proc/net/tcp{,6}. The
/// third value says why sock_diag was not used.
fn read_listeners(
    args: &Args,
    root: &ProcRoot,
) -> Result<(Vec<Listener>, Source, Option<String>), CheckError> {
    // Tests reach the /proc/net/tcp fallback through a seam of test builds only.
    let why_not = if procguard_common::seam::var(procguard_common::seam::Seam::NoSockDiag).is_some()
    {
        "sock_diag not used (turned off by a test)".to_string()
    } else {
        match sock_diag::listeners(args.port) {
            Ok(sockets) => {
                let listeners = sockets.into_iter().map(Listener::from_diag).collect();
                return Ok((listeners, Source::SockDiag, None));
            }
            Err(DiagError::Os(e)) => format!("sock_diag unavailable ({e}), read /proc/net/tcp"),
            Err(e) => return Err(CheckError::Other(e.to_string())),
        }
    };
    let rows = proc_net_tcp(root, sock_diag::TCP_LISTEN)?;
    let listeners = rows
        .into_iter()
        .filter(|r| args.port.is_none_or(|p| r.port == p))
        .map(|r| Listener {
            addr: r.addr,
            port: r.port,
            queue: r.rx_queue,
            backlog: args.backlog,
            drops: None,
            uid: r.uid,
            inode: r.inode,
        })
        .collect();
    Ok((listeners, Source::ProcNetTcp, Some(why_not)))
}

/// The rows of /proc/net/tcp and tcp6 in `state` (a kernel without IPv6 has no tcp6).
fn proc_net_tcp(root: &ProcRoot, state: u8) -> Result<Vec<procnet::TcpRow>, CheckError> {
    let mut rows = Vec::new();
    for file in ["net/tcp", "net/tcp6"] {
        let text = match root.read(file) {
            Ok(t) => t,
            Err(e) if file == "net/tcp6" && e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        rows.extend(
            procnet::parse_tcp(&text, state)
                .map_err(|m| CheckError::parse(root.path().join(file), m))?,
        );
    }
    Ok(rows)
}

/// TcpExt ListenOverflows and ListenDrops; a failure is an UNKNOWN note.
fn host_counters(root: &ProcRoot, notes: &mut Report) -> Option<HostCounters> {
    let text = root
        .read("net/netstat")
        .map_err(|e| notes.unknown(e))
        .ok()?;
    let t = TcpExt::parse(&text)
        .map_err(|m| notes.unknown(CheckError::parse(root.path().join("net/netstat"), m)))
        .ok()?;
    Some(HostCounters {
        listen_overflows: t.get("ListenOverflows")?,
        listen_drops: t.get("ListenDrops")?,
    })
}

/// The drop counters once more, after a probe whose SYN was not answered.
fn drops_after_probe(
    args: &Args,
    root: &ProcRoot,
    listeners: &[Listener],
) -> (BTreeMap<u64, u64>, Option<HostCounters>) {
    let mut per_listener = BTreeMap::new();
    if listeners.iter().any(|l| l.drops.is_some()) {
        if let Ok((now, _, _)) = read_listeners(args, root) {
            for l in now {
                if let Some(d) = l.drops {
                    per_listener.insert(l.inode, d);
                }
            }
        }
    }
    (per_listener, host_counters(root, &mut Report::default()))
}

/// The established connections of each listened port (their local addresses).
fn established_by_port(
    root: &ProcRoot,
    source: Source,
    listeners: &[Listener],
) -> BTreeMap<u16, Result<Vec<IpAddr>, String>> {
    let mut out = BTreeMap::new();
    for l in listeners {
        out.entry(l.port).or_insert_with(|| {
            // Only the families listening on this port can hold its connections: an IPv4
            // listener's are all AF_INET, so the (costly) AF_INET6 walk is skipped.
            let on_port = || listeners.iter().filter(|o| o.port == l.port);
            let families = Families {
                v4: on_port().any(|o| o.addr.is_ipv4()),
                v6: on_port().any(|o| o.addr.is_ipv6()),
            };
            established(root, source, l.port, families).map_err(|e| e.to_string())
        });
    }
    out
}

/// The local addresses of the established connections with local port `port`.
fn established(
    root: &ProcRoot,
    source: Source,
    port: u16,
    families: Families,
) -> Result<Vec<IpAddr>, CheckError> {
    if source == Source::SockDiag {
        return sock_diag::established_on(port, families)
            .map_err(|e| CheckError::Other(e.to_string()));
    }
    Ok(proc_net_tcp(root, sock_diag::TCP_ESTABLISHED)?
        .iter()
        .filter(|r| r.port == port)
        .map(|r| r.addr)
        .collect())
}

/// Looks up the processes holding the listeners (those of the selected processes are
/// already known) and reads their fd usage. A lookup cut short by its time limit is noted.
pub fn owners(root: &ProcRoot, obs: &mut Observation, deadline: Instant) {
    let inodes: Vec<u64> = obs.listeners.iter().map(|l| l.inode).collect();
    // Leave time for printing: at most 2 s, and 0.5 s before the plugin's deadline.
    let until = (Instant::now() + Duration::from_secs(2)).min(
        deadline
            .checked_sub(Duration::from_millis(500))
            .unwrap_or(deadline),
    );
    let uid = obs.listeners.first().map(|l| l.uid);
    let (found, cut) = owner::find_owners(
        root,
        &inodes,
        &obs.held_by_selected,
        uid,
        until,
        MAX_HOLDERS,
    );
    if cut {
        obs.notes
            .verbose_detail("owner lookup stopped at its time limit");
    }
    obs.owners = Some(
        found
            .into_iter()
            .map(|(inode, pids)| {
                let owners = pids.into_iter().map(|p| Owner::read(root, p)).collect();
                (inode, owners)
            })
            .collect(),
    );
}

/// Takes the prior state of this check and stores the next one, under the state lock. A
/// state store that cannot be used costs the drop deltas only.
pub fn swap_state(args: &Args, obs: &Observation) -> Prior {
    let key = format!("http_backlog {}", crate::target_key(args));
    let updated = args.state.open().and_then(|dir| {
        dir.update::<Saved, Saved>(&key, |saved, _origin| {
            let next = crate::evaluate::next_state(saved, obs);
            std::mem::replace(saved, next)
        })
    });
    match updated {
        Ok(u) => Prior {
            saved: Some(u.value),
            note: u.origin.note(),
            error: None,
        },
        Err(e) => Prior {
            saved: None,
            note: None,
            error: Some(e.to_string()),
        },
    }
}
