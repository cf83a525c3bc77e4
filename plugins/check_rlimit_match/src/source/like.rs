//! `--like-pid PID` / `--like-pidfile FILE`: exactly the limits of another process (e.g. an
//! instance started by hand that works, or the master of a pre-forking server).

use procguard_common::proc::Limits;
use procguard_common::Status;

use crate::expectation::{Comparison, Expectation, Half, Kind, Note};
use crate::source::Expected;

/// The reference process, as acquisition found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikeInput {
    /// The reference is the checked process itself.
    Itself {
        /// `--like-pid 7`, `--like-pidfile /run/x.pid`.
        flag: String,
    },
    /// Another process.
    Other {
        /// `name[pid]`.
        who: String,
        /// Its limits.
        limits: Limits,
    },
}

/// Adds the reference's soft and hard value of each item as exact expectations. A process
/// is not compared with itself: when it is the only one selected that is a usage mistake
/// (UNKNOWN); among several (workers selected by name, the master by pidfile) it is skipped.
pub fn expectations(
    input: &LikeInput,
    items: &[&'static str],
    checked: &str,
    alone: bool,
    out: &mut Expected,
) {
    let (who, limits) = match input {
        LikeInput::Itself { flag } if alone => {
            out.explained = true;
            out.notes.push(Note::new(
                Status::Unknown,
                format!("{checked}: {flag} names the selected process itself: nothing to compare it with (give another instance's pid or pidfile)"),
            ));
            return;
        }
        LikeInput::Itself { flag } => {
            out.explained = true;
            out.notes.push(Note::new(
                Status::Ok,
                format!("{checked} is the {flag} reference: not compared with itself"),
            ));
            return;
        }
        LikeInput::Other { who, limits } => (who, limits),
    };
    out.kinds.insert(Kind::Like(who.clone()));
    for item in items {
        let Some(l) = limits.get(item) else { continue };
        for half in Half::BOTH {
            out.list.push(Expectation {
                item,
                half,
                value: half.of(l),
                comparison: Comparison::Exact,
                kind: Kind::Like(who.clone()),
                source: format!("like {who} {item} {}", l.describe()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOWERED: &str =
        include_str!("../../../../common/tests/fixtures/proc/limits/lowered-nofile-linux-6.18.txt");

    fn run(input: &LikeInput, alone: bool) -> Expected {
        let mut out = Expected::default();
        expectations(input, &["nofile", "core"], "node[100]", alone, &mut out);
        out
    }

    #[test]
    fn another_process_gives_exact_values_of_each_half() {
        let input = LikeInput::Other {
            who: "monit[50]".into(),
            limits: Limits::parse(LOWERED).unwrap(),
        };
        let out = run(&input, true);
        let got: Vec<(&str, Half, Option<u64>, &str)> = out
            .list
            .iter()
            .map(|e| (e.item, e.half, e.value, e.source.as_str()))
            .collect();
        assert_eq!(
            got[0],
            (
                "nofile",
                Half::Soft,
                Some(1024),
                "like monit[50] nofile 1024:4096"
            )
        );
        assert_eq!(
            got[1],
            (
                "nofile",
                Half::Hard,
                Some(4096),
                "like monit[50] nofile 1024:4096"
            )
        );
        assert_eq!(got[2].0, "core");
        assert!(out.list.iter().all(|e| e.comparison == Comparison::Exact));
        assert_eq!(
            out.kinds.iter().next(),
            Some(&Kind::Like("monit[50]".into()))
        );
        assert!(out.notes.is_empty());
    }

    #[test]
    fn the_process_itself_is_never_its_own_reference() {
        let input = LikeInput::Itself {
            flag: "--like-pidfile /run/node.pid".into(),
        };
        let alone = run(&input, true);
        assert!(alone.list.is_empty() && alone.kinds.is_empty() && alone.explained);
        assert_eq!(alone.notes[0].status, Status::Unknown);
        assert_eq!(
            alone.notes[0].text,
            "node[100]: --like-pidfile /run/node.pid names the selected process itself: nothing to compare it with (give another instance's pid or pidfile)"
        );
        let among = run(&input, false);
        assert!(among.list.is_empty() && among.explained);
        assert_eq!(among.notes[0].status, Status::Ok);
        assert_eq!(
            among.notes[0].text,
            "node[100] is the --like-pidfile /run/node.pid reference: not compared with itself"
        );
    }
}
