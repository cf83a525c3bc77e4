//! The command line: options, their parsers, and the checks clap cannot express.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use procguard_common::cli::parse_duration;
use procguard_common::number::human;
use procguard_common::select::Selector;
use procguard_common::state::StateArgs;
use procguard_common::{CheckArgs, CheckError, CommonArgs, Threshold, ThresholdArgs};

use crate::probe::Method;
use crate::tls::TlsArgs;

/// Alert when a TCP listener's accept queue fills or drops connections, and probe it over
/// HTTP with each failure in its own words.
///
/// Listeners are chosen by --port (and --address), by the port and host of --url, or as the
/// TCP listeners owned by the processes the selectors match. The queue is read through NETLINK_SOCK_DIAG, LISTEN sockets
/// only, so the cost does not grow with established connections; /proc/net/tcp is the
/// fallback (it cannot show the backlog: give --backlog). --queue-warning/--queue-critical
/// are percent of the backlog; a full queue holds backlog+1 connections. Drops are deltas
/// since the last run (state in --state-dir). -w/-c are response times in seconds for the
/// probe (--url or --probe), as in check_http. When the probe fails or the queue is full,
/// every process holding the listener (a pre-forking server's master and workers) is looked
/// up and its open files compared with its own limit. A selected process's listeners are
/// read in its own network namespace (a container's), --netns does the same for --port, and
/// the probe connects from inside it. Unix stream listeners (php-fpm, gunicorn, uWSGI
/// behind nginx) are checked the same way: --unix PATH, or --unix-only with the selectors;
/// --probe then speaks HTTP over the socket.
#[derive(Parser, Debug)]
#[command(name = "check_http_backlog", version, about, long_about)]
#[allow(clippy::doc_markdown)] // these doc comments are the --help text, read as plain text
pub struct Args {
    /// `-w`/`-c` on the probe's response time.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,

    /// `-t`, `-v`, `--label`.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Whose listeners.
    #[command(flatten)]
    pub select: Selector,

    /// Where the drop counters of the last run are kept.
    #[command(flatten)]
    pub state: StateArgs,

    /// Check the Unix stream listener at this path (`@NAME` for an abstract socket); with
    /// --url, the URL's host and path are requested over this socket
    #[arg(long, value_name = "PATH")]
    pub unix: Option<String>,

    /// With the selectors: check the selected processes' Unix stream listeners instead of
    /// their TCP listeners
    #[arg(long, conflicts_with_all = ["port", "unix"])]
    pub unix_only: bool,

    /// Check the TCP listener(s) on this port (overrides the port and host of --url)
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// With --port: only the listener serving this address (IPv4 or IPv6; wildcard listeners included)
    #[arg(long, value_name = "ADDR", requires = "port", value_parser = parse_ip)]
    pub address: Option<IpAddr>,

    /// Warning when the accept queue exceeds this (N% of the backlog, or a count)
    #[arg(long, value_name = "RANGE", default_value = "80%")]
    pub queue_warning: Threshold,

    /// Critical when the accept queue exceeds this (N% of the backlog, or a count); 100% = full
    #[arg(long, value_name = "RANGE", default_value = "100%")]
    pub queue_critical: Threshold,

    /// The listen backlog, for the /proc/net/tcp fallback where sock_diag is unavailable
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,

    /// Warning at this many new drops on the listener since the last run
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub drops_warning: u64,

    /// Critical at this many new drops on the listener since the last run
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub drops_critical: u64,

    /// Probe this URL; alone, it also names the listener: its port, and its host when that is an address of this host
    #[arg(long, value_name = "URL", conflicts_with = "probe")]
    pub url: Option<String>,

    /// Probe http://ADDR:PORT/ of the (first) listener
    #[arg(long)]
    pub probe: bool,

    /// HTTP method of the probe
    #[arg(long, value_enum, default_value = "GET", ignore_case = true)]
    pub method: Method,

    /// Expected status codes, e.g. 200-399 or 200,204,301-302
    #[arg(long, value_name = "LIST", default_value = "200-399", value_parser = parse_status_set)]
    pub expect_status: StatusSet,

    /// How long the probe may take in all (connect, request, response); must be below -t
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_duration)]
    pub probe_timeout: Duration,

    /// Certificate checks of an https probe.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Look in this network namespace (a PID, /proc/PID/ns/net, or /run/netns/NAME) instead of the selected processes' own or this host's; sock_diag inside it needs CAP_SYS_ADMIN, else /proc/PID/net/tcp is read
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,

    /// Also count each listener's established connections (perfdata STEM_established); the kernel walks every established socket of the family for it, so its cost grows with the host's connections
    #[arg(long)]
    pub established: bool,
}

impl CheckArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// `--address`: an IP, IPv6 also in brackets.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))
}

/// Status codes accepted from the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `status` is expected.
    #[must_use]
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&status))
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_status_set(text: &str) -> Result<StatusSet, String> {
    let code = |s: &str| -> Result<u16, String> {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| format!("{s:?} is not an HTTP status code (100-599)"))
    };
    let ranges = text
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (code(a)?, code(b)?);
                if a > b {
                    return Err(format!("{part:?}: start above end"));
                }
                Ok((a, b))
            }
            None => code(part).map(|c| (c, c)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StatusSet(ranges))
}

/// The host (without brackets) and port of an http:// or https:// URL (80 and 443 by
/// default).
///
/// # Errors
///
/// Not an http(s) URL, no host, or a port that is not a TCP port.
pub fn url_endpoint(url: &str) -> Result<(String, u16), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(format!("--url {url:?} must start with http:// or https://")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("--url {url:?} has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    // The http crate drops a port that is not a u16 (`:99999`) instead of failing.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    let port = match after_host.rsplit_once(':') {
        Some((_, p)) if !p.is_empty() => p
            .parse()
            .map_err(|_| format!("--url {url:?}: port {p} is not a TCP port"))?,
        _ => default_port,
    };
    Ok((host, port))
}

/// The checks clap cannot express; each failure is a usage error.
///
/// # Errors
///
/// A usage error (`CheckError::Usage`) for each combination the plugin cannot run with.
pub fn validate(args: &Args) -> Result<(), CheckError> {
    // The runner prints these like clap's own errors: the reason, then the short usage.
    let invalid = |m: String| Err(CheckError::Usage(m));
    if args.unix_only && args.select.is_empty() {
        return invalid(
            "--unix-only chooses among the selected processes' listeners: add a selector (--pid, --name, --unit, ...)"
                .into(),
        );
    }
    if args.port.is_none() && args.url.is_none() && args.unix.is_none() && args.select.is_empty() {
        return invalid(
            "give --port PORT, --url URL, --unix PATH or a process selector (--pid, --name, --unit, ...)".into(),
        );
    }
    let probing = args.probe || args.url.is_some();
    if probing
        && (args.probe_timeout.is_zero() || args.probe_timeout >= args.common.timeout.duration)
    {
        return invalid(format!(
            "--probe-timeout {}s must be above 0 and below -t {}",
            human(args.probe_timeout.as_secs_f64(), 3),
            args.common.timeout
        ));
    }
    for (flag, t) in [
        ("-w", args.thresholds.warning),
        ("-c", args.thresholds.critical),
    ] {
        // -w/-c mean one thing here, as in check_http: the probe's response time. Without a
        // probe they would be silently ignored; the queue has its own thresholds.
        if t.is_some() && !probing {
            return invalid(format!(
                "{flag} is the probe's response time: give --url or --probe (the queue's thresholds are --queue-warning/--queue-critical)"
            ));
        }
        if t.is_some_and(|t| t.is_percent()) {
            return invalid(format!(
                "{flag} is a response time in seconds here, not a percentage"
            ));
        }
    }
    if !probing && (args.tls.verify_cert || args.tls.host.is_some()) {
        return invalid(
            "--verify-cert and --host are options of the probe: add --url or --probe".into(),
        );
    }
    if args.drops_warning == 0 || args.drops_critical == 0 {
        return invalid("--drops-warning and --drops-critical must be at least 1".into());
    }
    if let Some(url) = &args.url {
        url_endpoint(url).map_err(CheckError::Usage)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("check_http_backlog").chain(extra.iter().copied()))
            .unwrap()
    }

    #[test]
    fn each_option_parses() {
        let a = args(&[
            "--port",
            "8080",
            "--address",
            "[::1]",
            "--queue-warning",
            "50%",
            "--queue-critical",
            "120",
            "--backlog",
            "511",
            "--drops-warning",
            "5",
            "--drops-critical",
            "50",
            "--url",
            "http://127.0.0.1:8080/health",
            "--method",
            "head",
            "--expect-status",
            "200,204,301-302",
            "--probe-timeout",
            "2.5",
            "-w",
            "0.5",
            "-c",
            "2",
            "--state-dir",
            "/tmp/x",
        ]);
        assert_eq!(a.port, Some(8080));
        assert_eq!(a.address, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(a.queue_warning.is_percent());
        assert_eq!(a.queue_critical.to_string(), "120");
        assert_eq!(
            (a.backlog, a.drops_warning, a.drops_critical),
            (Some(511), 5, 50)
        );
        assert_eq!(a.method, Method::Head);
        assert_eq!(a.expect_status.to_string(), "200,204,301-302");
        assert!(a.expect_status.contains(204) && !a.expect_status.contains(203));
        assert_eq!(a.probe_timeout, Duration::from_millis(2500));
        assert!(validate(&a).is_ok());
        let d = args(&["--port", "80"]);
        assert_eq!(d.expect_status.to_string(), "200-399");
        assert_eq!(d.probe_timeout, Duration::from_secs(5));
        assert_eq!((d.drops_warning, d.drops_critical), (1, 100));
        assert!(Args::try_parse_from(["x", "--address", "::1"]).is_err()); // needs --port
        assert!(
            Args::try_parse_from(["x", "--port", "1", "--url", "http://a/", "--probe"]).is_err()
        );
        assert!(Args::try_parse_from(["x", "--port", "1", "--expect-status", "99"]).is_err());
        assert!(Args::try_parse_from(["x", "--port", "1", "--expect-status", "300-200"]).is_err());
        assert!(Args::try_parse_from(["x", "--port", "1", "--method", "POST"]).is_err());
    }

    #[test]
    fn invalid_combinations() {
        let msg = |a: &[&str]| validate(&args(a)).unwrap_err().to_string();
        assert!(msg(&[]).contains("give --port"));
        assert!(msg(&["--port", "1", "--probe", "--probe-timeout", "10"]).contains("below -t 10s"));
        // Only a probe needs the probe timeout to fit: a queue-only check may run with -t 1.
        assert!(validate(&args(&["--port", "1", "-t", "1"])).is_ok());
        assert!(msg(&["--port", "1", "-t", "1", "--url", "http://x/"]).contains("below -t 1s"));
        assert!(
            msg(&["--port", "1", "-t", "3", "--probe", "--probe-timeout", "3"])
                .contains("below -t 3s")
        );
        assert!(msg(&["--port", "1", "--probe", "-w", "50%"]).contains("response time in seconds"));
        // Without a probe, -w/-c would have nothing to apply to.
        assert!(msg(&["--port", "1", "-w", "1"]).contains("-w is the probe's response time"));
        assert!(msg(&["--port", "1", "-c", "1"]).contains("give --url or --probe"));
        assert!(msg(&["--port", "1", "--url", "http:///x"]).contains("--url \"http:///x\""));
        assert!(msg(&["--port", "1", "--url", "ftp://x/"]).contains("http://"));
        assert!(validate(&args(&["--port", "1", "-t", "6", "--probe-timeout", "5"])).is_ok());
    }

    #[test]
    fn url_endpoints() {
        let e = |u: &str| url_endpoint(u).unwrap();
        assert_eq!(
            e("http://127.0.0.1:8080/health"),
            ("127.0.0.1".into(), 8080)
        );
        assert_eq!(e("http://[::1]/"), ("::1".into(), 80));
        assert_eq!(e("https://localhost"), ("localhost".into(), 443));
        assert_eq!(e("HTTP://Example.ORG:81"), ("Example.ORG".into(), 81));
        assert!(url_endpoint("ftp://x/").unwrap_err().contains("http://"));
        assert!(
            url_endpoint("http://x:99999/").is_err(),
            "{:?}",
            url_endpoint("http://x:99999/")
        );
        assert!(url_endpoint("/path").is_err());
    }
}
