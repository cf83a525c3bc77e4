//! Rendering: the verdicts of a run into common's [`Report`] — sources' problems said once,
//! the first few stories told, and the OK summary.

use std::collections::{BTreeSet, HashSet};

use procguard_common::Report;

use crate::evaluate::Verdict;
use crate::expectation::Note;
use crate::plan::Job;

/// How many too-low values get their chain and remediation in the long output: many
/// processes from one bad parent would repeat the same story.
const MAX_TOLD: usize = 5;

/// What a run has rendered so far.
#[derive(Debug, Default)]
pub struct Run {
    said: HashSet<String>,
    conf_warnings: BTreeSet<String>,
    checked: Vec<String>,
    kinds: BTreeSet<String>,
    compared: usize,
    told: usize,
    untold: usize,
}

impl Run {
    /// Adds a finding (once per run if the note says so).
    pub fn note(&mut self, report: &mut Report, note: Note) {
        if !note.once || self.said.insert(note.text.clone()) {
            report.add(note.status, note.text);
        }
    }

    /// Adds one process's verdict.
    pub fn add(&mut self, report: &mut Report, v: Verdict) {
        for perf in v.perf {
            report.perf(perf);
        }
        for note in v.findings {
            self.note(report, note);
        }
        for story in v.stories {
            if self.told < MAX_TOLD {
                self.told += 1;
                report.detail(story.detail);
                report.detail(story.fix);
            } else {
                self.untold += 1;
            }
        }
        self.checked.push(v.checked);
        self.compared += v.compared;
        self.kinds.extend(v.kinds.iter().map(ToString::to_string));
        self.conf_warnings.extend(v.conf_warnings);
    }

    /// The run's closing lines and the OK summary: the checked values and the kinds of
    /// sources.
    pub fn finish(self, jobs: &[Job], report: &mut Report) {
        if self.untold > 0 {
            report.detail(format!(
                "(chains and fixes of {} more too-low values left out)",
                self.untold
            ));
        }
        for w in &self.conf_warnings {
            report.detail(format!("limits.conf warning: {w}"));
        }
        // Nothing was compared (e.g. limits.conf sets nothing for the user): the findings
        // themselves say so.
        if self.compared == 0 {
            return;
        }
        let kinds: Vec<&str> = self.kinds.iter().map(String::as_str).collect();
        let kinds = if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        };
        let summary = match self.checked.len() {
            0 => return,
            1 => format!("{} as expected{kinds}", self.checked[0]),
            n => {
                let items: BTreeSet<&str> =
                    jobs.iter().flat_map(|j| j.items.iter().copied()).collect();
                let what = if jobs.len() > 1 {
                    format!("{} services", jobs.len())
                } else {
                    jobs[0].selector.describe()
                };
                format!(
                    "{n} processes ({what}) have the expected {}{kinds}",
                    items.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        };
        report.ok_summary(summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::Kind;
    use crate::explain::Story;
    use procguard_common::Status;

    fn verdict(who: &str, status: Status) -> Verdict {
        Verdict {
            findings: vec![
                Note::once(Status::Unknown, "--systemd: systemctl not found"),
                Note::new(status, format!("{who} nofile soft 1024 < 2048 expected")),
            ],
            stories: vec![Story {
                detail: format!("{who} chain"),
                fix: format!("{who} fix"),
            }],
            checked: format!("{who} nofile 1024:4096"),
            compared: 1,
            kinds: [Kind::Expect, Kind::LimitsConf].into(),
            conf_warnings: vec!["limits.conf:3: unknown item \"nofle\"".into()],
            ..Verdict::default()
        }
    }

    fn jobs() -> Vec<Job> {
        let args = crate::Args::try_parse_from(["x", "--name", "node", "--expect", "nofile=1"])
            .expect("args");
        crate::plan::jobs(&args).expect("jobs")
    }

    use clap::Parser;

    #[test]
    fn shared_problems_are_said_once_and_stories_told_five_times() {
        let mut run = Run::default();
        let mut report = Report::default();
        for pid in 1..=7 {
            run.add(
                &mut report,
                verdict(&format!("node[{pid}]"), Status::Critical),
            );
        }
        run.finish(&jobs(), &mut report);
        let (out, status) = report.render("RLIMIT", 0);
        assert_eq!(status, Status::Critical);
        assert_eq!(out.matches("systemctl not found").count(), 1, "{out}");
        assert_eq!(out.matches(" chain").count(), 5, "{out}");
        assert!(out.contains("node[5] fix\n(chains and fixes of 2 more too-low values left out)\nlimits.conf warning: limits.conf:3: unknown item \"nofle\""), "{out}");
    }

    #[test]
    fn the_ok_summary_names_the_values_or_counts_the_processes() {
        let ok = |n: usize| {
            let mut run = Run::default();
            let mut report = Report::default();
            for pid in 1..=n {
                let mut v = verdict(&format!("node[{pid}]"), Status::Ok);
                v.findings.remove(0);
                v.stories.clear();
                run.add(&mut report, v);
            }
            run.finish(&jobs(), &mut report);
            report
                .render("RLIMIT", 0)
                .0
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            ok(1),
            "RLIMIT OK - node[1] nofile 1024:4096 as expected (--expect, limits.conf)"
        );
        assert!(
            ok(3).starts_with("RLIMIT OK - 3 processes (--name node) have the expected nofile (--expect, limits.conf)"),
            "{}",
            ok(3)
        );
    }
}
