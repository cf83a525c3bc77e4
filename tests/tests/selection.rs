//! Process selection and names, held for every plugin binary against real processes
//! (docs/contract.md §7): root and the `nagios` user see the same names, verdicts and
//! labels; `--name` globs and retitled command lines; zombies; kernel threads; pidfile
//! symlinks; `--container` over cgroup v1 and v2 with a PID namespace; `--proc-root`.
//!
//! These tests need root (to run root-owned services, make cgroups and namespaces, and
//! switch to `nagios` with setpriv); run as another user they return early, saying so.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procguard_common::testing::{run_command, Outcome};
use procguard_contract_tests::{output_name, plugin_names, plugin_path};

/// The Python program every test service runs: listen on 127.0.0.1 (port 0), write the
/// port to the file in argv[1], sleep.
const LISTENER: &str = "import socket,sys,time\n\
s=socket.socket()\n\
s.bind(('127.0.0.1',0))\n\
s.listen(16)\n\
open(sys.argv[1]+'.tmp','w').write(str(s.getsockname()[1]))\n\
__import__('os').rename(sys.argv[1]+'.tmp',sys.argv[1])\n\
time.sleep(600)\n";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Root, with a `nagios` user (created if absent, as NRPE's package would).
fn setup() -> bool {
    if !is_root() {
        eprintln!("selection tests need root; skipped");
        return false;
    }
    let exists = Command::new("id")
        .arg("nagios")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "nagios",
            ])
            .status()
            .unwrap();
        assert!(made.success() || Command::new("id").arg("nagios").status().unwrap().success());
    }
    true
}

fn python() -> PathBuf {
    ["/usr/bin/python3", "/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("python3")
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A root-owned test service: a Python listener started through a symlink named `name`
/// (so the kernel's comm is `name` while `/proc/PID/exe`, readable only by root, says
/// python3.x), with argv[0] set to `title` when given. Killed on drop.
struct Service {
    child: Child,
    pid: i32,
    port: u16,
    dir: tempfile::TempDir,
}

impl Service {
    fn start(name: &str, title: Option<&str>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join(name);
        std::os::unix::fs::symlink(python(), &exe).unwrap();
        fs::write(dir.path().join("listen.py"), LISTENER).unwrap();
        let mut cmd = Command::new(&exe);
        if let Some(t) = title {
            cmd.arg0(t);
        }
        cmd.arg(dir.path().join("listen.py"))
            .arg(dir.path().join("port"));
        Service::spawn(cmd, dir, |pid| pid)
    }

    /// Runs `cmd` (its output dropped), waits for the port file; `pid_of` maps the child's
    /// pid to the service's (for a service that runs under `unshare -f`).
    fn spawn(mut cmd: Command, dir: tempfile::TempDir, pid_of: impl Fn(i32) -> i32) -> Service {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let portfile = dir.path().join("port");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !portfile.exists() {
            assert!(Instant::now() < deadline, "service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let port = fs::read_to_string(&portfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pid = pid_of(i32::try_from(child.id()).unwrap());
        Service {
            child,
            pid,
            port,
            dir,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is this test's service.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each plugin with the arguments it needs for a real check of the selected process.
fn plugins(port: u16) -> Vec<(String, String, Vec<String>)> {
    plugin_names()
        .into_iter()
        .map(|name| {
            let extra: Vec<String> = match name.as_str() {
                "check_rlimit_match" => vec!["--at-least".into(), "nofile=1024".into()],
                "check_http_backlog" => vec!["--port".into(), port.to_string()],
                _ => Vec::new(),
            };
            let path = plugin_path(&name).to_string_lossy().into_owned();
            (name, path, extra)
        })
        .collect()
}

/// Runs a plugin as `user` (root, or nagios through setpriv as NRPE's sudo-less setup
/// would) with a state directory of that user's own.
fn run_as(user: &str, bin: &str, args: &[String], state: &Path) -> Outcome {
    let mut cmd = if user == "root" {
        Command::new(bin)
    } else {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", user, "--regid", user, "--clear-groups", bin]);
        c
    };
    cmd.args(args)
        .env_clear()
        .env("LC_ALL", "C")
        .env("PROCGUARD_STATE_DIR", state);
    run_command(&mut cmd)
}

/// A state directory owned by `user`, mode 0700.
fn state_dir(user: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let uid = uid_of(user);
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
    dir
}

/// The perfdata labels of line 1.
fn labels(o: &Outcome) -> Vec<String> {
    o.line1()
        .split_once(" | ")
        .map(|(_, perf)| {
            perf.split(' ')
                .filter_map(|i| {
                    i.strip_prefix('\'')?
                        .split_once('\'')
                        .map(|(l, _)| l.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn args(list: &[&str], extra: &[String]) -> Vec<String> {
    list.iter()
        .map(ToString::to_string)
        .chain(extra.iter().cloned())
        .collect()
}

/// Compares a root run with a nagios run: the same verdict, names and labels. Where the
/// plugin needs what only root may read (another user's fd table), nagios must say so
/// (UNKNOWN, "permission denied" with the fix), never "not running".
fn assert_same_for_nagios(name: &str, root: &Outcome, nagios: &Outcome, who: &str) {
    // check_http_backlog names the listener on line 1, not its owner.
    let named = name != "check_http_backlog";
    assert!(
        !named || root.line1().contains(who),
        "{name} root: {root:?}"
    );
    assert!(
        !nagios.stdout.contains("no process matches"),
        "{name}: {nagios:?}"
    );
    assert!(!nagios.stdout.contains("not running"), "{name}: {nagios:?}");
    if nagios.code == 3 && nagios.stdout.contains("permission denied") {
        return;
    }
    assert_eq!(root.code, nagios.code, "{name}: {root:?} vs {nagios:?}");
    assert!(
        !named || nagios.line1().contains(who),
        "{name} nagios: {nagios:?}"
    );
    let service_labels = |o: &Outcome| -> Vec<String> {
        labels(o)
            .into_iter()
            .filter(|l| !l.starts_with("listen_"))
            .collect()
    };
    assert_eq!(service_labels(root), service_labels(nagios), "{name}");
    if name == "check_fd_usage" || name == "check_rlimit_match" {
        assert_eq!(root.line1(), nagios.line1(), "{name}");
    }
}

/// nginx/php-fpm style: comm `pgfN8.2`, argv retitled `pgfN: master process (/etc/...)`.
#[test]
fn a_retitled_root_service_is_the_same_for_nagios() {
    if !setup() {
        return;
    }
    let stem = format!("pgf{}", std::process::id() % 100_000);
    let exe = format!("{stem}8.2");
    let title = format!("{stem}: master process (/etc/{stem}/{stem}.conf)");
    let svc = Service::start(&exe, Some(&title));
    let who = format!("{exe}[{}]", svc.pid);
    let (root_state, nagios_state) = (state_dir("root"), state_dir("nagios"));
    for (name, bin, extra) in plugins(svc.port) {
        // The retitled first word, and a glob over the executable's name.
        for selector in [stem.clone(), format!("{stem}*")] {
            let a = args(&["--name", &selector], &extra);
            let root = run_as("root", &bin, &a, root_state.path());
            let nagios = run_as("nagios", &bin, &a, nagios_state.path());
            assert_same_for_nagios(&name, &root, &nagios, &who);
            if name != "check_http_backlog" {
                let stem_label = format!("{stem}_");
                assert!(
                    labels(&root)
                        .iter()
                        .all(|l| l.starts_with(&stem_label) || !l.contains(&stem)),
                    "{name}: labels come from the selector: {root:?}"
                );
            }
        }
    }
}

/// supervisord style: a `#!/usr/bin/python3` script. comm is the script's name, argv[0] the
/// interpreter, exe (root only) python3.x: the name and the labels are the script's for both.
#[test]
fn an_interpreter_run_script_has_one_name_and_label() {
    if !setup() {
        return;
    }
    let script = format!("pgs{}", std::process::id() % 100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&script);
    fs::write(&path, format!("#!{}\n{LISTENER}", python().display())).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&path);
    cmd.arg(dir.path().join("port"));
    let svc = Service::spawn(cmd, dir, |pid| pid);
    let who = format!("{script}[{}]", svc.pid);
    let (root_state, nagios_state) = (state_dir("root"), state_dir("nagios"));
    for (name, bin, extra) in plugins(svc.port) {
        // --cmdline gives no label stem: the process's own name is the label.
        let a = args(&["--cmdline", &format!("/{script} ")], &extra);
        let root = run_as("root", &bin, &a, root_state.path());
        let nagios = run_as("nagios", &bin, &a, nagios_state.path());
        assert_same_for_nagios(&name, &root, &nagios, &who);
        // (check_restart_churn's labels are not per process; check_http_backlog's are the port's)
        assert!(
            name == "check_restart_churn"
                || name == "check_http_backlog"
                || labels(&root)
                    .iter()
                    .any(|l| l.starts_with(&format!("{script}_"))),
            "{name}: {root:?}"
        );
        // Both the script and the interpreter select it (check_http_backlog, which
        // names the listener, as root: nagios may not read a root process's sockets).
        for n in [script.as_str(), "python3*"] {
            let a = args(&["--name", n, "--pid", &svc.pid.to_string()], &extra);
            if name == "check_http_backlog" {
                let o = run_as("root", &bin, &a, root_state.path());
                assert_eq!(o.code, 0, "{name} --name {n}: {o:?}");
                continue;
            }
            let o = run_as("nagios", &bin, &a, nagios_state.path());
            assert!(o.line1().contains(&who), "{name} --name {n}: {o:?}");
        }
    }
}

#[test]
fn a_zombie_is_critical_not_running() {
    if !setup() {
        return;
    }
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&stat).unwrap().contains(") Z ") {
        assert!(Instant::now() < deadline, "no zombie");
        std::thread::sleep(Duration::from_millis(10));
    }
    let state = state_dir("root");
    for (name, bin, extra) in plugins(1) {
        let extra: Vec<String> = extra
            .into_iter()
            .filter(|_| name != "check_http_backlog")
            .collect();
        let o = run_as(
            "root",
            &bin,
            &args(&["--pid", &pid.to_string()], &extra),
            state.path(),
        );
        assert_eq!(o.code, 2, "{name}: {o:?}");
        assert!(
            o.line1().starts_with(&format!(
                "{} CRITICAL - not running: pid {pid} is a zombie",
                output_name(&name)
            )),
            "{name}: {o:?}"
        );
    }
    child.wait().unwrap();
}

/// As nagios, a bare `check_fd_usage` counted every kernel thread as "unreadable".
#[test]
fn kernel_threads_are_not_counted() {
    if !setup() {
        return;
    }
    let state = state_dir("nagios");
    let bin = plugin_path("check_fd_usage").to_string_lossy().into_owned();
    let o = run_as("nagios", &bin, &["-v".to_string()], state.path());
    let unreadable: u32 = o
        .line1()
        .split("'unreadable'=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no unreadable figure: {o:?}"));
    // Kernel threads on any host number dozens; a few user processes may exit mid-scan.
    assert!(unreadable < 5, "{o:?}");
    assert!(!o.stdout.contains("kthreadd"), "{o:?}");
}

#[test]
fn a_pidfile_symlink_is_followed_only_when_root_owns_it() {
    if !setup() {
        return;
    }
    let svc = Service::start(&format!("pgp{}", std::process::id() % 100_000), None);
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.pid");
    fs::write(&real, format!("{}\n", svc.pid)).unwrap();
    let link = dir.path().join("link.pid");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let state = state_dir("root");
    let link_arg = link.to_string_lossy().into_owned();
    for (name, bin, extra) in plugins(svc.port) {
        let a = args(&["--pidfile", &link_arg], &extra);
        let o = run_as("root", &bin, &a, state.path());
        assert!(
            o.line1().contains(&format!("[{}]", svc.pid)) || name == "check_http_backlog",
            "{name}: {o:?}"
        );
        assert_ne!(o.code, 3, "{name}: {o:?}");
    }
    let nagios = uid_of("nagios");
    std::os::unix::fs::lchown(&link, Some(nagios), Some(nagios)).unwrap();
    for (name, bin, extra) in plugins(svc.port) {
        let o = run_as(
            "root",
            &bin,
            &args(&["--pidfile", &link_arg], &extra),
            state.path(),
        );
        assert_eq!(o.code, 3, "{name}: {o:?}");
        assert!(
            o.line1().contains(&format!(
                "it is a symbolic link owned by uid {nagios}, not root"
            )),
            "{name}: {o:?}"
        );
    }
}

/// A cgroup directory made for a test, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    /// `leaf` under the cgroup v2 mount, or under the v1 `pids` hierarchy.
    fn make(v2: bool, leaf: &str) -> Option<Cgroup> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let base = mountinfo.lines().find_map(|l| {
            let mnt = l.split(' ').nth(4)?;
            let (_, rest) = l.split_once(" - ")?;
            let fstype = rest.split(' ').next()?;
            let ok = if v2 {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && rest.split([' ', ',']).any(|o| o == "pids")
            };
            ok.then(|| PathBuf::from(mnt))
        })?;
        let path = base.join(leaf);
        fs::create_dir_all(&path).ok()?;
        Some(Cgroup(path))
    }

    fn add(&self, pid: i32) {
        fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(&self.0).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(parent) = self.0.parent() {
            let _ = fs::remove_dir(parent); // the runtime-style parent, if it is now empty
        }
    }
}

/// A 64-hex-digit container id unique to this test run.
fn container_id(salt: u64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        t,
        std::process::id(),
        salt,
        u64::from(t) ^ salt
    )
}

/// The listener as PID 1 of its own PID namespace (`unshare -p -f --mount-proc`), the way
/// a container runs its service; returns the service (host pid) once it listens.
fn service_in_pid_namespace(name: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join(name);
    std::os::unix::fs::symlink(python(), &exe).unwrap();
    fs::write(dir.path().join("listen.py"), LISTENER).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(&exe)
        .arg(dir.path().join("listen.py"))
        .arg(dir.path().join("port"));
    Service::spawn(cmd, dir, |unshare| {
        let children =
            fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    })
}

/// Docker's systemd-driver scope on cgroup v2 and its cgroupfs layout on v1 (where
/// mounted): `--container <12 hex>` selects the service; a pidfile holding `1` (the PID as
/// the container sees it) resolves to the host PID; labels are the short id.
#[test]
fn containers_by_short_id_in_their_own_pid_namespace() {
    if !setup() {
        return;
    }
    let mut layouts = 0;
    for (salt, v2) in [(1u64, true), (2, false)] {
        let id = container_id(salt);
        let leaf = if v2 {
            format!("procguard-test.slice/docker-{id}.scope")
        } else {
            format!("docker/{id}")
        };
        let Some(cgroup) = Cgroup::make(v2, &leaf) else {
            continue;
        };
        layouts += 1;
        let name = format!("pgc{}", std::process::id() % 100_000);
        let svc = service_in_pid_namespace(&name);
        cgroup.add(svc.pid);
        let pidfile = svc.dir.path().join("inner.pid");
        fs::write(&pidfile, "1\n").unwrap();
        let short = &id[..12];
        let state = state_dir("root");
        let who = format!("{name}[{}, pid 1 in container]", svc.pid);
        for (plugin, bin, extra) in plugins(svc.port) {
            let extra: Vec<String> = extra
                .into_iter()
                .filter(|_| plugin != "check_http_backlog")
                .collect();
            for sel in [
                vec!["--container", short],
                vec!["--container", short, "--pidfile", pidfile.to_str().unwrap()],
            ] {
                let o = run_as("root", &bin, &args(&sel, &extra), state.path());
                assert_eq!(o.code, 0, "{plugin} {sel:?}: {o:?}");
                match plugin.as_str() {
                    "check_http_backlog" => {}
                    // Its instances keep name[pid] as first seen; the host pid is there.
                    "check_restart_churn" => assert!(
                        o.stdout.contains(&format!("{name}[{}", svc.pid)),
                        "{plugin} {sel:?}: {o:?}"
                    ),
                    _ => assert!(o.stdout.contains(&who), "{plugin} {sel:?}: {o:?}"),
                }
                if plugin != "check_restart_churn" {
                    assert!(
                        labels(&o).iter().any(|l| l.starts_with(short)),
                        "{plugin} {sel:?}: {o:?}"
                    );
                }
            }
            let none = run_as(
                "root",
                &bin,
                &args(&["--container", "0000deadbeef0000"], &extra),
                state.path(),
            );
            assert_eq!(none.code, 2, "{plugin}: {none:?}");
            assert!(
                none.line1()
                    .contains("no process matches --container 0000deadbeef0000"),
                "{none:?}"
            );
        }
        drop(svc);
    }
    assert!(layouts > 0, "no writable cgroup hierarchy");
}

/// `--proc-root` on the host's procfs mounted elsewhere (in a mount namespace) gives the
/// same answer as /proc; a plain directory is UNKNOWN naming it.
#[test]
fn proc_root_must_be_a_procfs() {
    if !setup() {
        return;
    }
    let svc = Service::start(&format!("pgr{}", std::process::id() % 100_000), None);
    let mnt = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    fs::write(plain.path().join("README"), "not a procfs\n").unwrap();
    let state = state_dir("root");
    for (name, bin, extra) in plugins(svc.port) {
        let extra: Vec<String> = extra
            .into_iter()
            .filter(|_| name != "check_http_backlog")
            .collect();
        let pid = svc.pid.to_string();
        let direct = run_as("root", &bin, &args(&["--pid", &pid], &extra), state.path());
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "sh",
            "-c",
            "mount -t proc proc \"$1\" && shift && exec \"$@\"",
            "sh",
        ])
        .arg(mnt.path())
        .arg(&bin)
        .args(["--proc-root", mnt.path().to_str().unwrap(), "--pid", &pid])
        .args(&extra)
        .env_clear()
        .env("LC_ALL", "C")
        .env("PROCGUARD_STATE_DIR", state.path());
        let mounted = run_command(&mut cmd);
        assert_eq!(
            mounted.code, direct.code,
            "{name}: {mounted:?} vs {direct:?}"
        );
        assert!(
            name == "check_http_backlog" || mounted.line1().contains(&format!("[{pid}]")),
            "{name}: {mounted:?}"
        );
        assert_eq!(labels(&mounted), labels(&direct), "{name}");
        let a = args(
            &["--proc-root", plain.path().to_str().unwrap(), "--pid", &pid],
            &extra,
        );
        let o = run_as("root", &bin, &a, state.path());
        assert_eq!(o.code, 3, "{name}: {o:?}");
        assert_eq!(
            o.line1(),
            format!(
                "{} UNKNOWN - --proc-root {} is not a procfs; give the host's /proc mounted there (e.g. -v /proc:{}:ro)",
                output_name(&name),
                plain.path().display(),
                plain.path().display()
            )
        );
    }
}

/// A procfs mounted with `hidepid` hides root's processes from nagios: that is UNKNOWN
/// saying so, never "no process matches" — with `invisible` (no directories) for a
/// `--pid`, and with `noaccess` (directories, unreadable files) for a `--name` scan, in one
/// finding for all the unreadable processes.
#[test]
fn hidepid_is_unknown_for_those_it_hides_from() {
    if !setup() {
        return;
    }
    let name = format!("pgh{}", std::process::id() % 100_000);
    let svc = Service::start(&name, None);
    let mnt = tempfile::tempdir().unwrap();
    fs::set_permissions(
        mnt.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let shown = mnt.path().display();
    let bin = plugin_path("check_fd_usage").to_string_lossy().into_owned();
    let pid = svc.pid.to_string();
    let cases = [
        (
            "invisible",
            ["--pid", pid.as_str()],
            format!("UNKNOWN - no process with pid {pid} among the processes this user can see: {shown} is mounted with hidepid"),
        ),
        (
            "noaccess",
            ["--name", name.as_str()],
            format!("processes could not be read as this user, so whether they match is not known; {shown} is mounted with hidepid"),
        ),
    ];
    for (mode, selector, want) in cases {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "sh",
            "-c",
            &format!("mount -t proc -o hidepid={mode} proc \"$1\" && shift && exec \"$@\""),
            "sh",
        ])
        .arg(mnt.path())
        .args([
            "setpriv",
            "--reuid",
            "nagios",
            "--regid",
            "nagios",
            "--clear-groups",
        ])
        .arg(&bin)
        .args(["--proc-root", mnt.path().to_str().unwrap()])
        .args(selector)
        .env_clear()
        .env("LC_ALL", "C");
        let o = run_command(&mut cmd);
        assert_eq!(o.code, 3, "{mode}: {o:?}");
        assert!(o.line1().contains(&want), "{mode}: {o:?}");
        assert!(o.stdout.lines().count() <= 2, "one finding: {o:?}");
    }
}
