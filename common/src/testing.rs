//! Test helpers (feature `testing`): real processes with chosen limits and open fds, and a
//! runner for plugin binaries that checks the contract on every output it sees, and
//! [`FakeProc`], the one builder of fixture /proc trees.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod fake_proc;
pub use fake_proc::{FakeProc, FakeProcess};

/// A child process that holds open fds under a lowered `nofile` limit; killed on drop.
pub struct Holder {
    child: Child,
    _dir: Option<tempfile_dir::TempDir>,
}

/// Minimal temp dir (the helpers must not pull dev-dependencies into the library).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    /// A directory removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> std::io::Result<TempDir> {
            let path = std::env::temp_dir().join(format!(
                "procguard-{tag}-{}-{:?}",
                std::process::id(),
                std::time::Instant::now()
            ));
            let path = PathBuf::from(
                path.to_string_lossy()
                    .replace([' ', '{', '}', ':', ','], "_"),
            );
            std::fs::create_dir_all(&path)?;
            Ok(TempDir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How to start a [`Holder`].
#[derive(Debug, Clone)]
pub struct HolderSpec {
    /// Soft and hard `nofile`.
    pub nofile: (u64, u64),
    /// Total open fds the process should hold (0, 1, 2 included).
    pub fds: u32,
    /// Executable name (a copy of `sleep` under this name), for name selection tests.
    pub exe_name: Option<String>,
}

impl Default for HolderSpec {
    fn default() -> Self {
        HolderSpec {
            nofile: (1024, 4096),
            fds: 3,
            exe_name: None,
        }
    }
}

impl Holder {
    /// Starts `sleep 600` with the limit set and the fds opened between fork and exec, so
    /// the limits and the fd table are the kernel's real ones.
    ///
    /// # Panics
    /// When the child cannot be started or does not exec within 5 s.
    pub fn start(spec: &HolderSpec) -> Holder {
        let (dir, exe) = match &spec.exe_name {
            Some(name) => {
                let dir = tempfile_dir::TempDir::new("holder").expect("temp dir");
                let exe = dir.path().join(name);
                std::fs::copy(sleep_path(), &exe).expect("copy sleep");
                (Some(dir), exe)
            }
            None => (None, sleep_path()),
        };
        let (soft, hard, fds) = (spec.nofile.0, spec.nofile.1, spec.fds);
        let mut cmd = Command::new(&exe);
        cmd.arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (close_range, setrlimit, open) between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Drop whatever the test harness leaks (cargo's jobserver pipes), so the
                // child holds exactly `fds`.
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                let rl = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for _ in 3..fds {
                    if libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn holder");
        let holder = Holder { child, _dir: dir };
        holder.wait_exec(&exe);
        holder
    }

    /// Waits until the child has exec'd (its exe is the requested binary).
    fn wait_exec(&self, exe: &Path) {
        let want = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::fs::read_link(format!("/proc/{}/exe", self.pid())).is_ok_and(|p| p == want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("holder {} did not exec {}", self.pid(), exe.display());
    }

    /// Its PID.
    ///
    /// # Panics
    /// Never: Linux PIDs are below 2^22.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a PID fits in i32")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sleep_path() -> PathBuf {
    ["/usr/bin/sleep", "/bin/sleep"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("sleep binary")
}

/// A plugin run's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (must be empty in normal runs).
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Outcome {
    /// The first output line.
    pub fn line1(&self) -> &str {
        self.stdout.lines().next().unwrap_or_default()
    }

    /// The perfdata item for `label` (`value;warn;crit;min;max` after the `=`), if present.
    pub fn perf(&self, label: &str) -> Option<String> {
        let perf = self.line1().split_once(" | ")?.1;
        perf.split(' ').find_map(|item| {
            item.strip_prefix(&format!("'{label}'="))
                .map(str::to_string)
        })
    }
}

/// Runs a plugin binary with a clean environment (`LC_ALL=C`), asserts the output contract
/// (exit 0-3, line 1 `NAME STATE - `, matching state, no stderr, no `|` in long output) and
/// returns the outcome.
///
/// # Panics
/// When the binary cannot be run or its output breaks the contract.
pub fn run_plugin<I, S>(bin: &str, args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear().env("LC_ALL", "C");
    run_command(&mut cmd)
}

/// Runs a prepared plugin command and asserts the output contract.
///
/// # Panics
/// When the command cannot be run or its output breaks the contract.
pub fn run_command(cmd: &mut Command) -> Outcome {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("run plugin");
    let outcome = Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    };
    assert_contract(&outcome);
    outcome
}

/// The output contract every run must keep (docs/contract.md §1, §2).
///
/// # Panics
/// When it is not kept: that is the assertion.
pub fn assert_contract(o: &Outcome) {
    assert!(
        (0..=3).contains(&o.code),
        "exit code {} outside 0-3: {o:?}",
        o.code
    );
    assert!(o.stderr.is_empty(), "stderr must be empty: {o:?}");
    let state = match o.code {
        0 => "OK",
        1 => "WARNING",
        2 => "CRITICAL",
        _ => "UNKNOWN",
    };
    let line1 = o.line1();
    let mut words = line1.splitn(3, ' ');
    let (name, got_state, rest) = (
        words.next().unwrap_or(""),
        words.next().unwrap_or(""),
        words.next().unwrap_or(""),
    );
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
        "bad NAME in {line1:?}"
    );
    assert_eq!(got_state, state, "state word must match exit code: {o:?}");
    assert!(
        rest.starts_with("- "),
        "line 1 must be 'NAME STATE - ...': {line1:?}"
    );
    if let Some((_, perf)) = line1.split_once(" | ") {
        for item in perf.split(' ') {
            assert_perfdata_item(item);
        }
    }
    assert_eq!(
        line1.matches('|').count().min(1),
        usize::from(line1.contains(" | ")),
        "stray '|' in {line1:?}"
    );
    for line in o.stdout.lines().skip(1) {
        assert!(!line.contains('|'), "'|' in long output line {line:?}");
    }
}

/// One perfdata item per the strict grammar and label rule of docs/contract.md §3.
///
/// # Panics
/// When the item breaks the grammar: that is the assertion.
pub fn assert_perfdata_item(item: &str) {
    let bad = || format!("invalid perfdata item {item:?}");
    let rest = item
        .strip_prefix('\'')
        .unwrap_or_else(|| panic!("{} (label not quoted)", bad()));
    let (label, rest) = rest.split_once("'=").unwrap_or_else(|| panic!("{}", bad()));
    assert!(
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./:-".contains(c)),
        "{}",
        bad()
    );
    let fields: Vec<&str> = rest.split(';').collect();
    assert!(fields.len() <= 5, "{}", bad());
    let value = fields[0];
    let digits_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(value.len());
    let (number, uom) = value.split_at(digits_end);
    assert!(
        (number.is_empty() && uom == "U") || is_number(number),
        "{} (value)",
        bad()
    );
    assert!(
        ["", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c", "U"].contains(&uom),
        "{} (uom)",
        bad()
    );
    for range in fields.iter().skip(1).take(2) {
        assert!(
            range
                .chars()
                .all(|c| c.is_ascii_digit() || ".:~@-".contains(c)),
            "{} (range)",
            bad()
        );
    }
    for n in fields.iter().skip(3) {
        assert!(n.is_empty() || is_number(n), "{} (min/max)", bad());
    }
}

fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.matches('.').count() <= 1
}
