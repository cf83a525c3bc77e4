//! The evaluation without processes: hand-written observations in, output out.

use clap::Parser;
use procguard_common::proc::{FileNr, Rlimit};
use procguard_common::select::Selected;

use super::*;

fn args(argv: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("check_fd_usage").chain(argv.iter().copied())).unwrap()
}

fn usage(fds: u64, soft: Option<u64>, hard: Option<u64>) -> FdUsage {
    FdUsage {
        fds,
        nofile: Rlimit { soft, hard },
    }
}

fn sel(pid: i32, name: &str, label: &str) -> Selected {
    Selected {
        pid,
        name: name.into(),
        starttime: 100,
        label: label.into(),
        ns_pid: None,
    }
}

fn one(s: Selected, u: FdUsage) -> Observation {
    Observation {
        processes: Some(Processes::Selected {
            procs: vec![Ok((s, u))],
            vanished: 0,
        }),
        ..Observation::default()
    }
}

/// Renders the evaluation at `verbosity`; `--all` names are `p<pid>[pid]`.
fn run(obs: Observation, argv: &[&str], verbosity: u8) -> (String, Status) {
    let a = args(argv);
    let rules = Rules::new(&a).unwrap();
    let mut name = |pid: i32| format!("p{pid}[{pid}]");
    evaluate(obs, &a, &rules, &mut name).render("FD_USAGE", verbosity)
}

#[test]
fn a_selected_process_near_its_limit_is_critical_with_the_thresholds_in_perfdata() {
    let obs = one(
        sel(2100, "node", "node"),
        usage(1021, Some(1024), Some(4096)),
    );
    assert_eq!(
        run(obs, &["--pid", "2100"], 0),
        (
            "FD_USAGE CRITICAL - node[2100] 1021/1024 open files (99.7% of soft limit; hard 4096) (critical > 921) | 'node_fds'=1021;819;921;0;1024".to_string(),
            Status::Critical
        )
    );
}

#[test]
fn all_mode_words_a_finding_as_selector_mode_does() {
    let obs = Observation {
        processes: Some(Processes::All {
            procs: vec![
                (2100, usage(1021, Some(1024), Some(4096))),
                (7, usage(900, Some(1024), Some(4096))),
                (8, usage(3, Some(1024), Some(4096))),
            ],
            unreadable: vec![],
        }),
        ..Observation::default()
    };
    let (out, status) = run(obs, &["--all", "--top", "1"], 0);
    assert_eq!(status, Status::Critical);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "FD_USAGE CRITICAL - p2100[2100] 1021/1024 open files (99.7% of soft limit; hard 4096) (critical > 921) (+1 more) | 'processes'=3;;;0 'unreadable'=0;;;0 'over_threshold'=2;;;0 'fullest_pct'=99.7%;;;0;100"
    );
    assert_eq!(
        lines[1..],
        [
            "[CRITICAL] p2100[2100] 1021/1024 open files (99.7% of soft limit; hard 4096) (critical > 921)",
            "[WARNING] p7[7] 900/1024 open files (87.9% of soft limit; hard 4096) (warning > 819)",
            "1. p2100[2100] 1021/1024 open files (99.7% of soft limit; hard 4096)",
        ]
    );
}

#[test]
fn all_mode_names_only_the_listed_and_the_failing() {
    let procs: Vec<(i32, FdUsage)> = (1..=50)
        .map(|pid| (pid, usage(10, Some(1024), None)))
        .collect();
    let obs = Observation {
        processes: Some(Processes::All {
            procs,
            unreadable: vec![],
        }),
        ..Observation::default()
    };
    let a = args(&["--all", "--top", "2"]);
    let rules = Rules::new(&a).unwrap();
    let mut named = Vec::new();
    let mut name = |pid: i32| {
        named.push(pid);
        format!("x[{pid}]")
    };
    let (out, status) = evaluate(obs, &a, &rules, &mut name).render("FD_USAGE", 0);
    assert_eq!(status, Status::Ok);
    assert_eq!(named, [1, 2], "the fullest once, then the second listed");
    assert!(out.starts_with("FD_USAGE OK - 50 processes below fd thresholds; fullest x[1] 10/1024 open files (1% of soft limit; hard unlimited) |"), "{out}");
}

#[test]
fn an_unlimited_soft_limit_skips_percent_thresholds() {
    let obs = one(sel(1, "x", "x"), usage(5, None, None));
    let (out, status) = run(obs, &["--pid", "1"], 0);
    assert_eq!(status, Status::Ok);
    assert_eq!(
        out,
        "FD_USAGE OK - x[1] 5 open files (soft limit unlimited: percent thresholds not applied) | 'x_fds'=5;;;0"
    );
}

#[test]
fn headroom_is_judged_and_graphed_with_its_own_thresholds() {
    let obs = one(sel(9, "sleep", "sleep"), usage(40, Some(64), Some(64)));
    let (out, status) = run(obs, &["--pid", "9", "--headroom-critical", "30"], 0);
    assert_eq!(status, Status::Critical);
    assert_eq!(
        out,
        "FD_USAGE CRITICAL - sleep[9] only 24 fds left below its soft limit 64 (critical < 30) | 'sleep_fds'=40;51;57;0;64 'sleep_headroom'=24;;30:;0"
    );
    // -vv says how each value was judged.
    let obs = one(sel(9, "sleep", "sleep"), usage(40, Some(64), Some(64)));
    let (out, _) = run(obs, &["--pid", "9", "--headroom-critical", "30"], 2);
    assert!(
        out.contains("\nsleep_fds = 40 (warning 51, critical 57) -> OK\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\nsleep_headroom = 24 (warning -, critical 30:) -> CRITICAL"),
        "{out}"
    );
}

#[test]
fn processes_that_all_exited_are_not_running_and_unreadable_ones_unknown() {
    let obs = Observation {
        processes: Some(Processes::Selected {
            procs: vec![],
            vanished: 2,
        }),
        ..Observation::default()
    };
    assert_eq!(
        run(obs, &["--name", "sleep"], 0),
        (
            "FD_USAGE CRITICAL - not running: every process matching --name sleep exited while being checked".to_string(),
            Status::Critical
        )
    );
    let obs = Observation {
        processes: Some(Processes::Selected {
            procs: vec![
                Err(CheckError::Other(
                    "cannot read /proc/7/limits: Permission denied".into(),
                )),
                Ok((sel(8, "sleep", "sleep_2"), usage(3, Some(64), Some(64)))),
            ],
            vanished: 0,
        }),
        ..Observation::default()
    };
    let (out, status) = run(obs, &["--name", "sleep"], 0);
    assert_eq!(status, Status::Unknown);
    assert!(out.starts_with("FD_USAGE UNKNOWN - cannot read /proc/7/limits: Permission denied | 'sleep_2_fds'=3;51;57;0;64"), "{out}");
}

#[test]
fn host_file_handles_keep_exact_numbers() {
    let obs = Observation {
        system: Some(System {
            file_nr: FileNr {
                allocated: 2599,
                max: 9_223_372_036_854_775_807,
            },
            nr_open: Ok(1_073_741_816),
        }),
        ..Observation::default()
    };
    let (out, status) = run(obs, &["--system"], 0);
    assert_eq!(status, Status::Ok);
    assert!(out.starts_with("FD_USAGE OK - host 2599/9223372036854775807 file handles allocated (0% of fs.file-max) | 'file_handles'=2599;"), "{out}");
    assert!(
        out.ends_with(";0;9223372036854775807 'nr_open'=1073741816;;;0"),
        "{out}"
    );
    let perf = out.split(" | ").nth(1).unwrap();
    assert_eq!(
        perf,
        "'file_handles'=2599;7378697629483821056;8301034833169298432;0;9223372036854775807 'nr_open'=1073741816;;;0"
    );
    let obs = Observation {
        system: Some(System {
            file_nr: FileNr {
                allocated: 950,
                max: 1000,
            },
            nr_open: Err(CheckError::Other("cannot read nr_open".into())),
        }),
        ..Observation::default()
    };
    let (out, status) = run(obs, &["--system"], 1);
    assert_eq!(status, Status::Critical);
    assert_eq!(
        out,
        "FD_USAGE CRITICAL - host 950/1000 file handles allocated (95% of fs.file-max) (critical > 900) | 'file_handles'=950;800;900;0;1000\ncannot read nr_open"
    );
}

#[test]
fn verbose_lists_the_fullest_process_fds_by_kind() {
    let mut obs = Observation {
        processes: Some(Processes::Selected {
            procs: vec![
                Ok((sel(1, "a", "a_1"), usage(2, Some(64), Some(64)))),
                Ok((sel(2, "b", "a_2"), usage(9, Some(64), Some(64)))),
            ],
            vanished: 0,
        }),
        ..Observation::default()
    };
    assert_eq!(
        crate::acquire::fullest(obs.processes.as_ref()),
        Some((1, 2))
    );
    let targets = [
        "socket:[1]",
        "socket:[2]",
        "pipe:[3]",
        "/dev/null",
        "anon_inode:[eventpoll]",
    ];
    obs.fullest_fds = Some((1, Ok(targets.map(String::from).to_vec())));
    let (out, _) = run(obs, &["--name", "a", "-v"], 1);
    assert!(
        out.ends_with("\nb[2] fds by kind: 2 socket, 1 anon_inode eventpoll, 1 device, 1 pipe"),
        "{out}"
    );
}

#[test]
fn fd_kinds_from_link_targets() {
    assert_eq!(fd_kind("socket:[12345]"), "socket");
    assert_eq!(fd_kind("pipe:[99]"), "pipe");
    assert_eq!(fd_kind("anon_inode:[eventpoll]"), "anon_inode eventpoll");
    assert_eq!(fd_kind("anon_inode:inotify"), "anon_inode inotify");
    assert_eq!(fd_kind("/dev/null"), "device");
    assert_eq!(fd_kind("/var/log/app.log (deleted)"), "file");
    assert_eq!(fd_kind("net:[4026531840]"), "other");
}
