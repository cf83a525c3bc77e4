//! Phases 1 and 2 of a run: which of this run's processes the last run knew, which are
//! new and which are gone; and a new instance's soft `nofile` against its predecessor's.

use procguard_common::proc::limits::cmp_limit;

use super::{ChurnState, Drift, Instance, Now, RunMark, Seen};

/// How this run relates to the last one.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Since {
    /// No earlier run: this one records the baseline.
    pub first: bool,
    /// The host booted since the last run.
    pub rebooted: bool,
    /// Seconds since the last run: the uptime clock within one boot, else the wall clock.
    pub last_run_ago: Option<f64>,
}

impl Since {
    pub fn new(prev: Option<&RunMark>, now: &Now) -> Since {
        Since {
            first: prev.is_none(),
            rebooted: prev.is_some_and(|p| p.boot_id != now.boot_id),
            last_run_ago: prev.map(|p| {
                if p.boot_id == now.boot_id && now.uptime >= p.uptime {
                    now.uptime - p.uptime
                } else {
                    (now.wall - p.wall).max(0.0)
                }
            }),
        }
    }
}

/// This run's instances next to the last run's.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lineup {
    /// This run's instances: known ones keep their history, new ones start one.
    pub current: Vec<Instance>,
    /// Indexes into `current` of the instances the last run did not know.
    pub new_idx: Vec<usize>,
    /// The last run's instances this run does not see.
    pub gone: Vec<Instance>,
    /// Who a new instance replaced: the instances gone since the last run, or, when the
    /// service was down at the last run, those alive when it was last seen.
    pub predecessors: Vec<Instance>,
    /// Ages are taken from this clock.
    uptime: f64,
    clk_tck: u64,
}

impl Lineup {
    /// Matches what this run sees with the instances the state knows, by identity.
    pub fn new(prior: &ChurnState, seen: &[Seen], now: &Now) -> Lineup {
        let mut current = Vec::new();
        let mut new_idx = Vec::new();
        for s in seen {
            if let Some(known) = prior.instances.iter().find(|i| i.same(&now.boot_id, s)) {
                current.push(still_running(known, s, now));
            } else {
                new_idx.push(current.len());
                current.push(first_seen(s, now));
            }
        }
        let gone: Vec<Instance> = prior
            .instances
            .iter()
            .filter(|i| !current.iter().any(|c| c.is(i)))
            .cloned()
            .collect();
        let predecessors = if !gone.is_empty() {
            gone.clone()
        } else if prior.instances.is_empty() {
            prior.departed.clone()
        } else {
            Vec::new()
        };
        Lineup {
            current,
            new_idx,
            gone,
            predecessors,
            uptime: now.uptime,
            clk_tck: now.clk_tck,
        }
    }

    /// An instance's age, from the uptime clock (a stepped wall clock cannot make a
    /// process look young).
    pub fn age(&self, i: &Instance) -> f64 {
        age(self.uptime, self.clk_tck, i.starttime)
    }

    /// The service's oldest process: its age is the service's (a replaced worker does not
    /// make the service young).
    pub fn oldest(&self) -> Option<&Instance> {
        self.current
            .iter()
            .max_by(|a, b| self.age(a).total_cmp(&self.age(b)))
    }

    /// The new instance that started last.
    pub fn newest_new(&self) -> Option<&Instance> {
        self.new_idx
            .iter()
            .map(|&i| &self.current[i])
            .max_by(|a, b| a.started.total_cmp(&b.started))
    }

    /// Limit drift: each new instance against the instance it replaced (of the same name,
    /// else the first). A lower soft `nofile` than that instance's line had is a drift; an
    /// instance replacing a drifted one inherits the drift.
    pub fn mark_drift(&mut self) {
        for &i in &self.new_idx {
            let pred = self
                .predecessors
                .iter()
                .find(|p| p.name == self.current[i].name)
                .or_else(|| self.predecessors.first());
            let (Some(pred), Some(mine)) = (pred, self.current[i].nofile) else {
                continue;
            };
            let Some(reference) = pred.reference() else {
                continue;
            };
            if cmp_limit(mine.soft, reference.soft).is_lt() {
                self.current[i].drift = Some(match pred.drift {
                    Some(d) => Drift { direct: false, ..d },
                    None => Drift {
                        from: reference,
                        from_pid: pred.pid,
                        at: self.current[i].started,
                        direct: true,
                    },
                });
            }
        }
    }

    /// What a predecessor of `successor` looked like: the last seen one of the same name,
    /// else of any. Its lifetime ends at the successor's start when it was `replaced`
    /// directly (a supervisor restarts at once), else at its last sighting.
    pub fn old_for(&self, successor: Option<&Instance>, replaced: bool) -> Option<super::Gone> {
        let latest = |same_name: bool| {
            self.predecessors
                .iter()
                .filter(|p| !same_name || successor.is_some_and(|s| s.name == p.name))
                .max_by(|a, b| a.last_seen.total_cmp(&b.last_seen))
        };
        latest(true)
            .or_else(|| latest(false))
            .map(|p| p.gone(successor.filter(|_| replaced).map(|s| s.started)))
    }
}

/// Seconds since a process started, from the uptime clock.
fn age(uptime: f64, clk_tck: u64, starttime: u64) -> f64 {
    (uptime - starttime as f64 / clk_tck.max(1) as f64).max(0.0)
}

/// A known instance seen again: its history kept, its figures refreshed.
fn still_running(known: &Instance, s: &Seen, now: &Now) -> Instance {
    let nofile = s.nofile.or(known.nofile);
    // A drift ends when the running instance gets its limit back (prlimit).
    let drift = known
        .drift
        .filter(|d| nofile.is_none_or(|n| cmp_limit(n.soft, d.from.soft).is_lt()));
    Instance {
        last_seen: now.wall,
        fds: s.fds.or(known.fds),
        nofile,
        drift,
        ..known.clone()
    }
}

/// A process no run saw before: its start placed on the wall clock from its age.
fn first_seen(s: &Seen, now: &Now) -> Instance {
    Instance {
        boot_id: now.boot_id.clone(),
        pid: s.pid,
        starttime: s.starttime,
        name: s.name.clone(),
        started: now.wall - age(now.uptime, now.clk_tck, s.starttime),
        first_seen: now.wall,
        last_seen: now.wall,
        fds: s.fds,
        nofile: s.nofile,
        drift: None,
    }
}
