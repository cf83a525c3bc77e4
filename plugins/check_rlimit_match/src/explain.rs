//! Words for where a too-low value came from, from the [`Trace`] acquisition found: the
//! suffix of the findings (", inherited from monit[812] (nofile 1024:4096)"), the chain for
//! the long output, and a remediation for the supervisor that passed the value on.

use procguard_common::proc::limits::show;
use procguard_common::proc::Rlimit;

use crate::expectation::{cmp_limit, Expectation, Half};
use crate::limits_conf;
use crate::provenance::{generic_remediation, Supervisor, Trace};

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

/// The too-low item `item` of the process `who` (`pid`) that has `actual`: `wants` are all
/// its expectations for the item, `below` those it falls short of.
#[allow(clippy::too_many_arguments)]
pub fn explain(
    who: &str,
    pid: i32,
    item: &'static str,
    actual: Rlimit,
    trace: &Trace,
    below: &[&Expectation],
    wants: &[&Expectation],
    nr_open: Option<u64>,
) -> Explanation {
    let (suffix, detail) = origin(who, item, actual, trace);
    // What to ask for: the highest expected value of each half, never below the actual.
    let pick = |half: Half, current: Option<u64>| {
        wants
            .iter()
            .filter(|w| w.half == half)
            .map(|w| match (w.value, nr_open, item) {
                (Some(v), Some(n), "nofile") => Some(v.min(n)),
                (v, _, _) => v,
            })
            .chain(below.iter().filter(|w| w.half == half).map(|w| w.value))
            .chain(std::iter::once(current))
            .max_by(|a, b| cmp_limit(*a, *b))
            .flatten()
    };
    let hard = pick(Half::Hard, actual.hard);
    let soft = limits_conf::clamp(pick(Half::Soft, actual.soft), hard);
    Explanation {
        suffix,
        story: Story {
            detail,
            fix: fix(trace, item, soft, hard, pid),
        },
    }
}

/// The findings' suffix and the long-output line saying where `actual` came from.
fn origin(who: &str, item: &str, actual: Rlimit, t: &Trace) -> (String, String) {
    let mut detail = format!("{who} {item} {}: ", actual.describe());
    let suffix;
    if let Some(why) = &t.orphaned {
        suffix = ", its starting parent exited".to_string();
        detail.push_str(why);
    } else if let Some(o) = &t.origin {
        suffix = format!(
            ", inherited from {} ({item} {})",
            o.who(),
            o.limit.describe()
        );
        detail.push_str(&format!("inherited from {} ({})", o.who(), o.cmdline));
    } else if let Some(parent) = t.chain.first() {
        suffix = format!(
            ", not inherited ({} has {})",
            parent.who(),
            parent.limit.describe()
        );
        detail.push_str(&format!(
            "set by the process itself or its start command; its parent {} has {}",
            parent.who(),
            parent.limit.describe()
        ));
    } else {
        suffix = String::new();
        detail.push_str("no parent to inherit from");
    }
    let mut chain = vec![format!("{who} {}", actual.describe())];
    chain.extend(
        t.chain
            .iter()
            .map(|a| format!("{} {}", a.who(), a.limit.describe())),
    );
    detail.push_str(&format!("; chain: {}", chain.join(" <- ")));
    if let Some(e) = &t.error {
        detail.push_str(&format!(" (stopped: {e})"));
    }
    (suffix, detail)
}

/// The remediation line: for the supervisor that passed the value on, when recognised.
fn fix(t: &Trace, item: &str, soft: Option<u64>, hard: Option<u64>, pid: i32) -> String {
    let value = format!("{}:{}", show(soft), show(hard));
    let single = show(if soft == hard { hard } else { soft });
    let fixer = if t.orphaned.is_some() {
        None
    } else {
        t.origin.as_ref().or(t.chain.first())
    };
    match fixer.and_then(|a| Some((a, Supervisor::recognise(&a.name, &a.cmdline)?))) {
        Some((a, sup)) => sup.remediation(&a.who(), item, &value, &single, pid),
        None => generic_remediation(
            &fixer.map_or_else(|| "whatever".to_string(), |a| a.who()),
            item,
            &value,
            &single,
            pid,
        ),
    }
}
