//! The YAML config (`--config FILE`): a list of services, each with its selectors and the
//! limits it should have. The schema is documented in README.md and
//! `examples/services.yaml`; unknown keys and wrong types are errors naming the line.
//!
//! ```yaml
//! services:
//!   - name: node_web_app
//!     select: { pidfile: /run/node.pid }
//!     expect: { nofile: "500000:500000" }     # exact
//!     at_least: { nproc: 4096 }              # minimum
//!     limits_conf: true                      # or a path
//!     systemd: node.service                  # or true: the unit of the cgroup
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use procguard_common::proc::limits::{item_name, ITEMS};
use procguard_common::select::Selector;
use procguard_common::CheckError;

use crate::expect::{ItemSpec, Spec};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The services.
    pub services: Vec<Service>,
}

/// One service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its name (`--service NAME`); also the perfdata label unless `label` is set.
    pub name: String,
    /// Process selection, as the selector flags (combined with AND).
    pub select: Select,
    /// Perfdata label prefix.
    #[serde(default)]
    pub label: Option<String>,
    /// Exact expectations.
    #[serde(default)]
    pub expect: Items,
    /// Minimum expectations.
    #[serde(default)]
    pub at_least: Items,
    /// `true` for /etc/security, or a file or directory.
    #[serde(default)]
    pub limits_conf: Option<Toggle>,
    /// `true` for the unit of the process's cgroup, or a unit name.
    #[serde(default)]
    pub systemd: Option<Toggle>,
    /// Compare with the process in this pidfile.
    #[serde(default)]
    pub like_pidfile: Option<PathBuf>,
    /// Compare with this process.
    #[serde(default)]
    pub like_pid: Option<i32>,
}

/// The selector keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// `--pid`.
    pub pid: Option<i32>,
    /// `--pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `--name`.
    pub name: Option<String>,
    /// `--cmdline`.
    #[serde(default, deserialize_with = "regex")]
    pub cmdline: Option<Regex>,
    /// `--user`.
    pub user: Option<String>,
    /// `--unit`.
    pub unit: Option<String>,
    /// `--ppid`.
    pub ppid: Option<i32>,
    /// `--container`.
    pub container: Option<String>,
}

fn regex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
    let text = String::deserialize(d)?;
    Regex::new(&text)
        .map(Some)
        // regex's message quotes the pattern; only its last line says what is wrong.
        .map_err(|e| {
            let e = e.to_string();
            let why = e
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            de::Error::custom(format!("cmdline: invalid regex: {why}"))
        })
}

impl Select {
    /// As a [`Selector`].
    pub fn selector(&self) -> Selector {
        Selector {
            pid: self.pid,
            pidfile: self.pidfile.clone(),
            name: self.name.clone(),
            cmdline: self.cmdline.clone(),
            user: self.user.clone(),
            unit: self.unit.clone(),
            ppid: self.ppid,
            container: self.container.clone(),
        }
    }
}

/// `true`/`false`, or a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toggle {
    /// `false`.
    Off,
    /// `true`: the default.
    On,
    /// A value.
    Value(String),
}

impl<'de> Deserialize<'de> for Toggle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Toggle, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Toggle;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or a string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Toggle, E> {
                Ok(if v { Toggle::On } else { Toggle::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Toggle, E> {
                Ok(Toggle::Value(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A limit in the config: a number (soft = hard) or a `"SOFT[:HARD]"` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Spec);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Limit, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"unlimited\" or \"SOFT:HARD\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
                Ok(Limit(Spec {
                    soft: Some(Some(v)),
                    hard: Some(Some(v)),
                }))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Limit, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("limit {v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Limit, E> {
                let spec: Spec = v.parse().map_err(E::custom)?;
                // A single value in the config means soft = hard, as a bare number does.
                Ok(Limit(match (spec.soft, spec.hard, v.contains(':')) {
                    (Some(s), None, false) => Spec {
                        soft: Some(s),
                        hard: Some(s),
                    },
                    _ => spec,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// Expected values by item name (the names of the one limit-items table); unknown items
/// are rejected with their line.
#[derive(Debug, Default)]
pub struct Items(BTreeMap<&'static str, Limit>);

/// The item names, for serde's "expected one of" message.
const ITEM_NAMES: [&str; ITEMS.len()] = {
    let mut names = [""; ITEMS.len()];
    let mut i = 0;
    while i < ITEMS.len() {
        names[i] = ITEMS[i].name;
        i += 1;
    }
    names
};

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Items, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of limit items (nofile, nproc, ...) to limits")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
                let mut items = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Some(item) = item_name(&key) else {
                        return Err(de::Error::unknown_field(&key, &ITEM_NAMES));
                    };
                    if items.insert(item, map.next_value::<Limit>()?).is_some() {
                        return Err(de::Error::duplicate_field(item));
                    }
                }
                Ok(Items(items))
            }
        }
        d.deserialize_map(V)
    }
}

impl Items {
    /// The expectations given, in the kernel's order.
    pub fn specs(&self) -> Vec<ItemSpec> {
        ITEMS
            .iter()
            .filter_map(|i| {
                let Limit(spec) = *self.0.get(i.name)?;
                Some(ItemSpec { item: i.name, spec })
            })
            .collect()
    }
}

/// Parses the config text; errors name the file and line.
pub fn parse(path: &Path, text: &str) -> Result<Config, CheckError> {
    let config: Config = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_norway appends " at line L column C"; put the line first instead.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).trim();
        // Where and what was expected, never the file's content (it may be /etc/shadow).
        let msg = procguard_common::text::without_input(msg);
        match e.location() {
            Some(loc) => CheckError::Config(format!(
                "config {} line {}: {msg}",
                path.display(),
                loc.line()
            )),
            None => CheckError::Config(format!("config {}: {msg}", path.display())),
        }
    })?;
    let mut names: Vec<&str> = Vec::new();
    for s in &config.services {
        if names.contains(&s.name.as_str()) {
            return Err(CheckError::Config(format!(
                "config {}: service {:?} is defined twice",
                path.display(),
                s.name
            )));
        }
        names.push(&s.name);
        if s.select.selector().is_empty() {
            return Err(CheckError::Config(format!(
                "config {}: service {:?} has an empty select",
                path.display(),
                s.name
            )));
        }
    }
    if config.services.is_empty() {
        return Err(CheckError::Config(format!(
            "config {}: no services",
            path.display()
        )));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("s.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../examples/services.yaml");
        let c = parse(Path::new("services.yaml"), text).unwrap();
        assert!(c.services.len() >= 2);
        let node = &c.services[0];
        assert_eq!(node.name, "node_web_app");
        assert_eq!(node.at_least.specs()[0].to_string(), "nofile=500000:500000");
        assert_eq!(node.limits_conf, Some(Toggle::On));
    }

    #[test]
    fn values_and_toggles() {
        let c = parse(
            Path::new("s.yaml"),
            "services:\n  - name: a\n    select: {name: x}\n    expect:\n      nofile: 4096\n      core: unlimited\n      nproc: \"100:200\"\n      as: \":unlimited\"\n    systemd: web.service\n    limits_conf: false\n",
        )
        .unwrap();
        let s = &c.services[0];
        let specs: Vec<String> = s.expect.specs().iter().map(ToString::to_string).collect();
        assert_eq!(
            specs,
            [
                "core=unlimited:unlimited",
                "nproc=100:200",
                "nofile=4096:4096",
                "as=:unlimited"
            ]
        );
        assert_eq!(s.systemd, Some(Toggle::Value("web.service".into())));
        assert_eq!(s.limits_conf, Some(Toggle::Off));
    }

    #[test]
    fn errors_name_the_line() {
        assert!(
            err("services:\n  - name: a\n    select: {name: x\n")
                .starts_with("config s.yaml line "),
            "{}",
            err("services:\n  - name: a\n    select: {name: x\n")
        );
        let unknown =
            err("services:\n  - name: a\n    select: {name: x}\n    expct: {nofile: 1}\n");
        assert!(
            unknown.starts_with("config s.yaml line 4: ")
                && unknown.contains("unknown field, expected one of `name`"),
            "{unknown}"
        );
        let item =
            err("services:\n  - name: a\n    select: {name: x}\n    expect:\n      nofle: 1\n");
        assert!(item.starts_with("config s.yaml line 5: "), "{item}");
        let wrong =
            err("services:\n  - name: a\n    select: {name: x}\n    expect:\n      nofile: [1]\n");
        assert!(
            wrong.starts_with("config s.yaml line 5: ") && wrong.contains("invalid type"),
            "{wrong}"
        );
        let pid = err("services:\n  - name: a\n    select:\n      pid: abc\n");
        assert!(pid.starts_with("config s.yaml line 4: "), "{pid}");
        let value =
            err("services:\n  - name: a\n    select: {name: x}\n    at_least: {nofile: \"10k\"}\n");
        assert!(value.starts_with("config s.yaml line 4: "), "{value}");
        let re = err("services:\n  - name: a\n    select:\n      cmdline: \"(\"\n");
        assert!(re.starts_with("config s.yaml line 4: "), "{re}");
        assert!(re.ends_with("invalid regex: unclosed group"), "{re}");
        // A file that is not a config at all: where, and what was expected, never its content.
        let shadow = err("root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n");
        assert!(
            !shadow.contains("20228") && !shadow.contains("root"),
            "{shadow}"
        );
        assert!(shadow.starts_with("config s.yaml"), "{shadow}");
        let twice = err(
            "services:\n  - name: a\n    select: {name: x}\n    expect:\n      nofile: 1\n      nofile: 2\n",
        );
        assert!(twice.contains("expect: duplicate field"), "{twice}");
        assert!(err("services: []\n").contains("no services"));
        assert!(err("services:\n  - name: a\n    select: {}\n").contains("empty select"));
        assert!(err(
            "services:\n  - {name: a, select: {pid: 1}}\n  - {name: a, select: {pid: 2}}\n"
        )
        .contains("defined twice"));
    }
}
