//! Which Unix stream listeners to check: the one at `--unix PATH`, or with `--unix-only`
//! those of the selected processes (the caller keeps the ones they hold). A path with no
//! listener is a result in words: it does not exist, it is not a socket, or nobody listens
//! on it (a stale socket file left by a service that died).

use std::fs::{FileType, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use procguard_common::{CheckError, Report, Status};

use crate::args::Args;
use crate::listener::Listener;
use crate::unix_diag::{self, UnixListener};

/// The Unix listeners to check. When `--unix PATH` has none, why is a CRITICAL finding (or
/// an UNKNOWN, when the path cannot be looked at) in `notes`, and the list is empty.
pub fn listeners(args: &Args, notes: &mut Report) -> Result<Vec<Listener>, CheckError> {
    if !args.unix_only && args.unix.is_none() {
        return Ok(Vec::new());
    }
    let all = unix_diag::listeners()
        .map_err(|e| CheckError::Other(format!("cannot list Unix listeners: {e}")))?;
    let Some(path) = &args.unix else {
        return Ok(all
            .iter()
            .map(|s| Listener::from_unix(s, name(s)))
            .collect());
    };
    if path.starts_with('@') {
        // An abstract socket has no file: its name is all there is.
        return Ok(match all.iter().find(|s| s.name.as_deref() == Some(path)) {
            Some(s) => vec![Listener::from_unix(s, path.clone())],
            None => {
                notes.add(
                    Status::Critical,
                    format!("nobody listens on the abstract Unix socket {path}"),
                );
                Vec::new()
            }
        });
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            match e.kind() {
                io::ErrorKind::NotFound => notes.add(
                    Status::Critical,
                    format!("no Unix socket at {path}: it does not exist (the service is down, or listens elsewhere)"),
                ),
                _ => notes.unknown(CheckError::io(path, e)),
            }
            return Ok(Vec::new());
        }
    };
    if !meta.file_type().is_socket() {
        notes.add(
            Status::Critical,
            format!("{path} is not a socket: it is {}", kind(meta.file_type())),
        );
        return Ok(Vec::new());
    }
    match all.iter().find(|s| on_file(s, &meta)) {
        Some(s) => Ok(vec![Listener::from_unix(s, path.clone())]),
        None => {
            notes.add(
                Status::Critical,
                format!("nobody listens on {path}: the socket file is there, but no process listens on it (left by a service that stopped?)"),
            );
            Ok(Vec::new())
        }
    }
}

/// Whether `s` is bound to the socket file `meta` (the same inode on the same device).
fn on_file(s: &UnixListener, meta: &Metadata) -> bool {
    s.is_file(meta.ino(), meta.dev())
}

/// How a listener found by selection is called: its path, else its inode.
fn name(s: &UnixListener) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| format!("unnamed Unix socket {}", s.inode))
}

/// `a regular file`, `a directory`, ...
fn kind(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}
