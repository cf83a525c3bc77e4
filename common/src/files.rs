//! Reading files outside /proc: configuration, limits.conf, passwd/group, pidfiles, state.
//!
//! The plugins run as root on files whose path an operator (or whoever writes the sudoers
//! rule's arguments) chooses. Every such read goes through [`read_regular`], so one place
//! makes sure that:
//!
//! - only a **regular file** is read: a FIFO would block until the timeout, `/dev/zero`
//!   or `/dev/urandom` would be read until memory runs out, a directory gives nonsense;
//!   the file is opened `O_NONBLOCK` so a FIFO cannot even block the `open`;
//! - the read is **bounded**: at most `max` bytes are ever read, in the same read that
//!   decides whether the file is too large (a `stat` followed by an unbounded read would
//!   take a file that grew in between whole);
//! - **symbolic links** are followed or not as the caller says ([`Follow`]);
//! - errors name the file and say what was expected, never what the file contains.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::CheckError;

/// Size caps for the files the plugins read. Generous for real files, small enough that a
/// wrong path cannot exhaust memory.
pub mod max {
    /// A limits.conf or limits.d file.
    pub const LIMITS_CONF: u64 = 1 << 20;
    /// A `--config` YAML file.
    pub const CONFIG: u64 = 1 << 20;
    /// /etc/passwd or /etc/group (directory-backed hosts export large ones).
    pub const ACCOUNTS: u64 = 16 << 20;
    /// A pidfile: a pid and a newline, with room to spare.
    pub const PIDFILE: u64 = 64;
    /// A state file.
    pub const STATE: u64 = 4 << 20;
}

/// Whether a symbolic link as the last path component is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow it (configuration files, often symlinked by configuration management).
    Always,
    /// Follow it only if root owns the link, as systemd does for PIDFile=: a link an
    /// unprivileged user planted cannot point root's read elsewhere.
    RootOwned,
    /// Refuse it (state files).
    Never,
}

/// Reads at most `max` bytes of the regular file `path`.
///
/// Errors (all naming `path`): it does not exist or cannot be opened; it is not a regular
/// file (FIFO, device, directory, socket); it is a symbolic link that `follow` refuses; it
/// is larger than `max` bytes.
pub fn read_regular(path: &Path, max: u64, follow: Follow) -> Result<Vec<u8>, CheckError> {
    let file = open_regular(path, follow)?;
    read_bounded(path, file, max)
}

/// [`read_regular`] decoded as text; bytes that are not UTF-8 become U+FFFD (parsers then
/// reject the line, by its number).
pub fn read_regular_text(path: &Path, max: u64, follow: Follow) -> Result<String, CheckError> {
    let bytes = read_regular(path, max, follow)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Symbolic links followed at most by [`Follow::RootOwned`].
const MAX_LINKS: usize = 8;

/// Opens `path` for reading if it is a regular file (see [`read_regular`]).
///
/// [`Follow::RootOwned`] opens each link in the chain with `O_NOFOLLOW` and follows it by
/// hand only after checking that root owns it: nothing can be swapped in between a check
/// and an open that follows links by itself.
pub fn open_regular(path: &Path, follow: Follow) -> Result<File, CheckError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if follow != Follow::Always {
        flags |= libc::O_NOFOLLOW;
    }
    let mut at = path.to_path_buf();
    let mut hops = 0;
    let file = loop {
        match OpenOptions::new().read(true).custom_flags(flags).open(&at) {
            Ok(file) => break file,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && follow == Follow::RootOwned => {
                let link = fs::symlink_metadata(&at).map_err(|e| CheckError::io(path, e))?;
                if link.uid() != 0 {
                    return Err(refused(
                        path,
                        format!(
                            "it is a symbolic link owned by uid {}, not root; point at the file itself",
                            link.uid()
                        ),
                    ));
                }
                hops += 1;
                if hops > MAX_LINKS {
                    return Err(refused(
                        path,
                        format!("it is a chain of more than {MAX_LINKS} symbolic links"),
                    ));
                }
                let target = fs::read_link(&at).map_err(|e| CheckError::io(path, e))?;
                at = at.parent().unwrap_or(Path::new("/")).join(target);
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && follow == Follow::Never => {
                return Err(refused(path, "it is a symbolic link".to_string()));
            }
            Err(e) => return Err(CheckError::io(path, e)),
        }
    };
    let meta = file.metadata().map_err(|e| CheckError::io(path, e))?;
    if !meta.is_file() {
        return Err(refused(
            path,
            format!("it is {}, not a regular file", kind(&meta)),
        ));
    }
    Ok(file)
}

/// Reads at most `max` bytes; one byte more means the file is too large. The `O_NONBLOCK`
/// flag only matters for FIFOs and devices, which [`open_regular`] refused.
fn read_bounded(path: &Path, file: File, max: u64) -> Result<Vec<u8>, CheckError> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| CheckError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(refused(
            path,
            format!("it is larger than {max} bytes, more than such a file can need"),
        ));
    }
    Ok(bytes)
}

/// What kind of file `meta` describes, for a message.
fn kind(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// `cannot read PATH: WHY`, as an I/O error so callers can still tell it from a parse error.
fn refused(path: &Path, why: String) -> CheckError {
    CheckError::io(path, io::Error::new(io::ErrorKind::InvalidInput, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn err(path: &Path, max: u64, follow: Follow) -> String {
        read_regular(path, max, follow).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_regular_file_up_to_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, "12345").unwrap();
        assert_eq!(read_regular(&f, 5, Follow::Never).unwrap(), b"12345");
        assert_eq!(
            err(&f, 4, Follow::Never),
            format!(
                "cannot read {}: it is larger than 4 bytes, more than such a file can need",
                f.display()
            )
        );
        fs::write(&f, b"a\xffb").unwrap();
        assert_eq!(
            read_regular_text(&f, 9, Follow::Never).unwrap(),
            "a\u{fffd}b"
        );
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        assert_eq!(
            err(Path::new("/dev/zero"), 1 << 20, Follow::Always),
            "cannot read /dev/zero: it is a character device, not a regular file"
        );
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            err(tmp.path(), 10, Follow::Always).ends_with("it is a directory, not a regular file")
        );
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        assert!(err(&fifo, 10, Follow::Always).ends_with("it is a FIFO, not a regular file"));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "no blocking"
        );
        // Through a symlink too.
        let link = tmp.path().join("zero");
        symlink("/dev/zero", &link).unwrap();
        assert!(err(&link, 10, Follow::Always).ends_with("a character device, not a regular file"));
    }

    #[test]
    fn symlinks_follow_the_policy() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::write(&target, "42\n").unwrap();
        let link = tmp.path().join("link");
        symlink(&target, &link).unwrap();
        assert_eq!(read_regular(&link, 9, Follow::Always).unwrap(), b"42\n");
        assert_eq!(
            err(&link, 9, Follow::Never),
            format!("cannot read {}: it is a symbolic link", link.display())
        );
        // The tests run as root, so the link is root's: followed.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(read_regular(&link, 9, Follow::RootOwned).unwrap(), b"42\n");
            // SAFETY: a valid C string path; lchown changes the link, not its target.
            let c = std::ffi::CString::new(link.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
            assert!(err(&link, 9, Follow::RootOwned).ends_with(
                "it is a symbolic link owned by uid 65534, not root; point at the file itself"
            ));
        }
        let missing = tmp.path().join("missing");
        assert_eq!(
            err(&missing, 9, Follow::Always),
            format!(
                "cannot read {}: No such file or directory",
                missing.display()
            )
        );
    }
}
