//! What a process is called, from sources every user can read.
//!
//! `/proc/PID/exe` needs ptrace access (root, or the process's own user), so a name taken
//! from it differs between root and the `nagios` user NRPE runs as. The name here comes only
//! from `comm` (the kernel's 15-byte copy of the executable's basename, or of the script's
//! for a `#!` script) and the argument vector, both world-readable:
//!
//! 1. A process run by an interpreter (python, node, perl, ruby, php, sh/bash/dash, java)
//!    is named by its script (`python3 /usr/bin/supervisord` -> `supervisord`,
//!    `java -jar app.jar` -> `app.jar`, `python3 -m http.server` -> `http.server`).
//! 2. Otherwise argv\[0\]'s basename when it extends `comm` (so a name longer than 15 bytes
//!    is shown whole), also when the process retitled itself: nginx's
//!    `nginx: worker process` gives `nginx`.
//! 3. Otherwise `comm` (php-fpm retitles to `php-fpm: master process (...)` while its
//!    comm says `php-fpm8.2`; `exec -a alias sleep` keeps `sleep`).
//!
//! `--name` matches any of the names a process goes by ([`Identity::names`]), as a glob.

use std::path::Path;

/// The kernel keeps `comm` in 16 bytes with the NUL: a longer name is cut to 15.
pub const COMM_LEN: usize = 15;

/// The world-readable facts a process's name is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `comm` (from `/proc/PID/stat` or `/proc/PID/comm`).
    pub comm: String,
    /// The argument vector (empty for kernel threads and zombies).
    pub argv: Vec<String>,
}

impl Identity {
    /// The name shown in output (`name[pid]`) and used for labels when the selector gives
    /// none; the same for every user who can read `comm` and `cmdline`.
    #[must_use]
    pub fn name(&self) -> String {
        self.shown().to_string()
    }

    /// [`name`](Identity::name) as a slice of `comm` or argv.
    fn shown(&self) -> &str {
        if let Some(script) = self.script() {
            return script;
        }
        self.argv_names()
            .find(|n| extends_comm(n, &self.comm))
            .unwrap_or(&self.comm)
    }

    /// Every name the process goes by: the shown name, `comm`, argv\[0\]'s basename and the
    /// first word of a retitled argv\[0\], and for an interpreter both it and its script.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        // The shown name is always one of these.
        let mut names = vec![self.comm.clone()];
        for n in self.other_names() {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
        names
    }

    /// Whether `--name PATTERN` selects this process: PATTERN (a glob) matches one of its
    /// [`names`](Identity::names). A plain name longer than 15 bytes also matches a `comm`
    /// holding its first 15 when nothing readable names the process in full.
    ///
    /// Runs for every process of a `--name` scan, so it allocates nothing: `comm`, then
    /// the other names as slices of argv.
    #[must_use]
    pub fn matches(&self, pattern: &Glob) -> bool {
        if pattern.matches(&self.comm) || self.other_names().any(|n| pattern.matches(n)) {
            return true;
        }
        pattern.literal().is_some_and(|lit| {
            self.comm.len() == COMM_LEN
                && self.shown() == self.comm
                && lit.len() > COMM_LEN
                && lit.as_bytes().starts_with(self.comm.as_bytes())
        })
    }

    /// The names besides `comm` (none empty; one may repeat another or `comm`): argv\[0\]'s,
    /// then the script's.
    fn other_names(&self) -> impl Iterator<Item = &str> {
        self.argv_names()
            .chain(self.script())
            .filter(|n| !n.is_empty())
    }

    /// The basenames argv\[0\] offers (none empty): whole, and its first word without a
    /// trailing `:` (the way servers retitle themselves: `nginx: master process ...`).
    fn argv_names(&self) -> impl Iterator<Item = &str> {
        let mut names = [None, None];
        if let Some(argv0) = self.argv.first() {
            let whole = basename(argv0);
            if argv0.contains(char::is_whitespace) {
                // Retitled: the first word names the program. The whole basename counts
                // only as the executable's own path with a space in it (it extends comm).
                if extends_comm(whole, &self.comm) {
                    names[0] = Some(whole);
                }
                if let Some(word) = argv0.split_whitespace().next() {
                    let word = basename(word.trim_end_matches(':'));
                    if names[0] != Some(word) {
                        names[1] = Some(word);
                    }
                }
            } else {
                names[0] = Some(whole);
            }
        }
        names.into_iter().flatten().filter(|n| !n.is_empty())
    }

    /// The script an interpreter runs, if argv\[0\] is an interpreter and argv names one.
    fn script(&self) -> Option<&str> {
        let interp = basename(self.argv.first()?);
        let kind = Interpreter::of(interp)?;
        kind.script(&self.argv[1..])
    }
}

/// Whether `name` is what `comm` was cut from (equal, or `comm` is 15 bytes and its start).
fn extends_comm(name: &str, comm: &str) -> bool {
    name == comm || (comm.len() == COMM_LEN && name.starts_with(comm))
}

/// The last path component (the whole text when it has none, e.g. `-bash`).
fn basename(path: &str) -> &str {
    // The component is a slice of `path`, so always UTF-8.
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

/// The interpreters whose scripts name their processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interpreter {
    Python,
    Node,
    Perl,
    Ruby,
    Php,
    Shell,
    Java,
}

impl Interpreter {
    /// `python3.11`, `node`, `perl5.36`, `ruby3.1`, `php8.2`, `bash`, `java`, ...
    fn of(name: &str) -> Option<Interpreter> {
        let versioned = |stem: &str| {
            name.strip_prefix(stem)
                .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        };
        Some(match name {
            _ if versioned("python") || versioned("pypy") => Interpreter::Python,
            "node" | "nodejs" => Interpreter::Node,
            _ if versioned("perl") => Interpreter::Perl,
            _ if versioned("ruby") => Interpreter::Ruby,
            _ if versioned("php") => Interpreter::Php,
            "sh" | "bash" | "dash" | "ash" | "ksh" | "mksh" | "zsh" => Interpreter::Shell,
            "java" => Interpreter::Java,
            _ => return None,
        })
    }

    /// Options that take the next argument as their value (so it is not the script).
    fn takes_value(self, opt: &str) -> bool {
        let list: &[&str] = match self {
            Interpreter::Python => &["-W", "-X", "-Q"],
            Interpreter::Node => &["-r", "--require", "--import", "--loader", "--conditions"],
            Interpreter::Perl => &[],
            Interpreter::Php => &["-c", "-d", "-z"],
            Interpreter::Ruby => &["-I", "-r", "-C", "-E"],
            Interpreter::Shell => &["-o", "+o", "-O", "+O"],
            Interpreter::Java => &["-cp", "-classpath", "--class-path", "-p", "--module-path"],
        };
        list.contains(&opt)
    }

    /// Options after which there is no script file (inline code, or a REPL flag).
    fn inline_code(self, opt: &str) -> bool {
        match self {
            Interpreter::Python | Interpreter::Shell => opt == "-c",
            Interpreter::Node => ["-e", "-p", "--eval", "--print"].contains(&opt),
            Interpreter::Perl | Interpreter::Ruby => ["-e", "-E"].contains(&opt),
            Interpreter::Php => ["-r", "-a"].contains(&opt),
            Interpreter::Java => false,
        }
    }

    /// The script named by the interpreter's arguments (`args` = argv\[1..\]).
    fn script(self, args: &[String]) -> Option<&str> {
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let a = arg.as_str();
            if self.inline_code(a) {
                return None;
            }
            match (self, a) {
                // `python -m pkg.mod` runs a module; `java -jar app.jar` a jar.
                (Interpreter::Python, "-m") | (Interpreter::Java, "-jar") => {
                    return it.next().map(|m| basename(m)).filter(|m| !m.is_empty());
                }
                (Interpreter::Python, _) if a.starts_with("-m") && a.len() > 2 => {
                    return Some(&a[2..]);
                }
                (Interpreter::Node | Interpreter::Perl | Interpreter::Shell, "--") => {
                    return it.next().and_then(|s| script_name(s));
                }
                _ if self.takes_value(a) => {
                    it.next();
                }
                _ if a.starts_with('-') || a.starts_with('+') => {}
                // A Java main class `org.example.Main` is shown as `Main`.
                (Interpreter::Java, _) => return a.rsplit('.').next(),
                _ => return script_name(a),
            }
        }
        None
    }
}

/// The name a script path gives its process. A script read from a descriptor
/// (`bash /dev/fd/3`, `python3 /proc/self/fd/0`, `sh /dev/stdin`) names nothing: its
/// path's last component is a number, not a program.
fn script_name(path: &str) -> Option<&str> {
    let from_fd = ["/dev/fd/", "/proc/self/fd/", "/dev/stdin"]
        .iter()
        .any(|p| path.starts_with(p))
        || (path.starts_with("/proc/") && path.contains("/fd/"));
    Some(basename(path)).filter(|s| !s.is_empty() && !from_fd)
}

/// A `--name` pattern: a shell glob (`*`, `?`, `[...]`), or a plain name.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    regex: Option<regex::Regex>,
}

impl Glob {
    /// Compiles `text`; a bracket left open is an error naming it.
    ///
    /// # Errors
    /// The pattern and what is wrong with it.
    pub fn new(text: &str) -> Result<Glob, String> {
        if !text.contains(['*', '?', '[']) {
            return Ok(Glob {
                text: text.to_string(),
                regex: None,
            });
        }
        let mut re = String::from("^");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '[' => {
                    let mut class = String::new();
                    let mut closed = false;
                    if chars.peek() == Some(&'!') {
                        chars.next();
                        class.push('^');
                    }
                    for c in chars.by_ref() {
                        if c == ']' && !(class.is_empty() || class == "^") {
                            closed = true;
                            break;
                        }
                        if c == '\\' || c == '[' || c == '&' || c == '~' {
                            class.push('\\');
                        }
                        class.push(c);
                    }
                    if !closed {
                        return Err(format!("{text:?}: '[' without a closing ']'"));
                    }
                    re.push('[');
                    re.push_str(&class);
                    re.push(']');
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = regex::Regex::new(&re).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(Glob {
            text: text.to_string(),
            regex: Some(regex),
        })
    }

    /// Whether `name` matches.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        match &self.regex {
            Some(re) => re.is_match(name),
            None => self.text == name,
        }
    }

    /// The name itself when the pattern has no wildcard.
    #[must_use]
    pub fn literal(&self) -> Option<&str> {
        self.regex.is_none().then_some(self.text.as_str())
    }

    /// The pattern as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern without its wildcards, for a perfdata label (`php-fpm*` -> `php-fpm`).
    #[must_use]
    pub fn stem(&self) -> String {
        let stem: String = self
            .text
            .chars()
            .filter(|c| !matches!(c, '*' | '?' | '[' | ']' | '!'))
            .collect();
        let stem = stem.trim_matches(|c: char| c == '-' || c == '_' || c == '.');
        if stem.is_empty() {
            "procs".to_string()
        } else {
            stem.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(comm: &str, argv: &[&str]) -> Identity {
        Identity {
            comm: comm.to_string(),
            argv: argv.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// argv and comm as captured from real processes (Debian 12 packages).
    #[test]
    fn names_of_real_servers() {
        let cases = [
            (
                id(
                    "nginx",
                    &["nginx: master process /usr/sbin/nginx -g daemon on;"],
                ),
                "nginx",
            ),
            (id("nginx", &["nginx: worker process"]), "nginx"),
            (
                id(
                    "php-fpm8.2",
                    &["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"],
                ),
                "php-fpm8.2",
            ),
            (id("php-fpm8.2", &["php-fpm: pool www"]), "php-fpm8.2"),
            (
                id(
                    "supervisord",
                    &[
                        "/usr/bin/python3",
                        "/usr/bin/supervisord",
                        "-n",
                        "-c",
                        "/etc/supervisor/supervisord.conf",
                    ],
                ),
                "supervisord",
            ),
            (
                id("python3", &["python3", "/usr/bin/supervisord"]),
                "supervisord",
            ),
            (
                id(
                    "node",
                    &["node", "--max-old-space-size=512", "/srv/app/server.js"],
                ),
                "server.js",
            ),
            (
                id("node", &["node", "-e", "setInterval(()=>{},1e9)"]),
                "node",
            ),
            (
                id("python3", &["python3", "-u", "-m", "http.server", "8080"]),
                "http.server",
            ),
            (id("sh", &["sh", "-c", "exec sleep 600"]), "sh"),
            (id("runsv", &["runsv", "nginx"]), "runsv"),
            (id("bash", &["-bash"]), "bash"),
            // A script read from a descriptor has no name of its own.
            (id("bash", &["bash", "/dev/fd/3"]), "bash"),
            (id("python3", &["python3", "/proc/self/fd/0"]), "python3"),
            (id("foo", &["/bin/sh", "/etc/init.d/foo", "start"]), "foo"),
            (
                id(
                    "java",
                    &[
                        "/usr/bin/java",
                        "-Xmx1g",
                        "-cp",
                        "/opt/x.jar",
                        "org.example.Main",
                    ],
                ),
                "Main",
            ),
            (
                id("java", &["java", "-Dx=y", "-jar", "/opt/app/app.jar"]),
                "app.jar",
            ),
            // A long executable name: comm is cut at 15, argv[0] has it whole.
            (
                id("service-with-a-", &["/tmp/service-with-a-long-name", "600"]),
                "service-with-a-long-name",
            ),
            // exec -a: argv[0] says something comm does not.
            (id("sleep", &["my-alias", "600"]), "sleep"),
            (id("kworker/0:1", &[]), "kworker/0:1"),
        ];
        for (who, want) in cases {
            assert_eq!(who.name(), want, "{who:?}");
        }
    }

    #[test]
    fn name_matches_exe_comm_retitled_argv_and_globs() {
        let fpm = id(
            "php-fpm8.2",
            &["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"],
        );
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(fpm.matches(&g("php-fpm")));
        assert!(fpm.matches(&g("php-fpm8.2")));
        assert!(fpm.matches(&g("php-fpm*")));
        assert!(!fpm.matches(&g("php-fpm.conf)")));
        assert!(!fpm.matches(&g("nginx")));
        let sup = id("supervisord", &["/usr/bin/python3", "/usr/bin/supervisord"]);
        assert!(sup.matches(&g("supervisord")));
        assert!(sup.matches(&g("python3")));
        assert!(sup.matches(&g("python3*")));
        assert!(!sup.matches(&g("python3.11")));
        let alias = id("sleep", &["my-alias", "600"]);
        assert!(alias.matches(&g("my-alias")) && alias.matches(&g("sleep")));
        // A long name against a cut comm, when argv does not name it in full.
        let long = id("service-with-a-", &["worker"]);
        assert!(long.matches(&g("service-with-a-long-name")));
        assert!(!id("service-with-a-", &["/x/service-with-a-long-name"])
            .matches(&g("service-with-a-other-name")));
    }

    /// `names` lists each name once, `comm` first; `matches` (which builds no list) agrees
    /// with it on every name and glob tried.
    #[test]
    fn names_are_listed_once_and_matches_agrees() {
        let fpm = id(
            "php-fpm8.2",
            &["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"],
        );
        assert_eq!(fpm.names(), ["php-fpm8.2", "php-fpm"]);
        let sup = id("python3", &["/usr/bin/python3", "/usr/bin/supervisord"]);
        assert_eq!(sup.names(), ["python3", "supervisord"]);
        let nginx = id("nginx", &["nginx: worker process"]);
        assert_eq!(nginx.names(), ["nginx"]);
        let long = id("service-with-a-", &["/tmp/service with a long name", "x"]);
        assert_eq!(long.names(), ["service-with-a-", "service"]);
        assert_eq!(id("kworker/0:1", &[]).names(), ["kworker/0:1"]);
        let all = [fpm, sup, nginx, long, id("sleep", &["my-alias", "600"])];
        let globs = [
            "php-fpm",
            "php*",
            "python3",
            "supervisord",
            "nginx",
            "n?inx",
            "*",
        ];
        for who in &all {
            for g in globs.iter().map(|p| Glob::new(p).unwrap()) {
                let listed = who.names().iter().any(|n| g.matches(n));
                assert_eq!(who.matches(&g), listed, "{who:?} {g:?}");
            }
        }
    }

    #[test]
    fn globs() {
        let g = Glob::new("php-fpm[78].*").unwrap();
        assert!(g.matches("php-fpm8.2") && !g.matches("php-fpm9.0"));
        assert!(Glob::new("ng?nx").unwrap().matches("nginx"));
        assert!(Glob::new("[!a]x").unwrap().matches("bx"));
        assert!(!Glob::new("[!a]x").unwrap().matches("ax"));
        assert!(Glob::new("a.b").unwrap().literal().is_some());
        assert!(!Glob::new("a.b*").unwrap().matches("axb"));
        assert!(Glob::new("[abc").is_err());
        assert_eq!(Glob::new("php-fpm*").unwrap().stem(), "php-fpm");
        assert_eq!(Glob::new("*").unwrap().stem(), "procs");
    }
}
