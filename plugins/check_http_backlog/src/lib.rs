//! check_http_backlog: TCP listen-queue saturation and drops, and an HTTP probe that says
//! why it fails.
//!
//! In the incident this plugin exists for, the kernel kept completing handshakes into the
//! listen queue while the service could not accept() them (EMFILE), so the supervisor's
//! `GET /` connected and then read nothing. This check measures the accept queue against
//! the backlog (sock_diag), the listener's drops and the host's ListenOverflows as deltas
//! since the last run, probes the service over HTTP with each failure class in its own
//! words, and, when something fails, names the process holding the listener and whether it
//! sits at its open-files limit.
//!
//! A run has three stages: [`acquire`] reads the system into a plain
//! [`acquire::Observation`], [`evaluate`] turns it (with the options and the last run's
//! state) into findings and perfdata, and common's `Report` renders them.

pub mod acquire;
pub mod args;
pub mod evaluate;
pub mod listener;
pub mod owner;
pub mod probe;
pub mod procnet;
pub mod sock_diag;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use procguard_common::proc::ProcRoot;
use procguard_common::{CheckError, Report};

pub use crate::args::Args;
use crate::listener::Listener;

/// The check: acquire, evaluate (once more with the listeners' owners when something is
/// wrong: looking them up costs a readlink per fd of every process), render.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    let deadline = Instant::now() + args.common.timeout.duration;
    args::validate(args)?;
    let root = ProcRoot::open(&args.common.proc_root)?;
    let mut obs = acquire::observe(args, &root, deadline)?;
    let prior = if obs.selected.as_ref().is_some_and(Vec::is_empty) {
        evaluate::Prior::default()
    } else {
        acquire::swap_state(args, &obs)
    };
    let mut verdict = evaluate::evaluate(&obs, args, &prior);
    if verdict.wants_owners {
        acquire::owners(&root, &mut obs, deadline);
        verdict = evaluate::evaluate(&obs, args, &prior);
    }
    Ok(verdict.report)
}

/// The state key: what the check looks at, not the PIDs.
fn target_key(args: &Args) -> String {
    let mut parts = Vec::new();
    if let Some(p) = args.port {
        parts.push(format!("port {p}"));
    }
    if let Some(a) = args.address {
        parts.push(format!("address {a}"));
    }
    if !args.select.is_empty() {
        parts.push(args.select.describe());
    }
    parts.join(" ")
}

/// The URL to probe, if any, and the inode of the listener it goes to: the one serving the
/// URL's address and port, else (`--url` with `--port`) the first listener on `--port`.
fn probe_target(args: &Args, listeners: &[Listener]) -> Option<(String, Option<u64>)> {
    if let Some(url) = &args.url {
        let served = args::url_endpoint(url).ok().and_then(|(host, port)| {
            let ip: Option<IpAddr> = host.parse().ok();
            listeners
                .iter()
                .find(|l| l.port == port && ip.is_none_or(|ip| l.serves(ip)))
        });
        let probed = served.or_else(|| listeners.first().filter(|_| args.port.is_some()));
        return Some((url.clone(), probed.map(|l| l.inode)));
    }
    if !args.probe {
        return None;
    }
    let first = listeners.first();
    let (host, port) = match (args.address, first) {
        (Some(IpAddr::V6(a)), _) => (format!("[{a}]"), args.port?),
        (Some(a), _) => (a.to_string(), args.port?),
        (None, Some(l)) => (l.probe_host(), l.port),
        (None, None) => (Ipv4Addr::LOCALHOST.to_string(), args.port?),
    };
    Some((format!("http://{host}:{port}/"), first.map(|l| l.inode)))
}
