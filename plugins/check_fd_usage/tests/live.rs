//! check_fd_usage against real processes whose limits and fd tables the kernel holds.

use std::os::unix::process::CommandExt;
use std::process::Command;

use procguard_common::testing::{run_command, run_plugin, Holder, HolderSpec};

const BIN: &str = env!("CARGO_BIN_EXE_check_fd_usage");

fn holder(soft: u64, fds: u32) -> Holder {
    Holder::start(&HolderSpec {
        nofile: (soft, soft),
        fds,
        exe_name: None,
    })
}

#[test]
fn near_the_soft_limit_is_critical_with_the_figures() {
    let h = holder(64, 60);
    let o = run_plugin(BIN, ["--pid", &h.pid().to_string()]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "FD_USAGE CRITICAL - sleep[{}] 60/64 open files (93.8% of soft limit; hard 64)",
            h.pid()
        )),
        "{o:?}"
    );
    // 80% and 90% of 64, rounded down for a count.
    assert_eq!(o.perf("sleep_fds").as_deref(), Some("60;51;57;0;64"));
}

#[test]
fn well_below_the_limit_is_ok() {
    let h = holder(64, 10);
    let o = run_plugin(BIN, ["--pid", &h.pid().to_string()]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.line1().contains("10/64 open files"), "{o:?}");
}

#[test]
fn absolute_and_headroom_thresholds() {
    let h = holder(64, 40);
    let pid = h.pid().to_string();
    let o = run_plugin(BIN, ["--pid", &pid, "-w", "30", "-c", "50"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.perf("sleep_fds").as_deref(), Some("40;30;50;0;64"));
    let o = run_plugin(BIN, ["--pid", &pid, "--headroom-critical", "30"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stdout
            .contains("only 24 fds left below its soft limit 64"),
        "{o:?}"
    );
    assert_eq!(o.perf("sleep_headroom").as_deref(), Some("24;;30:;0"));
}

#[test]
fn pidfile_and_long_names_select_the_process() {
    let h = Holder::start(&HolderSpec {
        nofile: (64, 64),
        fds: 60,
        exe_name: Some("service-with-a-long-name".into()),
    });
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("app.pid");
    std::fs::write(&pidfile, format!("{}\n", h.pid())).unwrap();
    let o = run_plugin(BIN, ["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1()
            .contains(&format!("service-with-a-long-name[{}] 60/64", h.pid())),
        "{o:?}"
    );
    assert!(
        o.perf("app_fds").is_some(),
        "label from the pidfile's name: {o:?}"
    );

    // The kernel's comm is cut to 15 characters; --name matches the whole executable name.
    let o = run_plugin(BIN, ["--name", "service-with-a-long-name"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(
        o.perf("service-with-a-long-name_fds").as_deref(),
        Some("60;51;57;0;64")
    );
    let o = run_plugin(BIN, ["--name", "service-with-a"]);
    assert_eq!(o.code, 2);
    assert!(
        o.line1()
            .starts_with("FD_USAGE CRITICAL - no process matches --name service-with-a"),
        "{o:?}"
    );
}

#[test]
fn several_processes_get_numbered_labels_by_start_order() {
    let a = Holder::start(&HolderSpec {
        nofile: (64, 64),
        fds: 5,
        exe_name: Some("procguard-twin".into()),
    });
    let b = Holder::start(&HolderSpec {
        nofile: (64, 64),
        fds: 60,
        exe_name: Some("procguard-twin".into()),
    });
    let o = run_plugin(BIN, ["--name", "procguard-twin", "--label", "twin"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.perf("twin_1").as_deref(), None);
    assert_eq!(o.perf("twin_1_fds").as_deref(), Some("5;51;57;0;64"));
    assert_eq!(o.perf("twin_2_fds").as_deref(), Some("60;51;57;0;64"));
    assert!(
        o.line1()
            .contains(&format!("procguard-twin[{}] 60/64", b.pid())),
        "{o:?}"
    );
    assert!(!o.line1().contains(&a.pid().to_string()), "{o:?}");
}

#[test]
fn dead_pidfile_and_missing_pid_are_critical_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("gone.pid");
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&pidfile, format!("{dead}\n")).unwrap();
    let o = run_plugin(BIN, ["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1().contains(&format!(
            "not running: pidfile {} names pid {dead}, which is not running",
            pidfile.display()
        )),
        "{o:?}"
    );
    let o = run_plugin(BIN, ["--pid", &dead.to_string()]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1().contains("not running: no process with pid"),
        "{o:?}"
    );
}

#[test]
fn all_lists_the_fullest_process_and_is_critical() {
    let h = holder(64, 62);
    // Other tests on this machine may hold fuller processes: the holder is listed among the
    // fullest and named in a CRITICAL finding, whatever its rank.
    let o = run_plugin(BIN, ["--all", "--top", "50"]);
    assert_eq!(o.code, 2, "{o:?}");
    let entry = format!(". sleep[{}] 62/64 open files", h.pid());
    assert!(o.stdout.lines().any(|l| l.contains(&entry)), "{o:?}");
    let finding = format!(
        "[CRITICAL] sleep[{}] 62/64 open files (96.9% of soft limit; hard 64) (critical > 57)",
        h.pid()
    );
    assert!(
        o.stdout.lines().any(|l| l == finding) || o.line1().contains(&finding[11..]),
        "{o:?}"
    );
    assert!(
        o.perf("processes").is_some() && o.perf("over_threshold").is_some(),
        "{o:?}"
    );
}

#[test]
fn bare_run_checks_the_whole_host() {
    let o = run_plugin(BIN, [] as [&str; 0]);
    assert!(o.code <= 2, "{o:?}");
    assert!(
        o.perf("processes").is_some() && o.perf("file_handles").is_some(),
        "{o:?}"
    );
}

#[test]
fn system_file_handles_are_ok_here() {
    let o = run_plugin(BIN, ["--system"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.line1().starts_with("FD_USAGE OK - host "), "{o:?}");
    assert!(
        o.perf("file_handles").is_some() && o.perf("nr_open").is_some(),
        "{o:?}"
    );
    let o = run_plugin(BIN, ["--system", "--system-warning", "1"]);
    assert_eq!(o.code, 1, "a count threshold of 1 handle must warn: {o:?}");
}

#[test]
fn verbose_shows_fds_by_kind() {
    let h = holder(64, 20);
    let o = run_plugin(BIN, ["--pid", &h.pid().to_string(), "-v"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains(&format!("sleep[{}] fds by kind: 20 device", h.pid())),
        "{o:?}"
    );
}

/// stat(/proc/PID/fd).st_size works for any user, where listing the directory needs ptrace
/// access: an unprivileged run still gets the right count for a root-owned process.
#[test]
fn unprivileged_user_counts_a_root_process() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to start a root-owned process and switch to nobody");
        return;
    }
    let h = holder(1024, 50);
    let o = run_command(
        Command::new(BIN)
            .args(["--pid", &h.pid().to_string()])
            .uid(65534)
            .gid(65534)
            .env_clear(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1()
            .contains(&format!("[{}] 50/1024 open files", h.pid())),
        "{o:?}"
    );
}
