//! Evaluation: a pure function of what one run saw (an [`Observation`]), the options and
//! the state the last run left, giving findings and perfdata in a [`Report`]; the next
//! state is another pure function of the same. Nothing here reads the system, so every
//! rule is tested on made-up observations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use procguard_common::number::human;
use procguard_common::{PerfData, Range, Report, Status, Thresholds, Uom};
use serde::{Deserialize, Serialize};

use crate::acquire::{Observation, Source};
use crate::args::Args;
use crate::listener::{state_keys, stems, Listener};
use crate::owner::{self, Owner};
use crate::probe::{Method, Outcome, Probe};
use procguard_common::remediation;

/// What is kept between runs to turn counters into deltas.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Saved {
    #[serde(default)]
    boot_id: String,
    #[serde(default)]
    host: Option<HostCounters>,
    /// Per listener state key: its socket inode and drop count.
    #[serde(default)]
    listeners: BTreeMap<String, (u64, u64)>,
}

/// The `TcpExt` counters of the host (or network namespace).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostCounters {
    /// `TcpExt` `ListenOverflows`.
    pub listen_overflows: u64,
    /// `TcpExt` `ListenDrops`.
    pub listen_drops: u64,
}

/// The state the last run left, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// The saved counters; `None` when the state store could not be used.
    pub saved: Option<Saved>,
    /// A note about the state (a corrupt file moved aside).
    pub note: Option<String>,
    /// Why the state store could not be used.
    pub error: Option<String>,
}

/// New drops since the last run; `None` = first run (a baseline) or a counter reset.
#[derive(Debug, Default, PartialEq, Eq)]
struct Deltas {
    listeners: BTreeMap<String, Option<u64>>,
    host: Option<HostCounters>,
}

/// The drops counted since `saved` was stored.
fn deltas(saved: &Saved, obs: &Observation) -> Deltas {
    let same_boot = !saved.boot_id.is_empty() && saved.boot_id == obs.boot_id;
    let mut out = Deltas::default();
    for (l, key) in obs.listeners.iter().zip(state_keys(&obs.listeners)) {
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
    out.host = match (saved.host, obs.host) {
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
    out
}

/// The state to keep for the next run: the counters now (those read after a probe whose
/// SYN was dropped, where there are: the probe's own drops are not news). Only the
/// listeners seen now are kept, so the state stays small; one whose counter could not be
/// read this time keeps its old baseline.
#[must_use]
pub fn next_state(saved: &Saved, obs: &Observation) -> Saved {
    let (after, host_after) = match &obs.after_probe {
        Some((l, h)) => (Some(l), *h),
        None => (None, None),
    };
    let listeners = obs
        .listeners
        .iter()
        .zip(state_keys(&obs.listeners))
        .filter_map(|(l, key)| {
            let drops = after.and_then(|a| a.get(&l.inode).copied()).or(l.drops);
            let value = drops
                .map(|d| (l.inode, d))
                .or_else(|| saved.listeners.get(&key).copied())?;
            Some((key, value))
        })
        .collect();
    Saved {
        boot_id: obs.boot_id.clone(),
        host: host_after.or(obs.host),
        listeners,
    }
}

/// A run's verdict, and whether it would say more with the owners of the listeners.
#[derive(Debug)]
pub struct Evaluation {
    /// Findings, perfdata and long output.
    pub report: Report,
    /// Something is wrong (or -v) and the owners have not been looked up yet.
    pub wants_owners: bool,
}

/// The verdict on `obs`.
pub fn evaluate(obs: &Observation, args: &Args, prior: &Prior) -> Evaluation {
    let mut report = obs.notes.clone();
    if obs.selected.as_ref().is_some_and(Vec::is_empty) {
        // "not running" is already in the notes.
        return Evaluation {
            report,
            wants_owners: false,
        };
    }
    // An unusable state store costs the drop deltas only: a detail line, never the verdict
    // (a healthy listener stays OK, with its own summary).
    if let Some(e) = &prior.error {
        report.detail(format!("drops not compared with the last run: {e}"));
    }
    let deltas = prior
        .saved
        .as_ref()
        .map(|s| deltas(s, obs))
        .unwrap_or_default();
    let label = args
        .common
        .label
        .clone()
        .or_else(|| args.select.stable_label());
    let no_owners = BTreeMap::new();
    let mut attach = Attach {
        listeners: &obs.listeners,
        owners: obs.owners.as_ref().unwrap_or(&no_owners),
        done: BTreeSet::new(),
    };
    let mut worst = Status::Ok;
    if let Some((url, p)) = &obs.probe {
        // The probe's failure is explained by the listener it went to, and no other.
        let probed = obs.listeners.iter().find(|l| Some(l.inode) == obs.probed);
        let failed = probe_failure(args, p).is_some();
        let why = probed
            .filter(|_| failed)
            .and_then(|l| attach.take(Status::Critical, Some(l), false));
        worst = probe_finding(&mut report, args, url, p, why.as_deref(), label.as_deref());
    }
    if let Some(m) = missing(obs, args) {
        report.add(Status::Critical, m);
    }
    let listeners = judge_listeners(
        &mut report,
        obs,
        args,
        &deltas,
        label.as_deref(),
        &mut attach,
    );
    let host = judge_host(&mut report, obs, args, &deltas, &mut attach);
    let worst = worst.worse(listeners).worse(host);
    let wants_owners = obs.owners.is_none()
        && !obs.listeners.is_empty()
        && (worst != Status::Ok || args.common.verbose > 0);
    details(&mut report, obs, prior);
    report.ok_summary(ok_summary(
        &obs.listeners,
        obs.probe.as_ref().map(|(_, p)| p),
    ));
    Evaluation {
        report,
        wants_owners,
    }
}

/// "Nothing listens on ..." / "... holds no TCP listener", when so. (A `--unix PATH` with
/// no listener is said where it is looked up, with the reason.)
fn missing(obs: &Observation, args: &Args) -> Option<String> {
    let tcp = obs.listeners.iter().any(|l| l.unix.is_none());
    match &obs.selected {
        // Reading a selected process failed: that is already said, and says more.
        Some(_) if !obs.notes.findings().is_empty() => None,
        Some(_) if !obs.listeners.is_empty() => None,
        Some(who) => Some(format!(
            "{} holds no {}",
            who.join(", "),
            match (&args.unix, obs.target.port) {
                _ if args.unix_only => "Unix stream listener".to_string(),
                (Some(path), None) => format!("listener on {path}"),
                (_, Some(p)) => format!("TCP listener on port {p}"),
                (None, None) => "TCP listener".to_string(),
            }
        )),
        // Only a Unix listener was asked for.
        None if tcp || (args.unix.is_some() && obs.target.port.is_none()) => None,
        None => Some(format!("nothing listens on {}", obs.target.describe())),
    }
}

/// Says why, once per listener: the first finding that is not OK about a listener gets
/// its diagnosis (its queue figures, unless the finding quotes them already, and its
/// holders); a listener whose diagnosis the probe's failure carries gets nothing more.
struct Attach<'a> {
    listeners: &'a [Listener],
    owners: &'a BTreeMap<u64, Vec<Owner>>,
    done: BTreeSet<u64>,
}

impl Attach<'_> {
    /// What to append to a finding of `status` about `listener` (none: about the host,
    /// explained by the listener that looks worst).
    fn take(
        &mut self,
        status: Status,
        listener: Option<&Listener>,
        quotes_queue: bool,
    ) -> Option<String> {
        let l = listener.or_else(|| worst_listener(self.listeners, self.owners))?;
        if status == Status::Ok || !self.done.insert(l.inode) {
            return None;
        }
        let holders = self
            .owners
            .get(&l.inode)
            .and_then(|os| owner::holders_words(os));
        match (quotes_queue, holders) {
            (true, holders) => holders,
            (false, Some(h)) => Some(format!("{}; {h}", l.queue_words())),
            (false, None) => Some(l.queue_words()),
        }
    }
}

/// The listener that looks worst: full first, then one with a holder at its limit, then
/// the fullest.
fn worst_listener<'a>(
    listeners: &'a [Listener],
    owners: &BTreeMap<u64, Vec<Owner>>,
) -> Option<&'a Listener> {
    let at_limit = |l: &Listener| {
        owners
            .get(&l.inode)
            .is_some_and(|o| o.iter().any(Owner::at_fd_limit))
    };
    listeners.iter().max_by_key(|l| {
        (
            l.is_full(),
            at_limit(l),
            l.backlog
                .map_or(0, |b| u64::from(l.queue) * 1000 / u64::from(b.max(1))),
        )
    })
}

/// Queue, drops and established connections of each listener.
fn judge_listeners(
    report: &mut Report,
    obs: &Observation,
    args: &Args,
    deltas: &Deltas,
    label: Option<&str>,
    attach: &mut Attach<'_>,
) -> Status {
    let mut worst = Status::Ok;
    let stems = stems(&obs.listeners, label);
    let keys = state_keys(&obs.listeners);
    for ((l, stem), key) in obs.listeners.iter().zip(&stems).zip(&keys) {
        let backlog = l.backlog.map(f64::from);
        let q = Thresholds {
            warning: args.queue_warning.resolve(backlog),
            critical: args.queue_critical.resolve(backlog),
        };
        let queue = f64::from(l.queue);
        let perf = PerfData::new(&format!("{stem}_queue"), queue)
            .min(0.0)
            .max(backlog.map(|b| b + 1.0));
        let status = report.metric_worded(queue, &q, perf, |j| {
            let text = format!("{} {}", l.endpoint(), l.queue_words());
            // "5/4 full" says more than "(critical > 4)".
            let text = if l.is_full() { text } else { j.annotate(&text) };
            explained(text, attach.take(j.status, Some(l), true))
        });
        worst = worst.worse(status);
        report.perf(match l.backlog {
            Some(b) => PerfData::new(&format!("{stem}_backlog"), f64::from(b)),
            None => PerfData::unknown(&format!("{stem}_backlog")),
        });
        worst = worst.worse(judge_drops(
            report,
            args,
            l,
            stem,
            deltas.listeners.get(key),
            attach,
        ));
        established_perf(report, obs, l, stem);
    }
    worst
}

/// The drop thresholds: at least N new drops.
fn drop_thresholds(args: &Args) -> Thresholds {
    Thresholds {
        warning: Some(Range::above(num(args.drops_warning.saturating_sub(1)))),
        critical: Some(Range::above(num(args.drops_critical.saturating_sub(1)))),
    }
}

/// The listener's drop counter, and its new drops since the last run against the drop
/// thresholds (perfdata `STEM_new_drops`, with the thresholds).
fn judge_drops(
    report: &mut Report,
    args: &Args,
    l: &Listener,
    stem: &str,
    delta: Option<&Option<u64>>,
    attach: &mut Attach<'_>,
) -> Status {
    // A full Unix listener drops nothing: its clients wait in connect() or get EAGAIN.
    if l.unix.is_some() {
        return Status::Ok;
    }
    let t = drop_thresholds(args);
    let new_label = format!("{stem}_new_drops");
    let Some(d) = l.drops else {
        report.perf(PerfData::unknown(&format!("{stem}_drops")));
        return Status::Ok;
    };
    report.perf(PerfData::new(&format!("{stem}_drops"), num(d)).uom(Uom::Counter));
    let Some(new) = delta.copied().flatten() else {
        report.perf(PerfData::unknown(&new_label).thresholds(&t));
        report.verbose_detail(format!(
            "{} drops: {d} in all; first run, baseline saved",
            l.endpoint()
        ));
        return Status::Ok;
    };
    let text = format!(
        "{} dropped {new} connection(s) since the last run ({d} in all)",
        l.endpoint()
    );
    let perf = PerfData::new(&new_label, num(new)).min(0.0);
    report.metric_worded(num(new), &t, perf, |j| {
        explained(j.annotate(&text), attach.take(j.status, Some(l), false))
    })
}

/// A finding's text followed by its diagnosis, if it gets one.
fn explained(text: String, why: Option<String>) -> String {
    match why {
        Some(why) => format!("{text}; {why}"),
        None => text,
    }
}

/// `STEM_established`: the connections accepted from this listener.
fn established_perf(report: &mut Report, obs: &Observation, l: &Listener, stem: &str) {
    let label = format!("{stem}_established");
    match obs.established.get(&l.port) {
        Some(Ok(addrs)) => {
            // Only connections to this listener's address count (a client socket elsewhere
            // may use the same number as its own port).
            let n = addrs.iter().filter(|a| l.accepted(**a)).count();
            report.perf(PerfData::new(&label, num(u64::try_from(n).unwrap_or(u64::MAX))).min(0.0));
        }
        Some(Err(e)) => {
            report.perf(PerfData::unknown(&label));
            report.verbose_detail(format!("established connections: {e}"));
        }
        None => {}
    }
}

/// Host-wide listen overflows: graphs and text; judged against the drop thresholds only
/// where the listeners' own counters are missing (the /proc fallback), since every
/// listener on the host raises them.
fn judge_host(
    report: &mut Report,
    obs: &Observation,
    args: &Args,
    deltas: &Deltas,
    attach: &mut Attach<'_>,
) -> Status {
    let Some(h) = obs.host else {
        return Status::Ok;
    };
    report.perf(PerfData::new("listen_overflows", num(h.listen_overflows)).uom(Uom::Counter));
    report.perf(PerfData::new("listen_drops", num(h.listen_drops)).uom(Uom::Counter));
    let Some(d) = deltas.host else {
        return Status::Ok;
    };
    let text = format!(
        "host TcpExt: {} ListenOverflows, {} ListenDrops since the last run",
        d.listen_overflows, d.listen_drops
    );
    let own_counter = obs.listeners.iter().any(|l| l.drops.is_some());
    if own_counter || obs.listeners.is_empty() {
        report.verbose_detail(text);
        return Status::Ok;
    }
    let new = num(d.listen_drops);
    let perf = PerfData::new("new_listen_drops", new).min(0.0);
    report.metric_worded(new, &drop_thresholds(args), perf, |j| {
        explained(j.annotate(&text), attach.take(j.status, None, false))
    })
}

/// Long output: who holds each listener, what could not be known, the state's notes.
fn details(report: &mut Report, obs: &Observation, prior: &Prior) {
    if let Some(owners) = &obs.owners {
        for l in &obs.listeners {
            match owners.get(&l.inode).filter(|o| !o.is_empty()) {
                Some(os) => {
                    let who: Vec<String> = os.iter().map(Owner::describe).collect();
                    report.verbose_detail(format!("{} held by {}", l.endpoint(), who.join(", ")));
                    // A holder at its limit: where the limit came from and who can raise it.
                    if let Some(origin) = os.iter().find_map(|o| o.origin.as_ref()) {
                        report.detail(origin.story());
                        report.detail(remediation::fix(origin, None).unwrap_or_default());
                    }
                }
                None => report.verbose_detail(format!(
                    "{}: no process found holding it (other users' processes need root or CAP_SYS_PTRACE; other PID namespaces are not visible)",
                    l.endpoint()
                )),
            }
        }
    }
    if obs.source == Source::ProcNetTcp && obs.listeners.iter().any(|l| l.backlog.is_none()) {
        report.verbose_detail(
            "the backlog is unknown without sock_diag: give --backlog N for the percent thresholds",
        );
    }
    report.verbose_detail(match (&obs.netns, obs.source) {
        (None, _) => "network namespace: the plugin's own".to_string(),
        (Some((_, ns)), Source::SockDiag) => {
            format!("network namespace: {ns}, read with sock_diag inside it")
        }
        (Some((_, ns)), Source::ProcNetTcp) => format!("network namespace: {ns}"),
    });
    if let Some(note) = &prior.note {
        report.detail(note.clone());
    }
    if let Some(note) = &obs.fallback {
        report.verbose_detail(note.clone());
    }
}

/// The probe's finding and its timings (perfdata `time`, `time_connect`,
/// `time_firstbyte`, prefixed with the label, if any). Returns its state.
fn probe_finding(
    report: &mut Report,
    args: &Args,
    url: &str,
    p: &Probe,
    diagnosis: Option<&str>,
    label: Option<&str>,
) -> Status {
    let prefix = |name: &str| label.map_or_else(|| name.to_string(), |l| format!("{l}_{name}"));
    let time_thresholds = Thresholds {
        warning: args.thresholds.warning.map(|t| t.range()),
        critical: args.thresholds.critical.map(|t| t.range()),
    };
    let line = format!("probe: {} {url}", method_name(args.method));
    let status = if let Some(text) = probe_failure(args, p) {
        let text = diagnosis.map_or(text.clone(), |d| format!("{text}; {d}"));
        report.add(Status::Critical, text);
        // The URL is on its own line: on line 1 it could push the diagnosis past the
        // ~200 bytes that survive.
        report.detail(line);
        report.perf(PerfData::unknown(&prefix("time")).thresholds(&time_thresholds));
        Status::Critical
    } else {
        let total = p.total.as_secs_f64();
        let slow = if time_thresholds.evaluate(total) == Status::Ok {
            ""
        } else {
            "slow response: "
        };
        let s = if let Outcome::Status(s) = p.outcome {
            s
        } else {
            0
        };
        let text = format!("{slow}HTTP {s} in {}s", secs(p.total));
        report.verbose_detail(line);
        let perf = PerfData::new(&prefix("time"), micros(p.total))
            .uom(Uom::Seconds)
            .min(0.0);
        report.metric(total, &time_thresholds, text, perf)
    };
    for (name, d) in [
        ("time_connect", p.connect),
        ("time_firstbyte", p.first_byte),
    ] {
        // An unknown value is a bare `U` (no unit: `Us` is not in the grammar).
        report.perf(d.map_or_else(
            || PerfData::unknown(&prefix(name)),
            |d| {
                PerfData::new(&prefix(name), micros(d))
                    .uom(Uom::Seconds)
                    .min(0.0)
            },
        ));
    }
    status
}

/// A count as a perfdata or threshold number: counts here (connections, drops) stay far
/// below 2^52, where f64 is exact.
#[allow(clippy::cast_precision_loss)]
fn num(n: u64) -> f64 {
    n as f64
}

/// Seconds, rounded to the microsecond.
fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// The probe's failure in words, or `None` for an expected status.
fn probe_failure(args: &Args, p: &Probe) -> Option<String> {
    let timeout = secs(args.probe_timeout);
    let connect = p.connect.map(secs).unwrap_or_default();
    Some(match &p.outcome {
        Outcome::Status(s) if args.expect_status.contains(*s) => return None,
        Outcome::Status(s) => format!("HTTP {s} (expected {})", args.expect_status),
        Outcome::Refused => "connection refused".to_string(),
        Outcome::ConnectTimeout => format!("connect timeout after {timeout}s"),
        Outcome::NoResponse => format!("connected but no response in {timeout}s"),
        Outcome::Reset => format!("connection reset before a response (connected in {connect}s)"),
        Outcome::Closed => {
            format!("connection closed before a response (connected in {connect}s)")
        }
        Outcome::Incomplete => format!("response incomplete after {timeout}s"),
        Outcome::Tls(f) => f.to_string(),
        Outcome::Failed(why) => format!("probe failed: {why}"),
    })
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
    }
}

/// Seconds for the text: milliseconds, or a tenth of one below 10 ms (loopback is fast).
fn secs(d: Duration) -> String {
    let decimals = if d < Duration::from_millis(10) { 4 } else { 3 };
    human(d.as_secs_f64(), decimals)
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
    use clap::Parser;
    use procguard_common::proc::limits::{FdUsage, Rlimit};

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
            unix: None,
        }
    }

    fn observed(listeners: Vec<Listener>) -> Observation {
        Observation {
            listeners,
            boot_id: "boot1".into(),
            ..Observation::default()
        }
    }

    fn owner(pid: i32, fds: u64, soft: u64) -> Owner {
        Owner {
            pid,
            name: "node".into(),
            ppid: Some(1),
            usage: Some(FdUsage {
                fds,
                nofile: Rlimit {
                    soft: Some(soft),
                    hard: Some(4096),
                },
            }),
            origin: None,
        }
    }

    fn line1(e: &Evaluation, verbosity: u8) -> String {
        let (out, _) = e.report.render("HTTP_BACKLOG", verbosity);
        out.lines().next().unwrap().to_string()
    }

    fn probe(outcome: Outcome, connect: Option<u64>) -> Probe {
        Probe {
            outcome,
            connect: connect.map(Duration::from_micros),
            first_byte: None,
            total: Duration::from_secs(1),
        }
    }

    #[test]
    fn deltas_across_runs() {
        let host = |o, d| {
            Some(HostCounters {
                listen_overflows: o,
                listen_drops: d,
            })
        };
        let mut l = listener("127.0.0.1", 8080, 0, 4);
        l.drops = Some(10);
        let mut o = observed(vec![l.clone()]);
        o.host = host(100, 120);
        let saved = Saved::default();
        let first = deltas(&saved, &o);
        assert_eq!(first.listeners["127.0.0.1:8080"], None);
        assert_eq!(first.host, None);
        let saved = next_state(&saved, &o);
        o.listeners[0].drops = Some(16);
        o.host = host(108, 130);
        let second = deltas(&saved, &o);
        assert_eq!(second.listeners["127.0.0.1:8080"], Some(6));
        assert_eq!(second.host, host(8, 10));
        let saved = next_state(&saved, &o);
        // The service restarted: a new socket; its drops are all new.
        o.listeners[0].inode = 2;
        o.listeners[0].drops = Some(3);
        assert_eq!(deltas(&saved, &o).listeners["127.0.0.1:8080"], Some(3));
        let saved = next_state(&saved, &o);
        // A reboot: a new baseline.
        o.boot_id = "boot2".into();
        o.host = host(1, 1);
        let fourth = deltas(&saved, &o);
        assert_eq!(
            (fourth.listeners["127.0.0.1:8080"], fourth.host),
            (None, None)
        );
        let saved = next_state(&saved, &o);
        assert_eq!(saved.listeners.len(), 1);
        // A run without the counter (the /proc fallback) keeps the baseline.
        o.listeners[0].drops = None;
        o.host = None;
        let saved = next_state(&saved, &o);
        assert_eq!(saved.listeners["127.0.0.1:8080"], (2, 3));
    }

    #[test]
    fn the_probes_own_dropped_syns_are_not_new_drops_next_run() {
        let mut l = listener("127.0.0.1", 8080, 5, 4);
        l.drops = Some(10);
        let mut o = observed(vec![l]);
        o.probe = Some((
            "http://127.0.0.1:8080/".into(),
            probe(Outcome::ConnectTimeout, None),
        ));
        // Its SYN and one retransmission were dropped while it waited.
        o.after_probe = Some((BTreeMap::from([(1, 12)]), None));
        let saved = next_state(&Saved::default(), &o);
        assert_eq!(saved.listeners["127.0.0.1:8080"], (1, 12));
        // Next run, nobody else was dropped: no new drops.
        let mut next = observed(vec![listener("127.0.0.1", 8080, 0, 4)]);
        next.listeners[0].drops = Some(12);
        let prior = Prior {
            saved: Some(saved),
            ..Prior::default()
        };
        let e = evaluate(&next, &args(&["--port", "8080"]), &prior);
        assert_eq!(e.report.status(), Status::Ok);
        assert_eq!(
            line1(&e, 0),
            "HTTP_BACKLOG OK - 127.0.0.1:8080 accept queue 0/4 | '8080_queue'=0;3;4;0;5 '8080_backlog'=4 '8080_drops'=12c '8080_new_drops'=0;0;99;0"
        );
    }

    #[test]
    fn new_drops_are_judged_and_their_thresholds_are_in_perfdata() {
        let mut l = listener("127.0.0.1", 8080, 0, 4);
        l.drops = Some(10);
        let o = observed(vec![l.clone()]);
        let prior = Prior {
            saved: Some(next_state(&Saved::default(), &o)),
            ..Prior::default()
        };
        let mut now = o.clone();
        now.listeners[0].drops = Some(15);
        let e = evaluate(
            &now,
            &args(&["--port", "8080", "--drops-critical", "5"]),
            &prior,
        );
        assert!(e.wants_owners);
        assert_eq!(
            line1(&e, 0),
            "HTTP_BACKLOG CRITICAL - 127.0.0.1:8080 dropped 5 connection(s) since the last run (15 in all) (critical > 4); accept queue 0/4 | '8080_queue'=0;3;4;0;5 '8080_backlog'=4 '8080_drops'=15c '8080_new_drops'=5;0;4;0"
        );
        // With the owner known: the diagnosis follows the finding.
        now.owners = Some(BTreeMap::from([(1, vec![owner(2100, 40, 1024)])]));
        let e = evaluate(
            &now,
            &args(&["--port", "8080", "--drops-critical", "5"]),
            &prior,
        );
        assert!(!e.wants_owners);
        assert!(line1(&e, 0).contains(
            "(15 in all) (critical > 4); accept queue 0/4; owner node[2100] 40/1024 open files |"
        ));
    }

    #[test]
    fn vv_says_how_the_queue_and_the_drops_were_judged() {
        // docs/contract.md §2.4: -vv adds one line per thresholded value.
        let mut l = listener("127.0.0.1", 8080, 5, 4);
        l.drops = Some(10);
        let o = observed(vec![l]);
        let prior = Prior {
            saved: Some(next_state(&Saved::default(), &o)),
            ..Prior::default()
        };
        let mut now = o.clone();
        now.listeners[0].drops = Some(15);
        now.owners = Some(BTreeMap::from([(1, vec![owner(2100, 1024, 1024)])]));
        let e = evaluate(&now, &args(&["--port", "8080"]), &prior);
        let (out, _) = e.report.render("HTTP_BACKLOG", 2);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines.contains(&"8080_queue = 5 (warning 3, critical 4) -> CRITICAL"),
            "{out}"
        );
        assert!(
            lines.contains(&"8080_new_drops = 5 (warning 0, critical 99) -> WARNING"),
            "{out}"
        );
        // Line 1 is the same at every level; the full queue keeps "full" without the range.
        assert_eq!(lines[0], line1(&e, 0));
        assert!(
            lines[0].starts_with("HTTP_BACKLOG CRITICAL - 127.0.0.1:8080 accept queue 5/4 full; owner node[2100] at 1024/1024 open files"),
            "{out}"
        );
        assert!(
            lines.contains(
                &"[WARNING] 127.0.0.1:8080 dropped 5 connection(s) since the last run (15 in all) (warning > 0)"
            ),
            "{out}"
        );
    }

    #[test]
    fn vv_says_how_the_host_drops_were_judged() {
        // The /proc fallback: no per-listener counter, the host's drops are judged.
        let mut l = listener("127.0.0.1", 8080, 0, 4);
        l.drops = None;
        let mut o = observed(vec![l]);
        o.host = Some(HostCounters {
            listen_overflows: 1,
            listen_drops: 1,
        });
        let prior = Prior {
            saved: Some(next_state(&Saved::default(), &o)),
            ..Prior::default()
        };
        o.host = Some(HostCounters {
            listen_overflows: 3,
            listen_drops: 3,
        });
        let e = evaluate(&o, &args(&["--port", "8080"]), &prior);
        let (out, _) = e.report.render("HTTP_BACKLOG", 2);
        assert!(
            out.lines()
                .any(|l| l == "new_listen_drops = 2 (warning 0, critical 99) -> WARNING"),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l == "8080_queue = 0 (warning 3, critical 4) -> OK"),
            "{out}"
        );
    }

    #[test]
    fn full_queue_with_the_owner_at_its_limit() {
        let o = observed(vec![listener("127.0.0.1", 8080, 5, 4)]);
        let a = args(&["--port", "8080"]);
        let e = evaluate(&o, &a, &Prior::default());
        assert!(e.wants_owners);
        let mut o = o;
        o.owners = Some(BTreeMap::from([(1, vec![owner(2100, 1024, 1024)])]));
        let e = evaluate(&o, &a, &Prior::default());
        assert_eq!(e.report.status(), Status::Critical);
        assert!(
            line1(&e, 0).starts_with("HTTP_BACKLOG CRITICAL - 127.0.0.1:8080 accept queue 5/4 full; owner node[2100] at 1024/1024 open files \u{2014} accept() is likely failing with EMFILE | "),
            "{}",
            line1(&e, 0)
        );
    }

    #[test]
    fn probe_failure_leads_with_the_queue_and_owner() {
        let mut o = observed(vec![listener("127.0.0.1", 8080, 4, 4)]);
        o.probe = Some((
            "http://127.0.0.1:8080/".into(),
            probe(Outcome::NoResponse, Some(265)),
        ));
        o.probed = Some(1);
        o.owners = Some(BTreeMap::from([(1, vec![owner(2100, 32, 32)])]));
        let a = args(&[
            "--port",
            "8080",
            "--probe",
            "--probe-timeout",
            "1",
            "-t",
            "8",
        ]);
        let e = evaluate(&o, &a, &Prior::default());
        let (out, status) = e.report.render("HTTP_BACKLOG", 0);
        assert_eq!(status, Status::Critical);
        assert_eq!(
            out,
            "HTTP_BACKLOG CRITICAL - connected but no response in 1s; accept queue 4/4; owner node[2100] at 32/32 open files \u{2014} accept() is likely failing with EMFILE (+1 more) | 'time'=U 'time_connect'=0.000265s;;;0 'time_firstbyte'=U '8080_queue'=4;3;4;0;5 '8080_backlog'=4 '8080_drops'=0c '8080_new_drops'=U;0;99\n[CRITICAL] connected but no response in 1s; accept queue 4/4; owner node[2100] at 32/32 open files \u{2014} accept() is likely failing with EMFILE\n[WARNING] 127.0.0.1:8080 accept queue 4/4 (warning > 3)\nprobe: GET http://127.0.0.1:8080/"
        );
    }

    #[test]
    fn nothing_listens_and_unusable_state() {
        let mut o = observed(vec![]);
        o.target = crate::target::Target {
            port: Some(8080),
            addresses: vec!["::1".parse().unwrap()],
        };
        let prior = Prior {
            error: Some("cannot use state directory /x: Permission denied".into()),
            ..Prior::default()
        };
        let e = evaluate(&o, &args(&["--port", "8080", "--address", "::1"]), &prior);
        assert!(!e.wants_owners);
        let (out, status) = e.report.render("HTTP_BACKLOG", 0);
        assert_eq!(status, Status::Critical);
        assert!(
            out.starts_with("HTTP_BACKLOG CRITICAL - nothing listens on [::1]:8080"),
            "{out}"
        );
        assert!(out.contains("\ndrops not compared with the last run: cannot use"));
        // A healthy listener stays OK with its own summary; the state costs a detail line.
        let o = observed(vec![listener("127.0.0.1", 8080, 0, 128)]);
        let e = evaluate(&o, &args(&["--port", "8080"]), &prior);
        let (out, status) = e.report.render("HTTP_BACKLOG", 0);
        assert_eq!(status, Status::Ok, "{out}");
        assert!(
            out.starts_with("HTTP_BACKLOG OK - 127.0.0.1:8080 accept queue 0/128"),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l == "drops not compared with the last run: cannot use state directory /x: Permission denied"),
            "{out}"
        );
    }

    #[test]
    fn the_probe_is_explained_by_the_listener_it_went_to() {
        // `--name nginx --probe`: port 80 is probed and fails; port 18480's queue is full.
        let mut l80 = listener("0.0.0.0", 80, 0, 511);
        l80.inode = 80;
        let mut l18480 = listener("0.0.0.0", 18480, 17, 16);
        l18480.inode = 18480;
        let mut o = observed(vec![l80, l18480]);
        o.probe = Some((
            "http://127.0.0.1:80/".into(),
            probe(Outcome::NoResponse, Some(100)),
        ));
        o.probed = Some(80);
        o.owners = Some(BTreeMap::from([
            (80, vec![owner(7, 10, 1024)]),
            (18480, vec![owner(7, 10, 1024)]),
        ]));
        let a = args(&["--name", "nginx", "--probe", "--probe-timeout", "1"]);
        let (out, _) = evaluate(&o, &a, &Prior::default())
            .report
            .render("HTTP_BACKLOG", 0);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("HTTP_BACKLOG CRITICAL - connected but no response in 1s; accept queue 0/511; owner node[7] 10/1024 open files (+1 more) |"),
            "{out}"
        );
        assert_eq!(
            lines[2],
            "[CRITICAL] *:18480 accept queue 17/16 full; owner node[7] 10/1024 open files"
        );
    }
}
