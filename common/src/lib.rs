//! Shared core of the procguard check plugins.
//!
//! Every plugin is wiring around these pieces: parse arguments ([`cli`]), select processes
//! ([`select`]) and read their facts through [`proc`], turn measurements into a [`Report`] of
//! findings and perfdata, and hand it to [`run`], which is the only code that prints and exits.
//! Keeping all of that here means the plugin contract (exit codes 0-3, one output line with
//! perfdata, the worst-of order, the timeout) is written once and tested once.
#![deny(missing_docs)]

pub mod accounts;
pub mod civil;
pub mod cli;
pub mod error;
pub mod files;
pub mod number;
pub mod perfdata;
pub mod proc;
pub mod provenance;
pub mod range;
pub mod remediation;
pub mod report;
pub mod runner;
pub mod seam;
pub mod select;
pub mod state;
pub mod status;
pub mod systemd;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;

pub use cli::{CommonArgs, ThresholdArgs};
pub use error::CheckError;
pub use perfdata::{PerfData, Uom};
pub use range::{Range, Threshold, Thresholds};
pub use report::Report;
pub use runner::{run, CheckArgs};
pub use status::Status;
