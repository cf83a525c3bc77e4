//! check_http_backlog: TCP listen-queue saturation and drops, and an HTTP probe that says
//! why it fails.
//!
//! In the incident this plugin exists for, the kernel kept completing handshakes into the
//! listen queue while the service could not accept() them (EMFILE), so the supervisor's
//! `GET /` connected and then read nothing. This check measures the accept queue against
//! the backlog (sock_diag), the listener's drops and the host's ListenOverflows as deltas
//! since the last run, probes the service over HTTP with each failure class in its own
//! words, and, when something fails, names the process holding the listener and whether it
//! sits at its open-files limit.

pub mod owner;
pub mod probe;
pub mod procnet;
pub mod sock_diag;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use clap::Parser;
use procguard_common::cli::parse_duration;
use procguard_common::perfdata::format_number;
use procguard_common::proc::ProcRoot;
use procguard_common::select::Selector;
use procguard_common::state::StateArgs;
use procguard_common::{
    CheckArgs, CheckError, CommonArgs, PerfData, Range, Report, Status, Threshold, Thresholds, Uom,
};
use serde::{Deserialize, Serialize};

use crate::owner::Owner;
use crate::probe::{Method, Outcome, Probe};
use crate::procnet::TcpExt;
use crate::sock_diag::{DiagError, Families};

/// Alert when a TCP listener's accept queue fills or drops connections, and probe it over
/// HTTP with each failure in its own words.
///
/// Listeners are chosen by --port (and --address), or as the TCP listeners owned by the
/// processes the selectors match. The queue is read through NETLINK_SOCK_DIAG, LISTEN sockets
/// only, so the cost does not grow with established connections; /proc/net/tcp is the
/// fallback (it cannot show the backlog: give --backlog). --queue-warning/--queue-critical
/// are percent of the backlog; a full queue holds backlog+1 connections. Drops are deltas
/// since the last run (state in --state-dir). -w/-c are response times in seconds for the
/// probe (--url or --probe), as in check_http. When the probe fails or the queue is full,
/// the process holding the listener is looked up and its open files compared with its limit.
#[derive(Parser, Debug)]
#[command(name = "check_http_backlog", version, about, long_about)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub select: Selector,

    #[command(flatten)]
    pub state: StateArgs,

    /// Check the TCP listener(s) on this port
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

    /// Probe this URL
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

/// One listener as measured, from sock_diag or /proc/net/tcp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Local address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Accept queue now.
    pub queue: u32,
    /// Backlog (sk_max_ack_backlog), if known.
    pub backlog: Option<u32>,
    /// sk_drops, if known.
    pub drops: Option<u64>,
    /// Owner uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
}

impl Listener {
    /// `127.0.0.1:8080`, `[::1]:8080`, `*:8080`, `[::]:8080`.
    pub fn endpoint(&self) -> String {
        match self.addr {
            IpAddr::V4(a) if a.is_unspecified() => format!("*:{}", self.port),
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }

    /// Whether the queue holds backlog+1 connections: the kernel now drops new handshakes.
    pub fn is_full(&self) -> bool {
        self.backlog.is_some_and(|b| self.queue > b)
    }

    /// `accept queue 5/4 full`, `accept queue 0/128`, `accept queue 3 (backlog unknown)`.
    pub fn queue_words(&self) -> String {
        match self.backlog {
            Some(b) if self.queue > b => format!("accept queue {}/{b} full", self.queue),
            Some(b) => format!("accept queue {}/{b}", self.queue),
            None => format!("accept queue {} (backlog unknown)", self.queue),
        }
    }

    /// Whether it serves connections to `addr` (exactly, or as a wildcard of that family;
    /// a `::` listener also takes IPv4 unless it is v6only, which we cannot see here).
    fn serves(&self, addr: IpAddr) -> bool {
        self.addr == addr
            || match (self.addr, addr) {
                (IpAddr::V4(l), IpAddr::V4(_)) => l.is_unspecified(),
                (IpAddr::V6(l), _) => l.is_unspecified(),
                _ => false,
            }
    }

    /// Whether an established socket with local address `local` (and this port) was accepted
    /// from this listener: same family (a dual-stack `::` listener's IPv4 connections are
    /// IPv6 sockets with mapped addresses), and the same address unless it is a wildcard.
    fn accepted(&self, local: IpAddr) -> bool {
        match (self.addr, local) {
            (IpAddr::V4(l), IpAddr::V4(a)) => l.is_unspecified() || l == a,
            (IpAddr::V6(l), IpAddr::V6(a)) => l.is_unspecified() || l == a,
            _ => false,
        }
    }

    /// The address to probe it at: loopback for a wildcard.
    fn probe_host(&self) -> String {
        match self.addr {
            IpAddr::V4(a) if a.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) if a.is_unspecified() => format!("[{}]", Ipv6Addr::LOCALHOST),
            IpAddr::V6(a) => format!("[{a}]"),
        }
    }
}

/// The state keys of `listeners` (sorted): the endpoint, and `#2`, `#3`, ... for further
/// sockets on the same endpoint (SO_REUSEPORT groups), in inode order.
fn state_keys(listeners: &[Listener]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for l in listeners {
        let endpoint = l.endpoint();
        let before = listeners
            .iter()
            .take(keys.len())
            .filter(|o| o.endpoint() == endpoint)
            .count();
        keys.push(if before == 0 {
            endpoint
        } else {
            format!("{endpoint}#{}", before + 1)
        });
    }
    keys
}

/// Where the listeners came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    SockDiag,
    ProcNetTcp,
}

/// Lists LISTEN sockets (on `port`, if given): sock_diag, else /proc/net/tcp{,6}. The
/// second value says why sock_diag was not used.
fn read_listeners(
    args: &Args,
    root: &ProcRoot,
    port: Option<u16>,
) -> Result<(Vec<Listener>, Source, Option<String>), CheckError> {
    // Tests reach the /proc/net/tcp fallback through a seam of test builds only.
    let why_not = if procguard_common::seam::var(procguard_common::seam::Seam::NoSockDiag).is_some()
    {
        "sock_diag not used (PROCGUARD_TEST_NO_SOCK_DIAG)".to_string()
    } else {
        match sock_diag::listeners(port) {
            Ok(sockets) => {
                let listeners = sockets
                    .into_iter()
                    .map(|s| Listener {
                        addr: s.addr,
                        port: s.port,
                        queue: s.rqueue,
                        backlog: Some(s.wqueue),
                        drops: s.drops.map(u64::from),
                        uid: s.uid,
                        inode: u64::from(s.inode),
                    })
                    .collect();
                return Ok((listeners, Source::SockDiag, None));
            }
            Err(DiagError::Os(e)) => format!("sock_diag unavailable ({e}), read /proc/net/tcp"),
            Err(e) => return Err(CheckError::Other(e.to_string())),
        }
    };
    let mut listeners = Vec::new();
    for file in ["net/tcp", "net/tcp6"] {
        let text = match root.read(file) {
            Ok(t) => t,
            Err(e) if file == "net/tcp6" && e.is_not_found() => continue, // no IPv6
            Err(e) => return Err(e),
        };
        let rows = procnet::parse_tcp(&text, sock_diag::TCP_LISTEN)
            .map_err(|m| CheckError::parse(root.path().join(file), m))?;
        listeners.extend(
            rows.into_iter()
                .filter(|r| port.is_none_or(|p| r.port == p))
                .map(|r| Listener {
                    addr: r.addr,
                    port: r.port,
                    queue: r.rx_queue,
                    backlog: args.backlog,
                    drops: None,
                    uid: r.uid,
                    inode: r.inode,
                }),
        );
    }
    Ok((listeners, Source::ProcNetTcp, Some(why_not)))
}

/// The local addresses of the established connections with local port `port`.
fn established(
    root: &ProcRoot,
    source: Source,
    port: u16,
    families: Families,
) -> Result<Vec<IpAddr>, CheckError> {
    if source == Source::SockDiag {
        return sock_diag::established_on(port, families)
            .map_err(|e| CheckError::Other(e.to_string()));
    }
    let mut n = Vec::new();
    for file in ["net/tcp", "net/tcp6"] {
        let text = match root.read(file) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        n.extend(
            procnet::parse_tcp(&text, sock_diag::TCP_ESTABLISHED)
                .map_err(|m| CheckError::parse(root.path().join(file), m))?
                .iter()
                .filter(|r| r.port == port)
                .map(|r| r.addr),
        );
    }
    Ok(n)
}

/// What is kept between runs to turn counters into deltas.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Saved {
    #[serde(default)]
    boot_id: String,
    #[serde(default)]
    host: Option<HostCounters>,
    /// Per listener endpoint: its socket inode and drop count.
    #[serde(default)]
    listeners: BTreeMap<String, (u64, u64)>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
struct HostCounters {
    listen_overflows: u64,
    listen_drops: u64,
}

/// New drops since the last run; `None` = first run (a baseline) or counter reset.
#[derive(Debug, Default)]
struct Deltas {
    listeners: BTreeMap<String, Option<u64>>,
    host: Option<HostCounters>,
    note: Option<String>,
}

/// Computes the deltas against `saved` and replaces it with the current values (only the
/// listeners seen now are kept, so the state stays small).
fn deltas(
    saved: &mut Saved,
    boot_id: &str,
    host: Option<HostCounters>,
    listeners: &[Listener],
) -> Deltas {
    let same_boot = !saved.boot_id.is_empty() && saved.boot_id == boot_id;
    let mut out = Deltas::default();
    let keys = state_keys(listeners);
    for (l, key) in listeners.iter().zip(keys.iter().cloned()) {
        let Some(drops) = l.drops else { continue };
        let delta = match saved.listeners.get(&key) {
            Some(&(inode, before)) if same_boot && inode == l.inode && drops >= before => {
                Some(drops - before)
            }
            // A new socket on the same endpoint (the service restarted): every drop it has
            // counted happened since the last run.
            Some(&(inode, _)) if same_boot && inode != l.inode => Some(drops),
            _ => None,
        };
        out.listeners.insert(key, delta);
    }
    out.host = match (saved.host, host) {
        (Some(b), Some(n))
            if same_boot
                && n.listen_overflows >= b.listen_overflows
                && n.listen_drops >= b.listen_drops =>
        {
            Some(HostCounters {
                listen_overflows: n.listen_overflows - b.listen_overflows,
                listen_drops: n.listen_drops - b.listen_drops,
            })
        }
        _ => None,
    };
    saved.boot_id = boot_id.to_string();
    saved.host = host;
    // A listener whose counter could not be read this time keeps its old baseline.
    let old = std::mem::take(&mut saved.listeners);
    saved.listeners = listeners
        .iter()
        .zip(keys)
        .filter_map(|(l, key)| {
            let value = l
                .drops
                .map(|d| (l.inode, d))
                .or_else(|| old.get(&key).copied())?;
            Some((key, value))
        })
        .collect();
    out
}

/// The check.
pub fn check(args: &Args) -> Result<Report, CheckError> {
    let started = Instant::now();
    let deadline = started + args.common.timeout.duration;
    let root = ProcRoot::new(&args.common.proc_root);
    validate(args)?;
    let time_thresholds = Thresholds {
        warning: args.common.warning.map(|t| t.range()),
        critical: args.common.critical.map(|t| t.range()),
    };
    let mut report = Report::default();

    // 1. The listeners.
    let (mut listeners, source, fallback_note) = read_listeners(args, &root, args.port)?;
    if let Some(addr) = args.address {
        listeners.retain(|l| l.serves(addr));
    }
    let mut owners_known: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    // "Nothing listens" is added after the probe's finding, whose words say more.
    let mut missing: Option<String> = None;
    if !args.select.is_empty() {
        let selected = args
            .select
            .resolve(&root, args.common.label.as_deref(), &mut report)?;
        if selected.is_empty() {
            return Ok(report); // "not running" is already in the report
        }
        // Reading the selected processes' fds may take a while (one readlink per fd): leave
        // time for the probe and for printing.
        let probing = args.probe || args.url.is_some();
        let scan_until = deadline
            .checked_sub(Duration::from_millis(500))
            .and_then(|d| {
                d.checked_sub(if probing {
                    args.probe_timeout
                } else {
                    Duration::ZERO
                })
            })
            .unwrap_or(started);
        let mut mine: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
        for s in &selected {
            match owner::socket_inodes(&root, s.pid, scan_until) {
                Ok((inodes, cut)) => {
                    for i in inodes {
                        mine.entry(i).or_default().push(s.pid);
                    }
                    if cut {
                        report.unknown(format!(
                            "{}: stopped reading its fds at the time limit (-t); listeners may be missing",
                            s.display()
                        ));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report.unknown(CheckError::io(root.process(s.pid).path("fd"), e)),
            }
        }
        listeners.retain(|l| mine.contains_key(&l.inode));
        owners_known = mine;
        if listeners.is_empty() && report.findings().is_empty() {
            let who: Vec<String> = selected.iter().map(|s| s.display()).collect();
            missing = Some(format!(
                "{} holds no TCP listener{}",
                who.join(", "),
                args.port
                    .map(|p| format!(" on port {p}"))
                    .unwrap_or_default()
            ));
        }
    } else if listeners.is_empty() {
        let target = match args.address {
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", args.port.unwrap_or(0)),
            Some(a) => format!("{a}:{}", args.port.unwrap_or(0)),
            None => format!("port {}", args.port.unwrap_or(0)),
        };
        missing = Some(format!("nothing listens on {target}"));
    }
    listeners.sort_by_key(|l| (l.port, l.addr.is_ipv6(), l.addr, l.inode));
    let keys = state_keys(&listeners);
    // Labels: --label, else what the selector names (a pidfile, unit or name; never a PID),
    // else the port.
    let label = args
        .common
        .label
        .clone()
        .or_else(|| args.select.stable_label());
    let labels = stems(&listeners, label.as_deref());

    // 2. The probe (before the owner lookup, which is only done on a failure).
    let probe = probe_target(args, &listeners).map(|url| {
        let p = probe::run(&url, args.method, args.probe_timeout);
        (url, p)
    });

    // 3. Drops as deltas since the last run.
    let host_counters = match root.read("net/netstat") {
        Ok(text) => match TcpExt::parse(&text) {
            Ok(t) => match (t.get("ListenOverflows"), t.get("ListenDrops")) {
                (Some(o), Some(d)) => Some(HostCounters {
                    listen_overflows: o,
                    listen_drops: d,
                }),
                _ => None,
            },
            Err(m) => {
                report.unknown(CheckError::parse(root.path().join("net/netstat"), m));
                None
            }
        },
        Err(e) => {
            report.unknown(e);
            None
        }
    };
    let boot_id = root.boot_id().unwrap_or_default();
    let key = format!("http_backlog {}", target_key(args));
    // A state store that cannot be used (refused, unwritable) costs the deltas only: the
    // queue and the probe are still evaluated, and UNKNOWN ranks below a CRITICAL.
    let updated = args.state.open().and_then(|dir| {
        dir.update::<Saved, Deltas>(&key, |saved, _origin| {
            deltas(saved, &boot_id, host_counters, &listeners)
        })
    });
    let deltas = match updated {
        Ok(u) => Deltas {
            note: u.origin.note(),
            ..u.value
        },
        Err(e) => {
            report.unknown(format!("drops not compared with the last run: {e}"));
            Deltas::default()
        }
    };

    // 4. Evaluate each listener.
    let drop_thresholds = Thresholds {
        warning: Some(Range::above(args.drops_warning.saturating_sub(1) as f64)),
        critical: Some(Range::above(args.drops_critical.saturating_sub(1) as f64)),
    };
    let probe_failed = probe.as_ref().is_some_and(|(_, p)| !probe_ok(p, args));
    let mut listener_findings: Vec<(Status, String, Option<u64>)> = Vec::new();
    let mut perf = Vec::new();
    let mut est_by_port: BTreeMap<u16, Result<Vec<IpAddr>, CheckError>> = BTreeMap::new();
    for ((l, stem), key) in listeners.iter().zip(&labels).zip(&keys) {
        let backlog = l.backlog.map(f64::from);
        let q = Thresholds {
            warning: args.queue_warning.resolve(backlog),
            critical: args.queue_critical.resolve(backlog),
        };
        let status = q.evaluate(f64::from(l.queue));
        let mut text = format!("{} {}", l.endpoint(), l.queue_words());
        if status != Status::Ok && !l.is_full() {
            if let Some(r) = q.violated(f64::from(l.queue)) {
                text = format!("{text} ({} {})", word(status), r.violation());
            }
        }
        listener_findings.push((status, text, Some(l.inode)));
        perf.push(
            PerfData::new(&format!("{stem}_queue"), f64::from(l.queue))
                .thresholds(&q)
                .min(0.0)
                .max(backlog.map(|b| b + 1.0)),
        );
        perf.push(match l.backlog {
            Some(b) => PerfData::new(&format!("{stem}_backlog"), f64::from(b)),
            None => PerfData::unknown(&format!("{stem}_backlog")),
        });
        match l.drops {
            Some(d) => {
                perf.push(PerfData::new(&format!("{stem}_drops"), d as f64).uom(Uom::Counter));
                match deltas.listeners.get(key).copied().flatten() {
                    Some(new) => {
                        let s = drop_thresholds.evaluate(new as f64);
                        listener_findings.push((
                            s,
                            format!(
                                "{} dropped {new} connection(s) since the last run ({d} in all)",
                                l.endpoint()
                            ),
                            None,
                        ));
                    }
                    None => report.verbose_detail(format!(
                        "{} drops: {d} in all; first run, baseline saved",
                        l.endpoint()
                    )),
                }
            }
            None => perf.push(PerfData::unknown(&format!("{stem}_drops"))),
        }
        // One dump per port; only connections to this listener's address count (a client
        // socket elsewhere may use the same number as its own port).
        match est_by_port.entry(l.port).or_insert_with(|| {
            // Only the families listening on this port can hold its connections: an IPv4
            // listener's are all AF_INET, so the (costly) AF_INET6 walk is skipped.
            let on_port = || listeners.iter().filter(|o| o.port == l.port);
            let families = Families {
                v4: on_port().any(|o| o.addr.is_ipv4()),
                v6: on_port().any(|o| o.addr.is_ipv6()),
            };
            established(&root, source, l.port, families)
        }) {
            Ok(addrs) => {
                let n = addrs.iter().filter(|a| l.accepted(**a)).count();
                perf.push(PerfData::new(&format!("{stem}_established"), n as f64).min(0.0));
            }
            Err(e) => {
                perf.push(PerfData::unknown(&format!("{stem}_established")));
                report.verbose_detail(format!("established connections: {e}"));
            }
        }
    }
    // Host-wide listen overflows: graphs and text; evaluated against the drop thresholds only
    // where the listener's own counter is missing (the /proc fallback), since other listeners
    // on the host raise them too.
    if let Some(h) = host_counters {
        perf.push(PerfData::new("listen_overflows", h.listen_overflows as f64).uom(Uom::Counter));
        perf.push(PerfData::new("listen_drops", h.listen_drops as f64).uom(Uom::Counter));
        if let Some(d) = deltas.host {
            let text = format!(
                "host TcpExt: {} ListenOverflows, {} ListenDrops since the last run",
                d.listen_overflows, d.listen_drops
            );
            let own_counter = listeners.iter().any(|l| l.drops.is_some());
            if own_counter || listeners.is_empty() {
                report.verbose_detail(text);
            } else {
                listener_findings.push((
                    drop_thresholds.evaluate(d.listen_drops as f64),
                    text,
                    None,
                ));
            }
        }
    }

    // 5. Who holds the listener, when something is wrong (or -v).
    let anything_wrong = probe_failed || listener_findings.iter().any(|(s, _, _)| *s != Status::Ok);
    let owners = if (anything_wrong || args.common.verbose > 0) && !listeners.is_empty() {
        lookup_owners(&root, &listeners, owners_known, deadline, &mut report)
    } else {
        BTreeMap::new()
    };
    if anything_wrong || args.common.verbose > 0 {
        for l in &listeners {
            match owners.get(&l.inode).filter(|o| !o.is_empty()) {
                Some(os) => {
                    let who: Vec<String> = os.iter().map(Owner::describe).collect();
                    report.verbose_detail(format!("{} held by {}", l.endpoint(), who.join(", ")));
                }
                None => report.verbose_detail(format!(
                    "{}: no process found holding it (other users' processes need root or CAP_SYS_PTRACE; other PID namespaces are not visible)",
                    l.endpoint()
                )),
            }
        }
    }
    if source == Source::ProcNetTcp && args.backlog.is_none() && !listeners.is_empty() {
        report.verbose_detail(
            "the backlog is unknown without sock_diag: give --backlog N for the percent thresholds",
        );
    }
    let diagnosis = diagnose(&listeners, &owners);

    // 6. Findings, the most telling first: it becomes line 1.
    let prefix = |name: &str| match &label {
        Some(l) => format!("{l}_{name}"),
        None => name.to_string(),
    };
    if let Some((url, p)) = &probe {
        add_probe(
            &mut report,
            args,
            url,
            p,
            &time_thresholds,
            diagnosis.as_ref().map(Diagnosis::full).as_deref(),
            &mut perf,
            &prefix,
        );
    }
    if let Some(m) = missing {
        report.add(Status::Critical, m);
    }
    let mut diagnosed = probe_failed;
    for (status, text, inode) in listener_findings {
        match &diagnosis {
            Some(d) if status != Status::Ok && !diagnosed => {
                // The finding of the diagnosed listener already has its queue figures.
                let why = if inode == Some(d.inode) {
                    d.owner.clone()
                } else {
                    Some(d.full())
                };
                match why {
                    Some(why) => report.add(status, format!("{text}; {why}")),
                    None => report.add(status, text),
                }
                diagnosed = true;
            }
            _ => report.add(status, text),
        }
    }
    for p in perf {
        report.perf(p);
    }
    if let Some(note) = deltas.note {
        report.detail(note);
    }
    if let Some(note) = fallback_note {
        report.verbose_detail(note);
    }
    report.ok_summary(ok_summary(&listeners, probe.as_ref().map(|(_, p)| p)));
    Ok(report)
}

/// "critical" / "warning".
fn word(s: Status) -> &'static str {
    if s == Status::Critical {
        "critical"
    } else {
        "warning"
    }
}

fn validate(args: &Args) -> Result<(), CheckError> {
    // Like clap's own argument errors: the reason, then the short usage.
    let invalid = |m: String| {
        let usage = <Args as clap::CommandFactory>::command().render_usage();
        Err(CheckError::Config(format!(
            "invalid arguments: {m}\n{usage}\nFor more information, try '--help'."
        )))
    };
    if args.port.is_none() && args.select.is_empty() {
        return invalid(
            "give --port PORT or a process selector (--pid, --name, --unit, ...)".into(),
        );
    }
    let probing = args.probe || args.url.is_some();
    if probing
        && (args.probe_timeout.is_zero() || args.probe_timeout >= args.common.timeout.duration)
    {
        return invalid(format!(
            "--probe-timeout {}s must be above 0 and below -t {}",
            format_number(args.probe_timeout.as_secs_f64()),
            args.common.timeout
        ));
    }
    for (flag, t) in [("-w", args.common.warning), ("-c", args.common.critical)] {
        if t.is_some_and(|t| t.is_percent()) {
            return invalid(format!(
                "{flag} is a response time in seconds here, not a percentage"
            ));
        }
    }
    if args.drops_warning == 0 || args.drops_critical == 0 {
        return invalid("--drops-warning and --drops-critical must be at least 1".into());
    }
    if let Some(url) = &args.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return invalid(format!("--url {url:?} must start with http:// or https://"));
        }
    }
    Ok(())
}

/// The state key: what the check looks at, not the PIDs.
fn target_key(args: &Args) -> String {
    let mut parts = Vec::new();
    if let Some(p) = args.port {
        parts.push(format!("port {p}"));
    }
    if let Some(a) = args.address {
        parts.push(format!("address {a}"));
    }
    if !args.select.is_empty() {
        parts.push(args.select.describe());
    }
    parts.join(" ")
}

/// Perfdata label stems, stable across restarts: `--label` or the port; listeners that
/// would share one get `_ipv4`/`_ipv6`, then a number.
fn stems(listeners: &[Listener], label: Option<&str>) -> Vec<String> {
    let ports: std::collections::BTreeSet<u16> = listeners.iter().map(|l| l.port).collect();
    let base = |l: &Listener| match label {
        Some(lbl) if ports.len() <= 1 => lbl.to_string(),
        Some(lbl) => format!("{lbl}_{}", l.port),
        None => l.port.to_string(),
    };
    let mut out: Vec<String> = Vec::new();
    for l in listeners {
        let b = base(l);
        let same_base = listeners.iter().filter(|o| base(o) == b).count();
        let mut stem = if same_base > 1 {
            format!("{b}_{}", if l.addr.is_ipv6() { "ipv6" } else { "ipv4" })
        } else {
            b
        };
        let taken = out
            .iter()
            .filter(|s| **s == stem || s.starts_with(&format!("{stem}_")))
            .count();
        if taken > 0 {
            stem = format!("{stem}_{}", taken + 1);
        }
        out.push(stem);
    }
    out
}

/// The URL to probe, if any.
fn probe_target(args: &Args, listeners: &[Listener]) -> Option<String> {
    if let Some(url) = &args.url {
        return Some(url.clone());
    }
    if !args.probe {
        return None;
    }
    let (host, port) = match (args.address, listeners.first()) {
        (Some(IpAddr::V6(a)), _) => (format!("[{a}]"), args.port?),
        (Some(a), _) => (a.to_string(), args.port?),
        (None, Some(l)) => (l.probe_host(), l.port),
        (None, None) => (Ipv4Addr::LOCALHOST.to_string(), args.port?),
    };
    Some(format!("http://{host}:{port}/"))
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
    }
}

fn probe_ok(p: &Probe, args: &Args) -> bool {
    matches!(p.outcome, Outcome::Status(s) if args.expect_status.contains(s))
}

/// Seconds for the text: milliseconds, or a tenth of one below 10 ms (loopback is fast).
fn secs(d: Duration) -> String {
    let scale = if d < Duration::from_millis(10) {
        10_000.0
    } else {
        1000.0
    };
    format_number((d.as_secs_f64() * scale).round() / scale)
}

/// Adds the probe's finding and its timings.
#[allow(clippy::too_many_arguments)]
fn add_probe(
    report: &mut Report,
    args: &Args,
    url: &str,
    p: &Probe,
    time_thresholds: &Thresholds,
    diagnosis: Option<&str>,
    perf: &mut Vec<PerfData>,
    prefix: &dyn Fn(&str) -> String,
) {
    let timeout = secs(args.probe_timeout);
    let connect = p.connect.map(secs).unwrap_or_default();
    let failure = match &p.outcome {
        Outcome::Status(s) if args.expect_status.contains(*s) => None,
        Outcome::Status(s) => Some(format!("HTTP {s} (expected {})", args.expect_status)),
        Outcome::Refused => Some("connection refused".to_string()),
        Outcome::ConnectTimeout => Some(format!("connect timeout after {timeout}s")),
        Outcome::NoResponse => Some(format!("connected but no response in {timeout}s")),
        Outcome::Reset => Some(format!(
            "connection reset before a response (connected in {connect}s)"
        )),
        Outcome::Closed => Some(format!(
            "connection closed before a response (connected in {connect}s)"
        )),
        Outcome::Incomplete => Some(format!("response incomplete after {timeout}s")),
        Outcome::Failed(why) => Some(format!("probe failed: {why}")),
    };
    let phase = |name: &str, d: Option<Duration>| {
        let label = prefix(name);
        // An unknown value is a bare `U` (no unit: `Us` is not in the grammar).
        d.map_or_else(
            || PerfData::unknown(&label),
            |d| {
                PerfData::new(&label, (d.as_secs_f64() * 1e6).round() / 1e6)
                    .uom(Uom::Seconds)
                    .min(0.0)
            },
        )
    };
    match failure {
        Some(text) => {
            let text = match diagnosis {
                Some(d) => format!("{text}; {d}"),
                None => text,
            };
            report.add(Status::Critical, text);
            // The URL is on its own line: on line 1 it could push the diagnosis past the
            // ~200 bytes that survive.
            report.detail(format!("probe: {} {url}", method_name(args.method)));
            perf.push(PerfData::unknown(&prefix("time")).thresholds(time_thresholds));
        }
        None => {
            let Outcome::Status(s) = p.outcome else {
                return;
            };
            let total = p.total.as_secs_f64();
            let status = time_thresholds.evaluate(total);
            let slow = if status == Status::Ok {
                ""
            } else {
                "slow response: "
            };
            let text = format!("{slow}HTTP {s} in {}s", secs(p.total));
            report.verbose_detail(format!("probe: {} {url}", method_name(args.method)));
            let perf_time = PerfData::new(&prefix("time"), (total * 1e6).round() / 1e6)
                .uom(Uom::Seconds)
                .min(0.0);
            // Report::metric stamps the thresholds and adds the violated range to the text.
            report.metric(total, time_thresholds, text, perf_time);
        }
    }
    perf.push(phase("time_connect", p.connect));
    perf.push(phase("time_firstbyte", p.first_byte));
}

/// Looks up the processes holding the listeners (already known in selector mode) and
/// reads their fd usage.
fn lookup_owners(
    root: &ProcRoot,
    listeners: &[Listener],
    known: BTreeMap<u64, Vec<i32>>,
    deadline: Instant,
    report: &mut Report,
) -> BTreeMap<u64, Vec<Owner>> {
    let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    let mut pids = known;
    pids.retain(|i, _| inodes.contains(i));
    if pids.len() < inodes.len() {
        // Leave time for printing: at most 2 s, and 0.5 s before the plugin's deadline.
        let until = (Instant::now() + Duration::from_secs(2)).min(
            deadline
                .checked_sub(Duration::from_millis(500))
                .unwrap_or(deadline),
        );
        let missing: Vec<u64> = inodes
            .iter()
            .copied()
            .filter(|i| !pids.contains_key(i))
            .collect();
        let uid = listeners.first().map(|l| l.uid);
        let (found, cut) = owner::find_owners(root, &missing, uid, until, 8);
        if cut {
            report.verbose_detail("owner lookup stopped at its time limit");
        }
        pids.extend(found);
    }
    pids.into_iter()
        .map(|(inode, pids)| {
            let owners = pids.into_iter().map(|p| Owner::read(root, p)).collect();
            (inode, owners)
        })
        .collect()
}

/// What explains a failure: a full queue, an owner at its fd limit.
/// The explanation of a failure: one listener's queue and the process holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Diagnosis {
    inode: u64,
    queue: String,
    owner: Option<String>,
}

impl Diagnosis {
    /// `accept queue 129/128 full; owner node[2100] at 1024/1024 open files — ...`
    fn full(&self) -> String {
        match &self.owner {
            Some(o) => format!("{}; {o}", self.queue),
            None => self.queue.clone(),
        }
    }
}

fn diagnose(listeners: &[Listener], owners: &BTreeMap<u64, Vec<Owner>>) -> Option<Diagnosis> {
    // The listener that looks worst: full first, then an owner at its limit, then fullest.
    let at_limit = |l: &Listener| {
        owners
            .get(&l.inode)
            .is_some_and(|o| o.iter().any(Owner::at_fd_limit))
    };
    let l = listeners.iter().max_by_key(|l| {
        (
            l.is_full(),
            at_limit(l),
            l.backlog
                .map_or(0, |b| u64::from(l.queue) * 1000 / u64::from(b.max(1))),
        )
    })?;
    let queue = l.queue_words();
    let owner = owners.get(&l.inode).and_then(|os| {
        os.iter()
            .find(|o| o.at_fd_limit())
            .or_else(|| os.first())
            .cloned()
    });
    let owner = owner.map(|o| {
        if o.at_fd_limit() {
            format!(
                "owner {} \u{2014} accept() is likely failing with EMFILE",
                o.describe()
            )
        } else {
            format!("owner {}", o.describe())
        }
    });
    Some(Diagnosis {
        inode: l.inode,
        queue,
        owner,
    })
}

fn ok_summary(listeners: &[Listener], probe: Option<&Probe>) -> String {
    let mut parts: Vec<String> = listeners
        .iter()
        .take(3)
        .map(|l| format!("{} {}", l.endpoint(), l.queue_words()))
        .collect();
    if listeners.len() > 3 {
        parts.push(format!("+{} more listeners", listeners.len() - 3));
    }
    if let Some(p) = probe {
        if let Outcome::Status(s) = p.outcome {
            parts.push(format!("HTTP {s} in {}s", secs(p.total)));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("check_http_backlog").chain(extra.iter().copied()))
            .unwrap()
    }

    fn listener(addr: &str, port: u16, queue: u32, backlog: u32) -> Listener {
        Listener {
            addr: addr.parse().unwrap(),
            port,
            queue,
            backlog: Some(backlog),
            drops: Some(0),
            uid: 1000,
            inode: 1,
        }
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
        assert!(msg(&[]).contains("\nUsage: check_http_backlog"));
        assert!(
            msg(&["--port", "1", "-t", "3", "--probe", "--probe-timeout", "3"])
                .contains("below -t 3s")
        );
        assert!(msg(&["--port", "1", "-w", "50%"]).contains("response time in seconds"));
        assert!(msg(&["--port", "1", "--url", "ftp://x/"]).contains("http://"));
        assert!(validate(&args(&["--port", "1", "-t", "6", "--probe-timeout", "5"])).is_ok());
    }

    #[test]
    fn queue_words_and_fullness() {
        let l = listener("127.0.0.1", 8080, 5, 4);
        assert!(l.is_full());
        assert_eq!(l.queue_words(), "accept queue 5/4 full");
        assert_eq!(l.endpoint(), "127.0.0.1:8080");
        let l = listener("::", 80, 4, 4);
        assert!(!l.is_full());
        assert_eq!(l.endpoint(), "[::]:80");
        assert_eq!(l.probe_host(), "[::1]");
        assert!(l.serves("127.0.0.1".parse().unwrap()));
        let l = Listener {
            backlog: None,
            ..listener("0.0.0.0", 80, 3, 0)
        };
        assert_eq!(l.queue_words(), "accept queue 3 (backlog unknown)");
        assert_eq!(l.endpoint(), "*:80");
        assert!(!l.serves("::1".parse().unwrap()));
        assert!(l.accepted("127.0.0.5".parse().unwrap()));
        assert!(!l.accepted("::ffff:127.0.0.5".parse().unwrap()));
        let dual = listener("::", 80, 0, 4);
        assert!(dual.accepted("::ffff:127.0.0.5".parse().unwrap()));
        assert!(!dual.accepted("127.0.0.5".parse().unwrap()));
        assert!(!listener("127.0.0.1", 80, 0, 4).accepted("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn stable_label_stems() {
        let v4 = listener("127.0.0.1", 8080, 0, 4);
        let v6 = listener("::1", 8080, 0, 4);
        let other = listener("0.0.0.0", 9090, 0, 4);
        assert_eq!(stems(std::slice::from_ref(&v4), None), ["8080"]);
        assert_eq!(stems(std::slice::from_ref(&v4), Some("web")), ["web"]);
        assert_eq!(
            stems(&[v4.clone(), v6.clone(), other.clone()], None),
            ["8080_ipv4", "8080_ipv6", "9090"]
        );
        assert_eq!(
            stems(&[v4.clone(), other.clone()], Some("web")),
            ["web_8080", "web_9090"]
        );
        let v4b = listener("127.0.0.2", 8080, 0, 4);
        assert_eq!(
            stems(&[v4, v4b, v6], None),
            ["8080_ipv4", "8080_ipv4_2", "8080_ipv6"]
        );
    }

    #[test]
    fn reuseport_groups_get_distinct_state_keys() {
        let a = listener("127.0.0.1", 8080, 0, 4);
        let b = Listener {
            inode: 2,
            ..a.clone()
        };
        let v6 = listener("::1", 8080, 0, 4);
        assert_eq!(
            state_keys(&[a, b, v6]),
            ["127.0.0.1:8080", "127.0.0.1:8080#2", "[::1]:8080"]
        );
    }

    #[test]
    fn deltas_across_runs() {
        let mut saved = Saved::default();
        let host = |o, d| {
            Some(HostCounters {
                listen_overflows: o,
                listen_drops: d,
            })
        };
        let mut l = listener("127.0.0.1", 8080, 0, 4);
        l.drops = Some(10);
        let first = deltas(
            &mut saved,
            "boot1",
            host(100, 120),
            std::slice::from_ref(&l),
        );
        assert_eq!(first.listeners["127.0.0.1:8080"], None);
        assert_eq!(first.host, None);
        l.drops = Some(16);
        let second = deltas(
            &mut saved,
            "boot1",
            host(108, 130),
            std::slice::from_ref(&l),
        );
        assert_eq!(second.listeners["127.0.0.1:8080"], Some(6));
        assert_eq!(second.host, host(8, 10));
        // The service restarted: a new socket; its drops are all new.
        l.inode = 2;
        l.drops = Some(3);
        let third = deltas(
            &mut saved,
            "boot1",
            host(108, 130),
            std::slice::from_ref(&l),
        );
        assert_eq!(third.listeners["127.0.0.1:8080"], Some(3));
        // A reboot: a new baseline.
        let fourth = deltas(&mut saved, "boot2", host(1, 1), std::slice::from_ref(&l));
        assert_eq!(
            (fourth.listeners["127.0.0.1:8080"], fourth.host),
            (None, None)
        );
        assert_eq!(saved.listeners.len(), 1);
        // A run without the counter (the /proc fallback) keeps the baseline.
        l.drops = None;
        deltas(&mut saved, "boot2", None, std::slice::from_ref(&l));
        assert_eq!(saved.listeners["127.0.0.1:8080"], (2, 3));
    }

    #[test]
    fn diagnosis_names_the_owner_at_its_limit() {
        use procguard_common::proc::Rlimit;
        let l = listener("127.0.0.1", 8080, 129, 128);
        let mut owners = BTreeMap::new();
        owners.insert(
            1,
            vec![Owner {
                pid: 2100,
                name: "node".into(),
                fds: Some(1024),
                nofile: Some(Rlimit {
                    soft: Some(1024),
                    hard: Some(1024),
                }),
            }],
        );
        assert_eq!(
            diagnose(&[l], &owners).unwrap().full(),
            "accept queue 129/128 full; owner node[2100] at 1024/1024 open files \u{2014} accept() is likely failing with EMFILE"
        );
        let quiet = listener("127.0.0.1", 8080, 0, 128);
        assert_eq!(
            diagnose(&[quiet], &BTreeMap::new()).unwrap().full(),
            "accept queue 0/128"
        );
        assert_eq!(diagnose(&[], &owners), None);
    }
}
