//! What a process should have, as typed values: every expectation source returns
//! [`Expectation`]s and [`Note`]s, and evaluation compares them with what the process has.

use std::cmp::Ordering;
use std::fmt;

use procguard_common::proc::Rlimit;
use procguard_common::Status;

/// Which half of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// The soft limit (what the kernel enforces).
    Soft,
    /// The hard limit (the ceiling for raising the soft one).
    Hard,
}

impl Half {
    /// Both halves, soft first (the order findings are listed in).
    pub const BOTH: [Half; 2] = [Half::Soft, Half::Hard];

    /// `soft` / `hard`.
    pub fn word(self) -> &'static str {
        match self {
            Half::Soft => "soft",
            Half::Hard => "hard",
        }
    }

    /// This half of `limit`.
    pub fn of(self, limit: Rlimit) -> Option<u64> {
        match self {
            Half::Soft => limit.soft,
            Half::Hard => limit.hard,
        }
    }
}

/// How the value a process has is held against the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Exactly: below is CRITICAL, above is WARNING (`--expect`, a unit, another process).
    Exact,
    /// At least: below is CRITICAL (`--at-least`, limits.conf).
    AtLeast,
    /// At least, but below is only a WARNING: a limits.conf line that seems to promise the
    /// value but that the process's user does not get (Debian's pam_limits and root).
    Advisory,
}

impl Comparison {
    /// The state of a value that compares `order` with the expected one.
    #[allow(clippy::match_same_arms)] // one arm per case of the comparison table
    pub fn status(self, order: Ordering) -> Status {
        match (order, self) {
            (Ordering::Less, Comparison::Advisory) | (Ordering::Greater, Comparison::Exact) => {
                Status::Warning
            }
            (Ordering::Less, _) => Status::Critical,
            (Ordering::Greater | Ordering::Equal, _) => Status::Ok,
        }
    }

    /// The operator that words it: `<`, `>` (too high), `>=` (enough), `=`.
    pub fn operator(self, order: Ordering) -> &'static str {
        match (order, self) {
            (Ordering::Less, _) => "<",
            (Ordering::Greater, Comparison::Exact) => ">",
            (Ordering::Greater, _) => ">=",
            (Ordering::Equal, _) => "=",
        }
    }
}

/// The kind of source an expectation came from, as the OK summary names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `--expect`.
    Expect,
    /// `--at-least`.
    AtLeast,
    /// The YAML config, by file name.
    Config(String),
    /// limits.conf and limits.d (pam_limits).
    LimitsConf,
    /// A systemd unit, by name.
    Unit(String),
    /// Another process, as `name[pid]`.
    Like(String),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Expect => f.write_str("--expect"),
            Kind::AtLeast => f.write_str("--at-least"),
            Kind::Config(file) => f.write_str(file),
            Kind::LimitsConf => f.write_str("limits.conf"),
            Kind::Unit(unit) => write!(f, "unit {unit}"),
            Kind::Like(who) => write!(f, "like {who}"),
        }
    }
}

/// One expected value of one half of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The limits.conf item name.
    pub item: &'static str,
    /// Soft or hard.
    pub half: Half,
    /// The value; `None` is unlimited.
    pub value: Option<u64>,
    /// How it is compared.
    pub comparison: Comparison,
    /// The kind of source.
    pub kind: Kind,
    /// Where exactly it is written, shown in findings: `--expect nofile=1024`,
    /// `limits.conf:3 "* soft nofile 500000"`, `unit web.service LimitNOFILE=4096`.
    pub source: String,
}

/// A finding that is not a comparison: a source's problem or remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its state.
    pub status: Status,
    /// Its text.
    pub text: String,
    /// Said once per run: the same problem of a shared source (an unreadable limits.conf,
    /// a failing systemctl) is not repeated for every process.
    pub once: bool,
}

impl Note {
    /// A finding for this process.
    pub fn new(status: Status, text: impl Into<String>) -> Note {
        Note {
            status,
            text: text.into(),
            once: false,
        }
    }

    /// A finding said once per run.
    pub fn once(status: Status, text: impl Into<String>) -> Note {
        Note {
            status,
            text: text.into(),
            once: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procguard_common::proc::limits::cmp_limit;

    #[test]
    fn limit_order_puts_unlimited_on_top() {
        assert_eq!(cmp_limit(Some(1), None), Ordering::Less);
        assert_eq!(cmp_limit(None, Some(u64::MAX - 1)), Ordering::Greater);
        assert_eq!(cmp_limit(None, None), Ordering::Equal);
        assert_eq!(cmp_limit(Some(5), Some(4)), Ordering::Greater);
    }

    #[test]
    fn comparisons_judge_below_and_above() {
        use Comparison::*;
        let judge = |c: Comparison, a, e| {
            let order = cmp_limit(a, e);
            (c.status(order), c.operator(order))
        };
        assert_eq!(judge(Exact, Some(1), Some(2)), (Status::Critical, "<"));
        assert_eq!(judge(Exact, Some(3), Some(2)), (Status::Warning, ">"));
        assert_eq!(judge(Exact, None, None), (Status::Ok, "="));
        assert_eq!(judge(AtLeast, None, Some(2)), (Status::Ok, ">="));
        assert_eq!(judge(AtLeast, Some(2), None), (Status::Critical, "<"));
        assert_eq!(judge(Advisory, Some(1), Some(2)), (Status::Warning, "<"));
        assert_eq!(judge(Advisory, Some(3), Some(2)), (Status::Ok, ">="));
    }

    #[test]
    fn kinds_are_named_as_the_summary_shows_them() {
        let shown: Vec<String> = [
            Kind::Expect,
            Kind::AtLeast,
            Kind::Config("services.yaml".into()),
            Kind::LimitsConf,
            Kind::Unit("web.service".into()),
            Kind::Like("nginx[10]".into()),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "--expect",
                "--at-least",
                "services.yaml",
                "limits.conf",
                "unit web.service",
                "like nginx[10]"
            ]
        );
    }
}
