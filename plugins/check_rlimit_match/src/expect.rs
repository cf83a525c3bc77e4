//! Expected values: `ITEM=SOFT[:HARD]` as given to `--expect` and `--at-least`, and the
//! same `SOFT[:HARD]` form in the YAML config.

use std::fmt;
use std::str::FromStr;

use procguard_common::proc::limits::show;

use procguard_common::proc::limits::{item_name, item_names};

/// An expected soft and hard value. The outer `Option` is "not checked", the inner one
/// "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spec {
    /// Soft value, if checked.
    pub soft: Option<Option<u64>>,
    /// Hard value, if checked.
    pub hard: Option<Option<u64>>,
}

// A number or `unlimited` / `infinity` (`None`): the one limit-value parser.
use procguard_common::proc::limits::parse_limit as parse_value;

impl FromStr for Spec {
    type Err = String;

    /// `SOFT`, `SOFT:HARD` or `:HARD`; HARD is not checked when left out.
    fn from_str(text: &str) -> Result<Spec, String> {
        let (soft, hard) = match text.split_once(':') {
            Some((s, h)) => (s, Some(h)),
            None => (text, None),
        };
        let soft = if soft.is_empty() && hard.is_some() {
            None
        } else {
            Some(parse_value(soft)?)
        };
        let hard = hard.map(parse_value).transpose()?;
        Ok(Spec { soft, hard })
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.soft {
            f.write_str(&show(s))?;
        }
        if let Some(h) = self.hard {
            write!(f, ":{}", show(h))?;
        }
        Ok(())
    }
}

/// A limits.conf item name, checked against the known ones.
pub fn parse_item(text: &str) -> Result<&'static str, String> {
    item_name(&text.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown limit item {text:?}; use one of {}", item_names()))
}

/// `ITEM=SOFT[:HARD]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSpec {
    /// The item.
    pub item: &'static str,
    /// The values.
    pub spec: Spec,
}

impl FromStr for ItemSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<ItemSpec, String> {
        let (item, spec) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not ITEM=SOFT[:HARD] (e.g. nofile=65536:65536)"))?;
        Ok(ItemSpec {
            item: parse_item(item)?,
            spec: spec.parse()?,
        })
    }
}

impl fmt::Display for ItemSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.item, self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s: ItemSpec = "nofile=1024:4096".parse().unwrap();
        assert_eq!(
            (s.item, s.spec.soft, s.spec.hard),
            ("nofile", Some(Some(1024)), Some(Some(4096)))
        );
        assert_eq!(s.to_string(), "nofile=1024:4096");
        let s: ItemSpec = "CORE=unlimited".parse().unwrap();
        assert_eq!(
            (s.item, s.spec.soft, s.spec.hard),
            ("core", Some(None), None)
        );
        let s: ItemSpec = "nproc=:infinity".parse().unwrap();
        assert_eq!((s.spec.soft, s.spec.hard), (None, Some(None)));
        assert_eq!(s.to_string(), "nproc=:unlimited");
        for bad in [
            "nofile",
            "nofile=",
            "nofile=10k",
            "bogus=1",
            "nofile=1:2:3",
            "nofile=-1",
        ] {
            assert!(bad.parse::<ItemSpec>().is_err(), "{bad}");
        }
    }
}
