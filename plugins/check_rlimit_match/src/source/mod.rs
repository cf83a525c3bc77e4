//! The expectation sources, one module per kind. Each turns what acquisition read for a
//! process (files, `systemctl show`, another process's limits) into [`Expectation`]s and
//! [`Note`]s, without reading anything itself, so each is tested on fixture text.

pub mod cli;
pub mod like;
pub mod pam;
pub mod unit;
pub mod yaml;

use std::collections::BTreeSet;

use crate::acquire::{Facts, Observation};
use crate::expectation::{Expectation, Kind, Note};
use crate::plan::Job;

/// What the sources say one process should have.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The expectations, in the order of the sources (stated, limits.conf, unit, like).
    pub list: Vec<Expectation>,
    /// The sources' own findings (a source that could not be read, limits.conf setting
    /// nothing), in the same order.
    pub notes: Vec<Note>,
    /// The kinds of the sources that could be read.
    pub kinds: BTreeSet<Kind>,
    /// What pam_limits would log about the configuration files.
    pub conf_warnings: Vec<String>,
    /// A source speaks for an item without expectation (limits.conf says itself that it
    /// sets nothing; the like-reference is the process itself), so that is no problem.
    pub explained: bool,
}

/// Everything the job's sources expect of the observed process.
pub fn collect(job: &Job, obs: &Observation, facts: &Facts) -> Expected {
    let mut out = Expected::default();
    out.list
        .extend(job.stated.iter().flat_map(cli::Stated::expectations));
    out.explained = obs.pam.is_some();
    match &obs.pam {
        Some(Ok(input)) => pam::expectations(input, &job.items, facts, &obs.who, &mut out),
        Some(Err(note)) => out.notes.push(note.clone()),
        None => {}
    }
    match &obs.unit {
        Some(Ok(input)) => unit::expectations(input, &job.items, facts.nr_open, &mut out),
        Some(Err(note)) => out.notes.push(note.clone()),
        None => {}
    }
    match &obs.like {
        Some(Ok(input)) => like::expectations(input, &job.items, &obs.who, obs.alone, &mut out),
        Some(Err(note)) => out.notes.push(note.clone()),
        None => {}
    }
    out
}
