//! Acquisition: everything the check reads from the system, gathered into a plain
//! [`Observation`]. The sockets of the selected processes, the network namespace to look
//! in, the listeners (`sock_diag`, else /proc/net/tcp{,6}), the probe, the `TcpExt` counters,
//! the established connections, and, when the evaluation asks for them, the processes
//! holding the listeners.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use procguard_common::proc::ProcRoot;
use procguard_common::select::Selected;
use procguard_common::{CheckError, Report};

use crate::args::Args;
use crate::evaluate::{HostCounters, Prior, Saved};
use crate::listener::Listener;
use crate::netns::NetNs;
use crate::owner::{self, Owner};
use crate::probe::{self, Outcome, Probe};
pub use crate::sockets::Source;
use crate::sockets::{self, Net};
use crate::target::{self, Target};
use crate::tls::Setup;

/// The most holders of one listener looked at (a pre-forking server's master and workers).
const MAX_HOLDERS: usize = 256;

/// What one run saw. Plain data: the evaluation needs nothing else. The default is
/// nothing seen yet.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The listeners asked for.
    pub target: Target,
    /// The network namespace read, when not the plugin's own: its inode and description.
    pub netns: Option<(u64, String)>,
    /// The listeners checked, sorted by port, family, address and inode.
    pub listeners: Vec<Listener>,
    /// Where they came from.
    pub source: Source,
    /// Why `sock_diag` was not used, if it was not.
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
    /// The host's (or namespace's) `TcpExt` `ListenOverflows` and `ListenDrops`.
    pub host: Option<HostCounters>,
    /// Drop counters read again after a probe whose SYN went unanswered (listener inode
    /// -> drops, and the host counters): the next baseline, so the probe's own dropped
    /// SYNs are never counted as new drops on the next run.
    pub after_probe: Option<(BTreeMap<u64, u64>, Option<HostCounters>)>,
    /// The boot id (a reboot resets every counter).
    pub boot_id: String,
    /// With `--established`, per port: the local addresses of its established connections,
    /// or why they could not be read.
    pub established: BTreeMap<u16, Result<Vec<IpAddr>, String>>,
    /// The processes holding each listener (by inode), once looked up.
    pub owners: Option<BTreeMap<u64, Vec<Owner>>>,
}

/// Reads everything but the owners. Selection failures ("not running") are in `notes`,
/// with no listeners.
///
/// # Errors
///
/// What cannot be read at all (no listener table, a bad `--netns`, a usage error in the URL).
pub fn observe(args: &Args, root: &ProcRoot, deadline: Instant) -> Result<Observation, CheckError> {
    let mut obs = Observation::default();
    let mut pids = Vec::new();
    if !args.select.is_empty() {
        pids = select(args, root, deadline, &mut obs)?;
        if pids.is_empty() {
            return Ok(obs);
        }
    }
    let ns = namespace(args, root, &pids, &mut obs.notes)?;
    // A URL's host is local or not in the namespace looked at.
    obs.target = match &ns {
        Some(n) => n
            .run_in(|| Target::from_args(args))
            .unwrap_or_else(|_| Target::from_args(args))?,
        None => Target::from_args(args)?,
    };
    obs.netns = ns.as_ref().map(|n| (n.inode, n.describe()));
    let net = Net {
        root,
        ns: ns.as_ref(),
        // Tests reach the /proc/net/tcp fallback through a seam of test builds only.
        no_sock_diag: procguard_common::seam::var(procguard_common::seam::Seam::NoSockDiag)
            .is_some(),
    };
    read(args, &net, &mut obs)?;
    Ok(obs)
}

/// The network namespace to read: `--netns`, else that of the selected processes (the
/// oldest one's, if they are in several); `None` for the plugin's own.
fn namespace(
    args: &Args,
    root: &ProcRoot,
    pids: &[i32],
    notes: &mut Report,
) -> Result<Option<NetNs>, CheckError> {
    if let Some(arg) = &args.netns {
        return NetNs::from_arg(root, arg);
    }
    let Some(first) = pids.first() else {
        return Ok(None);
    };
    let ns = NetNs::of_pid(root, *first);
    let inode = |n: &Option<NetNs>| n.as_ref().map(|n| n.inode);
    let others = pids[1..]
        .iter()
        .filter(|p| inode(&NetNs::of_pid(root, **p)) != inode(&ns))
        .count();
    if others > 0 {
        notes.verbose_detail(format!(
            "{others} selected process(es) in another network namespace not read (select them alone, or give --netns)"
        ));
    }
    Ok(ns)
}

/// The listeners asked for in `net`, the probe, the counters and the established
/// connections.
fn read(args: &Args, net: &Net<'_>, obs: &mut Observation) -> Result<(), CheckError> {
    // TCP listeners unless only Unix ones are asked for (--unix without --port, --unix-only).
    let tcp = args.port.is_some() || (args.unix.is_none() && !args.unix_only);
    let (mut listeners, source, fallback) = if tcp {
        net.listeners(obs.target.port, args.backlog)?
    } else {
        (Vec::new(), Source::SockDiag, None)
    };
    obs.source = source;
    obs.fallback = fallback;
    listeners.retain(|l| obs.target.wants(l));
    // Unix sockets belong to a network namespace too: read them in the same one.
    match crate::unix::listeners_in(net, args)? {
        Ok(unix) => listeners.extend(unix),
        Err((status, why)) => obs.notes.add(status, why),
    }
    if obs.selected.is_some() {
        listeners.retain(|l| obs.held_by_selected.contains_key(&l.inode));
    }
    listeners.sort_by_key(|l| (l.port, l.addr.is_ipv6(), l.addr, l.inode));
    if source == Source::ProcNetTcp {
        for (l, pid) in backlogs_from_holders(net, &mut listeners, &obs.held_by_selected) {
            obs.notes.verbose_detail(format!(
                "{l} queue and backlog asked of the socket itself (pidfd_getfd from pid {pid}, TCP_INFO)"
            ));
        }
    }
    obs.listeners = listeners;
    if let Some((target, probed)) = target::probe(args, &obs.target, &obs.listeners) {
        let tls = Setup::new(&args.tls).map_err(CheckError::Other)?;
        match net.connect_from(|| probe::run_target(&target, &tls, args.method, args.probe_timeout))
        {
            Ok(p) => {
                obs.probe = Some((target.describe(), p));
                obs.probed = probed;
            }
            Err(why) => obs.notes.unknown(why),
        }
    }
    // The TcpExt counters concern TCP listeners only.
    if tcp {
        obs.host = net
            .counters()
            .map_err(|e| obs.notes.unknown(e))
            .ok()
            .flatten();
    }
    if tcp
        && obs
            .probe
            .as_ref()
            .is_some_and(|(_, p)| p.outcome == Outcome::ConnectTimeout)
    {
        // The probe's SYNs were dropped by the listener it went to: only its port's
        // listeners are read again.
        let probed = obs.listeners.iter().find(|l| Some(l.inode) == obs.probed);
        let drops = match probed {
            Some(l) if source == Source::SockDiag => net.drops(l.port),
            _ => BTreeMap::new(),
        };
        obs.after_probe = Some((drops, net.counters().ok().flatten()));
    }
    obs.boot_id = net.root.boot_id().unwrap_or_default();
    if args.established {
        obs.established = net.established(source, &obs.listeners);
    }
    Ok(())
}

/// The selected processes and the socket inodes among their fds.
fn select(
    args: &Args,
    root: &ProcRoot,
    deadline: Instant,
    obs: &mut Observation,
) -> Result<Vec<i32>, CheckError> {
    let selected = args
        .select
        .resolve(root, args.common.label.as_deref(), &mut obs.notes)?;
    obs.selected = Some(selected.iter().map(Selected::display).collect());
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
    Ok(selected.iter().map(|s| s.pid).collect())
}

/// /proc/net/tcp has no backlog: ask each listener whose holder is known (a selected
/// process, or the process `--netns` named) through a duplicate of its socket, which needs
/// ptrace access but no `CAP_SYS_ADMIN`; `--backlog` stays where that fails.
fn backlogs_from_holders(
    net: &Net<'_>,
    listeners: &mut [Listener],
    held_by_selected: &BTreeMap<u64, Vec<i32>>,
) -> Vec<(String, i32)> {
    let mut asked = Vec::new();
    for l in listeners.iter_mut() {
        let pids = held_by_selected.get(&l.inode).cloned().unwrap_or_default();
        let answer = pids
            .into_iter()
            .chain(net.ns.and_then(|n| n.pid))
            .find_map(|pid| {
                let fd = owner::fd_of(net.root, pid, l.inode)?;
                Some((pid, sockets::queue_of_held(pid, fd).ok()?))
            });
        if let Some((pid, (queue, backlog))) = answer {
            l.queue = queue;
            l.backlog = Some(backlog);
            asked.push((l.endpoint(), pid));
        }
    }
    asked
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
#[must_use]
pub fn swap_state(args: &Args, obs: &Observation) -> Prior {
    let mut key = format!("http_backlog {}", target::state_key(args, &obs.target));
    // Drop counters are per namespace: a container's listener is not the host's.
    if let Some((inode, _)) = obs.netns {
        key = format!("{key} netns {inode}");
    }
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
