//! The probe against real local servers: HTTPS served by `openssl s_server` with
//! certificates made by the `openssl` CLI at test time (self-signed, a test CA, expired, not
//! yet valid), plain servers in threads of this test for the other failure paths, and the
//! environment's proxy variables.
//!
//! Every server is bounded: `s_server -naccept 20`, killed when its guard drops (and with
//! the test process, `PR_SET_PDEATHSIG`); the thread servers stop when dropped and give up
//! after 30 s. Traffic stays on 127.0.0.1.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
// test code: a failed unwrap is a failed test
// C struct fields (sockaddr_un, linger, socklen_t) from small known values.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procguard_common::testing::{run_command, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_http_backlog");

/// Runs the plugin with a clean environment plus `env`, and its own state dir.
fn plugin_env(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--state-dir")
        .arg(state)
        .env_clear()
        .env("LC_ALL", "C")
        .envs(env.iter().copied());
    run_command(&mut cmd)
}

fn plugin(state: &Path, args: &[&str]) -> Outcome {
    plugin_env(state, args, &[])
}

// ---------------------------------------------------------------------------------------
// certificates

/// Runs the openssl CLI in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI (tests/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory with a test CA (`ca.pem`, `ca.key`) and an `openssl ca` configuration.
struct Pki {
    dir: tempfile::TempDir,
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut args = vec!["req", "-x509", "-nodes", "-days", "3"];
        args.extend(EC);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=procguard test CA",
        ]);
        openssl(d, &args);
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = test\n[test]\ndir = {0}\ndatabase = {0}/index.txt\n\
                 new_certs_dir = {0}\nserial = {0}/serial\ncertificate = {0}/ca.pem\n\
                 private_key = {0}/ca.key\ndefault_md = sha256\npolicy = any\n\
                 copy_extensions = copy\nunique_subject = no\n[any]\ncommonName = supplied\n",
                d.display()
            ),
        )
        .unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server certificate for DNS name `host`, signed by the CA, valid from `start` to
    /// `end` (`YYYYMMDDHHMMSSZ`; `openssl ca` takes dates in the past, which Debian 12's
    /// `openssl x509` cannot set). Returns (cert, key) file names.
    fn leaf(&self, stem: &str, host: &str, start: &str, end: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let (key, csr, pem) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
        );
        let subj = format!("/CN={host}");
        let san = format!("subjectAltName=DNS:{host}");
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend(EC);
        args.extend([
            "-keyout", &key, "-out", &csr, "-subj", &subj, "-addext", &san,
        ]);
        openssl(d, &args);
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-in",
                &csr,
                "-out",
                &pem,
                "-startdate",
                start,
                "-enddate",
                end,
            ],
        );
        (d.join(pem), d.join(key))
    }

    /// A self-signed certificate for `localhost` (`req -x509`: CA:TRUE, as most are).
    fn self_signed(&self) -> (PathBuf, PathBuf) {
        let mut args = vec!["req", "-x509", "-nodes", "-days", "3"];
        args.extend(EC);
        args.extend([
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ]);
        openssl(self.dir.path(), &args);
        (self.path("self.pem"), self.path("self.key"))
    }
}

/// `openssl s_server -www` on 127.0.0.1, a free port, for at most 20 connections; killed on
/// drop, and by the kernel if the test process dies first (`PR_SET_PDEATHSIG`). (Not under
/// `timeout`: killing that wrapper would leave the server running.)
struct SServer {
    child: Child,
    port: u16,
}

impl SServer {
    fn start(cert: &Path, key: &Path, extra: &[&str]) -> SServer {
        let mut cmd = Command::new("openssl");
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .args(["s_server", "-accept", "127.0.0.1:0", "-www"])
            .args(["-naccept", "20", "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // s_server prints "ACCEPT 127.0.0.1:PORT" once it listens.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("ACCEPT 127.0.0.1:") {
                    let _ = tx.send(p.trim().parse::<u16>().unwrap());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("s_server listening");
        SServer { child, port }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    fn port(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// plain servers (threads)

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Reads the request head, answers 200.
    Healthy,
    /// Writes a plain-text HTTP 400 at once (what a plain HTTP server says to a TLS hello).
    PlainAtOnce,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// Accepts and never writes.
    Silent,
    /// Accepts and resets (`SO_LINGER` 0).
    Reset,
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
            let deadline = Instant::now() + Duration::from_secs(30);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                serve(s, mode, &mut held);
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
}

fn serve(mut s: TcpStream, mode: Mode, held: &mut Vec<TcpStream>) {
    match mode {
        Mode::Silent => held.push(s),
        Mode::Reset => {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt on our own socket with a valid linger struct.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    std::ptr::addr_of!(linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(s);
        }
        Mode::PlainAtOnce => {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
        Mode::Healthy | Mode::Garbage => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let answer: &[u8] = if mode == Mode::Healthy {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
            };
            let _ = s.write_all(answer);
        }
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

/// Text a library's `Debug` output or io layer leaves behind; none of it may reach line 1.
const ARTEFACTS: &[&str] = &[
    "Error(",
    "Other(",
    "OtherError",
    "io: ",
    "Kind(",
    "Custom {",
    "(os error",
    "Some(",
    "None",
    "::",
    "{ ",
    "Timeout(",
    "Transport",
];

fn assert_plain(o: &Outcome) {
    let line1 = o.line1();
    for a in ARTEFACTS {
        assert!(!line1.contains(a), "debug text {a:?} in line 1: {line1}");
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------------------
// tests

#[test]
fn proxy_variables_are_ignored() {
    let state = tmp();
    let server = Server::start(Mode::Healthy);
    // A dead proxy: a port that was just free.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = format!("http://{dead}");
    let url = format!("http://{}/", server.addr);
    let env: Vec<(&str, &str)> = [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .map(|k| (*k, proxy.as_str()))
    .collect();
    let o = plugin_env(
        state.path(),
        &["--port", &server.port(), "--url", &url],
        &env,
    );
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.line1().contains("HTTP 200"), "{}", o.stdout);
}

#[test]
fn self_signed_certificate() {
    let pki = Pki::new();
    let (cert, key) = pki.self_signed();
    let server = SServer::start(&cert, &key, &[]);
    let state = tmp();
    let (url, port) = (server.url(), server.port());
    let base = ["--port", port.as_str(), "--url", url.as_str()];

    // Not verified by default, as check_curl does.
    let o = plugin(state.path(), &base);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.line1().contains("HTTP 200"), "{}", o.stdout);

    let o = plugin(state.path(), &[&base[..], &["--verify-cert"]].concat());
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1()
            .contains("TLS certificate is self-signed (\"localhost\") and not trusted"),
        "{}",
        o.stdout
    );
    assert_plain(&o);

    let ca = cert.display().to_string();
    let trusted = [&base[..], &["--verify-cert", "--ca-cert", &ca]].concat();
    // Trusted, but for another name than the URL's address.
    let o = plugin(state.path(), &trusted);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1()
            .contains("TLS certificate name mismatch: it is for localhost, not 127.0.0.1"),
        "{}",
        o.stdout
    );
    let o = plugin(
        state.path(),
        &[&trusted[..], &["--host", "localhost"]].concat(),
    );
    assert_eq!(o.code, 0, "{}", o.stdout);
}

#[test]
fn test_ca_issuer_name_and_host() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("app", "app.test", "20240101000000Z", "20991231000000Z");
    let server = SServer::start(&cert, &key, &[]);
    let state = tmp();
    let (url, port) = (server.url(), server.port());
    let ca = pki.path("ca.pem").display().to_string();
    let base = ["--port", port.as_str(), "--url", url.as_str()];

    let o = plugin(state.path(), &base);
    assert_eq!(o.code, 0, "{}", o.stdout);

    let o = plugin(state.path(), &[&base[..], &["--verify-cert"]].concat());
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(
            "TLS certificate issuer unknown: signed by \"procguard test CA\", not in the system trust store or --ca-cert"
        ),
        "{}",
        o.stdout
    );
    assert_plain(&o);

    let verify = [&base[..], &["--verify-cert", "--ca-cert", &ca]].concat();
    let o = plugin(state.path(), &verify);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1()
            .contains("TLS certificate name mismatch: it is for app.test, not 127.0.0.1"),
        "{}",
        o.stdout
    );
    assert_plain(&o);

    let o = plugin(
        state.path(),
        &[&verify[..], &["--host", "app.test"]].concat(),
    );
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.line1().contains("HTTP 200"), "{}", o.stdout);
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem").display().to_string();
    let state = tmp();
    let cases = [
        (
            "old",
            "20200101000000Z",
            "20200201000000Z",
            "TLS certificate expired on 2020-02-01 00:00 UTC (",
        ),
        (
            "new",
            "20990101000000Z",
            "20991231000000Z",
            "TLS certificate not valid yet: valid from 2099-01-01 00:00 UTC (in ",
        ),
    ];
    for (stem, start, end, words) in cases {
        let (cert, key) = pki.leaf(stem, "app.test", start, end);
        let server = SServer::start(&cert, &key, &[]);
        let (url, port) = (server.url(), server.port());
        let base = ["--port", port.as_str(), "--url", url.as_str()];
        // Not verified: the dates are not looked at either.
        assert_eq!(plugin(state.path(), &base).code, 0);
        let args = [
            &base[..],
            &["--verify-cert", "--ca-cert", &ca, "--host", "app.test"],
        ]
        .concat();
        let o = plugin(state.path(), &args);
        assert_eq!(o.code, 2, "{}", o.stdout);
        assert!(o.line1().contains(words), "{}", o.stdout);
        assert_plain(&o);
    }
}

#[test]
fn handshake_failures_in_words() {
    let pki = Pki::new();
    let (cert, key) = pki.self_signed();
    let state = tmp();

    // A server that wants a client certificate.
    let ca = cert.display().to_string();
    let server = SServer::start(
        &cert,
        &key,
        &["-Verify", "1", "-verify_return_error", "-CAfile", &ca],
    );
    let o = plugin(
        state.path(),
        &["--port", &server.port(), "--url", &server.url()],
    );
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.line1().contains("TLS handshake failed: "), "{}", o.stdout);
    assert_plain(&o);

    // Plain HTTP on the port.
    let plain = Server::start(Mode::PlainAtOnce);
    let url = format!("https://{}/", plain.addr);
    let o = plugin(state.path(), &["--port", &plain.port(), "--url", &url]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(
            "TLS handshake failed: the server did not answer in TLS (plain HTTP on this port?)"
        ),
        "{}",
        o.stdout
    );
    assert_plain(&o);
}

/// Every way the probe can fail, with line 1 checked for library debug text.
#[test]
#[allow(clippy::too_many_lines)] // one list of every failure path, kept in one place
fn no_debug_text_on_any_failure_path() {
    let state = tmp();
    let s = state.path();
    let mut runs: Vec<(String, Outcome)> = Vec::new();
    let mut run = |what: &str, args: &[&str]| {
        let o = plugin(s, args);
        runs.push((what.to_string(), o));
    };

    // Refused: a port that was just free.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let port = free.port().to_string();
    let url = format!("http://{free}/");
    run("refused", &["--port", &port, "--url", &url]);
    for mode in [Mode::Silent, Mode::Reset, Mode::Garbage, Mode::PlainAtOnce] {
        let server = Server::start(mode);
        let port = server.port();
        for scheme in ["http", "https"] {
            let url = format!("{scheme}://{}/", server.addr);
            run(
                &format!("{mode:?} {scheme}"),
                &[
                    "--port",
                    &port,
                    "--url",
                    &url,
                    "--probe-timeout",
                    "1",
                    "-t",
                    "5",
                ],
            );
        }
    }
    let healthy = Server::start(Mode::Healthy);
    let hp = healthy.port();
    run(
        "host not found",
        &[
            "--port",
            &hp,
            "--url",
            "http://nonexistent.invalid/",
            "--probe-timeout",
            "2",
        ],
    );
    run(
        "invalid server name",
        &[
            "--port",
            &hp,
            "--url",
            &format!("https://{}/", healthy.addr),
            "--host",
            "-x-",
        ],
    );
    run(
        "unreadable --ca-cert",
        &[
            "--port",
            &hp,
            "--url",
            "https://127.0.0.1:1/",
            "--verify-cert",
            "--ca-cert",
            "/nonexistent/ca.pem",
        ],
    );
    run(
        "--ca-cert not PEM",
        &[
            "--port",
            &hp,
            "--url",
            "https://127.0.0.1:1/",
            "--verify-cert",
            "--ca-cert",
            "/proc/self/status",
        ],
    );
    run(
        "--ca-cert a FIFO-like file",
        &[
            "--port",
            &hp,
            "--url",
            "https://127.0.0.1:1/",
            "--verify-cert",
            "--ca-cert",
            "/dev/zero",
        ],
    );
    run(
        "missing Unix socket",
        &["--unix", "/nonexistent/app.sock", "--probe"],
    );
    run(
        "not a Unix socket",
        &["--unix", "/proc/self/status", "--probe"],
    );
    run(
        "a Unix socket path too long",
        &["--unix", &format!("/{}", "x".repeat(200)), "--probe"],
    );
    for (what, o) in &runs {
        assert!((1..=3).contains(&o.code), "{what}: {}", o.stdout);
        let line1 = o.line1();
        for a in ARTEFACTS {
            assert!(
                !line1.contains(a),
                "{what}: debug text {a:?} in line 1: {line1}"
            );
        }
    }
}
