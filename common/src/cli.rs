//! The options every plugin shares (docs/contract.md §6), and the value types behind them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::range::Threshold;
use crate::status::Status;

/// `-w` and `-c`, flattened into the arguments of the plugins that judge a value against
/// thresholds (docs/contract.md §4); a plugin that does not, does not offer them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ThresholdArgs {
    /// Warning threshold, a Nagios range ([@]start:end); what it measures is in the plugin's description
    #[arg(short = 'w', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub warning: Option<Threshold>,

    /// Critical threshold, a Nagios range ([@]start:end); what it measures is in the plugin's description
    #[arg(short = 'c', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub critical: Option<Threshold>,
}

/// `-t`, `-v`, `--label` and the hidden `--proc-root`: the options every plugin uses.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// The plugin's own deadline; on expiry it reports STATE (ok, warning, critical, unknown)
    #[arg(
        short = 't',
        long,
        value_name = "SECONDS[:STATE]",
        default_value = "10"
    )]
    pub timeout: Timeout,

    /// More output: -v lists every finding, -vv adds how each value was judged, -vvv every perfdata item and traces
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Prefix for perfdata labels (default: derived from the selector)
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,

    /// Read processes from this procfs instead of /proc: the host's /proc mounted into a container (e.g. /host/proc); anything but a procfs is refused
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
}

/// `-t SECONDS[:STATE]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeout {
    /// How long the plugin may run.
    pub duration: Duration,
    /// The state reported when it runs out.
    pub state: Status,
}

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (secs, state) = match text.split_once(':') {
            Some((secs, state)) => {
                let state = Status::parse_name(state).ok_or_else(|| {
                    format!("timeout state {state:?} is not one of ok, warning, critical, unknown")
                })?;
                (secs, state)
            }
            None => (text, Status::Unknown),
        };
        let secs: f64 = secs
            .parse()
            .map_err(|_| format!("timeout {secs:?} is not a number of seconds"))?;
        if !(secs > 0.0 && secs <= 86_400.0) {
            return Err(format!(
                "timeout {secs} must be above 0 and at most 86400 seconds"
            ));
        }
        Ok(Timeout {
            duration: Duration::from_secs_f64(secs),
            state,
        })
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}s",
            crate::number::human(self.duration.as_secs_f64(), 3)
        )
    }
}

/// The units a duration may use, largest first, in seconds.
const DURATION_UNITS: [(&str, f64); 5] = [
    ("d", 86_400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
];

/// A duration as plain seconds (`2.5`) or numbers with units, largest first: `90s`, `10m`,
/// `2h30m`, `1d2h`, `4m35s`, `250ms` — so everything [`format_duration`] prints reads back.
///
/// # Errors
///
/// The text is not such a duration, or too long for a `Duration`: the reason, in words.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("duration {text:?} is not valid; use e.g. 90s, 10m, 2h30m, 1d");
    let secs = if text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        text.parse::<f64>().map_err(|_| invalid())?
    } else {
        let mut total = 0.0;
        let mut rest = text;
        let mut previous: Option<usize> = None;
        while !rest.is_empty() {
            let (number, after) = split_while(rest, |c| c.is_ascii_digit() || c == '.');
            let (unit, after) = split_while(after, |c| c.is_ascii_alphabetic());
            if number.is_empty() || unit.is_empty() {
                return Err(invalid());
            }
            let Some(rank) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
                return Err(format!(
                    "duration {text:?} has an unknown unit {unit:?}; use d, h, m, s or ms (e.g. 90s, 10m, 2h30m)"
                ));
            };
            if previous.is_some_and(|p| p >= rank) {
                return Err(format!(
                    "duration {text:?}: give each unit once, largest first (e.g. 1d2h, 2h30m, 4m35s)"
                ));
            }
            previous = Some(rank);
            total += number.parse::<f64>().map_err(|_| invalid())? * DURATION_UNITS[rank].1;
            rest = after;
        }
        total
    };
    // try_: a huge number overflows a Duration, which must be a usage error, not a panic.
    Duration::try_from_secs_f64(secs).map_err(|_| invalid())
}

/// `s` split after its longest prefix of characters `keep` accepts.
fn split_while(s: &str, keep: fn(char) -> bool) -> (&str, &str) {
    s.split_at(s.find(|c| !keep(c)).unwrap_or(s.len()))
}

/// A duration for people: `41s`, `2m10s`, `3h05m`, `2d4h`.
#[must_use]
pub fn format_duration(secs: f64) -> String {
    // Rounded and not negative: whole seconds are what is shown.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 if s % 60 == 0 => format!("{}m", s / 60),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        let t: Timeout = "10".parse().unwrap();
        assert_eq!(
            (t.duration, t.state),
            (Duration::from_secs(10), Status::Unknown)
        );
        let t: Timeout = "5:critical".parse().unwrap();
        assert_eq!(
            (t.duration, t.state),
            (Duration::from_secs(5), Status::Critical)
        );
        assert_eq!("0.5".parse::<Timeout>().unwrap().to_string(), "0.5s");
        for bad in ["0", "-1", "abc", "5:bad", "nan", "inf"] {
            assert!(bad.parse::<Timeout>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "1y",
            "m",
            "-1s",
            "inf",
            "nan",
            "1h30",
            "30m1h",
            "1m1m",
            "1.2.3s",
            "1 h",
            "h1",
            "1e400",
            "100000000000000000000000d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(41.0), "41s");
        assert_eq!(format_duration(130.0), "2m10s");
        assert_eq!(format_duration(600.0), "10m");
        assert_eq!(format_duration(3.0 * 3600.0 + 300.0), "3h05m");
        assert_eq!(format_duration(2.0 * 86_400.0 + 4.0 * 3600.0), "2d4h");
    }

    #[test]
    fn compound_durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs_f64());
        assert_eq!(secs("2h30m"), Ok(9000.0));
        assert_eq!(secs("4m35s"), Ok(275.0));
        assert_eq!(secs("1d2h"), Ok(93_600.0));
        assert_eq!(secs("3h05m"), Ok(11_100.0));
        assert_eq!(secs("1d2h3m4s"), Ok(93_784.0));
        assert_eq!(secs("1m500ms"), Ok(60.5));
        assert_eq!(secs("1.5h"), Ok(5400.0));
        assert_eq!(secs("0"), Ok(0.0));
        let err = parse_duration("30m1h").unwrap_err();
        assert!(err.contains("largest first"), "{err}");
        let err = parse_duration("1y").unwrap_err();
        assert!(err.contains("unknown unit \"y\""), "{err}");
    }

    /// Whatever the plugins print as a duration can be given back on the command line.
    #[test]
    fn every_printed_duration_reads_back() {
        let mut s = 0u32;
        while s < 400 * 86_400 {
            let shown = format_duration(f64::from(s));
            let back = parse_duration(&shown)
                .unwrap_or_else(|e| panic!("{s} s printed as {shown:?}: {e}"));
            assert_eq!(format_duration(back.as_secs_f64()), shown, "{s} s");
            // Below an hour the printed form is exact.
            if s < 3600 {
                assert_eq!(back.as_secs(), u64::from(s), "{shown}");
            }
            s += 1 + s / 50;
        }
    }
}
