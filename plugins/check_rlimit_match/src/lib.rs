//! check_rlimit_match: the resource limits a process runs with against the limits it should
//! have, and where wrong ones came from.
//!
//! The incident behind procguard: a service restarted by Monit inherited Monit's `nofile`
//! 1024:4096 instead of the 500000 limits.conf promised (limits.conf only applies to PAM
//! sessions). Nothing compared the running process's limits with that promise. This plugin
//! does, for any rlimit, against limits.conf (with pam_limits' exact rules), a systemd unit,
//! explicit values, a YAML config or a sibling process; and when a value is too low it names
//! where the value came from and the fix for whoever starts the service (common's
//! provenance and remediation modules).
#![deny(missing_docs)]

pub mod config;
pub mod expect;
pub mod limits_conf;
pub mod users;

mod acquire;
mod evaluate;
mod expectation;
mod explain;
mod plan;
mod render;
mod source;

use std::path::PathBuf;

use clap::Parser;
use procguard_common::select::{report_vanished, Scan, Selector};
use procguard_common::{CheckArgs, CheckError, CommonArgs, Report};

use crate::acquire::Acquirer;
use crate::expect::{parse_item, ItemSpec};
use crate::plan::Job;
use crate::render::Run;

/// Alert when a process's resource limits differ from the limits it should have.
///
/// Compares the soft and hard values in /proc/PID/limits of each selected process with
/// what one or more expectation sources say; every finding names its source (the flag,
/// the file and line, the unit property or the other process). An exact source: below is
/// CRITICAL, above is WARNING. A minimum: below is CRITICAL, above is fine.
///
///   --expect ITEM=SOFT[:HARD]    exact, as given (repeatable)
///   --at-least ITEM=SOFT[:HARD]  minimum, as given (repeatable)
///   --limits-conf [PATH]         minimum: what pam_limits would set for the process's
///                                user, with pam_limits' own rules (see --pam-flavor)
///   --systemd [UNIT]             exact: the unit's Limit*= values, via systemctl show;
///                                --unit without another source implies it
///   --like-pid / --like-pidfile  exact: the limits of another process (a process is
///                                never compared with itself)
///   --config FILE [--service N]  any of the above per service, from a YAML file
///                                (README, examples/services.yaml)
///
/// Items are limits.conf names (nofile nproc core memlock stack as fsize data rss cpu
/// locks sigpending msgqueue nice rtprio rttime); values are in the kernel's units,
/// `unlimited` for no limit; HARD left out is not checked.
///
/// When a value is below its expectation, the output says where it came from:
///   - soft and hard are traced separately up the parent chain; the nearest supervisor
///     holding the value is named ("inherited from monit[812] (nofile 1024:4096)");
///   - a process that raised its soft limit to its inherited hard one (Node.js, Go, Java)
///     is said to have done so: the hard limit binds, and the fix raises it;
///   - a daemon that sets its own limit is named with its setting (nginx
///     worker_rlimit_nofile, php-fpm rlimit_files, ...);
///   - a soft limit the process set itself, other than the one it inherited, is to be
///     raised where it is set (its configuration or start command), not by its starter;
///   - a service whose starter exited (backgrounded, reparented to PID 1 or a subreaper)
///     is traced through its environment (MONIT_SERVICE, SUPERVISOR_PROCESS_NAME, pm_id,
///     INVOCATION_ID, SSH_CONNECTION) and cgroup to the live supervisor (for Monit, the
///     running monit whose control file has the service or its pidfile); an environment
///     this user cannot read is said, never guessed.
///
/// The fix line asks for the expected value, never the current one, raises only what is
/// short (ulimit -Hn before -Sn), never lowers a hard limit, and says when raising a hard
/// limit needs root or CAP_SYS_RESOURCE. An expectation above fs.nr_open (the kernel's
/// nofile ceiling) is a WARNING.
#[derive(Parser, Debug)]
#[command(
    name = "check_rlimit_match",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
pub struct Args {
    /// The options every plugin has (-t, -v, --label, --proc-root).
    #[command(flatten)]
    pub common: CommonArgs,

    /// Which processes.
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

/// The check: plan the jobs, then for each selected process acquire → evaluate → render.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    let jobs = plan::jobs(args)?;
    let mut acquirer = Acquirer::new(args)?;
    let mut run = Run::default();
    let mut report = Report::default();
    // /proc is listed once for all the jobs (services) that look through every process.
    let mut scan = Scan::default();
    for job in &jobs {
        check_job(&mut acquirer, &mut scan, job, &mut run, &mut report)?;
    }
    run.finish(&jobs, &mut report);
    Ok(report)
}

fn check_job(
    acquirer: &mut Acquirer,
    scan: &mut Scan,
    job: &Job,
    run: &mut Run,
    report: &mut Report,
) -> Result<(), CheckError> {
    let mut selection = Report::default();
    let selected =
        job.selector
            .resolve_in(acquirer.root(), scan, job.label.as_deref(), &mut selection)?;
    // "not running", "no process matches": named after the service in config mode.
    for f in selection.findings() {
        match &job.service {
            Some(service) => report.add(f.status, format!("{service}: {}", f.text)),
            None => report.add(f.status, f.text.clone()),
        }
    }
    let mut vanished = 0;
    for s in &selected {
        let mut obs = match acquirer.observe(job, s, selected.len() == 1) {
            Ok(Some(obs)) => obs,
            Ok(None) => {
                vanished += 1;
                continue;
            }
            Err(e) => {
                report.unknown(e);
                continue;
            }
        };
        let expected = source::collect(job, &obs, acquirer.facts());
        // Where a value came from is traced only for the values found too low.
        for (item, _) in evaluate::below(&obs, job, &expected, acquirer.facts()) {
            let trace = acquirer.trace(obs.pid, item);
            obs.origins.insert(item, trace);
        }
        run.add(
            report,
            evaluate::process(&obs, job, &expected, acquirer.facts()),
        );
    }
    report_vanished(report, &job.selector, selected.len(), vanished);
    Ok(())
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
}
