//! Performance data items, rendered per docs/contract.md §3:
//! `'label'=value[uom];[warn];[crit];[min];[max]`.

use std::fmt;

use crate::number::Number;
use crate::range::{Range, Thresholds};

/// Unit of measurement; `c` marks a monotonic counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uom {
    /// A plain count (fds, processes, connections).
    #[default]
    None,
    /// Percent.
    Percent,
    /// Bytes.
    Bytes,
    /// Seconds.
    Seconds,
    /// A continuous (monotonic) counter.
    Counter,
}

impl Uom {
    fn as_str(self) -> &'static str {
        match self {
            Uom::None => "",
            Uom::Percent => "%",
            Uom::Bytes => "B",
            Uom::Seconds => "s",
            Uom::Counter => "c",
        }
    }
}

/// One perfdata item.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfData {
    label: String,
    value: Option<Number>,
    uom: Uom,
    warn: Option<Range>,
    crit: Option<Range>,
    min: Option<Number>,
    max: Option<Number>,
}

impl PerfData {
    /// A new item. An integer is kept exact (docs/contract.md §3.3); a non-finite value is
    /// written `U` (could not be determined).
    pub fn new(label: &str, value: impl Into<Number>) -> PerfData {
        let value = value.into();
        PerfData {
            label: sanitize_label(label),
            value: value.is_finite().then_some(value),
            uom: Uom::None,
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    /// An item whose value could not be determined (`U`).
    pub fn unknown(label: &str) -> PerfData {
        PerfData::new(label, f64::NAN)
    }

    /// Sets the unit.
    #[must_use]
    pub fn uom(mut self, uom: Uom) -> PerfData {
        self.uom = uom;
        self
    }

    /// Sets warn and crit from the same ranges that are evaluated.
    #[must_use]
    pub fn thresholds(mut self, t: &Thresholds) -> PerfData {
        self.warn = t.warning;
        self.crit = t.critical;
        self
    }

    /// Sets the minimum.
    #[must_use]
    pub fn min(mut self, min: impl Into<Number>) -> PerfData {
        let min = min.into();
        self.min = min.is_finite().then_some(min);
        self
    }

    /// Sets the maximum, if known.
    #[must_use]
    pub fn max<N: Into<Number>>(mut self, max: Option<N>) -> PerfData {
        self.max = max.map(Into::into).filter(|m| m.is_finite());
        self
    }

    /// The sanitized label.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Keeps `[A-Za-z0-9_./:-]` and replaces everything else with `_`, so a label never needs
/// escaping and every consumer reads it alike.
fn sanitize_label(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_./:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "_".to_string()
    } else {
        clean
    }
}

impl fmt::Display for PerfData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.map_or("U".to_string(), |v| v.to_string());
        let range = |r: &Option<Range>| r.map(|r| r.to_string()).unwrap_or_default();
        let number = |n: &Option<Number>| n.map(|n| n.to_string()).unwrap_or_default();
        let fields = [
            range(&self.warn),
            range(&self.crit),
            number(&self.min),
            number(&self.max),
        ];
        let used = fields
            .iter()
            .rposition(|s| !s.is_empty())
            .map_or(0, |i| i + 1);
        write!(f, "'{}'={value}{}", self.label, self.uom.as_str())?;
        for field in &fields[..used] {
            write!(f, ";{field}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_strings() {
        let t = Thresholds {
            warning: Some(Range::above(819.0)),
            critical: Some(Range::above(921.0)),
        };
        let fds = PerfData::new("node_fds", 1021.0)
            .thresholds(&t)
            .min(0.0)
            .max(Some(1024.0));
        assert_eq!(fds.to_string(), "'node_fds'=1021;819;921;0;1024");
        assert_eq!(PerfData::new("procs", 3.0).to_string(), "'procs'=3");
        assert_eq!(PerfData::new("x", 1.0).min(0.0).to_string(), "'x'=1;;;0");
        assert_eq!(
            PerfData::new("time", 0.000_123_4)
                .uom(Uom::Seconds)
                .to_string(),
            "'time'=0.0001234s"
        );
        assert_eq!(
            PerfData::new("pct", 99.707_031_25)
                .uom(Uom::Percent)
                .to_string(),
            "'pct'=99.70703125%"
        );
        assert_eq!(
            PerfData::new("drops", 7.0).uom(Uom::Counter).to_string(),
            "'drops'=7c"
        );
        assert_eq!(
            PerfData::new("big", 1e20).to_string(),
            "'big'=100000000000000000000"
        );
    }

    #[test]
    fn numbers_keep_full_precision() {
        assert_eq!(
            PerfData::new("tiny", 1e-7).uom(Uom::Seconds).to_string(),
            "'tiny'=0.0000001s"
        );
        let file_max = 9_223_372_036_854_775_807_u64;
        assert_eq!(
            PerfData::new("file_handles", 2599_u64)
                .min(0)
                .max(Some(file_max))
                .to_string(),
            "'file_handles'=2599;;;0;9223372036854775807"
        );
        assert_eq!(
            PerfData::new("max", file_max).to_string(),
            "'max'=9223372036854775807"
        );
        let t = Thresholds {
            warning: Some(Range::above(0.000_000_1)),
            critical: None,
        };
        assert_eq!(
            PerfData::new("a", 0.5).thresholds(&t).to_string(),
            "'a'=0.5;0.0000001"
        );
    }

    #[test]
    fn ranges_print_as_plain_numbers_when_simple() {
        let t = Thresholds {
            warning: Some(Range::below(5.0)),
            critical: Some("@1:2".parse().unwrap()),
        };
        assert_eq!(
            PerfData::new("a", 3.0).thresholds(&t).to_string(),
            "'a'=3;5:;@1:2"
        );
    }

    #[test]
    fn no_nan_no_inf() {
        assert_eq!(PerfData::new("a", f64::NAN).to_string(), "'a'=U");
        assert_eq!(
            PerfData::unknown("a").max(Some(f64::INFINITY)).to_string(),
            "'a'=U"
        );
    }

    #[test]
    fn labels_are_sanitized() {
        assert_eq!(sanitize_label("php fpm's=|x"), "php_fpm_s__x");
        assert_eq!(sanitize_label("node/app:8080-a.b"), "node/app:8080-a.b");
        assert_eq!(sanitize_label(""), "_");
    }
}
