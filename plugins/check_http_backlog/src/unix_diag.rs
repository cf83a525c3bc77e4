//! Unix stream listeners through `NETLINK_SOCK_DIAG` (`unix_diag`), as `ss -xl` reads them.
//!
//! For a listening Unix socket the kernel reports, in the `UNIX_DIAG_RQLEN` attribute, the
//! connections waiting to be accepted (`sk_ack_backlog`) and the backlog (`sk_max_ack_backlog`):
//! the same accept queue as a TCP listener's. When it is full (queue > backlog) a client's
//! blocking `connect()` waits and a non-blocking one fails with EAGAIN; nothing is dropped or
//! counted. The dump is filtered to LISTEN sockets in the kernel, so its cost does not grow
//! with the (often thousands of) connected Unix sockets on a host.
//!
//! The wire format (`linux/unix_diag.h`), host byte order, after the 16-byte `nlmsghdr` that
//! `sock_diag` writes and reads:
//!
//! ```text
//! unix_diag_req  family u8 | protocol u8 | pad u16 | states u32 | ino u32 | show u32
//!                | cookie [u32;2]                                             (24 bytes)
//! unix_diag_msg  family u8 | type u8 | state u8 | pad u8 | ino u32 | cookie [u32;2]
//!                                                                             (16 bytes)
//!                then attributes: len u16 | type u16 | payload, each 4-byte aligned
//! UNIX_DIAG_NAME  0  the bound path (abstract names start with a NUL byte)
//! UNIX_DIAG_VFS   1  ino u32 | dev u32: the socket file's inode and device (kernel dev_t)
//! UNIX_DIAG_RQLEN 4  rqueue u32 | wqueue u32: for a listener, queue and backlog
//! UNIX_DIAG_UID   7  u32 (Linux >= 5.3)
//! ```

// The wire format's fields are u8/u16/u32 and its constants C ints known to fit them.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use crate::sock_diag::{dump_with, request, u32_at, Attributes, DiagError, TCP_LISTEN};

const UNIX_DIAG_REQ_LEN: usize = 24;
const UNIX_DIAG_MSG_LEN: usize = 16;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_VFS: u32 = 0x02;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UDIAG_SHOW_UID: u32 = 0x40;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_UID: u16 = 7;

/// One listening Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListener {
    /// Socket type: `SOCK_STREAM` (1) or `SOCK_SEQPACKET` (5).
    pub kind: u8,
    /// Socket inode, as in `/proc/PID/fd/N -> socket:[INODE]`.
    pub inode: u32,
    /// The bound name: a path, or `@name` for an abstract socket; `None` if unnamed.
    pub name: Option<String>,
    /// The socket file's inode and device (kernel `dev_t`: major << 20 | minor).
    pub vfs: Option<(u32, u32)>,
    /// Connections waiting to be accepted.
    pub queue: u32,
    /// The backlog: min(`listen()` argument, `net.core.somaxconn`).
    pub backlog: u32,
    /// Owner uid (Linux >= 5.3).
    pub uid: Option<u32>,
}

impl UnixListener {
    /// Whether its socket file is `(ino, dev)`, `dev` as `stat` gives it.
    #[must_use]
    pub fn is_file(&self, ino: u64, dev: u64) -> bool {
        self.vfs.is_some_and(|(i, d)| {
            u64::from(i) == ino
                && u64::from(d >> 20) == u64::from(libc::major(dev))
                && u64::from(d & 0xf_ffff) == u64::from(libc::minor(dev))
        })
    }
}

/// The request datagram: LISTEN sockets with name, file, queue lengths and uid.
#[must_use]
pub fn build_request(seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(UNIX_DIAG_REQ_LEN);
    m.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    m.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // ino: 0 = all
    let show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID;
    m.extend_from_slice(&show.to_ne_bytes());
    m.extend_from_slice(&[0xff; 8]); // no cookie
    debug_assert_eq!(m.len(), UNIX_DIAG_REQ_LEN);
    request(&m, seq)
}

/// One `unix_diag_msg` and its attributes.
///
/// # Errors
///
/// A message that is not `AF_UNIX`, too short, or without its queue lengths.
pub fn parse_msg(p: &[u8]) -> Result<UnixListener, DiagError> {
    let bad = |m: String| Err(DiagError::Malformed(m));
    if p.len() < UNIX_DIAG_MSG_LEN {
        return bad(format!(
            "unix_diag_msg of {} bytes, expected at least {UNIX_DIAG_MSG_LEN}",
            p.len()
        ));
    }
    if i32::from(p[0]) != libc::AF_UNIX {
        return bad(format!("address family {}, expected AF_UNIX", p[0]));
    }
    let mut out = UnixListener {
        kind: p[1],
        inode: u32_at(p, 4),
        name: None,
        vfs: None,
        queue: 0,
        backlog: 0,
        uid: None,
    };
    let mut rqlen = false;
    for attribute in Attributes::new(p, UNIX_DIAG_MSG_LEN) {
        let (kind, v) = attribute?;
        match kind {
            UNIX_DIAG_NAME => out.name = Some(name_text(v)),
            UNIX_DIAG_VFS if v.len() >= 8 => out.vfs = Some((u32_at(v, 0), u32_at(v, 4))),
            UNIX_DIAG_RQLEN if v.len() >= 8 => {
                out.queue = u32_at(v, 0);
                out.backlog = u32_at(v, 4);
                rqlen = true;
            }
            UNIX_DIAG_UID if v.len() >= 4 => out.uid = Some(u32_at(v, 0)),
            _ => {}
        }
    }
    if !rqlen {
        return bad(format!("socket {} without UNIX_DIAG_RQLEN", out.inode));
    }
    Ok(out)
}

/// A bound name as text: the path, or `@name` for an abstract one (whose NULs become `@`,
/// as `ss` shows them).
fn name_text(v: &[u8]) -> String {
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    match v.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest).replace('\0', "@")),
        _ => String::from_utf8_lossy(v).into_owned(),
    }
}

/// The host's (network namespace's) listening Unix stream sockets.
///
/// # Errors
///
/// The dump failed (no `unix_diag` in this kernel, no permission) or its reply is malformed.
pub fn listeners() -> Result<Vec<UnixListener>, DiagError> {
    let all = dump_with(build_request, 1_000_000, parse_msg)?;
    Ok(all
        .into_iter()
        .filter(|s| i32::from(s.kind) == libc::SOCK_STREAM)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock_diag::{align4, parse_replies_with, Replies, SOCK_DIAG_BY_FAMILY};

    /// A reply datagram as the kernel writes it: one message, then `NLMSG_DONE`.
    fn reply(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut msg = vec![libc::AF_UNIX as u8, 1, TCP_LISTEN, 0];
        msg.extend_from_slice(&4242u32.to_ne_bytes());
        msg.extend_from_slice(&[0xff; 8]);
        for (kind, v) in attrs {
            msg.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            msg.extend_from_slice(&kind.to_ne_bytes());
            msg.extend_from_slice(v);
            msg.resize(align4(msg.len()), 0);
        }
        let mut d = Vec::new();
        for (kind, payload) in [
            (SOCK_DIAG_BY_FAMILY, msg),
            (3u16, 0u32.to_ne_bytes().to_vec()),
        ] {
            d.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
            d.extend_from_slice(&kind.to_ne_bytes());
            d.extend_from_slice(&2u16.to_ne_bytes());
            d.extend_from_slice(&7u32.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.extend_from_slice(&payload);
        }
        d
    }

    fn pair(a: u32, b: u32) -> Vec<u8> {
        [a.to_ne_bytes(), b.to_ne_bytes()].concat()
    }

    #[test]
    fn request_layout() {
        let r = build_request(7);
        assert_eq!(r.len(), 40);
        assert_eq!(u32_at(&r, 0), 40);
        assert_eq!(r[16], libc::AF_UNIX as u8);
        assert_eq!(u32_at(&r, 20), 1 << 10);
        assert_eq!(u32_at(&r, 28), 0x53);
    }

    #[test]
    fn listener_with_queue_name_and_file() {
        let rq = pair(5, 4);
        let vfs = pair(99, (8 << 20) | 3);
        let uid = 33u32.to_ne_bytes();
        let d = reply(&[
            (UNIX_DIAG_NAME, b"/run/php/fpm.sock"),
            (UNIX_DIAG_VFS, &vfs),
            (UNIX_DIAG_RQLEN, &rq),
            (UNIX_DIAG_UID, &uid),
        ]);
        let mut out = Replies::default();
        parse_replies_with(&d, 7, &mut out, parse_msg).unwrap();
        assert!(out.done);
        let s = &out.sockets[0];
        assert_eq!(s.inode, 4242);
        assert_eq!(s.name.as_deref(), Some("/run/php/fpm.sock"));
        assert_eq!((s.queue, s.backlog, s.uid), (5, 4, Some(33)));
        assert!(s.is_file(99, libc::makedev(8, 3)));
        assert!(!s.is_file(99, libc::makedev(8, 4)));
    }

    #[test]
    fn abstract_names_and_malformed_replies() {
        assert_eq!(name_text(b"\0gunicorn\0x"), "@gunicorn@x");
        let rq = pair(0, 128);
        let d = reply(&[(UNIX_DIAG_RQLEN, &rq)]);
        let mut out = Replies::default();
        parse_replies_with(&d, 7, &mut out, parse_msg).unwrap();
        assert_eq!(out.sockets[0].name, None);
        // No queue lengths: not something to guess.
        let d = reply(&[(UNIX_DIAG_NAME, b"/x")]);
        let mut out = Replies::default();
        assert!(parse_replies_with(&d, 7, &mut out, parse_msg).is_err());
        // An attribute longer than the message.
        assert!(
            parse_msg(&[1, 1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0]).is_err()
        );
    }

    #[test]
    fn a_real_listener_is_listed() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("unix-diag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let found = listeners().unwrap();
        let me = found
            .iter()
            .find(|s| s.is_file(meta.ino(), meta.dev()))
            .expect("our listener in the dump");
        assert_eq!(me.name.as_deref(), path.to_str());
        assert_eq!(me.queue, 0);
        assert!(me.backlog > 0, "{me:?}");
        drop(l);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
