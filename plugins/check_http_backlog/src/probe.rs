//! The HTTP probe: one request with ureq, its phase timings, and the failure classified.
//!
//! ureq 3 gives the failure but not the phase timings, and its errors alone do not say
//! whether the connection was ever established: a connect that hangs and a server that
//! never answers both end as `Error::Timeout(Global)` when the overall deadline is what
//! expires. So the agent is built with a connector chain (ureq's `unversioned` transport
//! API, the documented way to wrap its transports) that puts [`Stamp`] right after ureq's
//! own `TcpConnector`: the moment the TCP transport reaches it is the connect time, and
//! its `await_input` records the first byte received. With those two stamps each class is
//! told apart without measuring anything a second time:
//!
//! | what happened | ureq says | stamps | class |
//! |---|---|---|---|
//! | RST to the SYN | `Io(ConnectionRefused)` | - | refused |
//! | SYN unanswered (e.g. accept queue full: the kernel drops it) | `Timeout(_)` | none | connect timeout |
//! | connected, nothing read | `Timeout(_)` | connect | no response |
//! | connected, then FIN or RST before a response | `Io(UnexpectedEof / ConnectionReset)` | connect | closed / reset |
//! | response too slow to complete | `Timeout(_)` | connect + first byte | incomplete |
//!
//! For https the first byte is the first byte at the TCP level (the TLS server hello),
//! which is what tells "the server never answered" apart from "it answered slowly".

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use procguard_common::error::io_text;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, TcpConnector, Transport,
};

use crate::tls::{Setup, TlsConnector, TlsFailure};

/// The most of a response body that is read (and thrown away) to time the whole response.
const BODY_LIMIT: u64 = 1024 * 1024;

/// How the probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status.
    Status(u16),
    /// The connection was refused (RST to the SYN): nothing listens.
    Refused,
    /// The handshake did not complete in time.
    ConnectTimeout,
    /// Connected, but not one byte came back in time.
    NoResponse,
    /// Connected, then the peer reset the connection before a response.
    Reset,
    /// Connected, then the peer closed the connection before a response.
    Closed,
    /// Bytes came, but the response did not complete in time.
    Incomplete,
    /// TLS failed: the handshake, or the certificate with `--verify-cert`.
    Tls(TlsFailure),
    /// Anything else (a malformed response, a bad URL), in plain words.
    Failed(String),
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// How it ended.
    pub outcome: Outcome,
    /// Time to the established connection, if it got that far.
    pub connect: Option<Duration>,
    /// Time to the first byte received, if any came.
    pub first_byte: Option<Duration>,
    /// Time until the probe ended (the response read, or the failure).
    pub total: Duration,
}

/// GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// GET, reading up to 1 MiB of the body.
    #[value(name = "GET", alias = "get")]
    Get,
    /// HEAD.
    #[value(name = "HEAD", alias = "head")]
    Head,
}

#[derive(Debug, Default)]
struct Phases {
    connect: Option<Duration>,
    first_byte: Option<Duration>,
}

/// The connector that stamps the connect time and wraps the transport in [`Stamped`].
#[derive(Debug)]
struct Stamp {
    start: Instant,
    phases: Arc<Mutex<Phases>>,
}

impl<In: Transport> Connector<In> for Stamp {
    type Out = Stamped<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(inner) = chained else {
            return Ok(None);
        };
        lock(&self.phases).connect = Some(self.start.elapsed());
        Ok(Some(Stamped {
            inner,
            start: self.start,
            phases: self.phases.clone(),
        }))
    }
}

fn lock(m: &Mutex<Phases>) -> std::sync::MutexGuard<'_, Phases> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A transport that records when its first input arrived.
#[derive(Debug)]
struct Stamped<T> {
    inner: T,
    start: Instant,
    phases: Arc<Mutex<Phases>>,
}

impl<T: Transport> Transport for Stamped<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let progress = self.inner.await_input(timeout)?;
        if progress {
            let mut p = lock(&self.phases);
            if p.first_byte.is_none() {
                p.first_byte = Some(self.start.elapsed());
            }
        }
        Ok(progress)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Where the probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL: its scheme, address, path and query (with `unix`, only scheme, host, path).
    pub url: String,
    /// `--host`: the Host header and TLS server name; the connection still goes to the
    /// URL's address.
    pub host: Option<String>,
    /// Connect to this Unix stream socket instead of the URL's address.
    pub unix: Option<PathBuf>,
}

impl Target {
    /// `https://127.0.0.1:8443/ (Host app.test)`, `http://localhost/ over /run/app.sock`.
    #[must_use]
    pub fn describe(&self) -> String {
        let host = self
            .host
            .as_ref()
            .map(|h| format!(" (Host {h})"))
            .unwrap_or_default();
        let over = self
            .unix
            .as_ref()
            .map(|p| format!(" over {}", p.display()))
            .unwrap_or_default();
        format!("{}{host}{over}", self.url)
    }

    /// The URL the request is made for: the URL with `--host` as its host (same scheme,
    /// port, path). `None` when the URL does not parse (ureq then says so).
    fn request_url(&self) -> Option<String> {
        let Some(host) = &self.host else {
            return Some(self.url.clone());
        };
        let uri: Uri = self.url.parse().ok()?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Some(format!("{}://{authority}{path}", uri.scheme_str()?))
    }
}

/// Sends one request to `target` with TLS as `tls` says, and waits at most `timeout` for
/// all of it.
pub fn run_target(target: &Target, tls: &Setup, method: Method, timeout: Duration) -> Probe {
    let start = Instant::now();
    let phases = Arc::new(Mutex::new(Phases::default()));
    let tls_failure = Arc::new(Mutex::new(None));
    let connector = ()
        .chain(UnixConnector {
            path: target.unix.clone(),
        })
        .chain(TcpConnector::default())
        .chain(Stamp {
            start,
            phases: phases.clone(),
        })
        .chain(TlsConnector {
            setup: tls.clone(),
            failure: tls_failure.clone(),
        });
    // No proxy, whatever http_proxy/HTTPS_PROXY/ALL_PROXY say: the probe checks the local
    // listener itself, and a proxy in between would answer for it (or refuse).
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("check_http_backlog/", env!("CARGO_PKG_VERSION")))
        .build();
    let resolver = To {
        unix: target.unix.is_some(),
        address_of: target
            .host
            .as_ref()
            .and_then(|_| target.url.parse::<Uri>().ok()),
    };
    let agent = ureq::Agent::with_parts(config, connector, resolver);
    let url = target.request_url().unwrap_or_else(|| target.url.clone());
    let result = match method {
        Method::Get => agent.get(&url).call(),
        Method::Head => agent.head(&url).call(),
    };
    let result = result.and_then(|mut response| {
        let status = response.status().as_u16();
        if method == Method::Get {
            let mut reader = response.body_mut().as_reader().take(BODY_LIMIT);
            io::copy(&mut reader, &mut io::sink())?;
        }
        Ok(status)
    });
    let total = start.elapsed();
    let p = lock(&phases);
    let failed_tls = tls_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Probe {
        outcome: match (result, failed_tls) {
            (Ok(status), _) => Outcome::Status(status),
            (Err(_), Some(f)) => Outcome::Tls(f),
            (Err(e), None) => classify(&e, p.connect.is_some(), p.first_byte.is_some()),
        },
        connect: p.connect,
        first_byte: p.first_byte,
        total,
    }
}

/// The probe's resolver: the URL's own address even when the request names `--host`, and
/// a placeholder for a Unix socket (whose connector ignores addresses).
#[derive(Debug)]
struct To {
    unix: bool,
    /// With `--host`: the original URL, whose host is where the connection goes.
    address_of: Option<Uri>,
}

impl Resolver for To {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if self.unix {
            let mut addrs = self.empty();
            addrs.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
            return Ok(addrs);
        }
        let uri = self.address_of.as_ref().unwrap_or(uri);
        DefaultResolver::default().resolve(uri, config, timeout)
    }
}

/// The first link of the chain: a connection to a Unix stream socket, when one is given.
#[derive(Debug)]
struct UnixConnector {
    path: Option<PathBuf>,
}

impl<In: Transport> Connector<In> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let budget = details.timeout.not_zero().map(|d| *d);
        let stream = connect_unix(path, budget)?;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
        }))
    }
}

/// Connects to the Unix stream socket `path`, waiting at most `budget` when its accept
/// queue is full (a Unix `connect` then blocks, up to `SO_SNDTIMEO`, and fails with EAGAIN).
// sockaddr_un's fields are C types: AF_UNIX fits sa_family_t, path bytes c_char, and the
// length (at most 110) socklen_t.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
fn connect_unix(path: &Path, budget: Option<Duration>) -> Result<UnixStream, ureq::Error> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    // `@name` is an abstract socket: a NUL, then the name, no terminating NUL.
    let raw = path.as_os_str().as_bytes();
    let (bytes, abstract_name) = match raw.strip_prefix(b"@") {
        Some(name) => ([&[0u8][..], name].concat(), true),
        None => (raw.to_vec(), false),
    };
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || (!abstract_name && bytes.contains(&0)) {
        return Err(ureq::Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket path is too long for a Unix socket address (107 bytes)",
        )));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(&bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = UnixStream::from(fd);
    stream.set_write_timeout(Some(budget.unwrap_or(Duration::from_secs(3600))))?;
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + usize::from(!abstract_name);
    // SAFETY: addr is a valid sockaddr_un of at least `len` bytes.
    let rc = unsafe {
        libc::connect(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            std::ptr::addr_of!(addr).cast(),
            len as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
        }
        return Err(e.into());
    }
    Ok(stream)
}

/// ureq's transport over a Unix stream.
#[derive(Debug)]
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

/// Timeouts of the socket calls are the probe's timeouts.
fn timed<T>(r: io::Result<T>, timeout: NextTimeout) -> Result<T, ureq::Error> {
    match r {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(ureq::Error::Timeout(timeout.reason))
        }
        r => Ok(r?),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream
            .set_write_timeout(timeout.not_zero().map(|d| *d))?;
        let output = &self.buffers.output()[..amount];
        timed(self.stream.write_all(output), timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream
            .set_read_timeout(timeout.not_zero().map(|d| *d))?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match self.stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break timed(r, timeout)?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Connections are never reused: one request per probe.
        false
    }
}

/// The failure class of a ureq error, given how far the connection got.
#[must_use]
pub fn classify(e: &ureq::Error, connected: bool, got_bytes: bool) -> Outcome {
    use std::io::ErrorKind as K;
    let io_kind = match e {
        ureq::Error::Io(io) => Some(io.kind()),
        _ => None,
    };
    match (e, io_kind) {
        (_, Some(K::ConnectionRefused)) => Outcome::Refused,
        (ureq::Error::Timeout(_), _) | (_, Some(K::TimedOut | K::WouldBlock)) => {
            if !connected {
                Outcome::ConnectTimeout
            } else if !got_bytes {
                Outcome::NoResponse
            } else {
                Outcome::Incomplete
            }
        }
        (_, Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe)) if !got_bytes => {
            Outcome::Reset
        }
        (_, Some(K::UnexpectedEof)) if !got_bytes => Outcome::Closed,
        (ureq::Error::Rustls(r), _) => Outcome::Tls(TlsFailure::from_rustls(r, None)),
        _ => Outcome::Failed(error_words(e)),
    }
}

/// A ureq error in plain words: never a debug dump of a library type.
fn error_words(e: &ureq::Error) -> String {
    match e {
        ureq::Error::HostNotFound => "host name not found".to_string(),
        ureq::Error::BadUri(_) => "invalid URL".to_string(),
        ureq::Error::Http(_) => "invalid request (URL or header)".to_string(),
        ureq::Error::Protocol(_) => "the response is not valid HTTP/1.x".to_string(),
        ureq::Error::Io(io) => io_words(io),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "TLS failed".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::BodyExceedsLimit(_) => "the response body is too large".to_string(),
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            "redirect not followed".to_string()
        }
        _ => "request failed".to_string(),
    }
}

/// An io error in plain words: the system's message for an OS error (without its
/// "(os error N)" tail), else the kind.
#[must_use]
pub fn io_words(e: &io::Error) -> String {
    if e.raw_os_error().is_some() {
        return io_text(e).to_lowercase();
    }
    match e.kind() {
        io::ErrorKind::InvalidInput => e
            .get_ref()
            .map_or("invalid input".to_string(), ToString::to_string),
        io::ErrorKind::UnexpectedEof => "the connection was closed".to_string(),
        io::ErrorKind::InvalidData => "invalid data from the server".to_string(),
        _ => "input/output error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn classes() {
        let io = |k: io::ErrorKind| ureq::Error::Io(io::Error::from(k));
        let timeout = ureq::Error::Timeout(ureq::Timeout::Global);
        assert_eq!(
            classify(&io(io::ErrorKind::ConnectionRefused), false, false),
            Outcome::Refused
        );
        assert_eq!(classify(&timeout, false, false), Outcome::ConnectTimeout);
        assert_eq!(
            classify(&ureq::Error::Timeout(ureq::Timeout::Connect), false, false),
            Outcome::ConnectTimeout
        );
        assert_eq!(classify(&timeout, true, false), Outcome::NoResponse);
        assert_eq!(classify(&timeout, true, true), Outcome::Incomplete);
        assert_eq!(
            classify(&io(io::ErrorKind::ConnectionReset), true, false),
            Outcome::Reset
        );
        assert_eq!(
            classify(&io(io::ErrorKind::UnexpectedEof), true, false),
            Outcome::Closed
        );
        assert!(matches!(
            classify(&io(io::ErrorKind::UnexpectedEof), true, true),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify(&ureq::Error::HostNotFound, false, false),
            Outcome::Failed(_)
        ));
    }
}
