//! A service in its own network namespace (`tests/servers/netns_http.py` unshares one, as a
//! container runtime does): its listener is found through --pid and through --port
//! --netns, probed from inside, judged full when it is, and read from /proc/PID/net/tcp
//! when the plugin runs without `CAP_SYS_ADMIN`. Needs root (CI runs as root).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use procguard_common::testing::{run_command, run_plugin, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_http_backlog");
/// The port inside the namespaces the tests make (nothing else listens there).
const PORT: &str = "18931";

/// The server in its namespace, killed on drop.
struct Service {
    child: Child,
    pid: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mode: &str, backlog: u32, fill: u32) -> Service {
    start_with(mode, backlog, fill, None)
}

/// `extra`: an address only the namespace has, which "serve" then listens on.
fn start_with(mode: &str, backlog: u32, fill: u32, extra: Option<&str>) -> Service {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/netns_http.py");
    let mut cmd = Command::new("python3");
    if let Some(addr) = extra {
        cmd.env("NETNS_HTTP_EXTRA_ADDR", addr);
    }
    let mut child = cmd
        .arg(script)
        .args([mode, PORT, &backlog.to_string(), &fill.to_string(), "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (tests/run installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("netns_http.py did not start (root needed): {line:?}"))
        .trim()
        .to_string();
    Service { child, pid }
}

fn plugin(state: &Path, args: &[&str]) -> Outcome {
    let mut all = args.to_vec();
    all.extend(["--state-dir", state.to_str().unwrap()]);
    run_plugin(BIN, &all)
}

#[test]
fn a_listener_in_its_own_namespace_is_found_and_probed_from_inside() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start("serve", 16, 0);
    let ns_path = format!("/proc/{}/ns/net", svc.pid);
    let ok = format!("HTTP_BACKLOG OK - 127.0.0.1:{PORT} accept queue 0/16");
    for (i, args) in [
        vec!["--pid", svc.pid.as_str()],
        vec!["--port", PORT, "--netns", svc.pid.as_str()],
        vec!["--port", PORT, "--netns", ns_path.as_str()],
    ]
    .into_iter()
    .enumerate()
    {
        let o = plugin(
            &dir.path().join(i.to_string()),
            &[args.as_slice(), &["-v"]].concat(),
        );
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.line1().starts_with(&ok), "{args:?}: {o:?}");
        assert!(
            o.stdout.contains(&format!(
                "network namespace: net:[{}] of pid {}, read with sock_diag inside it",
                std::fs::metadata(&ns_path)
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .unwrap(),
                svc.pid
            )),
            "{args:?}: {o:?}"
        );
    }
    // The host's own namespace has nothing on that port.
    let o = plugin(dir.path(), &["--port", PORT]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1()
            .contains(&format!("nothing listens on port {PORT}")),
        "{o:?}"
    );
    // 127.0.0.1 of the container is the container's loopback: the probe connects there.
    let o = plugin(dir.path(), &["--pid", &svc.pid, "--probe"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.line1().contains("; HTTP 200 in "), "{o:?}");
    let url = format!("http://127.0.0.1:{PORT}/");
    let o = plugin(dir.path(), &["--url", &url, "--netns", &svc.pid]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.line1().contains("; HTTP 200 in "), "{o:?}");
}

#[test]
fn a_full_queue_inside_is_critical_with_or_without_cap_sys_admin() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start("stall", 4, 8);
    let o = plugin(dir.path(), &["--pid", &svc.pid]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "HTTP_BACKLOG CRITICAL - 127.0.0.1:{PORT} accept queue 5/4 full; owner "
        )),
        "{o:?}"
    );
    assert_eq!(
        o.perf(&format!("{PORT}_queue")).as_deref(),
        Some("5;3;4;0;5")
    );
    let o = plugin(dir.path(), &["--port", PORT, "--netns", &svc.pid]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.line1().contains("accept queue 5/4 full"), "{o:?}");

    // Without CAP_SYS_ADMIN the namespace cannot be joined: the same verdict from the
    // process's /proc/PID/net/tcp, the backlog asked of the listening socket itself (a
    // duplicate of the holder's fd, TCP_INFO), and it says so.
    let state = dir.path().join("nocap");
    let o = run_command(
        Command::new("setpriv")
            .args(["--inh-caps=-sys_admin", "--bounding-set=-sys_admin", BIN])
            .args(["--pid", &svc.pid, "-v", "--state-dir"])
            .arg(&state),
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "HTTP_BACKLOG CRITICAL - 127.0.0.1:{PORT} accept queue 5/4 full; owner "
        )),
        "{o:?}"
    );
    assert!(
        o.stdout.contains(&format!(
            "read /proc/{}/net/tcp{{,6}} (sock_diag inside net:[",
            svc.pid
        )) && o.stdout.contains("needs CAP_SYS_ADMIN"),
        "{o:?}"
    );
    assert!(
        o.stdout.contains(&format!(
            "127.0.0.1:{PORT} queue and backlog asked of the socket itself (pidfd_getfd from pid {}, TCP_INFO)",
            svc.pid
        )),
        "{o:?}"
    );
    assert_eq!(
        o.perf(&format!("{PORT}_queue")).as_deref(),
        Some("5;3;4;0;5")
    );
    // And the probe cannot connect inside: UNKNOWN for it, the queue still CRITICAL.
    let o = run_command(
        Command::new("setpriv")
            .args(["--inh-caps=-sys_admin", "--bounding-set=-sys_admin", BIN])
            .args([
                "--pid",
                &svc.pid,
                "--backlog",
                "4",
                "--probe",
                "--state-dir",
            ])
            .arg(&state),
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stdout
            .contains("[UNKNOWN] probe not run: connecting inside net:["),
        "{o:?}"
    );
}

#[test]
fn a_url_host_is_local_or_not_in_the_namespace_looked_at() {
    let dir = tempfile::tempdir().unwrap();
    // 10.213.7.1 exists only inside the service's namespace.
    let svc = start_with("serve", 16, 0, Some("10.213.7.1"));
    let url = format!("http://10.213.7.1:{PORT}/");
    let o = plugin(dir.path(), &["--url", &url, "--netns", &svc.pid]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.line1().starts_with(&format!(
            "HTTP_BACKLOG OK - 10.213.7.1:{PORT} accept queue 0/16; HTTP 200 in "
        )),
        "{o:?}"
    );
    // In the plugin's own namespace that host is nobody's: --url alone cannot name a
    // listener there.
    let o = plugin(dir.path(), &["--url", &url]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.line1()
            .contains("--url host 10.213.7.1 (10.213.7.1) is not an address of this host"),
        "{o:?}"
    );
}
