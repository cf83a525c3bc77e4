//! Real processes with real limits: a "supervisor" started with nofile 1024:4096 that
//! starts a service, processes with the expected limits, a process whose parent exited.
//! Everything started here is killed on drop (process groups, so grandchildren too).
#![cfg(target_os = "linux")]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procguard_common::testing::{run_command, run_plugin, Holder, HolderSpec, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_rlimit_match");

fn run(args: &[&str]) -> Outcome {
    run_plugin(BIN, args)
}

/// A run with `systemctl` replaced through the test seam, on a host that pretends to run
/// systemd (the binary has no option for either).
fn run_systemctl(systemctl: &Path, args: &[&str]) -> Outcome {
    run_command(
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("LC_ALL", "C")
            .env("PROCGUARD_TEST_SYSTEMCTL", systemctl)
            .env("PROCGUARD_TEST_SYSTEMD_DIR", "/"),
    )
}

fn sh_path() -> PathBuf {
    ["/bin/sh", "/usr/bin/sh"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("sh")
}

/// A shell started in its own process group with lowered nofile; killed with its group.
struct Tree {
    child: Child,
    pgid: i32,
    _dir: tempfile::TempDir,
}

impl Tree {
    /// Starts a copy of sh named `name` running `script`, in a new process group (or a new
    /// session with `setsid`), with nofile `soft:hard`.
    fn start(name: &str, script: &str, nofile: (u64, u64), setsid: bool) -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        let exe = dir.path().join(name);
        std::fs::copy(sh_path(), &exe).expect("copy sh");
        let (soft, hard) = nofile;
        let mut cmd = Command::new(&exe);
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if setsid {
                    libc::setsid();
                } else {
                    libc::setpgid(0, 0);
                }
                let rl = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn");
        let pgid = i32::try_from(child.id()).expect("pid fits i32");
        Tree {
            child,
            pgid,
            _dir: dir,
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// The pid of a `sleep` in this tree's process group (waits for it to exec).
    fn sleeper(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                if exe.file_name().is_some_and(|n| n == "sleep") && pgid_of(pid) == Some(self.pgid)
                {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no sleep in process group {}", self.pgid);
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the group is ours.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pgid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(2)?.parse().ok()
}

/// A limits.conf directory (limits.conf and limits.d/).
fn limits_dir(conf: &str, d: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("limits.conf"), conf).expect("write");
    std::fs::create_dir(dir.path().join("limits.d")).expect("mkdir");
    for (name, text) in d {
        std::fs::write(dir.path().join("limits.d").join(name), text).expect("write");
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn holder(soft: u64, hard: u64) -> Holder {
    Holder::start(&HolderSpec {
        nofile: (soft, hard),
        ..HolderSpec::default()
    })
}

#[test]
fn service_restarted_by_a_supervisor_is_critical_and_names_the_supervisor() {
    let monit = Tree::start("monit", "sleep 600 & wait", (1024, 4096), false);
    let service = monit.sleeper();
    let conf = limits_dir(
        "# the incident's limits.conf\n* soft nofile 500000\n* hard nofile 500000\n",
        &[],
    );
    let o = run(&[
        "--pid",
        &service.to_string(),
        "--limits-conf",
        s(conf.path()),
        "--pam-flavor",
        "upstream",
        "-v",
    ]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    let line1 = o.line1();
    assert!(
        line1.starts_with(&format!(
            "RLIMIT CRITICAL - sleep[{service}] nofile soft 1024 < 500000 expected (limits.conf:2 \"* soft nofile 500000\"), inherited from monit[{}] (nofile 1024:4096)",
            monit.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(line1.len() < 400, "{line1}");
    assert_eq!(o.perf("sleep_nofile_soft").as_deref(), Some("1024;;;0"));
    assert_eq!(o.perf("sleep_nofile_hard").as_deref(), Some("4096;;;0"));
    assert!(o.stdout.contains("[CRITICAL] sleep"), "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!("nofile hard 4096 < 500000 expected (limits.conf:3 \"* hard nofile 500000\"), inherited from monit[{}]", monit.pid())),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "chain: sleep[{service}] 1024:4096 <- monit[{}] 1024:4096 <- ",
            monit.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("fix (monit): start program = \"/bin/sh -c 'ulimit -Hn 500000; ulimit -Sn 500000; ...'\" in 'check process SERVICE' of its control file, then monit reload"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "now: prlimit --pid {service} --nofile=500000:500000"
        )),
        "{}",
        o.stdout
    );
}

#[test]
fn debian_rule_keeps_wildcard_lines_off_root() {
    let h = holder(1024, 4096);
    let conf = limits_dir("* soft nofile 500000\n* hard nofile 500000\n", &[]);
    let o = run(&[
        "--pid",
        &h.pid().to_string(),
        "--limits-conf",
        s(conf.path()),
        "--pam-flavor",
        "debian",
    ]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // The '*' lines do not give root anything: a value below them is only a WARNING.
        assert_eq!(o.code, 1, "{}", o.stdout);
        assert!(
            o.line1().contains(&format!(
                "sleep[{}] nofile soft 1024 < 500000 expected (limits.conf:1 \"* soft nofile 500000\", not applied to root by Debian's pam_limits), not inherited (",
                h.pid()
            )),
            "{}",
            o.stdout
        );
        let enough = holder(4096, 4096);
        let conf = limits_dir("* - nofile 2048\n", &[]);
        let o = run(&[
            "--pid",
            &enough.pid().to_string(),
            "--limits-conf",
            s(conf.path()),
            "--pam-flavor",
            "debian",
        ]);
        assert_eq!(o.code, 0, "{}", o.stdout);
        let conf = limits_dir("alice - nofile 2048\n", &[]);
        let o = run(&[
            "--pid",
            &enough.pid().to_string(),
            "--limits-conf",
            s(conf.path()),
            "--pam-flavor",
            "debian",
        ]);
        assert_eq!(o.code, 0, "{}", o.stdout);
        assert!(
            o.line1().contains("limits.conf sets nothing for root (Debian: '*' and '@group' lines do not apply to root"),
            "{}",
            o.stdout
        );
    } else {
        assert_eq!(o.code, 2, "{}", o.stdout);
    }
}

#[test]
fn process_with_the_expected_limits_is_ok() {
    let h = holder(8000, 8000);
    let conf = limits_dir(
        "* soft nofile 1024\n",
        &[
            ("90-nofile.conf", "* - nofile 8000\n"),
            ("README", "* - nofile 1\n"),
        ],
    );
    let o = run(&[
        "--pid",
        &h.pid().to_string(),
        "--limits-conf",
        s(conf.path()),
        "--pam-flavor",
        "upstream",
        "-v",
    ]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.line1().starts_with(&format!(
            "RLIMIT OK - sleep[{}] nofile 8000:8000 as expected (limits.conf) | ",
            h.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("nofile hard 8000 = 8000 (limits.d/90-nofile.conf:1 \"* - nofile 8000\")"),
        "{}",
        o.stdout
    );
}

#[test]
fn expect_exact_values() {
    let h = holder(1024, 4096);
    let pid = h.pid().to_string();
    let ok = run(&["--pid", &pid, "--expect", "nofile=1024:4096"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert!(
        ok.line1()
            .contains("nofile 1024:4096 as expected (--expect)"),
        "{}",
        ok.stdout
    );

    let low = run(&["--pid", &pid, "--expect", "nofile=2048:4096"]);
    assert_eq!(low.code, 2, "{}", low.stdout);
    assert!(
        low.line1()
            .contains("nofile soft 1024 < 2048 expected (--expect nofile=2048:4096)"),
        "{}",
        low.stdout
    );

    let high = run(&["--pid", &pid, "--expect", "nofile=512:4096"]);
    assert_eq!(high.code, 1, "{}", high.stdout);
    assert!(
        high.line1().contains("nofile soft 1024 > 512 expected"),
        "{}",
        high.stdout
    );

    let unlimited = run(&[
        "--pid",
        &pid,
        "--expect",
        "core=unlimited:unlimited",
        "--expect",
        "nofile=:4096",
    ]);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core: Vec<&str> = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .expect("core row")
        .split_whitespace()
        .collect();
    let (soft_unlimited, hard_unlimited) = (core[0] == "unlimited", core[1] == "unlimited");
    let want = match (soft_unlimited, hard_unlimited) {
        (true, true) => 0,
        _ => 2,
    };
    assert_eq!(unlimited.code, want, "{}", unlimited.stdout);
    if !soft_unlimited {
        assert!(
            unlimited
                .line1()
                .contains(&format!("core soft {} < unlimited expected", core[0])),
            "{}",
            unlimited.stdout
        );
    }
    // Unlimited values have no number: left out of perfdata.
    assert_eq!(unlimited.perf("sleep_core_hard").is_none(), hard_unlimited);
    assert_eq!(unlimited.perf("sleep_core_soft").is_none(), soft_unlimited);
}

#[test]
fn at_least_minimum_values() {
    let h = holder(1024, 4096);
    let pid = h.pid().to_string();
    let ok = run(&["--pid", &pid, "--at-least", "nofile=1000:4000"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    let low = run(&["--pid", &pid, "--at-least", "nofile=2000"]);
    assert_eq!(low.code, 2, "{}", low.stdout);
    assert!(
        low.line1()
            .contains("nofile soft 1024 < 2000 expected (--at-least nofile=2000)"),
        "{}",
        low.stdout
    );
}

#[test]
fn like_pid_compares_with_another_process() {
    let reference = holder(1024, 4096);
    let same = holder(1024, 4096);
    let other = holder(2048, 4096);
    let ok = run(&[
        "--pid",
        &same.pid().to_string(),
        "--like-pid",
        &reference.pid().to_string(),
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    let bad = run(&[
        "--pid",
        &other.pid().to_string(),
        "--like-pid",
        &reference.pid().to_string(),
    ]);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.line1().contains(&format!(
            "nofile soft 2048 > 1024 expected (like sleep[{}] nofile 1024:4096)",
            reference.pid()
        )),
        "{}",
        bad.stdout
    );
    let lower = run(&[
        "--pid",
        &reference.pid().to_string(),
        "--like-pid",
        &other.pid().to_string(),
    ]);
    assert_eq!(lower.code, 2, "{}", lower.stdout);
    let gone = run(&["--pid", &same.pid().to_string(), "--like-pid", "999999999"]);
    assert_eq!(gone.code, 3, "{}", gone.stdout);
    assert!(
        gone.line1()
            .contains("--like-pid 999999999: no process with pid 999999999"),
        "{}",
        gone.stdout
    );
}

#[test]
fn parent_that_exited_is_reported() {
    // The shell backgrounds the service in a new session and exits, as a start program does.
    let mut starter = Tree::start("start.sh", "sleep 600 &", (1024, 4096), true);
    starter.child.wait().expect("starter exits");
    let service = starter.sleeper();
    let o = run(&[
        "--pid",
        &service.to_string(),
        "--at-least",
        "nofile=2048:4096",
    ]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(", its starting parent exited"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "the process that started it has exited (session leader {} is gone)",
            starter.pid()
        )),
        "{}",
        o.stdout
    );
}

/// A fake `systemctl` printing `text`.
fn fake_systemctl(dir: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("systemctl");
    std::fs::write(&path, format!("#!/bin/sh\nprintf '{text}'\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn systemd_unit_limits_are_exact() {
    let h = holder(1024, 4096);
    let pid = h.pid().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = fake_systemctl(
        dir.path(),
        "LimitNOFILE=4096\\nLimitNOFILESoft=1024\\nLoadState=loaded\\n",
    );
    let ok = run_systemctl(&fake, &["--pid", &pid, "--systemd=app.service"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert!(
        ok.line1().contains("as expected (unit app.service)"),
        "{}",
        ok.stdout
    );

    let dir2 = tempfile::tempdir().expect("temp dir");
    let fake = fake_systemctl(
        dir2.path(),
        "LimitNOFILE=524288\\nLimitNOFILESoft=1024\\nLoadState=loaded\\n",
    );
    let low = run_systemctl(&fake, &["--pid", &pid, "--systemd=app"]);
    assert_eq!(low.code, 2, "{}", low.stdout);
    assert!(
        low.line1()
            .contains("nofile hard 4096 < 524288 expected (unit app.service LimitNOFILE=524288)"),
        "{}",
        low.stdout
    );

    let missing = run_systemctl(
        Path::new("/nonexistent/systemctl"),
        &["--pid", &pid, "--systemd=app"],
    );
    assert_eq!(missing.code, 3, "{}", missing.stdout);
    assert!(
        missing
            .line1()
            .contains("not found (systemd is not installed"),
        "{}",
        missing.stdout
    );

    let dir3 = tempfile::tempdir().expect("temp dir");
    let fake = fake_systemctl(
        dir3.path(),
        "LimitNOFILE=infinity\\nLimitNOFILESoft=infinity\\nLoadState=not-found\\n",
    );
    let unknown_unit = run_systemctl(&fake, &["--pid", &pid, "--systemd=nope"]);
    assert_eq!(unknown_unit.code, 3, "{}", unknown_unit.stdout);
    assert!(
        unknown_unit.line1().contains("unit nope.service not found"),
        "{}",
        unknown_unit.stdout
    );
}

#[test]
fn expectations_the_kernel_cannot_grant_warn() {
    let h = holder(1024, 4096);
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .expect("nr_open")
        .trim()
        .parse()
        .expect("number");
    let conf = limits_dir(&format!("* hard nofile {}\n", nr_open + 1), &[]);
    let o = run(&[
        "--pid",
        &h.pid().to_string(),
        "--limits-conf",
        s(conf.path()),
        "--pam-flavor",
        "upstream",
    ]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!(
            "[WARNING] limits.conf:1 \"* hard nofile {}\" asks for nofile hard {} > fs.nr_open {nr_open}: the kernel cannot grant it",
            nr_open + 1,
            nr_open + 1
        )),
        "{}",
        o.stdout
    );
}

#[test]
fn config_file_services() {
    let h = holder(1024, 4096);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("services.yaml");
    std::fs::write(
        &path,
        format!(
            "services:\n  - name: app\n    select: {{pid: {}}}\n    expect: {{nofile: \"1024:4096\"}}\n  - name: strict\n    select: {{pid: {}}}\n    at_least: {{nofile: 65536}}\n",
            h.pid(),
            h.pid()
        ),
    )
    .expect("write");
    let one = run(&["--config", s(&path), "--service", "app"]);
    assert_eq!(one.code, 0, "{}", one.stdout);
    assert!(one.perf("app_nofile_soft").is_some(), "{}", one.stdout);
    let all = run(&["--config", s(&path)]);
    assert_eq!(all.code, 2, "{}", all.stdout);
    assert!(
        all.line1().contains(
            "nofile soft 1024 < 65536 expected (services.yaml strict at_least nofile=65536:65536)"
        ),
        "{}",
        all.stdout
    );
    let none = run(&["--config", s(&path), "--service", "nope"]);
    assert_eq!(none.code, 3, "{}", none.stdout);
    assert!(
        none.line1().contains("services: app, strict"),
        "{}",
        none.stdout
    );
}

#[test]
fn like_pidfile_naming_the_selected_process_itself() {
    // Two instances under a unique executable name: the "master" writes the pidfile.
    let name = format!("rlself-{}", std::process::id());
    let spec = HolderSpec {
        nofile: (1024, 4096),
        exe_name: Some(name.clone()),
        ..HolderSpec::default()
    };
    let master = Holder::start(&spec);
    let worker = Holder::start(&HolderSpec {
        nofile: (2048, 4096),
        ..spec
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("master.pid");
    std::fs::write(&pidfile, format!("{}\n", master.pid())).expect("write");

    // The selected process is the reference: nothing to compare, a usage mistake.
    let o = run(&["--pidfile", s(&pidfile), "--like-pidfile", s(&pidfile)]);
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(
        !o.stdout.contains("(+1 more)") && !o.stdout.contains("no expectation"),
        "the one reason, not a second 'no expectation': {}",
        o.stdout
    );
    assert!(
        o.line1().starts_with(&format!(
            "RLIMIT UNKNOWN - {name}[{}]: --like-pidfile {} names the selected process itself: nothing to compare it with (give another instance's pid or pidfile)",
            master.pid(),
            s(&pidfile)
        )),
        "{}",
        o.stdout
    );
    let o = run(&[
        "--pid",
        &master.pid().to_string(),
        "--like-pid",
        &master.pid().to_string(),
    ]);
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(o.line1().contains("--like-pid "), "{}", o.stdout);

    // Among several (workers by name, the master by pidfile): the master is skipped, the
    // worker compared with it.
    let o = run(&["--name", &name, "--like-pidfile", s(&pidfile), "-v"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.line1().starts_with(&format!(
            "RLIMIT WARNING - {name}[{}] nofile soft 2048 > 1024 expected (like {name}[{}] nofile 1024:4096)",
            worker.pid(),
            master.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "[OK] {name}[{}] is the --like-pidfile {} reference: not compared with itself",
            master.pid(),
            s(&pidfile)
        )),
        "{}",
        o.stdout
    );
    assert!(
        !o.stdout
            .contains(&format!("{name}[{}] nofile soft", master.pid())),
        "the master is not compared with itself: {}",
        o.stdout
    );
}
