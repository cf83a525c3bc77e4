//! The packaged documentation and configuration keep up with the plugins' code: the man
//! pages, completions and Icinga 2 CheckCommands generated from the clap definitions are
//! the committed ones, every plugin is in them, and every command line in the man pages'
//! EXAMPLES, the Nagios command definitions and the Monit examples parses.
#![allow(clippy::unwrap_used)]

use procguard_contract_tests::generate::{self, Plugin, PLUGINS};
use procguard_contract_tests::{plugin_names, workspace_root};

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn plugin(name: &str) -> &'static Plugin {
    PLUGINS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is not in PLUGINS (tests/src/generate.rs)"))
}

/// Parses `args` (after the binary's name) with the plugin's clap definition.
fn assert_parses(p: &Plugin, args: &[String], context: &str) {
    let argv = std::iter::once(p.name.to_string()).chain(args.iter().cloned());
    if let Err(e) = (p.command)().try_get_matches_from(argv) {
        panic!(
            "{context}: `{} {}` does not parse:\n{e}",
            p.name,
            args.join(" ")
        );
    }
}

#[test]
fn generated_files_are_current() {
    let mut stale = Vec::new();
    for file in generate::all() {
        let current = std::fs::read_to_string(workspace_root().join(&file.path)).ok();
        if current.as_deref() != Some(file.content.as_str()) {
            stale.push(file.path);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `cargo run -p procguard-contract-tests --bin procguard-gen` and commit the result"
    );
}

#[test]
fn every_plugin_is_generated() {
    for name in plugin_names() {
        let p = plugin(&name);
        assert_eq!(p.built_command().get_name(), name);
    }
    let mut names: Vec<&str> = PLUGINS.iter().map(|p| p.name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        PLUGINS.iter().map(|p| p.name).collect::<Vec<_>>(),
        "PLUGINS is sorted"
    );
}

#[test]
fn man_pages_have_the_extra_sections_and_their_examples_parse() {
    for p in PLUGINS {
        let page = generate::man_page(p);
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            ".SH \"EXIT STATUS\"",
            ".SH EXAMPLES",
            ".SH FILES",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(page.contains(section), "{}: no {section}", p.name);
        }
        assert!(!p.examples.is_empty() && !p.files.is_empty(), "{}", p.name);
        for (line, _) in p.examples {
            let words: Vec<String> = line.split_whitespace().map(String::from).collect();
            assert_eq!(words[0], p.name, "{line}");
            assert_parses(p, &words[1..], "man page example");
        }
    }
}

#[test]
fn icinga2_commands_pass_every_option() {
    let conf = read("packaging/icinga2/procguard.conf");
    for p in PLUGINS {
        assert!(
            conf.contains(&format!(
                "object CheckCommand \"{}\" {{\n\tcommand = [ PluginDir + \"/{}\" ]",
                p.check_command(),
                p.name
            )),
            "{}",
            p.name
        );
        let args = generate::icinga_arguments(p);
        assert!(args.contains_key("--timeout"), "{}", p.name);
        // -w/-c only where the plugin judges a value against them (docs/contract.md §6).
        assert_eq!(
            args.contains_key("--warning"),
            p.name != "check_rlimit_match",
            "{}",
            p.name
        );
        for (flag, a) in &args {
            assert!(a.var.starts_with("procguard_"), "{flag}");
            // Every flag must parse: a value flag with a plain value, a switch alone.
            let argv: Vec<String> = match a.kind {
                generate::ArgKind::Flag => vec![flag.clone()],
                generate::ArgKind::Value => continue,
            };
            assert_parses(p, &argv, "Icinga 2 flag");
        }
    }
}

/// Splits a command line as /bin/sh would for the simple quoting used in the examples.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `$ARGn$` macros replaced by a sample value, 1.
fn sample_macros(word: &str) -> String {
    let mut out = word.to_string();
    while let Some(start) = out.find("$ARG") {
        let end = out[start + 1..]
            .find('$')
            .map_or_else(|| panic!("unterminated macro in {word}"), |e| start + e + 2);
        out.replace_range(start..end, "1");
    }
    out
}

#[test]
fn nagios_commands_cover_every_plugin_and_parse() {
    let cfg = read("packaging/nagios/procguard.cfg");
    let mut seen = Vec::new();
    for line in cfg.lines().map(str::trim) {
        let Some(command) = line.strip_prefix("command_line") else {
            continue;
        };
        let words = shell_words(command);
        let name = words[0]
            .strip_prefix("/usr/lib/nagios/plugins/")
            .unwrap_or_else(|| panic!("{line}: plugins live in /usr/lib/nagios/plugins"));
        let p = plugin(name);
        // Sample values for the $ARGn$ macros; a lone $ARG1$ is the whole argument string.
        let args: Vec<String> = words[1..]
            .iter()
            .filter(|w| words.len() > 2 || w.as_str() != "$ARG1$")
            .map(|w| sample_macros(w))
            .collect();
        assert_parses(p, &args, "Nagios command");
        seen.push(name.to_string());
    }
    for p in PLUGINS {
        assert!(
            seen.iter().any(|s| s == p.name),
            "no Nagios command runs {}",
            p.name
        );
        assert!(
            cfg.contains(&format!("command_name    {}\n", p.check_command())),
            "no generic Nagios command {}",
            p.check_command()
        );
    }
}

#[test]
fn monit_examples_cover_every_plugin_and_parse() {
    let rc = read("packaging/monit/procguard.monitrc");
    assert!(
        rc.contains("start program = \"/bin/sh -c 'ulimit -n 100000; exec "),
        "the incident's fixed start program line"
    );
    let mut seen = Vec::new();
    for line in rc.lines().filter(|l| l.starts_with("check program ")) {
        let path = line
            .split_once(" with path \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or_else(|| panic!("{line}: no path"), |(path, _)| path);
        let words = shell_words(path);
        let name = words[0]
            .strip_prefix("/usr/lib/nagios/plugins/")
            .unwrap_or_else(|| panic!("{line}: plugins live in /usr/lib/nagios/plugins"));
        assert_parses(plugin(name), &words[1..], "Monit check program");
        seen.push(name.to_string());
    }
    for p in PLUGINS {
        assert!(
            seen.iter().any(|s| s == p.name),
            "no Monit check runs {}",
            p.name
        );
    }
}
