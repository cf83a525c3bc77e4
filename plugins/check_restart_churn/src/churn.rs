//! The pure core of `check_restart_churn`: the state kept between runs, and one run's
//! evaluation of what it sees against what the last run saw.
//!
//! A run is acquire → evaluate → render. Nothing here reads /proc, the clock or systemd:
//! the I/O shell in `lib.rs` acquires an [`Observation`] (with the time in it); [`judge`]
//! turns it and the prior [`ChurnState`] into the findings and perfdata (a `Report`, which
//! `common` renders) and the next state. So window expiry, inference, PID reuse and
//! reboots are all tested with fixtures and an injected clock.
//!
//! Identity of an instance is (`boot_id`, pid, starttime) (docs/contract.md §10.3): the same pid with
//! another start time is another process (PID reuse), and start times only compare
//! within one boot. Ages come from /proc/uptime, never from the wall clock, so a stepped
//! clock does not make a process look young; wall time is used only to place events in
//! the window and to show times.

// Counts, clock ticks and seconds stay far below 2^52, and times are rounded to whole
// seconds on purpose: the float casts lose nothing that is shown or compared.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use serde::{Deserialize, Serialize};

use procguard_common::proc::{who, Rlimit};
use procguard_common::{Report, Thresholds};

mod lineup;
mod restarts;
mod words;

use lineup::{Lineup, Since};
#[cfg(test)]
pub use words::{clock, clock_secs, span};

/// Events kept at most, whatever the window (a backstop for the state file's size).
const MAX_EVENTS: usize = 1000;
/// Departed instances kept while the service is down.
const MAX_DEPARTED: usize = 16;

/// The host's clock and identity at the time of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Now {
    /// Seconds since the epoch.
    pub wall: f64,
    /// Seconds since boot (/proc/uptime), the clock process start times are on.
    pub uptime: f64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// Clock ticks per second (the unit of starttime).
    pub clk_tck: u64,
    /// Seconds east of UTC, for showing times.
    pub utc_offset: i64,
}

/// One process of the service as this run sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// PID.
    pub pid: i32,
    /// Start time in clock ticks after boot.
    pub starttime: u64,
    /// Full executable name.
    pub name: String,
    /// Open fds, if readable.
    pub fds: Option<u64>,
    /// `nofile`, if readable.
    pub nofile: Option<Rlimit>,
}

/// What systemd says about the unit (`systemctl show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    /// The unit.
    pub name: String,
    /// `NRestarts` (automatic restarts by `Restart=`), absent before systemd 235.
    pub n_restarts: Option<u64>,
    /// `ExecMainStartTimestampMonotonic` in µs, 0 when the unit never started this boot.
    pub main_start_mono: Option<u64>,
}

/// Everything one run observed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The time.
    pub now: Now,
    /// The service's processes, oldest first.
    pub seen: Vec<Seen>,
    /// Why the selector found nothing (`not running: ...`), when it did not.
    pub not_running: Option<String>,
    /// systemd's view, with `--unit` (an error in words when it could not be read).
    pub unit: Option<Result<UnitInfo, String>>,
    /// A note about the state file (moved aside as corrupt), for the output.
    pub state_note: Option<String>,
}

/// How to judge.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The window restarts are counted in, seconds.
    pub window: f64,
    /// Ranges on the restarts in the window.
    pub thresholds: Thresholds,
    /// Warn when the service is younger than this, seconds.
    pub min_uptime: Option<f64>,
    /// Count a reboot as a restart.
    pub count_reboots: bool,
    /// Perfdata label prefix.
    pub label: Option<String>,
}

/// The state kept between runs.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct ChurnState {
    /// The last run.
    pub last_run: Option<RunMark>,
    /// The instances alive at the last run.
    pub instances: Vec<Instance>,
    /// When the service was last seen running (wall clock).
    pub last_seen: Option<f64>,
    /// While the service is down: the instances alive when it was last seen.
    pub departed: Vec<Instance>,
    /// Restarts (and reboots) within the window, oldest first.
    pub events: Vec<Event>,
    /// systemd's counters at the last run.
    pub unit: Option<UnitMark>,
}

/// When a run happened.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunMark {
    /// Wall clock.
    pub wall: f64,
    /// Uptime.
    pub uptime: f64,
    /// Boot.
    pub boot_id: String,
}

/// One process of the service, as known across runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Instance {
    /// Identity: boot.
    pub boot_id: String,
    /// Identity: pid.
    pub pid: i32,
    /// Identity: start time in clock ticks after boot.
    pub starttime: u64,
    /// Executable name.
    pub name: String,
    /// Start, wall clock (computed from its age when first seen).
    pub started: f64,
    /// First seen, wall clock.
    pub first_seen: f64,
    /// Last seen, wall clock.
    pub last_seen: f64,
    /// Open fds when last seen.
    pub fds: Option<u64>,
    /// `nofile` when last seen.
    pub nofile: Option<Rlimit>,
    /// Set while this instance runs with a lower soft `nofile` than an instance before it.
    pub drift: Option<Drift>,
}

impl Instance {
    fn who(&self) -> String {
        who(&self.name, self.pid)
    }

    /// Whether `other` is the same process (boot, pid and start time).
    fn is(&self, other: &Instance) -> bool {
        self.boot_id == other.boot_id && self.pid == other.pid && self.starttime == other.starttime
    }

    fn same(&self, boot_id: &str, s: &Seen) -> bool {
        self.boot_id == boot_id && self.pid == s.pid && self.starttime == s.starttime
    }

    /// The highest soft `nofile` of this instance's line (its own, or the one it dropped from).
    fn reference(&self) -> Option<Rlimit> {
        match (self.drift, self.nofile) {
            (Some(d), _) => Some(d.from),
            (None, n) => n,
        }
    }

    /// How long it lived, given who replaced it: up to its successor's start when that is
    /// after its last sighting, else up to its last sighting.
    fn lived(&self, successor_started: Option<f64>) -> f64 {
        let end = successor_started
            .filter(|s| *s >= self.last_seen)
            .unwrap_or(self.last_seen);
        (end - self.started).max(0.0)
    }

    fn gone(&self, successor_started: Option<f64>) -> Gone {
        Gone {
            pid: self.pid,
            name: self.name.clone(),
            lived: self.lived(successor_started),
            last_seen: self.last_seen,
            fds: self.fds,
            nofile: self.nofile,
        }
    }
}

/// A soft `nofile` lower than an earlier instance's.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// The limit before the drop.
    pub from: Rlimit,
    /// The instance that had it.
    pub from_pid: i32,
    /// When the drop happened (start of the first instance with the lower limit).
    pub at: f64,
    /// Whether the drop happened at this instance's own start (else it inherited it).
    pub direct: bool,
}

/// What a dead instance looked like.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Gone {
    /// PID.
    pub pid: i32,
    /// Name.
    pub name: String,
    /// Lifetime, seconds.
    pub lived: f64,
    /// Last seen, wall clock.
    pub last_seen: f64,
    /// Open fds when last seen.
    pub fds: Option<u64>,
    /// `nofile` when last seen.
    pub nofile: Option<Rlimit>,
}

/// How a restart was found.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An instance known at the last run is gone and a new one runs.
    Replaced,
    /// The service was down at the last run and runs again.
    CameBack,
    /// Only the age of the current instance shows it started since the last run.
    Inferred,
    /// Only systemd's counters show it.
    Systemd,
    /// The host rebooted.
    Reboot,
}

/// A restart (or reboot), kept while it is in the window.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Event {
    /// When, wall clock (the new instance's start).
    pub at: f64,
    /// How many restarts it stands for (systemd may count several between two runs).
    pub count: u64,
    /// How it was found.
    pub kind: Kind,
    /// Whether it counts against the thresholds (reboots only with --count-reboots).
    pub counted: bool,
    /// The instance that died.
    pub old: Option<Gone>,
    /// The new instance's pid.
    pub new_pid: Option<i32>,
}

/// systemd's counters at a run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UnitMark {
    /// The unit.
    pub name: String,
    /// Boot (monotonic timestamps compare only within one).
    pub boot_id: String,
    /// `NRestarts`.
    pub n_restarts: Option<u64>,
    /// `ExecMainStartTimestampMonotonic`.
    pub main_start_mono: Option<u64>,
}

/// Judges one run: compares what it sees with `state`, replaces `state` with the next one
/// (bounded: events outside the window are dropped) and returns the report.
pub fn evaluate(state: &mut ChurnState, obs: &Observation, policy: &Policy) -> Report {
    let (report, next) = judge(state, obs, policy);
    *state = next;
    report
}

/// The pure evaluation: the prior state, this run's observation (with its clock) and the
/// policy give the findings and perfdata, and the state to keep. Each phase is a function
/// of its own module: [`lineup`] (which processes are which, limit drift), [`restarts`]
/// (restarts since the last run, systemd's counters, the window) and [`words`] (findings,
/// perfdata, long output).
#[must_use]
pub fn judge(prior: &ChurnState, obs: &Observation, policy: &Policy) -> (Report, ChurnState) {
    let mut r = Report::default();
    let now = &obs.now;
    let since = Since::new(prior.last_run.as_ref(), now);
    let mut lineup = Lineup::new(prior, &obs.seen, now);
    lineup.mark_drift();
    let mut events = restarts::since_last_run(prior, &lineup, &since, policy, now, &mut r);
    let unit = match &obs.unit {
        Some(Err(why)) => {
            r.unknown(why);
            prior.unit.clone()
        }
        Some(Ok(info)) => Some(restarts::systemd(
            prior.unit.as_ref(),
            info,
            &lineup,
            &since,
            now,
            &mut events,
            &mut r,
        )),
        None => prior.unit.clone(),
    };
    for e in events.iter().filter(|e| e.kind != Kind::Reboot) {
        r.detail(words::describe_event(e, now, since.last_run_ago));
    }
    let events = restarts::in_window(&prior.events, events, policy.window, now);
    let run = words::Run {
        now,
        policy,
        first: since.first,
        lineup: &lineup,
        events: &events,
    };
    words::findings(&run, prior, obs, &mut r);
    words::perfdata(&run, &mut r);
    words::long_output(&run, &mut r);
    let next = commit(prior, lineup.current, events, unit, now);
    (r, next)
}

/// The state to keep: this run's instances (or, when the service is down, those last seen
/// as departed), the events in the window, systemd's counters and this run's mark.
fn commit(
    prior: &ChurnState,
    current: Vec<Instance>,
    events: Vec<Event>,
    unit: Option<UnitMark>,
    now: &Now,
) -> ChurnState {
    let mut next = ChurnState {
        events,
        unit,
        last_run: Some(RunMark {
            wall: now.wall,
            uptime: now.uptime,
            boot_id: now.boot_id.clone(),
        }),
        ..prior.clone()
    };
    if !current.is_empty() {
        next.instances = current;
        next.departed.clear();
        next.last_seen = Some(now.wall);
    } else if !prior.instances.is_empty() {
        next.departed = std::mem::take(&mut next.instances);
        next.departed.truncate(MAX_DEPARTED);
        if next.last_seen.is_none() {
            next.last_seen = prior.last_run.as_ref().map(|p| p.wall);
        }
    }
    next
}

#[cfg(test)]
mod tests;
