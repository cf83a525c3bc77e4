//! systemd unit properties, read with `systemctl show` (docs/contract.md §10.3, §11.8).
//!
//! The plugins are static binaries and must work where systemd is absent, so nothing here
//! talks D-Bus: [`show`] runs `systemctl show --property=... UNIT` with a bounded wait and
//! [`parse_show`] turns its `Key=Value` lines into a map. Parsing is pure so it is tested
//! against captured output; running is separate so a missing `systemctl`, a host not booted
//! with systemd, or a hung call each become one clear [`CheckError`] (UNKNOWN) naming the
//! cause.
//!
//! A unit's `Limit*` properties are read through the table of limit items
//! ([`crate::proc::limits::LimitItem::from_systemd`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::CheckError;
use crate::seam::{self, Seam};

/// How long [`show`] waits for `systemctl` before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A unit name as systemd spells it: `web` means `web.service`; a name with a suffix
/// (`web.service`, `run-r1.scope`) is kept.
pub fn unit_name(unit: &str) -> String {
    if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    }
}

/// Parses `systemctl show` output: one `Key=Value` per line, split at the first `=` (values
/// may contain `=`). Blank lines (between units) and lines without `=` are skipped; when a
/// key repeats, the first value is kept (the first unit's, for a multi-unit call).
pub fn parse_show(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some((key, value)) = line.split_once('=') {
            if !key.is_empty() {
                map.entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
    }
    map
}

/// Where `systemctl` is run from: an absolute path, never a `PATH` search (a plugin run
/// through sudo or NRPE must not run whatever the caller's `PATH` finds first).
pub const SYSTEMCTL_PATHS: [&str; 2] = ["/usr/bin/systemctl", "/bin/systemctl"];

/// The directory systemd creates when it is the init system (what `sd_booted()` checks).
pub const RUN_DIR: &str = "/run/systemd/system";

/// The `systemctl` program: the first of [`SYSTEMCTL_PATHS`] that exists (the first one if
/// none does, so the error names it).
pub fn systemctl() -> PathBuf {
    if let Some(fake) = seam::var(Seam::Systemctl) {
        return fake.into();
    }
    SYSTEMCTL_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or(Path::new(SYSTEMCTL_PATHS[0]))
        .to_path_buf()
}

/// Whether systemd is the init system of this host ([`RUN_DIR`] exists). Without it, unit
/// names mean nothing and `systemctl show` cannot answer.
pub fn is_running() -> bool {
    let dir = seam::var(Seam::SystemdDir).map_or_else(|| PathBuf::from(RUN_DIR), PathBuf::from);
    dir.is_dir()
}

/// The error for `what` (`--unit web`, `--systemd`) on a host without systemd.
pub fn not_running(what: &str) -> CheckError {
    CheckError::Other(format!(
        "{what} needs systemd, which is not running on this host (no {RUN_DIR}); select the process with --pidfile, --name or --pid instead"
    ))
}

/// Runs `systemctl show --property=P1,P2 UNIT` and parses the result; waits at most
/// [`DEFAULT_TIMEOUT`]. On a host without systemd, [`not_running`] without running anything.
pub fn show(unit: &str, props: &[&str]) -> Result<HashMap<String, String>, CheckError> {
    if !is_running() {
        return Err(not_running(&format!("systemctl show {unit}")));
    }
    show_with(&systemctl(), unit, props, DEFAULT_TIMEOUT)
}

/// [`show`] with the `systemctl` program and the wait chosen by the caller (tests use a
/// fake `systemctl`). A missing program, a non-zero exit (e.g. the host was not booted with
/// systemd) or an expired wait is an error naming the cause; the child is killed on expiry.
/// The child gets a cleared environment (only `PATH`, `LC_ALL` and `SYSTEMD_COLORS`): the
/// caller's `SYSTEMD_*`, `LD_*` or pager variables must not change what a root run does.
pub fn show_with(
    systemctl: &Path,
    unit: &str,
    props: &[&str],
    timeout: Duration,
) -> Result<HashMap<String, String>, CheckError> {
    let mut child = spawn_show(systemctl, unit, props)?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // Bounded: systemctl show output for a few properties is tiny.
                let _ = p.by_ref().take(1 << 20).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CheckError::Other(format!(
                    "systemctl show {unit} did not answer within {}s",
                    timeout.as_secs_f64()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(CheckError::io(systemctl, e)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let why = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message");
        let code = status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("exit {c}"));
        return Err(CheckError::Other(format!(
            "systemctl show {unit} failed ({code}): {why}"
        )));
    }
    Ok(parse_show(&stdout))
}

/// Checks the unit and property names (they go on a command line) and starts
/// `systemctl show` with a cleared environment and both outputs piped.
fn spawn_show(systemctl: &Path, unit: &str, props: &[&str]) -> Result<Child, CheckError> {
    if unit.is_empty() || unit.starts_with('-') {
        return Err(CheckError::Config(format!("invalid unit name {unit:?}")));
    }
    if let Some(bad) = props
        .iter()
        .find(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(CheckError::Config(format!(
            "invalid systemd property name {bad:?}"
        )));
    }
    let mut cmd = Command::new(systemctl);
    cmd.arg("show").arg("--no-pager");
    if !props.is_empty() {
        cmd.arg(format!("--property={}", props.join(",")));
    }
    cmd.arg("--")
        .arg(unit)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CheckError::Other(format!(
                    "cannot run {}: not found (systemd is not installed on this host)",
                    systemctl.display()
                ))
            } else {
                CheckError::io(systemctl, e)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::unit_name;

    #[test]
    fn unit_names_get_service_unless_they_have_a_suffix() {
        assert_eq!(unit_name("web"), "web.service");
        assert_eq!(unit_name("web.service"), "web.service");
        assert_eq!(unit_name("run-r1.scope"), "run-r1.scope");
    }

    use super::*;

    /// `systemctl show -p LimitNOFILE,LimitNOFILESoft,LimitCORE,LimitCORESoft,NRestarts,
    /// LoadState,ExecMainStartTimestamp nginx.service` on Debian 12 (systemd 252).
    const NGINX: &str = "LimitCORE=infinity\nLimitCORESoft=0\nLimitNOFILE=524288\nLimitNOFILESoft=1024\nNRestarts=3\nLoadState=loaded\nExecMainStartTimestamp=Fri 2026-11-27 09:12:01 UTC\nEnvironment=A=1 B=2\n";

    #[test]
    fn parses_values_with_equals_signs_and_blank_lines() {
        let p = parse_show(NGINX);
        assert_eq!(p["NRestarts"], "3");
        assert_eq!(p["LoadState"], "loaded");
        assert_eq!(p["Environment"], "A=1 B=2");
        assert_eq!(p["ExecMainStartTimestamp"], "Fri 2026-11-27 09:12:01 UTC");
        let two =
            parse_show("Id=a.service\nNRestarts=1\n\nId=b.service\nNRestarts=9\nno equals\n=x\n");
        assert_eq!(two["NRestarts"], "1");
        assert_eq!(two.len(), 2);
        assert!(parse_show("").is_empty());
    }

    #[test]
    fn running_errors_name_the_cause() {
        let missing = show_with(
            Path::new("/nonexistent/systemctl"),
            "a.service",
            &["NRestarts"],
            DEFAULT_TIMEOUT,
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("not found"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let fake = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let failing = fake(
            "fail",
            "echo 'System has not been booted with systemd as init system (PID 1). Can'\\''t operate.' >&2; exit 1",
        );
        let e = show_with(&failing, "a.service", &["NRestarts"], DEFAULT_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "systemctl show a.service failed (exit 1): System has not been booted with systemd as init system (PID 1). Can't operate.");
        let hung = fake("hang", "exec sleep 30");
        let started = Instant::now();
        let e = show_with(&hung, "a.service", &[], Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not answer within 0.2s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The arguments systemctl gets.
        let echo = fake("echo", "echo \"Args=$*\"; echo NRestarts=2");
        let p = show_with(
            &echo,
            "web.service",
            &["NRestarts", "LoadState"],
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(
            p["Args"],
            "show --no-pager --property=NRestarts,LoadState -- web.service"
        );
        assert_eq!(p["NRestarts"], "2");
        assert!(show_with(&echo, "-x", &[], DEFAULT_TIMEOUT).is_err());
        assert!(show_with(&echo, "a", &["Bad,Prop"], DEFAULT_TIMEOUT).is_err());
    }

    #[test]
    fn systemctl_by_absolute_path_and_with_a_cleared_environment() {
        assert!(
            systemctl().is_absolute() || std::env::var_os("PROCGUARD_TEST_SYSTEMCTL").is_some()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "#!/bin/sh\nenv | sed 's/^/Env_/'\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // The test process's environment has HOME, and the test sets nothing: if the child
        // saw the caller's environment, HOME would be there.
        assert!(std::env::var_os("HOME").is_some());
        let p = show_with(&path, "a.service", &[], DEFAULT_TIMEOUT).unwrap();
        let mut names: Vec<&str> = p
            .keys()
            .filter_map(|k| k.strip_prefix("Env_"))
            .filter(|k| *k != "PWD" && *k != "SHLVL" && *k != "_")
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["LC_ALL", "PATH", "SYSTEMD_COLORS"]);
    }

    #[test]
    fn without_systemd_show_says_so_and_runs_nothing() {
        if is_running() {
            return; // a systemd host: the other branch is what runs there
        }
        let e = show("web.service", &["NRestarts"]).unwrap_err().to_string();
        assert_eq!(e, "systemctl show web.service needs systemd, which is not running on this host (no /run/systemd/system); select the process with --pidfile, --name or --pid instead");
    }
}
