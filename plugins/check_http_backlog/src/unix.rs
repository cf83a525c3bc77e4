//! Which Unix stream listeners to check: the one at `--unix PATH`, or with `--unix-only`
//! those of the selected processes (the caller keeps the ones they hold). A path with no
//! listener is a result in words: it does not exist, it is not a socket, or nobody listens
//! on it (a stale socket file left by a service that died).

use std::fs::{FileType, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use procguard_common::{CheckError, Status};

use crate::args::Args;
use crate::listener::Listener;
use crate::sockets::Net;
use crate::unix_diag::{self, UnixListener};

/// Why `--unix PATH` has no listener: a CRITICAL result, or UNKNOWN when the path cannot
/// be looked at.
pub type NoListener = (Status, String);

/// The Unix listeners to check, or why `--unix PATH` has none, in the network namespace
/// `net` reads (Unix sockets belong to one too); none when `args` asks for none.
///
/// # Errors
///
/// The Unix listeners could not be listed (`unix_diag` failed), or the namespace could
/// not be joined.
pub fn listeners_in(
    net: &Net<'_>,
    args: &Args,
) -> Result<Result<Vec<Listener>, NoListener>, CheckError> {
    if !args.unix_only && args.unix.is_none() {
        return Ok(Ok(Vec::new()));
    }
    match net.ns {
        None => listeners(args),
        Some(ns) => ns.run_in(|| listeners(args)).map_err(|e| {
            CheckError::Other(format!(
                "Unix listeners not read: reading inside {} needs CAP_SYS_ADMIN ({})",
                ns.describe(),
                crate::probe::io_words(&e)
            ))
        })?,
    }
}

/// The Unix listeners to check, or why `--unix PATH` has none (`args` asks for some).
fn listeners(args: &Args) -> Result<Result<Vec<Listener>, NoListener>, CheckError> {
    let all = unix_diag::listeners()
        .map_err(|e| CheckError::Other(format!("cannot list Unix listeners: {e}")))?;
    let Some(path) = &args.unix else {
        return Ok(Ok(all
            .iter()
            .map(|s| Listener::from_unix(s, name(s)))
            .collect()));
    };
    let critical = |text: String| Ok(Err((Status::Critical, text)));
    if path.starts_with('@') {
        // An abstract socket has no file: its name is all there is.
        return match all.iter().find(|s| s.name.as_deref() == Some(path)) {
            Some(s) => Ok(Ok(vec![Listener::from_unix(s, path.clone())])),
            None => critical(format!("nobody listens on the abstract Unix socket {path}")),
        };
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return critical(format!(
                "no Unix socket at {path}: it does not exist (the service is down, or listens elsewhere)"
            ))
        }
        Err(e) => return Ok(Err((Status::Unknown, CheckError::io(path, e).to_string()))),
    };
    if !meta.file_type().is_socket() {
        return critical(format!(
            "{path} is not a socket: it is {}",
            kind(meta.file_type())
        ));
    }
    match all.iter().find(|s| on_file(s, &meta)) {
        Some(s) => Ok(Ok(vec![Listener::from_unix(s, path.clone())])),
        None => critical(format!(
            "nobody listens on {path}: the socket file is there, but no process listens on it (left by a service that stopped?)"
        )),
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
    } else {
        "a regular file"
    }
}
