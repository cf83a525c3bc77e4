//! Words for where a too-low value came from, from the [`Provenance`] acquisition found
//! (common's one provenance module, shared with `check_restart_churn` and `check_http_backlog`):
//! the suffix of the findings (", inherited from monit[812] (nofile 1024:4096)"), the story
//! for the long output, and the remediation for whoever gives the service its limit.

use procguard_common::proc::limits::cmp_limit;
use procguard_common::proc::Rlimit;
use procguard_common::provenance::Provenance;
use procguard_common::remediation;

use crate::expectation::{Expectation, Half};
use crate::limits_conf;

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
    let pick = |half: Half, current: Option<u64>| {
        wants
            .iter()
            .filter(|w| w.half == half)
            .map(|w| match (w.value, nr_open, item) {
                (Some(v), Some(n), "nofile") => Some(v.min(n)),
                (v, _, _) => v,
            })
            .chain(std::iter::once(current))
            .max_by(|a, b| cmp_limit(*a, *b))
            .flatten()
    };
    // A soft value above the hard limit needs the hard limit raised too, never the soft
    // one cut down to the hard limit the process already has.
    let soft = pick(Half::Soft, actual.soft);
    let hard = [pick(Half::Hard, actual.hard), soft]
        .into_iter()
        .max_by(|a, b| cmp_limit(*a, *b))
        .flatten();
    let soft = limits_conf::clamp(soft, hard);
    let fix = remediation::fix(trace, Some(Rlimit { soft, hard })).unwrap_or_else(|| {
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
