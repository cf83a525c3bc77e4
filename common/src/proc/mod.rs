//! Reading /proc through one root: `/proc`, or the host's procfs mounted elsewhere when the
//! plugin runs inside a container (`--proc-root /host/proc`).
//!
//! Files are read whole into memory at this boundary, so an I/O error is never mistaken for
//! the end of a file, and then parsed with procfs' parsers or our own where procfs lacks the
//! fact. Every error carries the path it came from.
//!
//! What a process is called comes from [`identity`] (world-readable sources only) and is
//! shown one way everywhere, `name[pid]`, by [`who`].

pub mod container;
pub mod identity;
pub mod limits;

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use procfs::FromRead;

use crate::error::CheckError;
pub use container::Container;
pub use identity::{Glob, Identity};
pub use limits::{Limits, Rlimit};

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`: a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;

/// How a process is shown in every output line: `name[pid]`.
#[must_use]
pub fn who(name: &str, pid: i32) -> String {
    format!("{name}[{pid}]")
}

/// `statfs` magic of the real procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A /proc tree: the real one, or a fixture tree in tests.
#[derive(Debug, Clone)]
pub struct ProcRoot {
    path: PathBuf,
    is_procfs: bool,
}

impl ProcRoot {
    /// Opens the tree at `path` for `--proc-root`: it must be a procfs (the host's, mounted
    /// elsewhere, works); anything else is an error naming it. Builds with the `testing`
    /// feature (never packaged) also take a fixture tree laid out like /proc.
    ///
    /// # Errors
    /// [`CheckError::Config`] (UNKNOWN) naming `path` when it is missing, not a directory or
    /// not a procfs.
    pub fn open(path: impl Into<PathBuf>) -> Result<ProcRoot, CheckError> {
        let root = ProcRoot::new(path);
        if root.is_procfs || (cfg!(feature = "testing") && looks_like_proc(&root.path)) {
            return Ok(root);
        }
        let shown = root.path.display();
        Err(CheckError::Config(match fs::metadata(&root.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                format!("--proc-root {shown} does not exist")
            }
            Ok(m) if !m.is_dir() => format!("--proc-root {shown} is not a directory"),
            _ => format!(
                "--proc-root {shown} is not a procfs; give the host's /proc mounted there (e.g. -v /proc:{shown}:ro)"
            ),
        }))
    }

    /// Opens the tree at `path` without checking what it is (tests, and the real `/proc`).
    pub fn new(path: impl Into<PathBuf>) -> ProcRoot {
        let path = path.into();
        let is_procfs = fs_magic(&path) == Some(PROC_SUPER_MAGIC);
        ProcRoot { path, is_procfs }
    }

    /// The directory this tree is rooted at.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a file below the root, e.g. `sys/fs/file-nr`.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn read(&self, rel: &str) -> Result<String, CheckError> {
        read_file(&self.path.join(rel))
    }

    /// Reads a file below the root holding one unsigned number (e.g. `sys/fs/nr_open`).
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn read_u64(&self, rel: &str) -> Result<u64, CheckError> {
        let text = self.read(rel)?;
        text.trim().parse().map_err(|_| {
            CheckError::parse(
                self.path.join(rel),
                format!("expected a number, found {:?}", text.trim()),
            )
        })
    }

    /// The PIDs of all processes (thread-group leaders; /proc lists no threads at its top),
    /// kernel threads left out: they have no fds, limits or name of their own to check, and
    /// their fd directories are closed to non-root users.
    ///
    /// # Errors
    /// A [`CheckError`] naming the directory when it cannot be listed.
    pub fn pids(&self) -> Result<Vec<i32>, CheckError> {
        Ok(self.scan()?.into_iter().map(|(pid, _)| pid).collect())
    }

    /// [`pids`](ProcRoot::pids) with each process's `stat` as read to tell kernel threads
    /// apart (`None` where it could not be read), so a scan reads it only once.
    ///
    /// # Errors
    /// A [`CheckError`] naming the directory when it cannot be listed.
    pub fn scan(&self) -> Result<Vec<(i32, Option<StatLine>)>, CheckError> {
        let entries = fs::read_dir(&self.path).map_err(|e| CheckError::io(&self.path, e))?;
        let mut found: Vec<(i32, Option<StatLine>)> = Vec::new();
        for pid in entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        {
            match self.process(pid).stat_line() {
                Ok(stat) if stat.is_kernel_thread() => {}
                Ok(stat) => found.push((pid, Some(stat))),
                Err(e) if e.is_not_found() => {} // exited while listed
                Err(_) => found.push((pid, None)),
            }
        }
        found.sort_unstable_by_key(|(pid, _)| *pid);
        Ok(found)
    }

    /// Whether this procfs hides other users' processes (`hidepid=1|2|invisible|noaccess`),
    /// and so a process that is not listed may still be running.
    #[must_use]
    pub fn hides_other_users(&self) -> bool {
        let Ok(mountinfo) = self.read("self/mountinfo") else {
            return false;
        };
        let target = fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        mountinfo.lines().any(|line| {
            let mut fields = line.split(' ');
            fields.nth(4).is_some_and(|mnt| Path::new(mnt) == target)
                && line.contains(" - proc ")
                && line.split([',', ' ']).any(|o| {
                    o.strip_prefix("hidepid=")
                        .is_some_and(|v| v != "0" && v != "off")
                })
        })
    }

    /// A handle on one process (nothing is read yet).
    #[must_use]
    pub fn process(&self, pid: i32) -> Process<'_> {
        Process {
            root: self,
            pid,
            dir: self.path.join(pid.to_string()),
        }
    }

    /// Seconds since boot, from `uptime`: the clock process start times are measured on.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn uptime_secs(&self) -> Result<f64, CheckError> {
        let text = self.read("uptime")?;
        text.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                CheckError::parse(
                    self.path.join("uptime"),
                    format!("unexpected content {:?}", text.trim()),
                )
            })
    }

    /// The boot id, which changes on every boot.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn boot_id(&self) -> Result<String, CheckError> {
        Ok(self.read("sys/kernel/random/boot_id")?.trim().to_string())
    }

    /// Whether the tree is the kernel's procfs (and so `stat(fd).st_size` is an fd count).
    #[must_use]
    pub fn is_procfs(&self) -> bool {
        self.is_procfs
    }
}

/// Clock ticks per second, the unit of `starttime` in `/proc/PID/stat`.
#[must_use]
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The magic number of the filesystem `path` lies on (`statfs(2)`'s `f_type`), following
/// symlinks; `None` when it cannot be had.
#[must_use]
pub fn fs_magic(path: &Path) -> Option<i64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: c_path is a valid C string and buf is large enough for a statfs.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statfs returned 0, so it filled buf.
    #[allow(clippy::useless_conversion)] // f_type is i64 on x86_64, i32/u32 elsewhere
    Some(i64::from(unsafe { buf.assume_init() }.f_type))
}

/// Reads a whole file, attaching the path to any error.
///
/// /proc files report a size of 0, so `fs::read` would start with tiny probing reads (eight
/// system calls for one `limits` file); one 4 KiB buffer takes most of them in one read.
///
/// # Errors
/// A [`CheckError`] naming the file that could not be read or parsed.
pub fn read_file(path: &Path) -> Result<String, CheckError> {
    let mut file = fs::File::open(path).map_err(|e| CheckError::io(path, e))?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CheckError::io(path, e)),
        }
    }
    buf.truncate(len);
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// One process below a [`ProcRoot`].
#[derive(Debug, Clone)]
pub struct Process<'r> {
    root: &'r ProcRoot,
    pid: i32,
    dir: PathBuf,
}

/// procfs' `/proc/PID/stat` record.
pub type Stat = procfs::process::Stat;
/// procfs' `/proc/PID/status` record.
pub type ProcStatus = procfs::process::Status;

impl Process<'_> {
    /// The PID.
    #[must_use]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The path of one of the process's files.
    #[must_use]
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Reads one of the process's files whole.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn read(&self, file: &str) -> Result<String, CheckError> {
        read_file(&self.path(file))
    }

    fn parse<T: FromRead>(&self, file: &str) -> Result<T, CheckError> {
        let text = self.read(file)?;
        T::from_read(text.as_bytes()).map_err(|e| CheckError::parse(self.path(file), e.to_string()))
    }

    /// Whether the process exists.
    #[must_use]
    pub fn exists(&self) -> bool {
        self.dir.exists()
    }

    /// Resource limits (`/proc/PID/limits`).
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn limits(&self) -> Result<Limits, CheckError> {
        let text = self.read("limits")?;
        Limits::parse(&text).map_err(|msg| CheckError::parse(self.path("limits"), msg))
    }

    /// `/proc/PID/stat` (comm, ppid, starttime in clock ticks since boot, ...), parsed by
    /// procfs. [`stat_line`](Process::stat_line) has the fields procguard reads and parses
    /// any line without a shape check.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn stat(&self) -> Result<Stat, CheckError> {
        let text = self.read("stat")?;
        // procfs slices the line at byte offsets around the parentheses and panics on a
        // line the kernel never writes (a fixture tree's): check the shape first.
        if !stat_shape(&text) {
            return Err(CheckError::parse(
                self.path("stat"),
                "expected PID (COMM) STATE ... on one line",
            ));
        }
        Stat::from_read(text.as_bytes())
            .map_err(|e| CheckError::parse(self.path("stat"), e.to_string()))
    }

    /// `/proc/PID/status` (uids, gids, supplementary groups, tgid, ppid, ...).
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn status(&self) -> Result<ProcStatus, CheckError> {
        self.parse("status")
    }

    /// The argument vector (empty for kernel threads and zombies).
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn cmdline(&self) -> Result<Vec<String>, CheckError> {
        let text = self.read("cmdline")?;
        Ok(text
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The fields of `/proc/PID/stat` selection needs (cheaper than [`stat`](Process::stat)).
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn stat_line(&self) -> Result<StatLine, CheckError> {
        let text = self.read("stat")?;
        StatLine::parse(&text)
            .ok_or_else(|| CheckError::parse(self.path("stat"), "not a /proc/PID/stat line"))
    }

    /// `comm` and the argument vector, the world-readable facts its name comes from.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn identity(&self) -> Result<Identity, CheckError> {
        let comm = self.stat_line()?.comm;
        Ok(Identity {
            comm,
            argv: self.cmdline()?,
        })
    }

    /// The PIDs of the process in each PID namespace it is in, from the reader's outwards
    /// (`NSpid` in `status`): one entry on the host, `[host, .., in-container]` inside.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn ns_pids(&self) -> Result<Vec<i32>, CheckError> {
        Ok(self.status()?.nspid.unwrap_or_else(|| vec![self.pid]))
    }

    /// The container whose cgroup holds the process, if any.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn container(&self) -> Result<Option<Container>, CheckError> {
        Ok(self
            .cgroup_paths()?
            .iter()
            .find_map(|p| container::in_cgroup_path(p)))
    }

    /// What the process is called ([`Identity::name`]): the script for an interpreter, the
    /// executable's full name, never different for root and other users. `?` if unreadable.
    #[must_use]
    pub fn name(&self) -> String {
        match self.identity() {
            Ok(id) => id.name(),
            Err(_) => "?".to_string(),
        }
    }

    /// `name[pid]`, as every output line shows a process.
    #[must_use]
    pub fn who(&self) -> String {
        who(&self.name(), self.pid)
    }

    /// The cgroup paths the process belongs to (`/proc/PID/cgroup`, v1 and v2 lines).
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn cgroup_paths(&self) -> Result<Vec<String>, CheckError> {
        let text = self.read("cgroup")?;
        Ok(text
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .map(str::to_string)
            .collect())
    }

    /// The systemd unit (service or scope) whose cgroup holds the process, if any.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn systemd_unit(&self) -> Result<Option<String>, CheckError> {
        Ok(self
            .cgroup_paths()?
            .iter()
            .find_map(|p| unit_in_cgroup_path(p)))
    }

    /// The number of open file descriptors.
    ///
    /// On the real procfs of Linux >= 6.2, `stat(/proc/PID/fd).st_size` is the count: O(1)
    /// whatever the number of fds, and allowed for any user. Elsewhere (older kernels,
    /// fixture trees, where `st_size` is 0 or a byte size) the directory is counted.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn fd_count(&self) -> Result<u64, CheckError> {
        let dir = self.path("fd");
        if self.root.is_procfs {
            let meta = fs::metadata(&dir).map_err(|e| CheckError::io(&dir, e))?;
            if meta.len() > 0 {
                return Ok(meta.len());
            }
        }
        let entries = fs::read_dir(&dir).map_err(|e| CheckError::io(&dir, e))?;
        let mut count = 0;
        for entry in entries {
            entry.map_err(|e| CheckError::io(&dir, e))?;
            count += 1;
        }
        Ok(count)
    }

    /// The targets of the open fds (`socket:[123]`, `pipe:[45]`, `anon_inode:[eventpoll]`,
    /// `/var/log/app.log`, ...): one readlink per fd, so only for verbose output.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn fd_targets(&self) -> Result<Vec<String>, CheckError> {
        let dir = self.path("fd");
        let entries = fs::read_dir(&dir).map_err(|e| CheckError::io(&dir, e))?;
        let mut targets = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CheckError::io(&dir, e))?;
            match fs::read_link(entry.path()) {
                Ok(t) => targets.push(t.to_string_lossy().into_owned()),
                // The fd was closed between readdir and readlink.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(CheckError::io(entry.path(), e)),
            }
        }
        Ok(targets)
    }
}

/// The fields of a `/proc/PID/stat` line that selection and the parent walks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLine {
    /// `comm`, between the first `(` and the last `)` (it may hold either).
    pub comm: String,
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// The parent's PID.
    pub ppid: i32,
    /// The process group.
    pub pgrp: i32,
    /// The session.
    pub session: i32,
    /// The `PF_*` flags.
    pub flags: u32,
    /// Live threads.
    pub num_threads: i64,
    /// Start time in clock ticks after boot.
    pub starttime: u64,
}

/// Whether `text` has the shape of a /proc/PID/stat line: digits, ` (`, the comm up to
/// the last `)`, a space and an ASCII state letter.
fn stat_shape(text: &str) -> bool {
    let line = text.trim().as_bytes();
    let (Some(open), Some(close)) = (
        line.iter().position(|&b| b == b'('),
        line.iter().rposition(|&b| b == b')'),
    ) else {
        return false;
    };
    open >= 2
        && line[..open - 1].iter().all(u8::is_ascii_digit)
        && line[open - 1] == b' '
        && close > open
        && line.get(close + 1) == Some(&b' ')
        && line.get(close + 2).is_some_and(u8::is_ascii_alphabetic)
}

impl StatLine {
    /// Parses one line; `None` if it is not a stat line.
    #[must_use]
    pub fn parse(text: &str) -> Option<StatLine> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_string();
        let f: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        Some(StatLine {
            comm,
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            pgrp: f.get(2)?.parse().ok()?,
            session: f.get(3)?.parse().ok()?,
            flags: f.get(6)?.parse().ok()?,
            num_threads: f.get(17)?.parse().ok()?,
            starttime: f.get(19)?.parse().ok()?,
        })
    }

    /// A kernel thread (`PF_KTHREAD`).
    #[must_use]
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// Whether the process has ended: a zombie (exited, not yet reaped by its parent) or
    /// dead. A zombie thread-group leader whose other threads still run is alive.
    #[must_use]
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x') && self.num_threads <= 1
    }
}

/// Whether a directory that is not a procfs is laid out like one (a fixture tree for tests):
/// it holds a PID directory, `net` or `sys`.
fn looks_like_proc(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "net" || name == "sys" || name.parse::<u32>().is_ok()
        })
    })
}

/// The unit named by a cgroup path: the last component that is a service or scope,
/// e.g. `/system.slice/nginx.service` -> `nginx.service`.
// Unit suffixes are case-sensitive: `x.SERVICE` is no service.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
pub fn unit_in_cgroup_path(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_string)
}

/// `/proc/sys/fs/file-nr`: allocated file handles and the system-wide maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNr {
    /// Allocated file handles (open file descriptions).
    pub allocated: u64,
    /// `fs.file-max`.
    pub max: u64,
}

impl FileNr {
    /// Parses the three tab-separated numbers of `file-nr`.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn parse(text: &str) -> Result<FileNr, String> {
        let nums: Vec<u64> = text
            .split_whitespace()
            .map(|v| v.parse().map_err(|_| format!("{v:?} is not a number")))
            .collect::<Result<_, _>>()?;
        match nums[..] {
            [allocated, _free, max] => Ok(FileNr { allocated, max }),
            _ => Err(format!("expected 3 numbers, found {}", nums.len())),
        }
    }

    /// Reads it below `root`.
    ///
    /// # Errors
    /// A [`CheckError`] naming the file that could not be read or parsed.
    pub fn read(root: &ProcRoot) -> Result<FileNr, CheckError> {
        FileNr::parse(&root.read("sys/fs/file-nr")?)
            .map_err(|m| CheckError::parse(root.path().join("sys/fs/file-nr"), m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_nr_as_the_kernel_prints_it() {
        assert_eq!(
            FileNr::parse("2599\t0\t2466165\n"),
            Ok(FileNr {
                allocated: 2599,
                max: 2_466_165
            })
        );
        assert!(FileNr::parse("1\t2\n").is_err());
        assert!(FileNr::parse("a\t0\t3\n").is_err());
    }

    #[test]
    fn units_from_cgroup_paths() {
        assert_eq!(
            unit_in_cgroup_path("/system.slice/nginx.service"),
            Some("nginx.service".into())
        );
        assert_eq!(
            unit_in_cgroup_path(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope"
            ),
            Some("run-r1.scope".into())
        );
        assert_eq!(unit_in_cgroup_path("/"), None);
    }

    /// Lines as Linux 6.18 prints them: kthreadd, and a comm holding `) (` and spaces.
    #[test]
    fn stat_lines() {
        let k = StatLine::parse("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 20 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n").unwrap();
        assert!(k.is_kernel_thread() && !k.has_exited());
        assert_eq!((k.comm.as_str(), k.ppid, k.starttime), ("kthreadd", 0, 20));
        assert_eq!((k.pgrp, k.session), (0, 0));
        let z = StatLine::parse("9440 (a) (b c) Z 9364 9364 1 0 -1 4227084 1 0 0 0 0 0 0 0 20 0 1 0 88211 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n").unwrap();
        assert_eq!(z.comm, "a) (b c");
        assert!(z.has_exited() && !z.is_kernel_thread());
        assert_eq!((z.ppid, z.num_threads, z.starttime), (9364, 1, 88211));
        assert_eq!((z.pgrp, z.session), (9364, 1));
        assert!(StatLine::parse("garbage").is_none());
    }

    /// mountinfo lines as the kernel prints them for a procfs with and without hidepid.
    #[test]
    fn hidepid_is_read_from_mountinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(dir.join("self")).unwrap();
        let line = |opts: &str| {
            format!(
                "22 1 0:21 / {} rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw{opts}\n",
                dir.display()
            )
        };
        let root = ProcRoot::new(&dir);
        for (opts, hides) in [
            ("", false),
            (",hidepid=0", false),
            (",hidepid=2", true),
            (",hidepid=invisible,gid=4", true),
        ] {
            fs::write(dir.join("self/mountinfo"), line(opts)).unwrap();
            assert_eq!(root.hides_other_users(), hides, "{opts}");
        }
    }

    #[test]
    fn proc_root_must_be_a_procfs() {
        assert!(ProcRoot::open("/proc").is_ok());
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("README"), "x").unwrap();
        let e = ProcRoot::open(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("is not a procfs; give the host's /proc mounted there"),
            "{e}"
        );
        let e = ProcRoot::open("/no/such/dir").unwrap_err().to_string();
        assert_eq!(e, "--proc-root /no/such/dir does not exist");
    }

    /// Oracle: what we read from /proc/self agrees with the kernel's own answers.
    #[test]
    fn self_matches_the_kernel() {
        let root = ProcRoot::new("/proc");
        assert!(root.is_procfs());
        let me = root.process(i32::try_from(std::process::id()).unwrap());
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: rl is a valid rlimit to fill.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut rl) },
            0
        );
        let nofile = me.limits().unwrap().nofile();
        assert_eq!(nofile.soft, Some(rl.rlim_cur));
        assert_eq!(nofile.hard, Some(rl.rlim_max));
        assert!(me.fd_count().unwrap() >= 3);
        assert_eq!(me.stat().unwrap().pid, me.pid());
        assert!(!ProcRoot::new(std::env::temp_dir()).is_procfs());
    }
}
