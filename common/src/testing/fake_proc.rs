//! [`FakeProc`]: the one builder of fixture /proc trees for tests.
//!
//! Every file it writes starts from text copied from a real /proc on Linux 6.18
//! (`common/tests/fixtures/proc/`), with only the fields a test cares about replaced: the
//! plugins' parsers meet the kernel's real layout, not a test's idea of it. Give the tree's
//! path as `--proc-root` (builds with the `testing` feature accept a fixture tree) or open it
//! with [`ProcRoot::new`].

use std::fs;
use std::path::{Path, PathBuf};

use crate::proc::ProcRoot;

/// `/proc/PID/stat` of a daemonized `sleep` (Linux 6.18).
const STAT: &str =
    include_str!("../../tests/fixtures/proc/provenance/stat-daemonized-under-monit-linux-6.18.txt");
/// `/proc/PID/status` of a `sleep` (Linux 6.18).
const STATUS: &str = include_str!("../../tests/fixtures/proc/status/sleep-linux-6.18.txt");
/// `/proc/PID/limits` with nofile 1024:4096 (Linux 6.18).
const LIMITS: &str = include_str!("../../tests/fixtures/proc/limits/lowered-nofile-linux-6.18.txt");
/// The `Max open files` row of [`LIMITS`], up to the unit column.
const NOFILE_ROW: &str = "Max open files            1024                 4096                 ";

/// A fixture /proc tree in a temporary directory, removed on drop.
///
/// ```
/// # use procguard_common::testing::FakeProc;
/// let proc = FakeProc::new();
/// proc.process(100).comm("node").ppid(50).nofile(1024, 4096).fds(7).write();
/// proc.file("sys/fs/nr_open", "4096\n");
/// let root = proc.root();
/// assert_eq!(root.process(100).limits().unwrap().nofile().soft, Some(1024));
/// ```
pub struct FakeProc {
    dir: PathBuf,
}

impl FakeProc {
    /// An empty tree.
    ///
    /// # Panics
    /// When the temporary directory cannot be created.
    pub fn new() -> FakeProc {
        let dir = std::env::temp_dir().join(format!(
            "procguard-fake-proc-{}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        FakeProc { dir }
    }

    /// The tree's directory (for `--proc-root`).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The tree's directory as a `&str` (for `--proc-root` in an argument list).
    ///
    /// # Panics
    /// When the temporary directory's path is not UTF-8.
    pub fn arg(&self) -> &str {
        self.dir.to_str().expect("temp dir path is UTF-8")
    }

    /// The tree as a [`ProcRoot`].
    pub fn root(&self) -> ProcRoot {
        ProcRoot::new(&self.dir)
    }

    /// Writes `text` to `rel` below the tree (e.g. `sys/fs/nr_open`, `net/tcp`), creating
    /// directories as needed.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn file(&self, rel: &str, text: &str) -> &FakeProc {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self
    }

    /// `uptime` (seconds since boot) and `sys/kernel/random/boot_id`.
    pub fn boot(&self, uptime_secs: f64, boot_id: &str) -> &FakeProc {
        self.file("uptime", &format!("{uptime_secs:.2} 100.00\n"))
            .file("sys/kernel/random/boot_id", &format!("{boot_id}\n"))
    }

    /// Starts a process directory; [`FakeProcess::write`] writes it (replacing any earlier
    /// one with this PID).
    pub fn process(&self, pid: i32) -> FakeProcess<'_> {
        FakeProcess {
            tree: self,
            pid,
            ppid: 1,
            pgrp: None,
            session: None,
            comm: "sleep".into(),
            starttime: 50_710,
            cmdline: None,
            uid: 0,
            gid: 0,
            limits: Some(LIMITS.to_string()),
            environ: String::new(),
            cgroup: "0::/\n".into(),
            fds: 0,
            state: None,
            kernel_thread: false,
            ns_pids: Vec::new(),
        }
    }
}

impl Default for FakeProc {
    fn default() -> Self {
        FakeProc::new()
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A distinct number per call in this process, for directory names.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One process of a [`FakeProc`]; set what matters, then [`FakeProcess::write`].
#[must_use = "nothing is written until write()"]
pub struct FakeProcess<'t> {
    tree: &'t FakeProc,
    pid: i32,
    ppid: i32,
    pgrp: Option<i32>,
    session: Option<i32>,
    comm: String,
    starttime: u64,
    cmdline: Option<Vec<String>>,
    uid: u32,
    gid: u32,
    limits: Option<String>,
    environ: String,
    cgroup: String,
    fds: usize,
    state: Option<char>,
    kernel_thread: bool,
    ns_pids: Vec<i32>,
}

impl FakeProcess<'_> {
    /// The state letter in stat (default the fixture's `S`; `Z` for a zombie).
    pub fn state(mut self, state: char) -> Self {
        self.state = Some(state);
        self
    }

    /// A kernel thread: `PF_KTHREAD` in stat's flags and an empty command line.
    pub fn kernel_thread(mut self) -> Self {
        self.kernel_thread = true;
        self.cmdline = Some(Vec::new());
        self
    }

    /// Its PIDs in nested PID namespaces, outermost first (`NSpid`/`NStgid` after its own):
    /// `&[1]` for PID 1 of a container.
    pub fn ns_pids(mut self, inner: &[i32]) -> Self {
        self.ns_pids = inner.to_vec();
        self
    }

    /// The parent PID (default 1).
    pub fn ppid(mut self, ppid: i32) -> Self {
        self.ppid = ppid;
        self
    }

    /// The process group (default: its own PID).
    pub fn pgrp(mut self, pgrp: i32) -> Self {
        self.pgrp = Some(pgrp);
        self
    }

    /// The session (default: its own PID).
    pub fn session(mut self, session: i32) -> Self {
        self.session = Some(session);
        self
    }

    /// The 15-character `comm` in stat and status (default `sleep`); also argv\[0\] unless
    /// [`FakeProcess::cmdline`] is given.
    pub fn comm(mut self, comm: &str) -> Self {
        self.comm = comm.to_string();
        self
    }

    /// Start time in clock ticks after boot (stat field 22).
    pub fn starttime(mut self, ticks: u64) -> Self {
        self.starttime = ticks;
        self
    }

    /// The argument vector (default: `comm`).
    pub fn cmdline(mut self, argv: &[&str]) -> Self {
        self.cmdline = Some(argv.iter().map(ToString::to_string).collect());
        self
    }

    /// Real and effective uid and gid (default 0).
    pub fn ids(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Soft and hard `nofile` (default 1024:4096); the other limits stay those of the
    /// fixture.
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.limits = Some(LIMITS.replace(
            NOFILE_ROW,
            &format!("Max open files            {soft:<20} {hard:<20} "),
        ));
        self
    }

    /// The whole `limits` file.
    pub fn limits(mut self, text: &str) -> Self {
        self.limits = Some(text.to_string());
        self
    }

    /// No `limits` file: the process exited after it was listed.
    pub fn without_limits(mut self) -> Self {
        self.limits = None;
        self
    }

    /// `environ` (`KEY=value\0...`; default empty).
    pub fn environ(mut self, text: &str) -> Self {
        self.environ = text.to_string();
        self
    }

    /// `cgroup` (default `0::/`).
    pub fn cgroup(mut self, text: &str) -> Self {
        self.cgroup = text.to_string();
        self
    }

    /// How many entries `fd/` holds (default 0).
    pub fn fds(mut self, n: usize) -> Self {
        self.fds = n;
        self
    }

    /// Writes the process directory.
    ///
    /// # Panics
    /// When a file cannot be written.
    pub fn write(self) {
        let t = self.tree;
        let dir = format!("{}", self.pid);
        let _ = fs::remove_dir_all(t.path().join(&dir));
        fs::create_dir_all(t.path().join(&dir).join("fd"))
            .unwrap_or_else(|e| panic!("{dir}/fd: {e}"));
        t.file(&format!("{dir}/stat"), &self.stat());
        t.file(&format!("{dir}/comm"), &format!("{}\n", self.comm));
        t.file(&format!("{dir}/status"), &self.status());
        if let Some(limits) = &self.limits {
            t.file(&format!("{dir}/limits"), limits);
        }
        let argv = self
            .cmdline
            .clone()
            .unwrap_or_else(|| vec![self.comm.clone()]);
        let argv: String = argv.iter().flat_map(|a| [a.as_str(), "\0"]).collect();
        t.file(&format!("{dir}/cmdline"), &argv);
        t.file(&format!("{dir}/environ"), &self.environ);
        t.file(&format!("{dir}/cgroup"), &self.cgroup);
        for fd in 0..self.fds {
            t.file(&format!("{dir}/fd/{fd}"), "");
        }
    }

    /// The fixture's stat line with pid, comm, ppid, pgrp, session, starttime and, where
    /// set, state and the kernel-thread flag replaced.
    fn stat(&self) -> String {
        let rest = STAT.trim_end().rsplit_once(") ").map_or("", |(_, r)| r);
        // Fields after comm, numbered from 3 (state) as in proc(5).
        let mut f: Vec<String> = rest.split(' ').map(str::to_string).collect();
        f[1] = self.ppid.to_string();
        f[2] = self.pgrp.unwrap_or(self.pid).to_string();
        f[3] = self.session.unwrap_or(self.pid).to_string();
        f[19] = self.starttime.to_string();
        if let Some(state) = self.state {
            f[0] = state.to_string();
        }
        if self.kernel_thread {
            let flags: u32 = f[6].parse().unwrap_or(0);
            f[6] = (flags | 0x0020_0000).to_string(); // PF_KTHREAD
        }
        format!("{} ({}) {}\n", self.pid, self.comm, f.join(" "))
    }

    /// The fixture's status with name, ids and the namespace PIDs replaced.
    fn status(&self) -> String {
        let (pid, pgrp, session) = (
            self.pid,
            self.pgrp.unwrap_or(self.pid),
            self.session.unwrap_or(self.pid),
        );
        STATUS
            .lines()
            .map(|line| {
                let key = line.split(':').next().unwrap_or_default();
                let value = match key {
                    "Name" => self.comm.clone(),
                    "Tgid" | "Pid" => pid.to_string(),
                    "NStgid" | "NSpid" => std::iter::once(pid)
                        .chain(self.ns_pids.iter().copied())
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("\t"),
                    "PPid" => self.ppid.to_string(),
                    "NSpgid" => pgrp.to_string(),
                    "NSsid" => session.to_string(),
                    "Uid" => [self.uid; 4].map(|v| v.to_string()).join("\t"),
                    "Gid" => [self.gid; 4].map(|v| v.to_string()).join("\t"),
                    _ => return line.to_string(),
                };
                format!("{key}:\t{value}")
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_parsers_read_a_fake_process() {
        let proc = FakeProc::new();
        proc.process(100)
            .comm("node")
            .ppid(50)
            .session(50)
            .starttime(4242)
            .cmdline(&["node", "server.js"])
            .ids(4242, 4243)
            .nofile(2048, 8192)
            .fds(3)
            .write();
        proc.process(101).without_limits().write();
        proc.file("sys/fs/nr_open", "4096\n")
            .boot(1234.5, "0b7a5c1e");
        let root = proc.root();
        let p = root.process(100);
        let stat = p.stat().unwrap();
        assert_eq!(
            (
                stat.pid,
                stat.comm.as_str(),
                stat.ppid,
                stat.session,
                stat.pgrp,
                stat.starttime
            ),
            (100, "node", 50, 50, 100, 4242)
        );
        let line = p.stat_line().unwrap();
        assert_eq!(
            (
                line.comm.as_str(),
                line.ppid,
                line.session,
                line.pgrp,
                line.starttime
            ),
            ("node", 50, 50, 100, 4242)
        );
        let status = p.status().unwrap();
        assert_eq!((status.ruid, status.egid, status.ppid), (4242, 4243, 50));
        let nofile = p.limits().unwrap().nofile();
        assert_eq!((nofile.soft, nofile.hard), (Some(2048), Some(8192)));
        assert_eq!(p.limits().unwrap().iter().count(), 16);
        assert_eq!(p.cmdline().unwrap(), ["node", "server.js"]);
        assert_eq!(p.fd_count().unwrap(), 3);
        assert!(root.process(101).limits().unwrap_err().is_not_found());
        assert_eq!(root.read_u64("sys/fs/nr_open").unwrap(), 4096);
        assert_eq!(root.boot_id().unwrap(), "0b7a5c1e");
        assert!((root.uptime_secs().unwrap() - 1234.5).abs() < 1e-9);
        let mut pids = root.pids().unwrap();
        pids.sort_unstable();
        assert_eq!(pids, [100, 101]);
        // Rewriting a process replaces it.
        proc.process(100).fds(1).write();
        assert_eq!(root.process(100).fd_count().unwrap(), 1);
        let path = proc.path().to_path_buf();
        drop(proc);
        assert!(!path.exists());
    }
}
