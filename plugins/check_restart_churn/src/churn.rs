//! The pure core of check_restart_churn: the state kept between runs, and one run's
//! evaluation of what it sees against what the last run saw.
//!
//! Nothing here reads /proc, the clock or systemd: the I/O shell in `lib.rs` fills an
//! [`Observation`] (with the time in it) and [`evaluate`] turns it and the stored
//! [`ChurnState`] into a report while updating the state. So window expiry, inference,
//! PID reuse and reboots are all tested with fixtures and an injected clock.
//!
//! Identity of an instance is (boot_id, pid, starttime) (docs/contract.md §10.3): the same pid with
//! another start time is another process (PID reuse), and start times only compare
//! within one boot. Ages come from /proc/uptime, never from the wall clock, so a stepped
//! clock does not make a process look young; wall time is used only to place events in
//! the window and to show times.

use serde::{Deserialize, Serialize};

use procguard_common::cli::format_duration;
use procguard_common::{PerfData, Report, Status, Thresholds, Uom};

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
    /// /proc/sys/kernel/random/boot_id.
    pub boot_id: String,
    /// Clock ticks per second (the unit of starttime).
    pub clk_tck: u64,
    /// Seconds east of UTC, for showing times.
    pub utc_offset: i64,
}

/// A `nofile` limit; `None` is unlimited.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    /// Soft limit.
    pub soft: Option<u64>,
    /// Hard limit.
    pub hard: Option<u64>,
}

impl NoFile {
    fn soft_rank(&self) -> u64 {
        self.soft.unwrap_or(u64::MAX)
    }

    fn show_soft(&self) -> String {
        show(self.soft)
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
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
    pub nofile: Option<NoFile>,
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
    pub nofile: Option<NoFile>,
    /// Set while this instance runs with a lower soft `nofile` than an instance before it.
    pub drift: Option<Drift>,
}

impl Instance {
    fn who(&self) -> String {
        format!("{}[{}]", self.name, self.pid)
    }

    fn same(&self, boot_id: &str, s: &Seen) -> bool {
        self.boot_id == boot_id && self.pid == s.pid && self.starttime == s.starttime
    }

    /// The highest soft `nofile` of this instance's line (its own, or the one it dropped from).
    fn reference(&self) -> Option<NoFile> {
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
    pub from: NoFile,
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
    pub nofile: Option<NoFile>,
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
    /// NRestarts.
    pub n_restarts: Option<u64>,
    /// ExecMainStartTimestampMonotonic.
    pub main_start_mono: Option<u64>,
}

/// Judges one run: compares what it sees with `state`, updates `state` (bounded: events
/// outside the window are dropped) and returns the report.
pub fn evaluate(state: &mut ChurnState, obs: &Observation, policy: &Policy) -> Report {
    let mut r = Report::default();
    let now = &obs.now;
    let prev_run = state.last_run.clone();
    let first = prev_run.is_none();
    let rebooted = prev_run.as_ref().is_some_and(|p| p.boot_id != now.boot_id);
    let since_last = prev_run.as_ref().map(|p| {
        if p.boot_id == now.boot_id && now.uptime >= p.uptime {
            now.uptime - p.uptime
        } else {
            (now.wall - p.wall).max(0.0)
        }
    });

    // This run's instances: known ones keep their history, new ones start one.
    let mut current: Vec<Instance> = Vec::new();
    let mut new_idx: Vec<usize> = Vec::new();
    for s in &obs.seen {
        let age = (now.uptime - s.starttime as f64 / now.clk_tck.max(1) as f64).max(0.0);
        match state.instances.iter().find(|i| i.same(&now.boot_id, s)) {
            Some(known) => {
                let nofile = s.nofile.or(known.nofile);
                // A drift ends when the running instance gets its limit back (prlimit).
                let drift = known
                    .drift
                    .filter(|d| nofile.is_none_or(|n| n.soft_rank() < d.from.soft_rank()));
                current.push(Instance {
                    last_seen: now.wall,
                    fds: s.fds.or(known.fds),
                    nofile,
                    drift,
                    ..known.clone()
                });
            }
            None => {
                new_idx.push(current.len());
                current.push(Instance {
                    boot_id: now.boot_id.clone(),
                    pid: s.pid,
                    starttime: s.starttime,
                    name: s.name.clone(),
                    started: now.wall - age,
                    first_seen: now.wall,
                    last_seen: now.wall,
                    fds: s.fds,
                    nofile: s.nofile,
                    drift: None,
                });
            }
        }
    }
    let gone: Vec<Instance> = state
        .instances
        .iter()
        .filter(|i| {
            !current
                .iter()
                .any(|c| c.boot_id == i.boot_id && c.pid == i.pid && c.starttime == i.starttime)
        })
        .cloned()
        .collect();
    // Who a new instance replaced: the instances gone since the last run, or, when the
    // service was down at the last run, those alive when it was last seen.
    let predecessors: Vec<Instance> = if !gone.is_empty() {
        gone.clone()
    } else if state.instances.is_empty() {
        state.departed.clone()
    } else {
        Vec::new()
    };
    // Ages from the uptime clock (a stepped wall clock cannot make a process look young).
    let age_of =
        |i: &Instance| (now.uptime - i.starttime as f64 / now.clk_tck.max(1) as f64).max(0.0);
    // The service's age: that of its oldest process (a replaced worker does not make the
    // service young).
    let oldest = current
        .iter()
        .max_by(|a, b| age_of(a).total_cmp(&age_of(b)))
        .cloned();

    // Limit drift: each new instance against the instance it replaced.
    for &i in &new_idx {
        let pred = predecessors
            .iter()
            .find(|p| p.name == current[i].name)
            .or_else(|| predecessors.first());
        let (Some(pred), Some(mine)) = (pred, current[i].nofile) else {
            continue;
        };
        let Some(reference) = pred.reference() else {
            continue;
        };
        if mine.soft_rank() < reference.soft_rank() {
            current[i].drift = Some(match pred.drift {
                Some(d) => Drift { direct: false, ..d },
                None => Drift {
                    from: reference,
                    from_pid: pred.pid,
                    at: current[i].started,
                    direct: true,
                },
            });
        }
    }

    // Restarts since the last run.
    let mut new_events: Vec<Event> = Vec::new();
    let newest_new = new_idx
        .iter()
        .map(|&i| &current[i])
        .max_by(|a, b| a.started.total_cmp(&b.started));
    // The instance a new one replaced: the last seen one of the same name, else of any.
    // Its lifetime ends at the successor's start when it was replaced directly (a
    // supervisor restarts at once), else at its last sighting.
    let old_for = |successor: Option<&Instance>, replaced: bool| {
        let latest = |same_name: bool| {
            predecessors
                .iter()
                .filter(|p| !same_name || successor.is_some_and(|s| s.name == p.name))
                .max_by(|a, b| a.last_seen.total_cmp(&b.last_seen))
        };
        latest(true)
            .or_else(|| latest(false))
            .map(|p| p.gone(successor.filter(|_| replaced).map(|s| s.started)))
    };
    if first {
        // Baseline: nothing to compare with.
    } else if rebooted {
        if let Some(new) = newest_new {
            let boot_at = now.wall - now.uptime;
            new_events.push(Event {
                at: boot_at,
                count: 1,
                kind: Kind::Reboot,
                counted: policy.count_reboots,
                old: old_for(Some(new), false),
                new_pid: Some(new.pid),
            });
            r.detail(format!(
                "host rebooted at {} since the last run{}",
                clock(boot_at, now),
                if policy.count_reboots {
                    " (counted as a restart: --count-reboots)"
                } else {
                    " (not counted as a restart; --count-reboots counts it)"
                }
            ));
        }
    } else if let Some(new) = newest_new {
        // The service is as old as its oldest process; younger than the time since the
        // last run proves it started in between.
        let started_since_last =
            since_last.is_some_and(|since| oldest.as_ref().is_some_and(|o| age_of(o) <= since));
        let kind = if !gone.is_empty() {
            Some(Kind::Replaced)
        } else if !state.instances.is_empty() {
            None // a process added next to the known ones: growth, not a restart
        } else if !started_since_last {
            r.detail(format!(
                "{} runs again but started before the last run, which did not see it (not counted)",
                new.who()
            ));
            None
        } else if state.departed.is_empty() && state.last_seen.is_none() {
            Some(Kind::Inferred)
        } else {
            Some(Kind::CameBack)
        };
        if let Some(kind) = kind {
            new_events.push(Event {
                at: new.started,
                count: 1,
                kind,
                counted: true,
                old: old_for(Some(new), kind == Kind::Replaced),
                new_pid: Some(new.pid),
            });
        }
    }

    // systemd's counters, reset-aware.
    if let Some(unit) = &obs.unit {
        match unit {
            Err(why) => r.unknown(why),
            Ok(info) => {
                let counted = unit_restarts(state.unit.as_ref(), info, now, &mut r);
                let observed: u64 = new_events
                    .iter()
                    .filter(|e| e.kind != Kind::Reboot)
                    .map(|e| e.count)
                    .sum();
                if counted > observed && !rebooted && !first {
                    match new_events.iter_mut().find(|e| e.kind != Kind::Reboot) {
                        Some(e) => e.count = counted,
                        None => {
                            let at = info
                                .main_start_mono
                                .filter(|m| *m > 0)
                                .map_or(now.wall, |m| {
                                    now.wall - (now.uptime - m as f64 / 1e6).max(0.0)
                                });
                            new_events.push(Event {
                                at,
                                count: counted,
                                kind: Kind::Systemd,
                                counted: true,
                                old: old_for(newest_new, false),
                                new_pid: newest_new.map(|n| n.pid),
                            });
                        }
                    }
                }
                state.unit = Some(UnitMark {
                    name: info.name.clone(),
                    boot_id: now.boot_id.clone(),
                    n_restarts: info.n_restarts,
                    main_start_mono: info.main_start_mono,
                });
            }
        }
    }

    for e in &new_events {
        if e.kind != Kind::Reboot {
            r.detail(describe_event(e, now, since_last));
        }
    }
    state.events.extend(new_events);
    let horizon = now.wall - policy.window;
    state.events.retain(|e| e.at >= horizon);
    if state.events.len() > MAX_EVENTS {
        let excess = state.events.len() - MAX_EVENTS;
        state.events.drain(..excess);
    }
    let in_window: Vec<&Event> = state.events.iter().filter(|e| e.counted).collect();
    let restarts: u64 = in_window.iter().map(|e| e.count).sum();

    // Findings.
    let window = span(policy.window);
    let label = |name: &str| match &policy.label {
        Some(l) => format!("{l}_{name}"),
        None => name.to_string(),
    };
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut text = format!("{restarts} restart{} in {window}", plural(restarts));
    if restarts > 0 {
        text.push_str(&hints(&in_window));
    }
    // The finding that leads the summary comes first: down, limit drift, restarts, uptime.
    let uptime = oldest.as_ref().map_or(0.0, |o| age_of(o).max(0.0));
    if oldest.is_none() {
        let why = obs
            .not_running
            .as_deref()
            .map(|w| w.trim_start_matches("not running: ").to_string());
        let text = match state.last_seen {
            Some(seen) => {
                let last = state
                    .instances
                    .iter()
                    .chain(state.departed.iter())
                    .max_by(|a, b| a.last_seen.total_cmp(&b.last_seen));
                let mut t = format!(
                    "not running since {} ({} ago)",
                    clock_secs(seen, now),
                    format_duration(now.wall - seen)
                );
                if let Some(why) = why {
                    t.push_str(&format!(": {why}"));
                }
                if let Some(last) = last {
                    // Up to its last sighting: how long it really lived is not known.
                    t.push_str(&format!(
                        "; last instance {} was up {}{}",
                        last.who(),
                        format_duration(last.lived(None)),
                        last_seen_at(last.fds, last.nofile).replacen(';', ",", 1)
                    ));
                }
                t
            }
            None => format!(
                "not running: {}",
                why.unwrap_or_else(|| "no process matches".into())
            ),
        };
        r.add(Status::Critical, text);
    }

    for c in &current {
        if let (Some(d), Some(n)) = (c.drift, c.nofile) {
            let text = if d.direct {
                format!(
                    "{} restarted at {} with nofile {} (previous instance had {})",
                    c.who(),
                    clock(d.at, now),
                    n.show_soft(),
                    d.from.show_soft()
                )
            } else {
                format!(
                    "{} runs with nofile {} since a restart at {} (instances before had {})",
                    c.who(),
                    n.show_soft(),
                    clock(d.at, now),
                    d.from.show_soft()
                )
            };
            r.add(Status::Critical, text);
        }
    }

    r.metric(
        restarts as f64,
        &policy.thresholds,
        text.clone(),
        PerfData::new(&label("restarts"), restarts as f64).min(0.0),
    );

    if let Some(o) = &oldest {
        if let Some(min) = policy.min_uptime {
            if uptime < min {
                r.add(
                    Status::Warning,
                    format!(
                        "{} up only {} (less than --min-uptime {})",
                        o.who(),
                        format_duration(uptime),
                        span(min)
                    ),
                );
            }
        }
    }

    let running = oldest.as_ref().map(|o| {
        let more = if current.len() > 1 {
            format!(" (+{} more)", current.len() - 1)
        } else {
            String::new()
        };
        format!("{}{more} up {}", o.who(), format_duration(uptime))
    });
    let state_word = obs
        .state_note
        .as_ref()
        .map_or("", |_| " (state file was corrupt; moved aside)");
    match (first, running) {
        (true, Some(run)) => r.ok_summary(format!("baseline recorded{state_word}: {run}")),
        (true, None) => r.ok_summary(format!("baseline recorded{state_word}")),
        (false, Some(run)) => r.ok_summary(format!("{run}; {text}{state_word}")),
        (false, None) => r.ok_summary(format!("{text}{state_word}")),
    }
    if let Some(note) = &obs.state_note {
        r.detail(note.clone());
    }

    r.perf(
        PerfData::new(&label("uptime"), uptime.round())
            .uom(Uom::Seconds)
            .min(0.0),
    );
    r.perf(PerfData::new(&label("instances"), current.len() as f64).min(0.0));

    for c in &current {
        r.verbose_detail(format!(
            "instance {} started {} (up {}){}; nofile {}",
            c.who(),
            clock(c.started, now),
            format_duration(age_of(c)),
            c.fds
                .map(|f| format!(", {f} open files"))
                .unwrap_or_default(),
            c.nofile.map_or("unknown".to_string(), |n| format!(
                "{}:{}",
                show(n.soft),
                show(n.hard)
            ))
        ));
    }
    let listed = state.events.len().saturating_sub(20);
    for e in &state.events[listed..] {
        r.verbose_detail(format!("in window: {}", describe_event(e, now, None)));
    }

    // Remember this run.
    if current.is_empty() {
        if !state.instances.is_empty() {
            state.departed = std::mem::take(&mut state.instances);
            state.departed.truncate(MAX_DEPARTED);
            if state.last_seen.is_none() {
                state.last_seen = prev_run.as_ref().map(|p| p.wall);
            }
        }
    } else {
        state.instances = current;
        state.departed.clear();
        state.last_seen = Some(now.wall);
    }
    state.last_run = Some(RunMark {
        wall: now.wall,
        uptime: now.uptime,
        boot_id: now.boot_id.clone(),
    });
    r
}

/// Restarts systemd counted since the last run: the NRestarts increase (a decrease is a
/// reset and re-baselines), at least 1 when the main process's start time moved.
fn unit_restarts(prev: Option<&UnitMark>, info: &UnitInfo, now: &Now, r: &mut Report) -> u64 {
    let Some(prev) = prev.filter(|p| p.boot_id == now.boot_id && p.name == info.name) else {
        return 0;
    };
    let delta = match (prev.n_restarts, info.n_restarts) {
        (Some(a), Some(b)) if b < a => {
            r.detail(format!(
                "{}: NRestarts went down from {a} to {b} (reset); counting from {b}",
                info.name
            ));
            0
        }
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    let moved = match (prev.main_start_mono, info.main_start_mono) {
        (Some(a), Some(b)) => b != 0 && a != b,
        _ => false,
    };
    if delta > 0 {
        r.verbose_detail(format!(
            "{}: systemd counted {delta} automatic restart{} since the last run (NRestarts {} -> {})",
            info.name,
            if delta == 1 { "" } else { "s" },
            show(prev.n_restarts),
            show(info.n_restarts)
        ));
    }
    delta.max(u64::from(moved))
}

/// `; instances lived 41s-2m10s; last seen at 1021/1024 open files`.
fn hints(events: &[&Event]) -> String {
    let lives: Vec<f64> = events
        .iter()
        .filter_map(|e| e.old.as_ref().map(|o| o.lived))
        .collect();
    let mut out = String::new();
    if let (Some(min), Some(max)) = (
        lives.iter().copied().reduce(f64::min),
        lives.iter().copied().reduce(f64::max),
    ) {
        if lives.len() == 1 {
            out.push_str(&format!("; instance lived {}", format_duration(max)));
        } else if format_duration(min) == format_duration(max) {
            out.push_str(&format!("; instances lived {}", format_duration(max)));
        } else {
            out.push_str(&format!(
                "; instances lived {}-{}",
                format_duration(min),
                format_duration(max)
            ));
        }
    }
    if let Some(last) = events.iter().rev().find_map(|e| e.old.as_ref()) {
        out.push_str(&last_seen_at(last.fds, last.nofile));
    }
    out
}

/// `; last seen at 1021/1024 open files`.
fn last_seen_at(fds: Option<u64>, nofile: Option<NoFile>) -> String {
    match (fds, nofile) {
        (Some(f), Some(n)) => format!("; last seen at {f}/{} open files", n.show_soft()),
        (Some(f), None) => format!("; last seen at {f} open files"),
        _ => String::new(),
    }
}

fn describe_event(e: &Event, now: &Now, since_last: Option<f64>) -> String {
    let arrow = if e.old.is_some() { " ->" } else { "" };
    let new = e
        .new_pid
        .map(|p| format!("{arrow} pid {p}"))
        .unwrap_or_default();
    let old = e
        .old
        .as_ref()
        .map(|o| {
            format!(
                " {}[{}] (lived {}{}{})",
                o.name,
                o.pid,
                format_duration(o.lived),
                last_seen_at(o.fds, o.nofile).replace(';', ","),
                o.nofile
                    .map(|n| format!(", nofile {}:{}", show(n.soft), show(n.hard)))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let at = clock_secs(e.at, now);
    let count = if e.count > 1 {
        format!(" x{}", e.count)
    } else {
        String::new()
    };
    let how = match e.kind {
        Kind::Replaced => format!("restart{count} at {at}"),
        Kind::CameBack => format!("back after being down{count} at {at}"),
        Kind::Inferred => format!("started{count} at {at}, after a run that saw it down"),
        Kind::Systemd => format!("restart{count} counted by systemd, at {at}"),
        Kind::Reboot => format!("reboot at {at}"),
    };
    let ago = since_last
        .map(|s| format!(" (last run {} ago)", format_duration(s)))
        .unwrap_or_default();
    format!("{how}:{old}{new}{ago}")
}

/// A duration as given on the command line: `1h`, `10m`, `1d`, else `2m10s`.
pub fn span(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0 => format_duration(secs),
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format_duration(secs),
    }
}

/// A time for people, in the host's zone: `12:01` today, else `2026-11-25 12:01`.
pub fn clock(wall: f64, now: &Now) -> String {
    format_time(wall, now, false)
}

/// Like [`clock`] with seconds.
pub fn clock_secs(wall: f64, now: &Now) -> String {
    format_time(wall, now, true)
}

fn format_time(wall: f64, now: &Now, secs: bool) -> String {
    let local = |t: f64| t.floor() as i64 + now.utc_offset;
    let (t, today) = (local(wall), local(now.wall));
    let (days, sod) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let hms = if secs {
        format!("{:02}:{:02}:{:02}", sod / 3600, sod % 3600 / 60, sod % 60)
    } else {
        format!("{:02}:{:02}", sod / 3600, sod % 3600 / 60)
    };
    if days == today.div_euclid(86_400) {
        hms
    } else {
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02} {hms}")
    }
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
