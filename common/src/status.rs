//! The four plugin states and the contract's worst-of order.

use std::fmt;

/// A plugin result state. The discriminant is the exit code.
///
/// `Ord` is deliberately not derived: ordering by exit code would rank UNKNOWN above
/// CRITICAL, and one unreadable process must never hide a confirmed problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Exit 0: the check ran and the service looks fine.
    Ok = 0,
    /// Exit 1: a warning threshold was crossed.
    Warning = 1,
    /// Exit 2: a critical threshold was crossed or the service is down.
    Critical = 2,
    /// Exit 3: the plugin could not find out.
    Unknown = 3,
}

impl Status {
    /// The exit code, always 0..=3.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// Rank in the worst-of order: CRITICAL > UNKNOWN > WARNING > OK.
    const fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two states.
    #[must_use]
    pub fn worse(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The worst of several states; no states at all is UNKNOWN (nothing was checked).
    pub fn worst(states: impl IntoIterator<Item = Status>) -> Status {
        states
            .into_iter()
            .reduce(Status::worse)
            .unwrap_or(Status::Unknown)
    }

    /// Parses a state name as used in `-t 5:critical` (case-insensitive, or 0-3).
    pub fn parse_name(s: &str) -> Option<Status> {
        match s.to_ascii_lowercase().as_str() {
            "ok" | "0" => Some(Status::Ok),
            "warning" | "warn" | "1" => Some(Status::Warning),
            "critical" | "crit" | "2" => Some(Status::Critical),
            "unknown" | "3" => Some(Status::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    #[test]
    fn exit_codes() {
        assert_eq!(
            [Ok, Warning, Critical, Unknown].map(Status::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn worst_of_order_is_critical_unknown_warning_ok() {
        assert_eq!(Status::worst([Ok, Warning]), Warning);
        assert_eq!(Status::worst([Warning, Unknown]), Unknown);
        assert_eq!(Status::worst([Unknown, Critical, Ok]), Critical);
        assert_eq!(Status::worst([Critical, Unknown]), Critical);
        assert_eq!(Status::worst([Ok]), Ok);
    }

    #[test]
    fn worst_of_nothing_is_unknown() {
        assert_eq!(Status::worst([]), Unknown);
    }

    #[test]
    fn state_names() {
        assert_eq!(Status::parse_name("CRITICAL"), Some(Critical));
        assert_eq!(Status::parse_name("warn"), Some(Warning));
        assert_eq!(Status::parse_name("3"), Some(Unknown));
        assert_eq!(Status::parse_name("bad"), None);
        assert_eq!(Critical.to_string(), "CRITICAL");
    }
}
