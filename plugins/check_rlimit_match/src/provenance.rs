//! Where a wrong limit came from.
//!
//! Limits are inherited across fork and exec, so a process that runs with a value other than
//! the one it should have almost always got it from whoever started it. Walking the PPid
//! chain towards PID 1, the *highest consecutive* ancestor with the same soft:hard value is
//! where the value was set (or where it entered: a supervisor started at boot with the
//! kernel defaults). Recognising that ancestor (Monit, systemd, supervisord, ...) tells the
//! operator where to fix it.
//!
//! When the starting parent already exited, the process was reparented to PID 1 or a
//! subreaper and the chain no longer shows it; the session or process group leader being
//! gone is the trace it leaves.

use procguard_common::proc::{ProcRoot, Rlimit};

/// An ancestor in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// Its PID.
    pub pid: i32,
    /// Its full executable name.
    pub name: String,
    /// Its command line.
    pub cmdline: String,
    /// Its value of the item.
    pub limit: Rlimit,
}

impl Ancestor {
    /// `monit[812]`.
    pub fn who(&self) -> String {
        format!("{}[{}]", self.name, self.pid)
    }
}

/// The result of walking up from a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The parents, nearest first, up to the first one with a different value (included).
    pub chain: Vec<Ancestor>,
    /// The highest consecutive ancestor with the same value.
    pub origin: Option<Ancestor>,
    /// Why the starting parent is not in the chain, when it can be told.
    pub orphaned: Option<String>,
    /// A parent that could not be read.
    pub error: Option<String>,
}

const MAX_DEPTH: usize = 64;

/// Walks from `pid` (whose value of `item` is `value`) towards PID 1.
pub fn trace(root: &ProcRoot, pid: i32, item: &str, value: Rlimit) -> Trace {
    let mut t = Trace {
        orphaned: orphaned(root, pid),
        ..Trace::default()
    };
    let mut cur = pid;
    for _ in 0..MAX_DEPTH {
        let ppid = match root.process(cur).stat() {
            Ok(s) => s.ppid,
            Err(e) => {
                t.error = Some(e.to_string());
                break;
            }
        };
        if ppid <= 0 {
            break;
        }
        let p = root.process(ppid);
        let limit = match p.limits() {
            Ok(l) => l.get(item),
            Err(e) => {
                t.error = Some(e.to_string());
                break;
            }
        };
        let Some(limit) = limit else { break };
        let ancestor = Ancestor {
            pid: ppid,
            name: p.name(),
            cmdline: p.cmdline().map(|a| a.join(" ")).unwrap_or_default(),
            limit,
        };
        let same = limit == value;
        t.chain.push(ancestor.clone());
        if !same {
            break;
        }
        t.origin = Some(ancestor);
        cur = ppid;
    }
    t
}

/// Signs that the process that started `pid` has exited: its session or process group
/// leader no longer exists (e.g. Monit's `start program = "/bin/sh -c 'app &'"`: the shell
/// called setsid and exited, and the app was reparented).
fn orphaned(root: &ProcRoot, pid: i32) -> Option<String> {
    let stat = root.process(pid).stat().ok()?;
    let parent = root.process(stat.ppid);
    let now = if stat.ppid > 0 {
        format!("{}[{}]", parent.name(), stat.ppid)
    } else {
        "nobody".to_string()
    };
    let gone = |leader: i32| leader > 0 && leader != pid && !root.process(leader).exists();
    // A parent in the same session (process group) belongs to the tree that started it; only
    // a parent outside it is the adoptive one.
    let parent_stat = parent.stat().ok();
    let outside = |f: fn(&procguard_common::proc::Stat) -> i32, own: i32| {
        parent_stat.as_ref().is_none_or(|s| f(s) != own)
    };
    if gone(stat.session) && outside(|s| s.session, stat.session) {
        return Some(format!(
            "the process that started it has exited (session leader {} is gone); it was reparented to {now}",
            stat.session
        ));
    }
    if gone(stat.pgrp) && outside(|s| s.pgrp, stat.pgrp) {
        return Some(format!(
            "the process that started it has exited (process group leader {} is gone); it was reparented to {now}",
            stat.pgrp
        ));
    }
    // A daemon that detached itself (own session, now a child of init) was started by a
    // process that has exited, unless PID 1 starts services itself (systemd, container inits).
    if stat.ppid == 1 && stat.session == pid {
        let init = root.process(1).name();
        let starts_services = [
            "systemd",
            "init.scope",
            "tini",
            "dumb-init",
            "docker-init",
            "s6-svscan",
            "runit",
            "catatonit",
        ]
        .iter()
        .any(|n| init.starts_with(n));
        if !starts_services {
            return Some(format!(
                "it detached itself (own session, now a child of {now}): the process that started it has exited"
            ));
        }
    }
    None
}

/// A process manager whose children inherit its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    /// Monit.
    Monit,
    /// systemd (PID 1 or a user manager).
    Systemd,
    /// supervisord.
    Supervisord,
    /// runit's runsv.
    Runsv,
    /// s6-supervise.
    S6,
    /// PM2's God daemon.
    Pm2,
    /// containerd-shim (Docker, Kubernetes).
    ContainerdShim,
    /// cron.
    Cron,
    /// sshd, login, su, sudo: a PAM session.
    Session,
    /// An interactive or script shell.
    Shell,
}

impl Supervisor {
    /// Recognises a supervisor by executable name and command line.
    pub fn recognise(name: &str, cmdline: &str) -> Option<Supervisor> {
        let argv0 = cmdline.split(' ').next().unwrap_or_default();
        let base = argv0
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_start_matches('-');
        let is = |n: &str| name == n || base == n;
        Some(if is("monit") {
            Supervisor::Monit
        } else if is("systemd") || name.starts_with("systemd") && cmdline.contains("--user") {
            Supervisor::Systemd
        } else if is("supervisord") || cmdline.contains("bin/supervisord") {
            Supervisor::Supervisord
        } else if is("runsv") || is("runsvdir") {
            Supervisor::Runsv
        } else if is("s6-supervise") || is("s6-svscan") {
            Supervisor::S6
        } else if cmdline.starts_with("PM2 ") || cmdline.contains("God Daemon") || is("pm2") {
            Supervisor::Pm2
        } else if name.starts_with("containerd-shim") || base.starts_with("containerd-shim") {
            Supervisor::ContainerdShim
        } else if is("cron") || is("crond") || is("anacron") {
            Supervisor::Cron
        } else if is("sshd") || is("login") || is("su") || is("sudo") || is("runuser") {
            Supervisor::Session
        } else if [
            "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "ash", "busybox",
        ]
        .iter()
        .any(|s| is(s))
        {
            Supervisor::Shell
        } else {
            return None;
        })
    }

    /// One line saying how to give processes started by this supervisor the limit.
    /// `value` is the wanted soft:hard for `item`; `pid` the process to fix now.
    pub fn remediation(self, who: &str, item: &str, value: &str, single: &str, pid: i32) -> String {
        let ulimit = ulimit_flag(item)
            .map(|f| format!("ulimit -{f} {single}"))
            .unwrap_or_else(|| format!("a raised {item} limit"));
        let now = format!("now: prlimit --pid {pid} --{item}={value}");
        let prop = procguard_common::proc::limits::item(item).map_or("Limit...", |i| i.systemd);
        let how = match self {
            Supervisor::Monit => format!(
                "{who} passes its own limits to what it starts: put '{ulimit}' in the start program (start program = \"/bin/sh -c '{ulimit}; exec ...'\") or raise Monit's own limit"
            ),
            Supervisor::Systemd => format!(
                "set {prop}={value} in the unit ([Service], via systemctl edit UNIT) and restart it"
            ),
            Supervisor::Supervisord if item == "nofile" => format!(
                "set minfds={single} in supervisord.conf [supervisord] and restart supervisord (its children inherit its limit)"
            ),
            Supervisor::Supervisord if item == "nproc" => format!(
                "set minprocs={single} in supervisord.conf [supervisord] and restart supervisord"
            ),
            Supervisor::Supervisord => format!(
                "supervisord passes its own limits on: use '{ulimit}; exec ...' in the program's command"
            ),
            Supervisor::Runsv => format!(
                "add '{ulimit}' (or chpst -o for nofile) to the service's run script before exec"
            ),
            Supervisor::S6 => format!(
                "add s6-softlimit (or '{ulimit}') to the service's run script before exec"
            ),
            Supervisor::Pm2 => format!(
                "PM2 passes its daemon's limits on: start the PM2 daemon with '{ulimit}' (pm2 kill; {ulimit}; pm2 resurrect) or set {prop}= in pm2's systemd unit"
            ),
            Supervisor::ContainerdShim => format!(
                "set the container's ulimit (docker run --ulimit {item}={value}, compose ulimits:, or default-ulimits in daemon.json)"
            ),
            Supervisor::Cron => format!(
                "cron jobs get cron's limits: put '{ulimit};' in the job's command, or add 'session required pam_limits.so' to /etc/pam.d/cron"
            ),
            Supervisor::Session => format!(
                "limits.conf applies only where pam_limits runs: check 'session required pam_limits.so' in /etc/pam.d/ for {who}, or '{ulimit}' before starting"
            ),
            Supervisor::Shell => format!(
                "'{ulimit}' in the shell or script that starts it (a shell cannot raise its hard limit)"
            ),
        };
        format!("fix ({}): {how}; {now}", self.name())
    }

    fn name(self) -> &'static str {
        match self {
            Supervisor::Monit => "monit",
            Supervisor::Systemd => "systemd",
            Supervisor::Supervisord => "supervisord",
            Supervisor::Runsv => "runit",
            Supervisor::S6 => "s6",
            Supervisor::Pm2 => "pm2",
            Supervisor::ContainerdShim => "container",
            Supervisor::Cron => "cron",
            Supervisor::Session => "login session",
            Supervisor::Shell => "shell",
        }
    }
}

/// The remediation when no supervisor is recognised.
pub fn generic_remediation(who: &str, item: &str, value: &str, single: &str, pid: i32) -> String {
    let ulimit = ulimit_flag(item)
        .map(|f| format!("'ulimit -{f} {single}'"))
        .unwrap_or_else(|| "a higher limit".to_string());
    format!(
        "fix: raise the limit where {who} starts it ({ulimit} in the start command); now: prlimit --pid {pid} --{item}={value}"
    )
}

/// The bash `ulimit` flag for a limits.conf item, from the one table of limit items.
pub fn ulimit_flag(item: &str) -> Option<char> {
    procguard_common::proc::limits::item(item).map(|i| i.ulimit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisors_are_recognised() {
        let r = Supervisor::recognise;
        assert_eq!(r("monit", "/usr/bin/monit -I"), Some(Supervisor::Monit));
        assert_eq!(r("systemd", "/sbin/init splash"), Some(Supervisor::Systemd));
        assert_eq!(
            r("systemd", "/lib/systemd/systemd --user"),
            Some(Supervisor::Systemd)
        );
        assert_eq!(
            r(
                "python3.11",
                "/usr/bin/python3 /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf"
            ),
            Some(Supervisor::Supervisord)
        );
        assert_eq!(r("runsv", "runsv nginx"), Some(Supervisor::Runsv));
        assert_eq!(r("s6-supervise", "s6-supervise app"), Some(Supervisor::S6));
        assert_eq!(
            r("node", "PM2 v5.3.0: God Daemon (/root/.pm2)"),
            Some(Supervisor::Pm2)
        );
        assert_eq!(
            r(
                "containerd-shim-runc-v2",
                "/usr/bin/containerd-shim-runc-v2 -namespace moby"
            ),
            Some(Supervisor::ContainerdShim)
        );
        assert_eq!(r("cron", "/usr/sbin/cron -f"), Some(Supervisor::Cron));
        assert_eq!(r("sshd", "sshd: alice@pts/0"), Some(Supervisor::Session));
        assert_eq!(r("bash", "-bash"), Some(Supervisor::Shell));
        assert_eq!(r("node", "node server.js"), None);
    }

    #[test]
    fn remediations_name_the_fix() {
        let m =
            Supervisor::Monit.remediation("monit[812]", "nofile", "500000:500000", "500000", 2100);
        assert_eq!(m, "fix (monit): monit[812] passes its own limits to what it starts: put 'ulimit -n 500000' in the start program (start program = \"/bin/sh -c 'ulimit -n 500000; exec ...'\") or raise Monit's own limit; now: prlimit --pid 2100 --nofile=500000:500000");
        let s = Supervisor::Systemd.remediation("systemd[1]", "nofile", "1024:524288", "1024", 7);
        assert!(s.contains("LimitNOFILE=1024:524288"), "{s}");
        let sv = Supervisor::Supervisord.remediation("x", "nofile", "9:9", "9", 7);
        assert!(sv.contains("minfds=9"), "{sv}");
        assert!(
            generic_remediation("x[1]", "core", "unlimited:unlimited", "unlimited", 7)
                .contains("ulimit -c unlimited")
        );
    }
}
