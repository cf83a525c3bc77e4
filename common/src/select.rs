//! Process selection (docs/contract.md §7): `--pid`, `--pidfile`, `--name`, `--cmdline`, `--user`,
//! `--unit`, `--ppid`, combined with AND.
//!
//! Only processes are matched, never threads, never the plugin itself nor the shell that
//! runs it. A process that vanishes while being read is skipped. "Not running" (no match,
//! a missing, empty or stale pidfile, a dead `--pid`) is a CRITICAL result with the reason.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::accounts::{passwd_path, read_passwd};
use crate::error::CheckError;
use crate::proc::{argv0_name, full_name, ProcRoot, Process};
use crate::report::Report;
use crate::status::Status;
use crate::systemd::unit_name;

/// The selector options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selector {
    /// Select the process with this PID
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,

    /// Select the process whose PID is in FILE (missing, empty or stale file: CRITICAL)
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Select processes by full executable name (basename of /proc/PID/exe or argv[0], not the 15-character comm)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Select processes whose command line (arguments joined by spaces) matches REGEX
    #[arg(long, value_name = "REGEX")]
    pub cmdline: Option<Regex>,

    /// Select processes running as USER (name or uid; effective uid)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Select processes in the cgroup of this systemd unit (".service" is implied)
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,

    /// Select processes whose parent has this PID
    #[arg(long, value_name = "PID")]
    pub ppid: Option<i32>,
}

/// A selected process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its PID.
    pub pid: i32,
    /// Its full executable name.
    pub name: String,
    /// Start time in clock ticks after boot (with the PID, the identity of an instance).
    pub starttime: u64,
    /// Its perfdata label prefix: stable across restarts, never the PID.
    pub label: String,
}

impl Selected {
    /// `name[pid]`, as shown in output.
    pub fn display(&self) -> String {
        format!("{}[{}]", self.name, self.pid)
    }
}

impl Selector {
    /// Whether no selector was given.
    pub fn is_empty(&self) -> bool {
        self.pid.is_none()
            && self.pidfile.is_none()
            && self.name.is_none()
            && self.cmdline.is_none()
            && self.user.is_none()
            && self.unit.is_none()
            && self.ppid.is_none()
    }

    /// The selectors as given, e.g. `--name node --user app`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                parts.push(format!("--{flag} {v}"));
            }
        };
        add("pid", self.pid.map(|p| p.to_string()));
        add(
            "pidfile",
            self.pidfile.as_ref().map(|p| p.display().to_string()),
        );
        add("name", self.name.clone());
        add(
            "cmdline",
            self.cmdline.as_ref().map(|r| r.as_str().to_string()),
        );
        add("user", self.user.clone());
        add("unit", self.unit.clone());
        add("ppid", self.ppid.map(|p| p.to_string()));
        parts.join(" ")
    }

    /// A label prefix that does not change when the process restarts: the name, the
    /// pidfile's stem or the unit, else `None` (then the process name is used).
    pub fn stable_label(&self) -> Option<String> {
        self.name
            .clone()
            .or_else(|| {
                self.pidfile
                    .as_ref()
                    .and_then(|p| p.file_stem())
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .or_else(|| {
                self.unit
                    .as_ref()
                    .map(|u| u.trim_end_matches(".service").to_string())
            })
    }

    /// The processes selected, oldest first. "Not running" is added to `report` as CRITICAL
    /// (and nothing is returned); a process that cannot be read is added as UNKNOWN.
    pub fn resolve(
        &self,
        root: &ProcRoot,
        label: Option<&str>,
        report: &mut Report,
    ) -> Result<Vec<Selected>, CheckError> {
        // Without systemd no process is in a unit: say so, never "no process matches".
        if let Some(unit) = &self.unit {
            if !crate::systemd::is_running() {
                return Err(crate::systemd::not_running(&format!("--unit {unit}")));
            }
        }
        let candidates = match self.candidates(root)? {
            Ok(pids) => pids,
            Err(not_running) => {
                report.add(Status::Critical, format!("not running: {not_running}"));
                return Ok(Vec::new());
            }
        };
        let filter = Filter::new(self)?;
        let me = std::process::id() as i32;
        let my_shell = parent_shell(root, me);
        let mut found = Vec::new();
        for pid in candidates {
            if pid == me || Some(pid) == my_shell {
                continue;
            }
            match filter.matches(&root.process(pid)) {
                Ok(Some(selected)) => found.push(selected),
                Ok(None) => {}
                Err(e) if e.is_not_found() => {} // exited while we looked
                Err(e) => report.unknown(e),
            }
        }
        if found.is_empty() && report.findings().is_empty() {
            report.add(
                Status::Critical,
                format!("no process matches {}", self.describe()),
            );
        }
        found.sort_by_key(|s| (s.starttime, s.pid));
        let base = label.map(str::to_string).or_else(|| self.stable_label());
        let numbered = found.len() > 1;
        for (i, s) in found.iter_mut().enumerate() {
            let stem = base.clone().unwrap_or_else(|| s.name.clone());
            s.label = if numbered {
                format!("{stem}_{}", i + 1)
            } else {
                stem
            };
        }
        Ok(found)
    }

    /// The PIDs to look at, or why the service is not running.
    fn candidates(&self, root: &ProcRoot) -> Result<Result<Vec<i32>, String>, CheckError> {
        let mut pids: Option<Vec<i32>> = None;
        if let Some(pid) = self.pid {
            if !root.process(pid).exists() {
                return Ok(Err(format!("no process with pid {pid}")));
            }
            pids = Some(vec![thread_group_leader(root, pid)?]);
        }
        if let Some(file) = &self.pidfile {
            match pid_from_pidfile(root, file)? {
                Ok(pid) if pids.as_ref().is_none_or(|p| p.contains(&pid)) => pids = Some(vec![pid]),
                Ok(_) => pids = Some(Vec::new()),
                Err(why) => return Ok(Err(why)),
            }
        }
        match pids {
            Some(p) => Ok(Ok(p)),
            None => root.pids().map(Ok),
        }
    }
}

/// After checking the selected processes: one that exited while being checked is simply
/// skipped (a worker recycled mid-run is no problem), but if all of them did, the service
/// is not running.
pub fn report_vanished(report: &mut Report, selector: &Selector, selected: usize, vanished: usize) {
    if selected > 0 && vanished == selected {
        report.add(
            Status::Critical,
            format!(
                "not running: every process matching {} exited while being checked",
                selector.describe()
            ),
        );
    }
}

/// For a thread id, the process it belongs to.
fn thread_group_leader(root: &ProcRoot, pid: i32) -> Result<i32, CheckError> {
    match root.process(pid).status() {
        Ok(status) => Ok(status.tgid),
        Err(e) if e.is_not_found() => Ok(pid),
        Err(e) => Err(e),
    }
}

/// Longest pidfile content read: a pid and a newline, with room to spare.
const PIDFILE_MAX: u64 = 64;

/// The PID a pidfile names, or why that does not show a running service (missing, empty,
/// not a pid, or a pid that is not running).
///
/// Pid reuse is not guessed from the file's mtime: the start time it would be compared with
/// moves when the wall clock is stepped, which would make a healthy service "stale". Combine
/// `--pidfile` with `--name` to be sure the pid is still the service's.
pub fn pid_from_pidfile(root: &ProcRoot, file: &Path) -> Result<Result<i32, String>, CheckError> {
    let shown = file.display();
    let text = match read_small_file(file, PIDFILE_MAX) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Err(format!("pidfile {shown} does not exist")))
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Ok(Err(format!("pidfile {shown} is not a regular file")))
        }
        Err(e) => return Err(CheckError::io(file, e)),
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(Err(format!("pidfile {shown} is empty")));
    }
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        // Never the content: the file may be anything (a symlink to /etc/shadow).
        return Ok(Err(format!(
            "pidfile {shown} does not hold a pid (expected a positive number on line 1)"
        )));
    };
    match root.process(pid).stat() {
        Ok(_) => Ok(Ok(pid)),
        Err(e) if e.is_not_found() => Ok(Err(format!(
            "pidfile {shown} names pid {pid}, which is not running"
        ))),
        Err(e) => Err(e),
    }
}

/// Reads at most `max` bytes of a regular file, without blocking on a FIFO; content that is
/// not UTF-8 is decoded lossily. A file that is not regular is `InvalidInput`.
fn read_small_file(path: &Path, max: u64) -> io::Result<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The parent of the plugin, when it is a shell running the plugin's own command line
/// (`sh -c 'check_x --cmdline foo'` would otherwise match itself).
fn parent_shell(root: &ProcRoot, me: i32) -> Option<i32> {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let own = root.process(me).cmdline().ok()?.into_iter().next()?;
    let own = Path::new(&own).file_name()?.to_string_lossy().into_owned();
    let parent_cmd = root.process(parent).cmdline().ok()?.join(" ");
    parent_cmd.contains(&own).then_some(parent)
}

/// The selectors prepared for matching.
struct Filter<'a> {
    selector: &'a Selector,
    uid: Option<u32>,
    unit: Option<String>,
}

impl<'a> Filter<'a> {
    fn new(selector: &'a Selector) -> Result<Filter<'a>, CheckError> {
        let uid = selector.user.as_deref().map(resolve_user).transpose()?;
        let unit = selector.unit.as_deref().map(unit_name);
        Ok(Filter {
            selector,
            uid,
            unit,
        })
    }

    /// The process if it passes every selector; cheap tests first.
    fn matches(&self, p: &Process) -> Result<Option<Selected>, CheckError> {
        let s = self.selector;
        if s.ppid.is_some() || self.uid.is_some() {
            let status = p.status()?;
            if s.ppid.is_some_and(|ppid| ppid != status.ppid)
                || self.uid.is_some_and(|uid| uid != status.euid)
            {
                return Ok(None);
            }
        }
        if let Some(unit) = &self.unit {
            let paths = p.cgroup_paths()?;
            if !paths.iter().any(|path| path.split('/').any(|c| c == unit)) {
                return Ok(None);
            }
        }
        // Each file is read once per candidate, and the name test comes before stat: a
        // --name scan over a busy host reads little more than an exe link per process.
        let exe = p.exe_name();
        let argv = if s.cmdline.is_some() || s.name.is_some() || exe.is_none() {
            p.cmdline()?
        } else {
            Vec::new()
        };
        if let Some(re) = &s.cmdline {
            if !re.is_match(&argv.join(" ")) {
                return Ok(None);
            }
        }
        if let Some(wanted) = &s.name {
            if exe.as_ref() != Some(wanted) && argv0_name(&argv).as_ref() != Some(wanted) {
                return Ok(None);
            }
        }
        let stat = p.stat()?;
        let name = full_name(exe, &argv, || stat.comm.clone());
        Ok(Some(Selected {
            pid: p.pid(),
            name,
            starttime: stat.starttime,
            label: String::new(),
        }))
    }
}

/// A user name or numeric uid to a uid, via /etc/passwd (no NSS: the binaries are static).
pub fn resolve_user(user: &str) -> Result<u32, CheckError> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    read_passwd()?
        .into_iter()
        .find(|p| p.name == user)
        .map(|p| p.uid)
        .ok_or_else(|| {
            CheckError::Config(format!(
                "--user {user}: no such user in {}",
                passwd_path().display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        sel: Selector,
    }

    fn sel(args: &[&str]) -> Selector {
        Args::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .sel
    }

    #[test]
    fn each_flag_parses() {
        let s = sel(&[
            "--pid",
            "5",
            "--pidfile",
            "/run/a.pid",
            "--name",
            "node",
            "--cmdline",
            "srv.*js",
            "--user",
            "app",
            "--unit",
            "web",
            "--ppid",
            "1",
        ]);
        assert_eq!(s.describe(), "--pid 5 --pidfile /run/a.pid --name node --cmdline srv.*js --user app --unit web --ppid 1");
        assert!(!s.is_empty());
        assert!(sel(&[]).is_empty());
        assert!(Args::try_parse_from(["x", "--cmdline", "("]).is_err());
    }

    #[test]
    fn stable_labels_come_from_the_selector() {
        assert_eq!(
            sel(&["--name", "node"]).stable_label().as_deref(),
            Some("node")
        );
        assert_eq!(
            sel(&["--pidfile", "/run/app.pid"])
                .stable_label()
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            sel(&["--unit", "web.service"]).stable_label().as_deref(),
            Some("web")
        );
        assert_eq!(sel(&["--pid", "3"]).stable_label(), None);
    }

    #[test]
    fn users_resolve() {
        assert_eq!(resolve_user("root").unwrap(), 0);
        assert_eq!(resolve_user("1234").unwrap(), 1234);
        assert!(resolve_user("no-such-user-here")
            .unwrap_err()
            .to_string()
            .contains("no such user"));
    }

    #[test]
    fn selects_this_test_process_by_pid_and_not_itself_by_scan() {
        let root = ProcRoot::new("/proc");
        let me = std::process::id() as i32;
        let mut report = Report::default();
        let found = sel(&["--pid", &me.to_string()])
            .resolve(&root, None, &mut report)
            .unwrap();
        // An explicit --pid of ourselves is excluded too: the plugin never checks itself.
        assert!(found.is_empty());
        assert_eq!(report.status(), Status::Critical);

        let mut report = Report::default();
        sel(&["--pid", "999999999"])
            .resolve(&root, None, &mut report)
            .unwrap();
        assert_eq!(
            report.findings()[0].text,
            "not running: no process with pid 999999999"
        );
    }

    #[test]
    fn binary_or_fifo_pidfiles_are_critical_not_unknown() {
        let root = ProcRoot::new("/proc");
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("binary.pid");
        fs::write(&binary, [0u8, 0xff, 0xfe, b'x']).unwrap();
        let fifo = dir.path().join("fifo.pid");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, words) in [
            (
                binary,
                "does not hold a pid (expected a positive number on line 1)",
            ),
            (fifo, "is not a regular file"),
        ] {
            let why = pid_from_pidfile(&root, &path).unwrap().unwrap_err();
            assert!(why.contains(words), "{why}");
        }
    }

    #[test]
    fn pidfile_problems_are_critical_with_the_reason() {
        let root = ProcRoot::new("/proc");
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("missing.pid", None, "does not exist"),
            ("empty.pid", Some(""), "is empty"),
            // Never the content: a pidfile may be a link to /etc/shadow.
            (
                "junk.pid",
                Some("root:*:20228:0:99999:7:::\n"),
                "junk.pid does not hold a pid (expected a positive number on line 1)",
            ),
            (
                "dead.pid",
                Some("999999999\n"),
                "names pid 999999999, which is not running",
            ),
        ];
        for (file, content, words) in cases {
            let path = dir.path().join(file);
            if let Some(c) = content {
                fs::write(&path, c).unwrap();
            }
            let mut report = Report::default();
            let s = Selector {
                pidfile: Some(path),
                ..Default::default()
            };
            assert!(s.resolve(&root, None, &mut report).unwrap().is_empty());
            assert_eq!(report.status(), Status::Critical);
            assert!(
                report.findings()[0].text.contains(words),
                "{file}: {}",
                report.findings()[0].text
            );
            assert!(!report.findings()[0].text.contains("root:"), "echoed");
        }
    }
}
