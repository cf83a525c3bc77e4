//! Evaluation: a pure function of one process's [`Observation`] and what its sources
//! [`Expected`] — findings, perfdata and the long-output stories, tested without processes.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use procguard_common::proc::limits::show;
use procguard_common::proc::Rlimit;
use procguard_common::{PerfData, Status};

use crate::acquire::{Facts, Observation};
use crate::expectation::{Expectation, Half, Kind, Note};
use crate::explain::{explain, Story};
use crate::plan::Job;
use crate::source::Expected;
use procguard_common::proc::limits::cmp_limit;

/// The result for one process.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Its findings, in order: the sources' notes, then each item's.
    pub findings: Vec<Note>,
    /// Soft and hard value of each item (unlimited ones have no number and are left out).
    pub perf: Vec<PerfData>,
    /// Where each too-low value came from, and its fix.
    pub stories: Vec<Story>,
    /// `node[100] nofile 1024:4096` for the OK summary.
    pub checked: String,
    /// How many expectations were compared.
    pub compared: usize,
    /// The kinds of sources used.
    pub kinds: BTreeSet<Kind>,
    /// What pam_limits would log about the configuration files.
    pub conf_warnings: Vec<String>,
}

/// One expectation held against the value the process has.
struct Judged<'e> {
    want: &'e Expectation,
    actual: Option<u64>,
    /// The expected value the kernel can grant (nofile is capped at fs.nr_open).
    target: Option<u64>,
    order: Ordering,
}

/// Each expectation for one item against the value; notes about unfulfillable ones.
fn judge<'e>(
    item: &str,
    actual: Rlimit,
    wants: &[&'e Expectation],
    nr_open: Option<u64>,
    notes: &mut Vec<Note>,
) -> Vec<Judged<'e>> {
    wants
        .iter()
        .map(|w| {
            let mut target = w.value;
            if let (Some(v), Some(nr_open), "nofile") = (w.value, nr_open, item) {
                if v > nr_open {
                    notes.push(Note::once(
                        Status::Warning,
                        format!(
                            "{} asks for nofile {} {v} > fs.nr_open {nr_open}: the kernel cannot grant it",
                            w.source,
                            w.half.word()
                        ),
                    ));
                    target = Some(nr_open);
                }
            }
            let a = w.half.of(actual);
            Judged {
                want: w,
                actual: a,
                target,
                order: cmp_limit(a, target),
            }
        })
        .collect()
}

fn wants_for<'e>(expected: &'e Expected, item: &str) -> Vec<&'e Expectation> {
    expected.list.iter().filter(|w| w.item == item).collect()
}

/// The items whose value is below an expectation, with the value: those whose origin
/// acquisition traces.
pub fn below(
    obs: &Observation,
    job: &Job,
    expected: &Expected,
    facts: &Facts,
) -> Vec<(&'static str, Rlimit)> {
    job.items
        .iter()
        .filter_map(|item| {
            let actual = obs.limits.get(item)?;
            let wants = wants_for(expected, item);
            judge(item, actual, &wants, facts.nr_open, &mut Vec::new())
                .iter()
                .any(|j| j.order == Ordering::Less)
                .then_some((*item, actual))
        })
        .collect()
}

/// Evaluates one process.
pub fn process(obs: &Observation, job: &Job, expected: &Expected, facts: &Facts) -> Verdict {
    let who = &obs.who;
    let mut v = Verdict {
        findings: expected.notes.clone(),
        perf: perfdata(obs, &job.items),
        kinds: expected.kinds.clone(),
        conf_warnings: expected.conf_warnings.clone(),
        ..Verdict::default()
    };
    let mut shown = Vec::new();
    for item in &job.items {
        let Some(actual) = obs.limits.get(item) else {
            v.findings.push(Note::new(
                Status::Unknown,
                format!(
                    "{who}: the kernel does not report {item} in {}",
                    obs.limits_file
                ),
            ));
            continue;
        };
        shown.push(format!("{item} {}", actual.describe()));
        let wants = wants_for(expected, item);
        // Unless a source says why (limits.conf sets nothing), nothing to compare with is
        // something the plugin could not find out.
        if wants.is_empty() && !expected.explained {
            v.findings.push(Note::new(
                Status::Unknown,
                format!(
                    "{who} {item} {}: no expectation for {item} (name it in --expect/--at-least)",
                    actual.describe()
                ),
            ));
        }
        let judged = judge(item, actual, &wants, facts.nr_open, &mut v.findings);
        v.compared += judged.len();
        v.kinds.extend(wants.iter().map(|w| w.kind.clone()));
        let below: Vec<&Expectation> = judged
            .iter()
            .filter(|j| j.order == Ordering::Less)
            .map(|j| j.want)
            .collect();
        let suffix = match obs.origins.get(item).filter(|_| !below.is_empty()) {
            Some(trace) => {
                let e = explain(item, trace, &wants, facts.nr_open);
                v.stories.push(e.story);
                e.suffix
            }
            None => String::new(),
        };
        for j in &judged {
            v.findings.push(finding(who, item, j, &suffix));
        }
    }
    v.checked = format!("{who} {}", shown.join(", "));
    v
}

/// `node[100] nofile soft 1024 < 2048 expected (--expect nofile=2048), inherited from ...`.
fn finding(who: &str, item: &str, j: &Judged, suffix: &str) -> Note {
    let w = j.want;
    let status = w.comparison.status(j.order);
    let (actual, op, target) = (
        show(j.actual),
        w.comparison.operator(j.order),
        show(j.target),
    );
    let half = w.half.word();
    let text = if status == Status::Ok {
        format!("{who} {item} {half} {actual} {op} {target} ({})", w.source)
    } else {
        format!(
            "{who} {item} {half} {actual} {op} {target} expected ({})",
            w.source
        )
    };
    let suffix = if j.order == Ordering::Less {
        suffix
    } else {
        ""
    };
    Note::new(status, format!("{text}{suffix}"))
}

fn perfdata(obs: &Observation, items: &[&'static str]) -> Vec<PerfData> {
    let mut perf = Vec::new();
    for item in items {
        let Some(l) = obs.limits.get(item) else {
            continue;
        };
        for half in Half::BOTH {
            // An unlimited value has no number: left out of perfdata.
            if let Some(v) = half.of(l) {
                let label = format!("{}_{item}_{}", obs.label, half.word());
                perf.push(PerfData::new(&label, v).min(0u64));
            }
        }
    }
    perf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::Comparison;
    use crate::limits_conf::Flavor;
    use crate::source::cli;
    use procguard_common::proc::Limits;
    use procguard_common::provenance::{
        self as pv, Ancestor, Marks, Provenance, SoftOrigin, Starter,
    };
    use std::collections::BTreeMap;

    /// /proc/PID/limits of a process started under a parent with nofile 1024:4096.
    const LOWERED: &str =
        include_str!("../../../common/tests/fixtures/proc/limits/lowered-nofile-linux-6.18.txt");

    fn obs() -> Observation {
        Observation {
            who: "node[100]".into(),
            pid: 100,
            label: "node".into(),
            limits: Limits::parse(LOWERED).unwrap(),
            limits_file: "/proc/100/limits".into(),
            alone: true,
            pam: None,
            unit: None,
            like: None,
            origins: BTreeMap::new(),
        }
    }

    fn job(items: &[&'static str], expect: &[&str], at_least: &[&str]) -> Job {
        let parse = |l: &[&str]| l.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>();
        Job {
            service: None,
            selector: procguard_common::select::Selector::default(),
            label: None,
            items: items.to_vec(),
            stated: cli::stated(&parse(expect), &parse(at_least)),
            limits_conf: None,
            systemd: None,
            like: None,
        }
    }

    fn facts(nr_open: u64) -> Facts {
        Facts {
            nr_open: Some(nr_open),
            pid1: None,
            flavor: Flavor::Upstream,
        }
    }

    fn expected(job: &Job) -> Expected {
        Expected {
            list: job
                .stated
                .iter()
                .flat_map(cli::Stated::expectations)
                .collect(),
            ..Expected::default()
        }
    }

    fn texts(v: &Verdict) -> Vec<(Status, &str)> {
        v.findings
            .iter()
            .map(|n| (n.status, n.text.as_str()))
            .collect()
    }

    #[test]
    fn matching_values_are_ok_with_perfdata_and_summary_parts() {
        let job = job(
            &["nofile", "as"],
            &["nofile=1024:4096", "as=2147483648:unlimited"],
            &[],
        );
        let exp = expected(&job);
        assert!(below(&obs(), &job, &exp, &facts(1_048_576)).is_empty());
        let v = process(&obs(), &job, &exp, &facts(1_048_576));
        assert_eq!(
            texts(&v),
            [
                (
                    Status::Ok,
                    "node[100] nofile soft 1024 = 1024 (--expect nofile=1024:4096)"
                ),
                (
                    Status::Ok,
                    "node[100] nofile hard 4096 = 4096 (--expect nofile=1024:4096)"
                ),
                (
                    Status::Ok,
                    "node[100] as soft 2147483648 = 2147483648 (--expect as=2147483648:unlimited)"
                ),
                (
                    Status::Ok,
                    "node[100] as hard unlimited = unlimited (--expect as=2147483648:unlimited)"
                ),
            ]
        );
        let perf: Vec<String> = v.perf.iter().map(ToString::to_string).collect();
        assert_eq!(
            perf,
            [
                "'node_nofile_soft'=1024;;;0",
                "'node_nofile_hard'=4096;;;0",
                "'node_as_soft'=2147483648;;;0"
            ]
        );
        assert_eq!(
            v.checked,
            "node[100] nofile 1024:4096, as 2147483648:unlimited"
        );
        assert_eq!(v.compared, 4);
        assert_eq!(v.kinds.iter().collect::<Vec<_>>(), [&Kind::Expect]);
        assert!(v.stories.is_empty());
    }

    #[test]
    fn perfdata_keeps_huge_limits_exact() {
        // A memlock raised to 2^63 - 1 (as some databases ask for) must not print as a float.
        let mut o = obs();
        o.limits = Limits::parse(&LOWERED.replace(
            "Max locked memory         8388608              8388608 ",
            "Max locked memory         9223372036854775807  9223372036854775807 ",
        ))
        .unwrap();
        let job = job(&["memlock"], &["memlock=unlimited"], &[]);
        let v = process(&o, &job, &expected(&job), &facts(1_048_576));
        let perf: Vec<String> = v.perf.iter().map(ToString::to_string).collect();
        assert_eq!(
            perf,
            [
                "'node_memlock_soft'=9223372036854775807;;;0",
                "'node_memlock_hard'=9223372036854775807;;;0"
            ]
        );
    }

    #[test]
    fn too_high_exact_warns_and_enough_minimum_is_ok() {
        let job = job(&["nofile"], &["nofile=512"], &["nofile=:2048"]);
        let v = process(&obs(), &job, &expected(&job), &facts(1_048_576));
        assert_eq!(
            texts(&v),
            [
                (
                    Status::Warning,
                    "node[100] nofile soft 1024 > 512 expected (--expect nofile=512)"
                ),
                (
                    Status::Ok,
                    "node[100] nofile hard 4096 >= 2048 (--at-least nofile=:2048)"
                ),
            ]
        );
    }

    /// Provenance of a process whose nofile `lowered` came from monit[50] (service 'app').
    fn under_monit(lowered: Rlimit) -> Provenance {
        let monit = Ancestor {
            pid: 50,
            name: "monit".into(),
            cmdline: "/usr/bin/monit -I".into(),
            limit: lowered,
        };
        Provenance {
            pid: 100,
            who: "node[100]".into(),
            names: vec!["node".into()],
            item: "nofile".into(),
            actual: lowered,
            chain: vec![monit.clone()],
            hard_from: Some(monit.clone()),
            soft_from: Some(monit.clone()),
            soft: SoftOrigin::Inherited,
            orphaned: None,
            starter: Some(Starter {
                kind: pv::Kind::Monit,
                process: Some(monit),
                service: Some("app".into()),
                config: None,
                unit: None,
                from_chain: true,
                evidence: String::new(),
            }),
            marks: Marks::default(),
            error: None,
        }
    }

    #[test]
    fn the_fix_stays_within_fs_nr_open() {
        // 65536 asked, but the kernel grants at most 4096: prlimit above it would fail.
        let job = job(&["nofile"], &[], &["nofile=65536"]);
        let exp = expected(&job);
        let mut o = obs();
        o.limits = Limits::parse(&LOWERED.replace(
            "Max open files            1024                 4096 ",
            "Max open files            1024                 2048 ",
        ))
        .unwrap();
        let lowered = o.limits.nofile();
        o.origins.insert("nofile", under_monit(lowered));
        let v = process(&o, &job, &exp, &facts(4096));
        assert_eq!(v.stories.len(), 1, "{:?}", v.findings);
        assert!(
            v.stories[0]
                .fix
                .ends_with("now: prlimit --pid 100 --nofile=4096:4096"),
            "{}",
            v.stories[0].fix
        );
    }

    #[test]
    fn too_low_values_carry_their_origin_and_a_story() {
        let job = job(&["nofile"], &[], &["nofile=65536"]);
        let exp = expected(&job);
        let mut o = obs();
        let lowered = o.limits.nofile();
        assert_eq!(
            below(&o, &job, &exp, &facts(1_048_576)),
            [("nofile", lowered)]
        );
        o.origins.insert("nofile", under_monit(lowered));
        let v = process(&o, &job, &exp, &facts(1_048_576));
        assert_eq!(
            texts(&v),
            [(Status::Critical, "node[100] nofile soft 1024 < 65536 expected (--at-least nofile=65536), inherited from monit[50] (nofile 1024:4096)")]
        );
        assert_eq!(v.stories.len(), 1);
        assert_eq!(
            v.stories[0].detail,
            "node[100] nofile 1024:4096: inherited from monit[50] (/usr/bin/monit -I) for service 'app'; chain: node[100] 1024:4096 <- monit[50] 1024:4096"
        );
        assert!(
            v.stories[0]
                .fix
                .starts_with("fix (monit): start program = \"/bin/sh -c 'ulimit -Hn 65536; ulimit -Sn 65536; ...'\" in 'check process app'"),
            "{}",
            v.stories[0].fix
        );
        // The value asked for, never the one it has.
        assert!(
            v.stories[0]
                .fix
                .ends_with("now: prlimit --pid 100 --nofile=65536:65536"),
            "{}",
            v.stories[0].fix
        );
    }

    #[test]
    fn nofile_above_nr_open_is_capped_and_warned_once_per_source() {
        let job = job(&["nofile"], &[], &["nofile=1024:8192"]);
        let v = process(&obs(), &job, &expected(&job), &facts(4096));
        assert_eq!(
            texts(&v),
            [
                (Status::Warning, "--at-least nofile=1024:8192 asks for nofile hard 8192 > fs.nr_open 4096: the kernel cannot grant it"),
                (Status::Ok, "node[100] nofile soft 1024 = 1024 (--at-least nofile=1024:8192)"),
                (Status::Ok, "node[100] nofile hard 4096 = 4096 (--at-least nofile=1024:8192)"),
            ]
        );
        assert!(v.findings[0].once);
    }

    #[test]
    fn items_without_expectation_are_unknown_unless_a_source_speaks_for_them() {
        let job = job(&["nofile", "core"], &["nofile=1024:4096"], &[]);
        let v = process(&obs(), &job, &expected(&job), &facts(1_048_576));
        assert_eq!(
            v.findings.last().map(|n| (n.status, n.text.as_str())),
            Some((Status::Unknown, "node[100] core unlimited:unlimited: no expectation for core (name it in --expect/--at-least)"))
        );
        let mut exp = expected(&job);
        exp.explained = true;
        let v = process(&obs(), &job, &exp, &facts(1_048_576));
        assert!(v.findings.iter().all(|n| n.status == Status::Ok));
    }

    #[test]
    fn source_notes_come_first_and_advisory_minimums_only_warn() {
        let job = job(&["nofile"], &[], &[]);
        let exp = Expected {
            list: vec![Expectation {
                item: "nofile",
                half: Half::Soft,
                value: Some(65536),
                comparison: Comparison::Advisory,
                kind: Kind::LimitsConf,
                source:
                    "limits.conf:1 \"* - nofile 65536\", not applied to root by Debian's pam_limits"
                        .into(),
            }],
            notes: vec![Note::once(
                Status::Unknown,
                "--systemd: systemctl not found",
            )],
            ..Expected::default()
        };
        let v = process(&obs(), &job, &exp, &facts(1_048_576));
        assert_eq!(v.findings[0].text, "--systemd: systemctl not found");
        assert_eq!(v.findings[1].status, Status::Warning);
        assert_eq!(v.kinds.iter().collect::<Vec<_>>(), [&Kind::LimitsConf]);
        assert!(v.stories.is_empty(), "no origin traced: no story");
    }
}
