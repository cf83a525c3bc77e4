//! Phases 6 and 7 of a run, and the words for times and events: the findings (down, limit
//! drift, the restart count, a young service), the perfdata and the long output.

use std::fmt::Write;

/// Re-exported for the tests of the clock words.
use procguard_common::civil::civil_from_days;
use procguard_common::cli::format_duration;
use procguard_common::proc::limits::show;
use procguard_common::proc::who;
use procguard_common::{PerfData, Report, Status, Uom};

use super::lineup::Lineup;
use super::{ChurnState, Drift, Event, Instance, Kind, Now, Observation, Policy, Rlimit};

/// What a run found, for wording.
pub(super) struct Run<'a> {
    pub now: &'a Now,
    pub policy: &'a Policy,
    /// The baseline run.
    pub first: bool,
    pub lineup: &'a Lineup,
    /// The events in the window, this run's included.
    pub events: &'a [Event],
}

impl Run<'_> {
    /// A perfdata label, with the `--label` prefix.
    fn label(&self, name: &str) -> String {
        match &self.policy.label {
            Some(l) => format!("{l}_{name}"),
            None => name.to_string(),
        }
    }

    /// The events that count against the thresholds.
    fn counted(&self) -> Vec<&Event> {
        self.events.iter().filter(|e| e.counted).collect()
    }

    /// The service's age: its oldest process's (0 when down).
    fn uptime(&self) -> f64 {
        self.lineup
            .oldest()
            .map_or(0.0, |o| self.lineup.age(o).max(0.0))
    }
}

/// The findings, most telling first (down, limit drift, restarts, uptime) since the first
/// problem leads the summary; and the OK summary.
pub(super) fn findings(run: &Run, prior: &ChurnState, obs: &Observation, r: &mut Report) {
    let counted = run.counted();
    let restarts: u64 = counted.iter().map(|e| e.count).sum();
    let mut text = format!(
        "{restarts} restart{} in {}",
        if restarts == 1 { "" } else { "s" },
        span(run.policy.window)
    );
    if restarts > 0 {
        text.push_str(&hints(&counted));
    }
    if run.lineup.current.is_empty() {
        r.add(Status::Critical, down(prior, obs, run.now));
    }
    for c in &run.lineup.current {
        if let (Some(d), Some(n)) = (c.drift, c.nofile) {
            r.add(Status::Critical, drift(c, d, n, run.now));
        }
    }
    r.metric(
        restarts as f64,
        &run.policy.thresholds,
        text.clone(),
        PerfData::new(&run.label("restarts"), restarts as f64).min(0.0),
    );
    let oldest = run.lineup.oldest();
    if let (Some(o), Some(min)) = (oldest, run.policy.min_uptime) {
        if run.uptime() < min {
            r.add(
                Status::Warning,
                format!(
                    "{} up only {} (less than --min-uptime {})",
                    o.who(),
                    format_duration(run.uptime()),
                    span(min)
                ),
            );
        }
    }
    let running = oldest.map(|o| {
        let n = run.lineup.current.len();
        let more = if n > 1 {
            format!(" (+{} more)", n - 1)
        } else {
            String::new()
        };
        format!("{}{more} up {}", o.who(), format_duration(run.uptime()))
    });
    let state_word = obs
        .state_note
        .as_ref()
        .map_or("", |_| " (state file was corrupt; moved aside)");
    r.ok_summary(match (run.first, running) {
        (true, Some(run)) => format!("baseline recorded{state_word}: {run}"),
        (true, None) => format!("baseline recorded{state_word}"),
        (false, Some(run)) => format!("{run}; {text}{state_word}"),
        (false, None) => format!("{text}{state_word}"),
    });
    if let Some(note) = &obs.state_note {
        r.detail(note.clone());
    }
}

/// The service is down: since when and what its last instance looked like, when a run saw
/// it; else why the selector found nothing.
fn down(prior: &ChurnState, obs: &Observation, now: &Now) -> String {
    let why = obs
        .not_running
        .as_deref()
        .map(|w| w.trim_start_matches("not running: ").to_string());
    let Some(seen) = prior.last_seen else {
        return format!(
            "not running: {}",
            why.unwrap_or_else(|| "no process matches".into())
        );
    };
    let mut t = format!(
        "not running since {} ({} ago)",
        clock_secs(seen, now),
        format_duration(now.wall - seen)
    );
    if let Some(why) = why {
        let _ = write!(t, ": {why}");
    }
    let last = prior
        .instances
        .iter()
        .chain(prior.departed.iter())
        .max_by(|a, b| a.last_seen.total_cmp(&b.last_seen));
    if let Some(last) = last {
        // Up to its last sighting: how long it really lived is not known.
        let _ = write!(
            t,
            "; last instance {} was up {}{}",
            last.who(),
            format_duration(last.lived(None)),
            last_seen_at(last.fds, last.nofile).replacen(';', ",", 1)
        );
    }
    t
}

/// The limit drift finding of instance `c` (limit `n` now, `d` the drop). The cause of a
/// drop (where the lower limit comes from) belongs here, after the two values.
fn drift(c: &Instance, d: Drift, n: Rlimit, now: &Now) -> String {
    if d.direct {
        format!(
            "{} restarted at {} with nofile {} (previous instance had {})",
            c.who(),
            clock(d.at, now),
            show(n.soft),
            show(d.from.soft)
        )
    } else {
        format!(
            "{} runs with nofile {} since a restart at {} (instances before had {})",
            c.who(),
            show(n.soft),
            clock(d.at, now),
            show(d.from.soft)
        )
    }
}

/// The perfdata besides the restart count (which [`findings`] stamps with its thresholds).
pub(super) fn perfdata(run: &Run, r: &mut Report) {
    r.perf(
        PerfData::new(&run.label("uptime"), run.uptime().round())
            .uom(Uom::Seconds)
            .min(0.0),
    );
    r.perf(PerfData::new(&run.label("instances"), run.lineup.current.len() as f64).min(0.0));
}

/// With `-v`: each instance, and the last 20 events in the window.
pub(super) fn long_output(run: &Run, r: &mut Report) {
    for c in &run.lineup.current {
        r.verbose_detail(format!(
            "instance {} started {} (up {}){}; nofile {}",
            c.who(),
            clock(c.started, run.now),
            format_duration(run.lineup.age(c)),
            c.fds
                .map(|f| format!(", {f} open files"))
                .unwrap_or_default(),
            c.nofile.map_or("unknown".to_string(), |n| n.describe())
        ));
    }
    let listed = run.events.len().saturating_sub(20);
    for e in &run.events[listed..] {
        r.verbose_detail(format!("in window: {}", describe_event(e, run.now, None)));
    }
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
            let _ = write!(out, "; instance lived {}", format_duration(max));
        } else if format_duration(min) == format_duration(max) {
            let _ = write!(out, "; instances lived {}", format_duration(max));
        } else {
            let _ = write!(
                out,
                "; instances lived {}-{}",
                format_duration(min),
                format_duration(max)
            );
        }
    }
    if let Some(last) = events.iter().rev().find_map(|e| e.old.as_ref()) {
        out.push_str(&last_seen_at(last.fds, last.nofile));
    }
    out
}

/// `; last seen at 1021/1024 open files`.
fn last_seen_at(fds: Option<u64>, nofile: Option<Rlimit>) -> String {
    match (fds, nofile) {
        (Some(f), Some(n)) => format!("; last seen at {f}/{} open files", show(n.soft)),
        (Some(f), None) => format!("; last seen at {f} open files"),
        _ => String::new(),
    }
}

/// One event in words, for the long output.
pub(super) fn describe_event(e: &Event, now: &Now, since_last: Option<f64>) -> String {
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
                " {} (lived {}{}{})",
                who(&o.name, o.pid),
                format_duration(o.lived),
                last_seen_at(o.fds, o.nofile).replace(';', ","),
                o.nofile
                    .map(|n| format!(", nofile {}", n.describe()))
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
#[must_use]
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
#[must_use]
pub fn clock(wall: f64, now: &Now) -> String {
    format_time(wall, now, false)
}

/// Like [`clock`] with seconds.
#[must_use]
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
