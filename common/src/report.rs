//! Findings and perfdata collected by a check, rendered into the plugin output:
//! line 1 `NAME STATE - summary | perfdata`, then one finding per line, then details
//! (docs/contract.md §2). What each `-v` level adds is docs/contract.md §2.4:
//!
//! - 0: non-OK findings (when more than one) and [`Report::detail`] lines;
//! - 1: every finding and [`Report::verbose_detail`] lines;
//! - 2: how each thresholded value was judged (recorded by [`Report::metric`] and
//!   [`Report::alert`]), and `detail_at(2, ..)` lines;
//! - 3: every perfdata item on a line of its own, and `detail_at(3, ..)` lines.

use std::fmt::Display;

use crate::number::exact;
use crate::perfdata::PerfData;
use crate::range::{Judgement, Thresholds};
use crate::status::Status;

/// Longest summary kept on line 1, in bytes: Monit keeps 512 bytes of output in all and
/// the verdict must survive with the perfdata after it.
const MAX_SUMMARY: usize = 200;

/// One evaluated result.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Its state.
    pub status: Status,
    /// What was found, in words.
    pub text: String,
}

/// What a check found. The plugin's state is the worst of its findings.
#[derive(Debug, Clone, Default)]
pub struct Report {
    findings: Vec<Finding>,
    perfdata: Vec<PerfData>,
    ok_summary: Option<String>,
    /// Long-output lines with the lowest `-v` level that shows them.
    details: Vec<(u8, String)>,
}

/// The highest `-v` level that adds anything (docs/contract.md §2.4).
pub const MAX_VERBOSITY: u8 = 3;

impl Report {
    /// Adds a result that is not a number against thresholds ("not running", "limit below
    /// expected").
    pub fn add(&mut self, status: Status, text: impl Into<String>) {
        self.findings.push(Finding {
            status,
            text: clean(&text.into()),
        });
    }

    /// Adds a part that could not be found out; the rest of the report still counts.
    pub fn unknown(&mut self, what: impl Display) {
        self.add(Status::Unknown, what.to_string());
    }

    /// Evaluates `value` against `thresholds`, adds the finding (its text followed by the
    /// crossed range in the words of docs/contract.md §4.4) and the perfdata item with the
    /// same thresholds stamped in, so what is shown can never differ from what is enforced.
    /// Returns the state.
    pub fn metric(
        &mut self,
        value: f64,
        thresholds: &Thresholds,
        text: impl Into<String>,
        perf: PerfData,
    ) -> Status {
        let judgement = thresholds.judge(value);
        self.add(judgement.status, judgement.annotate(&text.into()));
        self.judged(perf.label(), value, thresholds, judgement);
        self.perfdata.push(perf.thresholds(thresholds));
        judgement.status
    }

    /// Evaluates `value` like [`Report::metric`] but adds a finding only when it crosses a
    /// threshold, and no perfdata: for values listed in bulk (every process of the host),
    /// where the OK ones are summed up elsewhere. `who` names the value in `-vv` output.
    pub fn alert(
        &mut self,
        who: &str,
        value: f64,
        thresholds: &Thresholds,
        text: impl Into<String>,
    ) -> Status {
        let judgement = thresholds.judge(value);
        if judgement.status != Status::Ok {
            self.add(judgement.status, judgement.annotate(&text.into()));
        }
        self.judged(who, value, thresholds, judgement);
        judgement.status
    }

    /// The `-vv` line saying how a value was judged.
    fn judged(&mut self, who: &str, value: f64, thresholds: &Thresholds, j: Judgement) {
        self.detail_at(
            2,
            format!(
                "{who} = {} ({}) -> {}",
                exact(value),
                thresholds.describe(),
                j.status
            ),
        );
    }

    /// Adds a perfdata item that is not evaluated.
    pub fn perf(&mut self, perf: PerfData) {
        self.perfdata.push(perf);
    }

    /// The summary used when everything is OK (otherwise the worst finding is the summary).
    pub fn ok_summary(&mut self, text: impl Into<String>) {
        self.ok_summary = Some(clean(&text.into()));
    }

    /// A line of long output shown whenever the report is printed (e.g. a remediation).
    pub fn detail(&mut self, text: impl Into<String>) {
        self.detail_at(0, text);
    }

    /// A line of long output shown only with `-v`.
    pub fn verbose_detail(&mut self, text: impl Into<String>) {
        self.detail_at(1, text);
    }

    /// A line of long output shown from `-v` level `level` on (2: how things were judged,
    /// 3: traces such as the files read; docs/contract.md §2.4).
    pub fn detail_at(&mut self, level: u8, text: impl Into<String>) {
        self.details
            .push((level.min(MAX_VERBOSITY), clean(&text.into())));
    }

    /// The findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The perfdata items so far.
    pub fn perfdata(&self) -> &[PerfData] {
        &self.perfdata
    }

    /// The worst of the findings; none at all is UNKNOWN.
    pub fn status(&self) -> Status {
        Status::worst(self.findings.iter().map(|f| f.status))
    }

    /// The plugin output (without trailing newline) and its state.
    pub fn render(&self, name: &str, verbosity: u8) -> (String, Status) {
        let status = self.status();
        let problems: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.status != Status::Ok)
            .collect();
        let summary = if self.findings.is_empty() {
            "no check results".to_string()
        } else if status == Status::Ok {
            self.ok_summary
                .clone()
                .unwrap_or_else(|| self.findings[0].text.clone())
        } else {
            let worst = problems
                .iter()
                .find(|f| f.status == status)
                .map_or("", |f| f.text.as_str());
            match problems.len() {
                1 => worst.to_string(),
                n => format!("{worst} (+{} more)", n - 1),
            }
        };
        let mut out = format!("{name} {status} - {}", truncate(&summary, MAX_SUMMARY));
        if !self.perfdata.is_empty() {
            let perf: Vec<String> = self.perfdata.iter().map(ToString::to_string).collect();
            out = format!("{out} | {}", perf.join(" "));
        }
        let listed: Vec<&Finding> = if verbosity > 0 {
            self.findings.iter().collect()
        } else {
            problems.clone()
        };
        // A single finding already is the summary; list findings only when there is more to say.
        if listed.len() > 1 || (verbosity > 0 && !listed.is_empty() && self.ok_summary.is_some()) {
            for f in listed {
                out.push_str(&format!("\n[{}] {}", f.status, f.text));
            }
        }
        for (level, text) in &self.details {
            if *level <= verbosity {
                out.push('\n');
                out.push_str(text);
            }
        }
        if verbosity >= 3 {
            for perf in &self.perfdata {
                out.push_str(&format!("\nperfdata {perf}"));
            }
        }
        (out, status)
    }
}

/// Keeps output parseable: no `|` (it starts perfdata) and no line breaks inside a finding.
fn clean(text: &str) -> String {
    text.replace('|', "/").replace(['\n', '\r'], " ")
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Range;

    fn fd_thresholds() -> Thresholds {
        Thresholds {
            warning: Some(Range::above(819.0)),
            critical: Some(Range::above(921.0)),
        }
    }

    #[test]
    fn critical_metric_renders_line_one_with_perfdata() {
        let mut r = Report::default();
        let perf = PerfData::new("node_fds", 1021.0).min(0.0).max(Some(1024.0));
        let s = r.metric(
            1021.0,
            &fd_thresholds(),
            "node[2100] 1021/1024 open files",
            perf,
        );
        assert_eq!(s, Status::Critical);
        let (out, status) = r.render("FD_USAGE", 0);
        assert_eq!(status, Status::Critical);
        assert_eq!(out, "FD_USAGE CRITICAL - node[2100] 1021/1024 open files (critical > 921) | 'node_fds'=1021;819;921;0;1024");
    }

    #[test]
    fn ok_summary_and_verbose_long_output() {
        let mut r = Report::default();
        r.metric(
            10.0,
            &fd_thresholds(),
            "a[1] 10/1024",
            PerfData::new("a_fds", 10.0),
        );
        r.metric(
            12.0,
            &fd_thresholds(),
            "b[2] 12/1024",
            PerfData::new("b_fds", 12.0),
        );
        r.ok_summary("2 processes below thresholds");
        r.verbose_detail("fds by kind: 3 sockets");
        assert_eq!(
            r.render("X", 0).0,
            "X OK - 2 processes below thresholds | 'a_fds'=10;819;921 'b_fds'=12;819;921"
        );
        let (verbose, _) = r.render("X", 1);
        assert_eq!(
            verbose.lines().skip(1).collect::<Vec<_>>(),
            [
                "[OK] a[1] 10/1024",
                "[OK] b[2] 12/1024",
                "fds by kind: 3 sockets"
            ]
        );
    }

    #[test]
    fn each_verbosity_level_adds_to_the_one_below() {
        let mut r = Report::default();
        r.metric(
            1021.0,
            &fd_thresholds(),
            "a[1] 1021/1024",
            PerfData::new("a_fds", 1021_u64).min(0).max(Some(1024_u64)),
        );
        r.alert("b[2]", 900.0, &fd_thresholds(), "b[2] 900/1024");
        r.alert("c[3]", 5.0, &fd_thresholds(), "c[3] 5/1024");
        r.detail("always");
        r.verbose_detail("with -v");
        r.detail_at(3, "trace");
        let lines = |v: u8| -> Vec<String> {
            r.render("X", v)
                .0
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect()
        };
        let base = [
            "[CRITICAL] a[1] 1021/1024 (critical > 921)",
            "[WARNING] b[2] 900/1024 (warning > 819)",
            "always",
        ];
        assert_eq!(lines(0), base);
        assert_eq!(lines(1), [base[0], base[1], base[2], "with -v"]);
        assert_eq!(
            lines(2),
            [
                base[0],
                base[1],
                "a_fds = 1021 (warning 819, critical 921) -> CRITICAL",
                "b[2] = 900 (warning 819, critical 921) -> WARNING",
                "c[3] = 5 (warning 819, critical 921) -> OK",
                base[2],
                "with -v"
            ]
        );
        let v3 = lines(3);
        assert_eq!(
            &v3[v3.len() - 2..],
            ["trace", "perfdata 'a_fds'=1021;819;921;0;1024"]
        );
        // Line 1 and the state never change with the level.
        let line1 = |v: u8| r.render("X", v).0.lines().next().map(str::to_string);
        assert!((1..=3).all(|v| line1(v) == line1(0)));
        assert_eq!(
            line1(0).unwrap(),
            "X CRITICAL - a[1] 1021/1024 (critical > 921) (+1 more) | 'a_fds'=1021;819;921;0;1024"
        );
    }

    #[test]
    fn worst_finding_leads_and_others_follow() {
        let mut r = Report::default();
        r.add(Status::Warning, "w");
        r.unknown("cannot read /proc/7/limits");
        r.add(Status::Critical, "c|d\ne");
        r.add(Status::Ok, "fine");
        let (out, status) = r.render("N", 0);
        assert_eq!(status, Status::Critical);
        assert_eq!(out, "N CRITICAL - c/d e (+2 more)\n[WARNING] w\n[UNKNOWN] cannot read /proc/7/limits\n[CRITICAL] c/d e");
    }

    #[test]
    fn empty_report_is_unknown_and_long_summaries_are_cut() {
        assert_eq!(
            Report::default().render("N", 0),
            ("N UNKNOWN - no check results".to_string(), Status::Unknown)
        );
        let mut r = Report::default();
        r.add(Status::Ok, "é".repeat(300));
        let (out, _) = r.render("N", 0);
        assert!(out.len() < 220 && out.ends_with("..."), "{out}");
    }
}
