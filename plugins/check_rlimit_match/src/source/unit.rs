//! `--systemd [UNIT]`: exactly the unit's `Limit*=` values, as `systemctl show` prints them
//! (`LimitNOFILE` is the hard value, `LimitNOFILESoft` the soft one).

use std::collections::HashMap;
use std::rc::Rc;

use procguard_common::proc::limits::{self, show};
use procguard_common::Status;

use crate::expectation::{Comparison, Expectation, Half, Kind, Note};
use crate::source::Expected;

/// A unit and its properties, as acquisition read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInput {
    /// The unit's full name (`web.service`).
    pub unit: String,
    /// `systemctl show` properties: the Limit*= ones asked for and `LoadState`.
    pub props: Rc<HashMap<String, String>>,
}

/// Adds the unit's soft and hard value of each item as exact expectations. `nr_open` stands
/// in for an infinite `LimitNOFILE`.
pub fn expectations(
    input: &UnitInput,
    items: &[&'static str],
    nr_open: Option<u64>,
    out: &mut Expected,
) {
    let (unit, props) = (&input.unit, &input.props);
    if props.get("LoadState").is_some_and(|s| s == "not-found") {
        out.notes.push(Note::once(
            Status::Unknown,
            format!("--systemd: unit {unit} not found (LoadState=not-found)"),
        ));
        return;
    }
    out.kinds.insert(Kind::Unit(unit.clone()));
    for item in items {
        let Some(limit_item) = limits::item(item) else {
            continue;
        };
        let prop = limit_item.systemd;
        match limit_item.from_systemd(props) {
            Ok(Some(l)) => {
                for half in Half::BOTH {
                    let name = match half {
                        Half::Soft => format!("{prop}Soft"),
                        Half::Hard => prop.to_string(),
                    };
                    let v = half.of(l);
                    let shown = props.get(&name).cloned().unwrap_or_else(|| show(v));
                    // NOFILE cannot be infinite: systemd falls back to the highest it can.
                    let (value, note) = match (v, *item) {
                        (None, "nofile") => (nr_open, " -> fs.nr_open"),
                        _ => (v, ""),
                    };
                    out.list.push(Expectation {
                        item,
                        half,
                        value,
                        comparison: Comparison::Exact,
                        kind: Kind::Unit(unit.clone()),
                        source: format!("unit {unit} {name}={shown}{note}"),
                    });
                }
            }
            Ok(None) => out.notes.push(Note::new(
                Status::Unknown,
                format!(
                    "--systemd: systemctl show {unit} printed no {prop}{}",
                    if unit.rsplit_once('.').is_some_and(|(_, kind)| kind == "scope") {
                        " (a scope: its processes were not started by systemd, so it has no Limit*= settings)"
                    } else {
                        ""
                    }
                ),
            )),
            Err(e) => out.notes.push(Note::once(
                Status::Unknown,
                format!("--systemd: unit {unit}: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `systemctl show --property=LimitNOFILE,LimitNOFILESoft,LimitCORE,LimitCORESoft,LoadState`
    /// prints for a service under systemd 252's default `DefaultLimitNOFILE=1024:524288` and
    /// `LimitCORE=infinity`. Written in its format by hand: the build machine runs no systemd.
    const SHOW: &str = "LimitNOFILE=524288\nLimitNOFILESoft=1024\nLimitCORE=infinity\nLimitCORESoft=infinity\nLoadState=loaded\n";

    fn run(unit: &str, text: &str, items: &[&'static str]) -> Expected {
        let input = UnitInput {
            unit: unit.into(),
            props: Rc::new(procguard_common::systemd::parse_show(text)),
        };
        let mut out = Expected::default();
        expectations(&input, items, Some(1_048_576), &mut out);
        out
    }

    #[test]
    fn limit_properties_become_exact_expectations() {
        let out = run("web.service", SHOW, &["nofile", "core"]);
        let got: Vec<(&str, Half, Option<u64>, &str)> = out
            .list
            .iter()
            .map(|e| (e.item, e.half, e.value, e.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "nofile",
                    Half::Soft,
                    Some(1024),
                    "unit web.service LimitNOFILESoft=1024"
                ),
                (
                    "nofile",
                    Half::Hard,
                    Some(524_288),
                    "unit web.service LimitNOFILE=524288"
                ),
                (
                    "core",
                    Half::Soft,
                    None,
                    "unit web.service LimitCORESoft=infinity"
                ),
                (
                    "core",
                    Half::Hard,
                    None,
                    "unit web.service LimitCORE=infinity"
                ),
            ]
        );
        assert_eq!(
            out.kinds.iter().next(),
            Some(&Kind::Unit("web.service".into()))
        );
        assert!(out.notes.is_empty());
    }

    #[test]
    fn infinite_nofile_is_nr_open_and_missing_units_are_unknown() {
        let out = run(
            "a.service",
            "LimitNOFILE=infinity\nLoadState=loaded\n",
            &["nofile"],
        );
        assert_eq!(out.list[1].value, Some(1_048_576));
        assert_eq!(
            out.list[1].source,
            "unit a.service LimitNOFILE=infinity -> fs.nr_open"
        );
        assert_eq!(
            out.list[0].source,
            "unit a.service LimitNOFILESoft=unlimited -> fs.nr_open"
        );

        let gone = run(
            "nope.service",
            "LimitNOFILE=infinity\nLoadState=not-found\n",
            &["nofile"],
        );
        assert!(gone.list.is_empty() && gone.kinds.is_empty());
        assert_eq!(
            gone.notes,
            [Note::once(
                Status::Unknown,
                "--systemd: unit nope.service not found (LoadState=not-found)"
            )]
        );

        let scope = run("run-r1.scope", "LoadState=loaded\n", &["nofile"]);
        assert_eq!(scope.notes[0].status, Status::Unknown);
        assert!(
            scope.notes[0].text.starts_with(
                "--systemd: systemctl show run-r1.scope printed no LimitNOFILE (a scope:"
            ),
            "{:?}",
            scope.notes
        );

        let bad = run(
            "b.service",
            "LimitNOFILE=lots\nLoadState=loaded\n",
            &["nofile"],
        );
        assert!(
            bad.notes[0].once
                && bad.notes[0]
                    .text
                    .starts_with("--systemd: unit b.service: LimitNOFILE:"),
            "{:?}",
            bad.notes
        );
    }
}
