//! Property tests of check_rlimit_match's parsers (issue 12): limits.conf, the YAML config
//! and `ITEM=SOFT[:HARD]` never panic; what they skip or reject is named by file and line,
//! never echoed; printed expectations parse back.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;

use check_rlimit_match::config;
use check_rlimit_match::expect::ItemSpec;
use check_rlimit_match::limits_conf::{resolve, ConfFile, Flavor, Group, Identity};

/// A line that looks like limits.conf, or nearly.
fn conf_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "(\\*|@?[a-z]{1,6}|%|[0-9]{1,4}:[0-9]{0,4}|@[0-9:]{1,6}) +(soft|hard|-|sfot) +(nofile|nproc|core|nice|maxlogins|nofle|as) +(-?[0-9]{1,20}|unlimited|-|infinity|x)( *#.*)?",
        "[ -~]{0,40}",
        ".{0,30}",
    ]
}

fn alice() -> Identity {
    Identity {
        user: Some("alice".into()),
        uid: 1000,
        gid: 1000,
        groups: vec![Group {
            gid: 1000,
            name: Some("staff".into()),
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every warning names the file and a line that exists, and never carries a line's text
    /// that pam_limits could not parse.
    #[test]
    fn limits_conf_warnings_name_the_line(lines in proptest::collection::vec(conf_line(), 0..12)) {
        let text = lines.join("\n");
        let files = [ConfFile { name: "limits.conf".into(), text: text.clone() }];
        for flavor in [Flavor::Upstream, Flavor::Debian] {
            let r = resolve(&files, &alice(), flavor, 1 << 20);
            for w in &r.warnings {
                let n: usize = w
                    .split(|c: char| !c.is_ascii_digit())
                    .find_map(|t| t.parse().ok().filter(|n| *n >= 1 && *n <= lines.len()))
                    .unwrap_or_else(|| panic!("no line number in {w:?}"));
                prop_assert!(w.contains("limits.conf"), "{}", w);
                let line = lines[n - 1].trim();
                if w.starts_with("invalid line") && line.len() > 3 {
                    prop_assert!(!w.contains(line), "echoed: {}", w);
                }
            }
        }
    }

    /// Any text as the YAML config: an error names the file and, where YAML knows it, a
    /// line that exists; the text of a file that is not a config never comes back.
    #[test]
    fn yaml_config_errors_name_the_line(text in prop_oneof![
        "services:\n(  - (name|select|expect|at_least|label|limits_conf): [ -~]{0,12}\n){0,5}",
        "zq[a-z0-9:*$]{4,20}(\n[ -~]{0,30}){0,4}",
        ".{0,60}",
    ]) {
        if let Err(e) = config::parse(Path::new("s.yaml"), &text) {
            let e = e.to_string();
            prop_assert!(e.starts_with("config s.yaml"), "{}", e);
            if let Some(rest) = e.strip_prefix("config s.yaml line ") {
                let n: usize = rest.split(':').next().unwrap().parse().unwrap();
                // YAML breaks lines at CR, LF and CR LF alike (a lone CR too).
                let lines = text.replace("\r\n", "\n").matches(['\r', '\n']).count() + 1;
                prop_assert!(n >= 1 && n <= lines + 1, "{}", e);
            }
            if let Some(secret) = text.strip_prefix("zq").map(|t| t.lines().next().unwrap()) {
                prop_assert!(!e.contains(&format!("zq{secret}")), "echoed: {}", e);
            }
        }
    }

    #[test]
    fn item_specs_round_trip(text in "(nofile|NPROC|core|as|bogus)=(-?[0-9]{0,20}|unlimited|infinity)?(:(-?[0-9]{0,20}|unlimited)?)?|.{0,20}") {
        if let Ok(spec) = text.parse::<ItemSpec>() {
            prop_assert_eq!(spec.to_string().parse::<ItemSpec>(), Ok(spec), "{}", text);
        }
    }
}
