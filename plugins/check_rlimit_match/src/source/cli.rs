//! Command-line expectations: `--expect ITEM=SOFT[:HARD]` (exact) and `--at-least` (minimum).
//! [`Stated`] is also what the YAML config's `expect:` and `at_least:` become.

use crate::expect::ItemSpec;
use crate::expectation::{Comparison, Expectation, Half, Kind};

/// An expectation written as `ITEM=SOFT[:HARD]`: on the command line or in the YAML config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stated {
    /// The item and values (a half left out is not checked).
    pub spec: ItemSpec,
    /// Exact or minimum.
    pub comparison: Comparison,
    /// Where it was written.
    pub kind: Kind,
    /// As shown in findings: `--expect nofile=1024:4096`, `services.yaml web expect nofile=...`.
    pub source: String,
}

impl Stated {
    /// One expectation per half given.
    pub fn expectations(&self) -> impl Iterator<Item = Expectation> + '_ {
        Half::BOTH.into_iter().filter_map(move |half| {
            let value = match half {
                Half::Soft => self.spec.spec.soft,
                Half::Hard => self.spec.spec.hard,
            }?;
            Some(Expectation {
                item: self.spec.item,
                half,
                value,
                comparison: self.comparison,
                kind: self.kind.clone(),
                source: self.source.clone(),
            })
        })
    }
}

/// `--expect` values (exact) and `--at-least` values (minimum), in that order.
pub fn stated(expect: &[ItemSpec], at_least: &[ItemSpec]) -> Vec<Stated> {
    let flag = |spec: &ItemSpec, comparison, kind: Kind| Stated {
        spec: *spec,
        comparison,
        source: format!("{kind} {spec}"),
        kind,
    };
    expect
        .iter()
        .map(|s| flag(s, Comparison::Exact, Kind::Expect))
        .chain(
            at_least
                .iter()
                .map(|s| flag(s, Comparison::AtLeast, Kind::AtLeast)),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_one_expectation_per_half_given() {
        let expect = [
            "nofile=1024:4096".parse().unwrap(),
            "core=:unlimited".parse().unwrap(),
        ];
        let at_least = ["nproc=100".parse().unwrap()];
        let stated = stated(&expect, &at_least);
        let all: Vec<(&str, Half, Option<u64>, Comparison, String)> = stated
            .iter()
            .flat_map(Stated::expectations)
            .map(|e| (e.item, e.half, e.value, e.comparison, e.source))
            .collect();
        assert_eq!(
            all,
            [
                (
                    "nofile",
                    Half::Soft,
                    Some(1024),
                    Comparison::Exact,
                    "--expect nofile=1024:4096".into()
                ),
                (
                    "nofile",
                    Half::Hard,
                    Some(4096),
                    Comparison::Exact,
                    "--expect nofile=1024:4096".into()
                ),
                (
                    "core",
                    Half::Hard,
                    None,
                    Comparison::Exact,
                    "--expect core=:unlimited".into()
                ),
                (
                    "nproc",
                    Half::Soft,
                    Some(100),
                    Comparison::AtLeast,
                    "--at-least nproc=100".into()
                ),
            ]
        );
        assert_eq!(stated[2].kind, Kind::AtLeast);
    }
}
