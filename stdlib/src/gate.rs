//! Reading a gate's comparison: `g.metric(name)` and `g.has_metric(name)` on a group of
//! `gate(w)`'s `w.groups`.

use rhai::plugin::*;

// The code `#[export_module]` generates for `&mut` parameters unwraps internally.
#[allow(clippy::unwrap_used)]
#[export_module]
pub mod gate_fns {
    #[allow(unused_imports)]
    use super::helpers::*;
    use crate::err;
    use rhai::{Dynamic, EvalAltResult, Map};

    /// The comparison of metric `name` in a group (or a pooled level) of `gate(w)`: `effect`
    /// with `effect_low`/`effect_high` (its interval at the gate's alpha) and `mde` (the
    /// minimum detectable effect at the gate's power), all in percent; `level` (`r750/db`, or
    /// `r750/*`, `*/db`, `*/*` for a pooled level); `hosts` and `control_hosts` (the unit of
    /// analysis), `n` and `control_n` (samples, for the report); `mean`, `before_mean`,
    /// `control_mean`, `control_before_mean`; `method` (`diff_in_diff`, `controls` or
    /// `baseline`); `direction`, `worse`, `p_value`, `p_adjusted`; `insufficient` with its
    /// `reason`; `pooled_only` (no test of its own: a benchmark judged per hardware class, or a
    /// pooled level too small, left to the levels above); `pooled_variance` (the group's own effect,
    /// on its spread moderated by the spread every group of the gate shares) and `df`.
    /// An error names the metrics the group has when `name` is not one of them.
    ///
    /// ```rhai
    /// let g = #{ name: "r750/db", metrics: [#{ name: "io_latency_p99_ms", effect: 9.8, mde: 3.1 }] };
    /// let m = g.metric("io_latency_p99_ms");
    /// assert(m.effect > m.mde);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn metric(group: &mut Map, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let found = find(group, name);
        found.ok_or_else(|| {
            err(format!(
                "group `{}` has no metric `{name}`; it has {}",
                group_name(group),
                names(group).join(", ")
            ))
        })
    }

    /// `x` with `digits` significant digits, as text: for reasons an operator reads.
    ///
    /// ```rhai
    /// assert_eq(sig(14.432878333, 4), "14.43");
    /// assert_eq(sig(0.000000000000132782, 2), "1.3e-13");
    /// assert_eq(sig(8, 3), "8");
    /// ```
    #[rhai_fn(name = "sig")]
    pub fn sig_f(x: rhai::FLOAT, digits: rhai::INT) -> String {
        significant(x, digits)
    }
    #[rhai_fn(name = "sig")]
    pub fn sig_i(x: rhai::INT, digits: rhai::INT) -> String {
        significant(x as rhai::FLOAT, digits)
    }

    /// Whether a group has a comparison for metric `name`.
    ///
    /// ```rhai
    /// let g = #{ name: "r750/db", metrics: [#{ name: "cpu_util_pct" }] };
    /// assert(g.has_metric("cpu_util_pct"));
    /// assert(!g.has_metric("gpu_temp_c"));
    /// ```
    pub fn has_metric(group: &mut Map, name: &str) -> bool {
        find(group, name).is_some()
    }
}

mod helpers {
    use rhai::{Array, Dynamic, Map};

    pub(super) fn significant(x: f64, digits: i64) -> String {
        let d = digits.clamp(1, 17) as i32;
        if !x.is_finite() {
            return x.to_string();
        }
        if x == 0.0 {
            return "0".into();
        }
        let mag = x.abs().log10().floor() as i32;
        if !(-4..15).contains(&mag) {
            return format!("{:.*e}", (d - 1).max(0) as usize, x);
        }
        let decimals = (d - 1 - mag).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }

    pub(super) fn find(group: &Map, name: &str) -> Option<Dynamic> {
        let metrics = group.get("metrics")?.read_lock::<Array>()?.clone();
        metrics.into_iter().find(|m| {
            m.read_lock::<Map>()
                .and_then(|m| m.get("name").map(|n| n.to_string() == name))
                .unwrap_or(false)
        })
    }

    pub(super) fn names(group: &Map) -> Vec<String> {
        group
            .get("metrics")
            .and_then(|m| m.read_lock::<Array>().map(|a| a.clone()))
            .unwrap_or_default()
            .iter()
            .filter_map(|m| {
                m.read_lock::<Map>()
                    .and_then(|m| m.get("name").map(|n| format!("`{n}`")))
            })
            .collect()
    }

    pub(super) fn group_name(group: &Map) -> String {
        group.get("name").map(|n| n.to_string()).unwrap_or_default()
    }
}
