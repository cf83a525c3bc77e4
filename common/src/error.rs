//! The one error type of the plugins. Any error means UNKNOWN: the plugin could not find
//! out. Messages name the file and, for permission problems, the fix.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a check could not be completed.
#[derive(Debug)]
pub enum CheckError {
    /// A file or directory could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file was read but its content is not what the kernel (or the format) promises.
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line where known.
        msg: String,
    },
    /// Arguments or configuration that are well-formed but cannot be used.
    Config(String),
    /// Arguments that do not fit together, found after parsing (`--port` and `--unix`
    /// both given, no selector at all). The runner reports it like clap's own errors:
    /// `NAME UNKNOWN - invalid arguments: <this>` and the short usage. Give only what is
    /// wrong and which option; the usage is added once, by the runner.
    Usage(String),
    /// Any other failure, already in words.
    Other(String),
}

impl CheckError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> CheckError {
        CheckError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A parse error in `path`.
    pub fn parse(path: impl AsRef<Path>, msg: impl Into<String>) -> CheckError {
        CheckError::Parse {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// The file (or process directory) does not exist: for /proc, the process is gone.
    pub fn is_not_found(&self) -> bool {
        // ESRCH shows up when a process exits between open() and read().
        matches!(self, CheckError::Io { source, .. }
            if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ESRCH))
    }

    /// Reading was refused by permissions.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, CheckError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Io { path, source } if source.kind() == io::ErrorKind::PermissionDenied => write!(
                f,
                "cannot read {}: permission denied (run as the process's user, via sudo, or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)",
                path.display()
            ),
            CheckError::Io { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), io_text(source))
            }
            CheckError::Parse { path, msg } => write!(f, "cannot parse {}: {msg}", path.display()),
            CheckError::Config(msg) | CheckError::Other(msg) => f.write_str(msg),
            CheckError::Usage(msg) => write!(f, "invalid arguments: {msg}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// An io error's text without the ` (os error N)` tail the standard library adds:
/// `No such file or directory (os error 2)` -> `No such file or directory`.
#[must_use]
pub fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.split_once(" (os error") {
        Some((words, _)) => words.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_the_fix() {
        let denied = CheckError::io(
            "/proc/1/fd",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(denied.is_permission_denied());
        assert!(denied
            .to_string()
            .starts_with("cannot read /proc/1/fd: permission denied (run as"));
        let gone = CheckError::io("/proc/9/limits", io::Error::from_raw_os_error(libc::ENOENT));
        assert!(gone.is_not_found());
        assert_eq!(
            gone.to_string(),
            "cannot read /proc/9/limits: No such file or directory"
        );
        let esrch = CheckError::io("/proc/9/stat", io::Error::from_raw_os_error(libc::ESRCH));
        assert!(esrch.is_not_found());
    }

    #[test]
    fn io_text_drops_only_the_os_error_tail() {
        assert_eq!(
            io_text(&io::Error::from_raw_os_error(libc::EACCES)),
            "Permission denied"
        );
        assert_eq!(io_text(&io::Error::other("plain words")), "plain words");
    }
}
