//! Process selection (docs/contract.md §7): `--pid`, `--pidfile`, `--name`, `--cmdline`,
//! `--user`, `--unit`, `--ppid`, `--container`, combined with AND.
//!
//! Only processes are matched, never threads, kernel threads, the plugin itself nor the
//! shell that runs it. A process that vanishes while being read is skipped. "Not running"
//! (no match, a missing, empty or stale pidfile, a dead `--pid`, a zombie) is a CRITICAL
//! result with the reason. Every fact used comes from a /proc file any user can read, so
//! root and the `nagios` user select the same processes under the same names and labels.
//!
//! Perfdata labels: the stem is `--label`, else the selector's (the container's name or short
//! id, the `--name` pattern without wildcards, the pidfile's stem, the unit), numbered
//! `_1`, `_2`, ... by start time when several processes match. Without a stem, each process
//! name is its own stem, numbered within that name only, so a process appearing under
//! another name never renumbers the rest (`--user www-data`: `php-fpm8.2_1`..`_4`,
//! `nginx_1`, `nginx_2`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

use crate::accounts::{passwd_path, read_passwd};
use crate::error::CheckError;
use crate::files::{max, read_regular, Follow};
use crate::proc::container::{Container, MIN_ID_PREFIX};
use crate::proc::{who, Glob, Identity, ProcRoot, Process, StatLine};
use crate::report::Report;
use crate::status::Status;
use crate::systemd::unit_name;

/// The selector options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selector {
    /// Select the process with this PID
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,

    /// Select the process whose PID is in FILE (missing, empty or stale file: CRITICAL; a symlink is followed only when root owns it). With --container, the PID as the container sees it
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Select processes by name, a glob (php-fpm*): the executable's name, its comm, the first word of a retitled command line (nginx: worker process), or an interpreter's script (supervisord) or the interpreter
    #[arg(long, value_name = "NAME", value_parser = check_glob)]
    pub name: Option<String>,

    /// Select processes whose command line (arguments joined by spaces) matches REGEX
    #[arg(long, value_name = "REGEX")]
    pub cmdline: Option<Regex>,

    /// Select processes running as USER (name or uid; effective uid)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Select processes in the cgroup of this systemd unit (".service" is implied); units of user managers count only as user@UID.service/UNIT
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,

    /// Select processes whose parent has this PID
    #[arg(long, value_name = "PID")]
    pub ppid: Option<i32>,

    /// Select the processes of a container (Docker, Podman, containerd/Kubernetes, CRI-O, LXC, systemd-nspawn) by name, id or an id prefix of 12+ hex digits, from their cgroup
    #[arg(long, value_name = "NAME_OR_ID")]
    pub container: Option<String>,
}

fn check_glob(text: &str) -> Result<String, String> {
    Glob::new(text).map(|_| text.to_string())
}

/// A selected process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its PID (as the plugin sees it: on the host).
    pub pid: i32,
    /// What it is called ([`Identity::name`]).
    pub name: String,
    /// Start time in clock ticks after boot (with the PID, the identity of an instance).
    pub starttime: u64,
    /// Its perfdata label prefix: stable across restarts, never the PID.
    pub label: String,
    /// Its PID inside its container's PID namespace, when selected by `--container` and
    /// that differs from `pid`.
    pub ns_pid: Option<i32>,
}

impl Selected {
    /// `name[pid]` as shown in output, with the in-container PID when there is one:
    /// `nginx[4312, pid 1 in container]`.
    #[must_use]
    pub fn display(&self) -> String {
        match self.ns_pid {
            Some(ns) => format!("{}[{}, pid {ns} in container]", self.name, self.pid),
            None => who(&self.name, self.pid),
        }
    }
}

impl Selector {
    /// Whether no selector was given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pid.is_none()
            && self.pidfile.is_none()
            && self.name.is_none()
            && self.cmdline.is_none()
            && self.user.is_none()
            && self.unit.is_none()
            && self.ppid.is_none()
            && self.container.is_none()
    }

    /// The selectors as given, e.g. `--name node --user app`; a pidfile is named by its
    /// absolute path, so `run/app.pid` and `/srv/run/app.pid` describe (and key state) alike.
    #[must_use]
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
            self.pidfile
                .as_ref()
                .map(|p| canonical_pidfile(p).display().to_string()),
        );
        add("name", self.name.clone());
        add(
            "cmdline",
            self.cmdline.as_ref().map(|r| r.as_str().to_string()),
        );
        add("user", self.user.clone());
        add("unit", self.unit.clone());
        add("ppid", self.ppid.map(|p| p.to_string()));
        add("container", self.container.clone());
        parts.join(" ")
    }

    /// A label prefix that does not change when the process restarts: the container's name
    /// or short id, the name (without wildcards), the pidfile's stem or the unit, else
    /// `None` (then each process's name is used).
    #[must_use]
    pub fn stable_label(&self) -> Option<String> {
        self.container
            .as_ref()
            .map(|c| short_container(c))
            .or_else(|| {
                self.name
                    .as_deref()
                    .and_then(|n| Glob::new(n).ok())
                    .map(|g| g.stem())
            })
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
    ///
    /// # Errors
    /// A [`CheckError`] (UNKNOWN) when the selection cannot be found out: an unreadable file,
    /// an unknown user, an ambiguous container.
    pub fn resolve(
        &self,
        root: &ProcRoot,
        label: Option<&str>,
        report: &mut Report,
    ) -> Result<Vec<Selected>, CheckError> {
        self.resolve_in(root, &mut Scan::default(), label, report)
    }

    /// [`resolve`](Selector::resolve) for one of several selectors of a run: a selector that
    /// looks through every process takes them from `scan`, which lists `root` once for all.
    ///
    /// # Errors
    /// As [`resolve`](Selector::resolve).
    pub fn resolve_in(
        &self,
        root: &ProcRoot,
        scan: &mut Scan,
        label: Option<&str>,
        report: &mut Report,
    ) -> Result<Vec<Selected>, CheckError> {
        // Without systemd no process is in a unit: say so, never "no process matches".
        // (A /proc tree other than this host's, e.g. a fixture, carries its own cgroups.)
        if let Some(unit) = &self.unit {
            if root.path() == Path::new("/proc") && !crate::systemd::is_running() {
                return Err(crate::systemd::not_running(&format!("--unit {unit}")));
            }
        }
        let candidates = match self.candidates(root, scan)? {
            Ok(c) => c,
            Err(not_running) => {
                report.add(Status::Critical, format!("not running: {not_running}"));
                return Ok(Vec::new());
            }
        };
        let mut filter = Filter::new(self, candidates.ns_pid)?;
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let my_shell = parent_shell(root, me);
        let mut found = Vec::new();
        let mut denied: Vec<CheckError> = Vec::new();
        for (pid, stat) in candidates.pids {
            if pid == me || Some(pid) == my_shell {
                continue;
            }
            match filter.matches(&root.process(pid), stat) {
                Ok(Some(selected)) => found.push(selected),
                Ok(None) => {}
                Err(e) if e.is_not_found() => {} // exited while we looked
                Err(e) if e.is_permission_denied() => denied.push(e),
                Err(e) => report.unknown(e),
            }
        }
        report_denied(root, &denied, report);
        filter.check_unique_container()?;
        if found.is_empty() && report.findings().is_empty() {
            self.report_none(root, &filter, report);
        }
        found.sort_by_key(|s| (s.starttime, s.pid));
        let stem = label.map(str::to_string).or_else(|| self.stable_label());
        number_labels(&mut found, stem.as_deref());
        Ok(found)
    }

    /// Why nothing was selected: zombies only, a pidfile's PID not in the container, or no
    /// match at all; UNKNOWN when /proc hides other users' processes from this user.
    fn report_none(&self, root: &ProcRoot, filter: &Filter, report: &mut Report) {
        let described = self.describe();
        if let Some((pid, ppid)) = filter.zombies.first() {
            let what = if self.pid.is_some() || self.pidfile.is_some() {
                format!("pid {pid} is a zombie")
            } else {
                format!("every process matching {described} is a zombie (pid {pid})")
            };
            report.add(
                Status::Critical,
                format!(
                    "not running: {what}: it exited and its parent (pid {ppid}) has not reaped it"
                ),
            );
        } else if let (Some(ns), Some(c)) = (filter.ns_pid, &self.container) {
            let file = self
                .pidfile
                .as_deref()
                .map(canonical_pidfile)
                .unwrap_or_default();
            report.add(
                Status::Critical,
                format!(
                    "not running: pidfile {} names pid {ns}, which is not running in container {c}",
                    file.display()
                ),
            );
        } else if let Some(hidden) = hidden(root, &format!("no process matches {described}")) {
            report.unknown(hidden);
        } else {
            let hint = match &self.container {
                Some(c)
                    if c.len() < MIN_ID_PREFIX && c.chars().all(|ch| ch.is_ascii_hexdigit()) =>
                {
                    format!(" (an id prefix needs at least {MIN_ID_PREFIX} hex digits)")
                }
                _ => String::new(),
            };
            report.add(
                Status::Critical,
                format!("no process matches {described}{hint}"),
            );
        }
    }

    /// The PIDs to look at, or why the service is not running.
    fn candidates(
        &self,
        root: &ProcRoot,
        scan: &mut Scan,
    ) -> Result<Result<Candidates, String>, CheckError> {
        let mut pids: Option<Vec<i32>> = None;
        if let Some(pid) = self.pid {
            if !root.process(pid).exists() {
                let why = format!("no process with pid {pid}");
                return match hidden(root, &why) {
                    Some(e) => Err(e),
                    None => Ok(Err(why)),
                };
            }
            pids = Some(vec![thread_group_leader(root, pid)?]);
        }
        let mut ns_pid = None;
        if let Some(file) = &self.pidfile {
            // With --container the file holds the PID inside the container: the processes
            // of the container are scanned for it (NSpid) instead.
            let from_file = if self.container.is_some() {
                read_pidfile(file)?.map(|pid| {
                    ns_pid = Some(pid);
                    None
                })
            } else {
                pid_from_pidfile(root, file)?.map(Some)
            };
            match from_file {
                Ok(None) => {}
                Ok(Some(pid)) if pids.as_ref().is_none_or(|p| p.contains(&pid)) => {
                    pids = Some(vec![pid]);
                }
                Ok(Some(_)) => pids = Some(Vec::new()),
                Err(why) => return Ok(Err(why)),
            }
        }
        let pids = match pids {
            Some(p) => p.into_iter().map(|pid| (pid, None)).collect(),
            None => scan.of(root)?.to_vec(),
        };
        Ok(Ok(Candidates { pids, ns_pid }))
    }
}

/// The processes of a /proc tree with their `stat` ([`ProcRoot::scan`]), listed once for
/// the selectors of one run ([`Selector::resolve_in`]), when the first of them needs it.
#[derive(Debug, Default)]
pub struct Scan(Option<Vec<(i32, Option<StatLine>)>>);

impl Scan {
    /// The listing of `root`, read on the first call (always pass the same root).
    fn of(&mut self, root: &ProcRoot) -> Result<&[(i32, Option<StatLine>)], CheckError> {
        if self.0.is_none() {
            self.0 = Some(root.scan()?);
        }
        Ok(self.0.as_deref().unwrap_or_default())
    }
}

/// What [`Selector::candidates`] found.
struct Candidates {
    /// PIDs, with `stat` where the scan already read it.
    pids: Vec<(i32, Option<StatLine>)>,
    /// The PID a pidfile gave inside `--container`'s PID namespace.
    ns_pid: Option<i32>,
}

/// Sets each process's label: `stem`, or `stem_1`.. by start time when several share it;
/// without a stem, per process name (see the module documentation).
fn number_labels(found: &mut [Selected], stem: Option<&str>) {
    let stem_of = |s: &Selected| stem.map_or_else(|| s.name.clone(), str::to_string);
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for s in found.iter() {
        *groups.entry(stem_of(s)).or_default() += 1;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in found.iter_mut() {
        let stem = stem_of(s);
        let n = seen.entry(stem.clone()).or_default();
        *n += 1;
        s.label = if groups[&stem] > 1 {
            format!("{stem}_{n}")
        } else {
            stem
        };
    }
}

/// A `--container` value as a label: an id prefix cut to 12 digits, a name as is.
fn short_container(c: &str) -> String {
    if c.len() > 12 && c.chars().all(|ch| ch.is_ascii_hexdigit()) {
        c[..12].to_ascii_lowercase()
    } else {
        c.to_string()
    }
}

/// Processes this user may not read (`hidepid=noaccess`, or a hardened kernel): one UNKNOWN
/// finding for all of them, naming the first and the fix, not one per process.
fn report_denied(root: &ProcRoot, denied: &[CheckError], report: &mut Report) {
    let Some(first) = denied.first() else {
        return;
    };
    if denied.len() == 1 {
        report.unknown(first);
        return;
    }
    let why = if root.hides_other_users() {
        format!(
            "{} is mounted with hidepid, which hides other users' processes; run the check via sudo, or add this user to the group named by the mount's gid= option",
            root.path().display()
        )
    } else {
        format!("first: {first}")
    };
    report.unknown(format!(
        "{} processes could not be read as this user, so whether they match is not known; {why}",
        denied.len()
    ));
}

/// When `root` hides other users' processes from this (non-root) user, what `found` means
/// is not known: the error saying so and how to fix it.
fn hidden(root: &ProcRoot, found: &str) -> Option<CheckError> {
    (!is_root() && root.hides_other_users()).then(|| {
        CheckError::Other(format!(
            "{found} among the processes this user can see: {} is mounted with hidepid, which hides other users' processes; run the check via sudo, or add this user to the group named by the mount's gid= option",
            root.path().display()
        ))
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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

/// A pidfile's path with its directory made absolute and canonical; the file itself is
/// not resolved (a symlinked pidfile keeps its own name).
#[must_use]
pub fn canonical_pidfile(file: &Path) -> PathBuf {
    let Some(name) = file.file_name() else {
        return file.to_path_buf();
    };
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = fs::canonicalize(&dir).unwrap_or_else(|_| lexically_absolute(&dir));
    dir.join(name)
}

/// `dir` made absolute against the working directory, `.` and `..` folded without
/// touching the filesystem (for a directory that does not exist).
fn lexically_absolute(dir: &Path) -> PathBuf {
    let joined = std::env::current_dir().unwrap_or_default().join(dir);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The PID a pidfile names, or why that does not show a running service (missing, empty,
/// not a pid, or a pid that is not running).
///
/// Pid reuse is not guessed from the file's mtime: the start time it would be compared with
/// moves when the wall clock is stepped, which would make a healthy service "stale". Combine
/// `--pidfile` with `--name` to be sure the pid is still the service's.
///
/// # Errors
/// A [`CheckError`] (UNKNOWN) when the pidfile or the process cannot be read, or the
/// pidfile is a symlink root does not own.
pub fn pid_from_pidfile(root: &ProcRoot, file: &Path) -> Result<Result<i32, String>, CheckError> {
    let pid = match read_pidfile(file)? {
        Ok(pid) => pid,
        Err(why) => return Ok(Err(why)),
    };
    match root.process(pid).stat_line() {
        Ok(_) => Ok(Ok(pid)),
        Err(e) if e.is_not_found() => {
            let why = format!(
                "pidfile {} names pid {pid}, which is not running",
                file.display()
            );
            match hidden(root, &why) {
                Some(e) => Err(e),
                None => Ok(Err(why)),
            }
        }
        Err(e) => Err(e),
    }
}

/// The PID written in a pidfile, or why there is none. The content is never shown (the
/// file may be anything a symlink points at); a symlink owned by anyone but root is an
/// error (UNKNOWN), as systemd refuses it for `PIDFile=`.
///
/// # Errors
/// A [`CheckError`] (UNKNOWN) when the pidfile cannot be read, or is a symlink root does
/// not own.
pub fn read_pidfile(file: &Path) -> Result<Result<i32, String>, CheckError> {
    let shown = file.display();
    let text = match read_regular(file, max::PIDFILE, Follow::RootOwned) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(Err(format!("pidfile {shown} does not exist"))),
        // A link root does not own is refused: the plugin could not find out (UNKNOWN).
        Err(e)
            if fs::symlink_metadata(file)
                .is_ok_and(|m| m.file_type().is_symlink() && m.uid() != 0) =>
        {
            return Err(e)
        }
        // A FIFO, device or oversized file where the pidfile should be: no running service
        // wrote it.
        Err(CheckError::Io { source, .. }) if source.kind() == io::ErrorKind::InvalidInput => {
            return Ok(Err(format!("pidfile {shown}: {source}")))
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&text);
    if text.trim().is_empty() {
        return Ok(Err(format!("pidfile {shown} is empty")));
    }
    match text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    {
        Some(pid) => Ok(Ok(pid)),
        None => Ok(Err(format!(
            "pidfile {shown} does not hold a pid (expected a positive decimal number on its first line)"
        ))),
    }
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

/// The selectors prepared for matching, and what matching saw.
struct Filter<'a> {
    selector: &'a Selector,
    uid: Option<u32>,
    unit: Option<Vec<String>>,
    name: Option<Glob>,
    /// `--container` with a pidfile: the PID wanted inside the container.
    ns_pid: Option<i32>,
    /// The containers `--container` matched (more than one: ambiguous).
    containers: BTreeSet<Container>,
    /// Matching processes that have exited (pid, parent pid).
    zombies: Vec<(i32, i32)>,
}

/// One cheap test after another: the decision for a candidate.
enum Step {
    Rejected,
    Exited(i32, i32),
    Selected(Selected),
}

impl<'a> Filter<'a> {
    fn new(selector: &'a Selector, ns_pid: Option<i32>) -> Result<Filter<'a>, CheckError> {
        let uid = selector.user.as_deref().map(resolve_user).transpose()?;
        let unit = selector
            .unit
            .as_deref()
            .map(|u| u.split('/').map(unit_name).collect());
        let name = selector
            .name
            .as_deref()
            .map(|n| Glob::new(n).map_err(|e| CheckError::Config(format!("--name {e}"))))
            .transpose()?;
        Ok(Filter {
            selector,
            uid,
            unit,
            name,
            ns_pid,
            containers: BTreeSet::new(),
            zombies: Vec::new(),
        })
    }

    /// The process if it passes every selector.
    fn matches(
        &mut self,
        p: &Process,
        stat: Option<StatLine>,
    ) -> Result<Option<Selected>, CheckError> {
        match self.step(p, stat)? {
            Step::Rejected => Ok(None),
            Step::Exited(zombie, parent) => {
                self.zombies.push((zombie, parent));
                Ok(None)
            }
            Step::Selected(s) => Ok(Some(s)),
        }
    }

    fn step(&mut self, p: &Process, stat: Option<StatLine>) -> Result<Step, CheckError> {
        let s = self.selector;
        let stat = match stat {
            Some(s) => s,
            None => p.stat_line()?,
        };
        // A kernel thread met by --pid: never a service.
        if stat.is_kernel_thread() {
            return Ok(Step::Rejected);
        }
        if s.ppid.is_some_and(|ppid| ppid != stat.ppid) {
            return Ok(Step::Rejected);
        }
        if let Some(uid) = self.uid {
            if p.status()?.euid != uid {
                return Ok(Step::Rejected);
            }
        }
        if let Some(unit) = &self.unit {
            if !p.cgroup_paths()?.iter().any(|path| in_unit(path, unit)) {
                return Ok(Step::Rejected);
            }
        }
        let mut ns_pid = None;
        if let Some(wanted) = &s.container {
            let Some(c) = p.container()?.filter(|c| c.is_named(wanted)) else {
                return Ok(Step::Rejected);
            };
            let inner = p.ns_pids()?.last().copied().unwrap_or(p.pid());
            if self.ns_pid.is_some_and(|want| want != inner) {
                return Ok(Step::Rejected);
            }
            self.containers.insert(c);
            ns_pid = (inner != p.pid()).then_some(inner);
        }
        let (exited, ppid, starttime) = (stat.has_exited(), stat.ppid, stat.starttime);
        let id = Identity {
            comm: stat.comm,
            argv: p.cmdline()?,
        };
        if let Some(re) = &s.cmdline {
            if !re.is_match(&id.argv.join(" ")) {
                return Ok(Step::Rejected);
            }
        }
        if self.name.as_ref().is_some_and(|g| !id.matches(g)) {
            return Ok(Step::Rejected);
        }
        if exited {
            return Ok(Step::Exited(p.pid(), ppid));
        }
        Ok(Step::Selected(Selected {
            pid: p.pid(),
            name: id.name(),
            starttime,
            label: String::new(),
            ns_pid,
        }))
    }

    /// `--container` given as an id prefix must name one container.
    fn check_unique_container(&self) -> Result<(), CheckError> {
        if self.containers.len() < 2 {
            return Ok(());
        }
        let names: Vec<String> = self
            .containers
            .iter()
            .map(|c| format!("{} {}", c.runtime, c.key))
            .collect();
        Err(CheckError::Config(format!(
            "--container {} names {} containers ({}); give more of the id",
            self.selector.container.as_deref().unwrap_or_default(),
            names.len(),
            names.join(", ")
        )))
    }
}

/// Whether a cgroup path lies in `unit` (its components, e.g. `["nginx.service"]` or
/// `["user@1000.service", "nginx.service"]`, found in that order). A unit of a user's own
/// service manager (below `user@UID.service`) counts only when the unit is given with that
/// prefix: a user's `systemd-run --user --unit=nginx` is not the system's nginx.
fn in_unit(path: &str, unit: &[String]) -> bool {
    let user_manager = |c: &str| c.starts_with("user@") && c.ends_with(".service");
    let mut wanted = unit.iter().peekable();
    for c in path.split('/').filter(|p| !p.is_empty()) {
        match wanted.peek() {
            Some(w) if *w == c => {
                wanted.next();
            }
            // Inside a user manager that was not asked for: not the unit.
            Some(w) if user_manager(c) && !user_manager(w) => return false,
            Some(_) => {}
            None => break,
        }
    }
    wanted.peek().is_none()
}

/// A user name or numeric uid to a uid, via /etc/passwd (no NSS: the binaries are static).
///
/// # Errors
/// A [`CheckError`] (UNKNOWN) when /etc/passwd cannot be read or has no such user.
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
        let me = i32::try_from(std::process::id()).unwrap();
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
            (binary, "does not hold a pid"),
            (fifo, "it is a FIFO, not a regular file"),
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
                "does not hold a pid (expected a positive decimal number on its first line)",
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

    #[test]
    fn relative_and_absolute_pidfiles_describe_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        fs::create_dir(&dir).unwrap();
        let abs = sel(&["--pidfile", dir.join("app.pid").to_str().unwrap()]);
        let dotted = dir.join("..").join("run").join(".").join("app.pid");
        let rel = sel(&["--pidfile", dotted.to_str().unwrap()]);
        assert_eq!(abs.describe(), rel.describe());
        assert_eq!(abs.stable_label(), rel.stable_label());
        // The link itself is named, not where it points.
        let link = dir.join("link.pid");
        std::os::unix::fs::symlink(dir.join("app.pid"), &link).unwrap();
        assert!(canonical_pidfile(&link).ends_with("run/link.pid"));
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            canonical_pidfile(Path::new("x.pid")),
            fs::canonicalize(&here).unwrap().join("x.pid")
        );
    }

    #[test]
    fn a_pidfile_symlink_is_followed_only_when_root_owns_it() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.pid");
        fs::write(&real, format!("{}\n", std::process::id())).unwrap();
        let link = tmp.path().join("link.pid");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // the links below need root to own (or give away) them
        }
        assert_eq!(
            read_pidfile(&link).unwrap(),
            Ok(i32::try_from(std::process::id()).unwrap())
        );
        let c = std::ffi::CString::new(link.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid path.
        assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
        let e = read_pidfile(&link).unwrap_err().to_string();
        assert!(
            e.contains("symbolic link owned by uid 65534, not root"),
            "{e}"
        );
        // Its content is never shown, whatever the file holds.
        fs::write(&real, "root:*:20228:0:99999:7:::\n").unwrap();
        let why = read_pidfile(&real).unwrap().unwrap_err();
        assert!(!why.contains("root:"), "{why}");
    }
}
