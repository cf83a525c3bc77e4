//! The plugin against real sockets, real local HTTP servers and real child processes.
//!
//! Children are this test binary run again in helper mode (`helper_process`, selected by
//! the `BACKLOG_HELPER` environment variable); each is killed when its guard drops, and dies
//! with the test process (`PR_SET_PDEATHSIG`) if the test binary itself is killed. Network
//! traffic stays on 127.0.0.0/8 and `::1`; every loop is bounded in count and time.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::cast_possible_truncation)] // test code: small ports, counts and fds

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procguard_common::testing::{run_command, run_plugin, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_http_backlog");

// ---------------------------------------------------------------------------------------
// helpers

/// A TCP listener with an exact backlog (std's bind listens with 128).
fn listen(addr: &str, backlog: i32) -> TcpListener {
    let l = TcpListener::bind(addr).unwrap();
    // SAFETY: listen() again on our own socket only changes the backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), backlog) }, 0);
    l
}

/// Connects until `n` connections are established or one is not answered within 200 ms
/// (the accept queue is full and the kernel drops the SYN). Returns the established ones.
fn connect_up_to(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => out.push(s),
            Err(_) => break,
        }
    }
    out
}

/// One SYN that the full listener drops (a connect that times out).
fn dropped_syn(addr: SocketAddr) {
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(150)).is_err(),
        "the queue of {addr} should be full"
    );
}

/// Runs the plugin with its own state dir.
fn plugin(state: &tempfile_lite::Dir, args: &[&str]) -> Outcome {
    let mut all: Vec<String> = args.iter().map(ToString::to_string).collect();
    all.extend([
        "--state-dir".to_string(),
        state.path().display().to_string(),
    ]);
    run_plugin(BIN, &all)
}

/// [`plugin`] reading /proc/net/tcp instead of `sock_diag` (a seam of test builds only).
fn plugin_without_sock_diag(state: &tempfile_lite::Dir, args: &[&str]) -> Outcome {
    run_command(
        Command::new(BIN)
            .args(args)
            .arg("--state-dir")
            .arg(state.path())
            .env_clear()
            .env("LC_ALL", "C")
            .env("PROCGUARD_TEST_NO_SOCK_DIAG", "1"),
    )
}

fn state_dir() -> tempfile_lite::Dir {
    tempfile_lite::Dir::new()
}

/// A tiny temp dir (the crate has no tempfile dependency).
mod tempfile_lite {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "backlog-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&p);
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn line1(o: &Outcome) -> &str {
    o.line1()
}

// ---------------------------------------------------------------------------------------
// local HTTP servers (threads of the test process)

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// 200 with a small body.
    Healthy,
    /// 500.
    Error500,
    /// 200 after this delay.
    Slow(Duration),
    /// Accepts and never writes.
    Silent,
    /// Accepts and closes at once.
    Close,
}

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                match mode {
                    Mode::Close => drop(s),
                    Mode::Silent => held.push(s),
                    _ => {
                        // Read the request head (bounded), then answer.
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 4096];
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        if let Mode::Slow(d) = mode {
                            std::thread::sleep(d);
                        }
                        let status = if mode == Mode::Error500 {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        let _ = write!(
                            s,
                            "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        );
                    }
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// helper child processes (this binary again)

/// A helper child, killed on drop.
struct Helper {
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl Helper {
    /// Starts `helper_process` with `spec` and the soft/hard `nofile` given.
    fn start(spec: &str, nofile: u64) -> Helper {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--ignored", "--exact", "helper_process", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("BACKLOG_HELPER", spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: async-signal-safe calls only between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the test process, whatever happens to it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // Close inherited fds (a jobserver pipe, ...) at exec, so the helper's fd table is
                // its own: at its limit it holds exactly `nofile` fds. (CLOSE_RANGE_CLOEXEC = 4.)
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32);
                let rl = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        Helper { child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next `KEY value` line as (KEY, value), libtest's own lines skipped.
    fn next_line(&mut self) -> (String, String) {
        let mut line = String::new();
        for _ in 0..50 {
            line.clear();
            assert!(
                self.lines.read_line(&mut line).unwrap() != 0,
                "helper exited"
            );
            if let Some(kv) = key_value(&line) {
                return kv;
            }
        }
        panic!("helper printed nothing useful");
    }

    /// The value of the next `KEY value` line the helper prints (libtest's lines skipped).
    fn expect(&mut self, key: &str) -> String {
        let mut line = String::new();
        for _ in 0..50 {
            line.clear();
            assert!(
                self.lines.read_line(&mut line).unwrap() != 0,
                "helper exited before printing {key}"
            );
            if let Some((k, v)) = key_value(&line) {
                if k == key {
                    return v;
                }
            }
        }
        panic!("helper did not print {key}");
    }
}

/// The `KEY value` pair in a helper's output line. libtest prints `test helper_process ... `
/// without a newline before the test runs, so the pair may follow it on the same line.
fn key_value(line: &str) -> Option<(String, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.len() >= 4 && w.chars().all(|c| c.is_ascii_uppercase()))?;
    Some((words[i].to_string(), words.get(i + 1)?.to_string()))
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Helper mode. `BACKLOG_HELPER` is one of:
/// - `emfile-server BACKLOG`: listen on 127.0.0.1:0 with BACKLOG, print `PORT p`, accept
///   (holding every connection, never writing; `ACCEPTED n` after each) until `accept()`
///   fails with EMFILE, then print `EMFILE n`, stop accepting and sleep: the incident's
///   server. One line per connection, so the parent knows when the limit is reached.
/// - `established N SRC`: listen on 127.0.0.1:0, open N connections to it from address SRC
///   and accept them all (2N fds), print `READY n` and sleep.
///
/// Without the variable (a plain `--ignored` run) it does nothing. It sleeps at most
/// 120 s; the parent kills it long before.
#[test]
#[ignore = "helper mode for the live tests, started by them"]
fn helper_process() {
    let Ok(spec) = std::env::var("BACKLOG_HELPER") else {
        return;
    };
    let words: Vec<&str> = spec.split_whitespace().collect();
    match words[..] {
        ["emfile-server", backlog] => {
            let l = listen("127.0.0.1:0", backlog.parse().unwrap());
            println!("PORT {}", l.local_addr().unwrap().port());
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                match l.accept() {
                    Ok((s, _)) => {
                        held.push(s);
                        println!("ACCEPTED {}", held.len());
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        println!("EMFILE {}", held.len());
                        break;
                    }
                    Err(_) => {}
                }
            }
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
        ["libuv-server", backlog] => {
            // libuv at EMFILE: it keeps a spare descriptor, and when accept() fails it closes the
            // spare, accepts, closes that connection at once and reopens the spare. The queue
            // stays near empty while every client gets a reset or a close.
            let l = listen("127.0.0.1:0", backlog.parse().unwrap());
            let mut spare = Some(std::fs::File::open("/dev/null").unwrap());
            println!("PORT {}", l.local_addr().unwrap().port());
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                match l.accept() {
                    Ok((s, _)) => {
                        held.push(s);
                        println!("ACCEPTED {}", held.len());
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        drop(spare.take());
                        if let Ok((s, _)) = l.accept() {
                            drop(s);
                            println!("CLOSED {}", held.len());
                        }
                        spare = std::fs::File::open("/dev/null").ok();
                    }
                    Err(_) => {}
                }
            }
        }
        ["established", n, src] => {
            let n: usize = n.parse().unwrap();
            let l = listen("127.0.0.1:0", 4096);
            let addr = l.local_addr().unwrap();
            let src: std::net::Ipv4Addr = src.parse().unwrap();
            let mut held = Vec::with_capacity(2 * n);
            let deadline = Instant::now() + Duration::from_secs(60);
            while held.len() < 2 * n && Instant::now() < deadline {
                // Batches of 200: connect, then accept them, so the queue never fills.
                let batch = (n - held.len() / 2).min(200);
                for _ in 0..batch {
                    held.push(connect_from(src, addr));
                }
                for _ in 0..batch {
                    held.push(l.accept().unwrap().0);
                }
            }
            println!("READY {}", held.len() / 2);
            std::thread::sleep(Duration::from_secs(120));
        }
        _ => panic!("unknown helper spec {spec:?}"),
    }
}

/// A connection from `src` (port chosen by the kernel) to `to`.
fn connect_from(src: std::net::Ipv4Addr, to: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we own; it is handed to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sin(src, 0);
        assert_eq!(
            libc::bind(fd, std::ptr::addr_of!(local).cast(), len),
            0,
            "bind {src}: {}",
            std::io::Error::last_os_error()
        );
        let SocketAddr::V4(to) = to else {
            panic!("IPv4 only")
        };
        let remote = sin(*to.ip(), to.port());
        assert_eq!(
            libc::connect(fd, std::ptr::addr_of!(remote).cast(), len),
            0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

// ---------------------------------------------------------------------------------------
// the queue

#[test]
fn full_queue_is_critical_then_ok_once_accepted() {
    let state = state_dir();
    let l = listen("127.0.0.1:0", 4);
    let addr = l.local_addr().unwrap();
    let port = addr.port().to_string();
    // 8 attempts: 5 complete into the queue (backlog 4 + 1), the other SYNs are dropped.
    let clients = connect_up_to(addr, 8);
    assert_eq!(clients.len(), 5);
    let o = plugin(&state, &["--port", &port, "--address", "127.0.0.1"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains(&format!("127.0.0.1:{port} accept queue 5/4 full")),
        "{o:?}"
    );
    assert_eq!(o.perf(&format!("{port}_queue")).unwrap(), "5;3;4;0;5");
    assert_eq!(o.perf(&format!("{port}_backlog")).unwrap(), "4");
    // The owner is named on a failure: this test process holds the listener.
    assert!(
        line1(&o).contains(&format!("[{}]", std::process::id())),
        "{o:?}"
    );

    let accepted: Vec<TcpStream> = (0..5).map(|_| l.accept().unwrap().0).collect();
    let o = plugin(&state, &["--port", &port, "--established"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        line1(&o).starts_with(&format!(
            "HTTP_BACKLOG OK - 127.0.0.1:{port} accept queue 0/4"
        )),
        "{o:?}"
    );
    // The 5 accepted connections are established on the port.
    assert_eq!(o.perf(&format!("{port}_established")).unwrap(), "5;;;0");
    drop((clients, accepted));
}

#[test]
fn ipv6_listener() {
    let state = state_dir();
    let l = listen("[::1]:0", 4);
    let addr = l.local_addr().unwrap();
    let port = addr.port().to_string();
    let clients = connect_up_to(addr, 4);
    assert_eq!(clients.len(), 4);
    let o = plugin(&state, &["--port", &port, "--address", "::1"]);
    // 80% of 4 is 3.2: a queue of 4 is above it, 3 would not be.
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        line1(&o).contains(&format!("[::1]:{port} accept queue 4/4 (warning > 3)")),
        "{o:?}"
    );
    let o = plugin(&state, &["--port", &port, "--queue-warning", "100%"]);
    assert_eq!(o.code, 0, "{o:?}");
    // An IPv4 address is not served by a [::1] listener.
    let o = plugin(&state, &["--port", &port, "--address", "127.0.0.1"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains(&format!("nothing listens on 127.0.0.1:{port}")),
        "{o:?}"
    );
    // The probe goes to [::1]: its connection completes into the queue and is never
    // answered; the stable labels carry --label.
    let o = plugin(
        &state,
        &[
            "--port",
            &port,
            "--probe",
            "--probe-timeout",
            "1",
            "--label",
            "web",
        ],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).starts_with(
            "HTTP_BACKLOG CRITICAL - connected but no response in 1s; accept queue 4/4;"
        ),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains(&format!("probe: GET http://[::1]:{port}/")),
        "{o:?}"
    );
    assert_eq!(o.perf("web_queue").unwrap(), "4;3;4;0;5");
    assert!(
        o.perf("web_time_connect").is_some() && o.perf("web_time").is_some(),
        "{o:?}"
    );
    drop(clients);
}

#[test]
fn pid_selects_the_listeners_of_that_process() {
    let state = state_dir();
    let l = listen("127.0.0.1:0", 4);
    let addr = l.local_addr().unwrap();
    let port = addr.port().to_string();
    let me = std::process::id().to_string();
    let clients = connect_up_to(addr, 1);
    // This test process is the plugin's parent: the selector allows it.
    let o = plugin(&state, &["--pid", &me, "--port", &port]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        line1(&o).contains(&format!("127.0.0.1:{port} accept queue 1/4")),
        "{o:?}"
    );
    // Without --port: every listener of this process, the test's among them.
    let o = plugin(&state, &["--pid", &me, "-v"]);
    assert!(
        o.stdout
            .contains(&format!("127.0.0.1:{port} accept queue 1/4")),
        "{o:?}"
    );
    // A pidfile names the labels (its stem), never the PID.
    let run_dir = state_dir();
    std::fs::create_dir_all(run_dir.path()).unwrap();
    let pidfile = run_dir.path().join("app.pid");
    std::fs::write(&pidfile, format!("{me}\n")).unwrap();
    let o = plugin(
        &state,
        &["--pidfile", pidfile.to_str().unwrap(), "--port", &port],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.perf("app_queue").unwrap(), "1;3;4;0;5", "{o:?}");
    // Another process does not hold it.
    let other = Helper::start("emfile-server 4", 64);
    let o = plugin(
        &state,
        &["--pid", &other.pid().to_string(), "--port", &port],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains(&format!("holds no TCP listener on port {port}")),
        "{o:?}"
    );
    drop(clients);
}

#[test]
fn fallback_without_sock_diag_reads_proc_net_tcp() {
    let state = state_dir();
    let l = listen("127.0.0.1:0", 4);
    let addr = l.local_addr().unwrap();
    let port = addr.port().to_string();
    let clients = connect_up_to(addr, 2);
    let o = plugin_without_sock_diag(&state, &["--port", &port]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        line1(&o).contains("accept queue 2 (backlog unknown)"),
        "{o:?}"
    );
    assert_eq!(o.perf(&format!("{port}_backlog")).unwrap(), "U");
    // A fresh state: without the listener's own counter the host's ListenDrops are judged,
    // and the tests running alongside drop SYNs too.
    let o = plugin_without_sock_diag(&state_dir(), &["--port", &port, "--backlog", "2"]);
    assert_eq!(o.code, 1, "2 of 2 is above 80%: {o:?}");
    assert_eq!(o.perf(&format!("{port}_queue")).unwrap(), "2;1;2;0;3");
    drop(clients);
}

// ---------------------------------------------------------------------------------------
// drops

#[test]
fn new_drops_since_the_last_run_warn_then_go_critical() {
    let state = state_dir();
    let l = listen("127.0.0.1:0", 1);
    let addr = l.local_addr().unwrap();
    let port = addr.port().to_string();
    let args = ["--port", port.as_str()];
    let o = plugin(&state, &args);
    assert_eq!(o.code, 0, "first run is the baseline: {o:?}");
    let overflows_before: u64 = o
        .perf("listen_overflows")
        .unwrap()
        .trim_end_matches('c')
        .parse()
        .unwrap();

    // Fill the queue (backlog 1 holds 2), have one SYN dropped, then drain the queue so
    // only the drop is left to see.
    let clients = connect_up_to(addr, 2);
    assert_eq!(clients.len(), 2);
    dropped_syn(addr);
    let accepted: Vec<TcpStream> = (0..2).map(|_| l.accept().unwrap().0).collect();
    let o = plugin(&state, &args);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        line1(&o).contains(&format!(
            "127.0.0.1:{port} dropped 1 connection(s) since the last run"
        )),
        "{o:?}"
    );
    assert_eq!(o.perf(&format!("{port}_drops")).unwrap(), "1c");
    let overflows_after: u64 = o
        .perf("listen_overflows")
        .unwrap()
        .trim_end_matches('c')
        .parse()
        .unwrap();
    assert!(
        overflows_after > overflows_before,
        "{overflows_before} -> {o:?}"
    );

    // Three more drops against --drops-critical 3.
    let more = connect_up_to(addr, 2);
    for _ in 0..3 {
        dropped_syn(addr);
    }
    let drained: Vec<TcpStream> = (0..2).map(|_| l.accept().unwrap().0).collect();
    let o = plugin(&state, &["--port", &port, "--drops-critical", "3"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains("dropped 3 connection(s) since the last run (4 in all)"),
        "{o:?}"
    );

    // Nothing new: OK again.
    let o = plugin(&state, &args);
    assert_eq!(o.code, 0, "{o:?}");
    drop((clients, accepted, more, drained));
}

// ---------------------------------------------------------------------------------------
// the probe

#[test]
fn probe_healthy_reports_timings() {
    let state = state_dir();
    let s = Server::start(Mode::Healthy);
    let o = plugin(&state, &["--port", &s.port(), "--url", &s.url()]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(line1(&o).contains("HTTP 200 in"), "{o:?}");
    for label in ["time", "time_connect", "time_firstbyte"] {
        let v = o.perf(label).unwrap();
        assert!(v.ends_with("s;;;0") || v.contains("s;"), "{label}: {o:?}");
        assert!(!v.starts_with('U'), "{label}: {o:?}");
    }
    // --url alone names the listener too, by address or by a name of this host.
    for url in [s.url(), format!("http://localhost:{}/x", s.port())] {
        let o = plugin(&state, &["--url", &url]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(
            line1(&o).starts_with(&format!(
                "HTTP_BACKLOG OK - 127.0.0.1:{} accept queue 0/",
                s.port()
            )),
            "{o:?}"
        );
        assert!(o.perf(&format!("{}_queue", s.port())).is_some(), "{o:?}");
    }
    // Nothing listens there: the URL's listener is missing, and the probe says why.
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = plugin(&state, &["--url", &format!("http://{gone}/")]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stdout.contains(&format!("nothing listens on {gone}")),
        "{o:?}"
    );
    // --probe builds the URL from the listener; HEAD works too.
    let o = plugin(
        &state,
        &["--port", &s.port(), "--probe", "--method", "HEAD"],
    );
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn probe_refused() {
    let state = state_dir();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let o = plugin(&state, &["--port", &port, "--probe"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).starts_with("HTTP_BACKLOG CRITICAL - connection refused (+1 more)"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains(&format!("nothing listens on port {port}")),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains(&format!("probe: GET http://127.0.0.1:{port}/")),
        "{o:?}"
    );
}

#[test]
fn probe_connected_but_silent_is_critical_within_the_probe_timeout() {
    let state = state_dir();
    let s = Server::start(Mode::Silent);
    let o = plugin(
        &state,
        &[
            "--port",
            &s.port(),
            "--probe",
            "--probe-timeout",
            "1",
            "-t",
            "8",
        ],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains("connected but no response in 1s"),
        "{o:?}"
    );
    assert!(o.elapsed < Duration::from_secs(4), "well before -t: {o:?}");
    assert!(
        o.perf("time_connect").is_some_and(|v| !v.starts_with('U')),
        "{o:?}"
    );
    assert_eq!(o.perf("time_firstbyte").unwrap(), "U");
}

#[test]
fn probe_accepts_and_closes() {
    let state = state_dir();
    let s = Server::start(Mode::Close);
    let o = plugin(
        &state,
        &["--port", &s.port(), "--probe", "--probe-timeout", "2"],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains("closed before a response")
            || line1(&o).contains("reset before a response"),
        "{o:?}"
    );
}

#[test]
fn probe_unexpected_status() {
    let state = state_dir();
    let s = Server::start(Mode::Error500);
    let o = plugin(&state, &["--port", &s.port(), "--url", &s.url()]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(line1(&o).contains("HTTP 500 (expected 200-399)"), "{o:?}");
    let o = plugin(
        &state,
        &[
            "--port",
            &s.port(),
            "--url",
            &s.url(),
            "--expect-status",
            "500",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn probe_slow_is_a_warning() {
    let state = state_dir();
    let s = Server::start(Mode::Slow(Duration::from_millis(600)));
    let o = plugin(
        &state,
        &["--port", &s.port(), "--probe", "-w", "0.3", "-c", "3"],
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(line1(&o).contains("slow response: HTTP 200 in"), "{o:?}");
    assert!(line1(&o).contains("(warning > 0.3)"), "{o:?}");
    assert!(o.perf("time").unwrap().ends_with("s;0.3;3;0"), "{o:?}");
}

// ---------------------------------------------------------------------------------------
// the incident

#[test]
fn incident_server_at_its_fd_limit_gets_the_emfile_diagnosis() {
    let state = state_dir();
    let mut server = Helper::start("emfile-server 4", 32);
    let port: u16 = server.expect("PORT").parse().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = server.pid();
    // Connect until the server has run out of fds: it answers each connection with a line,
    // ACCEPTED or (once) EMFILE. The connection that met EMFILE stays queued; 3 more make
    // the queue hold `backlog` (4), so the probe's connection still completes into it and
    // is never answered.
    let mut clients = Vec::new();
    let mut accepted = 0;
    for _ in 0..100 {
        clients.push(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap());
        match server.next_line() {
            (k, n) if k == "ACCEPTED" => accepted = n.parse().unwrap(),
            (k, _) if k == "EMFILE" => break,
            other => panic!("unexpected helper line {other:?}"),
        }
    }
    assert!(
        accepted > 20 && accepted < 32,
        "{accepted} accepted under nofile 32"
    );
    clients.extend(connect_up_to(addr, 3));
    assert_eq!(clients.len(), accepted + 4);
    let port_s = port.to_string();
    let o = plugin(
        &state,
        &[
            "--port",
            &port_s,
            "--probe",
            "--probe-timeout",
            "1",
            "-t",
            "8",
        ],
    );
    assert_eq!(o.code, 2, "{o:?}");
    let want = "connected but no response in 1s; accept queue 4/4; owner ";
    assert!(line1(&o).contains(want), "{o:?}");
    assert!(
        line1(&o).contains(&format!(
            "[{pid}] at 32/32 open files \u{2014} accept() is likely failing with EMFILE"
        )),
        "{o:?}"
    );
    // Where the limit came from, in check_rlimit_match's words (common's provenance): the
    // helper set its own 32:32 between fork and exec.
    assert!(
        o.stdout.contains(&format!(
            "[{pid}] at 32/32 open files \u{2014} accept() is likely failing with EMFILE; nofile 32:32 not inherited ("
        )),
        "{o:?}"
    );
    println!("incident run 1: {}", o.stdout.trim_end());
    // The probe's own connection filled the queue: now the SYN is dropped.
    let o = plugin(
        &state,
        &[
            "--port",
            &port_s,
            "--probe",
            "--probe-timeout",
            "1",
            "-t",
            "8",
        ],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        line1(&o).contains("connect timeout after 1s")
            && line1(&o).contains("accept queue 5/4 full"),
        "{o:?}"
    );
    assert!(
        line1(&o).contains(&format!("[{pid}] at 32/32 open files")),
        "{o:?}"
    );
    println!("incident run 2: {}", o.stdout.trim_end());
    // The probe's dropped SYNs were read again after it gave up (on its listener's port
    // only): they are not new drops on the next run.
    let o = plugin(&state, &["--port", &port_s]);
    assert_eq!(
        o.perf(&format!("{port}_new_drops")).as_deref(),
        Some("0;0;99;0"),
        "{o:?}"
    );
    drop(clients);
}

// ---------------------------------------------------------------------------------------
// scale

#[test]
fn same_queue_result_with_20000_established_connections() {
    let state = state_dir();
    // 8 children x 2500 connections (5000 fds each, both ends), from 8 source addresses.
    let mut helpers: Vec<Helper> = (0..8)
        .map(|i| Helper::start(&format!("established 2500 127.0.0.{}", 10 + i), 5100))
        .collect();
    let mut total = 0;
    for h in &mut helpers {
        total += h.expect("READY").parse::<usize>().unwrap();
    }
    assert_eq!(total, 20_000);
    let lines = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .count();
    assert!(
        lines > 40_000,
        "both ends of 20,000 connections: {lines} rows"
    );

    let l = listen("127.0.0.1:0", 4);
    let addr = l.local_addr().unwrap();
    let port = addr.port().to_string();
    let clients = connect_up_to(addr, 8);
    assert_eq!(clients.len(), 5);
    for established in [false, true] {
        let mut args = vec!["--port", port.as_str()];
        if established {
            args.push("--established");
        }
        let o = plugin(&state, &args);
        assert_eq!(o.code, 2, "{o:?}");
        assert!(
            line1(&o).contains(&format!("127.0.0.1:{port} accept queue 5/4 full")),
            "{o:?}"
        );
        assert_eq!(o.perf(&format!("{port}_queue")).unwrap(), "5;3;4;0;5");
        // Opt-in: the count walks every established socket of the family. Then the 5 queued
        // connections count; the 20,000 elsewhere do not, not even client sockets whose own
        // port happens to be this port number.
        let counted = o.perf(&format!("{port}_established"));
        assert_eq!(counted.as_deref(), established.then_some("5;;;0"), "{o:?}");
        assert!(o.elapsed < Duration::from_secs(3), "{o:?}");
    }
    drop((clients, helpers));
}

/// The modern-runtime shape (incident.md): at EMFILE the server accepts and closes, so the
/// queue stays empty; the probe is closed or reset, and the owner at its limit explains it.
#[test]
fn accept_then_close_at_emfile_is_explained_by_the_owner_at_its_limit() {
    let state = state_dir();
    let mut server = Helper::start("libuv-server 16", 32);
    let port: u16 = server.expect("PORT").parse().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = server.pid();
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap());
        if server.next_line().0 == "CLOSED" {
            break;
        }
    }
    let o = plugin(
        &state,
        &[
            "--port",
            &port.to_string(),
            "--probe",
            "--probe-timeout",
            "2",
            "-t",
            "8",
        ],
    );
    assert_eq!(o.code, 2, "{o:?}");
    let l1 = line1(&o);
    assert!(
        l1.contains("closed before a response") || l1.contains("reset before a response"),
        "{o:?}"
    );
    assert!(l1.contains("; accept queue 0/16; owner "), "{o:?}");
    assert!(
        l1.contains(&format!("[{pid}] at 32/32 open files"))
            && l1.contains("accept() is likely failing with EMFILE"),
        "{o:?}"
    );
    println!("accept-then-close run: {}", o.stdout.trim_end());
    drop(clients);
}

/// A corrupt state file is moved aside and said so; the check still runs.
#[test]
fn corrupt_state_is_moved_aside_and_reported() {
    let state = state_dir();
    let l = listen("127.0.0.1:0", 4);
    let port = l.local_addr().unwrap().port().to_string();
    assert_eq!(plugin(&state, &["--port", &port]).code, 0);
    let file = procguard_common::state::StateDir::open(state.path())
        .unwrap()
        .file(&format!("http_backlog port {port}"));
    assert!(file.exists(), "{}", file.display());
    std::fs::write(&file, "{ not json").unwrap();
    let o = plugin(&state, &["--port", &port]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("was corrupt"), "{o:?}");
    assert!(o.stdout.contains("moved aside"), "{o:?}");
}
