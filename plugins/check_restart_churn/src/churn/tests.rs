//! The core against fixtures and an injected clock: no processes, no sleeps.
#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in a scenario
#![allow(clippy::float_cmp)] // the simulated clock's values are exact by construction
#![allow(clippy::unnecessary_wraps)] // `unit()` returns what `Sim::unit` holds

use super::*;
use procguard_common::civil::civil_from_days;
use procguard_common::Status;

/// 2026-11-27 12:00:00 UTC.
const T0: f64 = 1_795_780_800.0;
const HZ: u64 = 100;

/// A simulated host: a clock that only moves when told, and the state between runs.
struct Sim {
    state: ChurnState,
    policy: Policy,
    wall: f64,
    uptime: f64,
    boot: String,
    unit: Option<Result<UnitInfo, String>>,
    not_running: Option<String>,
    note: Option<String>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            state: ChurnState::default(),
            policy: Policy {
                window: 3600.0,
                thresholds: Thresholds {
                    warning: Some("1".parse().unwrap()),
                    critical: Some("3".parse().unwrap()),
                },
                min_uptime: None,
                count_reboots: false,
                label: None,
            },
            wall: T0,
            uptime: 100_000.0,
            boot: "boot-1".into(),
            unit: None,
            not_running: Some("not running: no process matches --name app".into()),
            note: None,
        }
    }

    fn advance(&mut self, secs: f64) {
        self.wall += secs;
        self.uptime += secs;
    }

    fn reboot(&mut self, secs_later: f64, uptime: f64) {
        self.wall += secs_later;
        self.uptime = uptime;
        self.boot = "boot-2".into();
    }

    fn now(&self) -> Now {
        Now {
            wall: self.wall,
            uptime: self.uptime,
            boot_id: self.boot.clone(),
            clk_tck: HZ,
            utc_offset: 0,
        }
    }

    /// A process of the service that started `ago` seconds before now.
    fn started(&self, pid: i32, ago: f64, fds: u64, soft: u64) -> Seen {
        Seen {
            pid,
            starttime: ((self.uptime - ago) * HZ as f64).round() as u64,
            name: "app".into(),
            fds: Some(fds),
            nofile: Some(Rlimit {
                soft: Some(soft),
                hard: Some(soft.max(4096)),
            }),
        }
    }

    fn report(&mut self, seen: &[Seen]) -> Report {
        let obs = Observation {
            now: self.now(),
            seen: seen.to_vec(),
            not_running: seen.is_empty().then(|| self.not_running.clone()).flatten(),
            unit: self.unit.clone(),
            state_note: self.note.clone(),
        };
        evaluate(&mut self.state, &obs, &self.policy)
    }

    fn run(&mut self, seen: &[Seen]) -> (String, Status) {
        self.report(seen).render("RESTART_CHURN", 0)
    }

    fn run_v(&mut self, seen: &[Seen]) -> (String, Status) {
        self.report(seen).render("RESTART_CHURN", 1)
    }
}

fn line1(out: &(String, Status)) -> &str {
    out.0.lines().next().unwrap()
}

fn perf(out: &(String, Status), label: &str) -> String {
    let perf = line1(out).split_once(" | ").unwrap().1;
    perf.split(' ')
        .find_map(|i| i.strip_prefix(&format!("'{label}'=")))
        .unwrap_or_else(|| panic!("no {label} in {out:?}"))
        .to_string()
}

#[test]
fn first_run_records_a_baseline() {
    let mut sim = Sim::new();
    let app = sim.started(100, 3.0 * 3600.0 + 300.0, 10, 1024);
    let out = sim.run(&[app.clone()]);
    assert_eq!(
        out,
        (
            "RESTART_CHURN OK - baseline recorded: app[100] up 3h05m | 'restarts'=0;1;3;0 'uptime'=11100s;;;0 'instances'=1;;;0".to_string(),
            Status::Ok
        )
    );
    assert_eq!(sim.state.instances.len(), 1);
    assert_eq!(sim.state.last_seen, Some(T0));
    // The same process on the next run: nothing happened.
    sim.advance(60.0);
    let out = sim.run(&[app]);
    assert_eq!(
        line1(&out),
        "RESTART_CHURN OK - app[100] up 3h06m; 0 restarts in 1h | 'restarts'=0;1;3;0 'uptime'=11160s;;;0 'instances'=1;;;0"
    );
}

/// A supervisor restarting the service every minute: the count climbs through the
/// thresholds with the dead instances' lifetimes and last fds, then the window forgets.
#[test]
fn restarts_count_against_thresholds_and_expire_with_the_window() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 40.0, 1021, 1024)]);
    let mut expected = [
        (1, Status::Ok),
        (2, Status::Warning),
        (3, Status::Warning),
        (4, Status::Critical),
    ]
    .into_iter();
    let mut current = None;
    for pid in 101..=104 {
        sim.advance(60.0);
        // Started 20 s ago, i.e. 40 s after the previous run; holds 1021 fds.
        let app = sim.started(pid, 20.0, 1021, 1024);
        let out = sim.run(&[app.clone()]);
        let (n, status) = expected.next().unwrap();
        assert_eq!(out.1, status, "{out:?}");
        assert_eq!(perf(&out, "restarts"), format!("{n};1;3;0"));
        current = Some(app);
    }
    let current = current.unwrap();
    let out = sim.run(&[current.clone()]);
    assert_eq!(
        out.0,
        "RESTART_CHURN CRITICAL - 4 restarts in 1h; instances lived 1m-1m20s; last seen at 1021/1024 open files (critical > 3) | 'restarts'=4;1;3;0 'uptime'=20s;;;0 'instances'=1;;;0"
    );
    // 1h after the first two restarts (at 12:00:40 and 12:01:40) only two remain.
    sim.wall = T0 + 3600.0 + 130.0;
    sim.uptime = 100_000.0 + 3600.0 + 130.0;
    let out = sim.run(&[current.clone()]);
    assert_eq!(out.1, Status::Warning, "{out:?}");
    assert!(
        line1(&out).starts_with("RESTART_CHURN WARNING - 2 restarts in 1h; "),
        "{out:?}"
    );
    assert_eq!(sim.state.events.len(), 2, "pruned to the window");
    sim.advance(200.0);
    let out = sim.run(&[current]);
    assert_eq!(out.1, Status::Ok, "{out:?}");
    assert!(line1(&out).contains("0 restarts in 1h"), "{out:?}");
    assert!(sim.state.events.is_empty());
}

#[test]
fn the_restart_itself_is_shown_below_line_one() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 600.0, 1021, 1024)]);
    sim.advance(60.0);
    let out = sim.run(&[sim.started(200, 20.0, 5, 1024)]);
    assert_eq!(
        out.0,
        "RESTART_CHURN OK - app[200] up 20s; 1 restart in 1h; instance lived 10m40s; last seen at 1021/1024 open files | 'restarts'=1;1;3;0 'uptime'=20s;;;0 'instances'=1;;;0\n\
         restart at 12:00:40: app[100] (lived 10m40s, last seen at 1021/1024 open files, nofile 1024:4096) -> pid 200 (last run 1m ago)"
    );
}

#[test]
fn pid_reuse_is_a_restart_told_apart_by_start_time() {
    let mut sim = Sim::new();
    let old = sim.started(100, 600.0, 10, 1024);
    sim.run(&[old.clone()]);
    sim.advance(60.0);
    // Same pid and name, but started 10 s ago: another process.
    let reused = sim.started(100, 10.0, 10, 1024);
    assert_eq!(old.pid, reused.pid);
    assert_ne!(old.starttime, reused.starttime);
    let out = sim.run(&[reused.clone()]);
    assert_eq!(perf(&out, "restarts"), "1;1;3;0", "{out:?}");
    assert!(
        out.0
            .contains("restart at 12:00:50: app[100] (lived 10m50s")
            && out.0.contains("-> pid 100"),
        "{out:?}"
    );
    assert_eq!(sim.state.instances[0].starttime, reused.starttime);
    // Control: the same (pid, starttime) again is no restart.
    sim.advance(60.0);
    let out = sim.run(&[reused]);
    assert_eq!(perf(&out, "restarts"), "1;1;3;0", "{out:?}");
    assert_eq!(sim.state.events.len(), 1);
}

#[test]
fn more_processes_next_to_the_known_ones_are_no_restart() {
    let mut sim = Sim::new();
    let master = sim.started(100, 600.0, 10, 1024);
    sim.run(&[master.clone()]);
    sim.advance(60.0);
    let out = sim.run(&[master, sim.started(101, 5.0, 10, 1024)]);
    assert_eq!(perf(&out, "restarts"), "0;1;3;0", "{out:?}");
    assert_eq!(perf(&out, "instances"), "2;;;0");
    assert!(line1(&out).contains("app[100] (+1 more) up 11m"), "{out:?}");
}

#[test]
fn a_reboot_is_reported_and_counted_only_when_asked() {
    for count in [false, true] {
        let mut sim = Sim::new();
        sim.policy.count_reboots = count;
        sim.run(&[sim.started(100, 600.0, 10, 1024)]);
        sim.reboot(600.0, 50.0);
        let out = sim.run(&[sim.started(100, 20.0, 10, 1024)]);
        assert_eq!(out.1, Status::Ok, "{out:?}");
        assert_eq!(
            perf(&out, "restarts"),
            format!("{};1;3;0", u8::from(count)),
            "{out:?}"
        );
        let words = if count {
            "host rebooted at 12:09 since the last run (counted as a restart: --count-reboots)"
        } else {
            "host rebooted at 12:09 since the last run (not counted as a restart; --count-reboots counts it)"
        };
        assert!(out.0.lines().any(|l| l == words), "{out:?}");
        assert_eq!(sim.state.instances[0].boot_id, "boot-2");
    }
}

#[test]
fn a_lower_limit_across_a_reboot_is_still_drift() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 600.0, 10, 500_000)]);
    sim.reboot(600.0, 50.0);
    let out = sim.run(&[sim.started(100, 20.0, 10, 1024)]);
    assert_eq!(out.1, Status::Critical, "{out:?}");
    assert!(
        line1(&out).starts_with(
            "RESTART_CHURN CRITICAL - app[100] restarted at 12:09 with nofile 1024 (previous instance had 500000)"
        ),
        "{out:?}"
    );
}

#[test]
fn down_is_critical_since_last_seen_and_coming_back_is_a_restart() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 600.0, 1021, 1024)]);
    sim.advance(90.0);
    let out = sim.run(&[]);
    assert_eq!(
        line1(&out),
        "RESTART_CHURN CRITICAL - not running since 12:00:00 (1m30s ago): no process matches --name app; last instance app[100] was up 10m, last seen at 1021/1024 open files | 'restarts'=0;1;3;0 'uptime'=0s;;;0 'instances'=0;;;0"
    );
    sim.advance(60.0);
    let out = sim.run(&[]);
    assert!(
        line1(&out)
            .starts_with("RESTART_CHURN CRITICAL - not running since 12:00:00 (2m30s ago): "),
        "{out:?}"
    );
    sim.advance(60.0);
    let out = sim.run(&[sim.started(200, 30.0, 5, 1024)]);
    assert_eq!(out.1, Status::Ok, "{out:?}");
    assert_eq!(perf(&out, "restarts"), "1;1;3;0");
    assert!(
        out.0
            .contains("back after being down at 12:03:00: app[100] (lived 10m, last seen at 1021/1024 open files"),
        "{out:?}"
    );
    assert!(sim.state.departed.is_empty());
}

#[test]
fn never_seen_then_running_is_inferred_from_its_age() {
    let mut sim = Sim::new();
    sim.not_running = Some("not running: pidfile /run/app.pid does not exist".into());
    let out = sim.run(&[]);
    assert_eq!(
        line1(&out),
        "RESTART_CHURN CRITICAL - not running: pidfile /run/app.pid does not exist | 'restarts'=0;1;3;0 'uptime'=0s;;;0 'instances'=0;;;0"
    );
    sim.advance(60.0);
    // Younger than the time since the last run: it started in between.
    let out = sim.run(&[sim.started(100, 10.0, 5, 1024)]);
    assert_eq!(perf(&out, "restarts"), "1;1;3;0", "{out:?}");
    assert!(
        out.0.contains(
            "started at 12:00:50, after a run that saw it down: pid 100 (last run 1m ago)"
        ),
        "{out:?}"
    );
}

#[test]
fn running_since_before_the_last_run_is_not_a_restart() {
    let mut sim = Sim::new();
    sim.run(&[]);
    sim.advance(60.0);
    // The last run did not see it (say the pidfile was not written yet), but it is older
    // than that run: no restart happened.
    let out = sim.run(&[sim.started(100, 3600.0, 5, 1024)]);
    assert_eq!(perf(&out, "restarts"), "0;1;3;0", "{out:?}");
    assert!(
        out.0
            .contains("app[100] runs again but started before the last run, which did not see it (not counted)"),
        "{out:?}"
    );
}

/// The incident: restarted by a supervisor with a lower nofile, then restarted again and
/// again with it. CRITICAL whatever the restart count, as long as the lower limit runs.
#[test]
fn limit_drift_is_critical_naming_both_values_and_the_time() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 3600.0, 900, 500_000)]);
    sim.advance(60.0);
    // Restarted at 12:01 (0 s ago) with 1024.
    let degraded = sim.started(200, 0.0, 5, 1024);
    let out = sim.run(&[degraded.clone()]);
    assert_eq!(out.1, Status::Critical, "{out:?}");
    assert!(
        line1(&out).starts_with(
            "RESTART_CHURN CRITICAL - app[200] restarted at 12:01 with nofile 1024 (previous instance had 500000) | 'restarts'=1;1;3;0"
        ),
        "{out:?}"
    );
    // Still running with the lower limit: still CRITICAL (Nagios needs repeated results
    // to make a state hard).
    sim.advance(60.0);
    let out = sim.run(&[degraded]);
    assert!(
        line1(&out).starts_with("RESTART_CHURN CRITICAL - app[200] restarted at 12:01 with nofile 1024 (previous instance had 500000)"),
        "{out:?}"
    );
    // Restarted again with the same lower limit: its predecessor had 1024 too, but the
    // limit the service had is still remembered.
    sim.advance(60.0);
    let out = sim.run(&[sim.started(300, 5.0, 5, 1024)]);
    assert!(
        line1(&out).starts_with(
            "RESTART_CHURN CRITICAL - app[300] runs with nofile 1024 since a restart at 12:01 (instances before had 500000)"
        ),
        "{out:?}"
    );
    // Restarted with the limit restored: the drift is over.
    sim.advance(60.0);
    let out = sim.run(&[sim.started(400, 5.0, 5, 500_000)]);
    assert!(!out.0.contains("with nofile"), "{out:?}");
    assert_eq!(out.1, Status::Warning, "3 restarts remain: {out:?}");
}

#[test]
fn a_higher_or_unknown_limit_is_no_drift() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 3600.0, 5, 1024)]);
    sim.advance(60.0);
    let out = sim.run(&[sim.started(200, 5.0, 5, 65_536)]);
    assert_eq!(out.1, Status::Ok, "{out:?}");
    assert!(!out.0.contains("with nofile"), "{out:?}");
    sim.advance(60.0);
    let mut unknown = sim.started(300, 5.0, 5, 1);
    unknown.nofile = None;
    let out = sim.run(&[unknown]);
    assert_eq!(out.1, Status::Warning, "2 restarts, no drift: {out:?}");
    assert!(!out.0.contains("with nofile"), "{out:?}");
}

#[test]
fn min_uptime_warns_about_a_young_service() {
    let mut sim = Sim::new();
    sim.policy.min_uptime = Some(300.0);
    let out = sim.run(&[sim.started(100, 41.0, 5, 1024)]);
    assert_eq!(out.1, Status::Warning, "{out:?}");
    assert!(
        line1(&out).starts_with(
            "RESTART_CHURN WARNING - app[100] up only 41s (less than --min-uptime 5m)"
        ),
        "{out:?}"
    );
    let mut sim = Sim::new();
    sim.policy.min_uptime = Some(300.0);
    let out = sim.run(&[sim.started(100, 301.0, 5, 1024)]);
    assert_eq!(out.1, Status::Ok, "{out:?}");
}

fn unit(n: u64, mono: u64) -> Option<Result<UnitInfo, String>> {
    Some(Ok(UnitInfo {
        name: "app.service".into(),
        n_restarts: Some(n),
        main_start_mono: Some(mono),
    }))
}

#[test]
fn systemd_counts_what_a_sample_cannot_see_and_resets_rebaseline() {
    let mut sim = Sim::new();
    let app = sim.started(100, 600.0, 5, 1024);
    sim.unit = unit(2, 5_000_000);
    sim.run(&[app.clone()]);
    // systemd restarted it 3 times between two runs; we see one replacement.
    sim.advance(60.0);
    let app2 = sim.started(200, 5.0, 5, 1024);
    sim.unit = unit(5, 99_000_000_000);
    let out = sim.run_v(&[app2.clone()]);
    assert_eq!(out.1, Status::Warning, "{out:?}");
    assert_eq!(perf(&out, "restarts"), "3;1;3;0");
    assert!(
        out.0.contains("app.service: systemd counted 3 automatic restarts since the last run (NRestarts 2 -> 5)"),
        "{out:?}"
    );
    // A counter reset (NRestarts went down) re-baselines instead of counting.
    sim.advance(60.0);
    sim.unit = unit(0, 99_000_000_000);
    let out = sim.run(&[app2.clone()]);
    assert_eq!(perf(&out, "restarts"), "3;1;3;0", "{out:?}");
    assert!(
        out.0
            .contains("app.service: NRestarts went down from 5 to 0 (reset); counting from 0"),
        "{out:?}"
    );
    // A manual restart: NRestarts stays, the main process's start time moves, and the
    // process is not replaced as far as we can tell (same pid and start time): 1.
    sim.advance(60.0);
    sim.unit = unit(0, 99_100_000_000);
    let out = sim.run(&[app2]);
    assert_eq!(perf(&out, "restarts"), "4;1;3;0", "{out:?}");
    assert_eq!(sim.state.events.last().unwrap().kind, Kind::Systemd);
    // systemctl failing is UNKNOWN for that part; the rest still counts.
    sim.advance(60.0);
    sim.unit = Some(Err("cannot run systemctl: not found".into()));
    let out = sim.run(&[sim.started(300, 5.0, 5, 1024)]);
    assert_eq!(out.1, Status::Critical, "5 restarts: {out:?}");
    assert!(
        out.0.contains("[UNKNOWN] cannot run systemctl: not found"),
        "{out:?}"
    );
}

#[test]
fn a_corrupt_state_file_is_mentioned() {
    let mut sim = Sim::new();
    sim.note = Some("state file /s/x.json was corrupt (empty file); moved aside to /s/x.json.corrupt, starting afresh".into());
    let out = sim.run(&[sim.started(100, 60.0, 5, 1024)]);
    assert_eq!(
        out.0,
        "RESTART_CHURN OK - baseline recorded (state file was corrupt; moved aside): app[100] up 1m | 'restarts'=0;1;3;0 'uptime'=60s;;;0 'instances'=1;;;0\n\
         state file /s/x.json was corrupt (empty file); moved aside to /s/x.json.corrupt, starting afresh"
    );
}

#[test]
fn labels_prefix_the_perfdata() {
    let mut sim = Sim::new();
    sim.policy.label = Some("web".into());
    let out = sim.run(&[sim.started(100, 60.0, 5, 1024)]);
    assert!(
        line1(&out)
            .ends_with("| 'web_restarts'=0;1;3;0 'web_uptime'=60s;;;0 'web_instances'=1;;;0"),
        "{out:?}"
    );
}

#[test]
fn state_stays_bounded_and_round_trips() {
    let mut sim = Sim::new();
    sim.policy.window = 86_400.0;
    sim.run(&[sim.started(1, 10.0, 5, 1024)]);
    for pid in 2..1300 {
        sim.advance(10.0);
        sim.run(&[sim.started(pid, 1.0, 5, 1024)]);
    }
    assert_eq!(sim.state.events.len(), MAX_EVENTS);
    let text = serde_json::to_string(&sim.state).unwrap();
    assert!(text.len() < 400_000, "{} bytes", text.len());
    let back: ChurnState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sim.state);
    let empty: ChurnState = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, ChurnState::default());
}

#[test]
fn times_and_spans_for_people() {
    let mut now = Sim::new().now();
    assert_eq!(clock(T0 + 61.0, &now), "12:01");
    assert_eq!(clock_secs(T0 + 61.0, &now), "12:01:01");
    assert_eq!(clock(T0 - 2.0 * 86_400.0, &now), "2026-11-25 12:00");
    now.utc_offset = 3600;
    assert_eq!(clock(T0, &now), "13:00");
    now.utc_offset = -13 * 3600;
    assert_eq!(clock(T0, &now), "23:00", "same local day as now");
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(span(3600.0), "1h");
    assert_eq!(span(600.0), "10m");
    assert_eq!(span(86_400.0), "1d");
    assert_eq!(span(90.0), "1m30s");
    assert_eq!(span(5400.0), "90m");
}

#[test]
fn down_and_drift_lead_the_summary_over_the_restart_count() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 600.0, 5, 500_000)]);
    for pid in 101..=104 {
        sim.advance(60.0);
        sim.run(&[sim.started(pid, 5.0, 5, 1024)]);
    }
    sim.advance(60.0);
    let out = sim.run(&[sim.started(105, 5.0, 5, 1024)]);
    assert!(
        line1(&out).starts_with("RESTART_CHURN CRITICAL - app[105] runs with nofile 1024 since a restart at 12:00 (instances before had 500000) (+1 more)"),
        "{out:?}"
    );
    sim.advance(60.0);
    let out = sim.run(&[]);
    assert!(
        line1(&out).starts_with("RESTART_CHURN CRITICAL - not running since 12:05:00 (1m ago): no process matches --name app; last instance app[105] was up 5s, last seen at 5/1024 open files (+1 more)"),
        "{out:?}"
    );
}

/// `prlimit --pid N --nofile=500000:500000` on the running instance ends the drift.
#[test]
fn raising_the_running_instance_limit_ends_the_drift() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 3600.0, 5, 500_000)]);
    sim.advance(60.0);
    let mut app = sim.started(200, 5.0, 5, 1024);
    assert_eq!(sim.run(&[app.clone()]).1, Status::Critical);
    sim.advance(60.0);
    assert_eq!(sim.run(&[app.clone()]).1, Status::Critical, "still lowered");
    app.nofile = Some(Rlimit {
        soft: Some(500_000),
        hard: Some(500_000),
    });
    sim.advance(60.0);
    let out = sim.run(&[app.clone()]);
    assert_eq!(out.1, Status::Ok, "{out:?}");
    assert!(sim.state.instances[0].drift.is_none());
}

// The phases, each on its own.

#[test]
fn judging_is_pure_the_same_inputs_give_the_same_outputs() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 600.0, 5, 1024)]);
    sim.advance(60.0);
    let obs = Observation {
        now: sim.now(),
        seen: vec![sim.started(200, 5.0, 7, 1024)],
        not_running: None,
        unit: None,
        state_note: None,
    };
    let prior = sim.state.clone();
    let (a, next_a) = judge(&prior, &obs, &sim.policy);
    let (b, next_b) = judge(&prior, &obs, &sim.policy);
    assert_eq!(prior, sim.state, "the prior state is not touched");
    assert_eq!(a.render("X", 1), b.render("X", 1));
    assert_eq!(next_a, next_b);
    assert_eq!(next_a.instances.len(), 1);
    assert_eq!(next_a.instances[0].pid, 200);
    assert_eq!(next_a.events.len(), 1);
    assert_eq!(next_a.events[0].kind, Kind::Replaced);
    assert_eq!(next_a.last_run.as_ref().unwrap().wall, sim.wall);
}

#[test]
fn since_uses_uptime_within_a_boot_and_the_wall_clock_across_one() {
    let mut sim = Sim::new();
    let mark = RunMark {
        wall: sim.wall,
        uptime: sim.uptime,
        boot_id: sim.boot.clone(),
    };
    assert_eq!(
        Since::new(None, &sim.now()),
        Since {
            first: true,
            rebooted: false,
            last_run_ago: None
        }
    );
    // The wall clock stepped back an hour: the uptime clock still says 60 s.
    sim.advance(60.0);
    sim.wall -= 3600.0;
    let s = Since::new(Some(&mark), &sim.now());
    assert_eq!(
        (s.first, s.rebooted, s.last_run_ago),
        (false, false, Some(60.0))
    );
    sim.wall += 3600.0;
    sim.reboot(120.0, 30.0);
    let s = Since::new(Some(&mark), &sim.now());
    assert_eq!((s.rebooted, s.last_run_ago), (true, Some(180.0)));
}

#[test]
fn the_lineup_tells_known_new_and_gone_instances_apart() {
    let mut sim = Sim::new();
    let (a, b) = (
        sim.started(100, 600.0, 5, 1024),
        sim.started(101, 500.0, 5, 1024),
    );
    sim.run(&[a.clone(), b.clone()]);
    sim.advance(60.0);
    let c = sim.started(102, 5.0, 9, 512);
    let lineup = Lineup::new(&sim.state, &[a.clone(), c.clone()], &sim.now());
    let pids = |v: &[Instance]| v.iter().map(|i| i.pid).collect::<Vec<_>>();
    assert_eq!(pids(&lineup.current), [100, 102]);
    assert_eq!(lineup.new_idx, [1]);
    assert_eq!(pids(&lineup.gone), [101]);
    assert_eq!(pids(&lineup.predecessors), [101]);
    assert_eq!(lineup.oldest().unwrap().pid, 100);
    assert_eq!(lineup.age(lineup.oldest().unwrap()), 660.0);
    assert_eq!(lineup.newest_new().unwrap().pid, 102);
    assert_eq!(lineup.current[1].started, sim.wall - 5.0);
    // The known instance keeps its first sighting; the new one starts its own.
    assert_eq!(lineup.current[0].first_seen, T0);
    assert_eq!(lineup.current[1].first_seen, sim.wall);
    // Drift: 102 (512) replaced 101 (1024).
    let mut lineup = lineup;
    lineup.mark_drift();
    let d = lineup.current[1].drift.expect("drift");
    assert_eq!((d.from.soft, d.from_pid, d.direct), (Some(1024), 101, true));
    assert!(lineup.current[0].drift.is_none());
    let old = lineup.old_for(lineup.newest_new(), true).unwrap();
    assert_eq!(
        (old.pid, old.lived),
        (101, 555.0),
        "lived up to its successor's start"
    );
}

#[test]
fn the_window_drops_old_events_and_keeps_at_most_the_newest() {
    let now = Sim::new().now();
    let event = |at: f64| Event {
        at,
        count: 1,
        kind: Kind::Replaced,
        counted: true,
        old: None,
        new_pid: None,
    };
    let earlier = vec![event(T0 - 7200.0), event(T0 - 600.0)];
    let kept = restarts::in_window(&earlier, vec![event(T0)], 3600.0, &now);
    assert_eq!(
        kept.iter().map(|e| e.at).collect::<Vec<_>>(),
        [T0 - 600.0, T0]
    );
    let many: Vec<Event> = (0..MAX_EVENTS + 5)
        .rev()
        .map(|i| event(T0 - i as f64))
        .collect();
    let kept = restarts::in_window(&many, Vec::new(), 86_400.0, &now);
    assert_eq!(kept.len(), MAX_EVENTS);
    assert_eq!(
        kept[0].at,
        T0 - (MAX_EVENTS - 1) as f64,
        "the oldest dropped"
    );
}

#[test]
fn commit_keeps_the_departed_while_the_service_is_down() {
    let mut sim = Sim::new();
    sim.run(&[sim.started(100, 600.0, 5, 1024)]);
    let prior = sim.state.clone();
    sim.advance(60.0);
    let next = commit(&prior, Vec::new(), Vec::new(), None, &sim.now());
    assert!(next.instances.is_empty());
    assert_eq!(next.departed, prior.instances);
    assert_eq!(next.last_seen, Some(T0));
    // Down again: the departed stay as they were.
    sim.advance(60.0);
    let again = commit(&next, Vec::new(), Vec::new(), None, &sim.now());
    assert_eq!(again.departed, prior.instances);
    assert_eq!(again.last_run.unwrap().wall, sim.wall);
}
