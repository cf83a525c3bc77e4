//! What to check in this run: one job from the command line, or one per YAML service. A job
//! is a process selection, the items to check and the expectation sources to ask.

use std::path::PathBuf;

use procguard_common::select::Selector;
use procguard_common::CheckError;

use crate::source::cli::{self, Stated};
use crate::source::yaml;
use crate::Args;

/// Which systemd unit's `Limit*=` values are expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitChoice {
    /// The unit whose cgroup holds the process.
    OfProcess,
    /// This unit.
    Named(String),
}

impl UnitChoice {
    /// `--systemd` with an optional unit name; without one, `--unit`'s unit if given.
    pub fn from_flag(unit: &str, selected_unit: Option<&String>) -> UnitChoice {
        match (unit, selected_unit) {
            ("", None) => UnitChoice::OfProcess,
            ("", Some(u)) => UnitChoice::Named(u.clone()),
            (u, _) => UnitChoice::Named(u.to_string()),
        }
    }
}

/// Another process whose limits are expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Like {
    /// `--like-pid`.
    Pid(i32),
    /// `--like-pidfile`.
    Pidfile(PathBuf),
}

impl Like {
    /// From `--like-pid` / `--like-pidfile` (or the YAML keys).
    pub fn from_options(pid: Option<i32>, pidfile: Option<&PathBuf>) -> Option<Like> {
        pid.map(Like::Pid)
            .or_else(|| pidfile.map(|p| Like::Pidfile(p.clone())))
    }
}

/// One thing to check: processes and the sources of what they should have.
#[derive(Debug, Clone)]
pub struct Job {
    /// The YAML service's name (config mode).
    pub service: Option<String>,
    /// Which processes.
    pub selector: Selector,
    /// Perfdata label prefix.
    pub label: Option<String>,
    /// The items checked.
    pub items: Vec<&'static str>,
    /// Values written as `ITEM=SOFT[:HARD]`: exact ones first, then minimums.
    pub stated: Vec<Stated>,
    /// limits.conf: a directory with limits.conf and limits.d, or one file.
    pub limits_conf: Option<PathBuf>,
    /// A systemd unit.
    pub systemd: Option<UnitChoice>,
    /// Another process.
    pub like: Option<Like>,
}

impl Job {
    /// Whether any expectation source is given.
    pub fn has_source(&self) -> bool {
        !self.stated.is_empty()
            || self.limits_conf.is_some()
            || self.systemd.is_some()
            || self.like.is_some()
    }

    /// Sets [`Job::items`]: the `--item` values plus the items named by stated
    /// expectations, in that order; nofile when none.
    pub fn with_items(mut self, extra: &[&'static str]) -> Job {
        let mut items: Vec<&'static str> = Vec::new();
        for item in extra
            .iter()
            .copied()
            .chain(self.stated.iter().map(|s| s.spec.item))
        {
            if !items.contains(&item) {
                items.push(item);
            }
        }
        if items.is_empty() {
            items.push("nofile");
        }
        self.items = items;
        self
    }
}

/// The jobs of this run: one from the command line, or one per config service.
pub fn jobs(args: &Args) -> Result<Vec<Job>, CheckError> {
    let cli = Job {
        service: None,
        selector: args.select.clone(),
        label: args.common.label.clone(),
        items: Vec::new(),
        stated: cli::stated(&args.expect, &args.at_least),
        limits_conf: args.limits_conf.clone(),
        systemd: args
            .systemd
            .as_deref()
            .map(|u| UnitChoice::from_flag(u, args.select.unit.as_ref())),
        like: Like::from_options(args.like_pid, args.like_pidfile.as_ref()),
    };
    if let Some(path) = &args.config {
        return yaml::jobs(path, &cli, args.service.as_deref(), &args.items);
    }
    if args.select.is_empty() {
        return Err(CheckError::Config(
            "no process selected: give --pid, --pidfile, --name, --cmdline, --user, --unit or --ppid, or --config".into(),
        ));
    }
    let mut job = cli;
    if !job.has_source() {
        match &args.select.unit {
            // --unit alone: the unit's own Limit*= are the expectation.
            Some(unit) => job.systemd = Some(UnitChoice::Named(unit.clone())),
            None => {
                return Err(CheckError::Config(
                    "no expectation: give --expect, --at-least, --limits-conf, --systemd, --config or --like-pid".into(),
                ))
            }
        }
    }
    Ok(vec![job.with_items(&args.items)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("check_rlimit_match").chain(list.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn jobs_need_a_selector_and_a_source_and_collect_items() {
        let err = |list: &[&str]| jobs(&args(list)).unwrap_err().to_string();
        assert!(err(&["--pid", "7"]).starts_with("no expectation"));
        assert!(err(&["--expect", "nofile=1"]).starts_with("no process selected"));
        let job = |list: &[&str]| jobs(&args(list)).expect("jobs").remove(0);
        let web = Some(UnitChoice::Named("web".into()));
        assert_eq!(job(&["--unit", "web"]).systemd, web);
        assert_eq!(job(&["--unit", "web", "--systemd"]).systemd, web);
        assert_eq!(
            job(&["--pid", "1", "--systemd"]).systemd,
            Some(UnitChoice::OfProcess)
        );
        assert_eq!(
            job(&["--pid", "1", "--systemd=db", "--unit", "web"]).systemd,
            Some(UnitChoice::Named("db".into()))
        );
        assert_eq!(job(&["--pid", "7", "--limits-conf"]).items, ["nofile"]);
        let j = job(&[
            "--pid",
            "7",
            "--item",
            "core",
            "--at-least",
            "core=2",
            "--expect",
            "nproc=1",
        ]);
        assert_eq!(j.items, ["core", "nproc"]);
        assert_eq!(j.stated[0].source, "--expect nproc=1");
        assert_eq!(j.stated[1].source, "--at-least core=2");
        assert_eq!(
            job(&["--pid", "7", "--like-pidfile", "/run/a.pid"]).like,
            Some(Like::Pidfile("/run/a.pid".into()))
        );
    }
}
