//! Network namespaces: a container's listeners, counters and loopback are its own.
//!
//! `sock_diag` and `connect()` see the namespace of the socket that does the work, and a
//! socket belongs to the namespace of the thread that created it. So [`NetNs::run_in`]
//! runs a closure on a helper thread that has joined the namespace with
//! `setns(CLONE_NEWNET)` (network namespaces are per thread; the rest of the plugin stays
//! where it is). That needs `CAP_SYS_ADMIN`; without it the caller falls back to
//! `/proc/PID/net/tcp{,6}` of a process in the namespace, which needs no privilege.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use procguard_common::proc::{self, ProcRoot};
use procguard_common::CheckError;

/// `ioctl(NS_GET_NSTYPE)`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// A network namespace other than the plugin's own.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    /// The nsfs inode, as in `net:[4026532456]`: its identity.
    pub inode: u64,
    /// How it was named: `/proc/20108/ns/net`, `/run/netns/web`.
    pub path: PathBuf,
    /// A process in it, whose `/proc/PID/net/` shows it (for the fallback).
    pub pid: Option<i32>,
}

impl NetNs {
    /// The namespace of `pid`, or `None` when it is the plugin's own (or cannot be told:
    /// a fixture tree, a process gone).
    #[must_use]
    pub fn of_pid(root: &ProcRoot, pid: i32) -> Option<NetNs> {
        let ns = NetNs::open_path(&root.process(pid).path("ns/net"), Some(pid)).ok()?;
        (Some(ns.inode) != own_inode(root)).then_some(ns)
    }

    /// `--netns`: a PID, `/proc/PID/ns/net`, or a named namespace (`/run/netns/NAME`).
    /// `None` when it is the plugin's own namespace.
    ///
    /// # Errors
    ///
    /// The path cannot be opened or is not a network namespace.
    pub fn from_arg(root: &ProcRoot, arg: &str) -> Result<Option<NetNs>, CheckError> {
        let (path, pid) = match arg.parse::<i32>() {
            Ok(pid) if pid > 0 => (root.process(pid).path("ns/net"), Some(pid)),
            _ => (PathBuf::from(arg), pid_in_path(arg)),
        };
        let mut ns = NetNs::open_path(&path, pid)
            .map_err(|e| CheckError::Other(format!("--netns {arg}: {e}")))?;
        if ns.pid.is_none() {
            ns.pid = find_member(root, ns.inode);
        }
        Ok((Some(ns.inode) != own_inode(root)).then_some(ns))
    }

    fn open_path(path: &Path, pid: Option<i32>) -> io::Result<NetNs> {
        // Run as root, opening a device node can have effects of its own (a watchdog):
        // only a regular file on nsfs is opened at all.
        const NSFS_MAGIC: i64 = 0x6e73_6673;
        let on_nsfs =
            std::fs::metadata(path)?.is_file() && proc::fs_magic(path) == Some(NSFS_MAGIC);
        if !on_nsfs {
            return Err(io::Error::other(format!(
                "{} is not a namespace file (nsfs)",
                path.display()
            )));
        }
        // O_NONBLOCK: a FIFO given as --netns must not block until the timeout.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        // SAFETY: an ioctl without arguments on a file we own.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind != libc::CLONE_NEWNET {
            return Err(io::Error::other(format!(
                "{} is not a network namespace",
                path.display()
            )));
        }
        Ok(NetNs {
            inode: file.metadata()?.ino(),
            file,
            path: path.to_path_buf(),
            pid,
        })
    }

    /// `net:[4026532456] (/run/netns/web)` / `net:[4026532456] of pid 20108`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self.pid {
            Some(pid) if self.path.starts_with("/proc") => {
                format!("net:[{}] of pid {pid}", self.inode)
            }
            _ => format!("net:[{}] ({})", self.inode, self.path.display()),
        }
    }

    /// Runs `f` on a thread that has joined this namespace; an error when it cannot
    /// (EPERM without `CAP_SYS_ADMIN`).
    ///
    /// # Errors
    ///
    /// The namespace cannot be joined (EPERM without `CAP_SYS_ADMIN`).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a namespace fd we hold; it changes only this thread,
                // which ends when `f` returns.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
        })
    }

    /// `/proc/PID/net/FILE` of a process in the namespace, else the file as the joined
    /// thread sees it (`/proc/thread-self/net/FILE`).
    ///
    /// # Errors
    ///
    /// The file cannot be read, or the namespace joined to read it.
    pub fn read_net(&self, root: &ProcRoot, file: &str) -> Result<String, CheckError> {
        if let Some(pid) = self.pid {
            return root.process(pid).read(&format!("net/{file}"));
        }
        let path = PathBuf::from("/proc/thread-self/net").join(file);
        self.run_in(|| std::fs::read_to_string(&path))
            .and_then(|r| r)
            .map_err(|e| CheckError::io(format!("{} in {}", path.display(), self.describe()), e))
    }
}

/// The plugin's own namespace inode.
fn own_inode(root: &ProcRoot) -> Option<u64> {
    std::fs::metadata(root.process(own_pid()).path("ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// The plugin's PID (PIDs fit an i32: the kernel's maximum is 2^22).
#[must_use]
pub fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

/// `/proc/20108/ns/net` -> 20108.
fn pid_in_path(path: &str) -> Option<i32> {
    path.strip_prefix("/proc/")?
        .strip_suffix("/ns/net")?
        .parse()
        .ok()
}

/// A process in the namespace `inode` (for its `/proc/PID/net/`), if one can be seen.
fn find_member(root: &ProcRoot, inode: u64) -> Option<i32> {
    root.pids().ok()?.into_iter().find(|&pid| {
        std::fs::metadata(root.process(pid).path("ns/net")).is_ok_and(|m| m.ino() == inode)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_none_and_a_pid_path_names_its_pid() {
        let root = ProcRoot::new("/proc");
        let me = own_pid();
        assert!(NetNs::of_pid(&root, me).is_none());
        assert!(NetNs::from_arg(&root, &me.to_string()).unwrap().is_none());
        assert!(NetNs::from_arg(&root, "/proc/self/ns/net")
            .unwrap()
            .is_none());
        assert_eq!(pid_in_path("/proc/20108/ns/net"), Some(20108));
        assert_eq!(pid_in_path("/run/netns/web"), None);
        let e = NetNs::from_arg(&root, "/proc/self/ns/uts").unwrap_err();
        assert!(e.to_string().contains("is not a network namespace"), "{e}");
        // Devices, FIFOs and ordinary files are refused before they are opened.
        for other in ["/dev/null", "/etc/hostname"] {
            let e = NetNs::from_arg(&root, other).unwrap_err();
            assert!(e.to_string().contains("is not a namespace file"), "{e}");
        }
        let e = NetNs::from_arg(&root, "/run/netns/no-such-ns").unwrap_err();
        assert!(
            e.to_string().starts_with("--netns /run/netns/no-such-ns: "),
            "{e}"
        );
    }
}
