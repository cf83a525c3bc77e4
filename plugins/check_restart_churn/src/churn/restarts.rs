//! Phases 3 to 5 of a run: the restarts since the last run (seen, inferred, or counted by
//! systemd) and the window they are kept in.

use procguard_common::Report;

use super::lineup::{Lineup, Since};
use procguard_common::proc::limits::show;

use super::words::clock;
use super::{ChurnState, Event, Kind, Now, Policy, UnitInfo, UnitMark, MAX_EVENTS};

/// The restarts (and a reboot) this run finds by comparing its instances with the last
/// run's; the first run finds none (it is the baseline).
pub(super) fn since_last_run(
    prior: &ChurnState,
    lineup: &Lineup,
    since: &Since,
    policy: &Policy,
    now: &Now,
    r: &mut Report,
) -> Vec<Event> {
    let Some(new) = lineup.newest_new().filter(|_| !since.first) else {
        return Vec::new();
    };
    if since.rebooted {
        let boot_at = now.wall - now.uptime;
        r.detail(format!(
            "host rebooted at {} since the last run{}",
            clock(boot_at, now),
            if policy.count_reboots {
                " (counted as a restart: --count-reboots)"
            } else {
                " (not counted as a restart; --count-reboots counts it)"
            }
        ));
        return vec![Event {
            at: boot_at,
            count: 1,
            kind: Kind::Reboot,
            counted: policy.count_reboots,
            old: lineup.old_for(Some(new), false),
            new_pid: Some(new.pid),
        }];
    }
    // The service is as old as its oldest process; younger than the time since the last
    // run proves it started in between.
    let started_since_last = since
        .last_run_ago
        .is_some_and(|ago| lineup.oldest().is_some_and(|o| lineup.age(o) <= ago));
    let kind = if !lineup.gone.is_empty() {
        Kind::Replaced
    } else if !prior.instances.is_empty() {
        return Vec::new(); // a process added next to the known ones: growth, not a restart
    } else if !started_since_last {
        r.detail(format!(
            "{} runs again but started before the last run, which did not see it (not counted)",
            new.who()
        ));
        return Vec::new();
    } else if prior.departed.is_empty() && prior.last_seen.is_none() {
        Kind::Inferred
    } else {
        Kind::CameBack
    };
    vec![Event {
        at: new.started,
        count: 1,
        kind,
        counted: true,
        old: lineup.old_for(Some(new), kind == Kind::Replaced),
        new_pid: Some(new.pid),
    }]
}

/// systemd's counters, reset-aware: when they show more restarts than the comparison
/// found, the restart found counts for them all, or one event stands for them. Returns the
/// counters to keep.
pub(super) fn systemd(
    prev: Option<&UnitMark>,
    info: &UnitInfo,
    lineup: &Lineup,
    since: &Since,
    now: &Now,
    events: &mut Vec<Event>,
    r: &mut Report,
) -> UnitMark {
    let counted = unit_restarts(prev, info, now, r);
    let observed: u64 = events
        .iter()
        .filter(|e| e.kind != Kind::Reboot)
        .map(|e| e.count)
        .sum();
    if counted > observed && !since.rebooted && !since.first {
        if let Some(e) = events.iter_mut().find(|e| e.kind != Kind::Reboot) {
            e.count = counted;
        } else {
            let newest = lineup.newest_new();
            events.push(Event {
                at: main_started(info, now),
                count: counted,
                kind: Kind::Systemd,
                counted: true,
                old: lineup.old_for(newest, false),
                new_pid: newest.map(|n| n.pid),
            });
        }
    }
    UnitMark {
        name: info.name.clone(),
        boot_id: now.boot_id.clone(),
        n_restarts: info.n_restarts,
        main_start_mono: info.main_start_mono,
    }
}

/// When the unit's main process started, on the wall clock (now, if systemd does not say).
fn main_started(info: &UnitInfo, now: &Now) -> f64 {
    info.main_start_mono
        .filter(|m| *m > 0)
        .map_or(now.wall, |m| {
            now.wall - (now.uptime - m as f64 / 1e6).max(0.0)
        })
}

/// The events to keep: the earlier ones and this run's, those older than the window
/// dropped, and at most [`MAX_EVENTS`] (the newest).
pub(super) fn in_window(earlier: &[Event], new: Vec<Event>, window: f64, now: &Now) -> Vec<Event> {
    let horizon = now.wall - window;
    let mut events: Vec<Event> = earlier.iter().cloned().chain(new).collect();
    events.retain(|e| e.at >= horizon);
    if events.len() > MAX_EVENTS {
        let excess = events.len() - MAX_EVENTS;
        events.drain(..excess);
    }
    events
}

/// Restarts systemd counted since the last run: the `NRestarts` increase (a decrease is a
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
