//! check_rlimit_match: the resource limits a process runs with against the limits it should
//! have, and where wrong ones came from.
//!
//! The incident behind procguard: a service restarted by Monit inherited Monit's `nofile`
//! 1024:4096 instead of the 500000 limits.conf promised (limits.conf only applies to PAM
//! sessions). Nothing compared the running process's limits with that promise. This plugin
//! does, for any rlimit, against limits.conf (with pam_limits' exact rules), a systemd unit,
//! explicit values, a YAML config or a sibling process; and when a value is too low it walks
//! the parent chain to name the ancestor the value was inherited from, with a remediation
//! for that supervisor.

pub mod config;
pub mod expect;
pub mod limits_conf;
pub mod provenance;
pub mod users;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use procguard_common::files::{self, Follow};
use procguard_common::proc::limits::show;
use procguard_common::proc::{Limits, ProcRoot, Process, Rlimit};
use procguard_common::select::{pid_from_pidfile, report_vanished, Selected, Selector};
use procguard_common::{
    accounts, systemd, CheckArgs, CheckError, CommonArgs, PerfData, Report, Status,
};

use crate::expect::{parse_item, ItemSpec};
use crate::limits_conf::{ConfFile, Flavor};
use crate::provenance::{generic_remediation, Supervisor};

/// Alert when a process's resource limits differ from the limits it should have.
///
/// Compares the soft and hard values in /proc/PID/limits of each selected process with
/// one or more expectation sources; every finding names its source:
///
///   --expect ITEM=SOFT[:HARD]    exact values: below CRITICAL, above WARNING
///   --at-least ITEM=SOFT[:HARD]  minimum values: below CRITICAL
///   --limits-conf [PATH]         what pam_limits gives the process's user (a minimum)
///   --systemd [UNIT]             the unit's Limit*= values via systemctl show (exact)
///   --config FILE [--service N]  a YAML list of services (README, examples/services.yaml)
///   --like-pid / --like-pidfile  another process's limits (exact)
///
/// Items are limits.conf names (nofile nproc core memlock stack as fsize data rss cpu
/// locks sigpending msgqueue nice rtprio rttime); values are in the kernel's units,
/// `unlimited` for no limit; HARD left out is not checked.
///
/// When a value is below its expectation, the parent chain is walked to name the ancestor
/// it was inherited from, with a one-line remediation for that supervisor. An expectation
/// above fs.nr_open (the kernel's nofile ceiling) is a WARNING. -w/-c are not used.
#[derive(Parser, Debug)]
#[command(
    name = "check_rlimit_match",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub select: Selector,

    /// Limit item to check (repeatable; default: the items named by --expect/--at-least/--config, else nofile)
    #[arg(long = "item", value_name = "ITEM", value_parser = parse_item)]
    pub items: Vec<&'static str>,

    /// Expect exactly these values (repeatable), e.g. nofile=65536:65536, core=unlimited, nofile=:4096 (hard only)
    #[arg(long, value_name = "ITEM=SOFT[:HARD]")]
    pub expect: Vec<ItemSpec>,

    /// Expect at least these values (repeatable)
    #[arg(long, value_name = "ITEM=SOFT[:HARD]")]
    pub at_least: Vec<ItemSpec>,

    /// Expect at least what pam_limits would set for the process's user: PATH is a directory holding limits.conf and limits.d/ (default /etc/security) or a single file (like pam_limits' conf=)
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/etc/security")]
    pub limits_conf: Option<PathBuf>,

    /// Rules of which pam_limits to follow: debian skips '*' and '@group' lines for root; auto is debian when /etc/debian_version exists
    #[arg(long, value_enum, default_value = "auto")]
    pub pam_flavor: PamFlavor,

    /// Expect exactly the Limit*= values of the systemd unit holding the process (or of UNIT), via systemctl show; --unit without another source implies it
    #[arg(long, value_name = "UNIT", num_args = 0..=1, default_missing_value = "")]
    pub systemd: Option<String>,

    /// YAML file listing services, their selectors and expected limits
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pid", "pidfile", "name", "cmdline", "user", "unit", "ppid"])]
    pub config: Option<PathBuf>,

    /// With --config: check only this service (default: all)
    #[arg(long, value_name = "NAME", requires = "config")]
    pub service: Option<String>,

    /// Expect exactly the limits of the process with this PID
    #[arg(long, value_name = "PID")]
    pub like_pid: Option<i32>,

    /// Expect exactly the limits of the process whose PID is in FILE
    #[arg(long, value_name = "FILE", conflicts_with = "like_pid")]
    pub like_pidfile: Option<PathBuf>,
}

impl CheckArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// `--pam-flavor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PamFlavor {
    /// Debian when /etc/debian_version exists, else upstream.
    Auto,
    /// Upstream Linux-PAM.
    Upstream,
    /// Debian/Ubuntu.
    Debian,
}

/// Another process to compare with.
#[derive(Debug, Clone)]
enum Like {
    Pid(i32),
    Pidfile(PathBuf),
}

/// One thing to check: processes and what they should have.
#[derive(Debug, Clone)]
struct Job {
    service: Option<String>,
    selector: Selector,
    label: Option<String>,
    exact: Vec<(ItemSpec, String)>,
    at_least: Vec<(ItemSpec, String)>,
    limits_conf: Option<PathBuf>,
    systemd: Option<Option<String>>,
    like: Option<Like>,
    items: Vec<&'static str>,
}

impl Job {
    fn has_source(&self) -> bool {
        !self.exact.is_empty()
            || !self.at_least.is_empty()
            || self.limits_conf.is_some()
            || self.systemd.is_some()
            || self.like.is_some()
    }
}

/// One expected value.
#[derive(Debug, Clone)]
struct Want {
    item: &'static str,
    hard: bool,
    value: Option<u64>,
    exact: bool,
    source: String,
    kind: String,
    /// Below it is a WARNING, not CRITICAL (a line the user's pam_limits does not apply).
    advisory: bool,
}

/// The check.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    if args.common.warning.is_some() || args.common.critical.is_some() {
        return Err(CheckError::Config(
            "-w/-c are not used by check_rlimit_match: expectations come from --expect, --at-least, --limits-conf, --systemd, --config or --like-pid".into(),
        ));
    }
    let jobs = jobs(args)?;
    let root = ProcRoot::new(&args.common.proc_root);
    let mut ctx = Ctx::new(args, root);
    let mut report = Report::default();
    for job in &jobs {
        ctx.run_job(job, &mut report)?;
    }
    if ctx.untold > 0 {
        report.detail(format!(
            "(chains and fixes of {} more too-low values left out)",
            ctx.untold
        ));
    }
    for w in &ctx.conf_warnings {
        report.detail(format!("limits.conf warning: {w}"));
    }
    ctx.summarise(&jobs, &mut report);
    Ok(report)
}

/// The jobs of this run: one from the command line, or one per config service.
fn jobs(args: &Args) -> Result<Vec<Job>, CheckError> {
    let like = args
        .like_pid
        .map(Like::Pid)
        .or_else(|| args.like_pidfile.clone().map(Like::Pidfile));
    let cli_exact: Vec<(ItemSpec, String)> = args
        .expect
        .iter()
        .map(|s| (*s, format!("--expect {s}")))
        .collect();
    let cli_min: Vec<(ItemSpec, String)> = args
        .at_least
        .iter()
        .map(|s| (*s, format!("--at-least {s}")))
        .collect();
    let cli_systemd = args.systemd.as_ref().map(|u| {
        if u.is_empty() {
            args.select.unit.clone()
        } else {
            Some(u.clone())
        }
    });
    let mut jobs = Vec::new();
    if let Some(path) = &args.config {
        let text = files::read_regular_text(path, files::max::CONFIG, Follow::Always)?;
        let config = config::parse(path, &text)?;
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        for s in &config.services {
            if args.service.as_ref().is_some_and(|n| *n != s.name) {
                continue;
            }
            let src = |kind: &str, spec: &ItemSpec| format!("{file} {} {kind} {spec}", s.name);
            let toggle_path = |t: &Option<config::Toggle>| match t {
                Some(config::Toggle::On) => Some(PathBuf::from("/etc/security")),
                Some(config::Toggle::Value(p)) => Some(PathBuf::from(p)),
                _ => None,
            };
            let systemd = match &s.systemd {
                Some(config::Toggle::On) => Some(s.select.unit.clone()),
                Some(config::Toggle::Value(u)) => Some(Some(u.clone())),
                _ => None,
            };
            let mut job = Job {
                service: Some(s.name.clone()),
                selector: s.select.selector(),
                label: s.label.clone().or_else(|| Some(s.name.clone())),
                exact: s
                    .expect
                    .specs()
                    .iter()
                    .map(|i| (*i, src("expect", i)))
                    .chain(cli_exact.iter().cloned())
                    .collect(),
                at_least: s
                    .at_least
                    .specs()
                    .iter()
                    .map(|i| (*i, src("at_least", i)))
                    .chain(cli_min.iter().cloned())
                    .collect(),
                limits_conf: toggle_path(&s.limits_conf).or_else(|| args.limits_conf.clone()),
                systemd: systemd.or_else(|| cli_systemd.clone()),
                like: s
                    .like_pid
                    .map(Like::Pid)
                    .or_else(|| s.like_pidfile.clone().map(Like::Pidfile))
                    .or_else(|| like.clone()),
                items: Vec::new(),
            };
            if !job.has_source() {
                return Err(CheckError::Config(format!(
                    "config {}: service {:?} has no expectation (expect, at_least, limits_conf, systemd, like_pid or like_pidfile)",
                    path.display(),
                    s.name
                )));
            }
            job.items = items_of(args, &job);
            jobs.push(job);
        }
        if jobs.is_empty() {
            let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
            return Err(CheckError::Config(format!(
                "--service {}: not in {} (services: {})",
                args.service.as_deref().unwrap_or_default(),
                path.display(),
                names.join(", ")
            )));
        }
        return Ok(jobs);
    }
    if args.select.is_empty() {
        return Err(CheckError::Config(
            "no process selected: give --pid, --pidfile, --name, --cmdline, --user, --unit or --ppid, or --config".into(),
        ));
    }
    let mut job = Job {
        service: None,
        selector: args.select.clone(),
        label: args.common.label.clone(),
        exact: cli_exact,
        at_least: cli_min,
        limits_conf: args.limits_conf.clone(),
        systemd: cli_systemd,
        like,
        items: Vec::new(),
    };
    if !job.has_source() {
        match &args.select.unit {
            // --unit alone: the unit's own Limit*= are the expectation.
            Some(unit) => job.systemd = Some(Some(unit.clone())),
            None => {
                return Err(CheckError::Config(
                    "no expectation: give --expect, --at-least, --limits-conf, --systemd, --config or --like-pid".into(),
                ))
            }
        }
    }
    job.items = items_of(args, &job);
    Ok(vec![job])
}

/// `--item` values plus the items named by explicit expectations; nofile when none.
fn items_of(args: &Args, job: &Job) -> Vec<&'static str> {
    let mut items: Vec<&'static str> = Vec::new();
    let named = args
        .items
        .iter()
        .copied()
        .chain(job.exact.iter().map(|(s, _)| s.item))
        .chain(job.at_least.iter().map(|(s, _)| s.item));
    for item in named {
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if items.is_empty() {
        items.push("nofile");
    }
    items
}

/// Pushes the minimum expectations a resolution sets for `item` (soft clamped to the
/// effective hard value); false when it sets nothing.
fn conf_wants(
    r: &limits_conf::Resolution,
    item: &'static str,
    start: Rlimit,
    note: &str,
    out: &mut Vec<Want>,
) -> bool {
    let Some(set) = r
        .items
        .get(item)
        .filter(|s| s.soft.is_some() || s.hard.is_some())
    else {
        return false;
    };
    let eff = r.effective(item, start);
    if let Some(soft) = &set.soft {
        let clamped = if eff.soft != soft.value {
            format!(", clamped to hard {}", show(eff.soft))
        } else {
            String::new()
        };
        out.push(Want {
            item,
            hard: false,
            value: eff.soft,
            exact: false,
            source: format!("{}{clamped}{note}", soft.line.describe()),
            kind: "limits.conf".into(),
            advisory: false,
        });
    }
    if let Some(hard) = &set.hard {
        out.push(Want {
            item,
            hard: true,
            value: hard.value,
            exact: false,
            source: format!("{}{note}", hard.line.describe()),
            kind: "limits.conf".into(),
            advisory: false,
        });
    }
    true
}

/// Compares limit values, `None` being unlimited (above every number).
fn cmp_limit(a: Option<u64>, b: Option<u64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

/// State shared by the jobs of one run (caches, things said once).
struct Ctx {
    root: ProcRoot,
    nr_open: Option<u64>,
    flavor: Flavor,
    pid1: Option<Limits>,
    accounts: Option<(Vec<users::PasswdEntry>, Vec<users::GroupEntry>)>,
    confs: HashMap<PathBuf, Result<Vec<ConfFile>, String>>,
    units: HashMap<String, Result<HashMap<String, String>, String>>,
    said: HashSet<String>,
    conf_warnings: BTreeSet<String>,
    checked: Vec<String>,
    kinds: BTreeSet<String>,
    compared: usize,
    traced: usize,
    untold: usize,
}

/// How many too-low values get their chain and remediation in the long output.
const MAX_TOLD: usize = 5;

impl Ctx {
    fn new(args: &Args, root: ProcRoot) -> Ctx {
        let nr_open = root.read_u64("sys/fs/nr_open").ok();
        let pid1 = root.process(1).limits().ok();
        let flavor = match args.pam_flavor {
            PamFlavor::Upstream => Flavor::Upstream,
            PamFlavor::Debian => Flavor::Debian,
            PamFlavor::Auto if Path::new("/etc/debian_version").exists() => Flavor::Debian,
            PamFlavor::Auto => Flavor::Upstream,
        };
        Ctx {
            root,
            nr_open,
            flavor,
            pid1,
            accounts: None,
            confs: HashMap::new(),
            units: HashMap::new(),
            said: HashSet::new(),
            conf_warnings: BTreeSet::new(),
            checked: Vec::new(),
            kinds: BTreeSet::new(),
            compared: 0,
            traced: 0,
            untold: 0,
        }
    }

    /// Adds a finding once per run (the same source problem for many processes).
    fn once(&mut self, report: &mut Report, status: Status, text: String) {
        if self.said.insert(text.clone()) {
            report.add(status, text);
        }
    }

    fn run_job(&mut self, job: &Job, report: &mut Report) -> Result<(), CheckError> {
        let mut selection = Report::default();
        let selected = job
            .selector
            .resolve(&self.root, job.label.as_deref(), &mut selection)?;
        // "not running", "no process matches": named after the service in config mode.
        for f in selection.findings() {
            match &job.service {
                Some(service) => report.add(f.status, format!("{service}: {}", f.text)),
                None => report.add(f.status, f.text.clone()),
            }
        }
        let vanished = selected
            .iter()
            .filter(|s| !self.check_process(job, s, report))
            .count();
        report_vanished(report, &job.selector, selected.len(), vanished);
        Ok(())
    }

    /// Checks one process; false when it exited while being checked (then nothing is added).
    fn check_process(&mut self, job: &Job, s: &Selected, report: &mut Report) -> bool {
        let who = s.display();
        let root = self.root.clone();
        let p = root.process(s.pid);
        let limits = match p.limits() {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return false,
            Err(e) => {
                report.unknown(e);
                return true;
            }
        };
        for item in &job.items {
            if let Some(l) = limits.get(item) {
                for (half, v) in [("soft", l.soft), ("hard", l.hard)] {
                    // An unlimited value has no number: left out of perfdata.
                    if let Some(v) = v {
                        report.perf(
                            PerfData::new(&format!("{}_{item}_{half}", s.label), v as f64).min(0.0),
                        );
                    }
                }
            }
        }
        let wants = self.wants(job, &p, &who, report);
        let mut shown = Vec::new();
        for item in &job.items {
            let Some(actual) = limits.get(item) else {
                report.unknown(format!(
                    "{who}: the kernel does not report {item} in {}",
                    p.path("limits").display()
                ));
                continue;
            };
            shown.push(format!("{item} {}", actual.describe()));
            let item_wants: Vec<&Want> = wants.iter().filter(|w| w.item == *item).collect();
            // limits.conf says itself when it sets nothing; otherwise nothing to compare with
            // is something the plugin could not find out.
            if item_wants.is_empty() && job.limits_conf.is_none() {
                report.unknown(format!(
                    "{who} {item} {}: no expectation for {item} (name it in --expect/--at-least)",
                    actual.describe()
                ));
            }
            self.compare(report, &p, &who, item, actual, &item_wants);
        }
        self.checked.push(format!("{who} {}", shown.join(", ")));
        true
    }

    /// Compares one item with its expectations; on a value too low, traces its origin.
    fn compare(
        &mut self,
        report: &mut Report,
        p: &Process,
        who: &str,
        item: &'static str,
        actual: Rlimit,
        wants: &[&Want],
    ) {
        let mut results: Vec<(Status, String, bool)> = Vec::new();
        let mut below: Vec<&Want> = Vec::new();
        for w in wants {
            self.compared += 1;
            self.kinds.insert(w.kind.clone());
            let half = if w.hard { "hard" } else { "soft" };
            let mut target = w.value;
            if let (Some(v), Some(nr_open), "nofile") = (w.value, self.nr_open, item) {
                if v > nr_open {
                    self.once(
                        report,
                        Status::Warning,
                        format!(
                            "{} asks for nofile {half} {v} > fs.nr_open {nr_open}: the kernel cannot grant it",
                            w.source
                        ),
                    );
                    target = Some(nr_open);
                }
            }
            let a = if w.hard { actual.hard } else { actual.soft };
            let (status, op) = match cmp_limit(a, target) {
                Ordering::Less if w.advisory => (Status::Warning, "<"),
                Ordering::Less => (Status::Critical, "<"),
                Ordering::Greater if w.exact => (Status::Warning, ">"),
                Ordering::Greater => (Status::Ok, ">="),
                Ordering::Equal => (Status::Ok, "="),
            };
            let text = if status == Status::Ok {
                format!(
                    "{who} {item} {half} {} {op} {} ({})",
                    show(a),
                    show(target),
                    w.source
                )
            } else {
                format!(
                    "{who} {item} {half} {} {op} {} expected ({})",
                    show(a),
                    show(target),
                    w.source
                )
            };
            let is_below = op == "<";
            if is_below {
                below.push(w);
            }
            results.push((status, text, is_below));
        }
        let suffix = if below.is_empty() {
            String::new()
        } else {
            self.provenance(report, p, who, item, actual, &below, wants)
        };
        for (status, text, is_below) in results {
            if is_below {
                report.add(status, format!("{text}{suffix}"));
            } else {
                report.add(status, text);
            }
        }
    }

    /// Traces where a too-low value came from: returns the suffix for the findings and adds
    /// the chain and a remediation to the long output.
    #[allow(clippy::too_many_arguments)]
    fn provenance(
        &mut self,
        report: &mut Report,
        p: &Process,
        who: &str,
        item: &'static str,
        actual: Rlimit,
        below: &[&Want],
        wants: &[&Want],
    ) -> String {
        let t = provenance::trace(&self.root, p.pid(), item, actual);
        let mut chain = vec![format!("{who} {}", actual.describe())];
        chain.extend(
            t.chain
                .iter()
                .map(|a| format!("{} {}", a.who(), a.limit.describe())),
        );
        let mut detail = format!("{who} {item} {}: ", actual.describe());
        let suffix;
        if let Some(why) = &t.orphaned {
            suffix = ", its starting parent exited".to_string();
            detail.push_str(why);
        } else if let Some(o) = &t.origin {
            suffix = format!(
                ", inherited from {} ({item} {})",
                o.who(),
                o.limit.describe()
            );
            detail.push_str(&format!("inherited from {} ({})", o.who(), o.cmdline));
        } else if let Some(parent) = t.chain.first() {
            suffix = format!(
                ", not inherited ({} has {})",
                parent.who(),
                parent.limit.describe()
            );
            detail.push_str(&format!(
                "set by the process itself or its start command; its parent {} has {}",
                parent.who(),
                parent.limit.describe()
            ));
        } else {
            suffix = String::new();
            detail.push_str("no parent to inherit from");
        }
        detail.push_str(&format!("; chain: {}", chain.join(" <- ")));
        if let Some(e) = &t.error {
            detail.push_str(&format!(" (stopped: {e})"));
        }
        // Many processes from one bad parent would repeat the same story: tell it a few times.
        self.traced += 1;
        let tell = self.traced <= MAX_TOLD;
        if tell {
            report.detail(detail);
        } else {
            self.untold += 1;
        }
        // What to ask for: the highest expected value of each half, never below the actual.
        let pick = |hard: bool, current: Option<u64>| {
            wants
                .iter()
                .filter(|w| w.hard == hard)
                .map(|w| match (w.value, self.nr_open, item) {
                    (Some(v), Some(n), "nofile") => Some(v.min(n)),
                    (v, _, _) => v,
                })
                .chain(below.iter().filter(|w| w.hard == hard).map(|w| w.value))
                .chain(std::iter::once(current))
                .max_by(|a, b| cmp_limit(*a, *b))
                .flatten()
        };
        let hard = pick(true, actual.hard);
        let soft = limits_conf::clamp(pick(false, actual.soft), hard);
        let value = format!("{}:{}", show(soft), show(hard));
        let single = show(if soft == hard { hard } else { soft });
        let fixer = if t.orphaned.is_some() {
            None
        } else {
            t.origin.as_ref().or(t.chain.first())
        };
        let line = match fixer.and_then(|a| Some((a, Supervisor::recognise(&a.name, &a.cmdline)?)))
        {
            Some((a, sup)) => sup.remediation(&a.who(), item, &value, &single, p.pid()),
            None => generic_remediation(
                &fixer.map_or_else(|| "whatever".to_string(), |a| a.who()),
                item,
                &value,
                &single,
                p.pid(),
            ),
        };
        if tell {
            report.detail(line);
        }
        suffix
    }

    /// All expectations for one process.
    fn wants(&mut self, job: &Job, p: &Process, who: &str, report: &mut Report) -> Vec<Want> {
        let mut out = Vec::new();
        for (list, exact) in [(&job.exact, true), (&job.at_least, false)] {
            for (spec, source) in list {
                let kind = source.split(' ').next().unwrap_or_default().to_string();
                for (hard, v) in [(false, spec.spec.soft), (true, spec.spec.hard)] {
                    if let Some(value) = v {
                        out.push(Want {
                            item: spec.item,
                            hard,
                            value,
                            exact,
                            source: source.clone(),
                            kind: kind.clone(),
                            advisory: false,
                        });
                    }
                }
            }
        }
        if let Some(path) = &job.limits_conf {
            self.limits_conf_wants(path, job, p, who, report, &mut out);
        }
        if let Some(unit) = &job.systemd {
            self.systemd_wants(unit.as_deref(), job, p, who, report, &mut out);
        }
        if let Some(like) = &job.like {
            self.like_wants(like, job, p, report, &mut out);
        }
        out
    }

    /// The configuration files below `path` (a directory with limits.conf and limits.d, or
    /// one file), read once.
    fn conf_files(&mut self, path: &Path) -> Result<Vec<ConfFile>, String> {
        if let Some(c) = self.confs.get(path) {
            return c.clone();
        }
        let read = |file: &Path, name: String| -> Result<ConfFile, String> {
            files::read_regular_text(file, files::max::LIMITS_CONF, Follow::Always)
                .map(|text| ConfFile { name, text })
                .map_err(|e| e.to_string())
        };
        let result = (|| {
            if !path.is_dir() {
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                return Ok(vec![read(path, name)?]);
            }
            let mut main = path.join("limits.conf");
            // Newer Linux-PAM falls back to the vendor directory.
            if !main.exists() && path == Path::new("/etc/security") {
                let vendor = Path::new("/usr/etc/security/limits.conf");
                if vendor.exists() {
                    main = vendor.to_path_buf();
                }
            }
            let mut files = vec![read(&main, "limits.conf".to_string())?];
            let dir = path.join("limits.d");
            if let Ok(entries) = fs::read_dir(&dir) {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                for name in limits_conf::sort_limits_d(names) {
                    files.push(read(&dir.join(&name), format!("limits.d/{name}"))?);
                }
            }
            Ok(files)
        })();
        self.confs.insert(path.to_path_buf(), result.clone());
        result
    }

    fn accounts(&mut self) -> &(Vec<users::PasswdEntry>, Vec<users::GroupEntry>) {
        self.accounts.get_or_insert_with(|| {
            (
                accounts::read_passwd().unwrap_or_default(),
                accounts::read_group().unwrap_or_default(),
            )
        })
    }

    fn limits_conf_wants(
        &mut self,
        path: &Path,
        job: &Job,
        p: &Process,
        who: &str,
        report: &mut Report,
        out: &mut Vec<Want>,
    ) {
        let files = match self.conf_files(path) {
            Ok(f) => f,
            Err(e) => {
                self.once(report, Status::Unknown, format!("--limits-conf: {e}"));
                return;
            }
        };
        let status = match p.status() {
            Ok(s) => s,
            Err(e) => {
                report.unknown(e);
                return;
            }
        };
        let (passwd, groups) = self.accounts().clone();
        let id = users::identity(status.euid, status.egid, &status.groups, &passwd, &groups);
        let user = id.user.clone().unwrap_or_else(|| format!("uid {}", id.uid));
        let nr_open = self.nr_open.unwrap_or(1_048_576);
        let r = limits_conf::resolve(&files, &id, self.flavor, nr_open);
        self.conf_warnings.extend(r.warnings.iter().cloned());
        self.kinds.insert("limits.conf".into());
        if let Some(line) = &r.no_limits {
            report.add(
                Status::Ok,
                format!(
                    "{who}: pam_limits applies no limits to {user} ({})",
                    line.describe()
                ),
            );
            return;
        }
        let debian_root = self.flavor == Flavor::Debian && id.uid == 0;
        let upstream = debian_root
            .then(|| limits_conf::resolve(&files, &id, Flavor::Upstream, nr_open))
            .filter(|u| u.no_limits.is_none());
        for item in &job.items {
            let start = self
                .pid1
                .as_ref()
                .and_then(|l| l.get(item))
                .unwrap_or(Rlimit {
                    soft: None,
                    hard: None,
                });
            if conf_wants(&r, item, start, "", out) {
                continue;
            }
            // Debian's pam_limits skips '*' and '@group' lines for root. When such lines
            // would have set the item, a value below them is worth a WARNING: it is what the
            // file seems to promise (the incident's "root too"), but not what root gets.
            let skipped = ", not applied to root by Debian's pam_limits";
            if let Some(u) = &upstream {
                let before = out.len();
                if conf_wants(u, item, start, skipped, out) {
                    for w in &mut out[before..] {
                        w.advisory = true;
                    }
                    continue;
                }
            }
            let note = if debian_root {
                " (Debian: '*' and '@group' lines do not apply to root; --pam-flavor upstream applies them)"
            } else {
                ""
            };
            report.add(
                Status::Ok,
                format!("{who} {item}: limits.conf sets nothing for {user}{note}"),
            );
        }
    }

    fn systemd_wants(
        &mut self,
        unit: Option<&str>,
        job: &Job,
        p: &Process,
        who: &str,
        report: &mut Report,
        out: &mut Vec<Want>,
    ) {
        let unit = match unit {
            Some(u) => systemd::unit_name(u),
            None => match p.systemd_unit() {
                Ok(Some(u)) => u,
                Ok(None) => {
                    report.unknown(format!(
                        "{who}: --systemd: the process is not in a systemd unit's cgroup ({})",
                        {
                            let mut paths = p.cgroup_paths().unwrap_or_default();
                            paths.dedup();
                            paths.join(", ")
                        }
                    ));
                    return;
                }
                Err(e) => {
                    report.unknown(e);
                    return;
                }
            },
        };
        let key = format!("{unit} {}", job.items.join(","));
        if !self.units.contains_key(&key) {
            let mut props = systemd::limit_property_names(&job.items);
            props.push("LoadState".into());
            let props: Vec<&str> = props.iter().map(String::as_str).collect();
            let got = systemd::show(&unit, &props).map_err(|e| e.to_string());
            self.units.insert(key.clone(), got);
        }
        let props = match &self.units[&key] {
            Ok(p) => p.clone(),
            Err(e) => {
                self.once(report, Status::Unknown, format!("--systemd: {e}"));
                return;
            }
        };
        if props.get("LoadState").is_some_and(|s| s == "not-found") {
            self.once(
                report,
                Status::Unknown,
                format!("--systemd: unit {unit} not found (LoadState=not-found)"),
            );
            return;
        }
        self.kinds.insert(format!("unit {unit}"));
        for item in &job.items {
            let Some(prop) = systemd::limit_property(item) else {
                continue;
            };
            match systemd::unit_limit(&props, item) {
                Ok(Some(l)) => {
                    for (hard, v) in [(false, l.soft), (true, l.hard)] {
                        let name = if hard {
                            prop.to_string()
                        } else {
                            format!("{prop}Soft")
                        };
                        let shown = props.get(&name).cloned().unwrap_or_else(|| show(v));
                        // NOFILE cannot be infinite: systemd falls back to the highest it can.
                        let (value, note) = match (v, item) {
                            (None, &"nofile") => (self.nr_open, " -> fs.nr_open"),
                            _ => (v, ""),
                        };
                        out.push(Want {
                            item,
                            hard,
                            value,
                            exact: true,
                            source: format!("unit {unit} {name}={shown}{note}"),
                            kind: format!("unit {unit}"),
                            advisory: false,
                        });
                    }
                }
                Ok(None) => report.unknown(format!(
                    "--systemd: systemctl show {unit} printed no {prop}{}",
                    if unit.ends_with(".scope") {
                        " (a scope: its processes were not started by systemd, so it has no Limit*= settings)"
                    } else {
                        ""
                    }
                )),
                Err(e) => self.once(
                    report,
                    Status::Unknown,
                    format!("--systemd: unit {unit}: {e}"),
                ),
            }
        }
    }

    fn like_wants(
        &mut self,
        like: &Like,
        job: &Job,
        p: &Process,
        report: &mut Report,
        out: &mut Vec<Want>,
    ) {
        let (flag, pid) = match like {
            Like::Pid(pid) => (format!("--like-pid {pid}"), *pid),
            Like::Pidfile(path) => {
                let flag = format!("--like-pidfile {}", path.display());
                // The reference must be running: a missing, empty or dead pidfile leaves
                // nothing to compare with.
                let pid = match pid_from_pidfile(&self.root, path) {
                    Ok(found) => found,
                    Err(e) => Err(e.to_string()),
                };
                match pid {
                    Ok(pid) => (flag, pid),
                    Err(e) => {
                        self.once(report, Status::Unknown, format!("{flag}: {e}"));
                        return;
                    }
                }
            }
        };
        if pid == p.pid() {
            return; // the reference itself
        }
        let reference = self.root.process(pid);
        let limits = match reference.limits() {
            Ok(l) => l,
            Err(e) if e.is_not_found() => {
                self.once(
                    report,
                    Status::Unknown,
                    format!("{flag}: no process with pid {pid}"),
                );
                return;
            }
            Err(e) => {
                self.once(report, Status::Unknown, format!("{flag}: {e}"));
                return;
            }
        };
        let name = format!("{}[{pid}]", reference.name());
        self.kinds.insert(format!("like {name}"));
        for item in &job.items {
            if let Some(l) = limits.get(item) {
                for (hard, v) in [(false, l.soft), (true, l.hard)] {
                    out.push(Want {
                        item,
                        hard,
                        value: v,
                        exact: true,
                        source: format!("like {name} {item} {}", l.describe()),
                        kind: format!("like {name}"),
                        advisory: false,
                    });
                }
            }
        }
    }

    /// The OK summary: the checked values and the kinds of sources.
    fn summarise(&self, jobs: &[Job], report: &mut Report) {
        let kinds: Vec<&str> = self.kinds.iter().map(String::as_str).collect();
        let kinds = if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        };
        // Nothing was compared (e.g. limits.conf sets nothing for the user): the findings
        // themselves say so.
        if self.compared == 0 {
            return;
        }
        let summary = match self.checked.len() {
            0 => return,
            1 => format!("{} as expected{kinds}", self.checked[0]),
            n => {
                let items: BTreeSet<&str> =
                    jobs.iter().flat_map(|j| j.items.iter().copied()).collect();
                let what = if jobs.len() > 1 {
                    format!("{} services", jobs.len())
                } else {
                    jobs[0].selector.describe()
                };
                format!(
                    "{n} processes ({what}) have the expected {}{kinds}",
                    items.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        };
        report.ok_summary(summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::try_parse_from(std::iter::once("check_rlimit_match").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_flag_parses() {
        let a = parse(&["--pid", "7", "--item", "nofile", "--item", "NPROC"]).unwrap();
        assert_eq!(a.items, ["nofile", "nproc"]);
        assert!(parse(&["--item", "nofle"]).is_err());

        let a = parse(&[
            "--pid",
            "7",
            "--expect",
            "nofile=1024:4096",
            "--expect",
            "core=unlimited",
        ])
        .unwrap();
        assert_eq!(a.expect.len(), 2);
        assert_eq!(a.expect[1].to_string(), "core=unlimited");
        assert!(parse(&["--expect", "nofile"]).is_err());

        let a = parse(&["--pid", "7", "--at-least", "nofile=65536"]).unwrap();
        assert_eq!(a.at_least[0].spec.soft, Some(Some(65536)));
        assert_eq!(a.at_least[0].spec.hard, None);

        let a = parse(&["--limits-conf", "--pid", "7"]).unwrap();
        assert_eq!(a.limits_conf, Some(PathBuf::from("/etc/security")));
        let a = parse(&["--pid", "7", "--limits-conf", "/tmp/x.conf"]).unwrap();
        assert_eq!(a.limits_conf, Some(PathBuf::from("/tmp/x.conf")));
        assert_eq!(parse(&["--pid", "7"]).unwrap().limits_conf, None);

        assert_eq!(parse(&["--pid", "7"]).unwrap().pam_flavor, PamFlavor::Auto);
        assert_eq!(
            parse(&["--pid", "7", "--pam-flavor", "upstream"])
                .unwrap()
                .pam_flavor,
            PamFlavor::Upstream
        );
        assert!(parse(&["--pam-flavor", "arch"]).is_err());

        let a = parse(&["--systemd", "--pid", "7"]).unwrap();
        assert_eq!(a.systemd.as_deref(), Some(""));
        let a = parse(&["--pid", "7", "--systemd=nginx.service"]).unwrap();
        assert_eq!(a.systemd.as_deref(), Some("nginx.service"));

        let a = parse(&["--config", "/x.yaml", "--service", "node"]).unwrap();
        assert_eq!(a.service.as_deref(), Some("node"));
        assert!(
            parse(&["--service", "node"]).is_err(),
            "--service needs --config"
        );
        assert!(parse(&["--config", "/x.yaml", "--pid", "3"]).is_err());

        let a = parse(&["--pid", "7", "--like-pid", "812"]).unwrap();
        assert_eq!(a.like_pid, Some(812));
        let a = parse(&["--pid", "7", "--like-pidfile", "/run/a.pid"]).unwrap();
        assert_eq!(a.like_pidfile, Some(PathBuf::from("/run/a.pid")));
        assert!(parse(&["--like-pid", "1", "--like-pidfile", "/a"]).is_err());
    }

    #[test]
    fn jobs_need_a_selector_and_a_source_and_collect_items() {
        let a = parse(&["--pid", "7"]).unwrap();
        assert!(jobs(&a)
            .unwrap_err()
            .to_string()
            .starts_with("no expectation"));
        let a = parse(&["--expect", "nofile=1"]).unwrap();
        assert!(jobs(&a)
            .unwrap_err()
            .to_string()
            .starts_with("no process selected"));
        let a = parse(&["--unit", "web"]).unwrap();
        assert_eq!(jobs(&a).unwrap()[0].systemd, Some(Some("web".into())));
        let a = parse(&["--unit", "web", "--systemd"]).unwrap();
        assert_eq!(jobs(&a).unwrap()[0].systemd, Some(Some("web".into())));
        let a = parse(&["--pid", "1", "--systemd"]).unwrap();
        assert_eq!(jobs(&a).unwrap()[0].systemd, Some(None));
        let a = parse(&["--pid", "7", "--limits-conf"]).unwrap();
        assert_eq!(jobs(&a).unwrap()[0].items, ["nofile"]);
        let a = parse(&[
            "--pid",
            "7",
            "--item",
            "core",
            "--expect",
            "nproc=1",
            "--at-least",
            "core=2",
        ])
        .unwrap();
        let j = &jobs(&a).unwrap()[0];
        assert_eq!(j.items, ["core", "nproc"]);
        assert_eq!(j.exact[0].1, "--expect nproc=1");
    }

    #[test]
    fn limit_order_puts_unlimited_on_top() {
        assert_eq!(cmp_limit(Some(1), None), Ordering::Less);
        assert_eq!(cmp_limit(None, Some(u64::MAX - 1)), Ordering::Greater);
        assert_eq!(cmp_limit(None, None), Ordering::Equal);
        assert_eq!(cmp_limit(Some(5), Some(4)), Ordering::Greater);
    }
}
