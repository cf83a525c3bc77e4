//! Acquisition: everything read from /proc, the configuration files and systemd, into a
//! plain [`Observation`] per process. Files and `systemctl show` are read once per run,
//! however many processes ask for them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use procguard_common::files::{self, Follow};
use procguard_common::proc::{limits, Limits, ProcRoot, Process};
use procguard_common::select::{pid_from_pidfile, Selected};
use procguard_common::{accounts, systemd, CheckError, Status};

use crate::expectation::Note;
use crate::limits_conf::{self, ConfFile, Flavor};
use crate::plan::{Job, Like, UnitChoice};
use crate::source::like::LikeInput;
use crate::source::pam::PamInput;
use crate::source::unit::UnitInput;
use crate::users::{self, GroupEntry, PasswdEntry};
use crate::{Args, PamFlavor};
use procguard_common::provenance::{self, Provenance};

/// What holds for the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// fs.nr_open: the highest nofile the kernel grants.
    pub nr_open: Option<u64>,
    /// PID 1's limits: where pam_limits starts from.
    pub pid1: Option<Limits>,
    /// Which pam_limits rules apply.
    pub flavor: Flavor,
}

/// One process as read, with what its expectation sources need. A source is `None` when the
/// job does not ask for it, `Err` with the finding when it could not be read.
#[derive(Debug, Clone)]
pub struct Observation {
    /// `name[pid]`.
    pub who: String,
    /// Its PID.
    pub pid: i32,
    /// Its perfdata label prefix.
    pub label: String,
    /// Its limits.
    pub limits: Limits,
    /// Where they were read (for messages).
    pub limits_file: String,
    /// Whether it is the only process its job selected.
    pub alone: bool,
    /// For `--limits-conf`.
    pub pam: Option<Result<PamInput, Note>>,
    /// For `--systemd`.
    pub unit: Option<Result<UnitInput, Note>>,
    /// For `--like-pid` / `--like-pidfile`.
    pub like: Option<Result<LikeInput, Note>>,
    /// Where each too-low item's value came from (filled by [`Acquirer::trace`], only for
    /// the items evaluation finds too low).
    pub origins: BTreeMap<&'static str, Provenance>,
}

type Accounts = Rc<(Vec<PasswdEntry>, Vec<GroupEntry>)>;

/// A `--like-pid` / `--like-pidfile` reference as read once: its PID and its limits (or why
/// there is none to compare with).
type Reference = Result<(i32, Result<LikeInput, Note>), Note>;

/// Reads what the checks need; caches what many processes share.
pub struct Acquirer {
    root: ProcRoot,
    facts: Facts,
    accounts: Option<Accounts>,
    confs: HashMap<PathBuf, Result<Rc<Vec<ConfFile>>, String>>,
    units: HashMap<String, Result<Rc<HashMap<String, String>>, String>>,
    /// By flag (`--like-pid 7`).
    references: HashMap<String, Reference>,
}

impl Acquirer {
    /// Reads the run's [`Facts`]; `--proc-root` must be a procfs.
    pub fn new(args: &Args) -> Result<Acquirer, CheckError> {
        let root = ProcRoot::open(&args.common.proc_root)?;
        #[allow(clippy::match_same_arms)] // one arm per choice reads better than a merged guard
        let flavor = match args.pam_flavor {
            PamFlavor::Upstream => Flavor::Upstream,
            PamFlavor::Debian => Flavor::Debian,
            PamFlavor::Auto => {
                if Path::new("/etc/debian_version").exists() {
                    Flavor::Debian
                } else {
                    Flavor::Upstream
                }
            }
        };
        let facts = Facts {
            nr_open: root.read_u64("sys/fs/nr_open").ok(),
            pid1: root.process(1).limits().ok(),
            flavor,
        };
        Ok(Acquirer {
            root,
            facts,
            accounts: None,
            confs: HashMap::new(),
            units: HashMap::new(),
            references: HashMap::new(),
        })
    }

    /// The /proc to read.
    pub fn root(&self) -> &ProcRoot {
        &self.root
    }

    /// The run's facts.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Reads a selected process and its job's sources; `None` when it exited meanwhile.
    pub fn observe(
        &mut self,
        job: &Job,
        s: &Selected,
        alone: bool,
    ) -> Result<Option<Observation>, CheckError> {
        let who = s.display();
        let root = self.root.clone();
        let p = root.process(s.pid);
        let limits = match p.limits() {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let pam = job.limits_conf.as_ref().map(|path| self.pam(path, &p));
        let unit = job
            .systemd
            .as_ref()
            .map(|choice| self.unit(choice, &p, &job.items, &who));
        let like = job.like.as_ref().map(|like| self.like(like, &p));
        Ok(Some(Observation {
            who,
            pid: s.pid,
            label: s.label.clone(),
            limits,
            limits_file: p.path("limits").display().to_string(),
            alone,
            pam,
            unit,
            like,
            origins: BTreeMap::new(),
        }))
    }

    /// Walks the parent chain of `pid` to find where its value of `item` came from.
    pub fn trace(&self, pid: i32, item: &str) -> Provenance {
        provenance::trace(&self.root, pid, item)
    }

    fn pam(&mut self, path: &Path, p: &Process) -> Result<PamInput, Note> {
        let files = self
            .conf_files(path)
            .map_err(|e| Note::once(Status::Unknown, format!("--limits-conf: {e}")))?;
        let status = p
            .status()
            .map_err(|e| Note::new(Status::Unknown, e.to_string()))?;
        let accounts = self.accounts();
        let identity = users::identity(
            status.euid,
            status.egid,
            &status.groups,
            &accounts.0,
            &accounts.1,
        );
        Ok(PamInput { files, identity })
    }

    fn unit(
        &mut self,
        choice: &UnitChoice,
        p: &Process,
        items: &[&'static str],
        who: &str,
    ) -> Result<UnitInput, Note> {
        let unit = match choice {
            UnitChoice::Named(u) => systemd::unit_name(u),
            UnitChoice::OfProcess => match p.systemd_unit() {
                Ok(Some(u)) => u,
                Ok(None) => {
                    let mut paths = p.cgroup_paths().unwrap_or_default();
                    paths.dedup();
                    return Err(Note::new(
                        Status::Unknown,
                        format!(
                            "{who}: --systemd: the process is not in a systemd unit's cgroup ({})",
                            paths.join(", ")
                        ),
                    ));
                }
                Err(e) => return Err(Note::new(Status::Unknown, e.to_string())),
            },
        };
        let key = format!("{unit} {}", items.join(","));
        let props = self.units.entry(key).or_insert_with(|| {
            let mut names: Vec<String> = items
                .iter()
                .filter_map(|i| limits::item(i))
                .flat_map(limits::LimitItem::systemd_properties)
                .collect();
            names.push("LoadState".into());
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            systemd::show(&unit, &names)
                .map(Rc::new)
                .map_err(|e| e.to_string())
        });
        match props {
            Ok(props) => Ok(UnitInput {
                unit,
                props: Rc::clone(props),
            }),
            Err(e) => Err(Note::once(Status::Unknown, format!("--systemd: {e}"))),
        }
    }

    fn like(&mut self, like: &Like, p: &Process) -> Result<LikeInput, Note> {
        let flag = match like {
            Like::Pid(pid) => format!("--like-pid {pid}"),
            Like::Pidfile(path) => format!("--like-pidfile {}", path.display()),
        };
        // Read once per run, however many processes are compared with it.
        let root = &self.root;
        let reference = self
            .references
            .entry(flag.clone())
            .or_insert_with(|| read_reference(root, like, &flag));
        let (pid, read) = reference.as_ref().map_err(Clone::clone)?;
        if *pid == p.pid() {
            return Ok(LikeInput::Itself { flag });
        }
        read.clone()
    }

    /// The configuration files below `path` (a directory with limits.conf and limits.d, or
    /// one file), read once.
    fn conf_files(&mut self, path: &Path) -> Result<Rc<Vec<ConfFile>>, String> {
        self.confs
            .entry(path.to_path_buf())
            .or_insert_with(|| read_conf_files(path).map(Rc::new))
            .clone()
    }

    fn accounts(&mut self) -> Accounts {
        Rc::clone(self.accounts.get_or_insert_with(|| {
            Rc::new((
                accounts::read_passwd().unwrap_or_default(),
                accounts::read_group().unwrap_or_default(),
            ))
        }))
    }
}

/// The reference process `flag` names: its PID, and its limits and name.
fn read_reference(root: &ProcRoot, like: &Like, flag: &str) -> Reference {
    let pid = match like {
        Like::Pid(pid) => *pid,
        // The reference must be running: a missing, empty or dead pidfile leaves nothing
        // to compare with.
        Like::Pidfile(path) => match pid_from_pidfile(root, path) {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => return Err(Note::once(Status::Unknown, format!("{flag}: {e}"))),
            Err(e) => return Err(Note::once(Status::Unknown, format!("{flag}: {e}"))),
        },
    };
    let reference = root.process(pid);
    let read = match reference.limits() {
        Ok(limits) => Ok(LikeInput::Other {
            who: reference.who(),
            limits,
        }),
        Err(e) if e.is_not_found() => Err(Note::once(
            Status::Unknown,
            format!("{flag}: no process with pid {pid}"),
        )),
        Err(e) => Err(Note::once(Status::Unknown, format!("{flag}: {e}"))),
    };
    Ok((pid, read))
}

/// Reads limits.conf and limits.d/* as pam_limits would (or the one file `path` names).
fn read_conf_files(path: &Path) -> Result<Vec<ConfFile>, String> {
    let read = |file: &Path, name: String| -> Result<ConfFile, String> {
        files::read_regular_text(file, files::max::LIMITS_CONF, Follow::Always)
            .map(|text| ConfFile { name, text })
            .map_err(|e| e.to_string())
    };
    if !path.is_dir() {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        return Ok(vec![read(path, name)?]);
    }
    let mut main = path.join("limits.conf");
    // Newer Linux-PAM falls back to the vendor directory.
    if !main.exists() && path == Path::new("/etc/security") {
        let vendor = Path::new("/usr/etc/security/limits.conf");
        if vendor.exists() {
            main = vendor.to_path_buf();
        }
    }
    let mut files = vec![read(&main, "limits.conf".to_string())?];
    let dir = path.join("limits.d");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for name in limits_conf::sort_limits_d(names) {
            files.push(read(&dir.join(&name), format!("limits.d/{name}"))?);
        }
    }
    Ok(files)
}
