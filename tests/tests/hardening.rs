//! Hardening for root, sudo and NRPE runs (issue 12), held for every plugin binary: no test
//! doors in the options, and a bad-input matrix (every option with malformed values, FIFOs,
//! /dev/zero, symlinks, huge and non-UTF-8 values) that must keep the output contract
//! within a time and memory bound.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use procguard_common::testing::{assert_contract, run_command, run_plugin, Outcome};
use procguard_contract_tests::{output_name, plugin_names, plugin_path, Started};

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

// ---------------------------------------------------------------------------------------
// The bad-input matrix

/// One run's outcome with what the kernel says the child used.
struct Measured {
    outcome: Outcome,
    /// Peak resident set size, KiB (getrusage of the child, via wait4).
    max_rss_kib: i64,
}

/// Runs `bin` with `args` (stdin closed, a clean environment, in `cwd`: relative paths
/// among the values must not land in the source tree) and measures its peak RSS.
fn run_measured(bin: &str, args: &[OsString], cwd: &Path) -> Measured {
    use std::io::Read;
    use std::process::Stdio;
    let start = std::time::Instant::now();
    // Reaped by wait4 below, which also gives the peak RSS.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut err = Vec::new();
        let _ = err_pipe.read_to_end(&mut err);
        err
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let err = err_reader.join().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let id = i32::try_from(child.id()).unwrap();
    // SAFETY: waits for our own child, which std has not reaped (we never called wait).
    let pid = unsafe { libc::wait4(id, &raw mut status, 0, &raw mut usage) };
    assert_eq!(pid, id, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    Measured {
        outcome: Outcome {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            elapsed: start.elapsed(),
        },
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Malformed values for any option: (name for the report, value).
fn bad_values(dir: &Path) -> Vec<(String, OsString)> {
    use std::os::unix::ffi::OsStringExt;
    let p = |name: &str| dir.join(name).into_os_string();
    let mut v: Vec<(String, OsString)> = [
        ("empty", ""),
        ("minus-one", "-1"),
        ("zero", "0"),
        ("u64-overflow", "99999999999999999999999999"),
        ("word", "abc"),
        ("float-overflow", "1e400"),
        ("nan", "nan"),
        ("range-garbage", "@~:5:x%"),
        ("regex-bomb", "x{1000}{1000}{1000}"),
        ("unclosed", "((("),
        ("escapes", "a\u{1b}[31m\u{2028}\u{202e}|b\tc"),
        ("dev-zero", "/dev/zero"),
        ("dev-urandom", "/dev/urandom"),
        ("root-dir", "/"),
        ("missing", "/nonexistent/procguard/x"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), OsString::from(v)))
    .collect();
    v.push(("huge".into(), OsString::from("9".repeat(100_000))));
    v.push((
        "non-utf8".into(),
        OsString::from_vec(vec![b'a', 0xff, 0xfe, b'z']),
    ));
    for name in [
        "fifo",
        "link-to-dev-zero",
        "link-loop",
        "link-to-dir",
        "shadow",
    ] {
        v.push((name.into(), p(name)));
    }
    v
}

/// The files the path-like values name.
fn make_bad_files(dir: &Path) {
    use std::os::unix::fs::symlink;
    let fifo = std::ffi::CString::new(dir.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    symlink("/dev/zero", dir.join("link-to-dev-zero")).unwrap();
    symlink(dir.join("link-loop"), dir.join("link-loop")).unwrap();
    symlink("/", dir.join("link-to-dir")).unwrap();
    std::fs::write(dir.join("shadow"), SHADOW).unwrap();
}

/// One run of the matrix: the binary, a name for the report, the arguments.
type Case = (String, String, Vec<OsString>);

/// Every option of every plugin with each of `values` (a flag alone), bare and after a
/// base that selects `pid`. Every run has `-t 5` unless `-t` is under test, so a loaded
/// machine turns a slow run into the plugin's own timeout result.
fn matrix_cases(values: &[(String, OsString)], pid: &str, state: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for plugin in procguard_contract_tests::generate::PLUGINS {
        if !plugin_names().iter().any(|n| n == plugin.name) {
            continue;
        }
        let bin = plugin_path(plugin.name).to_string_lossy().into_owned();
        for arg in plugin.built_command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let flag = format!("--{long}");
            let mut base: Vec<&str> = vec!["-t", "5", "--pid", pid];
            if plugin.stateful {
                base.extend(["--state-dir", state.to_str().unwrap()]);
            }
            if plugin.name == "check_rlimit_match" {
                base.extend(["--expect", "nofile=1024"]);
            }
            // The option under test replaces a base option of the same name.
            let keep = |k: &str| k != flag && !(k == "-t" && long == "timeout");
            let bare: Vec<OsString> = if long == "timeout" {
                Vec::new()
            } else {
                vec!["-t".into(), "5".into()]
            };
            let base: Vec<OsString> = base
                .chunks(2)
                .filter(|kv| keep(kv[0]))
                .flatten()
                .map(OsString::from)
                .collect();
            let tries: Vec<(String, Vec<OsString>)> =
                if arg.get_num_args().is_some_and(|n| n.takes_values()) {
                    values
                        .iter()
                        .map(|(n, v)| (n.clone(), vec![OsString::from(&flag), v.clone()]))
                        .collect()
                } else {
                    vec![("flag".into(), vec![OsString::from(&flag)])]
                };
            for (what, tail) in tries {
                for (kind, head) in [("", &bare), ("base ", &base)] {
                    let mut args = head.clone();
                    args.extend(tail.iter().cloned());
                    cases.push((
                        bin.clone(),
                        format!("{} {kind}{flag} {what}", plugin.name),
                        args,
                    ));
                }
            }
        }
    }
    cases
}

/// Runs `cases` through a pool of 3 (fast enough on a 2-core CI machine).
fn run_pool(cases: &[Case], cwd: &Path) -> Vec<(String, Measured)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((bin, name, args)) = cases.get(i) else {
                    break;
                };
                let m = run_measured(bin, args, cwd);
                results.lock().unwrap().push((name.clone(), m));
            });
        }
    });
    results.into_inner().unwrap()
}

/// What a run did wrong: the output contract, more than 15 s, more than 64 MiB.
fn matrix_failures(name: &str, m: &Measured) -> Vec<String> {
    const MAX_RSS_KIB: i64 = 64 * 1024;
    let o = &m.outcome;
    let mut failures = Vec::new();
    if let Err(e) = std::panic::catch_unwind(|| assert_contract(o)) {
        let why = e
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "contract".into());
        failures.push(format!(
            "{name}: {}",
            why.chars().take(300).collect::<String>()
        ));
    }
    // -t 5 plus room for a loaded 2-core machine running the matrix in parallel.
    if o.elapsed > std::time::Duration::from_secs(15) {
        failures.push(format!("{name}: took {:?}", o.elapsed));
    }
    if m.max_rss_kib > MAX_RSS_KIB {
        failures.push(format!("{name}: peak RSS {} KiB", m.max_rss_kib));
    }
    failures
}

/// Every option of every plugin, bare and after a base selector, with every malformed
/// value (flags alone): exit 0-3, the output contract, at most 15 s and 64 MiB each.
#[test]
fn bad_input_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    make_bad_files(tmp.path());
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let holder = Started(Command::new("sleep").arg("600").spawn().unwrap());
    let cases = matrix_cases(
        &bad_values(tmp.path()),
        &holder.pid(),
        &tmp.path().join("state"),
    );
    let started = std::time::Instant::now();
    let results = run_pool(&cases, &cwd);
    drop(holder);
    let failures: Vec<String> = results
        .iter()
        .flat_map(|(name, m)| matrix_failures(name, m))
        .collect();
    let rss = |filter: &dyn Fn(&str) -> bool| {
        let all: Vec<i64> = results
            .iter()
            .filter(|(n, _)| filter(n))
            .map(|(_, m)| m.max_rss_kib)
            .collect();
        (all.len(), all.into_iter().max().unwrap_or(0))
    };
    let (_, max_rss) = rss(&|_| true);
    let (zero_runs, zero_rss) = rss(&|n| n.contains("dev-zero") || n.contains("dev-urandom"));
    eprintln!(
        "bad-input matrix: {} runs in {:.1}s, {} failures; peak RSS max {max_rss} KiB; /dev/zero and /dev/urandom cases ({zero_runs}): peak RSS max {zero_rss} KiB",
        results.len(),
        started.elapsed().as_secs_f64(),
        failures.len(),
    );
    assert!(results.len() > 1000, "{} runs", results.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Output that survives transports

/// At default verbosity: the whole output within NRPE v2's 1,024 bytes (with its NUL) and
/// line 1 with perfdata within Monit's 512; what was cut is counted.
fn assert_fits_transports(what: &str, o: &Outcome) {
    assert!(
        o.stdout.len() < 1024,
        "{what}: {} bytes:\n{}",
        o.stdout.len(),
        o.stdout
    );
    assert!(
        o.line1().len() <= 512,
        "{what}: line 1 is {} bytes: {}",
        o.line1().len(),
        o.line1()
    );
}

/// Processes to select: `sleep` with an argument nothing else on the host uses.
struct Crowd(Vec<std::process::Child>);

impl Crowd {
    fn start(n: usize, marker: &str) -> Crowd {
        Crowd(
            (0..n)
                .map(|_| {
                    Command::new("sleep")
                        .arg(marker)
                        .stdin(std::process::Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn many_findings_fit_nrpe_and_monit() {
    let marker = format!("600.{}", std::process::id());
    let _crowd = Crowd::start(40, &marker);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let re = format!("^sleep {}$", marker.replace('.', r"\."));
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let bin = |n: &str| plugin_path(n).to_string_lossy().into_owned();

    // 40 processes over a critical threshold of 0 open files.
    let o = run_plugin(
        &bin("check_fd_usage"),
        ["--cmdline", &re, "-w", "0", "-c", "0"],
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert_fits_transports("check_fd_usage", &o);
    assert!(o.line1().contains("(+39 more)"), "{o:?}");
    assert!(
        o.stdout
            .lines()
            .last()
            .unwrap()
            .contains("more lines left out (-v shows them)"),
        "{o:?}"
    );

    // 40 processes whose limits differ from the expectation.
    let o = run_plugin(
        &bin("check_rlimit_match"),
        ["--cmdline", &re, "--expect", "nofile=7:7"],
    );
    assert_eq!(o.code, 1, "{o:?}"); // above the expectation: WARNING
    assert_fits_transports("check_rlimit_match", &o);
    assert!(o.line1().contains("more)"), "{o:?}");

    // 40 instances of a service, twice (the second run compares them with the first).
    for _ in 0..2 {
        let o = run_plugin(
            &bin("check_restart_churn"),
            ["--cmdline", &re, "--state-dir", state],
        );
        assert_fits_transports("check_restart_churn", &o);
    }

    // One process holding 40 listeners: perfdata for each would not fit line 1.
    let mut server = Started(Command::new("python3")
        .args(["-c", "import socket,time\nss=[socket.socket() for _ in range(40)]\nfor s in ss:\n s.bind(('127.0.0.1',0)); s.listen(8)\nprint('up',flush=True)\ntime.sleep(600)"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap());
    let mut up = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.as_mut().unwrap()),
        &mut up,
    )
    .unwrap();
    let o = run_plugin(
        &bin("check_http_backlog"),
        [
            "--pid",
            &server.pid(),
            "--state-dir",
            state,
            "--queue-warning",
            "0",
        ],
    );
    drop(server);
    assert_fits_transports("check_http_backlog", &o);
    assert!(
        o.stdout
            .contains("perfdata items left out to keep line 1 within 512 bytes"),
        "{o:?}"
    );
}

/// A process named with ESC, TAB, U+2028 and a bidi override cannot corrupt or disguise
/// the output: every plugin's line 1 and long output carry it sanitized.
#[test]
fn a_hostile_process_name_is_sanitized() {
    let dir = tempfile::tempdir().unwrap();
    let name = "ev\u{1b}[31mil\u{2028}x\ty\u{202e}z";
    let exe = dir.path().join(name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let child = Started(Command::new(&exe).arg("60").spawn().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(100));
    let pid = child.pid();
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    for plugin in plugin_names() {
        let bin = plugin_path(&plugin).to_string_lossy().into_owned();
        let mut args = vec!["--pid", pid.as_str(), "-v"];
        match plugin.as_str() {
            "check_rlimit_match" => args.extend(["--expect", "nofile=1"]),
            "check_restart_churn" | "check_http_backlog" => args.extend(["--state-dir", state]),
            _ => {}
        }
        let o = run_plugin(&bin, &args);
        for bad in ['\u{1b}', '\u{2028}', '\t', '\u{202e}'] {
            assert!(!o.stdout.contains(bad), "{plugin}: {bad:?} in {o:?}");
        }
        // The name is there, made inert: not left out, which would pass the check above.
        assert!(
            o.line1().contains(&format!("ev?[31mil x y?z[{pid}")),
            "{plugin}: {o:?}"
        );
    }
}
