//! What pam_limits would set for a user: limits.conf and limits.d resolved with the module's
//! exact rules (docs/contract.md §11; Linux-PAM modules/pam_limits/pam_limits.c, Debian patch 027).
//!
//! [`resolve`] is a pure function of the files' contents and the user's identity, so the rule
//! table is tested without any real file. The rules, in the order the module applies them:
//! - Lines are read in file order, limits.conf first, then limits.d/*.conf sorted by `strcmp`
//!   of the name (`10-a.conf` before `9-b.conf`). `#` starts a comment anywhere; type, item
//!   and value are lower-cased, the domain is not.
//! - Four fields make a limit line; two fields `<domain> -` make the "no limits" line, which
//!   stops everything and applies **nothing** (not even limits read earlier) when it names the
//!   user or one of its groups by name; anything else is an invalid line, skipped.
//! - Domains: the user name or a uid range (`min:max`, `:uid`, `min:`) are class USER,
//!   `@group` and `@:gid` (any membership) and `@min:max` / `@min:` (primary gid only) are
//!   GROUP, `%...` lines are for maxlogins only, `*` is DEFAULT. A line overwrites a value
//!   when its class is at least as specific as the one that set it, so USER beats GROUP beats
//!   `*` in any order, and among equal classes the last line read wins, across files too.
//! - Type `-` sets soft then hard, but when the soft half is blocked by a more specific
//!   earlier line the hard half is skipped too (the module returns early).
//! - Values: `-1`, `-`, `unlimited`, `infinity` mean no limit (nofile: fs.nr_open instead);
//!   numbers are read like `strtoull(.., 10)` (`10k` is 10, `-5` wraps, no digits is an
//!   error); KB items are multiplied by 1024, cpu minutes by 60, nice maps to 20 - n.
//! - At the end the soft value is clamped to the hard one.
//! - Debian/Ubuntu (patch 027): `*`, `@...` and `%...` lines do not apply to uid 0.

use procguard_common::proc::limits::item_name;
use std::collections::BTreeMap;

use procguard_common::proc::Rlimit;

/// RLIM_INFINITY.
const INF: u64 = u64::MAX;

/// Precedence classes of pam_limits (lower is more specific).
const USER: u8 = 0;
const GROUP: u8 = 1;
const ALLGROUP: u8 = 2;
const ALL: u8 = 3;
const DEFAULT: u8 = 4;
const NONE: u8 = 6;

/// One configuration file's text and the name to show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// Shown in findings: `limits.conf`, `limits.d/90-nofile.conf`.
    pub name: String,
    /// The file's content.
    pub text: String,
}

/// A group the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its gid.
    pub gid: u32,
    /// Its name, when /etc/group has one.
    pub name: Option<String>,
}

/// Who the limits are resolved for: what pam_limits learns from the account database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (`None` when the uid has no passwd entry: only uid ranges can match).
    pub user: Option<String>,
    /// The uid.
    pub uid: u32,
    /// The primary gid (the only one `@min:max` ranges look at).
    pub gid: u32,
    /// All groups, the primary one included.
    pub groups: Vec<Group>,
}

impl Identity {
    fn in_group_named(&self, name: &str) -> bool {
        !name.is_empty() && self.groups.iter().any(|g| g.name.as_deref() == Some(name))
    }

    fn in_gid(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.iter().any(|g| g.gid == gid)
    }
}

/// Which pam_limits: upstream Linux-PAM, or Debian/Ubuntu's (root skips `*`/group lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Upstream: `*` and `@group` lines apply to root too.
    Upstream,
    /// Debian/Ubuntu: only lines naming root (or a uid range with 0) apply to root.
    Debian,
}

/// A line of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRef {
    /// The file's display name.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The line as written (trimmed, comment kept out).
    pub text: String,
}

impl LineRef {
    /// `limits.conf:57 "* soft nofile 500000"`.
    pub fn describe(&self) -> String {
        let text: String = if self.text.chars().count() > 60 {
            format!("{}...", self.text.chars().take(57).collect::<String>())
        } else {
            self.text.clone()
        };
        format!("{}:{} \"{}\"", self.file, self.line, text)
    }
}

/// A value set by a line; `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value in the kernel's units.
    pub value: Option<u64>,
    /// The line that set it last.
    pub line: LineRef,
}

/// What the files set for one item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemSettings {
    /// The soft value and its line, if any line set it.
    pub soft: Option<Setting>,
    /// The hard value and its line, if any line set it.
    pub hard: Option<Setting>,
}

/// The outcome of reading the files for one identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Settings per limits.conf item name (only rlimit items; maxlogins etc. are left out).
    pub items: BTreeMap<&'static str, ItemSettings>,
    /// A matching `<domain> -` line: pam_limits applies no limit at all.
    pub no_limits: Option<LineRef>,
    /// Skipped lines and values pam_limits would log about.
    pub warnings: Vec<String>,
}

impl Resolution {
    /// The limits a session would get for `item`, starting from `start` (the module's
    /// starting values): set halves replace the start, then soft is clamped to hard.
    pub fn effective(&self, item: &str, start: Rlimit) -> Rlimit {
        let Some(s) = self.items.get(item).filter(|_| self.no_limits.is_none()) else {
            return start;
        };
        let soft = s.soft.as_ref().map_or(start.soft, |x| x.value);
        let hard = s.hard.as_ref().map_or(start.hard, |x| x.value);
        Rlimit {
            soft: clamp(soft, hard),
            hard,
        }
    }
}

/// Soft clamped to hard (`None` is unlimited).
fn clamp(soft: Option<u64>, hard: Option<u64>) -> Option<u64> {
    match (soft, hard) {
        (_, None) => soft,
        (None, Some(h)) => Some(h),
        (Some(s), Some(h)) => Some(s.min(h)),
    }
}

/// Items pam_limits knows that are not rlimits (accepted silently, never an expectation).
const OTHER_ITEMS: [&str; 4] = ["maxlogins", "maxsyslogins", "priority", "nonewprivs"];

/// Per item: soft and hard value (u64, INF = unlimited), the class that set each, the line.
#[derive(Default)]
struct Slot {
    soft: Option<(u64, u8, LineRef)>,
    hard: Option<(u64, u8, LineRef)>,
}

fn class_of(x: Option<&(u64, u8, LineRef)>) -> u8 {
    x.map_or(NONE, |(_, c, _)| *c)
}

/// `parse_uid_range`: `None` = no `:` in it, `Err` = malformed.
enum Range {
    None,
    One(u32),
    Min(u32),
    MinMax(u32, u32),
    Err,
}

fn parse_range(domain: &str) -> Range {
    let Some(colon) = domain.find(':') else {
        return Range::None;
    };
    let body = domain.strip_prefix(['@', '%']).unwrap_or(domain);
    let colon_in_body = colon - (domain.len() - body.len());
    let (min, max) = (&body[..colon_in_body], &body[colon_in_body + 1..]);
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (min.is_empty(), max.is_empty()) {
        (true, true) => Range::Err,
        (true, false) => num(max).map_or(Range::Err, Range::One),
        (false, true) => num(min).map_or(Range::Err, Range::Min),
        (false, false) => match (num(min), num(max)) {
            (Some(a), Some(b)) => Range::MinMax(a, b),
            _ => Range::Err,
        },
    }
}

/// `strtoull(text, &end, 10)`: `None` when no digits were read (the module's "wrong limit
/// value"); trailing junk ignored, a leading `-` wraps, overflow saturates to 2^64-1.
pub fn strtoull(text: &str) -> Option<u64> {
    let t = text.trim_start();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: &str = &t[..t.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return None;
    }
    let v = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(if negative && v != u64::MAX {
        v.wrapping_neg()
    } else {
        v
    })
}

/// `strtol` clamped to int, as the module reads nice values.
fn strtol(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return None;
    }
    let v = digits.parse::<i64>().unwrap_or(i64::MAX);
    let v = if negative { -v } else { v };
    Some(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
}

/// Resolves `files` (limits.conf first, then limits.d in strcmp order — see
/// [`sort_limits_d`]) for `who`. `nr_open` replaces "unlimited" for nofile.
pub fn resolve(files: &[ConfFile], who: &Identity, flavor: Flavor, nr_open: u64) -> Resolution {
    let mut slots: BTreeMap<&'static str, Slot> = BTreeMap::new();
    let mut warnings = Vec::new();
    let root = flavor == Flavor::Debian && who.uid == 0;
    for file in files {
        for (idx, raw) in file.text.lines().enumerate() {
            let lineno = idx + 1;
            let line = raw.trim_start();
            let line = line.split('#').next().unwrap_or_default();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            // A line of only spaces before a comment: sscanf reads nothing, pam warns.
            let at = LineRef {
                file: file.name.clone(),
                line: lineno,
                text: line.trim_end().to_string(),
            };
            let domain = fields.first().copied().unwrap_or_default();
            match fields.len() {
                n if n >= 4 => {
                    let ltype = fields[1].to_ascii_lowercase();
                    let item = fields[2].to_ascii_lowercase();
                    let value = fields[3].to_ascii_lowercase();
                    let Some(class) = domain_class(domain, who, root, &mut warnings, &at) else {
                        continue;
                    };
                    process_limit(
                        &mut slots,
                        &mut warnings,
                        class,
                        &ltype,
                        &item,
                        &value,
                        nr_open,
                        &at,
                    );
                }
                2 if fields[1].starts_with('-') => {
                    let by_user = who.user.as_deref() == Some(domain);
                    let by_group = domain.len() > 1
                        && domain.starts_with('@')
                        && !root
                        && who.in_group_named(&domain[1..]);
                    if by_user || by_group {
                        return Resolution {
                            items: BTreeMap::new(),
                            no_limits: Some(at),
                            warnings,
                        };
                    }
                }
                // Where and what was expected, never the line itself: the file may be
                // anything (`--limits-conf /etc/shadow`).
                _ => warnings.push(format!(
                    "invalid line {lineno} in {} - skipped (expected DOMAIN TYPE ITEM VALUE)",
                    file.name
                )),
            }
        }
    }
    let items = slots
        .into_iter()
        .map(|(item, slot)| {
            let conv = |x: Option<(u64, u8, LineRef)>| {
                x.map(|(v, _, line)| Setting {
                    value: (v != INF).then_some(v),
                    line,
                })
            };
            (
                item,
                ItemSettings {
                    soft: conv(slot.soft),
                    hard: conv(slot.hard),
                },
            )
        })
        .collect();
    Resolution {
        items,
        no_limits: None,
        warnings,
    }
}

/// The class a line's domain has for `who`, or `None` when it does not match.
fn domain_class(
    domain: &str,
    who: &Identity,
    root: bool,
    warnings: &mut Vec<String>,
    at: &LineRef,
) -> Option<u8> {
    if who.user.as_deref() == Some(domain) {
        return Some(USER);
    }
    let bad_range = |warnings: &mut Vec<String>| {
        warnings.push(format!(
            "wrong min_uid/gid value in {}:{} - skipped (expected ID, MIN: or MIN:MAX)",
            at.file, at.line
        ));
        None
    };
    if let Some(group) = domain.strip_prefix('@') {
        if root {
            return None;
        }
        return match parse_range(domain) {
            Range::Err => bad_range(warnings),
            Range::One(gid) => who.in_gid(gid).then_some(GROUP),
            Range::MinMax(min, max) => (who.gid >= min && who.gid <= max).then_some(GROUP),
            Range::Min(min) => (who.gid >= min).then_some(GROUP),
            Range::None => who.in_group_named(group).then_some(GROUP),
        };
    }
    if let Some(group) = domain.strip_prefix('%') {
        if root {
            return None;
        }
        return match parse_range(domain) {
            Range::Err => bad_range(warnings),
            Range::One(gid) => who.in_gid(gid).then_some(ALLGROUP),
            Range::Min(_) | Range::MinMax(..) => {
                warnings.push(format!(
                    "range unsupported for %group matching in {}:{} - skipped",
                    at.file, at.line
                ));
                None
            }
            Range::None if group.is_empty() => Some(ALL),
            Range::None => who.in_group_named(group).then_some(ALLGROUP),
        };
    }
    match parse_range(domain) {
        Range::None => (domain == "*" && !root).then_some(DEFAULT),
        Range::One(uid) => (who.uid == uid).then_some(USER),
        Range::MinMax(min, max) => (who.uid >= min && who.uid <= max).then_some(USER),
        Range::Min(min) => (who.uid >= min).then_some(USER),
        Range::Err => bad_range(warnings),
    }
}

/// `process_limit()` for a matching line.
#[allow(clippy::too_many_arguments)]
fn process_limit(
    slots: &mut BTreeMap<&'static str, Slot>,
    warnings: &mut Vec<String>,
    class: u8,
    ltype: &str,
    item: &str,
    value: &str,
    nr_open: u64,
    at: &LineRef,
) {
    let Some(item) = item_name(item) else {
        if !OTHER_ITEMS.contains(&item) {
            warnings.push(format!(
                "unknown limit item in {}:{} - ignored (expected an item of limits.conf(5), e.g. nofile)",
                at.file, at.line
            ));
        }
        return;
    };
    let (soft, hard) = match ltype {
        "soft" => (true, false),
        "hard" => (false, true),
        "-" => (true, true),
        _ => {
            warnings.push(format!(
                "unknown limit type in {}:{} - ignored (expected soft, hard or -)",
                at.file, at.line
            ));
            return;
        }
    };
    let unlimited = item != "nice" && matches!(value, "-1" | "-" | "unlimited" | "infinity");
    let mut v = if unlimited {
        INF
    } else if item == "nice" {
        let Some(n) = strtol(value) else {
            warnings.push(format!(
                "wrong limit value in {}:{} - ignored (expected a number, unlimited or -1)",
                at.file, at.line
            ));
            return;
        };
        (20 - n.clamp(-20, 19)).unsigned_abs() // 1..=40
    } else {
        let Some(n) = strtoull(value) else {
            warnings.push(format!(
                "wrong limit value in {}:{} - ignored (expected a number, unlimited or -1)",
                at.file, at.line
            ));
            return;
        };
        n
    };
    // `%` domains are for maxlogins only: the value was parsed, then the line is dropped.
    if class == ALL || class == ALLGROUP {
        return;
    }
    // limits.conf counts KiB and cpu minutes: the table's scale turns them into the kernel's
    // units (a product past the top is unlimited).
    let scale = procguard_common::proc::limits::item(item).map_or(1, |i| i.conf_scale);
    if item == "nofile" && v == INF {
        v = nr_open;
    } else if v != INF && scale > 1 {
        v = if v >= INF / scale { INF } else { v * scale };
    }
    let slot = slots.entry(item).or_default();
    if soft {
        if class_of(slot.soft.as_ref()) < class {
            return; // blocked: for type "-" the hard half is skipped too
        }
        slot.soft = Some((v, class, at.clone()));
    }
    if hard {
        if class_of(slot.hard.as_ref()) < class {
            return;
        }
        slot.hard = Some((v, class, at.clone()));
    }
}

/// Orders limits.d file names as the module's glob does in the C locale (`strcmp`), keeping
/// only `*.conf` names that do not start with a dot.
// The glob is `*.conf`, case-sensitive like every glob: `X.CONF` is not read.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
pub fn sort_limits_d(mut names: Vec<String>) -> Vec<String> {
    // pam_limits matches the suffix case-sensitively (glob "*.conf").
    #[allow(clippy::case_sensitive_file_extension_comparisons)]
    names.retain(|n| n.ends_with(".conf") && !n.starts_with('.'));
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const NR_OPEN: u64 = 1_048_576;
    const START: Rlimit = Rlimit {
        soft: Some(1024),
        hard: Some(4096),
    };

    fn alice() -> Identity {
        Identity {
            user: Some("alice".into()),
            uid: 1500,
            gid: 1500,
            groups: vec![
                Group {
                    gid: 1500,
                    name: Some("alice".into()),
                },
                Group {
                    gid: 100,
                    name: Some("users".into()),
                },
                Group {
                    gid: 27,
                    name: Some("sudo".into()),
                },
            ],
        }
    }

    fn root() -> Identity {
        Identity {
            user: Some("root".into()),
            uid: 0,
            gid: 0,
            groups: vec![Group {
                gid: 0,
                name: Some("root".into()),
            }],
        }
    }

    fn files(parts: &[(&str, &str)]) -> Vec<ConfFile> {
        parts
            .iter()
            .map(|(n, t)| ConfFile {
                name: n.to_string(),
                text: t.to_string(),
            })
            .collect()
    }

    /// Effective `soft:hard` for `item`.
    fn eff(conf: &[(&str, &str)], who: &Identity, flavor: Flavor, item: &str) -> String {
        resolve(&files(conf), who, flavor, NR_OPEN)
            .effective(item, START)
            .describe()
    }

    /// (name, files, who, flavor, item, expected soft:hard)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        fn() -> Identity,
        Flavor,
        &'static str,
        &'static str,
    );

    use Flavor::{Debian, Upstream};

    const CASES: &[Case] = &[
        ("nothing matches: start values", &[("limits.conf", "bob - nofile 9\n")], alice, Upstream, "nofile", "1024:4096"),
        ("user line", &[("limits.conf", "alice - nofile 8000\n")], alice, Upstream, "nofile", "8000:8000"),
        ("user before * : user wins", &[("limits.conf", "alice - nofile 8000\n* - nofile 500\n")], alice, Upstream, "nofile", "8000:8000"),
        ("* before user: user wins", &[("limits.conf", "* - nofile 500\nalice - nofile 8000\n")], alice, Upstream, "nofile", "8000:8000"),
        ("@group before *: group wins", &[("limits.conf", "@users - nofile 7000\n* - nofile 500\n")], alice, Upstream, "nofile", "7000:7000"),
        ("* before @group: group wins", &[("limits.conf", "* - nofile 500\n@users - nofile 7000\n")], alice, Upstream, "nofile", "7000:7000"),
        ("user before @group: user wins", &[("limits.conf", "alice - nofile 8000\n@users - nofile 7000\n")], alice, Upstream, "nofile", "8000:8000"),
        ("@group before user: user wins", &[("limits.conf", "@users - nofile 7000\nalice - nofile 8000\n")], alice, Upstream, "nofile", "8000:8000"),
        ("two * lines: last wins", &[("limits.conf", "* - nofile 500\n* - nofile 600\n")], alice, Upstream, "nofile", "600:600"),
        ("uid range after user name overrides it", &[("limits.conf", "alice - nofile 8000\n1000:2000 - nofile 9000\n")], alice, Upstream, "nofile", "9000:9000"),
        ("exact :uid is USER class", &[("limits.conf", ":1500 - nofile 9100\n* - nofile 500\n")], alice, Upstream, "nofile", "9100:9100"),
        ("open uid range min:", &[("limits.conf", "1000: - nofile 9200\n")], alice, Upstream, "nofile", "9200:9200"),
        ("uid range not matching", &[("limits.conf", "2000:3000 - nofile 9200\n")], alice, Upstream, "nofile", "1024:4096"),
        ("@:gid matches a supplementary group", &[("limits.conf", "@:100 - nofile 6100\n")], alice, Upstream, "nofile", "6100:6100"),
        ("@min:max looks at the primary gid only", &[("limits.conf", "@90:110 - nofile 6200\n")], alice, Upstream, "nofile", "1024:4096"),
        ("@min:max matching the primary gid", &[("limits.conf", "@1000:2000 - nofile 6300\n")], alice, Upstream, "nofile", "6300:6300"),
        ("%group is ignored for nofile", &[("limits.conf", "%users - nofile 6400\n% - nofile 6500\n")], alice, Upstream, "nofile", "1024:4096"),
        ("limits.d after limits.conf, 10- before 9-", &[("limits.conf", "* - nofile 500\n"), ("limits.d/10-a.conf", "* - nofile 700\n"), ("limits.d/9-b.conf", "* - nofile 800\n")], alice, Upstream, "nofile", "800:800"),
        ("a * in limits.d overrides a * in limits.conf", &[("limits.conf", "* soft nofile 500\n* hard nofile 900\n"), ("limits.d/90-x.conf", "* - nofile 2000\n")], alice, Upstream, "nofile", "2000:2000"),
        ("a * in limits.d does not override a user line", &[("limits.conf", "alice - nofile 8000\n"), ("limits.d/90-x.conf", "* - nofile 2000\n")], alice, Upstream, "nofile", "8000:8000"),
        ("type - sets both; later soft line of same class overrides soft", &[("limits.conf", "* - nofile 3000\n* soft nofile 100\n")], alice, Upstream, "nofile", "100:3000"),
        ("type - quirk: soft blocked by user line, hard skipped too", &[("limits.conf", "alice soft nofile 200\n* - nofile 3000\n")], alice, Upstream, "nofile", "200:4096"),
        ("hard only blocked: soft still set", &[("limits.conf", "alice hard nofile 9000\n* - nofile 3000\n")], alice, Upstream, "nofile", "3000:9000"),
        ("two-field user - line discards everything, even earlier lines", &[("limits.conf", "* - nofile 3000\nalice -\n* - nofile 5000\n")], alice, Upstream, "nofile", "1024:4096"),
        ("two-field @group - line", &[("limits.conf", "* - nofile 3000\n"), ("limits.d/x.conf", "@sudo -\n")], alice, Upstream, "nofile", "1024:4096"),
        ("two-field line for another user is inert", &[("limits.conf", "bob -\n* - nofile 3000\n")], alice, Upstream, "nofile", "3000:3000"),
        ("unlimited nofile becomes nr_open", &[("limits.conf", "* - nofile unlimited\n")], alice, Upstream, "nofile", "1048576:1048576"),
        ("infinity and -1 are no limit", &[("limits.conf", "* soft core infinity\n* hard core -1\n")], alice, Upstream, "core", "unlimited:unlimited"),
        ("- as a value is no limit; -1 for nofile is nr_open", &[("limits.conf", "* hard nofile -1\n* soft nofile -\n")], alice, Upstream, "nofile", "1048576:1048576"),
        ("10k is read as 10", &[("limits.conf", "* - nofile 10k\n")], alice, Upstream, "nofile", "10:10"),
        ("0x100 is read as 0", &[("limits.conf", "* - nofile 0x100\n")], alice, Upstream, "nofile", "0:0"),
        ("no digits: wrong value, line ignored", &[("limits.conf", "* - nofile abc\n* soft nofile 300\n")], alice, Upstream, "nofile", "300:4096"),
        ("negative numbers wrap", &[("limits.conf", "* hard nofile -5\n")], alice, Upstream, "nofile", "1024:18446744073709551611"),
        ("case-insensitive type, item and value", &[("limits.conf", "* HARD NOFILE Unlimited\n")], alice, Upstream, "nofile", "1024:1048576"),
        ("the domain is case-sensitive", &[("limits.conf", "ALICE - nofile 8000\n")], alice, Upstream, "nofile", "1024:4096"),
        ("comments, blank and bad lines skipped", &[("limits.conf", "# comment\n\n   \n* soft nofile # 99\nbogus\n  * - nofile 4000 # trailing comment\n")], alice, Upstream, "nofile", "4000:4000"),
        ("soft clamped to hard", &[("limits.conf", "* soft nofile 500000\n* hard nofile 20000\n")], alice, Upstream, "nofile", "20000:20000"),
        ("soft alone clamped to the starting hard", &[("limits.conf", "* soft nofile 500000\n")], alice, Upstream, "nofile", "4096:4096"),
        ("KB items are multiplied by 1024", &[("limits.conf", "* - stack 8192\n")], alice, Upstream, "stack", "8388608:8388608"),
        ("cpu minutes are multiplied by 60", &[("limits.conf", "* - cpu 5\n")], alice, Upstream, "cpu", "300:300"),
        ("nice -5 is rlimit 25", &[("limits.conf", "* - nice -5\n")], alice, Upstream, "nice", "25:25"),
        ("upstream: * applies to root", &[("limits.conf", "* - nofile 500000\n")], root, Upstream, "nofile", "500000:500000"),
        ("debian: * does not apply to root", &[("limits.conf", "* - nofile 500000\n")], root, Debian, "nofile", "1024:4096"),
        ("debian: @root does not apply to root", &[("limits.conf", "@root - nofile 500000\n")], root, Debian, "nofile", "1024:4096"),
        ("debian: a root line applies", &[("limits.conf", "* - nofile 7\nroot - nofile 500000\n")], root, Debian, "nofile", "500000:500000"),
        ("debian: a uid range with 0 applies", &[("limits.conf", "0:10 - nofile 600\n")], root, Debian, "nofile", "600:600"),
        ("debian: * still applies to other users", &[("limits.conf", "* - nofile 500000\n")], alice, Debian, "nofile", "500000:500000"),
    ];

    #[test]
    fn pam_limits_rule_table() {
        assert!(CASES.len() >= 25);
        let mut failures = Vec::new();
        for (name, conf, who, flavor, item, want) in CASES {
            let got = eff(conf, &who(), *flavor, item);
            if got != *want {
                failures.push(format!("{name}: got {got}, want {want}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn sources_warnings_and_no_limits_line() {
        let r = resolve(
            &files(&[(
                "limits.conf",
                "bogus line\n* soft nofile 500000\n* hard nofile 500000\n* - nofle 3\n* sfot nofile 3\n",
            )]),
            &alice(),
            Flavor::Upstream,
            NR_OPEN,
        );
        let nofile = &r.items["nofile"];
        assert_eq!(
            nofile.soft.as_ref().unwrap().line.describe(),
            "limits.conf:2 \"* soft nofile 500000\""
        );
        assert_eq!(nofile.hard.as_ref().unwrap().line.line, 3);
        assert_eq!(
            r.warnings,
            [
                "invalid line 1 in limits.conf - skipped (expected DOMAIN TYPE ITEM VALUE)",
                "unknown limit item in limits.conf:4 - ignored (expected an item of limits.conf(5), e.g. nofile)",
                "unknown limit type in limits.conf:5 - ignored (expected soft, hard or -)"
            ]
        );
        let r = resolve(
            &files(&[("limits.conf", "* - nofile 3\nalice -  # no limits\n")]),
            &alice(),
            Flavor::Upstream,
            NR_OPEN,
        );
        assert_eq!(r.no_limits.unwrap().describe(), "limits.conf:2 \"alice -\"");
        assert!(r.items.is_empty());
        let r = resolve(
            &files(&[("limits.conf", "@x:y - nofile 3\n%1:5 - maxlogins 3\n")]),
            &alice(),
            Flavor::Upstream,
            NR_OPEN,
        );
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    }

    #[test]
    fn value_parsing_like_strtoull() {
        assert_eq!(strtoull("10k"), Some(10));
        assert_eq!(strtoull("+7"), Some(7));
        assert_eq!(strtoull("-1"), Some(u64::MAX));
        assert_eq!(strtoull("-5"), Some(u64::MAX - 4));
        assert_eq!(strtoull("99999999999999999999999"), Some(u64::MAX));
        assert_eq!(strtoull("abc"), None);
        assert_eq!(strtoull("-"), None);
        assert_eq!(strtol("-30"), Some(-30));
    }

    #[test]
    fn limits_d_order_is_strcmp() {
        let names = [
            "9-b.conf",
            "10-a.conf",
            "x.txt",
            ".hidden.conf",
            "A.conf",
            "a.conf",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            sort_limits_d(names),
            ["10-a.conf", "9-b.conf", "A.conf", "a.conf"]
        );
    }
}
