//! `check_http_backlog`: TCP listen-queue saturation and drops, and an HTTP probe that says
//! why it fails.
//!
//! In the incident this plugin exists for, the kernel kept completing handshakes into the
//! listen queue while the service could not `accept()` them (EMFILE), so the supervisor's
//! `GET /` connected and then read nothing. This check measures the accept queue against
//! the backlog (`sock_diag`), the listener's drops and the host's `ListenOverflows` as deltas
//! since the last run, probes the service over HTTP with each failure class in its own
//! words, and, when something fails, names the process holding the listener and whether it
//! sits at its open-files limit.
//!
//! A run has three stages: [`acquire`] reads the system into a plain
//! [`acquire::Observation`], [`evaluate`] turns it (with the options and the last run's
//! state) into findings and perfdata, and common's `Report` renders them.
#![deny(missing_docs)]

pub mod acquire;
pub mod args;
pub mod evaluate;
pub mod listener;
pub mod netns;
pub mod owner;
pub mod probe;
pub mod procnet;
pub mod sock_diag;
pub mod sockets;
pub mod target;
pub mod tls;
pub mod unix;
pub mod unix_diag;

use std::time::Instant;

use procguard_common::proc::ProcRoot;
use procguard_common::{CheckError, Report};

pub use crate::args::Args;

/// The check: acquire, evaluate (once more with the listeners' owners when something is
/// wrong: looking them up costs a readlink per fd of every process), render.
///
/// # Errors
///
/// Usage errors, and what makes the whole check impossible (UNKNOWN).
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
