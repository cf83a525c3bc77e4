//! Evaluation: a pure function of the [`Observation`], the arguments and a way to name a
//! process, returning the report. Every threshold goes through `Report::metric` /
//! `Report::alert` (docs/contract.md §4.4).

use procguard_common::number::percent;
use procguard_common::proc::limits::FdUsage;
use procguard_common::select::report_vanished;
use procguard_common::{CheckError, PerfData, Range, Report, Status, Threshold, Thresholds, Uom};

use crate::acquire::{Observation, Processes, System};
use crate::Args;

const DEFAULT_WARNING: &str = "80%";
const DEFAULT_CRITICAL: &str = "90%";

/// Fill ratio of the soft limit; 0 when unlimited (such a process sorts last).
pub fn fill(u: &FdUsage) -> f64 {
    u.ratio().unwrap_or(0.0)
}

/// The evaluation rules, resolved once from the arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    warning: Threshold,
    critical: Threshold,
    headroom: Thresholds,
}

impl Rules {
    /// `-w`/`-c` (default 80%/90% of the soft limit) and the headroom thresholds.
    pub fn new(args: &Args) -> Result<Rules, CheckError> {
        let parse = |t: &str| t.parse::<Threshold>().map_err(CheckError::Config);
        #[allow(clippy::cast_precision_loss)] // fd counts are far below 2^52
        let below = |n: Option<u64>| n.map(|n| Range::below(n as f64));
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
                warning: below(args.headroom_warning),
                critical: below(args.headroom_critical),
            },
        })
    }

    /// `-w`/`-c` for this process: `N%` resolved against its soft limit.
    fn thresholds(&self, u: &FdUsage) -> Thresholds {
        #[allow(clippy::cast_precision_loss)]
        let soft = u.nofile.soft.map(|s| s as f64);
        Thresholds {
            warning: self.warning.resolve(soft),
            critical: self.critical.resolve(soft),
        }
    }

    fn has_headroom(&self) -> bool {
        self.headroom != Thresholds::default()
    }

    /// Whether the process crosses any threshold (without adding anything to a report).
    #[allow(clippy::cast_precision_loss)]
    fn crosses(&self, u: &FdUsage) -> bool {
        let left = u
            .headroom()
            .map_or(Status::Ok, |left| self.headroom.judge(left as f64).status);
        self.thresholds(u).judge(u.fds as f64).status != Status::Ok || left != Status::Ok
    }

    /// Judges one process. With a perfdata `label` (a selected process) its fds are a
    /// metric; without (`--all`) only a crossing becomes a finding.
    #[allow(clippy::cast_precision_loss)]
    fn judge(&self, report: &mut Report, u: &FdUsage, who: &str, label: Option<&str>) -> Status {
        let thresholds = self.thresholds(u);
        let text = describe(u, who);
        let status = match label {
            Some(label) => {
                let perf = PerfData::new(&format!("{label}_fds"), u.fds)
                    .min(0)
                    .max(u.nofile.soft);
                report.metric(u.fds as f64, &thresholds, text, perf)
            }
            None => report.alert(who, u.fds as f64, &thresholds, text),
        };
        let (Some(left), Some(soft), true) = (u.headroom(), u.nofile.soft, self.has_headroom())
        else {
            return status;
        };
        let text = format!("{who} only {left} fds left below its soft limit {soft}");
        let headroom = match label {
            Some(label) => {
                let perf = PerfData::new(&format!("{label}_headroom"), left).min(0);
                report.secondary_metric(left as f64, &self.headroom, text, perf)
            }
            None => report.alert(who, left as f64, &self.headroom, text),
        };
        status.worse(headroom)
    }
}

/// `node[2100] 1021/1024 open files (99.7% of soft limit; hard 4096)`.
fn describe(u: &FdUsage, who: &str) -> String {
    match u.nofile.soft {
        Some(_) => format!("{who} {}", u.describe()),
        None => format!(
            "{who} {} open files (soft limit unlimited: percent thresholds not applied)",
            u.fds
        ),
    }
}

/// The report for one run. `name` gives `name[pid]` for a process of `--all` (a readlink
/// each, so only the listed and the failing are named).
pub fn evaluate(
    obs: Observation,
    args: &Args,
    rules: &Rules,
    name: &mut dyn FnMut(i32) -> String,
) -> Report {
    let mut report = obs.notes;
    let mut fullest_who = None;
    match &obs.processes {
        Some(Processes::Selected { procs, vanished }) => {
            selected(&mut report, procs, *vanished, args, rules);
        }
        Some(Processes::All { procs, unreadable }) => {
            fullest_who = procs.first().map(|(pid, _)| name(*pid));
            let over = all(
                &mut report,
                procs,
                fullest_who.as_deref(),
                args,
                rules,
                name,
            );
            all_summary(&mut report, procs, unreadable, fullest_who.as_deref(), over);
        }
        None => {}
    }
    if let Some(system) = &obs.system {
        host(&mut report, system, args);
    }
    if let Some((i, targets)) = &obs.fullest_fds {
        let who = match &obs.processes {
            Some(Processes::Selected { procs, .. }) => {
                procs[*i].as_ref().map(|(s, _)| s.display()).ok()
            }
            _ => fullest_who,
        };
        if let Some(who) = who {
            report.verbose_detail(fd_kinds(&who, targets));
        }
    }
    report
}

fn selected(
    report: &mut Report,
    procs: &[Result<(procguard_common::select::Selected, FdUsage), CheckError>],
    vanished: usize,
    args: &Args,
    rules: &Rules,
) {
    for p in procs {
        match p {
            Ok((s, u)) => {
                rules.judge(report, u, &s.display(), Some(&s.label));
            }
            Err(e) => report.unknown(e),
        }
    }
    report_vanished(report, &args.select, procs.len() + vanished, vanished);
    if procs.len() > 1 {
        report.ok_summary(format!(
            "{} processes below fd thresholds ({})",
            procs.len(),
            args.select.describe()
        ));
    }
}

/// `--all`: the failing processes as findings, the `--top` fullest as a list; returns how
/// many fail.
fn all(
    report: &mut Report,
    procs: &[(i32, FdUsage)],
    fullest_who: Option<&str>,
    args: &Args,
    rules: &Rules,
    name: &mut dyn FnMut(i32) -> String,
) -> usize {
    let mut over = 0;
    for (rank, (pid, u)) in procs.iter().enumerate() {
        let failing = rules.crosses(u);
        if !failing && rank >= args.top {
            continue;
        }
        let who = match (rank, fullest_who) {
            (0, Some(w)) => w.to_string(),
            _ => name(*pid),
        };
        if failing {
            over += 1;
            rules.judge(report, u, &who, None);
        }
        if rank < args.top {
            report.detail(format!("{}. {}", rank + 1, describe(u, &who)));
        }
    }
    over
}

/// `--all`: the summary finding and the host-wide perfdata.
fn all_summary(
    report: &mut Report,
    procs: &[(i32, FdUsage)],
    unreadable: &[CheckError],
    fullest_who: Option<&str>,
    over: usize,
) {
    for e in unreadable {
        report.verbose_detail(format!("unreadable: {e}"));
    }
    let fullest = procs
        .first()
        .zip(fullest_who)
        .map(|((_, u), w)| format!("; fullest {}", describe(u, w)))
        .unwrap_or_default();
    let unreadable_note = if unreadable.is_empty() {
        String::new()
    } else {
        format!(", {} unreadable (-v lists them)", unreadable.len())
    };
    let n = procs.len();
    report.add(
        Status::Ok,
        format!("{n} processes checked{unreadable_note}{fullest}"),
    );
    report.ok_summary(format!(
        "{n} processes below fd thresholds{unreadable_note}{fullest}"
    ));
    report.perf(PerfData::new("processes", n).min(0));
    report.perf(PerfData::new("unreadable", unreadable.len()).min(0));
    report.perf(PerfData::new("over_threshold", over).min(0));
    let fullest_pct = procs
        .first()
        .map_or(0.0, |(_, u)| (fill(u) * 1000.0).round() / 10.0);
    report.perf(
        PerfData::new("fullest_pct", fullest_pct)
            .uom(Uom::Percent)
            .min(0)
            .max(Some(100)),
    );
}

/// Host-wide file handles against fs.file-max.
#[allow(clippy::cast_precision_loss)] // thresholds are f64; the perfdata stays exact
fn host(report: &mut Report, system: &System, args: &Args) {
    let nr = system.file_nr;
    let max = Some(nr.max as f64);
    let thresholds = Thresholds {
        warning: args.system_warning.resolve(max),
        critical: args.system_critical.resolve(max),
    };
    let text = format!(
        "host {}/{} file handles allocated ({}% of fs.file-max)",
        nr.allocated,
        nr.max,
        percent(nr.allocated as f64, nr.max.max(1) as f64, 2)
    );
    let perf = PerfData::new("file_handles", nr.allocated)
        .min(0)
        .max(Some(nr.max));
    report.metric(nr.allocated as f64, &thresholds, text, perf);
    match &system.nr_open {
        Ok(nr_open) => report.perf(PerfData::new("nr_open", *nr_open).min(0)),
        Err(e) => report.verbose_detail(e.to_string()),
    }
}

/// `node[2100] fds by kind: 980 socket, 20 file, ...`.
fn fd_kinds(who: &str, targets: &Result<Vec<String>, CheckError>) -> String {
    let targets = match targets {
        Ok(t) => t,
        Err(e) => return format!("{who} fds by kind: {e}"),
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    for target in targets {
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
mod tests;
