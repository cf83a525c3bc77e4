//! Words for where a too-low value came from, from the [`Provenance`] acquisition found
//! (common's one provenance module, shared with `check_restart_churn` and `check_http_backlog`):
//! the suffix of the findings (", inherited from monit[812] (nofile 1024:4096)"), the story
//! for the long output, and the remediation for whoever gives the service its limit.

use procguard_common::proc::limits::cmp_limit;
use procguard_common::proc::Rlimit;
use procguard_common::provenance::Provenance;
use procguard_common::remediation;

use crate::expectation::{Expectation, Half};

/// The long-output lines about one too-low item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Story {
    /// Where the value came from and the parent chain.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
}

/// What is said about one too-low item of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Appended to each too-low finding.
    pub suffix: String,
    /// For the long output.
    pub story: Story,
}

/// The too-low item `item` of a process, traced in `trace`: `wants` are all its
/// expectations for the item. The fix asks for the highest expected value of each half
/// (capped by `nr_open` for nofile: prlimit and setrlimit fail above it), whatever the
/// source said it.
pub fn explain(
    item: &'static str,
    trace: &Provenance,
    wants: &[&Expectation],
    nr_open: Option<u64>,
) -> Explanation {
    let actual = trace.actual;
    // A half with no expectation asks for the value it has (`None` would be unlimited).
    // remediation's Change raises the hard limit to a higher soft value and lowers neither.
    let pick = |half: Half, current: Option<u64>| {
        wants
            .iter()
            .filter(|w| w.half == half)
            .map(|w| match (w.value, nr_open, item) {
                (Some(v), Some(n), "nofile") => Some(v.min(n)),
                (v, _, _) => v,
            })
            .max_by(|a, b| cmp_limit(*a, *b))
            .unwrap_or(current)
    };
    let want = Rlimit {
        soft: pick(Half::Soft, actual.soft),
        hard: pick(Half::Hard, actual.hard),
    };
    let fix = remediation::fix(trace, Some(want)).unwrap_or_else(|| {
        format!("fix: none within the kernel's limits ({item} is capped by fs.nr_open)")
    });
    Explanation {
        suffix: trace.summary(),
        story: Story {
            detail: trace.story(),
            fix,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::{Comparison, Kind};
    use procguard_common::provenance::{Ancestor, Marks, SoftOrigin};

    fn rl(soft: u64, hard: u64) -> Rlimit {
        Rlimit {
            soft: Some(soft),
            hard: Some(hard),
        }
    }

    /// nofile 1024:4096, inherited from sh[50].
    fn traced() -> Provenance {
        let sh = Ancestor {
            pid: 50,
            name: "sh".into(),
            cmdline: "/bin/sh start.sh".into(),
            limit: rl(1024, 4096),
        };
        Provenance {
            pid: 100,
            who: "node[100]".into(),
            names: vec!["node".into()],
            item: "nofile".into(),
            actual: rl(1024, 4096),
            chain: vec![sh.clone()],
            hard_from: Some(sh.clone()),
            soft_from: Some(sh),
            soft: SoftOrigin::Inherited,
            orphaned: None,
            starter: None,
            marks: Marks::default(),
            error: None,
        }
    }

    fn want(half: Half, value: u64) -> Expectation {
        Expectation {
            item: "nofile",
            half,
            value: Some(value),
            comparison: Comparison::AtLeast,
            kind: Kind::AtLeast,
            source: "--at-least".into(),
        }
    }

    #[test]
    fn a_half_without_expectation_is_never_made_unlimited() {
        let fix = |w: &[&Expectation]| explain("nofile", &traced(), w, Some(1 << 20)).story.fix;
        // A soft value above the hard limit raises the hard one to it.
        let soft = fix(&[&want(Half::Soft, 65536)]);
        assert!(
            soft.contains("'ulimit -Hn 65536; ulimit -Sn 65536'"),
            "{soft}"
        );
        // A hard value alone leaves the soft one as it is.
        let hard = fix(&[&want(Half::Hard, 8192)]);
        assert!(hard.contains("'ulimit -Hn 8192'"), "{hard}");
        assert!(!soft.contains("unlimited") && !hard.contains("unlimited"));
        // Capped by nr_open.
        let capped = fix(&[&want(Half::Soft, 1 << 21)]);
        assert!(capped.contains("ulimit -Sn 1048576"), "{capped}");
    }
}
