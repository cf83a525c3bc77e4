//! The binary's contract on bad input: exit 3 with the reason (and, for the YAML config,
//! the line).

use procguard_common::testing::run_plugin;

const BIN: &str = env!("CARGO_BIN_EXE_check_rlimit_match");

fn config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("services.yaml");
    std::fs::write(&path, text).expect("write");
    let path = path.to_str().expect("utf-8").to_string();
    (dir, path)
}

#[test]
fn yaml_errors_exit_3_naming_the_line() {
    let cases = [
        (
            "services:\n  - name: a\n    select: {pid: 1\n",
            "line 4: did not find expected ',' or '}'",
        ),
        (
            "services:\n  - name: a\n    select: {pid: 1}\n    expct: {nofile: 1}\n",
            "line 4: services[0]: unknown field `expct`",
        ),
        (
            "services:\n  - name: a\n    select: {pid: 1}\n    expect:\n      nofile: [1]\n",
            "line 5: services[0].expect.nofile: invalid type: sequence",
        ),
        (
            "services:\n  - name: a\n    select:\n      pid: one\n",
            "line 4: services[0].select.pid: invalid type: string \"one\"",
        ),
    ];
    for (text, want) in cases {
        let (_dir, path) = config(text);
        let o = run_plugin(BIN, ["--config", &path]);
        assert_eq!(o.code, 3, "{}", o.stdout);
        assert!(
            o.line1()
                .starts_with(&format!("RLIMIT UNKNOWN - config {path} {want}")),
            "{}",
            o.stdout
        );
    }
}

#[test]
fn bad_arguments_and_missing_sources_are_unknown() {
    let o = run_plugin(BIN, ["--pid", "1", "--expect", "nofile=lots"]);
    assert_eq!(o.code, 3);
    assert!(
        o.line1().starts_with(
            "RLIMIT UNKNOWN - invalid arguments: invalid value 'nofile=lots' for '--expect"
        ),
        "{}",
        o.stdout
    );
    let o = run_plugin(BIN, ["--pid", "1"]);
    assert_eq!(o.code, 3);
    assert!(
        o.line1()
            .starts_with("RLIMIT UNKNOWN - no expectation: give --expect"),
        "{}",
        o.stdout
    );
    let o = run_plugin(BIN, ["--pid", "1", "--expect", "nofile=1", "-w", "5"]);
    assert_eq!(o.code, 3);
    assert!(o.line1().contains("-w/-c are not used"), "{}", o.stdout);
    let o = run_plugin(
        BIN,
        ["--pid", "1", "--limits-conf", "/nonexistent/limits.conf"],
    );
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(
        o.line1().contains(
            "--limits-conf: cannot read /nonexistent/limits.conf: No such file or directory"
        ),
        "{}",
        o.stdout
    );
    let o = run_plugin(BIN, ["--pid", "999999999", "--expect", "nofile=1"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1()
            .contains("not running: no process with pid 999999999"),
        "{}",
        o.stdout
    );
}

#[test]
fn help_documents_every_source_and_exits_3() {
    let o = procguard_common::testing::Outcome { ..run_help() };
    assert_eq!(o.code, 3);
    for flag in [
        "--expect",
        "--at-least",
        "--limits-conf",
        "--pam-flavor",
        "--systemd",
        "--config",
        "--service",
        "--like-pid",
        "--like-pidfile",
        "--item",
    ] {
        assert!(o.stdout.contains(flag), "{flag} missing from --help");
    }
}

fn run_help() -> procguard_common::testing::Outcome {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run");
    procguard_common::testing::Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: std::time::Duration::ZERO,
    }
}
