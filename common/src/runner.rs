//! The run harness: the only code that prints a result and exits (docs/contract.md §1, §5, §9).
//!
//! - A panic anywhere becomes `NAME UNKNOWN - internal error: ...`, exit 3.
//! - Argument errors become `NAME UNKNOWN - invalid arguments: ...` plus usage, exit 3;
//!   `--help` and `--version` print and exit 3 (never clap's 2, which engines read as CRITICAL).
//! - A watchdog thread enforces `-t`: a read that blocks (a hung NFS mount, a FIFO) cannot
//!   be cancelled, so the watchdog prints the timeout result and exits the whole process.
//! - [`emit`] holds a lock while it writes and exits, so exactly one result is printed and
//!   the exit code always matches it, even when the timeout fires during printing.

use std::ffi::OsString;
use std::io::Write;
use std::panic;
use std::sync::{Mutex, PoisonError};
use std::thread;

use clap::error::ErrorKind;

use crate::cli::CommonArgs;
use crate::error::CheckError;
use crate::report::Report;
use crate::status::Status;
use crate::text::{sanitize, shorten};

/// The arguments of a plugin: a clap parser that carries the common options.
pub trait CheckArgs: clap::Parser {
    /// The common options (`-t`, `-v`, ...).
    fn common(&self) -> &CommonArgs;
}

/// A plugin's check: arguments in, report out.
pub type Check<A> = fn(&A) -> Result<Report, CheckError>;

static EMIT: Mutex<()> = Mutex::new(());

/// Prints `text` and exits with `status`'s code; never returns, and only the first caller
/// prints (a second one blocks until the process is gone).
pub fn emit(text: &str, status: Status) -> ! {
    let _once = EMIT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if stdout is gone; the exit code still tells the state.
    let _ = out.write_all(format!("{text}\n").as_bytes());
    let _ = out.flush();
    std::process::exit(status.code())
}

/// Runs a plugin: parses the process's arguments, enforces the timeout, runs `check` and
/// exits with its result.
///
/// # Panics
/// Never to the caller: a panic in `check` is caught by the hook installed here and
/// printed as `NAME UNKNOWN - internal error: ...`.
pub fn run<A: CheckArgs>(name: &'static str, check: Check<A>) -> ! {
    panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(std::string::ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = shorten(&sanitize(&format!("{msg}{at}")), MAX_MESSAGE);
        emit(
            &format!("{name} UNKNOWN - internal error: {what}"),
            Status::Unknown,
        )
    }));
    let args = match parse::<A>(name, std::env::args_os()) {
        Ok(args) => args,
        Err((text, status)) => emit(&text, status),
    };
    let timeout = args.common().timeout;
    thread::spawn(move || {
        thread::sleep(timeout.duration);
        emit(
            &format!(
                "{name} {} - plugin timed out after {timeout}",
                timeout.state
            ),
            timeout.state,
        )
    });
    // Lets the contract tests prove that a panic becomes UNKNOWN; absent from release builds.
    #[cfg(debug_assertions)]
    assert!(
        std::env::var_os("PROCGUARD_TEST_PANIC").is_none(),
        "injected by PROCGUARD_TEST_PANIC"
    );
    let (text, status) = evaluate(name, &args, check);
    emit(&text, status)
}

/// Parses `argv` (program name first). On `--help`/`--version` or a bad argument, returns
/// the text to print and UNKNOWN.
pub fn parse<A: CheckArgs>(
    name: &str,
    argv: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<A, (String, Status)> {
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    // Before clap: parsing (a --cmdline regex is compiled there) runs before the timeout
    // starts, and no real argument comes near this size.
    if let Some(i) = argv.iter().position(|a| a.len() > MAX_ARGUMENT) {
        return Err((
            invalid_arguments::<A>(
                name,
                &format!("argument {i} is longer than {MAX_ARGUMENT} bytes"),
            ),
            Status::Unknown,
        ));
    }
    A::try_parse_from(argv).map_err(|err| match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            (err.to_string().trim_end().to_string(), Status::Unknown)
        }
        _ => {
            let rendered = err.render().to_string();
            let what = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            (invalid_arguments::<A>(name, what), Status::Unknown)
        }
    })
}

/// Longest single argument accepted, in bytes.
const MAX_ARGUMENT: usize = 4096;

/// Longest message after `NAME UNKNOWN - ` on a usage error or internal error, in bytes:
/// a 100 kB argument echoed by clap must not become a 100 kB line 1.
const MAX_MESSAGE: usize = 200;

/// `NAME UNKNOWN - invalid arguments: <what>`, then the short usage: the one usage path,
/// for clap's errors and for [`CheckError::Usage`] found after parsing.
fn invalid_arguments<A: CheckArgs>(name: &str, what: &str) -> String {
    let what = shorten(&sanitize(what), MAX_MESSAGE);
    let usage = A::command().render_usage().to_string();
    format!(
        "{name} UNKNOWN - invalid arguments: {what}\n{usage}\nFor more information, try '--help'."
    )
}

/// Runs `check` and renders its report (an error becomes UNKNOWN with its message).
pub fn evaluate<A: CheckArgs>(name: &str, args: &A, check: Check<A>) -> (String, Status) {
    match check(args) {
        Ok(report) => report.render(name, args.common().verbose),
        Err(CheckError::Usage(what)) => (invalid_arguments::<A>(name, &what), Status::Unknown),
        // Through a report, so the message gets the same screening ('|', line breaks) and
        // length limit as any finding: it may carry a path or a program's stderr.
        Err(err) => {
            let mut report = Report::default();
            report.unknown(err);
            report.render(name, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(name = "check_demo", version)]
    struct Args {
        #[command(flatten)]
        thresholds: crate::cli::ThresholdArgs,
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        fail: bool,
        #[arg(long)]
        fail_with: Option<String>,
        #[arg(long)]
        pid: Option<i32>,
        #[arg(long)]
        conflict: bool,
    }

    impl CheckArgs for Args {
        fn common(&self) -> &CommonArgs {
            &self.common
        }
    }

    fn demo(args: &Args) -> Result<Report, CheckError> {
        if args.fail {
            return Err(CheckError::Other("cannot read /proc/1/limits: gone".into()));
        }
        if args.conflict {
            return Err(CheckError::Usage(
                "--conflict cannot be used with --fail".into(),
            ));
        }
        if let Some(msg) = &args.fail_with {
            return Err(CheckError::Other(msg.clone()));
        }
        let mut r = Report::default();
        r.add(Status::Warning, "something");
        Ok(r)
    }

    #[test]
    fn bad_arguments_are_unknown_with_usage() {
        let (text, status) = parse::<Args>("DEMO", ["check_demo", "--bogus"]).unwrap_err();
        assert_eq!(status, Status::Unknown);
        assert!(text.starts_with("DEMO UNKNOWN - invalid arguments: unexpected argument '--bogus' found\nUsage: check_demo"), "{text}");
        let (text, _) = parse::<Args>("DEMO", ["check_demo", "-w", "abc"]).unwrap_err();
        assert!(
            text.starts_with(
                "DEMO UNKNOWN - invalid arguments: invalid value 'abc' for '--warning <RANGE>'"
            ),
            "{text}"
        );
    }

    #[test]
    fn help_and_version_are_unknown() {
        let (text, status) = parse::<Args>("DEMO", ["check_demo", "--help"]).unwrap_err();
        assert_eq!(status, Status::Unknown);
        assert!(text.contains("Usage: check_demo"));
        let (text, status) = parse::<Args>("DEMO", ["check_demo", "-V"]).unwrap_err();
        assert_eq!(
            (text.as_str(), status),
            (
                concat!("check_demo ", env!("CARGO_PKG_VERSION")),
                Status::Unknown
            )
        );
    }

    #[test]
    fn errors_become_unknown_and_reports_render() {
        let args = parse::<Args>("DEMO", ["check_demo", "--fail"]).unwrap();
        assert_eq!(
            evaluate("DEMO", &args, demo),
            (
                "DEMO UNKNOWN - cannot read /proc/1/limits: gone".to_string(),
                Status::Unknown
            )
        );
        let args = parse::<Args>("DEMO", ["check_demo"]).unwrap();
        assert_eq!(
            evaluate("DEMO", &args, demo),
            ("DEMO WARNING - something".to_string(), Status::Warning)
        );
    }

    #[test]
    fn a_huge_argument_does_not_make_a_huge_line_one() {
        let huge = "9".repeat(100_000);
        let (text, status) =
            parse::<Args>("DEMO", ["check_demo".to_string(), "--pid".into(), huge]).unwrap_err();
        assert_eq!(status, Status::Unknown);
        assert_eq!(
            text.lines().next().unwrap(),
            "DEMO UNKNOWN - invalid arguments: argument 2 is longer than 4096 bytes"
        );
        // Below that bound, clap's message quoting the value is cut.
        let long = "9".repeat(4000);
        let (text, _) =
            parse::<Args>("DEMO", ["check_demo".to_string(), "--pid".into(), long]).unwrap_err();
        let line1 = text.lines().next().unwrap();
        assert!(line1.len() <= 260, "{} bytes: {line1:.300}", line1.len());
        assert!(
            line1.starts_with("DEMO UNKNOWN - invalid arguments: invalid value '"),
            "{line1}"
        );
        assert!(line1.ends_with("..."), "{line1}");
        let (text, _) = parse::<Args>(
            "DEMO",
            ["check_demo", "--pid", "1\u{1b}[31m\u{2028}\u{202e}"],
        )
        .unwrap_err();
        let line1 = text.lines().next().unwrap();
        assert!(
            !line1.contains(['\u{1b}', '\u{2028}', '\u{202e}']),
            "{line1:?}"
        );
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("Usage: check_demo"),
            "{text}"
        );
    }

    #[test]
    fn usage_errors_after_parsing_take_the_same_path() {
        let args = parse::<Args>("DEMO", ["check_demo", "--conflict"]).unwrap();
        let (text, status) = evaluate("DEMO", &args, demo);
        assert_eq!(status, Status::Unknown);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "DEMO UNKNOWN - invalid arguments: --conflict cannot be used with --fail"
        );
        assert!(lines[1].starts_with("Usage: check_demo"), "{text}");
        assert_eq!(lines[2], "For more information, try '--help'.");
        assert_eq!(lines.len(), 3);
    }
}
