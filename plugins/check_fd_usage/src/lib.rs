//! check_fd_usage: open file descriptors against each process's own soft `nofile` limit
//! (open(), accept() and socket() fail with EMFILE once it is reached), and host-wide file
//! handles against fs.file-max.
//!
//! [`acquire`] reads /proc into an [`acquire::Observation`], [`evaluate`] judges it (pure,
//! unit-tested), the common report renders it (docs/architecture.md).
#![deny(missing_docs)]

pub mod acquire;
pub mod evaluate;

use clap::Parser;
use procguard_common::proc::ProcRoot;
use procguard_common::select::Selector;
use procguard_common::{CheckArgs, CheckError, CommonArgs, Report, Threshold, ThresholdArgs};

/// Alert when processes approach their own open-files limit.
///
/// -w/-c are ranges on the number of open fds of each process; N% means percent of that
/// process's soft nofile limit (default -w 80% -c 90%). Without selectors it checks every
/// process on the host and the host-wide file handles (--all --system).
#[derive(Parser, Debug)]
#[command(name = "check_fd_usage", version, about, long_about)]
pub struct Args {
    /// `-w`/`-c` on each process's open fds.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,

    /// `-t`, `-v`, `--label`.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Which processes.
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

/// The check: acquire, evaluate; the runner renders.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    let rules = evaluate::Rules::new(args)?;
    let root = ProcRoot::open(&args.common.proc_root)?;
    let obs = acquire::observe(&root, args)?;
    let mut name = |pid: i32| root.process(pid).who();
    Ok(evaluate::evaluate(obs, args, &rules, &mut name))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
