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

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, RustlsConnector, TcpConnector, Transport,
};

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
    /// Anything else (a malformed response, a TLS failure, a bad URL).
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

/// Sends one request to `url` and waits at most `timeout` for all of it.
pub fn run(url: &str, method: Method, timeout: Duration) -> Probe {
    let start = Instant::now();
    let phases = Arc::new(Mutex::new(Phases::default()));
    let connector = ()
        .chain(TcpConnector::default())
        .chain(Stamp {
            start,
            phases: phases.clone(),
        })
        .chain(RustlsConnector::default());
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("check_http_backlog/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
    let result = match method {
        Method::Get => agent.get(url).call(),
        Method::Head => agent.head(url).call(),
    };
    let result = result.and_then(|mut response| {
        let status = response.status().as_u16();
        if method == Method::Get {
            let mut reader = response.body_mut().as_reader().take(BODY_LIMIT);
            std::io::copy(&mut reader, &mut std::io::sink())?;
        }
        Ok(status)
    });
    let total = start.elapsed();
    let p = lock(&phases);
    Probe {
        outcome: match result {
            Ok(status) => Outcome::Status(status),
            Err(e) => classify(&e, p.connect.is_some(), p.first_byte.is_some()),
        },
        connect: p.connect,
        first_byte: p.first_byte,
        total,
    }
}

/// The failure class of a ureq error, given how far the connection got.
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
        _ => Outcome::Failed(short_error(e)),
    }
}

/// ureq's message without the "(os error N)" tail.
fn short_error(e: &ureq::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
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
