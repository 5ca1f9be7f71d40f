//! Durations: whole seconds as plain integers, so they cross into Rust without conversion.

use rhai::plugin::*;

#[export_module]
pub mod duration_fns {
    #[allow(unused_imports)]
    use super::helpers::*;
    use crate::err;
    use rhai::{EvalAltResult, FLOAT, INT};

    /// A duration of `n` seconds, as whole seconds.
    ///
    /// ```rhai
    /// assert_eq(seconds(90), 90);
    /// ```
    pub fn seconds(n: INT) -> INT {
        n
    }

    /// A duration of `n` minutes, as whole seconds.
    ///
    /// ```rhai
    /// assert_eq(minutes(30), 1800);
    /// assert_eq(minutes(1.5), 90);
    /// ```
    #[rhai_fn(name = "minutes", return_raw)]
    pub fn minutes(n: INT) -> Result<INT, Box<EvalAltResult>> {
        scaled(n, 60)
    }
    #[rhai_fn(name = "minutes", return_raw)]
    pub fn minutes_f(n: FLOAT) -> Result<INT, Box<EvalAltResult>> {
        scaled_f(n, 60.0)
    }

    /// A duration of `n` hours, as whole seconds.
    ///
    /// ```rhai
    /// assert_eq(hours(4), 14400);
    /// assert_eq(hours(0.5), 1800);
    /// ```
    #[rhai_fn(name = "hours", return_raw)]
    pub fn hours(n: INT) -> Result<INT, Box<EvalAltResult>> {
        scaled(n, 3600)
    }
    #[rhai_fn(name = "hours", return_raw)]
    pub fn hours_f(n: FLOAT) -> Result<INT, Box<EvalAltResult>> {
        scaled_f(n, 3600.0)
    }

    /// A duration of `n` days, as whole seconds.
    ///
    /// ```rhai
    /// assert_eq(days(2), 172800);
    /// ```
    #[rhai_fn(name = "days", return_raw)]
    pub fn days(n: INT) -> Result<INT, Box<EvalAltResult>> {
        scaled(n, 86400)
    }
    #[rhai_fn(name = "days", return_raw)]
    pub fn days_f(n: FLOAT) -> Result<INT, Box<EvalAltResult>> {
        scaled_f(n, 86400.0)
    }

    /// Parses a duration such as `"1h30m"`, `"90s"`, `"2d"` or `"45m"` into whole seconds.
    /// Units: `d`, `h`, `m`, `s`.
    ///
    /// ```rhai
    /// assert_eq(duration("1h30m"), 5400);
    /// assert_eq(duration("2d"), 172800);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn duration(text: &str) -> Result<INT, Box<EvalAltResult>> {
        parse_duration(text).map_err(|e| err(e.to_string()))
    }

    /// Formats whole seconds as a compact duration, the inverse of `duration`.
    ///
    /// ```rhai
    /// assert_eq(fmt_duration(5400), "1h30m");
    /// assert_eq(fmt_duration(0), "0s");
    /// ```
    pub fn fmt_duration(secs: INT) -> String {
        format_duration(secs)
    }
}

mod helpers {
    #[allow(unused_imports)]
    use super::*;
    use crate::err;
    use rhai::{EvalAltResult, FLOAT, INT};

    pub(super) fn scaled(n: INT, unit: INT) -> Result<INT, Box<EvalAltResult>> {
        if n < 0 {
            return Err(err(format!("duration `{n}` is negative")));
        }
        n.checked_mul(unit)
            .ok_or_else(|| err(format!("duration `{n}` is too large")))
    }

    pub(super) fn scaled_f(n: FLOAT, unit: FLOAT) -> Result<INT, Box<EvalAltResult>> {
        if !n.is_finite() || n < 0.0 {
            return Err(err(format!("duration `{n}` is not a non-negative number")));
        }
        let secs = (n * unit).round();
        if secs > INT::MAX as FLOAT {
            return Err(err(format!("duration `{n}` is too large")));
        }
        Ok(secs as INT)
    }
}

/// A duration that does not read, in words (user input in backticks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

impl From<String> for DurationError {
    fn from(s: String) -> Self {
        DurationError(s)
    }
}

/// Parses `1h30m`-style durations into seconds.
pub fn parse_duration(text: &str) -> Result<i64, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err("duration `` is empty".to_string().into());
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(
                    format!("duration `{text}` has unknown unit `{c}` (use d, h, m, s)").into(),
                )
            }
        };
        if num.is_empty() {
            return Err(format!("duration `{text}` has a unit without a number").into());
        }
        let n: i64 = num
            .parse()
            .map_err(|_| format!("duration `{text}` is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(
            format!("duration `{text}` ends in a number without a unit (use d, h, m, s)").into(),
        );
    }
    Ok(total)
}

/// Formats seconds as `1d2h3m4s`, leaving out zero parts.
pub fn format_duration(secs: i64) -> String {
    if secs <= 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
        let n = rest / unit;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(name);
            rest -= n * unit;
        }
    }
    out
}
