//! `/proc/PID/limits`, keyed by the item names of limits.conf (`nofile`, `nproc`, ...).
//!
//! Rows are `%-25s %-20s %-20s %-10s` (name, soft, hard, units); names contain spaces and
//! two rows (nice and realtime priority) have no units, so rows are matched by their known
//! name prefix and the two value columns read from what follows it.
//!
//! procfs has a `Limits` parser, but it stops silently at a read error, asserts on unknown
//! rows under test and has no mapping to limits.conf item names, which every plugin needs.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::number::percent;

/// One limit; `None` is `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The soft limit (what the kernel enforces).
    pub soft: Option<u64>,
    /// The hard limit (the ceiling for raising the soft one).
    pub hard: Option<u64>,
}

impl Rlimit {
    /// `1024:4096`, `unlimited:unlimited`.
    pub fn describe(&self) -> String {
        format!("{}:{}", show(self.soft), show(self.hard))
    }
}

/// A limit value for people: a number or `unlimited`.
pub fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
}

/// Compares limit values, `None` being unlimited (above every number).
#[must_use]
pub fn cmp_limit(a: Option<u64>, b: Option<u64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

/// Parses a limit value as /proc, `systemctl show`, `prlimit` and our own options write it:
/// a decimal number, or `unlimited` / `infinity` (any case) or RLIM_INFINITY itself
/// (2^64 − 1) for no limit (`None`). limits.conf has its own, looser rules
/// (docs/contract.md §11.5) in check_rlimit_match's pam_limits mirror.
pub fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("unlimited") || text.eq_ignore_ascii_case("infinity") {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(u64::MAX) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(_) => Err(format!(
            "{text:?} is not a limit: use a whole number or \"unlimited\""
        )),
    }
}

/// The unit a limit is counted in, as the last column of /proc/PID/limits names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitUnit {
    /// Seconds (`cpu`).
    Seconds,
    /// Bytes.
    Bytes,
    /// Processes (`nproc`).
    Processes,
    /// Files (`nofile`).
    Files,
    /// File locks (`locks`).
    Locks,
    /// Pending signals (`sigpending`).
    Signals,
    /// Microseconds (`rttime`).
    Microseconds,
    /// No unit (`nice`, `rtprio`).
    None,
}

/// One resource limit and every name it goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitItem {
    /// The limits.conf item name, also used in our options and labels (`nofile`).
    pub name: &'static str,
    /// The row name in /proc/PID/limits (`Max open files`).
    pub row: &'static str,
    /// The `RLIMIT_*` resource number for getrlimit/setrlimit/prlimit (it differs between
    /// architectures, hence the libc constant).
    pub resource: i32,
    /// The unit of the kernel's value.
    pub unit: LimitUnit,
    /// What one unit of the limits.conf value is in the kernel's units: 1024 for the
    /// items limits.conf counts in KiB, 60 for `cpu` in minutes (docs/contract.md §11.4).
    pub conf_scale: u64,
    /// bash's `ulimit` flag (`-n`).
    pub ulimit: char,
    /// systemd's property for the hard limit (`LimitNOFILE`); the soft one is this name
    /// followed by `Soft`.
    pub systemd: &'static str,
}

macro_rules! item {
    ($name:literal, $row:literal, $res:ident, $unit:ident, $scale:literal, $flag:literal, $prop:literal) => {
        LimitItem {
            name: $name,
            row: $row,
            // RLIMIT_* is u32 in glibc's libc bindings and i32 in musl's; all are below 16.
            #[allow(clippy::cast_possible_wrap, clippy::unnecessary_cast)]
            resource: libc::$res as i32,
            unit: LimitUnit::$unit,
            conf_scale: $scale,
            ulimit: $flag,
            systemd: $prop,
        }
    };
}

/// The 16 resource limits in the kernel's order (that of /proc/PID/limits): the one table
/// every plugin reads item names, rows, flags and properties from (docs/contract.md §10.1).
pub const ITEMS: [LimitItem; 16] = [
    item!(
        "cpu",
        "Max cpu time",
        RLIMIT_CPU,
        Seconds,
        60,
        't',
        "LimitCPU"
    ),
    item!(
        "fsize",
        "Max file size",
        RLIMIT_FSIZE,
        Bytes,
        1024,
        'f',
        "LimitFSIZE"
    ),
    item!(
        "data",
        "Max data size",
        RLIMIT_DATA,
        Bytes,
        1024,
        'd',
        "LimitDATA"
    ),
    item!(
        "stack",
        "Max stack size",
        RLIMIT_STACK,
        Bytes,
        1024,
        's',
        "LimitSTACK"
    ),
    item!(
        "core",
        "Max core file size",
        RLIMIT_CORE,
        Bytes,
        1024,
        'c',
        "LimitCORE"
    ),
    item!(
        "rss",
        "Max resident set",
        RLIMIT_RSS,
        Bytes,
        1024,
        'm',
        "LimitRSS"
    ),
    item!(
        "nproc",
        "Max processes",
        RLIMIT_NPROC,
        Processes,
        1,
        'u',
        "LimitNPROC"
    ),
    item!(
        "nofile",
        "Max open files",
        RLIMIT_NOFILE,
        Files,
        1,
        'n',
        "LimitNOFILE"
    ),
    item!(
        "memlock",
        "Max locked memory",
        RLIMIT_MEMLOCK,
        Bytes,
        1024,
        'l',
        "LimitMEMLOCK"
    ),
    item!(
        "as",
        "Max address space",
        RLIMIT_AS,
        Bytes,
        1024,
        'v',
        "LimitAS"
    ),
    item!(
        "locks",
        "Max file locks",
        RLIMIT_LOCKS,
        Locks,
        1,
        'x',
        "LimitLOCKS"
    ),
    item!(
        "sigpending",
        "Max pending signals",
        RLIMIT_SIGPENDING,
        Signals,
        1,
        'i',
        "LimitSIGPENDING"
    ),
    item!(
        "msgqueue",
        "Max msgqueue size",
        RLIMIT_MSGQUEUE,
        Bytes,
        1,
        'q',
        "LimitMSGQUEUE"
    ),
    item!(
        "nice",
        "Max nice priority",
        RLIMIT_NICE,
        None,
        1,
        'e',
        "LimitNICE"
    ),
    item!(
        "rtprio",
        "Max realtime priority",
        RLIMIT_RTPRIO,
        None,
        1,
        'r',
        "LimitRTPRIO"
    ),
    item!(
        "rttime",
        "Max realtime timeout",
        RLIMIT_RTTIME,
        Microseconds,
        1,
        'R',
        "LimitRTTIME"
    ),
];

impl LimitItem {
    /// The `systemctl show` properties holding this limit: hard, then soft
    /// (`LimitNOFILE`, `LimitNOFILESoft`).
    pub fn systemd_properties(&self) -> [String; 2] {
        [self.systemd.to_string(), format!("{}Soft", self.systemd)]
    }

    /// A unit's limit from parsed `systemctl show` properties (docs/contract.md §11.8): hard
    /// from `Limit<ITEM>`, soft from `Limit<ITEM>Soft` (equal to hard when an older systemd
    /// does not print the soft property); `Ok(None)` when the properties do not mention it.
    pub fn from_systemd(&self, props: &HashMap<String, String>) -> Result<Option<Rlimit>, String> {
        let [hard_prop, soft_prop] = self.systemd_properties();
        let Some(hard_text) = props.get(&hard_prop) else {
            return Ok(None);
        };
        let hard = parse_limit(hard_text).map_err(|e| format!("{hard_prop}: {e}"))?;
        let soft = match props.get(&soft_prop) {
            Some(text) => parse_limit(text).map_err(|e| format!("{soft_prop}: {e}"))?,
            None => hard,
        };
        Ok(Some(Rlimit { soft, hard }))
    }
}

/// The item called `name` (a limits.conf item name), if there is one.
pub fn item(name: &str) -> Option<&'static LimitItem> {
    ITEMS.iter().find(|i| i.name == name)
}

/// The item name as a `'static` str, if `name` is one of [`ITEMS`].
pub fn item_name(name: &str) -> Option<&'static str> {
    item(name).map(|i| i.name)
}

/// The item names, comma-separated, for messages.
pub fn item_names() -> String {
    ITEMS.map(|i| i.name).join(", ")
}

/// Open fds of one process and its `nofile` limit: the fact check_fd_usage judges, and the
/// one check_http_backlog and check_restart_churn report about a listener's owner or a
/// service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdUsage {
    /// Open file descriptors.
    pub fds: u64,
    /// `RLIMIT_NOFILE`; the soft limit is the one open() and accept() hit.
    pub nofile: Rlimit,
}

impl FdUsage {
    /// Fill ratio of the soft limit (0..1, above 1 if the limit was lowered under the open
    /// fds); `None` when the soft limit is unlimited.
    pub fn ratio(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // a ratio needs no more than f64 gives
        self.nofile
            .soft
            .map(|soft| self.fds as f64 / soft.max(1) as f64)
    }

    /// fds left below the soft limit; `None` when unlimited.
    pub fn headroom(&self) -> Option<u64> {
        self.nofile.soft.map(|soft| soft.saturating_sub(self.fds))
    }

    /// Whether no fd number below the soft limit is free: open(), socket() and accept()
    /// then fail with EMFILE (docs/contract.md §10.2).
    pub fn at_limit(&self) -> bool {
        self.nofile.soft.is_some_and(|soft| self.fds >= soft)
    }

    /// `1021/1024 open files (99.7% of soft limit; hard 4096)`, or with an unlimited soft
    /// limit `5 open files (soft limit unlimited)`.
    pub fn describe(&self) -> String {
        match self.nofile.soft {
            #[allow(clippy::cast_precision_loss)]
            Some(soft) => format!(
                "{}/{soft} open files ({}% of soft limit; hard {})",
                self.fds,
                percent(self.fds as f64, soft.max(1) as f64, 1),
                show(self.nofile.hard)
            ),
            None => format!("{} open files (soft limit unlimited)", self.fds),
        }
    }
}

/// All limits of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    values: Vec<(&'static str, Rlimit)>,
}

impl Limits {
    /// Parses the file. Unknown rows (a newer kernel's) are ignored; a missing
    /// `Max open files` row is an error, since every plugin needs it.
    pub fn parse(text: &str) -> Result<Limits, String> {
        let mut values = Vec::new();
        for (lineno, line) in text.lines().enumerate().skip(1) {
            let Some((item, rest)) = ITEMS
                .iter()
                .find_map(|i| Some((i.name, line.strip_prefix(i.row)?)))
            else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let mut value = |which: &str| -> Result<Option<u64>, String> {
                match fields.next() {
                    Some(v) => parse_limit(v).map_err(|_| {
                        format!("line {}: {which} limit {v:?} is not a number", lineno + 1)
                    }),
                    None => Err(format!("line {}: no {which} limit", lineno + 1)),
                }
            };
            let soft = value("soft")?;
            let hard = value("hard")?;
            values.push((item, Rlimit { soft, hard }));
        }
        let limits = Limits { values };
        if limits.get("nofile").is_none() {
            return Err("no \"Max open files\" row".to_string());
        }
        Ok(limits)
    }

    /// The limit for a limits.conf item name, if the kernel reported it.
    pub fn get(&self, item: &str) -> Option<Rlimit> {
        self.values
            .iter()
            .find(|(i, _)| *i == item)
            .map(|(_, l)| *l)
    }

    /// `RLIMIT_NOFILE`.
    pub fn nofile(&self) -> Rlimit {
        // parse() guarantees the row.
        self.get("nofile").unwrap_or(Rlimit {
            soft: None,
            hard: None,
        })
    }

    /// Every limit read, in the kernel's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Rlimit)> + '_ {
        self.values.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOWERED: &str =
        include_str!("../../tests/fixtures/proc/limits/lowered-nofile-linux-6.18.txt");
    const PID1: &str = include_str!("../../tests/fixtures/proc/limits/pid1-linux-6.18.txt");

    #[test]
    fn numbers_unlimited_and_rows_without_units() {
        let l = Limits::parse(LOWERED).unwrap();
        assert_eq!(
            l.nofile(),
            Rlimit {
                soft: Some(1024),
                hard: Some(4096)
            }
        );
        assert_eq!(
            l.get("as"),
            Some(Rlimit {
                soft: Some(2_147_483_648),
                hard: None
            })
        );
        assert_eq!(
            l.get("core"),
            Some(Rlimit {
                soft: None,
                hard: None
            })
        );
        // "Max nice priority" and "Max realtime priority" have no units column.
        assert_eq!(
            l.get("nice"),
            Some(Rlimit {
                soft: Some(0),
                hard: Some(0)
            })
        );
        assert_eq!(
            l.get("rtprio"),
            Some(Rlimit {
                soft: Some(0),
                hard: Some(0)
            })
        );
        assert_eq!(
            l.get("rttime"),
            Some(Rlimit {
                soft: None,
                hard: None
            })
        );
        assert_eq!(l.iter().count(), 16);
        assert_eq!(l.nofile().describe(), "1024:4096");
    }

    #[test]
    fn one_table_of_items() {
        assert_eq!(ITEMS.len(), 16);
        let nofile = item("nofile").unwrap();
        assert_eq!(
            (nofile.row, nofile.ulimit, nofile.systemd, nofile.unit),
            ("Max open files", 'n', "LimitNOFILE", LimitUnit::Files)
        );
        assert_eq!(i64::from(nofile.resource), i64::from(libc::RLIMIT_NOFILE),);
        assert_eq!(item("cpu").unwrap().conf_scale, 60);
        assert_eq!(item("as").unwrap().conf_scale, 1024);
        assert_eq!(item("msgqueue").unwrap().conf_scale, 1);
        assert_eq!(item("nonewprivs"), None);
        // Every row of a real /proc/PID/limits is in the table, in the kernel's order, and
        // names, flags, properties and resources are all distinct.
        let rows: Vec<&str> = LOWERED
            .lines()
            .skip(1)
            .map(|l| l[..25].trim_end())
            .collect();
        assert_eq!(rows, ITEMS.map(|i| i.row));
        let mut resources: Vec<i32> = ITEMS.iter().map(|i| i.resource).collect();
        resources.sort_unstable();
        resources.dedup();
        assert_eq!(resources.len(), 16);
        let mut flags: Vec<char> = ITEMS.iter().map(|i| i.ulimit).collect();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(flags.len(), 16);
        for i in ITEMS {
            assert_eq!(i.systemd, format!("Limit{}", i.name.to_ascii_uppercase()));
        }
        assert_eq!(item_name("rttime"), Some("rttime"));
        assert!(item_names().starts_with("cpu, fsize, "));
    }

    #[test]
    fn unit_limits_from_systemctl_show() {
        let props = |text: &str| -> HashMap<String, String> {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // Captured from `systemctl show nginx` (systemd 257).
        let nginx = props(
            "LimitCORE=infinity\nLimitCORESoft=0\nLimitNOFILE=524288\nLimitNOFILESoft=1024\n",
        );
        let of = |name: &str, p: &HashMap<String, String>| item(name).unwrap().from_systemd(p);
        assert_eq!(
            of("nofile", &nginx),
            Ok(Some(Rlimit {
                soft: Some(1024),
                hard: Some(524_288)
            }))
        );
        assert_eq!(
            of("core", &nginx),
            Ok(Some(Rlimit {
                soft: Some(0),
                hard: None
            }))
        );
        assert_eq!(of("nproc", &nginx), Ok(None));
        // Older systemd prints only the hard property: it is both.
        assert_eq!(
            of("nofile", &props("LimitNOFILE=4096\n")),
            Ok(Some(Rlimit {
                soft: Some(4096),
                hard: Some(4096)
            }))
        );
        assert!(of("nofile", &props("LimitNOFILE=lots\n"))
            .unwrap_err()
            .starts_with("LimitNOFILE: "));
        assert_eq!(
            item("core").unwrap().systemd_properties(),
            ["LimitCORE", "LimitCORESoft"]
        );
    }

    #[test]
    fn one_unlimited_parser() {
        for none in [
            "unlimited",
            "Unlimited",
            "infinity",
            "INFINITY",
            " infinity\n",
            "18446744073709551615",
        ] {
            assert_eq!(parse_limit(none), Ok(None), "{none:?}");
        }
        assert_eq!(parse_limit("1024"), Ok(Some(1024)));
        assert_eq!(
            parse_limit("9223372036854775807"),
            Ok(Some(9_223_372_036_854_775_807))
        );
        for bad in ["", "-1", "10k", "0x10", "1.5", "lots"] {
            assert!(parse_limit(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fd_usage() {
        let u = FdUsage {
            fds: 1021,
            nofile: Rlimit {
                soft: Some(1024),
                hard: Some(4096),
            },
        };
        assert_eq!(
            u.describe(),
            "1021/1024 open files (99.7% of soft limit; hard 4096)"
        );
        assert_eq!((u.headroom(), u.at_limit()), (Some(3), false));
        assert!(FdUsage { fds: 1024, ..u }.at_limit());
        assert!(u.ratio().unwrap() > 0.997);
        let unlimited = FdUsage {
            fds: 5,
            nofile: Rlimit {
                soft: None,
                hard: None,
            },
        };
        assert_eq!(unlimited.describe(), "5 open files (soft limit unlimited)");
        assert_eq!(
            (
                unlimited.ratio(),
                unlimited.headroom(),
                unlimited.at_limit()
            ),
            (None, None, false)
        );
    }

    #[test]
    fn pid1_fixture_parses() {
        let l = Limits::parse(PID1).unwrap();
        assert!(l.nofile().soft.is_some());
    }

    #[test]
    fn unknown_rows_ignored_missing_nofile_and_garbage_rejected() {
        let extra = format!("{LOWERED}Max future thing          1                    2                    things    \n");
        assert_eq!(Limits::parse(&extra).unwrap().iter().count(), 16);
        let without: String = LOWERED
            .lines()
            .filter(|l| !l.starts_with("Max open files"))
            .flat_map(|l| [l, "\n"])
            .collect();
        assert_eq!(
            Limits::parse(&without).unwrap_err(),
            "no \"Max open files\" row"
        );
        let garbage = LOWERED.replace("1024                 4096", "lots                 4096");
        assert!(Limits::parse(&garbage)
            .unwrap_err()
            .contains("\"lots\" is not a number"));
        assert!(Limits::parse("").is_err());
    }
}
