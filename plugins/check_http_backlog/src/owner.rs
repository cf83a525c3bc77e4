//! Which process holds a socket: its inode against the `socket:[INODE]` link targets in
//! `/proc/PID/fd`. That is one readlink per fd of every process looked at, so it runs only
//! when it is needed (a failure, or -v), looks first at processes of the socket's uid, and
//! stops at a deadline.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use procguard_common::proc::limits::Rlimit;
use procguard_common::proc::ProcRoot;

/// A process holding a listener, with its fd usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// PID.
    pub pid: i32,
    /// Executable name.
    pub name: String,
    /// Open fds, if readable.
    pub fds: Option<u64>,
    /// Its nofile limit, if readable.
    pub nofile: Option<Rlimit>,
}

impl Owner {
    /// Reads name, fd count and nofile of `pid`.
    pub fn read(root: &ProcRoot, pid: i32) -> Owner {
        let p = root.process(pid);
        Owner {
            pid,
            name: p.name(),
            fds: p.fd_count().ok(),
            nofile: p.limits().ok().map(|l| l.nofile()),
        }
    }

    /// Whether the open fds have reached the soft limit: accept() then fails with EMFILE.
    pub fn at_fd_limit(&self) -> bool {
        matches!((self.fds, self.nofile.and_then(|n| n.soft)), (Some(fds), Some(soft)) if fds >= soft)
    }

    /// `node[2100] at 1024/1024 open files` / `node[2100] 40/1024 open files`.
    pub fn describe(&self) -> String {
        let who = format!("{}[{}]", self.name, self.pid);
        match (self.fds, self.nofile.and_then(|n| n.soft)) {
            (Some(fds), Some(soft)) if fds >= soft => format!("{who} at {fds}/{soft} open files"),
            (Some(fds), Some(soft)) => format!("{who} {fds}/{soft} open files"),
            (Some(fds), None) => format!("{who} {fds} open files (no limit)"),
            _ => who,
        }
    }
}

/// The inodes of the sockets among `pid`'s fds, and whether `deadline` cut the list short
/// (a process may hold hundreds of thousands of fds: one readlink each).
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

/// `socket:[123]` -> 123.
pub fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// For each inode, the PIDs holding it (a listener shared by forked workers has several),
/// at most `max_per_inode` each. Processes owned by `uid` are looked at first; the scan
/// stops once every inode has an owner, or at `deadline`. The second value says whether
/// the scan was cut short by the deadline.
pub fn find_owners(
    root: &ProcRoot,
    inodes: &[u64],
    uid: Option<u32>,
    deadline: Instant,
    max_per_inode: usize,
) -> (BTreeMap<u64, Vec<i32>>, bool) {
    let mut found: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    let Ok(pids) = root.pids() else {
        return (found, false);
    };
    let me = std::process::id() as i32;
    let (mut first, mut rest): (Vec<i32>, Vec<i32>) =
        pids.into_iter().filter(|&p| p != me).partition(|&p| {
            uid.is_some_and(|u| {
                fs::metadata(root.process(p).path(""))
                    .map(|m| m.uid() == u)
                    .unwrap_or(false)
            })
        });
    first.append(&mut rest);
    for pid in first {
        if Instant::now() >= deadline {
            return (found, true);
        }
        let all_found = inodes
            .iter()
            .all(|i| found.get(i).is_some_and(|v| !v.is_empty()));
        if all_found && !inodes.is_empty() {
            break;
        }
        let Ok((held, cut)) = socket_inodes(root, pid, deadline) else {
            continue; // gone, or not ours to read
        };
        if cut {
            return (found, true);
        }
        for inode in held {
            if inodes.contains(&inode) {
                let owners = found.entry(inode).or_default();
                if owners.len() < max_per_inode && !owners.contains(&pid) {
                    owners.push(pid);
                }
            }
        }
    }
    (found, false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            fds: Some(1024),
            nofile: Some(Rlimit {
                soft: Some(1024),
                hard: Some(4096),
            }),
        };
        assert!(o.at_fd_limit());
        assert_eq!(o.describe(), "node[2100] at 1024/1024 open files");
        let o = Owner { fds: Some(40), ..o };
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
        let me = std::process::id() as i32;
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let (held, cut) = socket_inodes(&root, me, far).unwrap();
        assert!(held.contains(&inode) && !cut);
        // The scan skips the calling process itself (the plugin never holds the
        // listener), so here the inode has no owner, and a past deadline stops at once.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let (found, cut) = find_owners(&root, &[inode], None, deadline, 4);
        assert!(!cut);
        assert!(found.get(&inode).is_none_or(|v| !v.contains(&me)));
        let (_, cut) = find_owners(&root, &[inode], None, Instant::now(), 4);
        assert!(cut);
    }
}
