//! The binary against a fake /proc (`--proc-root`, common's `FakeProc`, real /proc text): PID reuse
//! end to end, and a run that cannot read every process leaving the state alone.
#![allow(clippy::unwrap_used)] // fixture-writing helpers outside #[test] fns
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // fixture start times: small whole tick counts

use std::fs;
use std::path::Path;

use procguard_common::testing::{run_plugin, FakeProc, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_restart_churn");
const HZ: f64 = 100.0;

/// Writes the host files (uptime, boot id) and process 100 (`app`) with `starttime` (clock
/// ticks after boot) and `fds` open fds.
fn host(proc: &FakeProc, uptime: f64, starttime: u64, fds: usize) {
    proc.boot(uptime, "0b7a5c1e-8f3d-4a6b-9c2e-1d4f5a6b7c8d");
    proc.process(100)
        .comm("app")
        .cmdline(&["/usr/bin/app", "--serve"])
        .starttime(starttime)
        .fds(fds)
        .write();
}

fn run(root: &Path, state: &Path) -> Outcome {
    run_plugin(
        BIN,
        [
            "--proc-root",
            root.to_str().unwrap(),
            "--pid",
            "100",
            "--state-dir",
            state.to_str().unwrap(),
            "--key",
            "app",
        ],
    )
}

#[test]
fn the_same_pid_with_another_start_time_is_a_restart() {
    let (proc, tmp) = (FakeProc::new(), tempfile::tempdir().unwrap());
    let (root, state) = (proc.path(), tmp.path().join("state"));
    // Boot + 10000 s, the process started at boot + 100 s.
    host(&proc, 10_000.0, (100.0 * HZ) as u64, 40);
    let o = run(root, &state);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1()
            .starts_with("RESTART_CHURN OK - baseline recorded: app[100] up 2h45m | "),
        "{o:?}"
    );
    assert_eq!(o.perf("uptime").as_deref(), Some("9900s;;;0"));

    // A minute later: pid 100 again, but started 5 s ago: another process.
    host(&proc, 10_060.0, (10_055.0 * HZ) as u64, 7);
    let o = run(root, &state);
    assert_eq!(o.code, 0, "one restart is below -w 1: {o:?}");
    assert_eq!(o.perf("restarts").as_deref(), Some("1;1;3;0"), "{o:?}");
    assert_eq!(o.perf("uptime").as_deref(), Some("5s;;;0"), "{o:?}");
    assert!(
        o.stdout
            .contains(": app[100] (lived 2h45m, last seen at 40/1024 open files, nofile 1024:4096) -> pid 100 (last run 1m ago)"),
        "{o:?}"
    );

    // The same (pid, starttime) again: no new restart.
    host(&proc, 10_120.0, (10_055.0 * HZ) as u64, 7);
    let o = run(root, &state);
    assert_eq!(o.perf("restarts").as_deref(), Some("1;1;3;0"), "{o:?}");
    assert!(!o.stdout.contains("-> pid"), "{o:?}");
}

/// A process that cannot be read would look gone, and the next run would count a restart
/// that did not happen: the run is UNKNOWN and the state is not touched.
#[test]
fn an_unreadable_process_leaves_the_state_alone() {
    let (proc, tmp) = (FakeProc::new(), tempfile::tempdir().unwrap());
    let (root, state) = (proc.path(), tmp.path().join("state"));
    host(&proc, 10_000.0, 10_000, 3);
    let by_name = |root: &Path| {
        run_plugin(
            BIN,
            [
                "--proc-root",
                root.to_str().unwrap(),
                "--name",
                "app",
                "--state-dir",
                state.to_str().unwrap(),
                "--key",
                "app",
            ],
        )
    };
    assert_eq!(by_name(root).code, 0);
    let file = state.join("restart_churn.app.json");
    let before = fs::read(&file).unwrap();
    // stat is now a directory: reading it fails with something other than "gone".
    fs::remove_file(root.join("100/stat")).unwrap();
    fs::create_dir(root.join("100/stat")).unwrap();
    let o = by_name(root);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.line1()
            .starts_with("RESTART_CHURN UNKNOWN - cannot read ")
            && o.line1().contains("100/stat"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains("state not updated: this run could not see every process"),
        "{o:?}"
    );
    assert_eq!(fs::read(&file).unwrap(), before, "state untouched");
}
