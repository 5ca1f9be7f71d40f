//! Percentages: a tagged map `#{percent: 10.0}`, so a limit can be a count or a share.

use rhai::plugin::*;

#[export_module]
pub mod percent_fns {
    #[allow(unused_imports)]
    use super::helpers::*;
    use crate::{as_number, err};
    use rhai::{Dynamic, EvalAltResult, Map, FLOAT, INT};

    /// A percentage between 0 and 100, as the map `#{percent: n}`. Limits accept either a
    /// plain count or a percentage.
    ///
    /// ```rhai
    /// let p = percent(10);
    /// assert_eq(p.percent, 10.0);
    /// assert(is_percent(p));
    /// ```
    #[rhai_fn(name = "percent", return_raw)]
    pub fn percent_i(n: INT) -> Result<Map, Box<EvalAltResult>> {
        make(n as FLOAT)
    }
    #[rhai_fn(name = "percent", return_raw)]
    pub fn percent_f(n: FLOAT) -> Result<Map, Box<EvalAltResult>> {
        make(n)
    }

    /// Whether `value` is a percentage made by `percent(n)`.
    ///
    /// ```rhai
    /// assert(is_percent(percent(5)));
    /// assert(!is_percent(5));
    /// ```
    pub fn is_percent(value: Dynamic) -> bool {
        value
            .read_lock::<Map>()
            .map(|m| m.len() == 1 && m.get("percent").and_then(as_number).is_some())
            .unwrap_or(false)
    }

    /// How many of `total` items a percentage or count allows: a percentage is rounded down
    /// but is at least 1 when both it and `total` are above zero; a count is capped at `total`.
    ///
    /// ```rhai
    /// assert_eq(percent_of(percent(10), 25), 2);
    /// assert_eq(percent_of(percent(1), 30), 1);
    /// assert_eq(percent_of(5, 3), 3);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn percent_of(limit: Dynamic, total: INT) -> Result<INT, Box<EvalAltResult>> {
        if total < 0 {
            return Err(err(format!("total `{total}` is negative")));
        }
        if let Ok(n) = limit.as_int() {
            if n < 0 {
                return Err(err(format!("count `{n}` is negative")));
            }
            return Ok(n.min(total));
        }
        let p = limit
            .read_lock::<Map>()
            .and_then(|m| m.get("percent").and_then(as_number))
            .ok_or_else(|| {
                err(format!(
                    "expected a count or `percent(n)`, got `{}`",
                    limit.type_name()
                ))
            })?;
        let n = (p * total as FLOAT / 100.0).floor() as INT;
        Ok(if p > 0.0 && total > 0 { n.max(1) } else { n })
    }

    /// The change from `old` to `new` in percent.
    ///
    /// ```rhai
    /// assert_eq(pct_change(108.0, 100.0), 8.0);
    /// assert_eq(pct_change(50, 100), -50.0);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn pct_change(new: Dynamic, old: Dynamic) -> Result<FLOAT, Box<EvalAltResult>> {
        let (Some(n), Some(o)) = (as_number(&new), as_number(&old)) else {
            return Err(err(format!(
                "pct_change takes numbers, got `{}` and `{}`",
                new.type_name(),
                old.type_name()
            )));
        };
        if o == 0.0 {
            return Err(err("pct_change from `0` is undefined"));
        }
        Ok((n - o) / o.abs() * 100.0)
    }
}

mod helpers {
    #[allow(unused_imports)]
    use super::*;
    use crate::err;
    use rhai::{Dynamic, EvalAltResult, Map, FLOAT};

    pub(super) fn make(n: FLOAT) -> Result<Map, Box<EvalAltResult>> {
        if !(0.0..=100.0).contains(&n) {
            return Err(err(format!("percent `{n}` is outside 0..=100")));
        }
        let mut m = Map::new();
        m.insert("percent".into(), Dynamic::from_float(n));
        Ok(m)
    }
}
