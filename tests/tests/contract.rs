//! The plugin contract (docs/contract.md §1, §2, §9), held for every plugin binary in the workspace.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use procguard_common::testing::{run_command, run_plugin, Outcome};
use procguard_contract_tests::{output_name, plugin_names, plugin_path};

/// Each plugin with the extra arguments it needs to run a real check on a selected pid.
fn plugins() -> Vec<(String, String, Vec<String>)> {
    let names = plugin_names();
    assert!(!names.is_empty(), "no plugins found under plugins/");
    names
        .into_iter()
        .map(|name| {
            let extra: &[&str] = match name.as_str() {
                "check_rlimit_match" => &["--expect", "nofile=1024"],
                _ => &[],
            };
            let path = plugin_path(&name).to_string_lossy().into_owned();
            (
                name,
                path,
                extra.iter().map(std::string::ToString::to_string).collect(),
            )
        })
        .collect()
}

fn run(bin: &str, args: &[&str]) -> Outcome {
    run_plugin(bin, args)
}

#[test]
fn bad_arguments_are_unknown_with_usage() {
    for (name, bin, _) in plugins() {
        let prefix = format!("{} UNKNOWN - invalid arguments: ", output_name(&name));
        for args in [
            &["--bogus"][..],
            &["-w", "abc"],
            &["-c", "5:1"],
            &["-t", "0"],
            &["positional"],
        ] {
            let o = run(&bin, args);
            assert_eq!(o.code, 3, "{name} {args:?}: {o:?}");
            assert!(o.line1().starts_with(&prefix), "{name} {args:?}: {o:?}");
            assert!(
                o.stdout.contains(&format!("Usage: {name}")),
                "{name} {args:?} shows usage: {o:?}"
            );
        }
    }
}

#[test]
fn help_and_version_exit_unknown() {
    for (name, bin, _) in plugins() {
        let o = run_plugin_raw(&bin, &["--help"]);
        assert_eq!(o.code, 3, "{name} --help: {o:?}");
        assert!(o.stdout.contains(&format!("Usage: {name}")), "{o:?}");
        let o = run_plugin_raw(&bin, &["--version"]);
        assert_eq!(o.code, 3, "{name} --version: {o:?}");
        assert_eq!(
            o.stdout.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// --help and --version print text that is not a status line: run without the contract check.
fn run_plugin_raw(bin: &str, args: &[&str]) -> Outcome {
    let out = Command::new(bin).args(args).env_clear().output().unwrap();
    assert!(out.stderr.is_empty());
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::new(),
        elapsed: Duration::ZERO,
    }
}

/// A fake /proc where every file of pid 100 (and the host files) is a FIFO: open() blocks
/// forever, as on a hung filesystem, and only the watchdog can end the run.
fn blocking_proc_root(dir: &Path) {
    let pid = dir.join("100");
    std::fs::create_dir_all(pid.join("fd")).unwrap();
    std::fs::create_dir_all(dir.join("sys/fs")).unwrap();
    std::fs::create_dir_all(dir.join("sys/kernel/random")).unwrap();
    std::fs::create_dir_all(dir.join("net")).unwrap();
    let fifos = [
        "100/limits",
        "100/stat",
        "100/status",
        "100/cmdline",
        "100/cgroup",
        "100/environ",
        "stat",
        "uptime",
        "sys/fs/file-nr",
        "sys/fs/nr_open",
        "sys/kernel/random/boot_id",
        "net/netstat",
        "net/tcp",
        "net/tcp6",
    ];
    for f in fifos {
        let c = CString::new(dir.join(f).as_os_str().as_bytes()).unwrap();
        // SAFETY: c is a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {f}");
    }
}

#[test]
fn timeout_fires_on_a_blocked_read_with_the_chosen_state() {
    let root = tempfile::tempdir().unwrap();
    blocking_proc_root(root.path());
    let state = tempfile::tempdir().unwrap();
    for (name, bin, extra) in plugins() {
        let mut args: Vec<String> = [
            "--proc-root",
            root.path().to_str().unwrap(),
            "--pid",
            "100",
            "-t",
            "1",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.clone());
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .env_clear()
            .env("PROCGUARD_STATE_DIR", state.path());
        let o = run_command(&mut cmd);
        assert_eq!(o.code, 3, "{name}: {o:?}");
        assert_eq!(
            o.line1(),
            format!("{} UNKNOWN - plugin timed out after 1s", output_name(&name)),
            "{o:?}"
        );
        assert!(
            o.elapsed < Duration::from_secs(2),
            "{name} took {:?}",
            o.elapsed
        );

        args[5] = "1:critical".into();
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .env_clear()
            .env("PROCGUARD_STATE_DIR", state.path());
        let o = run_command(&mut cmd);
        assert_eq!(o.code, 2, "{name} -t 1:critical: {o:?}");
    }
}

/// Debug builds panic on request, to prove the hook: UNKNOWN, exit 3, one line.
#[test]
fn a_panic_is_unknown_internal_error() {
    if !cfg!(debug_assertions) {
        return; // the injection exists only in debug builds
    }
    let state = tempfile::tempdir().unwrap();
    for (name, bin, extra) in plugins() {
        let mut cmd = Command::new(&bin);
        cmd.args(["--pid", "1"])
            .args(&extra)
            .env_clear()
            .env("PROCGUARD_TEST_PANIC", "1")
            .env("PROCGUARD_STATE_DIR", state.path());
        let o = run_command(&mut cmd);
        assert_eq!(o.code, 3, "{name}: {o:?}");
        assert!(
            o.line1().starts_with(&format!(
                "{} UNKNOWN - internal error: injected by PROCGUARD_TEST_PANIC at ",
                output_name(&name)
            )),
            "{o:?}"
        );
        assert_eq!(o.stdout.lines().count(), 1, "{o:?}");
    }
}

#[test]
fn a_missing_process_is_critical_not_running() {
    let state = tempfile::tempdir().unwrap();
    for (name, bin, extra) in plugins() {
        let mut cmd = Command::new(&bin);
        cmd.args(["--pid", "999999999"])
            .args(&extra)
            .env_clear()
            .env("PROCGUARD_STATE_DIR", state.path());
        let o = run_command(&mut cmd);
        assert_eq!(o.code, 2, "{name}: {o:?}");
        assert!(o.line1().contains("not running"), "{name}: {o:?}");
    }
}
