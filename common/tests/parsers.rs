//! Property tests of common's parsers (issue 12): whatever the input, they never panic;
//! what a printer writes parses back to the same value; errors say where (the line, the
//! text given) — and never echo a file's content where the input was a file.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use procguard_common::cli::{format_duration, parse_duration, Timeout};
use procguard_common::proc::limits::{parse_limit, show, Limits};
use procguard_common::proc::{ProcRoot, StatLine};
use procguard_common::range::{Range, Threshold};
use procguard_common::select::read_pidfile;
use procguard_common::state::StateDir;
use procguard_common::text::{sanitize, shorten, without_input};
use procguard_common::{accounts, systemd};

const LIMITS_FIXTURE: &str = include_str!("fixtures/proc/limits/lowered-nofile-linux-6.18.txt");

/// Text that looks like a range, or nearly.
fn range_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "@?(~|-?[0-9]{1,6}(\\.[0-9]{1,3})?)?(:(-?[0-9]{1,6}(\\.[0-9]{1,3})?)?)?%?",
        ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ranges_round_trip(text in range_like()) {
        if let Ok(r) = text.parse::<Range>() {
            prop_assert_eq!(r.to_string().parse::<Range>(), Ok(r), "{} -> {}", text, r);
        }
        if let Ok(t) = text.parse::<Threshold>() {
            let again = t.to_string().parse::<Threshold>();
            prop_assert_eq!(again, Ok(t), "{}", text);
        }
    }

    #[test]
    fn timeouts_stay_in_bounds(text in "[0-9.]{0,8}(:[a-z]{0,9})?|.{0,12}") {
        if let Ok(t) = text.parse::<Timeout>() {
            prop_assert!(t.duration > Duration::ZERO && t.duration <= Duration::from_secs(86_400));
        }
    }

    #[test]
    fn durations_round_trip_and_errors_quote_the_input(
        secs in 0u64..10_000_000,
        text in "([0-9.]{0,6}(ms|[smhdy]?)){0,3}|.{0,10}",
    ) {
        let printed = format_duration(Duration::from_secs(secs).as_secs_f64());
        let back = parse_duration(&printed).unwrap().as_secs();
        // The printer drops what is below its two units: within that precision.
        let precision = match secs { 0..=3599 => 1, 3600..=86_399 => 60, _ => 3600 };
        prop_assert!(back <= secs && secs - back < precision, "{} -> {} -> {}", secs, printed, back);
        match parse_duration(&text) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.contains(&format!("{text:?}")), "{}", e),
        }
    }

    #[test]
    fn limit_values_round_trip(v in any::<u64>(), text in ".{0,24}") {
        let shown = show(Some(v));
        let expected = if v == u64::MAX { None } else { Some(v) };
        prop_assert_eq!(parse_limit(&shown), Ok(expected));
        prop_assert_eq!(parse_limit(&show(None)), Ok(None));
        let _ = parse_limit(&text);
    }

    /// A real /proc/PID/limits with a stretch cut out or replaced: never a panic, and an
    /// error names the line.
    #[test]
    fn proc_limits_never_panic(cut in 0usize..1500, len in 0usize..80, junk in ".{0,20}") {
        let text = LIMITS_FIXTURE;
        let start = cut.min(text.len());
        let end = (start + len).min(text.len());
        if text.is_char_boundary(start) && text.is_char_boundary(end) {
            let damaged = format!("{}{junk}{}", &text[..start], &text[end..]);
            if let Err(e) = Limits::parse(&damaged) {
                prop_assert!(e.starts_with("line ") || e.contains("Max open files"), "{}", e);
            }
        }
        let _ = Limits::parse(&junk);
    }

    /// /proc/PID/stat: comm may hold spaces and parentheses; the fields after the last ')'
    /// are found whatever it holds.
    #[test]
    fn stat_lines_find_fields_after_any_comm(
        comm in "[ -~]{0,15}",
        ppid in 0i64..4_000_000,
        start in any::<u32>(),
        junk in ".{0,60}",
    ) {
        let line = format!(
            "4242 ({comm}) S {ppid} 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        );
        let s = StatLine::parse(&line).unwrap();
        prop_assert_eq!(&s.comm, &comm);
        prop_assert_eq!(s.starttime, u64::from(start));
        let _ = StatLine::parse(&junk);
    }

    /// /proc/PID/status read from a tree: never a panic, whatever the file holds.
    #[test]
    fn proc_status_never_panics(text in "([A-Za-z]{1,8}:\t[0-9 \t-]{0,12}\n){0,12}|.{0,80}") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("7")).unwrap();
        std::fs::write(dir.path().join("7/status"), &text).unwrap();
        std::fs::write(dir.path().join("7/stat"), &text).unwrap();
        let root = ProcRoot::new(dir.path());
        let _ = root.process(7).status();
        let _ = root.process(7).stat();
    }

    #[test]
    fn systemctl_show_round_trips(
        props in proptest::collection::btree_map("[A-Za-z]{1,12}", "[ -~]{0,20}", 0..8),
        junk in ".{0,100}",
    ) {
        let text: String = props.iter().flat_map(|(k, v)| [k.as_str(), "=", v.as_str(), "\n"]).collect();
        let parsed = systemd::parse_show(&text);
        prop_assert_eq!(parsed.len(), props.len());
        for (k, v) in &props {
            prop_assert_eq!(&parsed[k], v);
        }
        let _ = systemd::parse_show(&junk);
    }

    #[test]
    fn passwd_and_group_round_trip(
        users in proptest::collection::vec(("[a-z_][a-z0-9_-]{0,10}", any::<u32>(), any::<u32>()), 0..6),
        junk in ".{0,120}",
    ) {
        let text: String = users
            .iter()
            .map(|(n, uid, gid)| format!("{n}:x:{uid}:{gid}:gecos:/home/{n}:/bin/sh"))
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = accounts::parse_passwd(&text);
        prop_assert_eq!(parsed.len(), users.len());
        for (p, (n, uid, gid)) in parsed.iter().zip(&users) {
            prop_assert_eq!((&p.name, p.uid, p.gid), (n, *uid, *gid));
        }
        let _ = accounts::parse_passwd(&junk);
        let _ = accounts::parse_group(&junk);
    }

    /// The sanitizer leaves nothing that breaks a line, starts perfdata or steers a
    /// terminal; applying it twice changes nothing; shorten stays in its budget.
    #[test]
    fn sanitized_text_is_inert(text in any::<String>(), max in 3usize..300) {
        let clean = sanitize(&text);
        let inert = |c: char| {
            !(c.is_control()
                || c == '|'
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        };
        prop_assert!(clean.chars().all(inert), "{:?}", clean);
        prop_assert_eq!(sanitize(&clean), clean.clone());
        let short = shorten(&clean, max);
        prop_assert!(short.len() <= max, "{} > {}", short.len(), max);
        let _ = without_input(&text);
    }

    /// Whatever bytes a state file holds, the store never panics and never fails because
    /// of them: the file is loaded or moved aside.
    #[test]
    fn the_state_envelope_never_panics(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200).boxed(),
            "\\{\"format\":\"procguard-state\",\"version\":[0-9]{1,2},\"key\":\"k\",\"data\":(\\{\\}|\\[\\]|[0-9]{1,3}|\"x\"|null|\\{\"count\":[0-9a-z\"]{0,4}\\})\\}"
                .prop_map(String::into_bytes)
                .boxed(),
        ],
    ) {
        #[derive(serde::Serialize, serde::Deserialize, Default)]
        #[serde(default)]
        struct Counter { count: u64 }
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        let file = store.file("k");
        std::fs::write(&file, &bytes).unwrap();
        let run = store.update("k", |c: &mut Counter, _| { c.count += 1; c.count });
        prop_assert!(run.is_ok(), "{:?}", run.err().map(|e| e.to_string()));
    }

    /// A pidfile holding anything: never a panic, and never its content in the answer.
    #[test]
    fn pidfiles_are_never_echoed(content in "zq[a-z0-9:*$]{6,30}\n?", pid in 1i32..4_000_000) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.pid");
        std::fs::write(&file, &content).unwrap();
        let why = read_pidfile(&file).unwrap().unwrap_err();
        prop_assert!(!why.contains(content.trim()), "{}", why);
        std::fs::write(&file, format!("{pid}\n")).unwrap();
        prop_assert_eq!(read_pidfile(&file).unwrap(), Ok(pid));
        prop_assert!(Path::new(&file).exists());
    }
}
