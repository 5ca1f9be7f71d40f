//! Descriptive statistics over arrays of numbers (ints and floats may mix).

use rhai::plugin::*;

/// The `q`-quantile of a sorted sample, linear between order statistics (numpy's default);
/// `None` for an empty sample. The one quantile function of the project: policies, gates and
/// benchmarks all use it.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let a = *sorted.get(lo)?;
    let b = *sorted.get((lo + 1).min(n - 1))?;
    Some(a + (b - a) * frac)
}

#[export_module]
pub mod stats_fns {
    #[allow(unused_imports)]
    use super::helpers::*;
    use crate::err;
    use rhai::{Array, EvalAltResult, FLOAT};

    /// The sum of an array of numbers; `0.0` for an empty array.
    ///
    /// ```rhai
    /// assert_eq(sum([1, 2, 3.5]), 6.5);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn sum(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        Ok(numbers(&values)?.iter().sum())
    }

    /// The arithmetic mean. An empty array is an error.
    ///
    /// ```rhai
    /// assert_eq(mean([1, 2, 3, 4]), 2.5);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn mean(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        let v = non_empty(&values, "mean")?;
        Ok(v.iter().sum::<FLOAT>() / v.len() as FLOAT)
    }

    /// The median (the mean of the two middle values for an even count).
    ///
    /// ```rhai
    /// assert_eq(median([5, 1, 3]), 3.0);
    /// assert_eq(median([4, 1, 3, 2]), 2.5);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn median(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        let v = sorted(non_empty(&values, "median")?);
        Ok(quantile_of(&v, 0.5))
    }

    /// The `p`th percentile (0 to 100), interpolated linearly between the closest ranks.
    ///
    /// ```rhai
    /// assert_eq(percentile([1, 2, 3, 4, 5], 50), 3.0);
    /// assert_eq(percentile([10, 20], 90), 19.0);
    /// ```
    #[rhai_fn(name = "percentile", return_raw)]
    pub fn percentile(values: Array, p: FLOAT) -> Result<FLOAT, Box<EvalAltResult>> {
        if !(0.0..=100.0).contains(&p) {
            return Err(err(format!("percentile `{p}` is outside 0..=100")));
        }
        let v = sorted(non_empty(&values, "percentile")?);
        Ok(quantile_of(&v, p / 100.0))
    }
    #[rhai_fn(name = "percentile", return_raw)]
    pub fn percentile_i(values: Array, p: rhai::INT) -> Result<FLOAT, Box<EvalAltResult>> {
        percentile(values, p as FLOAT)
    }

    /// The sample variance (divides by n - 1); needs at least two values.
    ///
    /// ```rhai
    /// assert_eq(variance([2, 4, 4, 4, 5, 5, 7, 9]), 32.0 / 7.0);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn variance(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        let v = numbers(&values)?;
        if v.len() < 2 {
            return Err(err(format!(
                "variance needs at least 2 values, got {}",
                v.len()
            )));
        }
        let m = v.iter().sum::<FLOAT>() / v.len() as FLOAT;
        Ok(v.iter().map(|x| (x - m).powi(2)).sum::<FLOAT>() / (v.len() - 1) as FLOAT)
    }

    /// The sample standard deviation, the square root of `variance`.
    ///
    /// ```rhai
    /// assert(stddev([1, 1, 1]) == 0.0);
    /// assert(stddev([1, 3]) > 1.41 && stddev([1, 3]) < 1.42);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn stddev(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        Ok(variance(values)?.sqrt())
    }

    /// The smallest value of a non-empty array.
    ///
    /// ```rhai
    /// assert_eq(min_of([3, 1.5, 2]), 1.5);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn min_of(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        Ok(non_empty(&values, "min_of")?
            .into_iter()
            .fold(FLOAT::INFINITY, FLOAT::min))
    }

    /// The largest value of a non-empty array.
    ///
    /// ```rhai
    /// assert_eq(max_of([3, 1.5, 2]), 3.0);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn max_of(values: Array) -> Result<FLOAT, Box<EvalAltResult>> {
        Ok(non_empty(&values, "max_of")?
            .into_iter()
            .fold(FLOAT::NEG_INFINITY, FLOAT::max))
    }
}

mod helpers {
    #[allow(unused_imports)]
    use super::*;
    use crate::{as_number, err};
    use rhai::{Array, EvalAltResult, FLOAT};

    pub(super) fn numbers(values: &Array) -> Result<Vec<FLOAT>, Box<EvalAltResult>> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                as_number(v).ok_or_else(|| {
                    err(format!(
                        "element {i} is `{}`, expected a number",
                        v.type_name()
                    ))
                })
            })
            .collect()
    }

    pub(super) fn non_empty(values: &Array, what: &str) -> Result<Vec<FLOAT>, Box<EvalAltResult>> {
        let v = numbers(values)?;
        if v.is_empty() {
            return Err(err(format!("{what} of an empty array")));
        }
        Ok(v)
    }

    pub(super) fn sorted(mut v: Vec<FLOAT>) -> Vec<FLOAT> {
        v.sort_by(FLOAT::total_cmp);
        v
    }

    /// [`quantile`](super::quantile) of a sorted, non-empty sample.
    pub(super) fn quantile_of(v: &[FLOAT], q: FLOAT) -> FLOAT {
        super::quantile(v, q).unwrap_or(FLOAT::NAN)
    }
}
