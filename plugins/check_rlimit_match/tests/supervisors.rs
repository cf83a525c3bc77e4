//! Provenance under real supervisors (Debian packages monit, supervisor and nodejs, which
//! `tests/run` installs): a Node.js service that raised its own soft limit, a service Monit's
//! start program backgrounded (reparented, found again through its environment and the live
//! monit's control file), the same checked as a user who cannot read its environment, and
//! supervisord named by its script with the minfds fix. Each test uses its own temporary
//! directory for control, pid and state files; everything started is killed on drop.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procguard_common::testing::{run_command, run_plugin, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_check_rlimit_match");

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

fn required(names: &[&str], package: &str) -> PathBuf {
    find(names).unwrap_or_else(|| {
        panic!(
            "{} not found: install the Debian package {package} (tests/run does)",
            names[0]
        )
    })
}

/// A supervisor process started with lowered limits; it and what it started are killed
/// on drop.
struct Supervisor {
    child: Child,
    dir: PathBuf,
}

impl Supervisor {
    fn start(mut cmd: Command, nofile: (u64, u64), dir: &Path) -> Supervisor {
        let (soft, hard) = nofile;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid and setrlimit only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                let rl = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, std::ptr::from_ref(&rl)) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Supervisor {
            child: cmd.spawn().expect("start the supervisor"),
            dir: dir.to_path_buf(),
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits in i32")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // The service (possibly reparented away from the supervisor) wrote its pidfile.
        let service = pid_in(&self.dir.join("svc.pid"));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = service {
            // SAFETY: kill on the service this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn pid_in(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split(' ').map(str::to_string).collect())
}

fn ppid_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn nofile_of(pid: i32) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let row = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = row["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().ok());
    Some((f.next()??, f.next()??))
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Monit control file for one service, with this test's own pid, id, state and log files.
fn monitrc(dir: &Path, service: &str, start: &str) -> PathBuf {
    let d = dir.display();
    let rc = dir.join("monitrc");
    std::fs::write(
        &rc,
        format!(
            "set daemon 1\nset logfile {d}/monit.log\nset pidfile {d}/monit.pid\nset idfile {d}/monit.id\nset statefile {d}/monit.state\n\ncheck process {service} with pidfile {d}/svc.pid\n    start program = \"/bin/sh -c '{start}'\" with timeout 20 seconds\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    rc
}

fn monit(rc: &Path, nofile: (u64, u64), dir: &Path) -> Supervisor {
    let bin = required(&["/usr/bin/monit", "/usr/local/bin/monit"], "monit");
    let mut cmd = Command::new(bin);
    cmd.args(["-I", "-c"]).arg(rc);
    Supervisor::start(cmd, nofile, dir)
}

fn check(pid: i32, extra: &[&str]) -> Outcome {
    let pid = pid.to_string();
    let mut args = vec!["--pid", pid.as_str(), "--at-least", "nofile=65536", "-v"];
    args.extend(extra);
    run_plugin(BIN, &args)
}

#[test]
fn node_raises_its_soft_limit_the_hard_one_binds() {
    let Some(node) = find(&["/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"]) else {
        eprintln!("SKIPPED node_raises_its_soft_limit_the_hard_one_binds: no node or nodejs binary (the Debian package nodejs; tests/run installs it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let script = dir.join("server.js");
    std::fs::write(
        &script,
        format!(
            "require('fs').writeFileSync('{}/svc.pid', String(process.pid)); setInterval(() => {{}}, 1000);\n",
            dir.display()
        ),
    )
    .unwrap();
    let rc = monitrc(
        dir,
        "pg-node",
        &format!("exec {} {}", node.display(), script.display()),
    );
    let m = monit(&rc, (1024, 4096), dir);
    let svc = wait_for("node to start under monit", || {
        pid_in(&dir.join("svc.pid")).filter(|p| nofile_of(*p) == Some((4096, 4096)))
    });
    assert_eq!(ppid_of(svc), Some(m.pid()), "node is monit's child");
    let o = check(svc, &[]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(&format!(
            "nofile soft 4096 < 65536 expected (--at-least nofile=65536), hard limit inherited from monit[{}] (nofile 1024:4096); the process raised its soft limit to it",
            m.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("the process raised its own soft limit to its hard limit at start (as Node.js and Go do), so the inherited hard limit 4096 is what binds"),
        "{}",
        o.stdout
    );
    let fix = o
        .stdout
        .lines()
        .find(|l| l.starts_with("fix"))
        .unwrap_or_else(|| panic!("a fix line: {}", o.stdout));
    assert!(
        fix.starts_with(&format!(
            "fix (monit): start program = \"/bin/sh -c 'ulimit -Hn 65536; ...'\" in 'check process pg-node' of {}",
            rc.display()
        )),
        "{fix}"
    );
    assert!(
        fix.contains("the process raises its soft limit to it"),
        "{fix}"
    );
    assert!(
        fix.contains("raising a hard limit needs root or CAP_SYS_RESOURCE"),
        "{fix}"
    );
    assert!(!fix.contains("4096"), "never the value it has: {fix}");
    println!("{}", o.stdout);
}

#[test]
fn service_daemonized_by_monit_is_traced_to_the_live_monit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = required(&["/usr/bin/sleep", "/bin/sleep"], "coreutils");
    let start = format!(
        "{} 600 >/dev/null 2>&1 & echo $! > {}/svc.pid",
        sleep.display(),
        dir.display()
    );
    let rc = monitrc(dir, "pg-daemon", &start);
    let m = monit(&rc, (1024, 1024), dir);
    // Reparented: the start program's shell (its session leader) has exited.
    let svc = wait_for("the backgrounded service to be reparented", || {
        let pid = pid_in(&dir.join("svc.pid"))?;
        let session: i32 = stat_fields(pid)?.get(3)?.parse().ok()?;
        (session != pid && !Path::new(&format!("/proc/{session}")).exists()).then_some(pid)
    });
    assert_ne!(ppid_of(svc), Some(m.pid()));
    let ppid = ppid_of(svc).unwrap();
    assert_eq!(nofile_of(svc), Some((1024, 1024)), "inherited from Monit");
    let o = check(svc, &[]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(&format!(
            "nofile soft 1024 < 65536 expected (--at-least nofile=65536), started by monit[{}] (service 'pg-daemon', nofile 1024:1024), then reparented",
            m.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "the process that started it has exited (session leader {} is gone); it was reparented to ",
            stat_fields(svc).unwrap()[3]
        )) && o.stdout.contains(&format!("[{ppid}];")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "monit[{}] started it (service 'pg-daemon'): MONIT_SERVICE=pg-daemon, MONIT_EVENT=Started in its environment; {} has 'check process pg-daemon' with its pidfile; monit[{}] has nofile 1024:1024, the same: inherited from it",
            m.pid(),
            rc.display(),
            m.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "fix (monit): start program = \"/bin/sh -c 'ulimit -Hn 65536; ulimit -Sn 65536; ...'\" in 'check process pg-daemon' of {}",
            rc.display()
        )),
        "{}",
        o.stdout
    );
    println!("{}", o.stdout);

    // As a user who cannot read the service's environment: said, with what would reveal it.
    let setpriv = required(&["/usr/bin/setpriv", "/bin/setpriv"], "util-linux");
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args([
            "--pid",
            &svc.to_string(),
            "--at-least",
            "nofile=65536",
            "-v",
        ])
        .env_clear()
        .env("LC_ALL", "C");
    let o = run_command(&mut cmd);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!(
            "who started it is not known: its environment (/proc/{svc}/environ) is not readable by uid 65534: run the check as root or as the service's user to see who started it"
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.line1().contains(", its starting parent exited"),
        "{}",
        o.stdout
    );
    println!("{}", o.stdout);
}

#[test]
fn supervisord_is_named_and_minfds_is_the_fix() {
    let bin = required(&["/usr/bin/supervisord"], "supervisor");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.display();
    let conf = dir.join("supervisord.conf");
    let sleep = required(&["/usr/bin/sleep", "/bin/sleep"], "coreutils");
    std::fs::write(
        &conf,
        format!(
            "[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}\nminfds=1024\n\n[program:pg-app]\ncommand={} 600\n",
            sleep.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(&conf);
    let sv = Supervisor::start(cmd, (1024, 2048), dir);
    let app = wait_for("supervisord's program", || {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", sv.pid())).ok()?;
        children.split_whitespace().next()?.parse::<i32>().ok()
    });
    std::fs::write(dir.join("svc.pid"), app.to_string()).unwrap();
    let o = check(app, &[]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.line1().contains(&format!(
            "inherited from supervisord[{}] (nofile 1024:2048)",
            sv.pid()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "fix (supervisord): minfds=65536 in [supervisord] of {}, then restart supervisord (its children",
            conf.display()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("; the hard limit where it starts: LimitNOFILE=65536 in its unit; raising a hard limit needs root or CAP_SYS_RESOURCE; now: prlimit"),
        "{}",
        o.stdout
    );
    println!("{}", o.stdout);
    // The same expectation from another source gets the same advice, word for word.
    let fix_of = |o: &Outcome| {
        o.stdout
            .lines()
            .find(|l| l.starts_with("fix"))
            .unwrap_or_default()
            .to_string()
    };
    let conf = dir.join("limits.conf");
    std::fs::write(&conf, "* soft nofile 65536\n* hard nofile 65536\n").unwrap();
    let app_s = app.to_string();
    for other in [
        vec!["--expect", "nofile=65536:65536"],
        vec![
            "--limits-conf",
            conf.to_str().unwrap(),
            "--pam-flavor",
            "upstream",
        ],
    ] {
        let mut args = vec!["--pid", app_s.as_str(), "-v"];
        args.extend(other);
        let same = run_plugin(BIN, &args);
        assert_eq!(same.code, 2, "{}", same.stdout);
        assert_eq!(fix_of(&same), fix_of(&o), "{}", same.stdout);
    }
}

/// A fake /proc (the common crate's fixtures: a real `stat` line, `limits` table and the
/// environment Monit 5.33 gave a service) where the daemonized service's environment is
/// readable by root only, checked as uid 65534: the plugin says it cannot tell who started
/// the service, and why; as root it names Monit.
#[test]
fn unreadable_environment_in_a_fixture_tree_is_said() {
    use std::os::unix::fs::PermissionsExt as _;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../common/tests/fixtures/proc");
    let stat = std::fs::read_to_string(
        fixtures.join("provenance/stat-daemonized-under-monit-linux-6.18.txt"),
    )
    .unwrap();
    let limits = std::fs::read_to_string(fixtures.join("limits/lowered-nofile-linux-6.18.txt"))
        .unwrap()
        .replace(
            "Max open files            1024                 4096 ",
            "Max open files            1024                 1024 ",
        );
    let environ = std::fs::read(fixtures.join("provenance/environ-monit-5.33.txt")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let add = |pid: &str, stat: &str, cmdline: &str| {
        let d = root.join(pid);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("stat"), stat).unwrap();
        std::fs::write(d.join("limits"), &limits).unwrap();
        std::fs::write(d.join("cmdline"), cmdline).unwrap();
        std::fs::write(d.join("cgroup"), "0::/\n").unwrap();
        d
    };
    add(
        "1",
        "1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 10 1 1 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
        "/sbin/init\0",
    );
    let svc = add("26010", &stat, "sleep\x00600\x00");
    std::fs::write(svc.join("environ"), &environ).unwrap();
    std::fs::set_permissions(svc.join("environ"), std::fs::Permissions::from_mode(0o400)).unwrap();
    let args = [
        "--proc-root",
        root.to_str().unwrap(),
        "--pid",
        "26010",
        "--at-least",
        "nofile=4096",
        "-v",
    ];
    let setpriv = required(&["/usr/bin/setpriv", "/bin/setpriv"], "util-linux");
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(args)
        .env_clear()
        .env("LC_ALL", "C");
    let o = run_command(&mut cmd);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!(
            "who started it is not known: its environment ({}/26010/environ) is not readable by uid 65534: run the check as root or as the service's user to see who started it",
            root.display()
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("fix: raise the hard limit in whatever starts it ('ulimit -Hn 4096; ulimit -Sn 4096' in its start command)"),
        "{}",
        o.stdout
    );
    // As root: Monit, by its environment (no monit runs in this tree to compare with).
    let o = run_plugin(BIN, args);
    assert!(
        o.line1()
            .contains("started by monit (service 'capsvc'), then reparented"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("no monit is running now"), "{}", o.stdout);
}
