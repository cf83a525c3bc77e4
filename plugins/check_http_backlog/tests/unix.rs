//! Unix stream listeners (`--unix PATH`, `--unix-only`) against real sockets: an HTTP
//! server on a Unix socket in a thread of this test, a listener with backlog 4 whose queue
//! the test fills, missing, wrong and stale paths, and a Python child at its open-files
//! limit (the incident's EMFILE, on a Unix socket).
//!
//! Every server stops when dropped and gives up after 30 s; the child is killed on drop.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
// test code: a failed unwrap is a failed test
// C struct fields (sockaddr_un, linger, socklen_t) from small known values.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procguard_common::testing::{run_plugin, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_http_backlog");

fn plugin(state: &Path, args: &[&str]) -> Outcome {
    let mut all: Vec<String> = args.iter().map(ToString::to_string).collect();
    all.extend(["--state-dir".to_string(), state.display().to_string()]);
    run_plugin(BIN, &all)
}

/// An HTTP server on a Unix socket: reads each request head, answers 200.
struct HttpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(path: &Path) -> HttpServer {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        HttpServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A Unix stream listener with exactly this backlog (std's bind listens with 128).
fn listen(path: &Path, backlog: i32) -> UnixListener {
    let l = UnixListener::bind(path).unwrap();
    // SAFETY: listen() again on our own socket only changes the backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), backlog) }, 0);
    l
}

/// Non-blocking connects until the kernel says the queue is full (EAGAIN), at most `n`.
fn fill(path: &Path, n: usize) -> Vec<OwnedFd> {
    let mut held = Vec::new();
    // SAFETY: an all-zero sockaddr_un is valid; the path fits (temp dirs are short).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
        *d = *s as libc::c_char;
    }
    for _ in 0..n {
        // SAFETY: plain socket(2); owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        assert!(fd >= 0);
        // SAFETY: fd is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: addr is a valid sockaddr_un.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            break;
        }
        held.push(fd);
    }
    held
}

#[test]
fn http_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let _server = HttpServer::start(&path);
    let p = path.to_str().unwrap();
    let o = plugin(dir.path(), &["--unix", p, "--probe"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.line1()
            .starts_with(&format!("HTTP_BACKLOG OK - {p} accept queue 0/")),
        "{}",
        o.stdout
    );
    assert!(o.line1().contains("HTTP 200"), "{}", o.stdout);
    assert!(o.line1().contains("'app.sock_queue'=0;"), "{}", o.stdout);
    // The URL's path and host, over the socket.
    let o = plugin(
        dir.path(),
        &["--unix", p, "--url", "http://app.test/health", "-v"],
    );
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains(&format!("probe: GET http://app.test/health over {p}")),
        "{}",
        o.stdout
    );
}

#[test]
fn a_full_unix_queue_is_critical_with_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.sock");
    let _listener = listen(&path, 4);
    let p = path.to_str().unwrap();
    let o = plugin(dir.path(), &["--unix", p]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.line1().contains("accept queue 0/4"), "{}", o.stdout);

    let held = fill(&path, 20);
    assert_eq!(held.len(), 5, "backlog 4 takes 5 before EAGAIN");
    let o = plugin(dir.path(), &["--unix", p]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().starts_with(&format!(
            "HTTP_BACKLOG CRITICAL - {p} accept queue 5/4 full"
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.line1().contains("'full.sock_queue'=5;3;4;0;5"),
        "{}",
        o.stdout
    );
    assert!(o.line1().contains("'full.sock_backlog'=4"), "{}", o.stdout);
    // No TCP figures for a Unix listener.
    assert!(!o.line1().contains("listen_overflows"), "{}", o.stdout);

    // The probe's connect waits in the full queue until its timeout.
    let o = plugin(
        dir.path(),
        &["--unix", p, "--probe", "--probe-timeout", "1"],
    );
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains("connect timeout after 1s"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("accept queue 5/4 full"), "{}", o.stdout);
}

#[test]
fn missing_wrong_and_stale_paths_are_critical_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.sock");
    let o = plugin(d, &["--unix", missing.to_str().unwrap(), "--probe"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(&format!(
            "no Unix socket at {}: it does not exist",
            missing.display()
        )),
        "{}",
        o.stdout
    );

    let file = d.join("plain");
    std::fs::write(&file, "x").unwrap();
    let o = plugin(d, &["--unix", file.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains("is not a socket: it is a regular file"),
        "{}",
        o.stdout
    );

    // A socket file whose listener is gone (std does not unlink it).
    let stale = d.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let o = plugin(d, &["--unix", stale.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(&format!(
            "nobody listens on {}: the socket file is there",
            stale.display()
        )),
        "{}",
        o.stdout
    );

    let o = plugin(d, &["--unix", "@procguard-test-nobody-here"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1()
            .contains("nobody listens on the abstract Unix socket @procguard-test-nobody-here"),
        "{}",
        o.stdout
    );
}

/// A Python process listening on a Unix socket (backlog 4), at its open-files limit, never
/// accepting; killed on drop.
struct AtLimit {
    child: Child,
}

impl AtLimit {
    fn start(path: &Path) -> AtLimit {
        let script = r#"
import os, resource, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(4)
n = len(os.listdir("/proc/self/fd")) - 1
resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print("ready", flush=True)
time.sleep(30)
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        AtLimit { child }
    }
}

impl Drop for AtLimit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_owner_at_its_fd_limit_is_diagnosed_as_for_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("emfile.sock");
    let child = AtLimit::start(&path);
    let pid = child.child.id().to_string();
    let p = path.to_str().unwrap();
    let _held = fill(&path, 20);
    let o = plugin(dir.path(), &["--unix", p]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    let line1 = o.line1();
    assert!(
        line1.contains(&format!("{p} accept queue 5/4 full")),
        "{}",
        o.stdout
    );
    assert!(line1.contains(&format!("[{pid}] at ")), "{}", o.stdout);
    assert!(
        line1.contains("accept() is likely failing with EMFILE"),
        "{}",
        o.stdout
    );

    // The same listener found through the process.
    let o = plugin(dir.path(), &["--pid", &pid, "--unix-only"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(&format!("{p} accept queue 5/4 full")),
        "{}",
        o.stdout
    );
    assert!(o.line1().contains("'emfile.sock_queue'=5;"), "{}", o.stdout);

    // A process holding no Unix listener.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let other = sleeper.id().to_string();
    let o = plugin(dir.path(), &["--pid", &other, "--unix-only"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains("holds no Unix stream listener"),
        "{}",
        o.stdout
    );
    drop(child);
}

#[test]
fn a_unix_stream_is_not_a_tcp_port() {
    // --unix-only needs a selector; --unix and --port may go together.
    let dir = tempfile::tempdir().unwrap();
    let o = plugin(dir.path(), &["--unix-only"]);
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(o.line1().contains("--unix-only"), "{}", o.stdout);
    let path = dir.path().join("both.sock");
    let _l = listen(&path, 8);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let o = plugin(
        dir.path(),
        &["--unix", path.to_str().unwrap(), "--port", &port, "-v"],
    );
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stdout.contains("accept queue 0/8"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains(&format!("127.0.0.1:{port} accept queue 0/128")),
        "{}",
        o.stdout
    );
    let _ = UnixStream::connect(&path).unwrap();
}
