//! TCP sockets through `NETLINK_SOCK_DIAG` (`inet_diag`), written by hand on `libc`.
//!
//! Why netlink and not /proc/net/tcp: only `inet_diag` reports a listener's backlog
//! (`idiag_wqueue` = `sk_max_ack_backlog`) and its drop counter (`SK_MEMINFO_DROPS`), and the
//! kernel filters by state before serialising anything. A LISTEN-only dump walks only the
//! listening hash, so its cost does not grow with the established or `TIME_WAIT` sockets;
//! /proc/net/tcp formats every socket of every state as text (docs/contract.md §10.4, §10.6).
//!
//! The wire format (linux/netlink.h, `linux/inet_diag.h`, `linux/sock_diag.h`), all in host
//! byte order except ports and addresses, which are in network order:
//!
//! ```text
//! nlmsghdr          len u32 | type u16 | flags u16 | seq u32 | pid u32            (16 bytes)
//! inet_diag_req_v2  family u8 | protocol u8 | ext u8 | pad u8 | states u32 | sockid
//! inet_diag_sockid  sport be16 | dport be16 | src [u8;16] | dst [u8;16] | if u32 | cookie [u32;2]
//! inet_diag_msg     family u8 | state u8 | timer u8 | retrans u8 | sockid | expires u32
//!                   | rqueue u32 | wqueue u32 | uid u32 | inode u32                 (72 bytes)
//!                   then rtattrs: len u16 | type u16 | payload, each 4-byte aligned
//! ```
//!
//! Requests and replies are separate from the socket I/O: [`build_request`] and
//! [`parse_replies`] are pure and tested on bytes captured from a real kernel
//! (`tests/fixtures/sock_diag/`).

// The wire format's fields are u8/u16/u32 and its constants C ints known to fit them.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Netlink protocol number of `sock_diag`.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// Message type of an `inet_diag` request and of its replies.
pub(crate) const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ROOT` | `NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
/// The dump was interrupted by a change of the table; its content may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_HDRLEN: usize = 16;
const INET_DIAG_MSG_LEN: usize = 72;
const INET_DIAG_REQ_V2_LEN: usize = 56;
/// Request attribute carrying a filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Reply attribute with `u32[SK_MEMINFO_VARS]` (enum: NONE, MEMINFO, INFO, VEGASINFO, CONG, TOS,
/// TCLASS, SKMEMINFO = 7, SHUTDOWN, ...). Asked for with bit `1 << (7 - 1)` of `idiag_ext`.
const INET_DIAG_SKMEMINFO: u16 = 7;
/// Filter opcode: local port equal to the port in the next op's `no` field (Linux >= 4.16).
const INET_DIAG_BC_S_EQ: u8 = 11;
/// Filter opcodes: local port >= / <= the port in the next op (any kernel with `inet_diag`).
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;

/// TCP states as the kernel numbers them (`include/net/tcp_states.h`).
pub const TCP_ESTABLISHED: u8 = 1;
/// The LISTEN state.
pub const TCP_LISTEN: u8 = 10;

/// One socket from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSocket {
    /// TCP state (10 = LISTEN).
    pub state: u8,
    /// Local address (`0.0.0.0`/`::` for a wildcard listener).
    pub addr: IpAddr,
    /// Local port.
    pub port: u16,
    /// For a listener: connections waiting in the accept queue (`sk_ack_backlog`).
    pub rqueue: u32,
    /// For a listener: the backlog (`sk_max_ack_backlog` = `min(listen()` arg, somaxconn)).
    pub wqueue: u32,
    /// Owner uid.
    pub uid: u32,
    /// Socket inode, as in `/proc/PID/fd/N -> socket:[INODE]`.
    pub inode: u32,
    /// `sk_drops`, when `SK_MEMINFO` was asked for and present.
    pub drops: Option<u32>,
}

/// What to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// Bit mask of TCP states (`1 << TCP_LISTEN`).
    pub states: u32,
    /// Ask for `SK_MEMINFO` (drops).
    pub meminfo: bool,
    /// Only sockets with this local port (kernel-side bytecode filter).
    pub port: Option<u16>,
    /// Use the `S_GE/S_LE` pair instead of `S_EQ` (kernels before 4.16 reject `S_EQ`).
    pub legacy_port_filter: bool,
}

/// Why a dump failed.
#[derive(Debug)]
pub enum DiagError {
    /// The kernel or the socket layer said no (EPROTONOSUPPORT, EACCES, EINVAL, ...).
    Os(io::Error),
    /// The reply does not have the promised shape.
    Malformed(String),
}

impl std::fmt::Display for DiagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiagError::Os(e) => write!(f, "sock_diag: {e}"),
            DiagError::Malformed(m) => write!(f, "sock_diag: malformed reply: {m}"),
        }
    }
}

impl std::error::Error for DiagError {}

/// The kernel-side filter program for "local port == port".
#[must_use]
pub fn port_bytecode(port: u16, legacy: bool) -> Vec<u8> {
    // struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }: on a match the program skips
    // `yes` bytes, otherwise `no`; the socket is accepted when it lands exactly on the end.
    let op = |code: u8, yes: u8, no: u16| {
        let mut b = vec![code, yes];
        b.extend_from_slice(&no.to_ne_bytes());
        b
    };
    if legacy {
        // GE port, then LE port: 16 bytes; a miss jumps past the end (+4) = rejected.
        [
            op(INET_DIAG_BC_S_GE, 8, 20),
            op(0, 0, port),
            op(INET_DIAG_BC_S_LE, 8, 12),
            op(0, 0, port),
        ]
        .concat()
    } else {
        [op(INET_DIAG_BC_S_EQ, 8, 12), op(0, 0, port)].concat()
    }
}

/// The request datagram for `q` with sequence number `seq`.
#[must_use]
pub fn build_request(q: &Query, seq: u32) -> Vec<u8> {
    let bytecode = q.port.map(|p| port_bytecode(p, q.legacy_port_filter));
    let attr_len = bytecode.as_ref().map_or(0, |b| 4 + b.len());
    let len = INET_DIAG_REQ_V2_LEN + attr_len;
    let mut m = Vec::with_capacity(len);
    // inet_diag_req_v2
    let ext = if q.meminfo {
        1u8 << (INET_DIAG_SKMEMINFO - 1)
    } else {
        0
    };
    m.extend_from_slice(&[q.family, libc::IPPROTO_TCP as u8, ext, 0]);
    m.extend_from_slice(&q.states.to_ne_bytes());
    // sockid (all zero: no exact-socket lookup) and idiag_cookie = INET_DIAG_NOCOOKIE.
    m.extend_from_slice(&[0u8; 40]);
    m.extend_from_slice(&[0xff; 8]);
    if let Some(bc) = bytecode {
        m.extend_from_slice(&((4 + bc.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        m.extend_from_slice(&bc);
    }
    debug_assert_eq!(m.len(), len);
    request(&m, seq)
}

/// A `SOCK_DIAG_BY_FAMILY` dump request with sequence number `seq`: the `nlmsghdr`, then
/// `payload` (the family's request and its attributes).
pub(crate) fn request(payload: &[u8], seq: u32) -> Vec<u8> {
    let len = NLMSG_HDRLEN + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

/// The attributes of a message from offset `at` on (`len u16 | type u16 | payload`, each
/// 4-byte aligned), as (type, payload); the type without `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER`. An attribute that runs outside the message is an error, and the
/// last item.
pub(crate) struct Attributes<'a> {
    msg: &'a [u8],
    at: usize,
}

impl<'a> Attributes<'a> {
    /// Those of `msg` after its fixed part of `at` bytes.
    pub(crate) fn new(msg: &'a [u8], at: usize) -> Attributes<'a> {
        Attributes { msg, at }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(u16, &'a [u8]), DiagError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (p, at) = (self.msg, self.at);
        if at + 4 > p.len() {
            return None;
        }
        let len = u16_at(p, at) as usize;
        let kind = u16_at(p, at + 2) & 0x3fff;
        if len < 4 || at + len > p.len() {
            self.at = p.len();
            return Some(Err(DiagError::Malformed(format!(
                "attribute length {len} at offset {at} outside the message"
            ))));
        }
        self.at = at + align4(len);
        Some(Ok((kind, &p[at + 4..at + len])))
    }
}

/// The state of a dump after some datagrams (of inet sockets, or of `T` for another family's
/// dump, e.g. `unix_diag`).
#[derive(Debug, PartialEq, Eq)]
pub struct Replies<T = DiagSocket> {
    /// Sockets so far.
    pub sockets: Vec<T>,
    /// `NLMSG_DONE` was seen.
    pub done: bool,
    /// Some message carried `NLM_F_DUMP_INTR`.
    pub interrupted: bool,
}

impl<T> Default for Replies<T> {
    fn default() -> Self {
        Replies {
            sockets: Vec::new(),
            done: false,
            interrupted: false,
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses one received datagram (one or more netlink messages) into `out`. Messages of
/// another sequence number are ignored (a late reply to an earlier request).
///
/// # Errors
///
/// A reply that does not have the promised shape, or an error the kernel sent.
pub fn parse_replies(buf: &[u8], seq: u32, out: &mut Replies) -> Result<(), DiagError> {
    parse_replies_with(buf, seq, out, parse_msg)
}

/// [`parse_replies`] for any family: `parse` reads one `SOCK_DIAG_BY_FAMILY` message.
pub(crate) fn parse_replies_with<T>(
    buf: &[u8],
    seq: u32,
    out: &mut Replies<T>,
    parse: fn(&[u8]) -> Result<T, DiagError>,
) -> Result<(), DiagError> {
    let bad = |m: String| Err(DiagError::Malformed(m));
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < NLMSG_HDRLEN {
            return bad(format!(
                "{} trailing bytes, less than a message header",
                rest.len()
            ));
        }
        let len = u32_at(rest, 0) as usize;
        let kind = u16_at(rest, 4);
        let flags = u16_at(rest, 6);
        let msg_seq = u32_at(rest, 8);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return bad(format!(
                "message length {len} at offset {at} outside 16..={}",
                rest.len()
            ));
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        at += align4(len).min(rest.len());
        if msg_seq != seq {
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            out.interrupted = true;
        }
        match kind {
            NLMSG_DONE => {
                // For dumps the payload is an int: 0, or a negative errno when the dump failed.
                if payload.len() >= 4 {
                    let code = u32_at(payload, 0) as i32;
                    if code < 0 {
                        return Err(DiagError::Os(io::Error::from_raw_os_error(-code)));
                    }
                }
                out.done = true;
                return Ok(());
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return bad("NLMSG_ERROR without an error code".into());
                }
                let code = u32_at(payload, 0) as i32;
                if code == 0 {
                    continue; // an ACK
                }
                return Err(DiagError::Os(io::Error::from_raw_os_error(-code)));
            }
            SOCK_DIAG_BY_FAMILY => out.sockets.push(parse(payload)?),
            other => return bad(format!("unexpected message type {other}")),
        }
    }
    Ok(())
}

/// One `inet_diag_msg` and its attributes.
fn parse_msg(p: &[u8]) -> Result<DiagSocket, DiagError> {
    if p.len() < INET_DIAG_MSG_LEN {
        return Err(DiagError::Malformed(format!(
            "inet_diag_msg of {} bytes, expected at least {INET_DIAG_MSG_LEN}",
            p.len()
        )));
    }
    let family = p[0];
    let port = u16::from_be_bytes([p[4], p[5]]);
    let src: [u8; 16] = p[8..24].try_into().unwrap_or_default();
    let addr = match i32::from(family) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(src)),
        other => {
            return Err(DiagError::Malformed(format!(
                "address family {other}, expected AF_INET or AF_INET6"
            )))
        }
    };
    let mut drops = None;
    let drops_at = libc::SK_MEMINFO_DROPS as usize * 4;
    for attribute in Attributes::new(p, INET_DIAG_MSG_LEN) {
        let (kind, value) = attribute?;
        if kind == INET_DIAG_SKMEMINFO && value.len() >= drops_at + 4 {
            drops = Some(u32_at(value, drops_at));
        }
    }
    Ok(DiagSocket {
        state: p[1],
        addr,
        port,
        rqueue: u32_at(p, 56),
        wqueue: u32_at(p, 60),
        uid: u32_at(p, 64),
        inode: u32_at(p, 68),
        drops,
    })
}

/// An `AF_NETLINK` socket closed on drop.
struct NetlinkSocket(libc::c_int);

impl Drop for NetlinkSocket {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

impl NetlinkSocket {
    fn open(recv_timeout: Duration) -> io::Result<NetlinkSocket> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = NetlinkSocket(fd);
        let tv = libc::timeval {
            tv_sec: recv_timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(recv_timeout.subsec_micros()),
        };
        // SAFETY: tv is a valid timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl is valid; we set the family (pid 0 = the kernel).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and kernel are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.0,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                std::ptr::addr_of!(kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram into `buf`; its length. A datagram larger than `buf` is an error, not a
    /// silently cut reply (`MSG_TRUNC` makes recv return the real length).
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n =
                unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
            if n >= 0 {
                let n = n as usize;
                if n > buf.len() {
                    return Err(io::Error::other(format!(
                        "netlink datagram of {n} bytes, larger than the {}-byte buffer",
                        buf.len()
                    )));
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Receive buffer: the kernel fills dump datagrams up to about 32 KiB (ss uses the same).
const RECV_BUF: usize = 64 * 1024;

/// Runs one dump. Bounded: the receive timeout, and at most `max_sockets` sockets kept
/// (the dump is still read to its end so the socket is left clean). A dump interrupted by
/// a concurrent table change is retried up to twice.
///
/// # Errors
///
/// The netlink socket fails, or its reply is malformed.
pub fn dump(q: &Query, max_sockets: usize) -> Result<Vec<DiagSocket>, DiagError> {
    dump_with(|seq| build_request(q, seq), max_sockets, parse_msg)
}

/// [`dump`] for any family: `request` builds the request datagram for a sequence number,
/// `parse` reads one reply message.
pub(crate) fn dump_with<T>(
    request: impl Fn(u32) -> Vec<u8>,
    max_sockets: usize,
    parse: fn(&[u8]) -> Result<T, DiagError>,
) -> Result<Vec<T>, DiagError> {
    let mut last = None;
    for attempt in 0..3u32 {
        let seq = 1 + attempt;
        let replies = dump_once(&request(seq), seq, max_sockets, parse)?;
        if !replies.interrupted {
            return Ok(replies.sockets);
        }
        last = Some(replies.sockets);
    }
    Ok(last.unwrap_or_default())
}

fn dump_once<T>(
    request: &[u8],
    seq: u32,
    max_sockets: usize,
    parse: fn(&[u8]) -> Result<T, DiagError>,
) -> Result<Replies<T>, DiagError> {
    let sock = NetlinkSocket::open(Duration::from_secs(2)).map_err(DiagError::Os)?;
    sock.send(request).map_err(DiagError::Os)?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut out = Replies::default();
    loop {
        let n = sock.recv(&mut buf).map_err(DiagError::Os)?;
        if n == 0 {
            return Err(DiagError::Malformed(
                "end of stream before NLMSG_DONE".into(),
            ));
        }
        parse_replies_with(&buf[..n], seq, &mut out, parse)?;
        out.sockets.truncate(max_sockets);
        if out.done {
            return Ok(out);
        }
    }
}

/// The raw datagrams of one dump, for capturing test fixtures.
#[doc(hidden)]
pub fn dump_raw(q: &Query) -> Result<Vec<Vec<u8>>, DiagError> {
    let sock = NetlinkSocket::open(Duration::from_secs(2)).map_err(DiagError::Os)?;
    sock.send(&build_request(q, 1)).map_err(DiagError::Os)?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut datagrams = Vec::new();
    loop {
        let n = sock.recv(&mut buf).map_err(DiagError::Os)?;
        datagrams.push(buf[..n].to_vec());
        let mut r = Replies::default();
        parse_replies(&buf[..n], 1, &mut r)?;
        if r.done || n == 0 {
            return Ok(datagrams);
        }
    }
}

/// [`dump`] of `q`, with the fallbacks every dump of one family needs: IPv6 disabled in
/// this kernel has nothing to list, and a kernel without `S_EQ` (EINVAL for a port
/// filter) is asked again with the same filter in the old `S_GE`/`S_LE` opcodes.
fn dump_family(q: &Query, max_sockets: usize) -> Result<Vec<DiagSocket>, DiagError> {
    let legacy = Query {
        legacy_port_filter: true,
        ..*q
    };
    match dump(q, max_sockets) {
        Err(DiagError::Os(e))
            if q.family == libc::AF_INET6 as u8
                && matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
                ) =>
        {
            Ok(Vec::new())
        }
        Err(DiagError::Os(e))
            if q.port.is_some()
                && !q.legacy_port_filter
                && e.raw_os_error() == Some(libc::EINVAL) =>
        {
            dump_family(&legacy, max_sockets)
        }
        found => found,
    }
}

/// LISTEN sockets of both families, with drops; `port` filters in the kernel.
///
/// # Errors
///
/// As [`dump`].
pub fn listeners(port: Option<u16>) -> Result<Vec<DiagSocket>, DiagError> {
    let mut all = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let q = Query {
            family,
            states: 1 << TCP_LISTEN,
            meminfo: true,
            port,
            legacy_port_filter: false,
        };
        all.extend(dump_family(&q, 100_000)?);
    }
    Ok(all)
}

/// Which address families to ask about (by default none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Families {
    /// `AF_INET`.
    pub v4: bool,
    /// `AF_INET6` (which also holds IPv4 clients of a dual-stack `::` listener).
    pub v6: bool,
}

/// The local addresses of the ESTABLISHED sockets whose local port is `port` (connections a
/// server on it holds, and any client socket that happens to use that port as its own:
/// the caller matches the addresses), from the kernel-filtered dumps of `families`. The
/// kernel walks every established socket of a family to apply the filter, so this cost
/// grows with the host's connections: ask only for the families that can match.
///
/// # Errors
///
/// As [`dump`].
pub fn established_on(port: u16, families: Families) -> Result<Vec<IpAddr>, DiagError> {
    let mut total = Vec::new();
    let wanted = [
        (families.v4, libc::AF_INET as u8),
        (families.v6, libc::AF_INET6 as u8),
    ];
    for family in wanted.into_iter().filter(|(on, _)| *on).map(|(_, f)| f) {
        let q = Query {
            family,
            states: 1 << TCP_ESTABLISHED,
            meminfo: false,
            port: Some(port),
            legacy_port_filter: false,
        };
        let found = dump_family(&q, 10_000_000)?;
        total.extend(found.into_iter().map(|s| s.addr));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let q = Query {
            family: libc::AF_INET as u8,
            states: 1 << TCP_LISTEN,
            meminfo: true,
            port: None,
            legacy_port_filter: false,
        };
        let m = build_request(&q, 7);
        assert_eq!(m.len(), 72);
        assert_eq!(u32_at(&m, 0), 72);
        assert_eq!(u16_at(&m, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16_at(&m, 6), 0x301);
        assert_eq!(u32_at(&m, 8), 7);
        assert_eq!(&m[16..20], &[2, 6, 64, 0]);
        assert_eq!(u32_at(&m, 20), 1 << 10);
        let with_port = build_request(
            &Query {
                port: Some(8080),
                ..q
            },
            1,
        );
        assert_eq!(with_port.len(), 72 + 4 + 8);
        assert_eq!(u16_at(&with_port, 72), 12);
        assert_eq!(u16_at(&with_port, 74), INET_DIAG_REQ_BYTECODE);
        assert_eq!(&with_port[76..80], &[11, 8, 12, 0]);
        assert_eq!(u16_at(&with_port, 82), 8080);
    }

    /// Bytes of a real dump of this machine's kernel (6.18), captured by the ignored test
    /// `capture_fixtures` in tests/live.rs: one IPv4 listener on 127.0.0.1:PORT with
    /// listen(3), 4 queued connections (queue full) and 2 dropped SYNs, then `NLMSG_DONE`. PORT, inode and
    /// uid are in the `.txt` next to it.
    #[test]
    fn parses_a_real_ipv4_listen_dump() {
        let bytes = include_bytes!("../tests/fixtures/sock_diag/listen-v4-full.bin");
        let facts = include_str!("../tests/fixtures/sock_diag/listen-v4-full.txt");
        let want = Facts::parse(facts);
        let mut r = Replies::default();
        parse_replies(bytes, 1, &mut r).unwrap();
        assert!(r.done && !r.interrupted);
        let s = r
            .sockets
            .iter()
            .find(|s| s.port == want.port)
            .expect("the test listener");
        assert_eq!(s.state, TCP_LISTEN);
        assert_eq!(s.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((s.rqueue, s.wqueue), (want.rqueue, want.wqueue));
        assert_eq!((s.inode, s.uid), (want.inode, want.uid));
        assert_eq!(s.drops, Some(want.drops));
    }

    #[test]
    fn parses_a_real_ipv6_listen_dump() {
        let bytes = include_bytes!("../tests/fixtures/sock_diag/listen-v6.bin");
        let want = Facts::parse(include_str!("../tests/fixtures/sock_diag/listen-v6.txt"));
        let mut r = Replies::default();
        parse_replies(bytes, 1, &mut r).unwrap();
        assert!(r.done);
        let s = r.sockets.iter().find(|s| s.port == want.port).unwrap();
        assert_eq!(s.addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            (s.rqueue, s.wqueue, s.inode),
            (want.rqueue, want.wqueue, want.inode)
        );
    }

    #[test]
    fn a_dump_split_over_datagrams_and_other_sequence_numbers() {
        let bytes = include_bytes!("../tests/fixtures/sock_diag/listen-v4-full.bin");
        // The same messages fed one at a time, as separate datagrams would arrive.
        let mut r = Replies::default();
        let mut at = 0;
        while at < bytes.len() {
            let len = align4(u32_at(bytes, at) as usize);
            parse_replies(&bytes[at..at + len], 1, &mut r).unwrap();
            at += len;
        }
        let mut whole = Replies::default();
        parse_replies(bytes, 1, &mut whole).unwrap();
        assert_eq!(r, whole);
        // A reply to another request is skipped, NLMSG_DONE included.
        let mut other = Replies::default();
        parse_replies(bytes, 2, &mut other).unwrap();
        assert_eq!(other, Replies::default());
    }

    #[test]
    fn errors_and_malformed_replies() {
        // NLMSG_ERROR with -EINVAL, as the kernel answers a bad filter.
        let mut err = Vec::new();
        err.extend_from_slice(&36u32.to_ne_bytes());
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&0u16.to_ne_bytes());
        err.extend_from_slice(&1u32.to_ne_bytes());
        err.extend_from_slice(&0u32.to_ne_bytes());
        err.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
        err.extend_from_slice(&[0u8; 16]);
        match parse_replies(&err, 1, &mut Replies::default()) {
            Err(DiagError::Os(e)) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
            other => panic!("{other:?}"),
        }
        let bytes = include_bytes!("../tests/fixtures/sock_diag/listen-v4-full.bin");
        // Cut inside a message: the header promises more than there is.
        assert!(matches!(
            parse_replies(&bytes[..40], 1, &mut Replies::default()),
            Err(DiagError::Malformed(_))
        ));
        // Cut inside a header.
        assert!(matches!(
            parse_replies(&bytes[..10], 1, &mut Replies::default()),
            Err(DiagError::Malformed(_))
        ));
        // A length below the header size would loop forever if accepted.
        let mut zero = bytes.to_vec();
        zero[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(parse_replies(&zero, 1, &mut Replies::default()).is_err());
        // DUMP_INTR is reported.
        let mut intr = bytes.to_vec();
        let flags = u16_at(&intr, 6) | NLM_F_DUMP_INTR;
        intr[6..8].copy_from_slice(&flags.to_ne_bytes());
        let mut r = Replies::default();
        parse_replies(&intr, 1, &mut r).unwrap();
        assert!(r.interrupted);
    }

    #[test]
    fn attributes_are_aligned_and_bounded() {
        // A fixed part of 4 bytes, a 5-byte attribute of type 7 | NLA_F_NESTED (padded to
        // 8), then one of 4 bytes claiming 12.
        let mut m = vec![9u8; 4];
        m.extend_from_slice(&5u16.to_ne_bytes());
        m.extend_from_slice(&(7u16 | 0x8000).to_ne_bytes());
        m.extend_from_slice(&[42, 0, 0, 0]);
        let whole = m.clone();
        m.extend_from_slice(&12u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        let ok: Vec<_> = Attributes::new(&whole, 4).map(Result::unwrap).collect();
        assert_eq!(ok, [(7, &[42u8][..])]);
        let mut all = Attributes::new(&m, 4);
        assert_eq!(all.next().unwrap().unwrap(), (7, &[42u8][..]));
        match all.next() {
            Some(Err(DiagError::Malformed(m))) => {
                assert_eq!(m, "attribute length 12 at offset 12 outside the message");
            }
            other => panic!("{other:?}"),
        }
        assert!(all.next().is_none());
    }

    /// The kernel accepts both filter programs and they keep exactly the port asked for.
    #[test]
    fn the_kernel_runs_both_port_filters() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let other = elsewhere.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        for legacy in [false, true] {
            let q = Query {
                family: libc::AF_INET as u8,
                states: 1 << TCP_LISTEN,
                meminfo: true,
                port: Some(port),
                legacy_port_filter: legacy,
            };
            let found = dump(&q, 100).unwrap();
            assert_eq!(found.len(), 1, "legacy {legacy}: {found:?}");
            assert_eq!(found[0].port, port);
            assert!(found[0].drops.is_some());
            let est = dump(
                &Query {
                    states: 1 << TCP_ESTABLISHED,
                    meminfo: false,
                    ..q
                },
                100,
            )
            .unwrap();
            // The accepted end has local port `port`; the client end does not.
            assert_eq!(est.len(), 1, "legacy {legacy}: {est:?}");
            assert_eq!(est[0].state, TCP_ESTABLISHED);
        }
        let all = listeners(None).unwrap();
        assert!(all.iter().any(|l| l.port == port) && all.iter().any(|l| l.port == other));
        assert_eq!(
            established_on(port, Families { v4: true, v6: true }).unwrap(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
        drop((client, server, elsewhere));
    }

    /// `key value` lines describing a fixture.
    struct Facts {
        port: u16,
        rqueue: u32,
        wqueue: u32,
        inode: u32,
        uid: u32,
        drops: u32,
    }

    impl Facts {
        fn parse(text: &str) -> Facts {
            let get = |k: &str| -> u64 {
                text.lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
                    .unwrap_or_else(|| panic!("fixture facts lack {k}"))
            };
            Facts {
                port: get("port") as u16,
                rqueue: get("rqueue") as u32,
                wqueue: get("wqueue") as u32,
                inode: get("inode") as u32,
                uid: get("uid") as u32,
                drops: get("drops") as u32,
            }
        }
    }
}
