//! check_fd_usage: open file descriptors against each process's own soft `nofile` limit
//! (open(), accept() and socket() fail with EMFILE once it is reached), and host-wide file
//! handles against fs.file-max.

use clap::Parser;
use procguard_common::perfdata::format_number;
use procguard_common::proc::limits::show;
use procguard_common::proc::{FileNr, ProcRoot, Rlimit};
use procguard_common::select::{report_vanished, Selector};
use procguard_common::{
    CheckArgs, CheckError, CommonArgs, PerfData, Range, Report, Status, Threshold, ThresholdArgs,
    Thresholds, Uom,
};

/// Alert when processes approach their own open-files limit.
///
/// -w/-c are ranges on the number of open fds of each process; N% means percent of that
/// process's soft nofile limit (default -w 80% -c 90%). Without selectors it checks every
/// process on the host and the host-wide file handles (--all --system).
#[derive(Parser, Debug)]
#[command(name = "check_fd_usage", version, about, long_about)]
pub struct Args {
    #[command(flatten)]
    pub thresholds: ThresholdArgs,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub select: Selector,

    /// Check every process and report the fullest (the default when no selector is given)
    #[arg(long, conflicts_with_all = ["pid", "pidfile", "name", "cmdline", "user", "unit", "ppid"])]
    pub all: bool,

    /// With --all: how many of the fullest processes to list
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,

    /// Also check host-wide file handles (/proc/sys/fs/file-nr against fs.file-max)
    #[arg(long)]
    pub system: bool,

    /// Warning threshold for host-wide file handles (N% of fs.file-max, or a count)
    #[arg(long, value_name = "RANGE", default_value = "80%")]
    pub system_warning: Threshold,

    /// Critical threshold for host-wide file handles (N% of fs.file-max, or a count)
    #[arg(long, value_name = "RANGE", default_value = "90%")]
    pub system_critical: Threshold,

    /// Warning when fewer than N fds remain below the soft limit
    #[arg(long, value_name = "N")]
    pub headroom_warning: Option<u64>,

    /// Critical when fewer than N fds remain below the soft limit
    #[arg(long, value_name = "N")]
    pub headroom_critical: Option<u64>,
}

impl CheckArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

const DEFAULT_WARNING: &str = "80%";
const DEFAULT_CRITICAL: &str = "90%";

/// One process's fd usage.
struct Usage {
    pid: i32,
    fds: u64,
    nofile: Rlimit,
}

impl Usage {
    fn read(root: &ProcRoot, pid: i32) -> Result<Usage, CheckError> {
        let p = root.process(pid);
        Ok(Usage {
            pid,
            nofile: p.limits()?.nofile(),
            fds: p.fd_count()?,
        })
    }

    /// Fill ratio of the soft limit, 0 when unlimited.
    fn ratio(&self) -> f64 {
        self.nofile
            .soft
            .map_or(0.0, |soft| self.fds as f64 / soft.max(1) as f64)
    }

    fn describe(&self, who: &str) -> String {
        match self.nofile.soft {
            Some(soft) => format!(
                "{who} {}/{soft} open files ({}% of soft limit; hard {})",
                self.fds,
                format_number((self.ratio() * 1000.0).round() / 10.0),
                show(self.nofile.hard)
            ),
            None => format!(
                "{who} {} open files (soft limit unlimited: percent thresholds not applied)",
                self.fds
            ),
        }
    }
}

/// The evaluation rules, resolved once.
struct Rules {
    warning: Threshold,
    critical: Threshold,
    headroom: Thresholds,
}

impl Rules {
    fn new(args: &Args) -> Result<Rules, CheckError> {
        let parse = |t: &str| t.parse::<Threshold>().map_err(CheckError::Config);
        Ok(Rules {
            warning: args
                .thresholds
                .warning
                .map_or_else(|| parse(DEFAULT_WARNING), Ok)?,
            critical: args
                .thresholds
                .critical
                .map_or_else(|| parse(DEFAULT_CRITICAL), Ok)?,
            headroom: Thresholds {
                warning: args.headroom_warning.map(|n| Range::below(n as f64)),
                critical: args.headroom_critical.map(|n| Range::below(n as f64)),
            },
        })
    }

    fn thresholds(&self, u: &Usage) -> Thresholds {
        let soft = u.nofile.soft.map(|s| s as f64);
        Thresholds {
            warning: self.warning.resolve(soft),
            critical: self.critical.resolve(soft),
        }
    }

    /// The state of one process, without adding anything to a report.
    fn status(&self, u: &Usage) -> Status {
        let headroom = u.nofile.soft.map_or(Status::Ok, |soft| {
            self.headroom.evaluate(soft.saturating_sub(u.fds) as f64)
        });
        self.thresholds(u).evaluate(u.fds as f64).worse(headroom)
    }

    /// Adds the findings for one process; with `perf_label`, its perfdata too.
    fn evaluate(
        &self,
        report: &mut Report,
        u: &Usage,
        who: &str,
        perf_label: Option<&str>,
    ) -> Status {
        let thresholds = self.thresholds(u);
        let text = u.describe(who);
        let max = u.nofile.soft.map(|s| s as f64);
        let status = match perf_label {
            Some(label) => {
                let perf = PerfData::new(&format!("{label}_fds"), u.fds as f64)
                    .min(0.0)
                    .max(max);
                report.metric(u.fds as f64, &thresholds, text, perf)
            }
            None => {
                let status = thresholds.evaluate(u.fds as f64);
                if status != Status::Ok {
                    let why = thresholds
                        .violated(u.fds as f64)
                        .map(|r| r.violation())
                        .unwrap_or_default();
                    report.add(status, format!("{text} ({why})"));
                }
                status
            }
        };
        let Some(soft) = u.nofile.soft else {
            return status;
        };
        let left = soft.saturating_sub(u.fds);
        let headroom_status = self.headroom.evaluate(left as f64);
        if headroom_status != Status::Ok {
            report.add(
                headroom_status,
                format!("{who} only {left} fds left below its soft limit {soft}"),
            );
        }
        if let (Some(label), true) = (perf_label, self.headroom != Thresholds::default()) {
            report.perf(
                PerfData::new(&format!("{label}_headroom"), left as f64)
                    .thresholds(&self.headroom)
                    .min(0.0),
            );
        }
        status.worse(headroom_status)
    }
}

/// The check.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    let root = ProcRoot::open(&args.common.proc_root)?;
    let rules = Rules::new(args)?;
    let mut report = Report::default();
    let bare = args.select.is_empty() && !args.all && !args.system;
    let mut worst: Option<(Usage, String)> = None;
    if !args.select.is_empty() {
        worst = check_selected(&root, args, &rules, &mut report)?;
    } else if args.all || bare {
        worst = check_all(&root, args, &rules, &mut report)?;
    }
    if args.system || bare {
        check_system(&root, args, &mut report)?;
    }
    if args.common.verbose > 0 {
        if let Some((usage, who)) = worst {
            report.verbose_detail(fd_kinds(&root, &usage, &who));
        }
    }
    Ok(report)
}

/// Evaluates each selected process; returns the fullest.
fn check_selected(
    root: &ProcRoot,
    args: &Args,
    rules: &Rules,
    report: &mut Report,
) -> Result<Option<(Usage, String)>, CheckError> {
    let selected = args
        .select
        .resolve(root, args.common.label.as_deref(), report)?;
    let mut worst: Option<(Usage, String)> = None;
    let mut vanished = 0;
    for s in &selected {
        let who = s.display();
        match Usage::read(root, s.pid) {
            Ok(u) => {
                rules.evaluate(report, &u, &who, Some(&s.label));
                if worst.as_ref().is_none_or(|(w, _)| u.ratio() > w.ratio()) {
                    worst = Some((u, who));
                }
            }
            Err(e) if e.is_not_found() => vanished += 1,
            Err(e) => report.unknown(e),
        }
    }
    report_vanished(report, &args.select, selected.len(), vanished);
    let checked = selected.len() - vanished;
    if checked > 1 {
        report.ok_summary(format!(
            "{checked} processes below fd thresholds ({})",
            args.select.describe()
        ));
    }
    Ok(worst)
}

/// Evaluates every process on the host; lists the fullest `--top`.
fn check_all(
    root: &ProcRoot,
    args: &Args,
    rules: &Rules,
    report: &mut Report,
) -> Result<Option<(Usage, String)>, CheckError> {
    let me = std::process::id() as i32;
    let mut usages = Vec::new();
    let mut unreadable = Vec::new();
    for pid in root.pids()?.into_iter().filter(|&p| p != me) {
        match Usage::read(root, pid) {
            Ok(u) => usages.push(u),
            Err(e) if e.is_not_found() => {} // exited during the scan
            Err(e) => unreadable.push(e),
        }
    }
    usages.sort_by(|a, b| b.ratio().total_cmp(&a.ratio()).then(b.fds.cmp(&a.fds)));
    let who = |u: &Usage| root.process(u.pid).who();
    // Only the fullest, the listed and the failing are named (a readlink each), once each.
    let fullest_who = usages.first().map(who);
    let mut problems = 0;
    for (rank, u) in usages.iter().enumerate() {
        let failing = rules.status(u) != Status::Ok;
        if !failing && rank >= args.top {
            continue;
        }
        let name = match (rank, &fullest_who) {
            (0, Some(w)) => w.clone(),
            _ => who(u),
        };
        if failing {
            problems += 1;
            rules.evaluate(report, u, &name, None);
        }
        if rank < args.top {
            report.detail(format!("{}. {}", rank + 1, u.describe(&name)));
        }
    }
    for e in &unreadable {
        report.verbose_detail(format!("unreadable: {e}"));
    }
    let fullest = usages
        .first()
        .zip(fullest_who.as_deref())
        .map(|(u, w)| format!("; fullest {}", u.describe(w)))
        .unwrap_or_default();
    let unreadable_note = if unreadable.is_empty() {
        String::new()
    } else {
        format!(", {} unreadable (-v lists them)", unreadable.len())
    };
    report.add(
        Status::Ok,
        format!(
            "{} processes checked{unreadable_note}{fullest}",
            usages.len()
        ),
    );
    report.ok_summary(format!(
        "{} processes below fd thresholds{unreadable_note}{fullest}",
        usages.len()
    ));
    report.perf(PerfData::new("processes", usages.len() as f64).min(0.0));
    report.perf(PerfData::new("unreadable", unreadable.len() as f64).min(0.0));
    report.perf(PerfData::new("over_threshold", f64::from(problems)).min(0.0));
    let fullest_pct = usages
        .first()
        .map_or(0.0, |u| (u.ratio() * 1000.0).round() / 10.0);
    report.perf(
        PerfData::new("fullest_pct", fullest_pct)
            .uom(Uom::Percent)
            .min(0.0)
            .max(Some(100.0)),
    );
    Ok(usages.into_iter().next().zip(fullest_who))
}

/// Host-wide file handles against fs.file-max.
fn check_system(root: &ProcRoot, args: &Args, report: &mut Report) -> Result<(), CheckError> {
    let nr = FileNr::read(root)?;
    let max = Some(nr.max as f64);
    let thresholds = Thresholds {
        warning: args.system_warning.resolve(max),
        critical: args.system_critical.resolve(max),
    };
    let pct = nr.allocated as f64 * 100.0 / nr.max.max(1) as f64;
    let text = format!(
        "host {}/{} file handles allocated ({}% of fs.file-max)",
        nr.allocated,
        nr.max,
        format_number((pct * 100.0).round() / 100.0)
    );
    let perf = PerfData::new("file_handles", nr.allocated as f64)
        .min(0.0)
        .max(max);
    report.metric(nr.allocated as f64, &thresholds, text, perf);
    match root.read_u64("sys/fs/nr_open") {
        Ok(nr_open) => report.perf(PerfData::new("nr_open", nr_open as f64).min(0.0)),
        Err(e) => report.verbose_detail(e.to_string()),
    }
    Ok(())
}

/// `node[2100] fds by kind: 980 socket, 20 file, ...` (one readlink per fd).
fn fd_kinds(root: &ProcRoot, usage: &Usage, who: &str) -> String {
    let targets = match root.process(usage.pid).fd_targets() {
        Ok(t) => t,
        Err(e) => return format!("{who} fds by kind: {e}"),
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    for target in &targets {
        let kind = fd_kind(target);
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{who} fds by kind: {}", parts.join(", "))
}

/// The kind of an fd from its /proc/PID/fd link target.
fn fd_kind(target: &str) -> String {
    if target.starts_with("socket:") {
        "socket".into()
    } else if target.starts_with("pipe:") {
        "pipe".into()
    } else if let Some(anon) = target.strip_prefix("anon_inode:") {
        // eventpoll, eventfd, timerfd, inotify, ... tell an event loop's fds apart.
        format!("anon_inode {}", anon.trim_matches(['[', ']']))
    } else if target.starts_with("/dev/") {
        "device".into()
    } else if target.starts_with('/') {
        "file".into()
    } else {
        "other".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_kinds_from_link_targets() {
        assert_eq!(fd_kind("socket:[12345]"), "socket");
        assert_eq!(fd_kind("pipe:[99]"), "pipe");
        assert_eq!(fd_kind("anon_inode:[eventpoll]"), "anon_inode eventpoll");
        assert_eq!(fd_kind("anon_inode:inotify"), "anon_inode inotify");
        assert_eq!(fd_kind("/dev/null"), "device");
        assert_eq!(fd_kind("/var/log/app.log (deleted)"), "file");
        assert_eq!(fd_kind("net:[4026531840]"), "other");
    }

    #[test]
    fn each_option_parses() {
        let a = Args::try_parse_from([
            "x",
            "--pid",
            "7",
            "-w",
            "50%",
            "-c",
            "900",
            "--headroom-critical",
            "10",
        ])
        .unwrap();
        assert_eq!(a.select.pid, Some(7));
        assert!(a.thresholds.warning.unwrap().is_percent());
        assert_eq!(a.thresholds.critical.unwrap().to_string(), "900");
        assert_eq!(a.headroom_critical, Some(10));
        assert!(Args::try_parse_from(["x", "--all", "--pid", "7"]).is_err());
        let a = Args::try_parse_from(["x", "--system", "--system-critical", "95%", "--top", "3"])
            .unwrap();
        assert_eq!(
            (a.system, a.top, a.system_critical.to_string()),
            (true, 3, "95%".to_string())
        );
    }

    #[test]
    fn usage_text() {
        let u = Usage {
            pid: 2100,
            fds: 1021,
            nofile: Rlimit {
                soft: Some(1024),
                hard: Some(4096),
            },
        };
        assert_eq!(
            u.describe("node[2100]"),
            "node[2100] 1021/1024 open files (99.7% of soft limit; hard 4096)"
        );
        let rules = Rules {
            warning: "80%".parse().unwrap(),
            critical: "90%".parse().unwrap(),
            headroom: Thresholds::default(),
        };
        let mut report = Report::default();
        assert_eq!(
            rules.evaluate(&mut report, &u, "node[2100]", Some("node")),
            Status::Critical
        );
        assert_eq!(
            report.render("FD_USAGE", 0).0,
            "FD_USAGE CRITICAL - node[2100] 1021/1024 open files (99.7% of soft limit; hard 4096) (critical > 921) | 'node_fds'=1021;819;921;0;1024"
        );
        let unlimited = Usage {
            pid: 1,
            fds: 5,
            nofile: Rlimit {
                soft: None,
                hard: None,
            },
        };
        let mut report = Report::default();
        assert_eq!(
            rules.evaluate(&mut report, &unlimited, "x[1]", Some("x")),
            Status::Ok
        );
        assert!(report
            .render("FD_USAGE", 0)
            .0
            .contains("soft limit unlimited: percent thresholds not applied"));
    }
}
