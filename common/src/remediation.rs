//! The one-line fix for a limit that is too low, addressed to whoever gives the service its
//! limit (see [`crate::provenance`]).
//!
//! Rules every line keeps: it proposes the value asked for, never the one the process already
//! has; it raises soft and hard separately where needed and never lowers a hard limit (in sh,
//! `ulimit -n N` sets both, so a lower N would lower the hard limit); it says when raising a
//! hard limit needs privilege (root or `CAP_SYS_RESOURCE`); and for a daemon that sets its own
//! limit from its configuration it names that setting.

use std::fmt::Write as _;

use crate::proc::container::Runtime;
use crate::proc::limits::{cmp_limit, show};
use crate::proc::Rlimit;
use crate::provenance::{Kind, Provenance, SoftOrigin, Starter};

/// A daemon that sets its own limit from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonSetting {
    /// Executable names (a trailing `*` matches any suffix, as in `php-fpm*`).
    pub names: &'static [&'static str],
    /// The limits.conf item it sets.
    pub item: &'static str,
    /// The setting.
    pub setting: &'static str,
    /// Where it goes; `{v}` is replaced by the wanted value.
    pub fix: &'static str,
}

/// Daemons that call setrlimit on themselves from their configuration.
pub const DAEMON_SETTINGS: [DaemonSetting; 9] = [
    DaemonSetting {
        names: &["nginx"],
        item: "nofile",
        setting: "worker_rlimit_nofile",
        fix: "set 'worker_rlimit_nofile {v};' in nginx.conf's main context (workers get it as soft and hard), then nginx -s reload",
    },
    DaemonSetting {
        names: &["php-fpm*"],
        item: "nofile",
        setting: "rlimit_files",
        fix: "set 'rlimit_files = {v}' in php-fpm.conf [global] or the pool, then restart php-fpm",
    },
    DaemonSetting {
        names: &["php-fpm*"],
        item: "core",
        setting: "rlimit_core",
        fix: "set 'rlimit_core = {v}' in php-fpm.conf [global] or the pool, then restart php-fpm",
    },
    DaemonSetting {
        names: &["haproxy"],
        item: "nofile",
        setting: "ulimit-n",
        fix: "set 'ulimit-n {v}' in haproxy.cfg's global section (without it HAProxy derives the limit from maxconn), then reload haproxy",
    },
    DaemonSetting {
        names: &["redis-server"],
        item: "nofile",
        setting: "maxclients",
        fix: "raise 'maxclients' in redis.conf (Redis sets its nofile to maxclients + 32 where it may; for {v}: maxclients {v} - 32), then restart redis",
    },
    DaemonSetting {
        names: &["mysqld", "mariadbd"],
        item: "nofile",
        setting: "open_files_limit",
        fix: "set 'open_files_limit = {v}' in [mysqld] (under systemd the unit's LimitNOFILE= caps it), then restart the server",
    },
    DaemonSetting {
        names: &["squid"],
        item: "nofile",
        setting: "max_filedescriptors",
        fix: "set 'max_filedescriptors {v}' in squid.conf, then restart squid",
    },
    DaemonSetting {
        names: &["lighttpd"],
        item: "nofile",
        setting: "server.max-fds",
        fix: "set 'server.max-fds = {v}' in lighttpd.conf, then restart lighttpd",
    },
    DaemonSetting {
        names: &["icinga2"],
        item: "nofile",
        setting: "ICINGA2_RLIMIT_FILES",
        fix: "set ICINGA2_RLIMIT_FILES={v} in /etc/default/icinga2 (or /etc/sysconfig/icinga2), then restart icinga2",
    },
];

/// The setting of a daemon that sets `item` itself, if `name` is one.
#[must_use]
pub fn daemon_setting(name: &str, item: &str) -> Option<&'static DaemonSetting> {
    DAEMON_SETTINGS.iter().find(|d| {
        d.item == item
            && d.names.iter().any(|n| match n.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == *n,
            })
    })
}

/// The sh `ulimit` flag for a limits.conf item, from the one table of limit items.
#[must_use]
pub fn ulimit_flag(item: &str) -> Option<char> {
    crate::proc::limits::item(item).map(|i| i.ulimit)
}

/// What has to change: the final soft and hard values and which of them rise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The item.
    pub item: String,
    /// Soft value after the fix (`N` when no value is known).
    pub soft: String,
    /// Hard value after the fix.
    pub hard: String,
    /// The soft limit must rise.
    pub raise_soft: bool,
    /// The hard limit must rise (needs privilege).
    pub raise_hard: bool,
    /// The process raises its soft limit to its hard one itself.
    pub self_raises: bool,
}

impl Change {
    /// The change from `actual` to at least `want` (`None`: no value known, both halves are
    /// to be raised to `N`). `None` when nothing must rise.
    #[must_use]
    pub fn new(
        item: &str,
        actual: Rlimit,
        want: Option<Rlimit>,
        self_raises: bool,
    ) -> Option<Change> {
        let Some(want) = want else {
            // No target: below its hard limit only the soft one needs to rise (no privilege
            // needed up to the hard value); at it, both.
            let at_hard = cmp_limit(actual.soft, actual.hard).is_ge();
            return Some(Change {
                item: item.to_string(),
                soft: "N".into(),
                hard: if at_hard {
                    "N".into()
                } else {
                    show(actual.hard)
                },
                raise_soft: !(self_raises && at_hard),
                raise_hard: at_hard,
                self_raises,
            });
        };
        let max = |a: Option<u64>, b: Option<u64>| if cmp_limit(a, b).is_ge() { a } else { b };
        let hard = max(max(want.hard, want.soft), actual.hard);
        let soft = max(want.soft, actual.soft);
        let soft = if cmp_limit(soft, hard).is_gt() {
            hard
        } else {
            soft
        };
        let raise_soft = cmp_limit(soft, actual.soft).is_gt();
        let raise_hard = cmp_limit(hard, actual.hard).is_gt();
        (raise_soft || raise_hard).then(|| Change {
            item: item.to_string(),
            soft: show(soft),
            hard: show(hard),
            raise_soft: raise_soft && !(self_raises && raise_hard && soft == hard),
            raise_hard,
            self_raises,
        })
    }

    /// `SOFT:HARD`, or one value when both are the same.
    #[must_use]
    pub fn value(&self) -> String {
        if self.soft == self.hard {
            self.soft.clone()
        } else {
            format!("{}:{}", self.soft, self.hard)
        }
    }

    /// `ulimit -Hn 65536; ulimit -Sn 65536`: raises the hard limit first, never lowers it.
    #[must_use]
    pub fn ulimit(&self) -> String {
        let Some(f) = ulimit_flag(&self.item) else {
            return format!("a raised {} limit", self.item);
        };
        let mut cmds = Vec::new();
        if self.raise_hard {
            cmds.push(format!("ulimit -H{f} {}", self.hard));
        }
        if self.raise_soft {
            cmds.push(format!("ulimit -S{f} {}", self.soft));
        }
        cmds.join("; ")
    }

    /// The privilege note for a hard limit that must rise.
    fn privilege(&self) -> &'static str {
        if self.raise_hard {
            "; raising a hard limit needs root or CAP_SYS_RESOURCE"
        } else {
            ""
        }
    }
}

/// The fix line for a process whose `item` should be at least `want` (`None`: at its
/// limit, no target known). `None` when nothing must rise.
#[must_use]
pub fn fix(p: &Provenance, want: Option<Rlimit>) -> Option<String> {
    let c = Change::new(&p.item, p.actual, want, p.raised_soft_itself())?;
    let (kind, how) = if let Some(d) = p.self_setting() {
        ("config", d.fix.replace("{v}", &c.hard))
    } else if p.soft == SoftOrigin::SetHere && !c.raise_hard {
        // The soft value was not handed down: a starter's limit would be lowered again by
        // whatever set it, so the fix goes where it is set.
        ("", set_here(p, &c))
    } else {
        match &p.starter {
            Some(s) => (s.kind.label(), by_starter(s, &c)),
            None => ("", generic(p, &c)),
        }
    };
    let tag = if kind.is_empty() {
        String::new()
    } else {
        format!(" ({kind})")
    };
    let note = if c.self_raises && c.raise_hard {
        "; the process raises its soft limit to it".to_string()
    } else {
        String::new()
    };
    let now = if c.soft == "N" {
        String::new()
    } else {
        format!(
            "; now: prlimit --pid {} --{}={}:{}",
            p.pid, c.item, c.soft, c.hard
        )
    };
    Some(format!("fix{tag}: {how}{note}{}{now}", c.privilege()))
}

/// A soft limit the process or its start command set, other than what its parent passed on.
fn set_here(p: &Provenance, c: &Change) -> String {
    let parent = p
        .chain
        .first()
        .map(|a| format!(" (its parent {} has {})", a.who(), a.limit.describe()))
        .unwrap_or_default();
    format!(
        "{} sets its own soft limit{parent}: raise it where that is set, in its own configuration or as '{}' in its start command, up to the hard {} without privilege",
        p.who,
        c.ulimit(),
        c.hard
    )
}

fn generic(p: &Provenance, c: &Change) -> String {
    let what = if c.raise_hard {
        "raise the hard limit"
    } else {
        "raise the soft limit"
    };
    let sn = c.ulimit();
    match (&p.orphaned, &p.hard_from) {
        (Some(_), _) => format!(
            "{what} in whatever starts it ('{sn}' in its start command); it left its starting parent and nothing it carries names who that was"
        ),
        (None, Some(a)) => format!("{what} where {} starts it: '{sn}' in its start command", a.who()),
        (None, None) => format!(
            "{what} in the command that starts it ('{sn}'), which set the value it has"
        ),
    }
}

fn by_starter(s: &Starter, c: &Change) -> String {
    let who = s.who();
    let sn = c.ulimit();
    let item = &c.item;
    let prop = crate::proc::limits::item(item).map_or("Limit...", |i| i.systemd);
    let service = s.service.clone().unwrap_or_else(|| "SERVICE".into());
    let file = |default: &str| {
        s.config
            .as_ref()
            .map_or_else(|| default.to_string(), |f| f.display().to_string())
    };
    match s.kind {
        Kind::Monit => format!(
            "start program = \"/bin/sh -c '{sn}; ...'\" in 'check process {service}' of {}, then monit reload (Monit runs it as root), or raise Monit's own limit ({})",
            file("its control file"),
            unit_line(prop, c, s.unit.as_deref())
        ),
        Kind::Supervisord => supervisord(s, c, prop, &file("supervisord.conf")),
        Kind::Systemd => match &s.service {
            Some(u) => format!(
                "{prop}={} in {u} ([Service], systemctl edit {u}), then systemctl restart {u}",
                c.value()
            ),
            None => format!(
                "Default{prop}={} in /etc/systemd/system.conf (or {prop}= in the unit), daemon-reexec, restart the service",
                c.value()
            ),
        },
        Kind::Pm2 => format!(
            "the PM2 daemon {who} passes on its own limits, fixed when it started (not by pm2 start): pm2 kill, then '{sn}; pm2 resurrect' from a shell that may, or {}",
            unit_line(prop, c, s.unit.as_deref())
        ),
        Kind::Runit if !c.raise_hard && item == "nofile" => format!(
            "'chpst -o {}' before exec in the run script of {service} (sets the soft limit only)",
            c.soft
        ),
        Kind::Runit => format!(
            "'{sn}' before exec in the run script of {service} (runsv runs it as root; chpst -o sets the soft limit only)"
        ),
        Kind::S6 if !c.raise_hard && item == "nofile" => format!(
            "'s6-softlimit -o {}' before exec in the run script of {service} (sets the soft limit only)",
            c.soft
        ),
        Kind::S6 => format!(
            "'{sn}' before exec in the run script of {service} (s6-softlimit sets soft limits only)"
        ),
        Kind::Cron => format!(
            "jobs get {who}'s limits: start the job's command with '{sn};', or set {prop}= in the cron unit"
        ),
        Kind::Login => format!(
            "it was started by hand from a login session, whose limits (pam_limits, limits.conf) it got; start it from its real supervisor with '{sn}' — restarting it by hand only hides the fault until its supervisor restarts it again"
        ),
        Kind::Shell => format!("'{sn}' in the script {who} that starts it"),
        Kind::Container(rt) => container(rt, c, prop),
    }
}

/// `LimitNOFILE=65536 in monit.service`: the limit in the starter's own unit.
fn unit_line(prop: &str, c: &Change, unit: Option<&str>) -> String {
    format!("{prop}={} in {}", c.value(), unit.unwrap_or("its unit"))
}

fn supervisord(s: &Starter, c: &Change, prop: &str, file: &str) -> String {
    let knob = match c.item.as_str() {
        "nofile" => "minfds",
        "nproc" => "minprocs",
        _ => {
            return format!(
                "{} passes its own limits on: '{}; exec ...' in the program's command",
                s.who(),
                c.ulimit()
            )
        }
    };
    let mut out = format!(
        "{knob}={} in [supervisord] of {file}, then restart supervisord (its children inherit its limits; at start it raises its soft limit to {knob}, the hard one only as root)",
        c.soft
    );
    if c.raise_hard {
        let unit = unit_line(prop, c, s.unit.as_deref());
        let _ = write!(out, "; the hard limit where it starts: {unit}");
    }
    out
}

fn container(rt: Option<Runtime>, c: &Change, prop: &str) -> String {
    let v = format!("{}={}:{}", c.item, c.soft, c.hard);
    match rt {
        Some(Runtime::Docker) | None => format!(
            "docker run --ulimit {v} (compose: ulimits:), or default-ulimits in /etc/docker/daemon.json; else containers get the runtime's own limit ({prop}= of docker.service / containerd.service)"
        ),
        Some(Runtime::Podman) => format!(
            "podman run --ulimit {v}, or default_ulimits in containers.conf; else containers get the limit podman and conmon started with"
        ),
        Some(Runtime::Containerd | Runtime::CriO) => format!(
            "pods get the container runtime's own limits: {prop}= of containerd.service / crio.service (or default ulimits in its config)"
        ),
        Some(Runtime::Lxc) => format!(
            "lxc.prlimit.{} = {}:{} in the container's config",
            c.item, c.soft, c.hard
        ),
        Some(Runtime::Machine) => format!(
            "{prop}={}:{} in the container's .nspawn file [Exec], or systemd-nspawn --rlimit",
            c.soft, c.hard
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(soft: u64, hard: u64) -> Rlimit {
        Rlimit {
            soft: Some(soft),
            hard: Some(hard),
        }
    }

    #[test]
    fn changes_never_lower_and_never_repeat_the_current_value() {
        // Soft short, hard fine: soft only.
        let c = Change::new("nofile", rl(1024, 524_288), Some(rl(65536, 524_288)), false).unwrap();
        assert_eq!(c.ulimit(), "ulimit -Sn 65536");
        assert!(!c.raise_hard);
        // Hard short (soft fine): the hard one rises, the soft one stays.
        let c = Change::new("nofile", rl(1024, 4096), Some(rl(1024, 8192)), false).unwrap();
        assert_eq!(c.ulimit(), "ulimit -Hn 8192");
        assert_eq!((c.soft.as_str(), c.hard.as_str()), ("1024", "8192"));
        // Both short.
        let c = Change::new("nofile", rl(1024, 4096), Some(rl(65536, 65536)), false).unwrap();
        assert_eq!(c.ulimit(), "ulimit -Hn 65536; ulimit -Sn 65536");
        // A soft wish above the hard limit raises the hard one too.
        let c = Change::new("nofile", rl(1024, 4096), Some(rl(65536, 4096)), false).unwrap();
        assert_eq!(c.ulimit(), "ulimit -Hn 65536; ulimit -Sn 65536");
        // Node raises its soft limit itself: only the hard one.
        let c = Change::new("nofile", rl(4096, 4096), Some(rl(65536, 4096)), true).unwrap();
        assert_eq!(c.ulimit(), "ulimit -Hn 65536");
        // A hard limit above the wish is kept.
        let c = Change::new("nofile", rl(1024, 20000), Some(rl(8192, 8192)), false).unwrap();
        assert_eq!((c.soft.as_str(), c.hard.as_str()), ("8192", "20000"));
        assert_eq!(c.ulimit(), "ulimit -Sn 8192");
        // Nothing to raise.
        assert_eq!(
            Change::new("nofile", rl(4096, 4096), Some(rl(4096, 4096)), false),
            None
        );
        // Unlimited is above every number.
        let unl = Rlimit {
            soft: None,
            hard: None,
        };
        let c = Change::new("core", rl(0, 0), Some(unl), false).unwrap();
        assert_eq!(c.ulimit(), "ulimit -Hc unlimited; ulimit -Sc unlimited");
    }

    #[test]
    fn daemons_that_set_their_own_limit() {
        assert_eq!(
            daemon_setting("nginx", "nofile").unwrap().setting,
            "worker_rlimit_nofile"
        );
        assert_eq!(
            daemon_setting("php-fpm8.2", "nofile").unwrap().setting,
            "rlimit_files"
        );
        assert_eq!(
            daemon_setting("mariadbd", "nofile").unwrap().setting,
            "open_files_limit"
        );
        assert!(daemon_setting("nginx", "core").is_none());
        assert!(daemon_setting("node", "nofile").is_none());
    }
}
