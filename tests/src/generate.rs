//! Files generated from the plugins' clap definitions: man pages (`man/NAME.1`), bash and
//! zsh completions (`packaging/completions/`) and the Icinga 2 CheckCommands
//! (`packaging/icinga2/procguard.conf`). `procguard-gen` writes them; the `generated` test
//! renders them in memory and fails when the committed files differ.
//!
//! [`PLUGINS`] is the one list of plugins: a new plugin gets an entry here (and a
//! dependency in tests/Cargo.toml), and everything else follows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{ArgAction, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};

/// One plugin and what its man page says beyond its clap definition.
pub struct Plugin {
    /// The binary's name (also its directory under `plugins/`).
    pub name: &'static str,
    /// Its clap definition.
    pub command: fn() -> clap::Command,
    /// EXAMPLES: command line, what it does.
    pub examples: &'static [(&'static str, &'static str)],
    /// FILES: path, why the plugin reads or writes it.
    pub files: &'static [(&'static str, &'static str)],
    /// Whether the plugin keeps state (`--state-dir`); adds the state files to FILES.
    pub stateful: bool,
}

impl Plugin {
    /// The Icinga 2 CheckCommand / Nagios command name: `procguard_fd_usage`.
    pub fn check_command(&self) -> String {
        format!(
            "procguard_{}",
            self.name.strip_prefix("check_").unwrap_or(self.name)
        )
    }

    /// The clap command as the binary sees it (built, so help and version flags exist).
    pub fn built_command(&self) -> clap::Command {
        let mut cmd = (self.command)();
        cmd.build();
        cmd
    }
}

/// Every plugin, sorted by name.
pub const PLUGINS: &[Plugin] = &[
    Plugin {
    name: "check_fd_usage",
    command: check_fd_usage::Args::command,
    examples: &[
        (
            "check_fd_usage --pidfile /run/app.pid",
            "Open fds of the process in /run/app.pid against its own soft nofile limit; \
             WARNING at 80%, CRITICAL at 90% (the defaults).",
        ),
        (
            "check_fd_usage --unit app.service -w 70% -c 85% --headroom-critical 100",
            "Every process of the systemd unit app.service; also CRITICAL when fewer than 100 \
             fds are left below the soft limit.",
        ),
        (
            "check_fd_usage --all --top 3",
            "Every process on the host; lists the three fullest.",
        ),
        (
            "check_fd_usage --system --system-warning 70% --system-critical 85%",
            "Host-wide open file handles (/proc/sys/fs/file-nr) against fs.file-max.",
        ),
    ],
    files: &[
        (
            "/proc/PID/limits",
            "the soft and hard nofile limit of each process",
        ),
        (
            "/proc/PID/fd",
            "its open fds: counted from stat(2) st_size on Linux 6.2 and later, listed before",
        ),
        (
            "/proc/sys/fs/file-nr, /proc/sys/fs/file-max, /proc/sys/fs/nr_open",
            "host-wide file handles, their limit, and the ceiling for nofile limits",
        ),
    ],
    stateful: false,
    },
    Plugin {
        name: "check_http_backlog",
        command: check_http_backlog::Args::command,
        examples: &[
            (
                "check_http_backlog --port 8080",
                "The accept queue of the listener(s) on port 8080 against their backlog \
                 (WARNING above 80%, CRITICAL when full) and new listen drops since the last run.",
            ),
            (
                "check_http_backlog --port 8080 --probe -w 1 -c 5",
                "Also probe http://ADDR:8080/ of the listener; WARNING above 1 s, CRITICAL above \
                 5 s, and a failed probe says why (refused, timed out after connect, reset...).",
            ),
            (
                "check_http_backlog --pidfile /run/app.pid --url http://127.0.0.1:8080/health",
                "The listeners of the process in /run/app.pid, and a probe of its health URL.",
            ),
            (
                "check_http_backlog --port 443 --address ::1 --queue-warning 50% --drops-critical 10",
                "Only the listener serving ::1 port 443; WARNING at half its backlog, CRITICAL at \
                 10 drops since the last run.",
            ),
        ],
        files: &[
            (
                "NETLINK_SOCK_DIAG",
                "listening TCP sockets with their accept queue, backlog and drop counter \
                 (no file: a netlink socket)",
            ),
            (
                "/proc/net/tcp, /proc/net/tcp6",
                "the fallback where sock_diag is unavailable (no backlog there: give --backlog)",
            ),
            (
                "/proc/net/netstat",
                "ListenOverflows and ListenDrops of the network namespace",
            ),
            (
                "/proc/PID/fd, /proc/PID/limits",
                "the owner of a listener, and its open fds against its nofile limit",
            ),
        ],
        stateful: true,
    },
    Plugin {
        name: "check_restart_churn",
        command: check_restart_churn::Args::command,
        examples: &[
            (
                "check_restart_churn --unit app",
                "Restarts of app.service within the last hour, from its processes and systemd's \
                 NRestarts: more than 1 warns, more than 3 is critical (the defaults).",
            ),
            (
                "check_restart_churn --pidfile /run/app.pid --window 10m -w 0 -c 2 --min-uptime 5m",
                "Any restart within 10 minutes warns, more than 2 is critical; also WARNING while \
                 the service is younger than 5 minutes.",
            ),
            (
                "check_restart_churn --name node --key node_web --state-dir /var/tmp/procguard",
                "State kept under the key node_web in another directory (the first run records \
                 a baseline).",
            ),
        ],
        files: &[
            (
                "/proc/PID/stat",
                "each process's start time, to tell a restart from PID reuse",
            ),
            (
                "/proc/PID/limits",
                "the soft nofile limit, compared across a restart",
            ),
            (
                "/proc/uptime, /proc/sys/kernel/random/boot_id",
                "process ages, and reboots",
            ),
        ],
        stateful: true,
    },
    Plugin {
        name: "check_rlimit_match",
        command: check_rlimit_match::Args::command,
        examples: &[
            (
                "check_rlimit_match --pidfile /run/app.pid --at-least nofile=65536",
                "CRITICAL when the process's soft or hard nofile limit is below 65536, naming the \
                 ancestor it inherited the limit from and how to fix that supervisor.",
            ),
            (
                "check_rlimit_match --name node --limits-conf",
                "What pam_limits would give the process's user from /etc/security/limits.conf and \
                 limits.d, as a minimum.",
            ),
            (
                "check_rlimit_match --unit nginx --systemd",
                "The unit's LimitNOFILE= and other Limit*= values, via systemctl show, exactly.",
            ),
            (
                "check_rlimit_match --config /etc/procguard/services.yaml --service nginx",
                "The expectations of one service from a YAML file (an example is in \
                 /usr/share/doc/procguard/examples/services.yaml).",
            ),
            (
                "check_rlimit_match --name worker --like-pidfile /run/app.pid",
                "The same limits as the process in /run/app.pid.",
            ),
        ],
        files: &[
            ("/proc/PID/limits", "the process's soft and hard limits"),
            (
                "/proc/PID/stat, /proc/PID/status",
                "its parent chain and user, to find where a limit was inherited from",
            ),
            (
                "/etc/security/limits.conf, /etc/security/limits.d/*.conf",
                "pam_limits' configuration (--limits-conf)",
            ),
            (
                "/etc/passwd, /etc/group",
                "user and group names for limits.conf domains",
            ),
            (
                "/proc/sys/fs/nr_open",
                "the kernel's ceiling for nofile",
            ),
        ],
        stateful: false,
    },
];

/// What a generated file is called and what it holds, relative to the workspace root.
pub struct Generated {
    /// Path relative to the workspace root.
    pub path: String,
    /// The file's full text.
    pub content: String,
}

/// Every generated file.
pub fn all() -> Vec<Generated> {
    let mut out = Vec::new();
    for p in PLUGINS {
        out.push(Generated {
            path: format!("man/{}.1", p.name),
            content: man_page(p),
        });
        out.push(Generated {
            path: format!("packaging/completions/bash/{}", p.name),
            content: completion(p, Shell::Bash),
        });
        out.push(Generated {
            path: format!("packaging/completions/zsh/_{}", p.name),
            content: completion(p, Shell::Zsh),
        });
    }
    out.push(Generated {
        path: "packaging/icinga2/procguard.conf".to_string(),
        content: icinga2_commands(),
    });
    out
}

/// The man page: clap_mangen's sections, then EXIT STATUS, EXAMPLES, FILES, ENVIRONMENT and
/// SEE ALSO before VERSION.
pub fn man_page(p: &Plugin) -> String {
    let cmd = p.built_command();
    let man = clap_mangen::Man::new(cmd)
        .section("1")
        .source(format!("procguard {}", env!("CARGO_PKG_VERSION")))
        .manual("procguard");
    let mut buf = Vec::new();
    man.render(&mut buf).expect("rendering into memory");
    let page = String::from_utf8(buf).expect("clap_mangen writes UTF-8");

    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (code, state, text) in [
        (
            "0",
            "OK",
            "the check ran and everything is within the thresholds.",
        ),
        ("1", "WARNING", "a warning threshold was crossed."),
        (
            "2",
            "CRITICAL",
            "a critical threshold was crossed, or a selected process is not running.",
        ),
        (
            "3",
            "UNKNOWN",
            "the plugin could not find out: invalid arguments, an unreadable /proc entry, \
             its own timeout (-t, unless -t SECONDS:STATE says otherwise) or an internal error. \
             --help and --version also exit 3.",
        ),
    ] {
        extra.control("TP", []);
        extra.text([bold(code)]);
        extra.text([bold(state), roman(format!(": {text}"))]);
    }
    extra.control("PP", []);
    extra.text([roman(
        "No other exit code is used. Line 1 of the output is NAME STATE - summary | perfdata; \
         each following line is one finding.",
    )]);

    extra.control("SH", ["EXAMPLES"]);
    for (line, what) in p.examples {
        extra.control("TP", []);
        extra.text([bold(*line)]);
        extra.text([roman(*what)]);
    }

    extra.control("SH", ["FILES"]);
    let state: &[(&str, &str)] = if p.stateful {
        &[(
            "/var/lib/procguard",
            "the default state directory (--state-dir, PROCGUARD_STATE_DIR); created 0700 \
             if missing, one locked JSON file per check",
        )]
    } else {
        &[]
    };
    for (path, why) in p.files.iter().chain(state) {
        extra.control("TP", []);
        extra.text([italic(*path)]);
        extra.text([roman(*why)]);
    }

    if p.stateful {
        extra.control("SH", ["ENVIRONMENT"]);
        extra.control("TP", []);
        extra.text([bold("PROCGUARD_STATE_DIR")]);
        extra.text([roman(
            "the state directory when --state-dir is not given (default /var/lib/procguard).",
        )]);
    }

    extra.control("SH", ["SEE ALSO"]);
    let others: Vec<Inline> = PLUGINS
        .iter()
        .filter(|o| o.name != p.name)
        .flat_map(|o| [bold(o.name), roman("(1), ")])
        .chain([bold("icinga2"), roman("(8), "), bold("monit"), roman("(1)")])
        .collect();
    extra.text(others);

    let preamble = Roff::new().render();
    let extra = extra.render();
    let extra = extra.strip_prefix(&preamble).unwrap_or(&extra);
    match page.find(".SH VERSION") {
        Some(at) => format!("{}{extra}{}", &page[..at], &page[at..]),
        None => format!("{page}{extra}"),
    }
}

/// A completion script for `shell`.
pub fn completion(p: &Plugin, shell: Shell) -> String {
    let mut cmd = p.built_command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, p.name, &mut buf);
    String::from_utf8(buf).expect("clap_complete writes UTF-8")
}

/// The Icinga 2 custom variable for an option: `--pid-file` → `procguard_pid_file`.
pub fn icinga_var(long: &str) -> String {
    format!("procguard_{}", long.replace('-', "_"))
}

/// A double-quoted Icinga 2 string.
fn icinga_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The options of a plugin that a CheckCommand passes: every visible one but help/version,
/// keyed by the command-line flag.
pub fn icinga_arguments(p: &Plugin) -> BTreeMap<String, IcingaArgument> {
    let cmd = p.built_command();
    let mut out = BTreeMap::new();
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
            continue;
        }
        let long = arg
            .get_long()
            .expect("every plugin option has a long name (docs/contract.md §6)");
        let mut description = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(std::string::ToString::to_string)
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::Count);
        if !defaults.is_empty() && !flag {
            let _ = write!(description, " (default: {})", defaults.join(","));
        }
        // `--systemd [UNIT]`: Icinga 2 passes the key only with a value, so say which value
        // means "given alone".
        let optional_value = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        if !flag && optional_value {
            let alone = cmd
                .clone()
                .ignore_errors(true)
                .try_get_matches_from([p.name.to_string(), format!("--{long}")])
                .expect("parses with ignore_errors");
            let missing: Vec<String> = alone
                .get_raw(arg.get_id().as_str())
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let _ = write!(
                description,
                " (set to {:?} for the option without a value)",
                missing.join(",")
            );
        }
        let kind = match arg.get_action() {
            _ if flag => ArgKind::Flag,
            ArgAction::Append => {
                description.push_str(" (an array repeats the option)");
                ArgKind::Value
            }
            _ => ArgKind::Value,
        };
        out.insert(
            format!("--{long}"),
            IcingaArgument {
                var: icinga_var(long),
                description,
                kind,
                required: arg.is_required_set(),
            },
        );
    }
    out
}

/// How an option is passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgKind {
    /// `value = "$var$"`.
    Value,
    /// `set_if = "$var$"`.
    Flag,
}

/// One entry of a CheckCommand's `arguments`.
pub struct IcingaArgument {
    /// The custom variable, `procguard_<option>`.
    pub var: String,
    /// The option's help text.
    pub description: String,
    /// A value option or a switch.
    pub kind: ArgKind,
    /// Whether the plugin cannot run without it.
    pub required: bool,
}

/// `packaging/icinga2/procguard.conf`: one CheckCommand per plugin in the style of the
/// ITL's plugins-contrib, every option a `procguard_*` custom variable.
pub fn icinga2_commands() -> String {
    let mut out = String::from(
        "/* procguard CheckCommand definitions for Icinga 2, in the style of the ITL's\n \
         * plugins-contrib. Installed as /usr/share/icinga2/include/plugins-contrib.d/procguard.conf,\n \
         * read by `include <plugins-contrib>` in icinga2.conf.\n \
         *\n \
         * Every option of a plugin is the custom variable procguard_<option> (dashes become\n \
         * underscores): vars.procguard_pidfile = \"/run/app.pid\". Flags are booleans.\n \
         *\n \
         * Generated from the plugins' command-line definitions by\n \
         * `cargo run -p procguard-contract-tests --bin procguard-gen`; do not edit.\n \
         */\n",
    );
    for p in PLUGINS {
        let about = p
            .built_command()
            .get_about()
            .map(std::string::ToString::to_string)
            .unwrap_or_default();
        let _ = write!(
            out,
            "\n/* {}: {} */\nobject CheckCommand {} {{\n\tcommand = [ PluginDir + {} ]\n\n\targuments = {{\n",
            p.name,
            about.trim_end_matches('.'),
            icinga_string(&p.check_command()),
            icinga_string(&format!("/{}", p.name)),
        );
        for (flag, a) in icinga_arguments(p) {
            let _ = writeln!(out, "\t\t{} = {{", icinga_string(&flag));
            let key = match a.kind {
                ArgKind::Value => "value",
                ArgKind::Flag => "set_if",
            };
            let _ = writeln!(
                out,
                "\t\t\t{key} = {}",
                icinga_string(&format!("${}$", a.var))
            );
            let _ = writeln!(out, "\t\t\tdescription = {}", icinga_string(&a.description));
            if a.required {
                out.push_str("\t\t\trequired = true\n");
            }
            out.push_str("\t\t}\n");
        }
        out.push_str("\t}\n}\n");
    }
    out
}
