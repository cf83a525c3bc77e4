//! check_fd_usage against a fixture /proc tree: what a real host cannot be made to do on
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! demand, such as a process exiting between selection and reading its limits.

use std::fs;
use std::path::Path;

use procguard_common::testing::run_plugin;

const BIN: &str = env!("CARGO_BIN_EXE_check_fd_usage");
const LIMITS: &str =
    include_str!("../../../common/tests/fixtures/proc/limits/lowered-nofile-linux-6.18.txt");

/// A process directory built from this test's own stat and status, renumbered, with
/// `fds` entries in fd/ and, unless it "exited", a limits file (soft nofile 1024).
fn fake_process(root: &Path, pid: u32, fds: usize, exited_before_limits: bool) {
    let dir = root.join(pid.to_string());
    fs::create_dir_all(dir.join("fd")).unwrap();
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap()..];
    fs::write(dir.join("stat"), format!("{pid} (sleep{rest}")).unwrap();
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let status: String = status
        .lines()
        .map(|l| match l.split_once(':') {
            Some(("Tgid" | "Pid", _)) => format!("{}:\t{pid}\n", l.split(':').next().unwrap()),
            Some(("Name", _)) => "Name:\tsleep\n".to_string(),
            _ => format!("{l}\n"),
        })
        .collect();
    fs::write(dir.join("status"), status).unwrap();
    fs::write(dir.join("cmdline"), "sleep\x00600\x00").unwrap();
    for fd in 0..fds {
        fs::write(dir.join("fd").join(fd.to_string()), "").unwrap();
    }
    if !exited_before_limits {
        fs::write(dir.join("limits"), LIMITS).unwrap();
    }
}

#[test]
fn a_process_that_exits_mid_check_is_skipped() {
    let root = tempfile::tempdir().unwrap();
    fake_process(root.path(), 999_990, 7, false);
    fake_process(root.path(), 999_991, 3, true);
    let o = run_plugin(
        BIN,
        [
            "--proc-root",
            root.path().to_str().unwrap(),
            "--name",
            "sleep",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1().contains("sleep[999990] 7/1024 open files"),
        "{o:?}"
    );
    assert!(!o.stdout.contains("999991"), "{o:?}");
}

#[test]
fn all_selected_processes_exiting_mid_check_is_not_running() {
    let root = tempfile::tempdir().unwrap();
    fake_process(root.path(), 999_990, 7, true);
    fake_process(root.path(), 999_991, 3, true);
    let o = run_plugin(
        BIN,
        [
            "--proc-root",
            root.path().to_str().unwrap(),
            "--name",
            "sleep",
        ],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.line1(), "FD_USAGE CRITICAL - not running: every process matching --name sleep exited while being checked");
}
