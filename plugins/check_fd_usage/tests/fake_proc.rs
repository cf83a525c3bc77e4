//! check_fd_usage against a fixture /proc tree: what a real host cannot be made to do on
//! demand, such as a process exiting between selection and reading its limits.

use procguard_common::testing::{run_plugin, FakeProc};

const BIN: &str = env!("CARGO_BIN_EXE_check_fd_usage");

/// Two `sleep` processes with soft nofile 1024; `exited` ones have no limits file left.
fn two_sleeps(first: (usize, bool), second: (usize, bool)) -> FakeProc {
    let proc = FakeProc::new();
    for (pid, (fds, exited)) in [(999_990, first), (999_991, second)] {
        let p = proc.process(pid).cmdline(&["sleep", "600"]).fds(fds);
        if exited { p.without_limits() } else { p }.write();
    }
    proc
}

#[test]
fn a_process_that_exits_mid_check_is_skipped() {
    let proc = two_sleeps((7, false), (3, true));
    let o = run_plugin(BIN, ["--proc-root", proc.arg(), "--name", "sleep"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1().contains("sleep[999990] 7/1024 open files"),
        "{o:?}"
    );
    assert!(!o.stdout.contains("999991"), "{o:?}");
}

#[test]
fn all_selected_processes_exiting_mid_check_is_not_running() {
    let proc = two_sleeps((7, true), (3, true));
    let o = run_plugin(BIN, ["--proc-root", proc.arg(), "--name", "sleep"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.line1(), "FD_USAGE CRITICAL - not running: every process matching --name sleep exited while being checked");
}

#[test]
fn all_mode_over_a_fixture_tree_words_findings_like_selector_mode() {
    let proc = FakeProc::new();
    proc.process(10).comm("node").nofile(64, 64).fds(60).write();
    proc.process(11).comm("idle").nofile(64, 64).fds(2).write();
    proc.file("sys/fs/file-nr", "2599\t0\t9223372036854775807\n")
        .file("sys/fs/nr_open", "1073741816\n");
    let o = run_plugin(BIN, ["--proc-root", proc.arg()]);
    assert_eq!(o.code, 2, "{o:?}");
    // --all words the finding exactly as selector mode does.
    assert!(
        o.line1().starts_with(
            "FD_USAGE CRITICAL - node[10] 60/64 open files (93.8% of soft limit; hard 64) (critical > 57) | "
        ),
        "{o:?}"
    );
    let selected = run_plugin(BIN, ["--proc-root", proc.arg(), "--pid", "10"]);
    assert_eq!(
        selected.line1(),
        "FD_USAGE CRITICAL - node[10] 60/64 open files (93.8% of soft limit; hard 64) (critical > 57) | 'node_fds'=60;51;57;0;64"
    );
    assert_eq!(
        o.perf("file_handles").as_deref(),
        Some("2599;7378697629483821056;8301034833169298432;0;9223372036854775807")
    );
    assert_eq!(o.perf("processes").as_deref(), Some("2;;;0"));
}
