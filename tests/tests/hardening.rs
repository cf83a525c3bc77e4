//! Hardening for root, sudo and NRPE runs (issue 12), held for every plugin binary: no test
//! doors in the options, and a bad-input matrix (every option with malformed values, FIFOs,
//! /dev/zero, symlinks, huge and non-UTF-8 values) that must keep the output contract
//! within a time and memory bound.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

use procguard_common::testing::{run_command, run_plugin, Outcome};
use procguard_contract_tests::{output_name, plugin_names, plugin_path};

/// Hidden options that once ran a program, read a file of the caller's choosing or changed
/// what is trusted. None may exist in any binary: tests reach the seams another way.
const REMOVED: [&[&str]; 4] = [
    &["--systemctl", "/bin/true"],
    &["--passwd-file", "/etc/shadow"],
    &["--group-file", "/etc/gshadow"],
    &["--no-sock-diag"],
];

#[test]
fn no_binary_accepts_a_test_door() {
    for name in plugin_names() {
        let bin = plugin_path(&name).to_string_lossy().into_owned();
        for door in REMOVED {
            let mut args = vec!["--pid", "1"];
            args.extend_from_slice(door);
            let o = run_plugin(&bin, &args);
            assert_eq!(o.code, 3, "{name} {door:?}: {o:?}");
            assert!(
                o.line1().starts_with(&format!(
                    "{} UNKNOWN - invalid arguments: unexpected argument '{}'",
                    output_name(&name),
                    door[0]
                )),
                "{name} {door:?}: {o:?}"
            );
        }
        // Nothing else hidden that could be one: --help lists every option the parser takes.
        let help = std::process::Command::new(&bin)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for door in REMOVED {
            assert!(
                !help.contains(door[0]),
                "{name} --help mentions {}",
                door[0]
            );
        }
    }
}

/// A run with the test seams set (the binaries are test builds here).
fn run_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear().env("LC_ALL", "C");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(&mut cmd)
}

#[test]
fn unit_selection_without_systemd_is_unknown_saying_so() {
    let state = tempfile::tempdir().unwrap();
    let no_systemd = [(
        "PROCGUARD_TEST_SYSTEMD_DIR",
        "/nonexistent/run/systemd/system",
    )];
    for name in plugin_names() {
        let bin = plugin_path(&name).to_string_lossy().into_owned();
        let mut args = vec!["--unit", "nginx"];
        if matches!(name.as_str(), "check_restart_churn" | "check_http_backlog") {
            args.extend(["--state-dir", state.path().to_str().unwrap()]);
        }
        let o = run_with_env(&bin, &args, &no_systemd);
        assert_eq!(o.code, 3, "{name}: {o:?}");
        assert_eq!(
            o.line1(),
            format!("{} UNKNOWN - --unit nginx needs systemd, which is not running on this host (no /run/systemd/system); select the process with --pidfile, --name or --pid instead", output_name(&name)),
            "{name}"
        );
    }
    let bin = plugin_path("check_rlimit_match")
        .to_string_lossy()
        .into_owned();
    let o = run_with_env(&bin, &["--pid", "1", "--systemd=nginx"], &no_systemd);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stdout
            .contains("needs systemd, which is not running on this host"),
        "{o:?}"
    );
}

/// What /etc/shadow looks like; none of it may reach the output.
const SHADOW: &str = "root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\nnagios:$y$j9T$secret:20228:0:99999:7:::\n";

#[test]
fn files_that_do_not_parse_are_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let shadow = dir.path().join("shadow");
    std::fs::write(&shadow, SHADOW).unwrap();
    let short = dir.path().join("short.pid");
    std::fs::write(&short, &SHADOW[..26]).unwrap();
    let link = dir.path().join("app.pid");
    std::os::unix::fs::symlink(&shadow, &link).unwrap();
    let shadow = shadow.to_str().unwrap();
    let rlimit = plugin_path("check_rlimit_match")
        .to_string_lossy()
        .into_owned();
    let fd = plugin_path("check_fd_usage").to_string_lossy().into_owned();
    let runs = [
        (
            run_plugin(&rlimit, ["--pid", "1", "--limits-conf", shadow, "-vvv"]),
            "invalid line 1 in shadow - skipped (expected DOMAIN TYPE ITEM VALUE)",
        ),
        (run_plugin(&rlimit, ["--config", shadow, "-vvv"]), "line 1"),
        (
            run_plugin(&fd, ["--pidfile", shadow, "-vvv"]),
            "it is larger than 64 bytes",
        ),
        (
            run_plugin(&fd, ["--pidfile", short.to_str().unwrap(), "-vvv"]),
            "does not hold a pid",
        ),
        (
            run_plugin(&fd, ["--pidfile", link.to_str().unwrap(), "-vvv"]),
            "app.pid",
        ),
    ];
    for (o, says) in runs {
        for secret in ["20228", "99999", "secret", "daemon", "root:"] {
            assert!(!o.stdout.contains(secret), "{secret} echoed: {o:?}");
        }
        assert!(o.stdout.contains(says), "{says}: {o:?}");
    }
}

/// A state directory anyone may write to (mode 0777, no sticky bit) is refused, and that
/// costs only what needs the state: a healthy listener stays OK with its own summary, a
/// service that is down stays CRITICAL.
#[test]
fn an_unusable_state_store_costs_only_the_deltas() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = open.to_str().unwrap();
    let refused = format!("refusing state directory {open}: it is writable by group or others without the sticky bit (mode 0777); chmod 700 it");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let backlog = plugin_path("check_http_backlog")
        .to_string_lossy()
        .into_owned();
    let o = run_plugin(
        &backlog,
        [
            "--port",
            &port,
            "--address",
            "127.0.0.1",
            "--state-dir",
            open,
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "HTTP_BACKLOG OK - 127.0.0.1:{port} accept queue 0/"
        )),
        "{o:?}"
    );
    assert!(
        o.stdout.contains(&format!(
            "\ndrops not compared with the last run: {refused}"
        )),
        "{o:?}"
    );

    let churn = plugin_path("check_restart_churn")
        .to_string_lossy()
        .into_owned();
    let pidfile = tmp.path().join("gone.pid");
    let o = run_plugin(
        &churn,
        ["--pidfile", pidfile.to_str().unwrap(), "--state-dir", open],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.line1().contains("not running"), "{o:?}");
    assert!(
        o.stdout
            .contains(&format!("[UNKNOWN] restarts not counted: {refused}")),
        "{o:?}"
    );
}
