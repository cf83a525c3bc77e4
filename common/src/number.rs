//! The two ways a number is written: exactly, for perfdata and ranges (docs/contract.md
//! §3.3), and rounded for people, in findings and summaries.
//!
//! Exact means the value read back is the value meant: integers are kept as integers all the
//! way (a u64 such as `fs.file-max` = 2^63 − 1 cannot survive a trip through `f64`), and a
//! fraction prints as the shortest decimal that parses back to the same `f64`. Neither form
//! ever has an exponent, a locale comma, `inf` or `NaN`.

use std::fmt;

/// A perfdata number: an exact integer or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer, printed digit for digit.
    Int(i128),
    /// A float; not finite means "could not be determined".
    Float(f64),
}

impl Number {
    /// Whether the number is finite (integers always are).
    pub(crate) fn is_finite(self) -> bool {
        match self {
            Number::Int(_) => true,
            Number::Float(v) => v.is_finite(),
        }
    }
}

macro_rules! int_number {
    ($($t:ty),*) => {$(
        impl From<$t> for Number {
            fn from(v: $t) -> Number {
                Number::Int(i128::from(v))
            }
        }
    )*};
}
int_number!(u8, u16, u32, u64, i8, i16, i32, i64);

impl From<usize> for Number {
    fn from(v: usize) -> Number {
        // usize is at most 64 bits on every target Rust supports for Linux.
        Number::Int(i128::try_from(v).unwrap_or(i128::MAX))
    }
}

impl From<f64> for Number {
    fn from(v: f64) -> Number {
        Number::Float(v)
    }
}

impl fmt::Display for Number {
    /// Exact form; a number that is not finite prints as `U` (perfdata's "unknown").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(v) => write!(f, "{v}"),
            Number::Float(v) => f.write_str(&exact(v)),
        }
    }
}

/// The exact decimal form of `v` (see the module docs); `U` when `v` is not finite.
///
/// Rust's `Display` for `f64` already prints the shortest round-trip digits without an
/// exponent, but pads a large integral float with zeros (`9223372036854775807.0` prints
/// as `9223372036854775808` only by chance; `1e19 + 2048.0` would print rounded). An
/// integral float below 2^127 is therefore printed through `i128`, which is its exact value.
pub fn exact(v: f64) -> String {
    // 2^127: every integral f64 below it converts to i128 without loss.
    const I128_SAFE: f64 = 1.701_411_834_604_692_3e38;
    if !v.is_finite() {
        return "U".to_string();
    }
    if v == 0.0 {
        return "0".to_string(); // also -0.0
    }
    if v.fract() == 0.0 && v.abs() < I128_SAFE {
        #[allow(clippy::cast_possible_truncation)] // integral and in range, checked above
        let int = v as i128;
        return int.to_string();
    }
    format!("{v}")
}

/// `v` rounded to at most `decimals` places for people: trailing zeros dropped, no `-0`,
/// no exponent (`human(99.70703, 1)` is `99.7`, `human(1021.0, 1)` is `1021`). Not for
/// perfdata, which keeps full precision ([`exact`]).
pub fn human(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return if v.is_nan() { "?" } else { "∞" }.to_string();
    }
    // Half away from zero, as people round (format! alone rounds 0.25 to 0.2).
    let scale = 10_f64.powi(i32::try_from(decimals).unwrap_or(i32::MAX));
    let rounded = if scale.is_finite() && (v * scale).is_finite() {
        (v * scale).round() / scale
    } else {
        v
    };
    let text = format!("{rounded:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// `part` as a percentage of `whole` for people, with `decimals` places (`99.7`); 0 when
/// `whole` is 0.
pub fn percent(part: f64, whole: f64, decimals: usize) -> String {
    if whole == 0.0 {
        return "0".to_string();
    }
    human(part * 100.0 / whole, decimals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_print_exactly() {
        assert_eq!(
            Number::from(9_223_372_036_854_775_807_u64).to_string(),
            "9223372036854775807"
        );
        assert_eq!(Number::from(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(Number::from(-5_i32).to_string(), "-5");
        assert_eq!(Number::from(0_usize).to_string(), "0");
    }

    #[test]
    fn floats_keep_full_precision_without_exponent() {
        assert_eq!(exact(1e-7), "0.0000001");
        assert_eq!(exact(0.000_123_4), "0.0001234");
        assert_eq!(exact(99.707_031_25), "99.70703125");
        assert_eq!(exact(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(exact(1e20), "100000000000000000000");
        // 2^63 as a float is exactly 9223372036854775808.
        assert_eq!(exact(9_223_372_036_854_775_808.0), "9223372036854775808");
        assert_eq!(exact(1e19 + 2048.0), "10000000000000002048");
        assert_eq!(exact(-0.0), "0");
        assert_eq!(exact(-2.5), "-2.5");
        for v in [1e-7, 1e-300, 123.456, 1e300, f64::MIN_POSITIVE] {
            let text = exact(v);
            assert!(!text.contains(['e', 'E', ',']), "{text}");
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{text} must read back"
            );
        }
    }

    #[test]
    fn not_finite_is_unknown() {
        assert_eq!(exact(f64::NAN), "U");
        assert_eq!(exact(f64::INFINITY), "U");
        assert!(!Number::Float(f64::NEG_INFINITY).is_finite());
        assert!(Number::Int(1).is_finite());
    }

    #[test]
    fn human_rounds_for_people() {
        assert_eq!(human(99.707_031_25, 1), "99.7");
        assert_eq!(human(1021.0, 1), "1021");
        assert_eq!(human(0.25, 2), "0.25");
        assert_eq!(human(0.251, 1), "0.3");
        assert_eq!(human(0.25, 1), "0.3");
        assert_eq!(human(6.25, 1), "6.3");
        assert_eq!(human(-6.25, 1), "-6.3");
        assert_eq!(human(-0.01, 1), "0");
        assert_eq!(human(1e-7, 2), "0");
        assert_eq!(human(1e20, 0), "100000000000000000000");
        assert_eq!(human(f64::NAN, 1), "?");
        assert_eq!(percent(1021.0, 1024.0, 1), "99.7");
        assert_eq!(percent(5.0, 0.0, 1), "0");
    }
}
