//! The /proc/net/tcp fallback against a fixture tree (`--proc-root`, `sock_diag` off through the test seam):
//! deterministic figures, whatever the host's sockets.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use std::process::Command;

use procguard_common::testing::{run_command, FakeProc, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_http_backlog");

/// A /proc with the listening sockets and `TcpExt` counters of a real Linux 6.18 host.
fn fake_root(proc: &FakeProc, tcp6: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc/net");
    let fixture = |name: &str| std::fs::read_to_string(fixtures.join(name)).unwrap();
    proc.file("net/tcp", &fixture("tcp-listen-linux-6.18.txt"))
        .file("net/tcp6", tcp6)
        .file("net/netstat", &fixture("netstat-linux-6.18.txt"))
        .file(
            "sys/kernel/random/boot_id",
            "6e1c3b1a-0000-4000-8000-000000000001\n",
        );
}

/// A run that reads /proc/net/tcp instead of `sock_diag` (a seam of test builds only).
fn run_fallback(args: &[&str]) -> Outcome {
    run_command(
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("LC_ALL", "C")
            .env("PROCGUARD_TEST_NO_SOCK_DIAG", "1"),
    )
}

const TCP6_HEADER: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

#[test]
fn fallback_reads_the_queue_from_the_fixture() {
    let (proc, state) = (FakeProc::new(), tempfile::tempdir().unwrap());
    let (root, tmp) = (proc.path(), state.path());
    fake_root(&proc, TCP6_HEADER);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--proc-root",
            root.to_str().unwrap(),
            "--state-dir",
            tmp.to_str().unwrap(),
            "--port",
            "8080",
        ];
        args.extend(extra);
        run_fallback(&args)
    };
    // The fixture's 127.0.0.1:8080 listener has 4 queued connections.
    let o = run(&[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1()
            .starts_with("HTTP_BACKLOG OK - 127.0.0.1:8080 accept queue 4 (backlog unknown) | "),
        "{o:?}"
    );
    assert_eq!(o.perf("8080_backlog").unwrap(), "U");
    let o = run(&["--backlog", "3"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1().contains("127.0.0.1:8080 accept queue 4/3 full"),
        "{o:?}"
    );
    assert_eq!(o.perf("8080_queue").unwrap(), "4;2;3;0;4");
    // An absolute count works without the backlog.
    let o = run(&["--queue-critical", "3"]);
    assert_eq!(o.code, 2, "{o:?}");
    // A port nobody listens on.
    let o = run_fallback(&[
        "--proc-root",
        root.to_str().unwrap(),
        "--state-dir",
        tmp.to_str().unwrap(),
        "--port",
        "9999",
    ]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.line1().contains("nothing listens on port 9999"), "{o:?}");

    // IPv6 rows are read too, and --address picks the listener.
    let v6 = format!("{TCP6_HEADER}   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 555 1 0000000000000000 100 0 0 10 0\n");
    fake_root(&proc, &v6);
    let o = run(&["--address", "::1", "--backlog", "2"]);
    assert_eq!(o.code, 1, "2 of 2 is above 80%: {o:?}");
    assert!(o.line1().contains("[::1]:8080 accept queue 2/2"), "{o:?}");
    let o = run(&[]);
    assert!(
        o.perf("8080_ipv4_queue").is_some() && o.perf("8080_ipv6_queue").is_some(),
        "{o:?}"
    );
    // A malformed file is UNKNOWN, naming it.
    proc.file("net/tcp", "header\n   0: 0100007F:1F90\n");
    let o = run(&[]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.line1().contains("net/tcp"), "{o:?}");
}
