//! `check_restart_churn` against real processes: a test supervisor restarts a child and the
//! plugin binary runs between restarts, each test with its own state directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use procguard_common::testing::{run_command, run_plugin, Holder, HolderSpec, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_restart_churn");

/// A service kept by the test: one child at a time, its pid in a pidfile. The child is
/// killed when restarted and when the service is dropped.
struct Service {
    child: Option<Holder>,
    pidfile: PathBuf,
    spec: HolderSpec,
}

impl Service {
    fn start(dir: &Path, spec: HolderSpec) -> Service {
        let mut s = Service {
            child: None,
            pidfile: dir.join("svc.pid"),
            spec,
        };
        s.restart();
        s
    }

    /// Kills the child (if any) and starts a new one with the current spec.
    fn restart(&mut self) {
        self.stop();
        let child = Holder::start(&self.spec);
        std::fs::write(&self.pidfile, format!("{}\n", child.pid())).expect("write pidfile");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        self.child = None; // Holder's Drop kills and reaps it
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("service running").pid()
    }
}

fn spec(soft: u64, hard: u64, fds: u32) -> HolderSpec {
    HolderSpec {
        nofile: (soft, hard),
        fds,
        exe_name: None,
    }
}

fn run(args: &[&str]) -> Outcome {
    run_plugin(BIN, args)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The state file of `--key KEY`.
fn state_file(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("restart_churn.{key}.json"))
}

#[test]
fn a_supervisor_restarting_the_child_climbs_through_the_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut svc = Service::start(tmp.path(), spec(1024, 4096, 50));
    let pidfile = svc.pidfile.clone();
    let args = ["--pidfile", s(&pidfile), "--state-dir", s(&state)];
    let o = run(&args);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "RESTART_CHURN OK - baseline recorded: sleep[{}] up ",
            svc.pid()
        )),
        "{o:?}"
    );
    assert_eq!(o.perf("restarts").as_deref(), Some("0;1;3;0"));
    assert_eq!(o.perf("instances").as_deref(), Some("1;;;0"));
    for (n, code) in [(1, 0), (2, 1), (3, 1), (4, 2)] {
        let old = svc.pid();
        svc.restart();
        let o = run(&args);
        assert_eq!(o.code, code, "after restart {n}: {o:?}");
        assert_eq!(
            o.perf("restarts"),
            Some(format!("{n};1;3;0")),
            "after restart {n}: {o:?}"
        );
        assert!(o.stdout.contains("\nrestart at "), "{o:?}");
        assert!(
            o.stdout.contains(&format!("sleep[{old}] (lived "))
                && o.stdout.contains(&format!("-> pid {}", svc.pid())),
            "the restart names the old and the new pid: {o:?}"
        );
    }
    let o = run(&args);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1()
            .starts_with("RESTART_CHURN CRITICAL - 4 restarts in 1h; instance"),
        "{o:?}"
    );
    assert!(
        o.line1()
            .contains("; last seen at 50/1024 open files (critical > 3) | "),
        "the dead instance's last fds and limit: {o:?}"
    );
    // The service going away is CRITICAL with the time it was last seen.
    svc.stop();
    let o = run(&args);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1()
            .starts_with("RESTART_CHURN CRITICAL - not running since "),
        "{o:?}"
    );
    assert!(
        o.line1()
            .contains("which is not running; last instance sleep["),
        "{o:?}"
    );
    // And back: one more restart.
    svc.restart();
    let o = run(&args);
    assert_eq!(o.perf("restarts").as_deref(), Some("5;1;3;0"), "{o:?}");
    assert!(o.stdout.contains("back after being down at "), "{o:?}");
}

/// Several restarts between two runs cannot all be seen; the running instance being younger
/// than the last run proves at least one. Selected by a unique executable name.
#[test]
fn several_restarts_between_two_runs_are_caught_through_the_uptime() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let name = format!("churn-svc-{}", std::process::id());
    let mut svc = Service::start(
        tmp.path(),
        HolderSpec {
            exe_name: Some(name.clone()),
            ..spec(1024, 4096, 3)
        },
    );
    let args = ["--name", &name, "--state-dir", s(&state), "-w", "0"];
    let o = run(&args);
    assert_eq!(o.code, 0, "{o:?}");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    for _ in 0..3 {
        svc.restart();
    }
    let o = run(&args);
    assert_eq!(o.code, 1, "-w 0: one restart warns: {o:?}");
    assert_eq!(o.perf("restarts").as_deref(), Some("1;0;3;0"), "{o:?}");
    let uptime: f64 = o
        .perf("uptime")
        .unwrap()
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        uptime < 1.0,
        "the new instance is younger than the run before: {o:?}"
    );

    // The last run saw nothing (the service was down); it restarts several times and the
    // next run finds an instance younger than the time since: started in between.
    svc.stop();
    let o = run(&args);
    assert_eq!(o.code, 2, "{o:?}");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    for _ in 0..3 {
        svc.restart();
    }
    let o = run(&args);
    assert_eq!(o.perf("restarts").as_deref(), Some("2;0;3;0"), "{o:?}");
    assert!(o.stdout.contains("back after being down at "), "{o:?}");
    assert_eq!(o.code, 1, "{o:?}");
}

/// The incident's signature: restarted with a lower soft nofile than the instance before.
/// (Hard nofile is capped at 20000 on the test machine.)
#[test]
fn a_restart_with_a_lower_nofile_is_critical_naming_both_values() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut svc = Service::start(tmp.path(), spec(8000, 8000, 3));
    let pidfile = svc.pidfile.clone();
    let args = ["--pidfile", s(&pidfile), "--state-dir", s(&state)];
    assert_eq!(run(&args).code, 0);
    svc.spec = spec(1024, 4096, 3);
    svc.restart();
    let o = run(&args);
    assert_eq!(o.code, 2, "whatever the restart count: {o:?}");
    let summary = o.line1().split(" | ").next().unwrap();
    let prefix = format!(
        "RESTART_CHURN CRITICAL - sleep[{}] restarted at ",
        svc.pid()
    );
    assert!(summary.starts_with(&prefix), "{o:?}");
    let rest = &summary[prefix.len()..];
    // HH:MM, then both values.
    assert!(
        rest.len() > 5
            && rest.as_bytes()[2] == b':'
            && rest[..5].chars().filter(char::is_ascii_digit).count() == 4,
        "{o:?}"
    );
    assert_eq!(
        &rest[5..],
        " with nofile 1024 (previous instance had 8000)",
        "{o:?}"
    );
    // The cause and the fix, in the words of check_rlimit_match (common's provenance): the
    // test's child set its own limit between fork and exec.
    assert!(
        o.stdout.contains(&format!(
            "cause: sleep[{}] nofile 1024:4096: set by the process itself or its start command; its parent ",
            svc.pid()
        )),
        "{o:?}"
    );
    assert!(
        o.stdout.contains(&format!(
            "fix: raise the hard limit in the command that starts it ('ulimit -Hn 8000; ulimit -Sn 8000'), which set the value it has; raising a hard limit needs root or CAP_SYS_RESOURCE; now: prlimit --pid {} --nofile=8000:8000",
            svc.pid()
        )),
        "{o:?}"
    );
    // Restarted with the limit back: no drift.
    svc.spec = spec(8000, 8000, 3);
    svc.restart();
    let o = run(&args);
    assert_eq!(o.code, 1, "2 restarts, no drift: {o:?}");
    assert!(!o.stdout.contains("with nofile"), "{o:?}");
}

/// 20 runs at once on one state file: they serialize, so the one restart that happened is
/// recorded exactly once (not lost, not doubled) and the file stays valid.
#[test]
fn twenty_concurrent_runs_record_one_restart_once() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut svc = Service::start(tmp.path(), spec(1024, 4096, 3));
    let pidfile = svc.pidfile.clone();
    let args = [
        "--pidfile",
        s(&pidfile),
        "--state-dir",
        s(&state),
        "--key",
        "svc",
    ];
    assert_eq!(run(&args).code, 0);
    svc.restart();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20).map(|_| scope.spawn(|| run(&args))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outcomes {
        assert_eq!(o.code, 0, "{o:?}");
        assert_eq!(o.perf("restarts").as_deref(), Some("1;1;3;0"), "{o:?}");
    }
    let detected = outcomes
        .iter()
        .filter(|o| o.stdout.contains("\nrestart at "))
        .count();
    assert_eq!(detected, 1, "exactly one run saw the restart happen");
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_file(&state, "svc")).unwrap()).unwrap();
    assert_eq!(file["format"], "procguard-state");
    assert_eq!(
        file["data"]["events"].as_array().unwrap().len(),
        1,
        "{file}"
    );
    let names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("corrupt") && !n.contains("tmp")),
        "{names:?}"
    );
}

#[test]
fn truncated_and_garbage_state_files_are_moved_aside_and_the_next_run_works() {
    for damage in ["truncate", "garbage"] {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let svc = Service::start(tmp.path(), spec(1024, 4096, 3));
        let args = [
            "--pidfile",
            s(&svc.pidfile),
            "--state-dir",
            s(&state),
            "--key",
            "svc",
        ];
        assert_eq!(run(&args).code, 0);
        let file = state_file(&state, "svc");
        let good = std::fs::read(&file).unwrap();
        let bad = match damage {
            "truncate" => good[..good.len() / 2].to_vec(),
            _ => b"\x7fELF\x00\x01 not json at all".to_vec(),
        };
        std::fs::write(&file, &bad).unwrap();
        let o = run(&args);
        assert_eq!(o.code, 0, "{damage}: {o:?}");
        assert!(
            o.line1().starts_with(
                "RESTART_CHURN OK - baseline recorded (state file was corrupt; moved aside): "
            ),
            "{damage}: {o:?}"
        );
        let aside = format!("{}.corrupt", file.display());
        assert!(
            o.stdout
                .contains(&format!("state file {} was corrupt (", file.display()))
                && o.stdout
                    .contains(&format!("moved aside to {aside}, starting afresh")),
            "{damage}: {o:?}"
        );
        assert_eq!(std::fs::read(&aside).unwrap(), bad, "evidence kept");
        let o = run(&args);
        assert_eq!(o.code, 0, "{damage}: {o:?}");
        assert!(
            o.line1().contains("0 restarts in 1h") && !o.stdout.contains("corrupt"),
            "{damage}: the next run is normal: {o:?}"
        );
    }
}

/// Root ignores permission bits, so the unwritable directory is one below a regular file.
#[test]
fn an_unusable_state_dir_is_unknown_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("state");
    let svc = Service::start(tmp.path(), spec(1024, 4096, 3));
    let o = run(&["--pidfile", s(&svc.pidfile), "--state-dir", s(&dir)]);
    assert_eq!(o.code, 3, "{o:?}");
    // The restart count is lost, nothing else: the running service's perfdata remain.
    assert!(
        o.line1().starts_with(&format!(
            "RESTART_CHURN UNKNOWN - restarts not counted: cannot use state directory {}: Not a directory | ",
            dir.display()
        )),
        "{o:?}"
    );
}

#[test]
fn a_symlinked_or_writable_state_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let svc = Service::start(tmp.path(), spec(1024, 4096, 3));
    let args = [
        "--pidfile",
        s(&svc.pidfile),
        "--state-dir",
        s(&state),
        "--key",
        "svc",
    ];
    assert_eq!(run(&args).code, 0);
    let file = state_file(&state, "svc");
    let elsewhere = tmp.path().join("elsewhere.json");
    std::fs::rename(&file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    let o = run(&args);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "RESTART_CHURN UNKNOWN - restarts not counted: refusing state file {}: it is a symbolic link | ",
            file.display()
        )),
        "{o:?}"
    );
    std::fs::remove_file(&file).unwrap();
    std::fs::rename(&elsewhere, &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = run(&args);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "RESTART_CHURN UNKNOWN - restarts not counted: refusing state file {}: it is writable by group or others (mode 0666)",
            file.display()
        )),
        "{o:?}"
    );
}

#[test]
fn the_state_dir_comes_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("from-env");
    let svc = Service::start(tmp.path(), spec(1024, 4096, 3));
    let mut cmd = Command::new(BIN);
    cmd.args(["--pidfile", s(&svc.pidfile), "--key", "svc"])
        .env_clear()
        .env("LC_ALL", "C")
        .env("PROCGUARD_STATE_DIR", &state);
    let o = run_command(&mut cmd);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(state_file(&state, "svc").exists());
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn no_selector_or_a_percent_threshold_is_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["--state-dir", s(tmp.path())]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.line1()
            .starts_with("RESTART_CHURN UNKNOWN - no service selected"),
        "{o:?}"
    );
    let o = run(&["--name", "x", "-w", "50%", "--state-dir", s(tmp.path())]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.line1().contains("is a percentage"), "{o:?}");
}
