//! Acquisition: everything check_fd_usage reads from /proc, into a plain [`Observation`].
//! Nothing is judged here (docs/architecture.md).

use procguard_common::proc::limits::FdUsage;
use procguard_common::proc::{FileNr, ProcRoot};
use procguard_common::select::Selected;
use procguard_common::{CheckError, Report};

use crate::evaluate::fill;
use crate::Args;

/// What one run read.
#[derive(Debug, Default)]
pub struct Observation {
    /// What selection itself found: "not running", a candidate that could not be read.
    pub notes: Report,
    /// The processes, unless only `--system` was asked for.
    pub processes: Option<Processes>,
    /// Host-wide file handles, with `--system` or without selectors.
    pub system: Option<System>,
    /// With `-v`: the fd link targets of the fullest process (index into the list of
    /// [`Processes`]), or why they could not be read.
    pub fullest_fds: Option<(usize, Result<Vec<String>, CheckError>)>,
}

/// The processes checked.
#[derive(Debug)]
pub enum Processes {
    /// The selected ones, oldest first; a process that could not be read is its error.
    Selected {
        /// Each selected process that did not exit while being read.
        procs: Vec<Result<(Selected, FdUsage), CheckError>>,
        /// How many exited while being read.
        vanished: usize,
    },
    /// `--all`: every process but the plugin itself, fullest first.
    All {
        /// PID and usage of each readable process.
        procs: Vec<(i32, FdUsage)>,
        /// Why the others could not be read.
        unreadable: Vec<CheckError>,
    },
}

/// `/proc/sys/fs/file-nr` and `fs.nr_open`.
#[derive(Debug)]
pub struct System {
    /// Allocated file handles and `fs.file-max`.
    pub file_nr: FileNr,
    /// `fs.nr_open` (the ceiling of a hard nofile limit), or why it could not be read.
    pub nr_open: Result<u64, CheckError>,
}

/// Reads what `args` asks for below `root`.
pub fn observe(root: &ProcRoot, args: &Args) -> Result<Observation, CheckError> {
    let bare = args.select.is_empty() && !args.all && !args.system;
    let mut obs = Observation::default();
    if !args.select.is_empty() {
        obs.processes = Some(selected(root, args, &mut obs.notes)?);
    } else if args.all || bare {
        obs.processes = Some(all(root)?);
    }
    if args.system || bare {
        obs.system = Some(System {
            file_nr: FileNr::read(root)?,
            nr_open: root.read_u64("sys/fs/nr_open"),
        });
    }
    if args.common.verbose > 0 {
        obs.fullest_fds =
            fullest(obs.processes.as_ref()).map(|(i, pid)| (i, root.process(pid).fd_targets()));
    }
    Ok(obs)
}

/// One process's open fds and nofile limit.
pub fn fd_usage(root: &ProcRoot, pid: i32) -> Result<FdUsage, CheckError> {
    let p = root.process(pid);
    Ok(FdUsage {
        nofile: p.limits()?.nofile(),
        fds: p.fd_count()?,
    })
}

fn selected(root: &ProcRoot, args: &Args, notes: &mut Report) -> Result<Processes, CheckError> {
    let selected = args
        .select
        .resolve(root, args.common.label.as_deref(), notes)?;
    let mut procs = Vec::new();
    let mut vanished = 0;
    for s in selected {
        match fd_usage(root, s.pid) {
            Ok(u) => procs.push(Ok((s, u))),
            Err(e) if e.is_not_found() => vanished += 1,
            Err(e) => procs.push(Err(e)),
        }
    }
    Ok(Processes::Selected { procs, vanished })
}

fn all(root: &ProcRoot) -> Result<Processes, CheckError> {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut procs = Vec::new();
    let mut unreadable = Vec::new();
    for pid in root.pids()?.into_iter().filter(|&p| p != me) {
        match fd_usage(root, pid) {
            Ok(u) => procs.push((pid, u)),
            Err(e) if e.is_not_found() => {} // exited during the scan
            Err(e) => unreadable.push(e),
        }
    }
    procs.sort_by(|(_, a), (_, b)| fill(b).total_cmp(&fill(a)).then(b.fds.cmp(&a.fds)));
    Ok(Processes::All { procs, unreadable })
}

/// Index and PID of the fullest process: the first of the list in `--all` (it is sorted),
/// the first of the fullest among the selected.
pub fn fullest(processes: Option<&Processes>) -> Option<(usize, i32)> {
    match processes? {
        Processes::All { procs, .. } => procs.first().map(|(pid, _)| (0, *pid)),
        Processes::Selected { procs, .. } => {
            let mut best: Option<(usize, i32, f64)> = None;
            for (i, (s, u)) in procs
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p.as_ref().ok()?)))
            {
                if best.is_none_or(|(_, _, f)| fill(u) > f) {
                    best = Some((i, s.pid, fill(u)));
                }
            }
            best.map(|(i, pid, _)| (i, pid))
        }
    }
}
