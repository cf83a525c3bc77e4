//! State files for checks that compare one run with the last (docs/contract.md §8).
//!
//! A check that counts restarts or turns a cumulative counter into a delta must remember what
//! it saw. The rules here are written once so that no check can get them wrong:
//!
//! - **One file per key** in the state directory (`--state-dir`, else `$PROCGUARD_STATE_DIR`,
//!   else `/var/lib/procguard/<user>`: one directory per effective user, so checks run as
//!   root and as `nagios` side by side never share a file), created 0700 if missing. Keys
//!   are made file-name safe by [`file_stem`].
//! - **Trusted only if this user's**: a state directory owned by another user than this one
//!   or root, or writable by group or others without the sticky bit, is refused; so is a
//!   state or lock file not owned by the effective user. Reads are bounded: the one read
//!   that takes the file stops at [`MAX_STATE_BYTES`] + 1.
//! - **Read-modify-write under an exclusive `flock`** on a separate `<stem>.lock` file (the
//!   data file itself is replaced on every write, so a lock on it would lock a dead inode):
//!   parallel runs of the same check serialize and no update is lost.
//! - **Atomic write**: a temp file in the same directory, fsync, rename over the old file,
//!   fsync the directory. A crash leaves the old or the new state, never half of one.
//! - **Versioned format**: an envelope `{"format":"procguard-state","version":1,"key":..,
//!   "data":..}` around the caller's serde type. Callers evolve their type with
//!   `#[serde(default)]` fields; an incompatible change bumps [`FORMAT_VERSION`] or uses a
//!   new key.
//! - **Corrupt or unreadable file** (truncated, garbage, another format version, a caller
//!   type that no longer fits, larger than [`MAX_STATE_BYTES`]): moved aside to
//!   `<stem>.json.corrupt`, the state starts afresh from `T::default()` and
//!   [`Origin::Reset`] says why, so the check can put it in its output. The run never fails
//!   because of it, and the next one finds a good file.
//! - **Refused** (an error, so UNKNOWN, with the reason): a state or lock file that is a
//!   symbolic link or not a regular file, a state file writable by group or others. Nothing
//!   is moved or written then: someone has to look.
//! - **Unwritable directory**: an error naming the path.
//! - **Size**: the store does not prune; the caller keeps its state bounded inside
//!   [`StateDir::update`] (e.g. drops events older than its largest window). As a backstop a
//!   file above [`MAX_STATE_BYTES`] is treated as corrupt.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CheckError;

/// The state directory used when neither `--state-dir` nor the environment names one.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/procguard";

/// The environment variable naming the state directory (below `--state-dir`, above the
/// default).
pub const STATE_DIR_ENV: &str = "PROCGUARD_STATE_DIR";

/// The version of the file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `format` field of every state file.
const FORMAT_NAME: &str = "procguard-state";

/// A state file larger than this is not read but moved aside as corrupt: no check keeps
/// anywhere near this much, so it is a bug or a foreign file.
pub const MAX_STATE_BYTES: u64 = 4 << 20;

/// How long a run waits for another run of the same check to release the state. Runs hold
/// it for milliseconds; this stays well inside the default 10 s timeout.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// `--state-dir DIR`, for checks that keep state; flatten it into the plugin's arguments.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct StateArgs {
    /// Directory for state files, created 0700 if missing [default: $PROCGUARD_STATE_DIR, else /var/lib/procguard]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The directory to use: `--state-dir`, else `$PROCGUARD_STATE_DIR` (if set and not
    /// empty), else [`DEFAULT_STATE_DIR`].
    pub fn dir(&self) -> PathBuf {
        resolve_dir(self.state_dir.as_deref(), std::env::var_os(STATE_DIR_ENV))
    }

    /// Opens (and if needed creates) the state directory.
    pub fn open(&self) -> Result<StateDir, CheckError> {
        StateDir::open(self.dir())
    }
}

fn resolve_dir(flag: Option<&Path>, env: Option<OsString>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| Path::new(DEFAULT_STATE_DIR).join(user_dir_name()))
}

/// The effective user's subdirectory of [`DEFAULT_STATE_DIR`]: the user's name from the
/// passwd file (made file-name safe), else the numeric uid. One per user, so checks run as
/// root (Monit) and as `nagios` (NRPE, Icinga 2) side by side never share a file.
pub fn user_dir_name() -> String {
    let euid = effective_uid();
    crate::accounts::read_passwd()
        .ok()
        .and_then(|p| p.into_iter().find(|e| e.uid == euid))
        .map_or_else(|| euid.to_string(), |e| file_stem(&e.name))
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// An open state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

/// Where the state handed to an update came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// There was no state file: a first run. The state is `T::default()`.
    New,
    /// The state file was read.
    Loaded,
    /// The state file could not be used; it was moved aside and the state is `T::default()`.
    Reset {
        /// Why it could not be used.
        reason: String,
        /// Where the old file is now.
        moved_to: PathBuf,
    },
}

impl Origin {
    /// A sentence for the check's output when the state was reset, e.g. `state file
    /// /var/lib/procguard/x.json was corrupt (EOF while parsing ...); moved aside to
    /// /var/lib/procguard/x.json.corrupt, starting afresh`.
    pub fn note(&self) -> Option<String> {
        match self {
            Origin::Reset { reason, moved_to } => {
                let original = moved_to.with_extension("");
                Some(format!(
                    "state file {} was corrupt ({reason}); moved aside to {}, starting afresh",
                    original.display(),
                    moved_to.display()
                ))
            }
            _ => None,
        }
    }
}

/// What [`StateDir::update`] returns.
#[derive(Debug)]
pub struct Updated<R> {
    /// What the closure returned.
    pub value: R,
    /// Where the state it was given came from.
    pub origin: Origin,
    /// The state file.
    pub path: PathBuf,
}

/// The file envelope, as written.
#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    format: &'a str,
    version: u32,
    key: &'a str,
    data: &'a T,
}

/// The file envelope, as read (the data is decoded in a second step, so that the error
/// can tell a broken file from a caller type that changed).
#[derive(Deserialize)]
struct EnvelopeIn {
    format: String,
    version: u32,
    data: serde_json::Value,
}

impl StateDir {
    /// Opens the directory `path`, creating it with mode 0700 (missing parents 0755, so
    /// other users' subdirectories stay reachable) if it does not exist. A symlink to a
    /// directory is followed (a relocated state dir is fine).
    ///
    /// Refused (UNKNOWN, saying why and the fix): a directory owned by another user than
    /// this one or root, or writable by group or others without the sticky bit: whoever
    /// else can write there could plant or swap state.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir, CheckError> {
        let path = path.into();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => check_dir(&path, &meta)?,
            Ok(_) => {
                return Err(fail(
                    "cannot use state directory",
                    &path,
                    &io::Error::from_raw_os_error(libc::ENOTDIR),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&path)?,
            Err(e) => return Err(fail("cannot use state directory", &path, &e)),
        }
        Ok(StateDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state file of `key`.
    pub fn file(&self, key: &str) -> PathBuf {
        self.path.join(format!("{}.json", file_stem(key)))
    }

    /// Reads the state of `key` (or `T::default()`), lets `f` change it, and writes it back
    /// atomically, all under an exclusive lock, so concurrent runs never lose an update.
    ///
    /// `f` also gets the [`Origin`] of the state (first run, loaded, reset after a corrupt
    /// file). The caller bounds the size of `T` inside `f` (drop what it no longer needs).
    /// Errors (symlinked or group/world-writable state, unwritable directory) name the path
    /// and mean UNKNOWN; nothing is written then.
    pub fn update<T, R>(
        &self,
        key: &str,
        f: impl FnOnce(&mut T, &Origin) -> R,
    ) -> Result<Updated<R>, CheckError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let stem = file_stem(key);
        let file = self.path.join(format!("{stem}.json"));
        let _lock = self.lock(&stem)?;
        let (mut state, origin, stored) = self.load::<T>(&file)?;
        let value = f(&mut state, &origin);
        let bytes = encode(key, &state)?;
        // Most runs of a check change nothing (no new drops, no restart): skipping the
        // write saves the two fsyncs, which cost milliseconds on a busy disk.
        if stored.as_deref() != Some(bytes.as_slice()) {
            self.store(&stem, &file, &bytes)?;
        }
        Ok(Updated {
            value,
            origin,
            path: file,
        })
    }

    /// Takes the exclusive lock for `stem`; it is released when the returned file is closed.
    fn lock(&self, stem: &str) -> Result<File, CheckError> {
        let path = self.path.join(format!("{stem}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => refused(&path, "it is a symbolic link"),
                Some(libc::EACCES) => CheckError::Other(format!(
                    "cannot write in state directory {}: permission denied for uid {}; give this user a directory of its own (install -d -o USER -m 700 DIR) or use --state-dir",
                    self.path.display(),
                    effective_uid()
                )),
                _ => fail("cannot write in state directory: cannot create", &path, &e),
            })?;
        let meta = file
            .metadata()
            .map_err(|e| fail("cannot stat", &path, &e))?;
        if !meta.is_file() {
            return Err(refused(&path, "it is not a regular file"));
        }
        check_owner(&path, &meta)?;
        // Polled rather than blocking: a run that holds the lock for long (stuck on a hung
        // disk) must turn into a message naming the file, not into this run's timeout.
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(file);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Some(libc::EWOULDBLOCK) => {
                    return Err(CheckError::Other(format!(
                        "state file {} is locked by another run for more than {}s",
                        path.display(),
                        LOCK_WAIT.as_secs()
                    )))
                }
                Some(libc::EINTR) => {}
                _ => return Err(fail("cannot lock", &path, &e)),
            }
        }
    }

    /// Reads the state file; a file that cannot be used is moved aside (an error only when
    /// it is refused for safety or cannot be moved).
    /// Also returns the bytes read, when they were used.
    #[allow(clippy::type_complexity, clippy::unused_self)] // a method of the open store
    fn load<T: DeserializeOwned + Default>(
        &self,
        file: &Path,
    ) -> Result<(T, Origin, Option<Vec<u8>>), CheckError> {
        let problem = match read_checked(file)? {
            None => return Ok((T::default(), Origin::New, None)),
            Some(Ok(bytes)) => match decode::<T>(&bytes) {
                Ok(state) => return Ok((state, Origin::Loaded, Some(bytes))),
                Err(why) => why,
            },
            Some(Err(why)) => why,
        };
        let mut aside = file.as_os_str().to_owned();
        aside.push(".corrupt");
        let aside = PathBuf::from(aside);
        fs::rename(file, &aside)
            .map_err(|e| fail("cannot move aside corrupt state file", file, &e))?;
        Ok((
            T::default(),
            Origin::Reset {
                reason: problem,
                moved_to: aside,
            },
            None,
        ))
    }

    /// Writes the state: temp file, fsync, rename, fsync of the directory.
    fn store(&self, stem: &str, file: &Path, bytes: &[u8]) -> Result<(), CheckError> {
        let tmp = self.path.join(format!(".{stem}.json.tmp"));
        // Only a run holding the lock writes the temp file, so one that exists is left over
        // from a crash (or planted): remove it, never write through it.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("cannot remove stale temp file", &tmp, &e)),
        }
        let write = || -> io::Result<()> {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            out.write_all(bytes)?;
            out.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(fail("cannot write state file", &tmp, &e));
        }
        if let Err(e) = fs::rename(&tmp, file) {
            let _ = fs::remove_file(&tmp);
            return Err(fail("cannot write state file", file, &e));
        }
        // The rename is durable only once the directory is synced.
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("cannot sync state directory", &self.path, &e))
    }
}

/// The file's content for `state`: the versioned envelope as JSON.
fn encode<T: Serialize>(key: &str, state: &T) -> Result<Vec<u8>, CheckError> {
    let envelope = EnvelopeOut {
        format: FORMAT_NAME,
        version: FORMAT_VERSION,
        key,
        data: state,
    };
    let mut bytes = serde_json::to_vec_pretty(&envelope)
        .map_err(|e| CheckError::Other(format!("cannot encode state for {key:?}: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Opens and reads a state file without following a symlink or blocking on a FIFO.
/// `None`: no file. `Some(Err(why))`: a file that cannot be used (to be moved aside).
/// `Err`: a file refused for safety.
fn read_checked(file: &Path) -> Result<Option<Result<Vec<u8>, String>>, CheckError> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refused(file, "it is a symbolic link"))
        }
        Err(e) => {
            return Ok(Some(Err(format!(
                "cannot read it: {}",
                crate::error::io_text(&e)
            ))))
        }
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => {
            return Ok(Some(Err(format!(
                "cannot stat it: {}",
                crate::error::io_text(&e)
            ))))
        }
    };
    if !meta.is_file() {
        return Err(refused(file, "it is not a regular file"));
    }
    check_owner(file, &meta)?;
    if meta.mode() & 0o022 != 0 {
        return Err(refused(
            file,
            &format!(
                "it is writable by group or others (mode {:04o}); chmod 600 it if its content is trusted",
                meta.mode() & 0o7777
            ),
        ));
    }
    // One bounded read decides the size: a file that grows after a stat cannot be read whole.
    let mut bytes = Vec::new();
    match Read::by_ref(&mut f)
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
    {
        Ok(_) if bytes.len() as u64 > MAX_STATE_BYTES => Ok(Some(Err(format!(
            "more than the {MAX_STATE_BYTES} bytes a state file may have"
        )))),
        Ok(_) => Ok(Some(Ok(bytes))),
        Err(e) => Ok(Some(Err(format!(
            "cannot read it: {}",
            crate::error::io_text(&e)
        )))),
    }
}

/// Decodes the envelope and the caller's state; the error says which part is wrong.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.is_empty() {
        return Err("empty file".to_string());
    }
    let envelope: EnvelopeIn =
        serde_json::from_slice(bytes).map_err(|e| format!("not a state file: {e}"))?;
    if envelope.format != FORMAT_NAME {
        return Err(format!("format {:?}, not {FORMAT_NAME:?}", envelope.format));
    }
    if envelope.version != FORMAT_VERSION {
        return Err(format!(
            "format version {}, this procguard reads version {FORMAT_VERSION}",
            envelope.version
        ));
    }
    serde_json::from_value(envelope.data).map_err(|e| format!("unexpected content: {e}"))
}

/// A key as a file name: `[A-Za-z0-9_.-]`, no leading dot, at most 100 characters. A key
/// that had to be changed gets a hash of the original appended, so two keys that differ
/// only in unsafe characters (`a/b`, `a_b`) still get different files. Stable across
/// builds and platforms (FNV-1a, not std's randomized hasher).
pub fn file_stem(key: &str) -> String {
    let clean: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean == key && !clean.is_empty() && clean.len() <= 100 {
        return clean.to_string();
    }
    let short: String = clean.chars().take(80).collect();
    let sep = if short.is_empty() { "" } else { "-" };
    format!("{short}{sep}{:016x}", fnv1a(key.as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `io::Error` text without the `(os error N)` suffix.
fn fail(what: &str, path: &Path, e: &io::Error) -> CheckError {
    CheckError::Other(format!(
        "{what} {}: {}",
        path.display(),
        crate::error::io_text(e)
    ))
}

fn refused(path: &Path, why: &str) -> CheckError {
    CheckError::Other(format!("refusing state file {}: {why}", path.display()))
}

/// Creates a missing state directory: 0700, its missing parents 0755.
fn create_dir(path: &Path) -> Result<(), CheckError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| fail("cannot create state directory", path, &e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        // Another run created it meanwhile: check it like any existing one.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta =
                fs::metadata(path).map_err(|e| fail("cannot use state directory", path, &e))?;
            check_dir(path, &meta)
        }
        Err(e) => Err(fail("cannot create state directory", path, &e)),
    }
}

/// A state directory must be this user's or root's, and not writable by others unless
/// sticky (as /tmp): otherwise another user could plant, swap or remove state files.
fn check_dir(path: &Path, meta: &fs::Metadata) -> Result<(), CheckError> {
    let me = effective_uid();
    let refuse = |why: String| {
        Err(CheckError::Other(format!(
            "refusing state directory {}: {why}",
            path.display()
        )))
    };
    if meta.uid() != me && meta.uid() != 0 {
        return refuse(format!(
            "it is owned by uid {}, not by this user (uid {me}) or root; use a directory of this user's (--state-dir) or chown it",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return refuse(format!(
            "it is writable by group or others without the sticky bit (mode {mode:04o}); chmod 700 it"
        ));
    }
    Ok(())
}

/// A state or lock file must belong to this user: one planted by another user (in a
/// sticky directory, or by root's mistake) is not trusted.
fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<(), CheckError> {
    let me = effective_uid();
    if meta.uid() != me {
        return Err(refused(
            path,
            &format!(
                "it is owned by uid {}, not by this user (uid {me}); remove it if nothing of this user's should be there",
                meta.uid()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Counter {
        count: u64,
        seen: Vec<String>,
    }

    fn bump(dir: &StateDir, key: &str, who: &str) -> Updated<u64> {
        dir.update(key, |c: &mut Counter, _| {
            c.count += 1;
            c.seen.push(who.to_string());
            c.count
        })
        .unwrap()
    }

    fn read_counter(path: &Path) -> Counter {
        decode(&fs::read(path).unwrap()).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn round_trip_first_run_then_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let first = bump(&dir, "churn.web", "a");
        assert_eq!((first.value, &first.origin), (1, &Origin::New));
        assert!(first.origin.note().is_none());
        assert_eq!(first.path, tmp.path().join("churn.web.json"));
        let second = bump(&dir, "churn.web", "b");
        assert_eq!((second.value, &second.origin), (2, &Origin::Loaded));
        assert_eq!(
            read_counter(&second.path),
            Counter {
                count: 2,
                seen: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(mode(&second.path), 0o600);
        assert_eq!(mode(&tmp.path().join("churn.web.lock")), 0o600);
        // The envelope is versioned and names the key.
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(&second.path).unwrap()).unwrap();
        assert_eq!(raw["format"], "procguard-state");
        assert_eq!(raw["version"], FORMAT_VERSION);
        assert_eq!(raw["key"], "churn.web");
        assert_eq!(raw["data"]["count"], 2);
        // No temp file is left behind.
        let names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn an_unchanged_state_is_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        bump(&dir, "k", "a");
        let file = dir.file("k");
        let inode = || fs::metadata(&file).unwrap().ino();
        let before = inode();
        let same = dir.update("k", |_: &mut Counter, _| ()).unwrap();
        assert_eq!(same.origin, Origin::Loaded);
        assert_eq!(inode(), before, "no change: the file is left as it is");
        bump(&dir, "k", "b");
        assert_ne!(
            inode(),
            before,
            "a change is written (a new file renamed over the old)"
        );
    }

    #[test]
    fn a_lock_held_too_long_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        bump(&dir, "k", "a");
        let holder = File::open(tmp.path().join("k.lock")).unwrap();
        // SAFETY: flock on a file this test owns.
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        let started = Instant::now();
        let err = dir
            .update("k", |_: &mut Counter, _| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.lock is locked by another run"), "{err}");
        assert!(started.elapsed() >= LOCK_WAIT && started.elapsed() < LOCK_WAIT * 2);
        drop(holder);
        assert_eq!(bump(&dir, "k", "b").value, 2, "usable again once released");
    }

    #[test]
    fn missing_dir_is_created_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/state");
        let dir = StateDir::open(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        // Parents stay traversable: other users' directories live below them.
        assert_eq!(mode(&tmp.path().join("a")), 0o755);
        assert_eq!(bump(&dir, "k", "x").value, 1);
        // An existing directory is used as it is.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).unwrap();
        StateDir::open(&path).unwrap();
        assert_eq!(mode(&path), 0o750);
    }

    /// The child half of `twenty_concurrent_processes_lose_no_update`: a no-op unless the
    /// parent test runs it with the environment set.
    #[test]
    fn concurrent_child() {
        let (Some(dir), Some(who)) = (
            std::env::var_os("PROCGUARD_STATE_TEST_DIR"),
            std::env::var("PROCGUARD_STATE_TEST_WHO").ok(),
        ) else {
            return;
        };
        let dir = StateDir::open(PathBuf::from(dir)).unwrap();
        dir.update("shared", |c: &mut Counter, _| {
            let before = c.count;
            // Widen the read-modify-write window: without the lock, runs overlapping here
            // would all read the same count and lose updates.
            std::thread::sleep(std::time::Duration::from_millis(15));
            c.count = before + 1;
            c.seen.push(who);
        })
        .unwrap();
    }

    #[test]
    fn twenty_concurrent_processes_lose_no_update() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..20)
            .map(|i| {
                Command::new(&exe)
                    .args([
                        "--exact",
                        "state::tests::concurrent_child",
                        "--test-threads=1",
                        "-q",
                    ])
                    .env("PROCGUARD_STATE_TEST_DIR", tmp.path())
                    .env("PROCGUARD_STATE_TEST_WHO", format!("p{i}"))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let state = read_counter(&tmp.path().join("shared.json"));
        assert_eq!(state.count, 20, "{state:?}");
        let mut seen = state.seen.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 20, "{state:?}");
    }

    #[test]
    fn twenty_concurrent_threads_lose_no_update() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        std::thread::scope(|s| {
            for i in 0..20 {
                let dir = &dir;
                s.spawn(move || {
                    dir.update("shared", |c: &mut Counter, _| {
                        let before = c.count;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        c.count = before + 1;
                        c.seen.push(format!("t{i}"));
                    })
                    .unwrap();
                });
            }
        });
        let state = read_counter(&tmp.path().join("shared.json"));
        assert_eq!((state.count, state.seen.len()), (20, 20), "{state:?}");
    }

    /// A broken file is moved aside with its content, the run gets a fresh state and a
    /// note, and the next run loads the good file written in its place.
    fn assert_recovers(content: &[u8], reason_has: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let file = dir.file("k");
        fs::write(&file, content).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let run = bump(&dir, "k", "after");
        assert_eq!(run.value, 1, "starts afresh");
        let Origin::Reset { reason, moved_to } = &run.origin else {
            panic!("expected a reset, got {:?}", run.origin);
        };
        assert!(reason.contains(reason_has), "{reason}");
        assert_eq!(moved_to, &tmp.path().join("k.json.corrupt"));
        assert_eq!(fs::read(moved_to).unwrap(), content, "evidence kept");
        let note = run.origin.note().unwrap();
        assert!(
            note.starts_with(&format!("state file {} was corrupt (", file.display()))
                && note.ends_with(&format!(
                    "moved aside to {}, starting afresh",
                    moved_to.display()
                )),
            "{note}"
        );
        let next = bump(&dir, "k", "next");
        assert_eq!((next.value, next.origin), (2, Origin::Loaded));
    }

    #[test]
    fn truncated_file_is_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        for i in 0..5 {
            bump(&dir, "k", &format!("r{i}"));
        }
        let good = fs::read(dir.file("k")).unwrap();
        assert_recovers(&good[..good.len() / 2], "EOF while parsing");
        assert_recovers(b"", "empty file");
    }

    #[test]
    fn garbage_file_is_moved_aside() {
        assert_recovers(b"\x00\xff\xfegarbage", "not a state file");
        assert_recovers(b"[1, 2, 3]", "not a state file");
        assert_recovers(
            br#"{"format":"procguard-state","version":99,"key":"k","data":{}}"#,
            "format version 99",
        );
        assert_recovers(
            br#"{"format":"something-else","version":1,"key":"k","data":{}}"#,
            "format \"something-else\"",
        );
        assert_recovers(
            br#"{"format":"procguard-state","version":1,"key":"k","data":{"count":"many"}}"#,
            "unexpected content",
        );
    }

    #[test]
    fn oversized_file_is_moved_aside() {
        let big = vec![b' '; usize::try_from(MAX_STATE_BYTES).unwrap() + 1];
        assert_recovers(&big, "more than the");
    }

    #[test]
    fn symlinked_state_file_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let target = tmp.path().join("elsewhere");
        fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, dir.file("k")).unwrap();
        let err = dir
            .update("k", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "refusing state file {}: it is a symbolic link",
                dir.file("k").display()
            )
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert!(fs::symlink_metadata(dir.file("k")).unwrap().is_symlink());
        // A dangling symlink is refused too (it would otherwise create the target).
        let dangling = tmp.path().join("d.json");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        assert!(dir
            .update("d", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string()
            .contains("symbolic link"));
        assert!(!tmp.path().join("nowhere").exists());
    }

    #[test]
    fn symlinked_lock_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("victim"), tmp.path().join("k.lock")).unwrap();
        let err = dir
            .update("k", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.lock: it is a symbolic link"), "{err}");
        assert!(!tmp.path().join("victim").exists());
    }

    #[test]
    fn group_or_world_writable_state_is_refused() {
        for bad in [0o620, 0o602, 0o666] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = StateDir::open(tmp.path()).unwrap();
            bump(&dir, "k", "a");
            let file = dir.file("k");
            fs::set_permissions(&file, fs::Permissions::from_mode(bad)).unwrap();
            let before = fs::read(&file).unwrap();
            let err = dir
                .update("k", |c: &mut Counter, _| c.count += 1)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!(
                    "refusing state file {}: it is writable by group or others (mode 0{bad:o})",
                    file.display()
                )),
                "{err}"
            );
            assert_eq!(fs::read(&file).unwrap(), before, "left alone");
        }
    }

    #[test]
    fn fifo_or_directory_in_place_of_the_file_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let fifo = std::ffi::CString::new(dir.file("f").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = dir
            .update("f", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("f.json: it is not a regular file"), "{err}");
        fs::create_dir(dir.file("d")).unwrap();
        let err = dir
            .update("d", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("d.json: it is not a regular file"), "{err}");
    }

    /// The tests run as root, which ignores permission bits, so a mode-0500 directory would
    /// not show anything. These paths fail for root too: a directory path below a regular
    /// file (ENOTDIR), a regular file given as the directory, and sysfs, a real directory in
    /// which the kernel lets nobody create files.
    #[test]
    fn unwritable_dir_is_an_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let below = file.join("state");
        let err = StateDir::open(&below).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot use state directory {}: Not a directory",
                below.display()
            )
        );
        let err = StateDir::open(&file).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot use state directory {}: Not a directory",
                file.display()
            )
        );
        let sys = Path::new("/sys/kernel");
        if fs::metadata(sys).is_ok_and(|m| m.is_dir()) {
            let dir = StateDir::open(sys).unwrap();
            let err = dir
                .update("k", |c: &mut Counter, _| c.count += 1)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("cannot write in state directory /sys/kernel: permission denied for uid 0; give this user a directory of its own (install -d -o USER -m 700 DIR) or use --state-dir"),
                "{err}"
            );
        }
    }

    #[test]
    fn stale_temp_file_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("victim"), tmp.path().join(".k.json.tmp"))
            .unwrap();
        assert_eq!(bump(&dir, "k", "a").value, 1);
        assert!(!tmp.path().join("victim").exists());
        assert!(!tmp.path().join(".k.json.tmp").exists());
    }

    #[test]
    fn keys_become_safe_stable_file_names() {
        assert_eq!(file_stem("restart_churn.web-1"), "restart_churn.web-1");
        let a = file_stem("restart_churn.--name node --user app");
        assert!(
            a.starts_with("restart_churn.--name_node_--user_app-"),
            "{a}"
        );
        assert_eq!(
            a,
            file_stem("restart_churn.--name node --user app"),
            "stable"
        );
        // Distinct keys stay distinct after cleaning.
        assert_ne!(file_stem("a/b"), file_stem("a_b"));
        assert_ne!(file_stem("a/b"), file_stem("a:b"));
        for key in [
            "../../etc/passwd",
            "..",
            ".",
            "",
            "/",
            "ünïcode",
            &"x".repeat(500),
        ] {
            let stem = file_stem(key);
            assert!(
                !stem.is_empty()
                    && !stem.starts_with('.')
                    && stem.len() <= 100
                    && stem
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "{key:?} -> {stem:?}"
            );
        }
        // A known value pins the hash: file names must not change between builds.
        assert_eq!(file_stem("a/b"), "a_b-e620c3190468cf61");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn state_dir_from_flag_then_env_then_default() {
        use clap::Parser;
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            state: StateArgs,
        }
        let a = Args::try_parse_from(["x", "--state-dir", "/tmp/s"]).unwrap();
        assert_eq!(a.state.state_dir, Some(PathBuf::from("/tmp/s")));
        assert_eq!(
            resolve_dir(a.state.state_dir.as_deref(), Some("/env".into())),
            PathBuf::from("/tmp/s")
        );
        assert_eq!(
            resolve_dir(None, Some("/env".into())),
            PathBuf::from("/env")
        );
        // The default: one directory per effective user (the tests run as root).
        let mine = PathBuf::from("/var/lib/procguard").join(user_dir_name());
        assert_eq!(resolve_dir(None, Some("".into())), mine);
        assert_eq!(resolve_dir(None, None), mine);
        if effective_uid() == 0 {
            assert_eq!(user_dir_name(), "root");
        }
        let a = Args::try_parse_from(["x"]).unwrap();
        assert_eq!(a.state.state_dir, None);
    }

    fn chown(path: &Path, uid: u32) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string path; lchown does not follow a symlink.
        assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0);
    }

    /// Ownership is what the tests (root) can set on any file: uid 65534 is "another user".
    #[test]
    fn state_or_lock_files_of_another_user_are_refused() {
        if effective_uid() != 0 {
            return; // needs chown
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        bump(&dir, "k", "a");
        let file = dir.file("k");
        chown(&file, 65534);
        let before = fs::read(&file).unwrap();
        let err = dir
            .update("k", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("refusing state file {}: it is owned by uid 65534, not by this user (uid 0); remove it if nothing of this user's should be there", file.display())
        );
        assert_eq!(fs::read(&file).unwrap(), before, "left alone");
        let lock = tmp.path().join("l.lock");
        fs::write(&lock, "").unwrap();
        chown(&lock, 65534);
        let err = dir
            .update("l", |c: &mut Counter, _| c.count += 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("l.lock: it is owned by uid 65534"), "{err}");
    }

    #[test]
    fn state_dirs_others_can_write_or_own_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        for bad in [0o777, 0o770, 0o702] {
            fs::set_permissions(&open, fs::Permissions::from_mode(bad)).unwrap();
            let err = StateDir::open(&open).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("refusing state directory {}: it is writable by group or others without the sticky bit (mode {bad:04o}); chmod 700 it", open.display())
            );
        }
        // Sticky, as /tmp: others cannot swap this user's files, and what they plant is
        // refused by owner.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(bump(&StateDir::open(&open).unwrap(), "k", "a").value, 1);
        if effective_uid() == 0 {
            let theirs = tmp.path().join("theirs");
            fs::create_dir(&theirs).unwrap();
            chown(&theirs, 65534);
            let err = StateDir::open(&theirs).unwrap_err().to_string();
            assert!(err.ends_with("it is owned by uid 65534, not by this user (uid 0) or root; use a directory of this user's (--state-dir) or chown it"), "{err}");
        }
    }
}
