//! Nagios threshold ranges (`[@]start:end`) and the `N%` form used for percent-of-limit.
//!
//! Parsing is done by the `nagios-range` crate; this module adds what it lacks for the
//! contract (docs/contract.md §4): a bare negative such as `-5` (start 0 > end -5) and `nan`/`inf`
//! spellings are rejected, and ranges print back in their canonical form so the thresholds
//! shown in perfdata are exactly the ones evaluated.

use std::fmt;
use std::str::FromStr;

use crate::number::exact as num;
use crate::status::Status;

/// An inclusive Nagios range: alerts when a value is outside `start..=end`, or inside it
/// when written with a leading `@`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    start: f64,
    end: f64,
    inside: bool,
}

impl Range {
    /// Alerts when the value is greater than `limit` (the range `0:limit`, shown as `limit`).
    pub fn above(limit: f64) -> Range {
        Range {
            start: 0.0,
            end: limit,
            inside: false,
        }
    }

    /// Alerts when the value is lower than `limit` (the range `limit:`).
    pub fn below(limit: f64) -> Range {
        Range {
            start: limit,
            end: f64::INFINITY,
            inside: false,
        }
    }

    /// Whether `value` raises an alert under this range.
    pub(crate) fn alerts(&self, value: f64) -> bool {
        let within = value >= self.start && value <= self.end;
        within == self.inside
    }

    /// Human words for what an alerting value violates, e.g. `outside 0:10` / `> 10`.
    pub(crate) fn violation(&self) -> String {
        match (self.inside, self.start, self.end) {
            (false, s, e) if s == 0.0 || s == f64::NEG_INFINITY => format!("> {}", num(e)),
            (false, s, e) if e == f64::INFINITY => format!("< {}", num(s)),
            (false, s, e) => format!("outside {}:{}", num(s), num(e)),
            (true, s, e) => format!("inside {}:{}", bound(s), bound(e)),
        }
    }

    /// Scales both finite ends by `factor` and rounds them to whole numbers so that the
    /// range keeps its meaning for integer values (start up, end down): 80% of 1024 is
    /// 819.2, and "alerts above 819.2" is "alerts above 819" for a count.
    #[must_use]
    fn scaled_to_integers(&self, factor: f64) -> Range {
        let scale = |v: f64| if v.is_finite() { v * factor } else { v };
        Range {
            start: scale(self.start).ceil(),
            end: scale(self.end).floor(),
            inside: self.inside,
        }
    }
}

fn bound(v: f64) -> String {
    if v.is_infinite() {
        "~".to_string()
    } else {
        num(v)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        match (self.start, self.end) {
            (s, e) if s == 0.0 && e.is_finite() => write!(f, "{}", num(e)),
            (s, e) if e == f64::INFINITY => write!(f, "{}:", bound(s)),
            (s, e) => write!(f, "{}:{}", bound(s), num(e)),
        }
    }
}

impl FromStr for Range {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("range '{text}' is not valid ({why}); use [@]start:end, e.g. 10, 10:, ~:10, 10:20, @10:20")
        };
        if text.is_empty() {
            return Err(bad("empty"));
        }
        // Only the characters of the grammar: this rejects nan, inf, exponents and hex,
        // which Rust's float parser would otherwise accept.
        if !text
            .chars()
            .all(|c| c.is_ascii_digit() || ".:~@-+".contains(c))
        {
            return Err(bad("unexpected characters"));
        }
        let parsed = nagios_range::NagiosRange::from(text).map_err(|e| bad(&e.to_string()))?;
        let (start, end) = (*parsed.start(), *parsed.end());
        if start.is_nan() || end.is_nan() || start > end {
            return Err(bad("start is greater than end"));
        }
        Ok(Range {
            start,
            end,
            inside: parsed.checks_inside(),
        })
    }
}

/// A threshold as given on the command line: a range, possibly in percent of a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    range: Range,
    percent: bool,
}

impl Threshold {
    /// Whether the threshold was written in percent (`80%`).
    pub fn is_percent(&self) -> bool {
        self.percent
    }

    /// The range as written, percent not resolved.
    pub fn range(&self) -> Range {
        self.range
    }

    /// The absolute range for a metric whose limit is `limit`. A percent threshold against
    /// no known limit (`None`, e.g. an `unlimited` rlimit) cannot apply and gives `None`.
    pub fn resolve(&self, limit: Option<f64>) -> Option<Range> {
        match (self.percent, limit) {
            (false, _) => Some(self.range),
            (true, Some(limit)) => Some(self.range.scaled_to_integers(limit / 100.0)),
            (true, None) => None,
        }
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let percent = text.contains('%');
        let range = text.replace('%', "").parse()?;
        Ok(Threshold { range, percent })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.range, if self.percent { "%" } else { "" })
    }
}

/// A warning and a critical range for one metric; `None` means not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// The warning range.
    pub warning: Option<Range>,
    /// The critical range.
    pub critical: Option<Range>,
}

impl Thresholds {
    /// Critical first, then warning, else OK (the `get_status` rule).
    pub fn evaluate(&self, value: f64) -> Status {
        self.judge(value).status
    }

    /// Evaluates `value` (critical first, then warning, else OK) and keeps the range it
    /// crossed, so the finding can say why in the words of docs/contract.md §4.4.
    pub fn judge(&self, value: f64) -> Judgement {
        let crossed = |status: Status, range: Option<Range>| {
            range.filter(|r| r.alerts(value)).map(|range| Judgement {
                status,
                crossed: Some(range),
            })
        };
        crossed(Status::Critical, self.critical)
            .or_else(|| crossed(Status::Warning, self.warning))
            .unwrap_or(Judgement {
                status: Status::Ok,
                crossed: None,
            })
    }

    /// `warning 819, critical 921` (`-` for a range not set), for verbose output.
    pub fn describe(&self) -> String {
        let show = |r: Option<Range>| r.map_or_else(|| "-".to_string(), |r| r.to_string());
        format!(
            "warning {}, critical {}",
            show(self.warning),
            show(self.critical)
        )
    }
}

/// A value judged against [`Thresholds`]: its state and the range it crossed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// OK, WARNING or CRITICAL.
    pub status: Status,
    /// The range the value crossed; `None` when OK.
    pub crossed: Option<Range>,
}

impl Judgement {
    /// Why the value alerts, `critical > 921` / `warning < 5`; `None` when OK.
    pub fn words(&self) -> Option<String> {
        let range = self.crossed?;
        let level = if self.status == Status::Critical {
            "critical"
        } else {
            "warning"
        };
        Some(format!("{level} {}", range.violation()))
    }

    /// `text` followed by the words in parentheses when the value alerts:
    /// `node[2100] 1021/1024 open files (critical > 921)`.
    pub fn annotate(&self, text: &str) -> String {
        match self.words() {
            Some(words) => format!("{text} ({words})"),
            None => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Range {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The table of docs/contract.md §4.1, each value checked on both sides of every bound.
    #[test]
    fn contract_table() {
        let cases: &[(&str, &[f64], &[f64])] = &[
            // range, values that alert, values that do not
            ("10", &[-1.0, 10.5, 11.0], &[0.0, 5.0, 10.0]),
            ("10:", &[9.99, -3.0], &[10.0, 1e9]),
            ("~:10", &[10.01, 11.0], &[10.0, -1e9]),
            ("10:20", &[9.0, 21.0], &[10.0, 15.0, 20.0]),
            ("@10:20", &[10.0, 15.0, 20.0], &[9.99, 20.01]),
            (":", &[-0.5], &[0.0, 1e12]),
            ("~:", &[], &[-1e12, 0.0, 1e12]),
            ("@10", &[0.0, 10.0], &[-1.0, 10.5]),
            ("-10:-5", &[-11.0, -4.0], &[-10.0, -5.0]),
            ("0.5:1.5", &[0.4, 1.6], &[0.5, 1.5]),
        ];
        for (text, alerting, quiet) in cases {
            let range = r(text);
            for v in *alerting {
                assert!(range.alerts(*v), "{text} should alert on {v}");
            }
            for v in *quiet {
                assert!(!range.alerts(*v), "{text} should not alert on {v}");
            }
        }
    }

    #[test]
    fn rejects_what_upstream_rejects_and_more() {
        for bad in [
            "", "5:1", "abc", "-5", "5:~", "nan", "inf", "1e3", "0x10", "10:abc", "1,5", " 5",
        ] {
            assert!(bad.parse::<Range>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn canonical_round_trip() {
        for text in [
            "10", "10:", "~:10", "10:20", "@10:20", "@10", "~:", "-10:-5", "0.5:1.5",
        ] {
            assert_eq!(r(text).to_string(), text);
        }
        assert_eq!(r("0:10").to_string(), "10");
        assert_eq!(r(":").to_string(), "0:");
    }

    #[test]
    fn violation_words() {
        assert_eq!(r("10").violation(), "> 10");
        assert_eq!(r("10:").violation(), "< 10");
        assert_eq!(r("10:20").violation(), "outside 10:20");
        assert_eq!(r("@~:5").violation(), "inside ~:5");
    }

    #[test]
    fn percent_resolves_against_the_limit() {
        let t: Threshold = "80%".parse().unwrap();
        assert!(t.is_percent());
        assert_eq!(t.resolve(Some(1024.0)), Some(Range::above(819.0)));
        assert_eq!(t.resolve(None), None);
        let low: Threshold = "10%:".parse().unwrap();
        assert_eq!(low.resolve(Some(1024.0)).unwrap().to_string(), "103:");
        let abs: Threshold = "900".parse().unwrap();
        assert_eq!(abs.resolve(None), Some(Range::above(900.0)));
        assert_eq!(t.to_string(), "80%");
        assert!("80%x".parse::<Threshold>().is_err());
    }

    #[test]
    fn judgements_are_worded_alike_everywhere() {
        let t = Thresholds {
            warning: Some(r("819")),
            critical: Some(r("921")),
        };
        let j = t.judge(1021.0);
        assert_eq!(j.status, Status::Critical);
        assert_eq!(j.words().as_deref(), Some("critical > 921"));
        assert_eq!(
            j.annotate("x[1] 1021/1024"),
            "x[1] 1021/1024 (critical > 921)"
        );
        assert_eq!(t.judge(900.0).words().as_deref(), Some("warning > 819"));
        assert_eq!(t.judge(5.0).status, Status::Ok);
        assert_eq!(t.judge(5.0).annotate("fine"), "fine");
        let low = Thresholds {
            warning: Some(r("10:")),
            critical: Some(r("@0:2")),
        };
        assert_eq!(low.judge(5.0).words().as_deref(), Some("warning < 10"));
        assert_eq!(
            low.judge(1.0).words().as_deref(),
            Some("critical inside 0:2")
        );
        let band = Thresholds {
            warning: Some(r("10:20")),
            critical: None,
        };
        assert_eq!(
            band.judge(25.0).words().as_deref(),
            Some("warning outside 10:20")
        );
        assert_eq!(t.describe(), "warning 819, critical 921");
        assert_eq!(Thresholds::default().describe(), "warning -, critical -");
        assert_eq!(r("0.0000001").violation(), "> 0.0000001");
    }

    #[test]
    fn critical_is_evaluated_first() {
        let t = Thresholds {
            warning: Some(r("5")),
            critical: Some(r("10")),
        };
        assert_eq!(t.evaluate(3.0), Status::Ok);
        assert_eq!(t.evaluate(7.0), Status::Warning);
        assert_eq!(t.evaluate(11.0), Status::Critical);
        assert_eq!(t.judge(11.0).crossed, Some(r("10")));
        assert_eq!(Thresholds::default().evaluate(1e9), Status::Ok);
    }
}
