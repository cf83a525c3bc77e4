//! A pre-forking server (tests/servers/prefork.py: the master holds the listener and never
//! accepts, two workers with a low nofile accept until EMFILE): the diagnosis names a
//! worker at its limit and EMFILE, found through --port and through the master's pidfile.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procguard_common::testing::{run_plugin, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_http_backlog");

/// The server, killed (with its workers, through `PR_SET_PDEATHSIG`) on drop.
struct Prefork {
    child: Child,
    port: u16,
    pidfile: PathBuf,
}

impl Drop for Prefork {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, workers: u32, nofile: u32, backlog: u32) -> Prefork {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/prefork.py");
    let (portfile, pidfile) = (dir.join("port"), dir.join("master.pid"));
    let child = Command::new("python3")
        .arg(&script)
        .args([&portfile, &pidfile])
        .args([workers, nofile, backlog, 60].map(|n| n.to_string()))
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 (tests/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&portfile) {
            break text.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "prefork.py did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Prefork {
        child,
        port,
        pidfile,
    }
}

/// Connects until three SYNs in a row are not answered in 300 ms (both workers at EMFILE
/// and the queue full; one alone may just be a worker not accepting yet), at most `n`
/// connections.
fn fill(port: u16, n: usize) -> Vec<TcpStream> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut held = Vec::new();
    let mut unanswered = 0;
    while held.len() < n && unanswered < 3 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => {
                held.push(s);
                unanswered = 0;
            }
            Err(_) => unanswered += 1,
        }
    }
    held
}

fn plugin(state: &Path, args: &[&str]) -> Outcome {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--state-dir", state.to_str().unwrap()]);
    run_plugin(BIN, &all)
}

#[test]
fn the_worker_at_its_limit_is_named_through_the_port_and_the_masters_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 2, 16, 4);
    let held = fill(server.port, 200);
    assert!(held.len() < 200, "the queue never filled");
    let master = std::fs::read_to_string(&server.pidfile).unwrap();
    let master = master.trim();
    let port = server.port.to_string();
    let pidfile = server.pidfile.to_str().unwrap();
    for args in [
        vec!["--port", port.as_str()],
        vec!["--pidfile", pidfile],
        vec![
            "--pidfile",
            pidfile,
            "--probe",
            "--probe-timeout",
            "1",
            "-t",
            "9",
        ],
    ] {
        let state = dir.path().join(format!("state-{}", args.len()));
        let o = plugin(&state, &args);
        let line1 = o.line1();
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        // A worker holds its inherited fds too, so it may sit above its limit (17/16).
        let (_, named) = line1.split_once(" worker at ").expect(line1);
        assert!(
            named.contains("/16 open files \u{2014} accept() is likely failing with EMFILE; 2 of 2 workers at their limit"),
            "{args:?}: {line1}"
        );
        assert!(line1.contains("accept queue 5/4 full"), "{args:?}: {line1}");
        // The master is not the one named.
        assert!(!line1.contains(&format!("[{master}]")), "{args:?}: {line1}");
        // -v lists every holder: the master and both workers.
        let v = plugin(&state, &[args.as_slice(), &["-v"]].concat());
        let holders = v
            .stdout
            .lines()
            .find(|l| l.contains(" held by "))
            .unwrap_or_default()
            .to_string();
        assert!(holders.contains(&format!("[{master}]")), "{v:?}");
        assert_eq!(holders.matches("/16 open files").count(), 2, "{v:?}");
        if args.contains(&"--probe") {
            // The probe's own SYN, dropped by the full queue, is not a new drop next run.
            let new_drops = v.perf("master_new_drops");
            assert_eq!(new_drops.as_deref(), Some("0;0;99;0"), "{v:?}");
        }
    }
    drop(held);
}
