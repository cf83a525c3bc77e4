//! Where a process's limit came from: the one provenance used by every plugin.
//!
//! A child starts with its parent's limits: fork and exec keep them, and only setrlimit or
//! prlimit changes them. So the parent chain usually says who gave a process its value: walking the `PPid`
//! links towards PID 1, the ancestors that hold the same value are where it came from. Soft
//! and hard are traced separately, because they often come from different places: Node.js
//! (and Go, and Java) raise their soft `nofile` to the hard limit at start, so such a process
//! shows `4096:4096` under a parent with `1024:4096` — the hard limit is inherited and binds,
//! the soft one is the process's own doing.
//!
//! The chain lies when the process that started the service has exited: a start program
//! that backgrounds the service (Monit's `check process ... with pidfile` expects exactly
//! that), a daemon that forks itself. The service is then a child of PID 1 or a subreaper.
//! What it still carries says who started it: its initial environment (`/proc/PID/environ`:
//! Monit sets `MONIT_SERVICE`, supervisord `SUPERVISOR_PROCESS_NAME`, PM2 `pm_id`, systemd
//! `INVOCATION_ID`, a login `SSH_CONNECTION`/`SUDO_USER`) and its cgroup (a systemd unit, a
//! container). From those marks the live supervisor is looked up (for Monit: the running
//! monit whose control file names the service or its pidfile) and its limits compared.
//! What cannot be read (another user's environ) is said, never guessed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::proc::container::Runtime;
use crate::proc::limits::{cmp_limit, show};
use crate::proc::{Container, Identity, ProcRoot, Process, Rlimit, Stat};

/// How far up the chain is walked (a guard against a corrupt or looping tree).
const MAX_DEPTH: usize = 64;
/// How many control files an `include` may add.
const MAX_INCLUDES: usize = 64;

/// A process in the parent chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// Its PID.
    pub pid: i32,
    /// The name shown for it.
    pub name: String,
    /// Its command line, arguments joined by spaces.
    pub cmdline: String,
    /// Its value of the traced item.
    pub limit: Rlimit,
}

impl Ancestor {
    /// `monit[812]`.
    #[must_use]
    pub fn who(&self) -> String {
        crate::proc::who(&self.name, self.pid)
    }
}

/// A process as a trace reads it: `stat`, command line and limits, each once.
struct Seen {
    pid: i32,
    stat: Result<Stat, String>,
    argv: Option<Vec<String>>,
    /// Its value of the item (`Ok(None)`: it has no such item).
    ancestor: Result<Option<Ancestor>, String>,
}

impl Seen {
    fn read(p: &Process, item: &str) -> Seen {
        let stat = p.stat().map_err(|e| e.to_string());
        let argv = p.cmdline().ok();
        let mut seen = Seen {
            pid: p.pid(),
            stat,
            argv,
            ancestor: Ok(None),
        };
        seen.ancestor = p.limits().map_err(|e| e.to_string()).map(|limits| {
            limits.get(item).map(|limit| Ancestor {
                pid: seen.pid,
                name: seen.name(),
                cmdline: seen.argv.as_ref().map(|a| a.join(" ")).unwrap_or_default(),
                limit,
            })
        });
        seen
    }

    /// `comm` and the argument vector, when both were read.
    fn identity(&self) -> Option<Identity> {
        Some(Identity {
            comm: self.stat.as_ref().ok()?.comm.clone(),
            argv: self.argv.clone()?,
        })
    }

    /// What it is called, `?` if unreadable (as [`Process::name`]).
    fn name(&self) -> String {
        self.identity()
            .map_or_else(|| "?".to_string(), |i| i.name())
    }

    fn ppid(&self) -> Result<i32, String> {
        self.stat.as_ref().map(|s| s.ppid).map_err(Clone::clone)
    }
}

/// Who starts services, as far as limits are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monit.
    Monit,
    /// systemd, PID 1 or a user manager.
    Systemd,
    /// supervisord.
    Supervisord,
    /// runit's `runsv`.
    Runit,
    /// s6's `s6-supervise`.
    S6,
    /// PM2's God daemon.
    Pm2,
    /// cron.
    Cron,
    /// A login session: sshd, login, su, sudo.
    Login,
    /// A shell or script.
    Shell,
    /// A container runtime's shim or init (the runtime, when known).
    Container(Option<Runtime>),
}

impl Kind {
    /// Recognises a process by its name (or `comm`) and command line.
    #[must_use]
    pub fn recognise(name: &str, cmdline: &str) -> Option<Kind> {
        let argv0 = cmdline.split(' ').next().unwrap_or_default();
        let base = argv0
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_start_matches('-');
        let is = |n: &str| name == n || base == n;
        let starts = |n: &str| name.starts_with(n) || base.starts_with(n);
        Some(if is("monit") {
            Kind::Monit
        } else if is("systemd") || starts("systemd") && cmdline.contains("--user") {
            Kind::Systemd
        } else if is("supervisord") || cmdline.contains("bin/supervisord") {
            Kind::Supervisord
        } else if is("runsv") || is("runsvdir") {
            Kind::Runit
        } else if is("s6-supervise") || is("s6-svscan") {
            Kind::S6
        } else if cmdline.starts_with("PM2 ") || cmdline.contains("God Daemon") {
            Kind::Pm2
        } else if starts("containerd-shim") || is("docker-init") {
            Kind::Container(Some(Runtime::Docker))
        } else if is("conmon") {
            Kind::Container(Some(Runtime::Podman))
        } else if is("lxc-start") || starts("[lxc monitor]") {
            Kind::Container(Some(Runtime::Lxc))
        } else if is("tini") || is("dumb-init") || is("catatonit") {
            Kind::Container(None)
        } else if is("cron") || is("crond") || is("anacron") {
            Kind::Cron
        } else if is("sshd") || is("login") || is("su") || is("sudo") || is("runuser") {
            Kind::Login
        } else if [
            "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "ash", "busybox",
        ]
        .iter()
        .any(|s| is(s))
        {
            Kind::Shell
        } else {
            return None;
        })
    }

    /// What it is called in output: `monit`, `supervisord`, `container (docker)`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Kind::Monit => "monit",
            Kind::Systemd => "systemd",
            Kind::Supervisord => "supervisord",
            Kind::Runit => "runit",
            Kind::S6 => "s6",
            Kind::Pm2 => "pm2",
            Kind::Cron => "cron",
            Kind::Login => "login session",
            Kind::Shell => "shell",
            Kind::Container(Some(Runtime::Docker)) => "docker",
            Kind::Container(Some(Runtime::Containerd)) => "containerd",
            Kind::Container(Some(Runtime::CriO)) => "cri-o",
            Kind::Container(Some(Runtime::Podman)) => "podman",
            Kind::Container(Some(Runtime::Lxc)) => "lxc",
            Kind::Container(Some(Runtime::Machine)) => "systemd-nspawn",
            Kind::Container(None) => "container",
        }
    }
}

/// What the process carries about who started it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// The supervisor-identifying variables of its initial environment (`NAME=value`).
    pub environ: Vec<(String, String)>,
    /// Why the environment could not be read, with what would reveal it.
    pub environ_error: Option<String>,
    /// The systemd unit its cgroup names.
    pub unit: Option<String>,
    /// The container its cgroup names.
    pub container: Option<Container>,
}

/// Environment variables that identify a starter.
const MARK_VARS: [&str; 14] = [
    "MONIT_SERVICE",
    "MONIT_EVENT",
    "SUPERVISOR_ENABLED",
    "SUPERVISOR_PROCESS_NAME",
    "SUPERVISOR_GROUP_NAME",
    "SUPERVISOR_SERVER_URL",
    "pm_id",
    "PM2_HOME",
    "name",
    "INVOCATION_ID",
    "SSH_CONNECTION",
    "SUDO_USER",
    "SUDO_COMMAND",
    "HOME",
];

impl Marks {
    /// Reads the environment and cgroup of `p`.
    #[must_use]
    pub fn read(p: &Process) -> Marks {
        let mut marks = Marks::default();
        match p.read("environ") {
            Ok(text) => marks.environ = parse_environ(&text),
            Err(e) if e.is_permission_denied() => {
                // SAFETY: geteuid has no preconditions.
                let euid = unsafe { libc::geteuid() };
                marks.environ_error = Some(format!(
                    "its environment ({}) is not readable by uid {euid}: run the check as root or as the service's user to see who started it",
                    p.path("environ").display()
                ));
            }
            Err(e) => marks.environ_error = Some(format!("its environment: {e}")),
        }
        let paths = p.cgroup_paths().unwrap_or_default();
        marks.container = paths
            .iter()
            .find_map(|c| crate::proc::container::in_cgroup_path(c));
        marks.unit = paths
            .iter()
            .find_map(|c| crate::proc::unit_in_cgroup_path(c));
        marks
    }

    /// `(its cgroup is app.service)`.
    fn cgroup_words(&self) -> String {
        match (&self.container, &self.unit) {
            (Some(c), _) => format!("(its cgroup is {} container {})", c.runtime, c.short()),
            (None, Some(u)) => format!("(its cgroup is {u})"),
            (None, None) => String::new(),
        }
    }

    /// The value of an identifying variable.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<&str> {
        self.environ
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The kind of starter the marks name, the service name it gives, and the marks shown.
    fn starter(&self) -> Option<(Kind, Option<String>, String)> {
        let shown = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| self.var(n).map(|v| format!("{n}={v}")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let own = |v: Option<&str>| v.map(str::to_string);
        if self.var("MONIT_SERVICE").is_some() {
            let s = shown(&["MONIT_SERVICE", "MONIT_EVENT"]);
            return Some((Kind::Monit, own(self.var("MONIT_SERVICE")), s));
        }
        if self.var("SUPERVISOR_ENABLED").is_some() {
            let s = shown(&["SUPERVISOR_ENABLED", "SUPERVISOR_PROCESS_NAME"]);
            return Some((
                Kind::Supervisord,
                own(self.var("SUPERVISOR_PROCESS_NAME")),
                s,
            ));
        }
        if self.var("pm_id").is_some() || self.var("PM2_HOME").is_some() {
            let s = shown(&["pm_id", "PM2_HOME"]);
            let service = own(self.var("name")).or_else(|| own(self.var("pm_id")));
            return Some((Kind::Pm2, service, s));
        }
        if let Some(c) = &self.container {
            let id = c.short().to_string();
            return Some((Kind::Container(Some(c.runtime)), Some(id), "cgroup".into()));
        }
        let service_unit = self
            .unit
            .clone()
            .filter(|u| u.ends_with(".service") && !u.starts_with("user@"));
        // A daemonized service stays in its supervisor's cgroup: a supervisor's own unit
        // names that supervisor, not systemd.
        if let Some(kind) = service_unit.as_deref().and_then(supervisor_unit) {
            return Some((kind, None, "cgroup".into()));
        }
        if self.var("INVOCATION_ID").is_some() || service_unit.is_some() {
            let s = if self.var("INVOCATION_ID").is_some() {
                "INVOCATION_ID, cgroup".to_string()
            } else {
                "cgroup".to_string()
            };
            return service_unit.map(|u| (Kind::Systemd, Some(u), s));
        }
        if self.var("SSH_CONNECTION").is_some() || self.var("SUDO_USER").is_some() {
            let s = shown(&["SSH_CONNECTION", "SUDO_USER"]);
            return Some((Kind::Login, None, s));
        }
        None
    }
}

/// The supervisor whose own systemd unit this is (`monit.service`, `supervisor.service`,
/// `pm2-root.service`, `cron.service`).
fn supervisor_unit(unit: &str) -> Option<Kind> {
    let stem = unit.strip_suffix(".service")?;
    Some(match stem {
        "monit" => Kind::Monit,
        "supervisor" | "supervisord" => Kind::Supervisord,
        "cron" | "crond" => Kind::Cron,
        _ if stem.starts_with("pm2-") => Kind::Pm2,
        _ => return None,
    })
}

/// The identifying variables of a NUL-separated environment block.
fn parse_environ(text: &str) -> Vec<(String, String)> {
    text.split('\0')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| MARK_VARS.contains(k))
        .map(|(k, v)| (k.to_string(), v.chars().take(200).collect()))
        .collect()
}

/// Who starts the service: the process (when found) and what it calls the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starter {
    /// What kind of starter.
    pub kind: Kind,
    /// The live process, when found (a login session or a systemd unit may have none).
    pub process: Option<Ancestor>,
    /// The service's name to that starter: Monit service, supervisord program, PM2 app,
    /// systemd unit, container.
    pub service: Option<String>,
    /// The starter's control file, when known (monitrc, supervisord.conf).
    pub config: Option<PathBuf>,
    /// The systemd unit the starter itself runs in.
    pub unit: Option<String>,
    /// Found among the process's ancestors (else from what the process carries).
    pub from_chain: bool,
    /// How it was identified from what the process carries, for the story (`its
    /// environment has MONIT_SERVICE=web; monit[812] runs with control file ...`).
    pub evidence: String,
}

impl Starter {
    /// `monit[812]`, or the kind when no process was found.
    pub fn who(&self) -> String {
        self.process
            .as_ref()
            .map_or_else(|| self.kind.label().to_string(), Ancestor::who)
    }
}

/// How the process's own value relates to the chain's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftOrigin {
    /// Inherited, like the hard limit (or from a different ancestor).
    Inherited,
    /// The hard limit is inherited and the process raised its soft limit up to it
    /// (soft == hard > the parent's soft), as Node.js, Go and Java do at start.
    RaisedToHard,
    /// Set by the process itself or its start command.
    SetHere,
}

/// Everything known about where one process's value of one item came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The process.
    pub pid: i32,
    /// Its display name and PID, `node[2100]`.
    pub who: String,
    /// Every name the process goes by (for daemons that set their own limits).
    pub names: Vec<String>,
    /// The item traced (`nofile`).
    pub item: String,
    /// The process's value.
    pub actual: Rlimit,
    /// The parents, nearest first, up to the first that differs in both soft and hard.
    pub chain: Vec<Ancestor>,
    /// The highest consecutive ancestor with the same hard value.
    pub hard_from: Option<Ancestor>,
    /// The highest consecutive ancestor with the same soft value.
    pub soft_from: Option<Ancestor>,
    /// How the soft value came about.
    pub soft: SoftOrigin,
    /// Why the chain does not show the starting parent, when it does not.
    pub orphaned: Option<String>,
    /// Who starts the service.
    pub starter: Option<Starter>,
    /// What the process carries.
    pub marks: Marks,
    /// What stopped the walk early.
    pub error: Option<String>,
}

/// Traces `item` of process `pid`. Unreadable parts are recorded, never fatal: the result
/// always says what is known.
pub fn trace(root: &ProcRoot, pid: i32, item: &str) -> Provenance {
    let p = root.process(pid);
    // Each process's files are read once per trace: the process's and its parent's serve
    // the name, the orphan check and the walk alike.
    let me = Seen::read(&p, item);
    let parent = me
        .stat
        .as_ref()
        .ok()
        .filter(|s| s.ppid > 0)
        .map(|s| Seen::read(&root.process(s.ppid), item));
    let actual = match &me.ancestor {
        Ok(Some(a)) => a.limit,
        _ => Rlimit {
            soft: None,
            hard: None,
        },
    };
    let mut t = Provenance {
        pid,
        who: crate::proc::who(&me.name(), pid),
        names: me.identity().map(|i| i.names()).unwrap_or_default(),
        item: item.to_string(),
        actual,
        chain: Vec::new(),
        hard_from: None,
        soft_from: None,
        soft: SoftOrigin::SetHere,
        orphaned: orphaned(root, pid, &me, parent.as_ref()),
        starter: None,
        marks: Marks::read(&p),
        error: None,
    };
    walk(root, &mut t, me.ppid(), parent);
    t.soft = soft_origin(&t);
    t.starter = if t.orphaned.is_some() || marks_outside_chain(&t) {
        starter_from_marks(root, &t)
    } else {
        starter_from_chain(root, &t)
    };
    t
}

/// Walks the parents while either half still matches, from the traced process's `ppid`
/// and its parent as already read.
fn walk(root: &ProcRoot, t: &mut Provenance, ppid: Result<i32, String>, parent: Option<Seen>) {
    let (mut soft_run, mut hard_run) = (true, true);
    let (mut ppid, mut parent) = (ppid, parent);
    for _ in 0..MAX_DEPTH {
        let pid = match ppid {
            Ok(pid) => pid,
            Err(e) => {
                t.error = Some(e);
                return;
            }
        };
        if pid <= 0 {
            return;
        }
        let seen = parent
            .take()
            .filter(|s| s.pid == pid)
            .unwrap_or_else(|| Seen::read(&root.process(pid), &t.item));
        ppid = seen.ppid();
        let a = match seen.ancestor {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => {
                t.error = Some(e);
                return;
            }
        };
        soft_run &= a.limit.soft == t.actual.soft;
        hard_run &= a.limit.hard == t.actual.hard;
        t.chain.push(a.clone());
        if soft_run {
            t.soft_from = Some(a.clone());
        }
        if hard_run {
            t.hard_from = Some(a);
        }
        if !soft_run && !hard_run {
            return;
        }
    }
}

fn soft_origin(t: &Provenance) -> SoftOrigin {
    let parent = t.chain.first().map(|a| a.limit);
    match parent {
        Some(p) if p.soft == t.actual.soft => SoftOrigin::Inherited,
        Some(p)
            if p.hard == t.actual.hard
                && t.actual.soft == t.actual.hard
                && cmp_limit(t.actual.soft, p.soft).is_gt() =>
        {
            SoftOrigin::RaisedToHard
        }
        _ => SoftOrigin::SetHere,
    }
}

/// The process's marks name a supervisor (Monit, supervisord, PM2) that is not among its
/// ancestors: it was started by one and left it.
fn marks_outside_chain(t: &Provenance) -> bool {
    let Some((kind, _, _)) = t.marks.starter() else {
        return false;
    };
    matches!(kind, Kind::Monit | Kind::Supervisord | Kind::Pm2)
        && !t
            .chain
            .iter()
            .any(|a| Kind::recognise(&a.name, &a.cmdline) == Some(kind))
}

/// The starter from the chain: the nearest supervisor among the ancestors that hold the
/// binding value (the hard one when inherited, else the soft one), else the highest of them.
fn starter_from_chain(root: &ProcRoot, t: &Provenance) -> Option<Starter> {
    let run_end = |from: &Option<Ancestor>| {
        from.as_ref()
            .and_then(|f| t.chain.iter().position(|a| a.pid == f.pid))
    };
    let end = run_end(&t.hard_from)
        .or_else(|| run_end(&t.soft_from))
        .unwrap_or(0);
    let run = t.chain.get(..=end)?;
    let kind_of = |a: &Ancestor| Kind::recognise(&a.name, &a.cmdline);
    let chosen = run
        .iter()
        .find(|a| kind_of(a).is_some_and(|k| k != Kind::Shell))
        .or_else(|| run.iter().find(|a| kind_of(a).is_some()))
        .or(run.last())?;
    let kind = kind_of(chosen)?;
    let own = t
        .marks
        .starter()
        .filter(|(k, _, _)| *k == kind)
        .and_then(|(_, s, _)| s);
    let service = match kind {
        Kind::Systemd => t.marks.unit.clone(),
        Kind::Container(_) => t.marks.container.as_ref().map(|c| c.short().to_string()),
        Kind::Runit | Kind::S6 => chosen.cmdline.split(' ').nth(1).map(str::to_string),
        _ => own,
    };
    Some(Starter {
        kind,
        process: Some(chosen.clone()),
        service,
        config: live::config_of(root, kind, chosen),
        unit: live::unit_of(root, chosen.pid),
        from_chain: true,
        evidence: String::new(),
    })
}

/// The starter from what the process carries, with the live supervisor process looked up.
fn starter_from_marks(root: &ProcRoot, t: &Provenance) -> Option<Starter> {
    let Some((kind, service, evidence)) = t.marks.starter() else {
        return monit_by_pidfile(root, t);
    };
    let mut s = Starter {
        kind,
        process: None,
        service,
        config: None,
        unit: None,
        from_chain: false,
        evidence: if evidence.starts_with("cgroup") || evidence.starts_with("INVOCATION") {
            format!("{evidence} {}", t.marks.cgroup_words())
        } else {
            format!("{evidence} in its environment")
        },
    };
    if evidence == "cgroup" && !matches!(kind, Kind::Container(_) | Kind::Systemd) {
        s.unit.clone_from(&t.marks.unit);
    }
    match kind {
        Kind::Monit => live::monit(root, t, &mut s),
        Kind::Supervisord => live::supervisord(root, t, &mut s),
        Kind::Pm2 => live::pm2(root, t, &mut s),
        _ => {}
    }
    Some(s)
}

/// Without marks (an empty or unreadable environment), a running monit whose control file
/// watches a pidfile holding the process's PID still names its starter.
fn monit_by_pidfile(root: &ProcRoot, t: &Provenance) -> Option<Starter> {
    let mut s = Starter {
        kind: Kind::Monit,
        process: None,
        service: None,
        config: None,
        unit: None,
        from_chain: false,
        evidence: String::new(),
    };
    live::monit(root, t, &mut s);
    s.process.as_ref()?;
    s.evidence = s.evidence.trim_start_matches("; ").to_string();
    Some(s)
}

/// Looking up the live supervisor a daemonized service came from.
mod live {
    use std::fmt::Write as _;

    use super::{read_config, Ancestor, Kind, Provenance, Starter, MAX_INCLUDES};
    use crate::proc::{Glob, Identity, Limits, ProcRoot};
    use std::path::{Path, PathBuf};

    /// A running supervisor as a scan found it: its PID, name, command line and limits.
    #[derive(Clone)]
    struct Found {
        pid: i32,
        name: String,
        cmdline: String,
        limits: Limits,
    }

    /// Which scans this run did already: (root, kind) and what they found.
    type Scans = Vec<(PathBuf, Kind, Vec<Found>)>;

    thread_local! {
        // A check of many processes from one supervisor (`--user`, `--name`), or of several
        // items of one process, would scan /proc once per process and item; a plugin run is
        // short, so one scan per supervisor kind per run is current enough.
        static SCANS: std::cell::RefCell<Scans> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Running processes of `kind` with their value of `item`, scanned once per run.
    fn running(root: &ProcRoot, kind: Kind, item: &str) -> Vec<Ancestor> {
        let known = SCANS.with(|s| {
            s.borrow()
                .iter()
                .find(|(r, k, _)| r == root.path() && *k == kind)
                .map(|(_, _, found)| found.clone())
        });
        let found = known.unwrap_or_else(|| {
            let found = scan(root, kind);
            SCANS.with(|s| {
                s.borrow_mut()
                    .push((root.path().to_path_buf(), kind, found.clone()));
            });
            found
        });
        found
            .into_iter()
            .filter_map(|f| {
                f.limits.get(item).map(|limit| Ancestor {
                    pid: f.pid,
                    name: f.name,
                    cmdline: f.cmdline,
                    limit,
                })
            })
            .collect()
    }

    /// The processes of `kind`: `comm` from the scan's own `stat` read, the command line
    /// and limits only for a possible match.
    fn scan(root: &ProcRoot, kind: Kind) -> Vec<Found> {
        root.scan()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(pid, stat)| {
                let comm = stat?.comm;
                let maybe = match kind {
                    Kind::Monit => comm == "monit",
                    Kind::Supervisord => comm == "supervisord" || comm.starts_with("python"),
                    Kind::Pm2 => comm.starts_with("PM2") || comm.starts_with("node"),
                    _ => true,
                };
                if !maybe {
                    return None;
                }
                let p = root.process(pid);
                let argv = p.cmdline().ok()?;
                let cmdline = argv.join(" ");
                if Kind::recognise(&comm, &cmdline) != Some(kind) {
                    return None;
                }
                Some(Found {
                    pid,
                    name: Identity { comm, argv }.name(),
                    cmdline,
                    limits: p.limits().ok()?,
                })
            })
            .collect()
    }

    /// The supervisors whose files may be read on the process's behalf: those run by root
    /// or by the process's own user. A `monit` any other user starts must not make a
    /// root-run check read the files its command line or control file names.
    fn trusted(root: &ProcRoot, found: Vec<Ancestor>, pid: i32) -> Vec<Ancestor> {
        let owner = |pid: i32| {
            std::fs::metadata(root.process(pid).path("status"))
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        };
        let target = owner(pid);
        found
            .into_iter()
            .filter(|a| {
                let uid = owner(a.pid);
                uid == Some(0) || (uid.is_some() && uid == target)
            })
            .collect()
    }

    /// The value after `-c`/`--conf`/`-c=` on a command line.
    fn conf_flag(cmdline: &str, flags: &[&str]) -> Option<PathBuf> {
        let args: Vec<&str> = cmdline.split(' ').collect();
        args.iter().enumerate().find_map(|(i, a)| {
            flags.iter().find_map(|f| {
                if a == f {
                    args.get(i + 1).map(PathBuf::from)
                } else {
                    a.strip_prefix(&format!("{f}=")).map(PathBuf::from)
                }
            })
        })
    }

    /// The running monit whose control file names the service or the process's pidfile.
    pub(super) fn monit(root: &ProcRoot, t: &Provenance, s: &mut Starter) {
        let candidates = trusted(root, running(root, Kind::Monit, &t.item), t.pid);
        let mut unread = Vec::new();
        let mut by_name = None;
        for m in &candidates {
            let files = monit_control_files(root, m);
            let mut texts = Vec::new();
            for f in &files {
                match read_config(f) {
                    Ok(text) => texts.push((f.clone(), text)),
                    Err(e) => unread.push(format!("{} ({}: {e})", m.who(), f.display())),
                }
                if !texts.is_empty() {
                    break;
                }
            }
            let Some((file, main)) = texts.pop() else {
                continue;
            };
            let all = with_includes(&file, &main);
            match monit_names(&all, s.service.as_deref(), t.pid) {
                Some(MonitMatch::Watched(name, found)) => {
                    return chosen(root, s, m, file, name, &found);
                }
                Some(MonitMatch::Named(name, found)) if by_name.is_none() => {
                    by_name = Some((m, file, name, found));
                }
                _ => {}
            }
        }
        // No monit watches the process's pidfile: the first that has the service's name.
        match by_name {
            Some((m, file, name, found)) => chosen(root, s, m, file, name, &found),
            None => not_found(s, "monit", &candidates, &unread),
        }
    }

    /// Records the monit found and how.
    fn chosen(
        root: &ProcRoot,
        s: &mut Starter,
        m: &Ancestor,
        file: PathBuf,
        name: String,
        found: &str,
    ) {
        let _ = write!(s.evidence, "; {} {found}", file.display());
        s.service = Some(name);
        s.process = Some(m.clone());
        s.config = Some(file);
        s.unit = unit_of(root, m.pid);
    }

    /// Where monit reads its control file: `-c FILE`, else the first that exists of
    /// `~/.monitrc`, `/etc/monitrc`, `/etc/monit/monitrc`.
    fn monit_control_files(root: &ProcRoot, m: &Ancestor) -> Vec<PathBuf> {
        if let Some(f) = conf_flag(&m.cmdline, &["-c", "--conf"]) {
            return vec![f];
        }
        let home = root
            .process(m.pid)
            .read("environ")
            .ok()
            .and_then(|e| {
                e.split('\0')
                    .find_map(|kv| kv.strip_prefix("HOME=").map(str::to_string))
            })
            .unwrap_or_else(|| "/root".into());
        [
            format!("{home}/.monitrc"),
            "/etc/monitrc".into(),
            "/etc/monit/monitrc".into(),
        ]
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
    }

    /// How a Monit control file names the process: by its service name only (`Named`),
    /// or by a `check process` whose pidfile holds the process's PID (`Watched`), which
    /// tells apart several monits that each have a service of that name.
    #[derive(Debug, PartialEq)]
    pub(super) enum MonitMatch {
        /// `check process NAME` for the service named in the environment.
        Named(String, String),
        /// A `check process` whose pidfile holds the process's PID.
        Watched(String, String),
    }

    /// Whether a Monit control file holds `check process NAME` for the service or a
    /// pidfile that holds the process's PID; the words for the story.
    pub(super) fn monit_names(text: &str, service: Option<&str>, pid: i32) -> Option<MonitMatch> {
        let mut named = None;
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["check", "process", name, ..] = words.as_slice() else {
                continue;
            };
            let name = name.trim_matches('"');
            let pidfile = words
                .iter()
                .position(|w| *w == "pidfile")
                .and_then(|i| words.get(i + 1))
                .map(|f| f.trim_matches('"'));
            // A pidfile is read as --pidfile reads it (docs/contract.md §7), and not at all
            // for a service other than the one the environment names.
            let watched = pidfile
                .filter(|_| service.is_none_or(|s| s == name))
                .filter(|file| {
                    matches!(crate::select::read_pidfile(Path::new(file)), Ok(Ok(p)) if p == pid)
                });
            if let Some(file) = watched {
                // Named in the environment too: the pidfile only confirms it (short words,
                // so the story keeps within a line of long output).
                let words = if service == Some(name) {
                    format!("has 'check process {name}' with its pidfile")
                } else {
                    format!("watches its pidfile {file} as 'check process {name}'")
                };
                return Some(MonitMatch::Watched(name.to_string(), words));
            }
            if named.is_none() && service == Some(name) {
                named = Some(MonitMatch::Named(
                    name.to_string(),
                    format!("has 'check process {name}'"),
                ));
            }
        }
        named
    }

    /// A control file with the files its `include` lines name appended (one level; a
    /// glob only in the last path component).
    pub(super) fn with_includes(file: &Path, text: &str) -> String {
        let mut all = text.to_string();
        // Included files may include others: followed breadth-first, each file once, at
        // most MAX_INCLUDES files in all.
        let mut queue = vec![(file.to_path_buf(), text.to_string())];
        let mut seen = vec![file.to_path_buf()];
        while let Some((file, text)) = queue.pop() {
            let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
            for line in text.lines() {
                let Some(pattern) = line.trim().strip_prefix("include") else {
                    continue;
                };
                let pattern = base.join(pattern.trim().trim_matches('"'));
                for f in glob_last(&pattern) {
                    if seen.len() > MAX_INCLUDES {
                        return all;
                    }
                    if seen.contains(&f) {
                        continue;
                    }
                    seen.push(f.clone());
                    if let Ok(t) = read_config(&f) {
                        all.push('\n');
                        all.push_str(&t);
                        queue.insert(0, (f, t));
                    }
                }
            }
        }
        all
    }

    /// Files matching a path whose last component may be a glob (`*`, `?`, `[...]`).
    pub(super) fn glob_last(pattern: &Path) -> Vec<PathBuf> {
        let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
            return Vec::new();
        };
        let glob = match Glob::new(&name.to_string_lossy()) {
            Ok(glob) if glob.literal().is_none() => glob,
            // No wildcard, or a `[` left open, which glob(3) takes literally.
            _ => return vec![pattern.to_path_buf()],
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| glob.matches(&e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The running supervisord whose configuration has the program.
    pub(super) fn supervisord(root: &ProcRoot, t: &Provenance, s: &mut Starter) {
        let candidates = trusted(root, running(root, Kind::Supervisord, &t.item), t.pid);
        let mut unread = Vec::new();
        let program = s.service.clone().unwrap_or_default();
        for sv in &candidates {
            let file = supervisord_conf(sv);
            let text = match read_config(&file) {
                Ok(text) => with_includes_supervisor(&file, &text),
                Err(e) => {
                    unread.push(format!("{} ({}: {e})", sv.who(), file.display()));
                    continue;
                }
            };
            let has = text.lines().any(|l| {
                l.trim()
                    .strip_prefix("[program:")
                    .and_then(|r| r.strip_suffix(']'))
                    .is_some_and(|name| program.starts_with(name.trim()))
            });
            if has || candidates.len() == 1 {
                let _ = write!(
                    s.evidence,
                    "; {}{}",
                    file.display(),
                    if has {
                        format!(" has [program:{program}]")
                    } else {
                        " (the only supervisord running)".to_string()
                    }
                );
                s.process = Some(sv.clone());
                s.config = Some(file);
                s.unit = unit_of(root, sv.pid);
                return;
            }
        }
        not_found(s, "supervisord", &candidates, &unread);
    }

    /// supervisord's `[include] files = a/*.conf b.conf`, relative to its file.
    fn with_includes_supervisor(file: &Path, text: &str) -> String {
        let mut all = text.to_string();
        let base = file.parent().unwrap_or(Path::new("/"));
        let Some(files) = text
            .lines()
            .skip_while(|l| l.trim() != "[include]")
            .find_map(|l| l.trim().strip_prefix("files").map(str::trim))
            .and_then(|r| r.strip_prefix('='))
        else {
            return all;
        };
        for pattern in files.split_whitespace().take(MAX_INCLUDES) {
            for f in glob_last(&base.join(pattern))
                .into_iter()
                .take(MAX_INCLUDES)
            {
                if let Ok(t) = read_config(&f) {
                    all.push('\n');
                    all.push_str(&t);
                }
            }
        }
        all
    }

    /// The PM2 God daemon of the process's `PM2_HOME`.
    pub(super) fn pm2(root: &ProcRoot, t: &Provenance, s: &mut Starter) {
        let candidates = trusted(root, running(root, Kind::Pm2, &t.item), t.pid);
        let home = t.marks.var("PM2_HOME").map(str::to_string);
        let found = candidates
            .iter()
            .find(|d| {
                home.as_ref()
                    .is_some_and(|h| d.cmdline.contains(&format!("({h})")))
            })
            .or_else(|| (candidates.len() == 1).then(|| &candidates[0]));
        match found {
            Some(d) => {
                let _ = write!(s.evidence, "; PM2 daemon of {}", d.cmdline);
                s.process = Some(d.clone());
                s.unit = unit_of(root, d.pid);
            }
            None => not_found(s, "PM2 daemon", &candidates, &[]),
        }
    }

    /// The control file of a Monit or supervisord process.
    pub(super) fn config_of(root: &ProcRoot, kind: Kind, a: &Ancestor) -> Option<PathBuf> {
        match kind {
            Kind::Monit => monit_control_files(root, a).into_iter().next(),
            Kind::Supervisord => Some(supervisord_conf(a)),
            _ => None,
        }
        .filter(|f| f.is_file())
    }

    /// supervisord's `-c FILE`, else the Debian default.
    fn supervisord_conf(a: &Ancestor) -> PathBuf {
        conf_flag(&a.cmdline, &["-c", "--configuration"])
            .unwrap_or_else(|| PathBuf::from("/etc/supervisor/supervisord.conf"))
    }

    pub(super) fn unit_of(root: &ProcRoot, pid: i32) -> Option<String> {
        root.process(pid)
            .systemd_unit()
            .ok()
            .flatten()
            .filter(|u| u.ends_with(".service"))
    }

    /// Says why no live supervisor was named.
    fn not_found(s: &mut Starter, what: &str, candidates: &[Ancestor], unread: &[String]) {
        let who: Vec<String> = candidates.iter().map(Ancestor::who).collect();
        let why = match (candidates.len(), unread.is_empty()) {
            (0, _) => format!("; no {what} is running now"),
            (_, false) => format!(
                "; which running {what} it was is not known: control files not readable: {}",
                unread.join(", ")
            ),
            _ => format!(
                "; none of the running {what} ({}) names it in its control file",
                who.join(", ")
            ),
        };
        s.evidence.push_str(&why);
    }
}

/// Reads a configuration file outside /proc through the one bounded reader (regular files
/// only, at most [`files::max::CONFIG`](crate::files::max::CONFIG) bytes, never blocking on a
/// FIFO); the error says why,
/// without repeating the path.
fn read_config(path: &Path) -> Result<String, String> {
    crate::files::read_regular_text(
        path,
        crate::files::max::CONFIG,
        crate::files::Follow::Always,
    )
    .map_err(|e| {
        let text = e.to_string();
        let prefix = format!("cannot read {}: ", path.display());
        text.strip_prefix(&prefix)
            .map_or(text.clone(), str::to_string)
    })
}

/// Signs that the process that started `pid` has exited: its session or process group
/// leader no longer exists (Monit's `start program = "/bin/sh -c 'app &'"`: the shell was
/// the session leader and exited, and the app was reparented), or it detached itself.
fn orphaned(root: &ProcRoot, pid: i32, me: &Seen, parent: Option<&Seen>) -> Option<String> {
    let stat = me.stat.as_ref().ok()?;
    let now = parent.map_or_else(
        || "nobody".to_string(),
        |p| crate::proc::who(&p.name(), p.pid),
    );
    let gone = |leader: i32| leader > 0 && leader != pid && !root.process(leader).exists();
    // A parent in the same session (process group) belongs to the tree that started it; only
    // a parent outside it is the adoptive one.
    let parent_stat = parent.and_then(|p| p.stat.as_ref().ok());
    let outside = |f: fn(&Stat) -> i32, own: i32| parent_stat.is_none_or(|s| f(s) != own);
    for (what, leader, field) in [
        (
            "session leader",
            stat.session,
            (|s: &Stat| s.session) as fn(&Stat) -> i32,
        ),
        ("process group leader", stat.pgrp, |s| s.pgrp),
    ] {
        if gone(leader) && outside(field, leader) {
            return Some(format!(
                "the process that started it has exited ({what} {leader} is gone); it was reparented to {now}"
            ));
        }
    }
    // A daemon that detached itself (own session, now a child of init) was started by a
    // process that has exited, unless PID 1 starts services itself (systemd, container inits).
    if stat.ppid == 1 && stat.session == pid {
        // The parent is PID 1, as already read.
        let init = parent.map_or_else(String::new, |pid1| match &pid1.stat {
            Ok(s) if !s.comm.is_empty() => s.comm.clone(),
            _ => pid1.name(),
        });
        let starts_services = [
            "systemd",
            "init.scope",
            "tini",
            "dumb-init",
            "docker-init",
            "s6-svscan",
            "runit",
            "catatonit",
        ]
        .iter()
        .any(|n| init.starts_with(n));
        if !starts_services {
            return Some(format!(
                "it detached itself (own session, now a child of {now}): the process that started it has exited"
            ));
        }
    }
    None
}

impl Provenance {
    /// The soft and hard values both match the starter's (or the ancestor they came from).
    fn starter_limit(&self) -> Option<Rlimit> {
        self.starter
            .as_ref()
            .and_then(|s| s.process.as_ref())
            .map(|a| a.limit)
    }

    /// The process raised its own soft limit to its inherited hard one.
    #[must_use]
    pub fn raised_soft_itself(&self) -> bool {
        self.soft == SoftOrigin::RaisedToHard
            || self.orphaned.is_some()
                && self.starter_limit().is_some_and(|l| {
                    l.hard == self.actual.hard
                        && self.actual.soft == self.actual.hard
                        && cmp_limit(self.actual.soft, l.soft).is_gt()
                })
    }

    /// A daemon that sets its own limit from its configuration, when this is one and its
    /// value is not inherited.
    #[must_use]
    pub fn self_setting(&self) -> Option<&'static crate::remediation::DaemonSetting> {
        let inherited = self.soft == SoftOrigin::Inherited && self.hard_from.is_some();
        if inherited || self.raised_soft_itself() {
            return None;
        }
        self.names
            .iter()
            .find_map(|n| crate::remediation::daemon_setting(n, &self.item))
    }

    /// A short phrase for a finding about the value: `, inherited from monit[812] (nofile
    /// 1024:4096)`.
    #[must_use]
    pub fn summary(&self) -> String {
        self.summary_with(true)
    }

    /// The origin on its own, for a diagnosis that names the process already:
    /// `nofile 1024:4096 inherited from monit[812]`.
    #[must_use]
    pub fn origin(&self) -> String {
        let phrase = self.summary_with(false);
        format!(
            "{} {}{}",
            self.item,
            self.actual.describe(),
            phrase.strip_prefix(',').unwrap_or(&phrase)
        )
    }

    fn summary_with(&self, limits: bool) -> String {
        let item = &self.item;
        let of = |a: &Ancestor| {
            if limits {
                format!(" ({item} {})", a.limit.describe())
            } else {
                String::new()
            }
        };
        if let Some(s) = &self.starter {
            if self.orphaned.is_some() || !s.from_chain {
                let mut what: Vec<String> = Vec::new();
                what.extend(s.service.as_ref().map(|n| format!("service '{n}'")));
                if limits {
                    what.extend(
                        s.process
                            .as_ref()
                            .map(|a| format!("{item} {}", a.limit.describe())),
                    );
                }
                let service = if what.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", what.join(", "))
                };
                return format!(", started by {}{service}, then reparented", s.who());
            }
        }
        if let Some(d) = self.self_setting() {
            return format!(", set by the process itself ({})", d.setting);
        }
        let from = self
            .starter
            .as_ref()
            .and_then(|s| s.process.clone())
            .or_else(|| self.hard_from.clone());
        match (&from, self.soft) {
            (Some(a), _) if self.raised_soft_itself() => format!(
                ", hard limit inherited from {}{}; the process raised its soft limit to it",
                a.who(),
                of(a)
            ),
            (Some(a), SoftOrigin::Inherited) => format!(", inherited from {}{}", a.who(), of(a)),
            (Some(a), _) => format!(
                ", hard limit inherited from {}{}, soft limit set by the process or its start command",
                a.who(),
                of(a)
            ),
            _ if self.orphaned.is_some() => ", its starting parent exited".into(),
            _ => match self.chain.first() {
                Some(p) => format!(", not inherited ({} has {})", p.who(), p.limit.describe()),
                None => String::new(),
            },
        }
    }

    /// The whole story for the long output, one line within the report's line cap: where
    /// each half came from, how the starter was identified, and the chain.
    #[must_use]
    pub fn story(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let from_marks = self.starter.as_ref().is_some_and(|s| !s.from_chain);
        if self.orphaned.is_some() || from_marks {
            parts.extend(self.orphaned.clone());
            parts.push(match (&self.starter, &self.marks.environ_error) {
                (Some(s), _) => self.identified(s),
                (None, Some(e)) => format!("who started it is not known: {e}"),
                (None, None) => {
                    "nothing it carries (environment, cgroup) names who started it".into()
                }
            });
        } else {
            parts.push(self.origin_words());
        }
        if self.raised_soft_itself() {
            parts.push(format!(
                "the process raised its own soft limit to its hard limit at start (as Node.js and Go do), so the inherited hard limit {} is what binds",
                show(self.actual.hard)
            ));
        }
        if self.orphaned.is_none() && !from_marks {
            let mut chain = vec![format!("{} {}", self.who, self.actual.describe())];
            chain.extend(
                self.chain
                    .iter()
                    .take(6)
                    .map(|a| format!("{} {}", a.who(), a.limit.describe())),
            );
            parts.push(format!("chain: {}", chain.join(" <- ")));
        }
        let mut out = format!(
            "{} {} {}: {}",
            self.who,
            self.item,
            self.actual.describe(),
            parts.join("; ")
        );
        if let Some(e) = &self.error {
            let _ = write!(out, " (stopped: {e})");
        }
        out
    }

    /// Where the value came from, for a process whose starting parent is in its chain.
    fn origin_words(&self) -> String {
        let service = self
            .starter
            .as_ref()
            .and_then(|s| s.service.as_ref())
            .map(|n| format!(" for service '{n}'"))
            .unwrap_or_default();
        let from = self
            .starter
            .as_ref()
            .and_then(|s| s.process.clone())
            .or_else(|| self.hard_from.clone());
        let parent = self.chain.first();
        if let Some(d) = self.self_setting() {
            let has = parent
                .map(|p| format!("; its parent {} has {}", p.who(), p.limit.describe()))
                .unwrap_or_default();
            return format!("set by the process itself ({}){has}", d.setting);
        }
        let cmd = |a: &Ancestor| a.cmdline.chars().take(80).collect::<String>();
        match (from, self.soft) {
            (Some(a), _) if self.raised_soft_itself() => {
                format!("hard limit inherited from {} ({}){service}", a.who(), cmd(&a))
            }
            (Some(a), SoftOrigin::Inherited) => {
                format!("inherited from {} ({}){service}", a.who(), cmd(&a))
            }
            (Some(a), SoftOrigin::SetHere | SoftOrigin::RaisedToHard) => format!(
                "hard limit inherited from {}{service}; soft limit set by the process or its start command",
                a.who()
            ),
            (None, _) => match parent {
                Some(p) => format!(
                    "set by the process itself or its start command; its parent {} has {}",
                    p.who(),
                    p.limit.describe()
                ),
                None => "no parent to inherit from".into(),
            },
        }
    }

    /// How the starter of a reparented process was identified, and whether its limits match.
    fn identified(&self, s: &Starter) -> String {
        let service = s
            .service
            .as_ref()
            .map(|n| format!(" (service '{n}')"))
            .unwrap_or_default();
        let mut text = format!("{} started it{service}: {}", s.who(), s.evidence);
        if let Some(a) = &s.process {
            let same = a.limit == self.actual
                || a.limit.hard == self.actual.hard && self.raised_soft_itself();
            let _ = write!(
                text,
                "; {} has {} {}{}",
                a.who(),
                self.item,
                a.limit.describe(),
                if same {
                    ", the same: inherited from it"
                } else {
                    " now, not the process's (restarted with other limits since, or its start program set them)"
                }
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn supervisors_are_recognised() {
        let r = Kind::recognise;
        assert_eq!(r("monit", "/usr/bin/monit -I"), Some(Kind::Monit));
        assert_eq!(r("systemd", "/sbin/init splash"), Some(Kind::Systemd));
        assert_eq!(
            r(
                "python3.11",
                "/usr/bin/python3 /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf"
            ),
            Some(Kind::Supervisord)
        );
        // Named by its script (as Identity::name names it), the command line aside.
        assert_eq!(
            r("supervisord", "python3 ./supervisord -n"),
            Some(Kind::Supervisord)
        );
        assert_eq!(r("runsv", "runsv nginx"), Some(Kind::Runit));
        assert_eq!(r("s6-supervise", "s6-supervise app"), Some(Kind::S6));
        assert_eq!(
            r("node", "PM2 v5.3.0: God Daemon (/root/.pm2)"),
            Some(Kind::Pm2)
        );
        assert_eq!(
            r(
                "containerd-shim-runc-v2",
                "/usr/bin/containerd-shim-runc-v2 -namespace moby"
            ),
            Some(Kind::Container(Some(Runtime::Docker)))
        );
        assert_eq!(
            r("conmon", "/usr/bin/conmon --api-version 1"),
            Some(Kind::Container(Some(Runtime::Podman)))
        );
        assert_eq!(r("cron", "/usr/sbin/cron -f"), Some(Kind::Cron));
        assert_eq!(r("sshd", "sshd: alice@pts/0"), Some(Kind::Login));
        assert_eq!(r("bash", "-bash"), Some(Kind::Shell));
        assert_eq!(r("node", "node server.js"), None);
    }

    #[test]
    fn environ_keeps_only_identifying_variables() {
        let env = "PATH=/usr/bin\0MONIT_SERVICE=incident-node\0MONIT_EVENT=Started\0SECRET=x\0";
        assert_eq!(
            parse_environ(env),
            [
                ("MONIT_SERVICE".to_string(), "incident-node".to_string()),
                ("MONIT_EVENT".to_string(), "Started".to_string())
            ]
        );
    }

    #[test]
    fn monit_control_file_names_a_service_or_its_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("svc.pid");
        fs::write(&pidfile, "4242\n").unwrap();
        let rc = format!(
            "set daemon 1\ncheck process incident-node with pidfile {}\n    start program = \"/bin/sh -c 'x &'\"\n",
            pidfile.display()
        );
        let watched = format!(
            "watches its pidfile {} as 'check process incident-node'",
            pidfile.display()
        );
        assert_eq!(
            live::monit_names(&rc, Some("incident-node"), 1),
            Some(live::MonitMatch::Named(
                "incident-node".into(),
                "has 'check process incident-node'".into()
            ))
        );
        // Two monits may both have a service of that name: the pidfile holding the PID
        // tells which one started this process.
        assert_eq!(
            live::monit_names(&rc, Some("incident-node"), 4242),
            Some(live::MonitMatch::Watched(
                "incident-node".into(),
                "has 'check process incident-node' with its pidfile".into()
            ))
        );
        assert_eq!(
            live::monit_names(&rc, None, 4242),
            Some(live::MonitMatch::Watched("incident-node".into(), watched))
        );
        assert_eq!(live::monit_names(&rc, Some("other"), 1), None);
        let inc = dir.path().join("conf.d");
        fs::create_dir(&inc).unwrap();
        fs::write(inc.join("web"), "check process web with pidfile /x\n").unwrap();
        let main = dir.path().join("monitrc");
        let nested = dir.path().join("more");
        fs::create_dir(&nested).unwrap();
        fs::write(nested.join("api"), "check process api with pidfile /y\n").unwrap();
        fs::write(
            inc.join("web"),
            format!(
                "check process web with pidfile /x\ninclude {}/*\n",
                nested.display()
            ),
        )
        .unwrap();
        let all = live::with_includes(&main, "set daemon 1\ninclude conf.d/*\n");
        assert!(all.contains("check process web"), "{all}");
        assert!(all.contains("check process api"), "nested include: {all}");
    }

    #[test]
    fn include_globs_match_as_the_shell_does() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["abc", "aXbYc", "axc", "a1", "ab"] {
            fs::write(dir.path().join(f), "").unwrap();
        }
        let names = |pattern: &str| {
            live::glob_last(&dir.path().join(pattern))
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("a*b*c"), ["aXbYc", "abc"], "not axc");
        assert_eq!(names("a?"), ["a1", "ab"]);
        assert_eq!(names("a[0-9]"), ["a1"]);
        assert_eq!(names("abc"), ["abc"]);
    }
}
