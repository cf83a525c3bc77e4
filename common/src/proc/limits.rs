//! `/proc/PID/limits`, keyed by the item names of limits.conf (`nofile`, `nproc`, ...).
//!
//! Rows are `%-25s %-20s %-20s %-10s` (name, soft, hard, units); names contain spaces and
//! two rows (nice and realtime priority) have no units, so rows are matched by their known
//! name prefix and the two value columns read from what follows it.
//!
//! procfs has a `Limits` parser, but it stops silently at a read error, asserts on unknown
//! rows under test and has no mapping to limits.conf item names, which every plugin needs.

/// One limit; `None` is `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The limits.conf item names and the row of /proc/PID/limits each stands for.
pub const ITEMS: [(&str, &str); 16] = [
    ("cpu", "Max cpu time"),
    ("fsize", "Max file size"),
    ("data", "Max data size"),
    ("stack", "Max stack size"),
    ("core", "Max core file size"),
    ("rss", "Max resident set"),
    ("nproc", "Max processes"),
    ("nofile", "Max open files"),
    ("memlock", "Max locked memory"),
    ("as", "Max address space"),
    ("locks", "Max file locks"),
    ("sigpending", "Max pending signals"),
    ("msgqueue", "Max msgqueue size"),
    ("nice", "Max nice priority"),
    ("rtprio", "Max realtime priority"),
    ("rttime", "Max realtime timeout"),
];

/// The item name as a `'static` str, if `name` is one of [`ITEMS`].
pub fn item_name(name: &str) -> Option<&'static str> {
    ITEMS
        .iter()
        .map(|(item, _)| *item)
        .find(|item| *item == name)
}

/// The item names, comma-separated, for messages.
pub fn item_names() -> String {
    ITEMS.map(|(item, _)| item).join(", ")
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
                .find_map(|(item, row)| Some((*item, line.strip_prefix(row)?)))
            else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let mut value = |which: &str| -> Result<Option<u64>, String> {
                match fields.next() {
                    Some("unlimited") => Ok(None),
                    Some(v) => v.parse().map(Some).map_err(|_| {
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
                soft: Some(2147483648),
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
            .map(|l| format!("{l}\n"))
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
