//! `check_restart_churn`: counts every restart of a service, whoever restarts it, and says
//! what each dead instance looked like.
//!
//! Monit counts only its own restarts and forgets them, systemd's `NRestarts` only its
//! automatic ones, and a process check sees only that *a* process runs. This check keeps
//! each instance of the service ((`boot_id`, pid, starttime), docs/contract.md §10.3) in a state file
//! (docs/contract.md §8) and compares every run with the last. The judging is the pure
//! [`churn::evaluate`]; this file only reads /proc, systemd and the clock, and hands the
//! state store the closure that judges.
#![deny(missing_docs)]

pub mod churn;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use procguard_common::cli::parse_duration;
use procguard_common::proc::{clock_ticks, ProcRoot, Rlimit};
use procguard_common::select::{Selected, Selector};
use procguard_common::state::StateArgs;
use procguard_common::{provenance, remediation};
use procguard_common::{
    systemd, CheckArgs, CheckError, CommonArgs, Report, Status, ThresholdArgs, Thresholds,
};

use churn::{Now, Observation, Policy, Seen, UnitInfo};

/// Alert when a service keeps being restarted, whoever restarts it.
///
/// -w/-c are ranges on the number of restarts within --window (default -w 1 -c 3: more
/// than 1 restart warns, more than 3 is critical). A restart is a known instance gone and
/// a new one running (PID reuse is told apart by start time), the service back after being
/// down, or, with --unit, systemd's NRestarts and main-process start time moving. A new
/// instance with a lower soft nofile than the one it replaced is CRITICAL whatever the
/// count; the service not running is CRITICAL. The first run records a baseline. Select the
/// service's main process (--pidfile, --unit, or --name with --ppid 1): with several
/// processes, any of them being replaced is one restart per run.
#[derive(Parser, Debug)]
// The doc comment is the --help text, shown as written (no Markdown).
#[allow(clippy::doc_markdown)]
// A later option overrides an earlier one: Nagios/Monit command definitions often append
// to a base command line (`... --key svc` then `--key other`).
#[command(
    name = "check_restart_churn",
    version,
    about,
    long_about,
    args_override_self = true
)]
pub struct Args {
    /// `-w`/`-c` on the restarts within the window.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,

    /// `-t`, `-v`, `--label`.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Which service.
    #[command(flatten)]
    pub select: Selector,

    /// Where the instances seen are kept.
    #[command(flatten)]
    pub state: StateArgs,

    /// Count restarts within this window (90s, 10m, 2h30m, 1d)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = positive_duration)]
    pub window: Duration,

    /// Warn when the service (its oldest process) is younger than this
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_uptime: Option<Duration>,

    /// Count a reboot as a restart (otherwise it is only reported)
    #[arg(long)]
    pub count_reboots: bool,

    /// Name of the state kept for this service (default: derived from the selectors)
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
}

impl CheckArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("duration {text:?} must be above 0")),
        d => Ok(d),
    }
}

const DEFAULT_WARNING: &str = "1";
const DEFAULT_CRITICAL: &str = "3";

/// The systemd properties read with --unit.
const UNIT_PROPERTIES: [&str; 2] = ["NRestarts", "ExecMainStartTimestampMonotonic"];

impl Args {
    /// The state key: `restart_churn.` and `--key`, else the selectors as given (stable
    /// across runs; the store makes it file-name safe).
    #[must_use]
    pub fn state_key(&self) -> String {
        match &self.key {
            Some(k) => format!("restart_churn.{k}"),
            None => format!("restart_churn.{}", self.select.describe()),
        }
    }

    fn policy(&self) -> Result<Policy, CheckError> {
        let range = |given: Option<procguard_common::Threshold>, default: &str| {
            let t = match given {
                Some(t) => t,
                None => default.parse().map_err(CheckError::Config)?,
            };
            if t.is_percent() {
                return Err(CheckError::Config(format!(
                    "threshold {t} is a percentage; -w/-c count restarts"
                )));
            }
            Ok(t.resolve(None))
        };
        Ok(Policy {
            window: self.window.as_secs_f64(),
            thresholds: Thresholds {
                warning: range(self.thresholds.warning, DEFAULT_WARNING)?,
                critical: range(self.thresholds.critical, DEFAULT_CRITICAL)?,
            },
            min_uptime: self.min_uptime.map(|d| d.as_secs_f64()),
            count_reboots: self.count_reboots,
            label: self.common.label.clone(),
        })
    }
}

/// The check.
///
/// # Errors
///
/// A usage error (nothing selected, a percentage threshold), a process that cannot be
/// read, or a state store that cannot be used.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    if args.select.is_empty() {
        return Err(CheckError::Config(
            "no service selected; give --pidfile, --name, --cmdline, --unit, --user, --ppid or --pid".into(),
        ));
    }
    let policy = args.policy()?;
    let root = ProcRoot::open(&args.common.proc_root)?;
    let mut selection = Report::default();
    let selected = args.select.resolve(&root, None, &mut selection)?;
    // A process that could not be read would look like a restart next time: report it and
    // leave the state as it is.
    let unreadable: Vec<String> = selection
        .findings()
        .iter()
        .filter(|f| f.status == Status::Unknown)
        .map(|f| f.text.clone())
        .collect();
    if !unreadable.is_empty() {
        let mut report = Report::default();
        for text in unreadable {
            report.unknown(text);
        }
        report.detail("state not updated: this run could not see every process");
        return Ok(report);
    }
    let not_running = selection
        .findings()
        .iter()
        .find(|f| f.status == Status::Critical)
        .map(|f| f.text.clone());
    let now = read_now(&root)?;
    let seen = observe(&root, &selected);
    let unit = args.select.unit.as_deref().map(read_unit);
    let key = args.state_key();
    let mut obs = Observation {
        now,
        seen,
        not_running,
        unit,
        state_note: None,
    };
    let judge = |state: &mut churn::ChurnState, obs: &Observation| {
        let report = churn::evaluate(state, obs, &policy);
        let drifted: Vec<(i32, Rlimit)> = state
            .instances
            .iter()
            .filter_map(|i| Some((i.pid, i.drift?.from)))
            .collect();
        (report, drifted)
    };
    let stored = args.state.open().and_then(|store| {
        store.update(&key, |state: &mut churn::ChurnState, origin| {
            obs.state_note = origin.note();
            judge(state, &obs)
        })
    });
    // An unusable state store costs the restart count (its own UNKNOWN finding), not the
    // rest of the verdict: "not running" stays CRITICAL.
    let (mut report, drifted) = match stored {
        Ok(updated) => updated.value,
        Err(e) => {
            let (mut report, drifted) = judge(&mut churn::ChurnState::default(), &obs);
            report.unknown(format!("restarts not counted: {e}"));
            (report, drifted)
        }
    };
    causes(&root, &drifted, &mut report);
    Ok(report)
}

/// For each instance whose nofile dropped: where its value came from and the fix that
/// gives it back the earlier instance's (common's provenance, the same words as
/// `check_rlimit_match` and `check_http_backlog`).
fn causes(root: &ProcRoot, drifted: &[(i32, Rlimit)], report: &mut Report) {
    for (pid, from) in drifted.iter().take(3) {
        let trace = provenance::trace(root, *pid, "nofile");
        report.detail(format!("cause: {}", trace.story()));
        if let Some(fix) = remediation::fix(&trace, Some(*from)) {
            report.detail(fix);
        }
    }
}

/// What each selected process looks like now; one that exited while we looked is left out.
fn observe(root: &ProcRoot, selected: &[Selected]) -> Vec<Seen> {
    let mut seen = Vec::new();
    for s in selected {
        let p = root.process(s.pid);
        let fds = p.fd_count();
        let limits = p.limits();
        if [fds.as_ref().err(), limits.as_ref().err()]
            .into_iter()
            .flatten()
            .any(CheckError::is_not_found)
        {
            continue; // exited while we looked
        }
        seen.push(Seen {
            pid: s.pid,
            starttime: s.starttime,
            name: s.name.clone(),
            fds: fds.ok(),
            nofile: limits.ok().map(|l| l.nofile()),
        });
    }
    seen
}

/// The unit's counters from `systemctl show`, or why they could not be read.
fn read_unit(unit: &str) -> Result<UnitInfo, String> {
    let name = systemd::unit_name(unit);
    let props = systemd::show(&name, &UNIT_PROPERTIES).map_err(|e| e.to_string())?;
    unit_info(&name, &props)
}

/// Reads the counters out of parsed `systemctl show` properties.
///
/// # Errors
///
/// A property that is not a number, in words.
pub fn unit_info<S: std::hash::BuildHasher>(
    name: &str,
    props: &std::collections::HashMap<String, String, S>,
) -> Result<UnitInfo, String> {
    let number = |key: &str| -> Result<Option<u64>, String> {
        match props.get(key).map(|v| v.trim()) {
            None | Some("" | "[not set]") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("systemctl show {name}: {key}={v:?} is not a number")),
        }
    };
    Ok(UnitInfo {
        name: name.to_string(),
        n_restarts: number("NRestarts")?,
        main_start_mono: number("ExecMainStartTimestampMonotonic")?,
    })
}

/// The clock: wall time, uptime, boot id, and the local zone's offset for showing times.
fn read_now(root: &ProcRoot) -> Result<Now, CheckError> {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Ok(Now {
        wall,
        uptime: root.uptime_secs()?,
        boot_id: root.boot_id()?,
        clk_tck: clock_ticks(),
        utc_offset: utc_offset(wall),
    })
}

/// Seconds east of UTC at `wall` in the host's zone (0 if unknown).
fn utc_offset(wall: f64) -> i64 {
    #[allow(clippy::cast_possible_truncation)] // whole seconds are what localtime_r takes
    let t = wall as libc::time_t;
    // SAFETY: zeroed tm is a valid out-parameter for localtime_r.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm.
    if unsafe { libc::localtime_r(std::ptr::from_ref(&t), std::ptr::from_mut(&mut tm)) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the values compared are exact by construction
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("check_restart_churn").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn each_option_parses() {
        let a = parse(&[
            "--pidfile",
            "/run/app.pid",
            "--window",
            "10m",
            "--min-uptime",
            "90s",
            "--count-reboots",
            "--key",
            "web",
            "--state-dir",
            "/tmp/s",
            "-w",
            "2",
            "-c",
            "5",
        ]);
        assert_eq!(a.window, Duration::from_secs(600));
        assert_eq!(a.min_uptime, Some(Duration::from_secs(90)));
        assert!(a.count_reboots);
        assert_eq!(a.state.state_dir, Some(PathBuf::from("/tmp/s")));
        assert_eq!(a.state_key(), "restart_churn.web");
        let p = a.policy().unwrap();
        assert_eq!(p.window, 600.0);
        assert_eq!(p.thresholds.evaluate(2.0), Status::Ok);
        assert_eq!(p.thresholds.evaluate(3.0), Status::Warning);
        assert_eq!(p.thresholds.evaluate(6.0), Status::Critical);
        for bad in [
            &["--window", "0"][..],
            &["--window", "1y"],
            &["--min-uptime", "soon"],
        ] {
            assert!(
                Args::try_parse_from(std::iter::once("x").chain(bad.iter().copied())).is_err(),
                "{bad:?}"
            );
        }
    }

    /// The durations the plugin prints (`4m35s`, `3h05m`) are accepted back.
    #[test]
    fn compound_durations_are_accepted() {
        let a = parse(&["--name", "x", "--window", "2h30m", "--min-uptime", "4m35s"]);
        assert_eq!(a.window, Duration::from_secs(9000));
        assert_eq!(a.min_uptime, Some(Duration::from_secs(275)));
        let a = parse(&["--name", "x", "--window", "1d2h"]);
        assert_eq!(a.window, Duration::from_secs(93_600));
    }

    #[test]
    fn defaults_warn_above_1_and_are_critical_above_3() {
        let a = parse(&["--name", "node"]);
        assert_eq!(a.window, Duration::from_secs(3600));
        let p = a.policy().unwrap();
        let states: Vec<Status> = (0..5)
            .map(|n| p.thresholds.evaluate(f64::from(n)))
            .collect();
        assert_eq!(
            states,
            [
                Status::Ok,
                Status::Ok,
                Status::Warning,
                Status::Warning,
                Status::Critical
            ]
        );
        let a = parse(&["--name", "node", "-w", "50%"]);
        assert!(a.policy().unwrap_err().to_string().contains("percentage"));
    }

    #[test]
    fn a_later_option_overrides_an_earlier_one() {
        let a = parse(&[
            "--pidfile",
            "/a",
            "--key",
            "svc",
            "--key",
            "other",
            "--state-dir",
            "/x",
            "--state-dir",
            "/y",
        ]);
        assert_eq!(a.state_key(), "restart_churn.other");
        assert_eq!(a.state.state_dir, Some(PathBuf::from("/y")));
    }

    #[test]
    fn the_state_key_is_derived_from_the_selectors() {
        let a = parse(&["--name", "node", "--user", "app"]);
        assert_eq!(a.state_key(), "restart_churn.--name node --user app");
        assert_eq!(
            a.state_key(),
            parse(&["--name", "node", "--user", "app"]).state_key()
        );
        assert_ne!(a.state_key(), parse(&["--name", "node"]).state_key());
        let stem = procguard_common::state::file_stem(&a.state_key());
        assert!(
            stem.starts_with("restart_churn.--name_node_--user_app-"),
            "{stem}"
        );
    }

    /// A relative and an absolute path to one pidfile keep one state (cargo runs tests in
    /// the package's directory).
    #[test]
    fn one_pidfile_one_state_however_it_is_spelled() {
        let abs = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/../tests/fixtures/app.pid"
        );
        let key = parse(&["--pidfile", "tests/fixtures/app.pid"]).state_key();
        assert_eq!(key, parse(&["--pidfile", abs]).state_key());
        assert_eq!(
            key,
            parse(&["--pidfile", "./tests/fixtures/./app.pid"]).state_key()
        );
        assert_ne!(key, parse(&["--pidfile", "tests/app.pid"]).state_key());
    }

    /// `systemctl show` output as systemd 252 prints it for the properties we ask.
    const SHOW_FIXTURE: &str = "NRestarts=7\nExecMainStartTimestampMonotonic=5216061817\n";

    #[test]
    fn unit_counters_from_systemctl_show() {
        let props = systemd::parse_show(SHOW_FIXTURE);
        assert_eq!(
            unit_info("web.service", &props),
            Ok(UnitInfo {
                name: "web.service".into(),
                n_restarts: Some(7),
                main_start_mono: Some(5_216_061_817),
            })
        );
        // An older systemd without NRestarts, and a unit that never ran.
        let props = systemd::parse_show("ExecMainStartTimestampMonotonic=0\n");
        assert_eq!(
            unit_info("web.service", &props).unwrap(),
            UnitInfo {
                name: "web.service".into(),
                n_restarts: None,
                main_start_mono: Some(0),
            }
        );
        let props = systemd::parse_show("NRestarts=lots\n");
        assert_eq!(
            unit_info("web.service", &props).unwrap_err(),
            "systemctl show web.service: NRestarts=\"lots\" is not a number"
        );
    }

    #[test]
    fn a_fake_systemctl_is_run_for_the_unit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("systemctl");
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1 $2 $3 $4\" = 'show --no-pager --property=NRestarts,ExecMainStartTimestampMonotonic --' ] || exit 9\necho \"Unit=$5\"\necho NRestarts=3\necho ExecMainStartTimestampMonotonic=42\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let read_unit = |systemctl: &std::path::Path, unit: &str| {
            let name = systemd::unit_name(unit);
            systemd::show_with(systemctl, &name, &UNIT_PROPERTIES, systemd::DEFAULT_TIMEOUT)
                .map_err(|e| e.to_string())
                .and_then(|props| unit_info(&name, &props))
        };
        assert_eq!(
            read_unit(&fake, "web"),
            Ok(UnitInfo {
                name: "web.service".into(),
                n_restarts: Some(3),
                main_start_mono: Some(42),
            })
        );
        let err = read_unit(&dir.path().join("missing"), "web").unwrap_err();
        assert!(err.contains("not found"), "{err}");
    }
}
