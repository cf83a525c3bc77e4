//! Findings and perfdata collected by a check, rendered into the plugin output:
//! line 1 `NAME STATE - summary | perfdata`, then one finding per line, then details
//! (docs/contract.md §2). What each `-v` level adds is docs/contract.md §2.4:
//!
//! - 0: non-OK findings (when more than one) and [`Report::detail`] lines;
//! - 1: every finding and [`Report::verbose_detail`] lines;
//! - 2: how each thresholded value was judged (recorded by [`Report::metric`],
//!   [`Report::metric_worded`] and [`Report::alert`]), and `detail_at(2, ..)` lines;
//! - 3: every perfdata item on a line of its own, and `detail_at(3, ..)` lines.

use std::fmt::Display;

use crate::number::exact;
use crate::perfdata::PerfData;
use crate::range::{Judgement, Thresholds};
use crate::status::Status;
use crate::text::{sanitize, shorten};

/// Longest summary kept on line 1, in bytes: Monit keeps 512 bytes of output in all and
/// the verdict must survive with the perfdata after it.
const MAX_SUMMARY: usize = 200;

/// Longest line 1 with its perfdata at default verbosity: Monit keeps 512 bytes.
pub const MAX_LINE1: usize = 512;

/// Longest whole output at default verbosity: NRPE v2 carries 1,024 bytes, the
/// terminating NUL and the final newline included.
pub const MAX_OUTPUT: usize = 1022;

/// Longest line of long output (a finding or a detail) at default verbosity.
const MAX_LINE: usize = 400;

/// Longest line of long output with `-v` and more: the operator asked for the whole
/// story (a provenance line names a chain of processes), yet a line stays bounded.
const MAX_LINE_VERBOSE: usize = 2000;

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
const MAX_VERBOSITY: u8 = 3;

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
        let text = text.into();
        self.metric_worded(value, thresholds, perf, |j| j.annotate(&text))
    }

    /// Like [`Report::metric`], but `word` writes the finding's text from the judgement:
    /// for a finding that adds its own words after the crossed range (a diagnosis) or
    /// says more than the range does (a full queue). The `-vv` line and the perfdata
    /// thresholds are the same as [`Report::metric`]'s (docs/contract.md §2.4).
    pub fn metric_worded(
        &mut self,
        value: f64,
        thresholds: &Thresholds,
        perf: PerfData,
        word: impl FnOnce(&Judgement) -> String,
    ) -> Status {
        let judgement = thresholds.judge(value);
        self.add(judgement.status, word(&judgement));
        self.judged(perf.label(), value, thresholds, judgement);
        self.perfdata.push(perf.thresholds(thresholds));
        judgement.status
    }

    /// Like [`Report::metric`], but the finding is added only when the value crosses a
    /// threshold: for a second measure of something another finding already describes
    /// (the fds left below a limit whose usage is the main finding).
    pub fn secondary_metric(
        &mut self,
        value: f64,
        thresholds: &Thresholds,
        text: impl Into<String>,
        perf: PerfData,
    ) -> Status {
        let status = self.alert(perf.label(), value, thresholds, text);
        self.perfdata.push(perf.thresholds(thresholds));
        status
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
    ///
    /// At default verbosity the output fits the transports (docs/contract.md, "Output"):
    /// the whole of it [`MAX_OUTPUT`] bytes, line 1 with perfdata [`MAX_LINE1`]. Long output
    /// is cut first, from the end, with a line counting what was left out; then trailing
    /// perfdata items (whole ones) if line 1 alone is too long. The summary is capped at
    /// any verbosity, keeping its `(+N more)`.
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
            let text = self.ok_summary.as_ref().unwrap_or(&self.findings[0].text);
            shorten(text, MAX_SUMMARY)
        } else {
            let worst = problems
                .iter()
                .find(|f| f.status == status)
                .map_or("", |f| f.text.as_str());
            let more = match problems.len() {
                1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            format!("{}{more}", shorten(worst, MAX_SUMMARY - more.len()))
        };
        let head = format!("{name} {status} - {summary}");
        let perf: Vec<String> = self.perfdata.iter().map(ToString::to_string).collect();
        let listed: Vec<&Finding> = if verbosity > 0 {
            self.findings.iter().collect()
        } else {
            problems.clone()
        };
        let max_line = if verbosity > 0 {
            MAX_LINE_VERBOSE
        } else {
            MAX_LINE
        };
        let mut lines = Vec::new();
        // A single finding already is the summary; list findings only when there is more to say.
        if listed.len() > 1 || (verbosity > 0 && !listed.is_empty() && self.ok_summary.is_some()) {
            for f in listed {
                lines.push(shorten(&format!("[{}] {}", f.status, f.text), max_line));
            }
        }
        for (level, text) in &self.details {
            if *level <= verbosity {
                lines.push(shorten(text, max_line));
            }
        }
        if verbosity >= 3 {
            lines.extend(self.perfdata.iter().map(|p| format!("perfdata {p}")));
        }
        let out = if verbosity > 0 {
            assemble(&head, &perf, perf.len(), &lines)
        } else {
            fit(&head, &perf, lines)
        };
        (out, status)
    }
}

/// Line 1 (`head` and the first `keep` perfdata items) and the long-output lines.
fn assemble(head: &str, perf: &[String], keep: usize, lines: &[String]) -> String {
    let mut out = head.to_string();
    if keep > 0 {
        out.push_str(" | ");
        out.push_str(&perf[..keep].join(" "));
    }
    for line in lines {
        out.push('\n');
        out.push_str(line);
    }
    out
}

/// [`assemble`] within [`MAX_LINE1`] and [`MAX_OUTPUT`]: whole perfdata items while line 1
/// has room, then long-output lines while the output has room, the last line saying how
/// many were left out.
fn fit(head: &str, perf: &[String], mut lines: Vec<String>) -> String {
    let mut first_len = head.len();
    let mut keep = 0;
    for item in perf {
        let sep = if keep == 0 { 3 } else { 1 };
        if first_len + sep + item.len() > MAX_LINE1 {
            break;
        }
        first_len += sep + item.len();
        keep += 1;
    }
    if keep < perf.len() {
        lines.insert(
            0,
            format!(
                "{} of {} perfdata items left out to keep line 1 within {MAX_LINE1} bytes (use --label or a narrower selection)",
                perf.len() - keep,
                perf.len()
            ),
        );
    }
    let room = MAX_OUTPUT - first_len;
    let total = |ls: &[String]| ls.iter().map(|l| l.len() + 1).sum::<usize>();
    if total(&lines) > room {
        let all = lines.len();
        loop {
            let note = format!(
                "... {} more lines left out (-v shows them)",
                all - lines.len() + 1
            );
            lines.pop();
            if total(&lines) + note.len() < room || lines.is_empty() {
                lines.push(note);
                break;
            }
        }
    }
    assemble(head, perf, keep, &lines)
}

/// Keeps output parseable and honest: the one sanitizer ([`crate::text`]).
fn clean(text: &str) -> String {
    sanitize(text)
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
        let first = |v: u8| r.render("X", v).0.lines().next().map(str::to_string);
        assert!((1..=3).all(|v| first(v) == first(0)));
        assert_eq!(
            first(0).unwrap(),
            "X CRITICAL - a[1] 1021/1024 (critical > 921) (+1 more) | 'a_fds'=1021;819;921;0;1024"
        );
    }

    #[test]
    fn a_worded_metric_is_judged_like_any_other() {
        let mut r = Report::default();
        let s = r.metric_worded(
            1021.0,
            &fd_thresholds(),
            PerfData::new("a_fds", 1021_u64),
            |j| format!("{}; owner at its limit", j.annotate("a[1] 1021/1024")),
        );
        assert_eq!(s, Status::Critical);
        let (out, _) = r.render("X", 2);
        assert_eq!(
            out,
            "X CRITICAL - a[1] 1021/1024 (critical > 921); owner at its limit | 'a_fds'=1021;819;921\na_fds = 1021 (warning 819, critical 921) -> CRITICAL"
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

    #[test]
    fn many_findings_fit_nrpe_and_monit_and_say_what_was_left_out() {
        let mut r = Report::default();
        for i in 0..60 {
            r.metric(
                1000.0 + f64::from(i),
                &fd_thresholds(),
                format!(
                    "worker-process-{i}[{}] {}/1024 open files",
                    4000 + i,
                    1000 + i
                ),
                PerfData::new(&format!("worker_{i}_fds"), 1000.0 + f64::from(i)).max(Some(1024.0)),
            );
        }
        r.detail("fix: raise LimitNOFILE in the unit");
        let (out, status) = r.render("FD_USAGE", 0);
        assert_eq!(status, Status::Critical);
        assert!(out.len() <= MAX_OUTPUT, "{} bytes", out.len());
        let head = out.lines().next().unwrap();
        assert!(head.len() <= MAX_LINE1, "{head}");
        assert!(
            head.starts_with("FD_USAGE CRITICAL - worker-process-0[4000] 1000/1024 open files (critical > 921) (+59 more) | 'worker_0_fds'=1000;819;921;;1024"),
            "{head}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].ends_with("perfdata items left out to keep line 1 within 512 bytes (use --label or a narrower selection)"), "{}", lines[1]);
        assert_eq!(
            lines[2],
            "[CRITICAL] worker-process-0[4000] 1000/1024 open files (critical > 921)"
        );
        let last = lines.last().unwrap();
        let left: usize = last
            .strip_prefix("... ")
            .and_then(|l| l.strip_suffix(" more lines left out (-v shows them)"))
            .unwrap()
            .parse()
            .unwrap();
        // 60 findings and a detail: those shown and those counted add up.
        assert_eq!(lines.len() - 3 + left, 61, "{out}");
        // -v shows everything.
        let (verbose, _) = r.render("FD_USAGE", 1);
        assert_eq!(verbose.lines().count(), 62);
        assert!(verbose.lines().next().unwrap().matches("_fds'=").count() == 60);
    }

    #[test]
    fn a_long_summary_is_cut_between_words_and_keeps_its_count() {
        let mut r = Report::default();
        let long = format!("{} (nofile 1024:4096 below 65536:65536)", "x".repeat(170));
        r.add(Status::Critical, long);
        r.add(Status::Warning, "other");
        let (out, _) = r.render("N", 0);
        let line1 = out.lines().next().unwrap();
        assert!(line1.ends_with("... (+1 more)"), "{line1}");
        assert!(!line1.contains("409..."), "never inside a number: {line1}");
        assert!(
            line1.len() <= "N CRITICAL - ".len() + MAX_SUMMARY,
            "{line1}"
        );
    }

    #[test]
    fn hostile_text_is_sanitized_everywhere() {
        let mut r = Report::default();
        r.add(Status::Critical, "ev\u{1b}[31mil\u{2028}x\ty[1]");
        r.detail("fix\u{202e}: a|b");
        let (out, _) = r.render("N", 0);
        assert_eq!(out, "N CRITICAL - ev?[31mil x y[1]\nfix?: a/b");
    }
}
