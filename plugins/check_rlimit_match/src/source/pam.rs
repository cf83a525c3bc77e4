//! `--limits-conf [PATH]`: at least what pam_limits would set for the process's user, from
//! limits.conf and limits.d resolved by [`crate::limits_conf`] (the pam_limits mirror).

use std::rc::Rc;

use procguard_common::proc::limits::show;
use procguard_common::proc::Rlimit;
use procguard_common::Status;

use crate::acquire::Facts;
use crate::expectation::{Comparison, Expectation, Half, Kind, Note};
use crate::limits_conf::{self, ConfFile, Flavor, Identity, Resolution};
use crate::source::Expected;

/// The configuration files and the process's identity, as acquisition read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamInput {
    /// limits.conf, then limits.d/* in pam_limits' order.
    pub files: Rc<Vec<ConfFile>>,
    /// Who the process runs as, in pam_limits' terms.
    pub identity: Identity,
}

/// fs.nr_open when it cannot be read: the kernel's default.
const DEFAULT_NR_OPEN: u64 = 1_048_576;

/// Adds the minimums pam_limits would set for each item, or says that it sets nothing.
pub fn expectations(
    input: &PamInput,
    items: &[&'static str],
    facts: &Facts,
    who: &str,
    out: &mut Expected,
) {
    let id = &input.identity;
    let user = id.user.clone().unwrap_or_else(|| format!("uid {}", id.uid));
    let nr_open = facts.nr_open.unwrap_or(DEFAULT_NR_OPEN);
    let r = limits_conf::resolve(&input.files, id, facts.flavor, nr_open);
    out.conf_warnings.extend(r.warnings.iter().cloned());
    out.kinds.insert(Kind::LimitsConf);
    if let Some(line) = &r.no_limits {
        out.notes.push(Note::new(
            Status::Ok,
            format!(
                "{who}: pam_limits applies no limits to {user} ({})",
                line.describe()
            ),
        ));
        return;
    }
    let debian_root = facts.flavor == Flavor::Debian && id.uid == 0;
    // Debian's pam_limits skips '*' and '@group' lines for root. When such lines would have
    // set the item, a value below them is worth a WARNING: it is what the file seems to
    // promise (the incident's "root too"), but not what root gets.
    let upstream = debian_root
        .then(|| limits_conf::resolve(&input.files, id, Flavor::Upstream, nr_open))
        .filter(|u| u.no_limits.is_none());
    for item in items {
        // pam_limits starts from PID 1's limits (what a session gets where nothing is set).
        let start = facts
            .pid1
            .as_ref()
            .and_then(|l| l.get(item))
            .unwrap_or(Rlimit {
                soft: None,
                hard: None,
            });
        let mut set = from_resolution(&r, item, start, "", Comparison::AtLeast);
        if set.is_empty() {
            let skipped = ", not applied to root by Debian's pam_limits";
            set = upstream.as_ref().map_or_else(Vec::new, |u| {
                from_resolution(u, item, start, skipped, Comparison::Advisory)
            });
        }
        if !set.is_empty() {
            out.list.extend(set);
            continue;
        }
        let note = if debian_root {
            " (Debian: '*' and '@group' lines do not apply to root; --pam-flavor upstream applies them)"
        } else {
            ""
        };
        out.notes.push(Note::new(
            Status::Ok,
            format!("{who} {item}: limits.conf sets nothing for {user}{note}"),
        ));
    }
}

/// The minimums a resolution sets for `item` (soft clamped to the effective hard value);
/// empty when it sets nothing.
fn from_resolution(
    r: &Resolution,
    item: &'static str,
    start: Rlimit,
    note: &str,
    comparison: Comparison,
) -> Vec<Expectation> {
    let Some(set) = r.items.get(item) else {
        return Vec::new();
    };
    let eff = r.effective(item, start);
    let want = |half, value, source| Expectation {
        item,
        half,
        value,
        comparison,
        kind: Kind::LimitsConf,
        source,
    };
    let mut out = Vec::new();
    if let Some(soft) = &set.soft {
        let clamped = if eff.soft == soft.value {
            String::new()
        } else {
            format!(", clamped to hard {}", show(eff.soft))
        };
        let source = format!("{}{clamped}{note}", soft.line.describe());
        out.push(want(Half::Soft, eff.soft, source));
    }
    if let Some(hard) = &set.hard {
        let source = format!("{}{note}", hard.line.describe());
        out.push(want(Half::Hard, hard.value, source));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits_conf::Group;
    use procguard_common::proc::Limits;

    const PID1: &str =
        include_str!("../../../../common/tests/fixtures/proc/limits/pid1-linux-6.18.txt");

    fn identity(user: &str, uid: u32, groups: &[(u32, &str)]) -> Identity {
        Identity {
            user: Some(user.into()),
            uid,
            gid: groups[0].0,
            groups: groups
                .iter()
                .map(|(gid, name)| Group {
                    gid: *gid,
                    name: Some(name.to_string()),
                })
                .collect(),
        }
    }

    fn run(conf: &str, id: Identity, flavor: Flavor) -> Expected {
        let input = PamInput {
            files: Rc::new(vec![ConfFile {
                name: "limits.conf".into(),
                text: conf.into(),
            }]),
            identity: id,
        };
        let facts = Facts {
            nr_open: Some(1_048_576),
            pid1: Some(Limits::parse(PID1).unwrap()),
            flavor,
        };
        let mut out = Expected::default();
        expectations(&input, &["nofile", "core"], &facts, "node[100]", &mut out);
        out
    }

    #[test]
    fn lines_for_the_user_become_minimums_naming_the_line() {
        let app = identity("app", 1000, &[(1000, "app"), (33, "web")]);
        let out = run(
            "# the incident's file\n@web soft nofile 500000\n@web hard nofile 400000\n* soft core 0\n",
            app,
            Flavor::Upstream,
        );
        let got: Vec<(&str, Half, Option<u64>, Comparison, &str)> = out
            .list
            .iter()
            .map(|e| (e.item, e.half, e.value, e.comparison, e.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "nofile",
                    Half::Soft,
                    Some(400_000),
                    Comparison::AtLeast,
                    "limits.conf:2 \"@web soft nofile 500000\", clamped to hard 400000"
                ),
                (
                    "nofile",
                    Half::Hard,
                    Some(400_000),
                    Comparison::AtLeast,
                    "limits.conf:3 \"@web hard nofile 400000\""
                ),
                (
                    "core",
                    Half::Soft,
                    Some(0),
                    Comparison::AtLeast,
                    "limits.conf:4 \"* soft core 0\""
                ),
            ]
        );
        assert!(out.notes.is_empty());
        assert_eq!(out.kinds.iter().next(), Some(&Kind::LimitsConf));
    }

    #[test]
    fn debian_root_gets_advisory_minimums_and_says_what_is_unset() {
        let root = identity("root", 0, &[(0, "root")]);
        let out = run("* - nofile 65536\n", root.clone(), Flavor::Debian);
        assert_eq!(out.list.len(), 2);
        assert!(out
            .list
            .iter()
            .all(|e| e.comparison == Comparison::Advisory));
        assert_eq!(
            out.list[0].source,
            "limits.conf:1 \"* - nofile 65536\", not applied to root by Debian's pam_limits"
        );
        assert_eq!(
            out.notes,
            [Note::new(Status::Ok, "node[100] core: limits.conf sets nothing for root (Debian: '*' and '@group' lines do not apply to root; --pam-flavor upstream applies them)")]
        );
        let upstream = run("* - nofile 65536\n", root, Flavor::Upstream);
        assert!(upstream
            .list
            .iter()
            .all(|e| e.comparison == Comparison::AtLeast));
    }

    #[test]
    fn a_no_limits_line_applies_nothing() {
        let app = identity("app", 1000, &[(1000, "app")]);
        let out = run("* - nofile 65536\napp -\n", app, Flavor::Upstream);
        assert!(out.list.is_empty());
        assert_eq!(
            out.notes,
            [Note::new(
                Status::Ok,
                "node[100]: pam_limits applies no limits to app (limits.conf:2 \"app -\")"
            )]
        );
    }

    /// /etc/security/limits.conf as Debian 12's libpam-modules 1.5.2-6+deb12u1 ships it
    /// (only commented examples).
    const DEBIAN12: &str = include_str!("../../tests/fixtures/limits.conf-debian12");

    #[test]
    fn the_stock_debian_file_sets_nothing() {
        let app = identity("app", 1000, &[(1000, "app")]);
        let out = run(DEBIAN12, app, Flavor::Debian);
        assert!(out.list.is_empty());
        assert_eq!(
            out.notes,
            [
                Note::new(
                    Status::Ok,
                    "node[100] nofile: limits.conf sets nothing for app"
                ),
                Note::new(
                    Status::Ok,
                    "node[100] core: limits.conf sets nothing for app"
                ),
            ]
        );
        assert!(out.conf_warnings.is_empty(), "{:?}", out.conf_warnings);
    }

    #[test]
    fn the_incident_lines_appended_to_the_stock_file() {
        let text = format!("{DEBIAN12}* soft nofile 500000\n* hard nofile 500000\n");
        let app = identity("app", 1000, &[(1000, "app")]);
        let out = run(&text, app, Flavor::Debian);
        let got: Vec<(Half, Option<u64>, Comparison, &str)> = out
            .list
            .iter()
            .map(|e| (e.half, e.value, e.comparison, e.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Half::Soft,
                    Some(500_000),
                    Comparison::AtLeast,
                    "limits.conf:68 \"* soft nofile 500000\""
                ),
                (
                    Half::Hard,
                    Some(500_000),
                    Comparison::AtLeast,
                    "limits.conf:69 \"* hard nofile 500000\""
                ),
            ]
        );
        // Root on Debian: the '*' lines are what the file seems to promise, not what applies.
        let root = identity("root", 0, &[(0, "root")]);
        let out = run(&text, root, Flavor::Debian);
        assert_eq!(out.list.len(), 2);
        assert!(out
            .list
            .iter()
            .all(|e| e.comparison == Comparison::Advisory));
    }
}
