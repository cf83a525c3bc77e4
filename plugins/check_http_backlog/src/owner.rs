//! Which processes hold a socket: its inode against the `socket:[INODE]` link targets in
//! `/proc/PID/fd`. A pre-forking server (nginx, php-fpm, gunicorn, Apache prefork) has a
//! master that opens the listener and workers that inherit it and call `accept()`: every one
//! of them holds it, each with its own open files against its own `nofile`, and the one
//! whose `accept()` fails with EMFILE is usually a worker. So every process is looked at:
//! one readlink per fd, which is why it runs only when it is needed (a failure, or -v),
//! looks first at processes of the socket's uid, and stops at a deadline.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use procguard_common::proc::limits::FdUsage;
use procguard_common::proc::{who, ProcRoot};
use procguard_common::provenance::{self, Provenance};

/// A process holding a listener, with its fd usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// PID.
    pub pid: i32,
    /// Executable name.
    pub name: String,
    /// Its parent, if readable (tells a master from its workers).
    pub ppid: Option<i32>,
    /// Its open fds against its own nofile, if both are readable.
    pub usage: Option<FdUsage>,
    /// Where its nofile came from (common's provenance), traced only when it is at its
    /// limit.
    pub origin: Option<Provenance>,
}

impl Owner {
    /// Reads name, fd count and nofile of `pid`.
    #[must_use]
    pub fn read(root: &ProcRoot, pid: i32) -> Owner {
        let p = root.process(pid);
        let mut owner = Owner {
            pid,
            name: p.name(),
            ppid: p.stat().ok().map(|s| s.ppid),
            usage: p
                .fd_count()
                .ok()
                .zip(p.limits().ok())
                .map(|(fds, l)| FdUsage {
                    fds,
                    nofile: l.nofile(),
                }),
            origin: None,
        };
        if owner.at_fd_limit() {
            owner.origin = Some(provenance::trace(root, pid, "nofile"));
        }
        owner
    }

    /// `; nofile 1024:4096 inherited from monit[812]`, when traced.
    fn origin_words(&self) -> String {
        self.origin
            .as_ref()
            .map(|o| format!("; {}", o.origin()))
            .unwrap_or_default()
    }

    /// Open fds per thousand of the soft limit (0 when either is unknown).
    #[must_use]
    pub fn fill_permille(&self) -> u64 {
        let ratio = self.usage.and_then(|u| u.ratio()).unwrap_or(0.0);
        // A ratio of a few thousand at most; the cast only rounds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let permille = (ratio * 1000.0).round() as u64;
        permille
    }

    /// Whether the open fds have reached the soft limit: `accept()` then fails with EMFILE.
    #[must_use]
    pub fn at_fd_limit(&self) -> bool {
        self.usage.is_some_and(|u| u.at_limit())
    }

    /// `node[2100] at 1024/1024 open files` / `node[2100] 40/1024 open files`.
    #[must_use]
    pub fn describe(&self) -> String {
        self.describe_as(None)
    }

    /// The same with its role after the name: `nginx[13311] worker at 41/40 open files`.
    #[must_use]
    pub fn describe_as(&self, role: Option<&str>) -> String {
        let who = match role {
            Some(r) => format!("{} {r}", who(&self.name, self.pid)),
            None => who(&self.name, self.pid),
        };
        match self.usage.map(|u| (u.fds, u.nofile.soft)) {
            Some((fds, Some(soft))) if fds >= soft => format!("{who} at {fds}/{soft} open files"),
            Some((fds, Some(soft))) => format!("{who} {fds}/{soft} open files"),
            Some((fds, None)) => format!("{who} {fds} open files (no limit)"),
            None => who,
        }
    }
}

/// The inodes of the sockets among `pid`'s fds, and whether `deadline` cut the list short
/// (a process may hold hundreds of thousands of fds: one readlink each).
///
/// # Errors
///
/// `/proc/PID/fd` cannot be listed (the process is gone, or another user's).
pub fn socket_inodes(
    root: &ProcRoot,
    pid: i32,
    deadline: Instant,
) -> std::io::Result<(Vec<u64>, bool)> {
    let dir = root.process(pid).path("fd");
    let mut inodes = Vec::new();
    for (n, entry) in fs::read_dir(dir)?.enumerate() {
        if n % 1024 == 1023 && Instant::now() >= deadline {
            return Ok((inodes, true));
        }
        let Ok(entry) = entry else { continue };
        if let Some(inode) = fs::read_link(entry.path())
            .ok()
            .and_then(|t| socket_inode(&t.to_string_lossy()))
        {
            inodes.push(inode);
        }
    }
    Ok((inodes, false))
}

/// The fd number under which `pid` holds the socket `inode`, if it does.
#[must_use]
pub fn fd_of(root: &ProcRoot, pid: i32, inode: u64) -> Option<i32> {
    fs::read_dir(root.process(pid).path("fd"))
        .ok()?
        .flatten()
        .find(|e| {
            fs::read_link(e.path())
                .ok()
                .and_then(|t| socket_inode(&t.to_string_lossy()))
                == Some(inode)
        })?
        .file_name()
        .to_str()?
        .parse()
        .ok()
}

/// `socket:[123]` -> 123.
#[must_use]
pub fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// For each inode, the PIDs holding it, at most `max_per_inode` each; `known` are holders
/// already found (the selected processes), kept first. Every process is looked at (the
/// workers of a pre-forking server hold the master's listener too), those owned by `uid`
/// first, until `deadline`. The second value says whether the deadline cut the scan short.
#[must_use]
pub fn find_owners(
    root: &ProcRoot,
    inodes: &[u64],
    known: &BTreeMap<u64, Vec<i32>>,
    uid: Option<u32>,
    deadline: Instant,
    max_per_inode: usize,
) -> (BTreeMap<u64, Vec<i32>>, bool) {
    let mut found: BTreeMap<u64, Vec<i32>> = inodes
        .iter()
        .filter_map(|i| Some((*i, known.get(i)?.clone())))
        .collect();
    let Ok(pids) = root.pids() else {
        return (found, false);
    };
    let me = crate::netns::own_pid();
    let done: Vec<i32> = found.values().flatten().copied().collect();
    let (mut first, mut rest): (Vec<i32>, Vec<i32>) = pids
        .into_iter()
        .filter(|p| *p != me && !done.contains(p))
        .partition(|&p| {
            uid.is_some_and(|u| fs::metadata(root.process(p).path("")).is_ok_and(|m| m.uid() == u))
        });
    first.append(&mut rest);
    for pid in first {
        if Instant::now() >= deadline {
            return (found, true);
        }
        let Ok((held, cut)) = socket_inodes(root, pid, deadline) else {
            continue; // gone, or not ours to read
        };
        for inode in held.into_iter().filter(|i| inodes.contains(i)) {
            let owners = found.entry(inode).or_default();
            if owners.len() < max_per_inode && !owners.contains(&pid) {
                owners.push(pid);
            }
        }
        if cut {
            return (found, true);
        }
    }
    (found, false)
}

/// What the holders of one listener say about a failure: `None` when none is known.
///
/// One holder: `owner node[2100] at 1024/1024 open files — accept() is likely failing with
/// EMFILE` (or just its figures). Several: the one at its limit is named, a worker before
/// the master (the master of a pre-forking server rarely accepts), with how many others
/// are: `nginx[13311] worker at 41/40 open files — accept() is likely failing with EMFILE;
/// 2 of 2 workers at their limit`. None at its limit: the fullest one, relative to its limit.
#[must_use]
pub fn holders_words(owners: &[Owner]) -> Option<String> {
    const EMFILE: &str = " \u{2014} accept() is likely failing with EMFILE";
    match owners {
        [] => return None,
        [one] if one.at_fd_limit() => {
            return Some(format!(
                "owner {}{EMFILE}{}",
                one.describe(),
                one.origin_words()
            ))
        }
        [one] => return Some(format!("owner {}", one.describe())),
        _ => {}
    }
    let is_holder = |pid: Option<i32>| pid.is_some_and(|p| owners.iter().any(|o| o.pid == p));
    let is_worker = |o: &Owner| is_holder(o.ppid);
    let workers = owners.iter().filter(|o| is_worker(o)).count();
    // Master/worker words only where the holders are a parent and its children.
    let role = |o: &Owner| match (workers, is_worker(o)) {
        (0, _) => None,
        (_, true) => Some("worker"),
        (_, false) => Some("master"),
    };
    let at_limit: Vec<&Owner> = owners.iter().filter(|o| o.at_fd_limit()).collect();
    let Some(named) = at_limit
        .iter()
        .find(|o| is_worker(o))
        .or_else(|| at_limit.first())
    else {
        let fullest = owners.iter().max_by_key(|o| o.fill_permille())?;
        return Some(format!(
            "{} holders, none at its open-files limit (fullest {})",
            owners.len(),
            fullest.describe_as(role(fullest))
        ));
    };
    let count = if workers == 0 {
        format!(
            "{} of {} holders at their limit",
            at_limit.len(),
            owners.len()
        )
    } else {
        let n = at_limit.iter().filter(|o| is_worker(o)).count();
        let master_too = at_limit.iter().any(|o| !is_worker(o)) && is_worker(named);
        let plural = if workers == 1 { "" } else { "s" };
        format!(
            "{n} of {workers} worker{plural} at their limit{}",
            if master_too { ", the master too" } else { "" }
        )
    };
    Some(format!(
        "{}{EMFILE}; {count}{}",
        named.describe_as(role(named)),
        named.origin_words()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procguard_common::proc::limits::Rlimit;

    #[test]
    fn inode_from_link_target() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    #[test]
    fn owner_words() {
        let o = Owner {
            pid: 2100,
            name: "node".into(),
            ppid: Some(1),
            usage: Some(FdUsage {
                fds: 1024,
                nofile: Rlimit {
                    soft: Some(1024),
                    hard: Some(4096),
                },
            }),
            origin: None,
        };
        assert!(o.at_fd_limit());
        assert_eq!(o.describe(), "node[2100] at 1024/1024 open files");
        let o = Owner {
            usage: o.usage.map(|u| FdUsage { fds: 40, ..u }),
            ..o
        };
        assert!(!o.at_fd_limit());
        assert_eq!(o.describe(), "node[2100] 40/1024 open files");
    }

    #[test]
    fn finds_the_holder_of_its_own_listener() {
        use std::os::unix::fs::MetadataExt as _;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let inode = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        let root = ProcRoot::new("/proc");
        let me = crate::netns::own_pid();
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let (held, cut) = socket_inodes(&root, me, far).unwrap();
        assert!(held.contains(&inode) && !cut);
        // The scan skips the calling process itself (the plugin never holds the
        // listener), so here the inode has no owner, and a past deadline stops at once.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let (found, cut) = find_owners(&root, &[inode], &BTreeMap::new(), None, deadline, 4);
        assert!(!cut);
        assert!(found.get(&inode).is_none_or(|v| !v.contains(&me)));
        let (_, cut) = find_owners(&root, &[inode], &BTreeMap::new(), None, Instant::now(), 4);
        assert!(cut);
    }

    fn held(pid: i32, parent: i32, fds: u64, soft: u64) -> Owner {
        Owner {
            pid,
            name: "nginx".into(),
            ppid: Some(parent),
            usage: Some(FdUsage {
                fds,
                nofile: Rlimit {
                    soft: Some(soft),
                    hard: Some(soft),
                },
            }),
            origin: None,
        }
    }

    #[test]
    fn a_pre_forking_server_is_judged_by_its_workers() {
        let master = held(13255, 1, 15, 1024);
        let w1 = held(13311, 13255, 41, 40);
        let w2 = held(13312, 13255, 41, 40);
        assert_eq!(
            holders_words(&[master.clone(), w1.clone(), w2.clone()]).unwrap(),
            "nginx[13311] worker at 41/40 open files \u{2014} accept() is likely failing with EMFILE; 2 of 2 workers at their limit"
        );
        let idle = held(13312, 13255, 12, 40);
        assert_eq!(
            holders_words(&[master.clone(), idle.clone(), w1.clone()]).unwrap(),
            "nginx[13311] worker at 41/40 open files \u{2014} accept() is likely failing with EMFILE; 1 of 2 workers at their limit"
        );
        // The master is named only when it is the one at its limit.
        let full_master = held(13255, 1, 1024, 1024);
        assert_eq!(
            holders_words(&[full_master.clone(), idle.clone()]).unwrap(),
            "nginx[13255] master at 1024/1024 open files \u{2014} accept() is likely failing with EMFILE; 0 of 1 worker at their limit"
        );
        assert_eq!(
            holders_words(&[full_master, w1.clone()]).unwrap(),
            "nginx[13311] worker at 41/40 open files \u{2014} accept() is likely failing with EMFILE; 1 of 1 worker at their limit, the master too"
        );
        // Nobody at the limit: the fullest, relative to its own limit.
        assert_eq!(
            holders_words(&[master.clone(), idle]).unwrap(),
            "2 holders, none at its open-files limit (fullest nginx[13312] worker 12/40 open files)"
        );
        // Holders that are not parent and child (a socket passed over a unix socket).
        let other = held(500, 1, 40, 40);
        assert_eq!(
            holders_words(&[master.clone(), other]).unwrap(),
            "nginx[500] at 40/40 open files \u{2014} accept() is likely failing with EMFILE; 1 of 2 holders at their limit"
        );
        assert_eq!(
            holders_words(&[master]).unwrap(),
            "owner nginx[13255] 15/1024 open files"
        );
        assert_eq!(holders_words(&[]), None);
    }
}
