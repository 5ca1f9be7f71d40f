//! Decision builders: the verdicts `pass`, `pause(reason)` and `fail(reason)`, as plain maps
//! `#{verdict: "pause", reasons: [..]}` so they serialise without help, and `exclude(reason)`
//! for rollout eligibility.

use rhai::plugin::*;

// The code `#[export_module]` generates for `&mut` parameters unwraps internally.
#[allow(clippy::unwrap_used)]
#[export_module]
pub mod verdict_fns {
    #[allow(unused_imports)]
    use super::helpers::*;

    use rhai::{EvalAltResult, Map};

    /// A passing verdict with no reasons; add to it with `.pause(..)` and `.fail(..)`.
    ///
    /// ```rhai
    /// let v = verdict();
    /// assert_eq(v.verdict, "pass");
    /// v.pause("io p99 up 8%");
    /// assert_eq(v.verdict, "pause");
    /// assert_eq(v.reasons, ["io p99 up 8%"]);
    /// ```
    pub fn verdict() -> Map {
        make("pass", None)
    }

    /// Keeps a host out of the rollout, with the reason `fleetward plan` reports: the
    /// result `rollout.rhai`'s `eligible(host)` returns for an excluded host.
    ///
    /// ```rhai
    /// let e = exclude("tagged `no-reboot`");
    /// assert_eq(e.eligible, false);
    /// assert_eq(e.reason, "tagged `no-reboot`");
    /// ```
    pub fn exclude(reason: &str) -> Map {
        let mut m = Map::new();
        m.insert("eligible".into(), false.into());
        m.insert("reason".into(), reason.into());
        m
    }

    /// A passing verdict.
    ///
    /// ```rhai
    /// assert_eq(pass().verdict, "pass");
    /// assert_eq(pass("all groups within bounds").reasons, ["all groups within bounds"]);
    /// ```
    #[rhai_fn(name = "pass")]
    pub fn pass() -> Map {
        make("pass", None)
    }
    #[rhai_fn(name = "pass")]
    pub fn pass_with(reason: &str) -> Map {
        make("pass", Some(reason))
    }

    /// A verdict that pauses the rollout, with a reason an operator can act on.
    /// As a method, it raises a verdict to at least `pause` and adds the reason.
    ///
    /// ```rhai
    /// assert_eq(pause("3 unexpected reboots").verdict, "pause");
    /// let v = fail("panic");
    /// v.pause("slow");
    /// assert_eq(v.verdict, "fail");
    /// ```
    #[rhai_fn(name = "pause")]
    pub fn pause(reason: &str) -> Map {
        make("pause", Some(reason))
    }
    #[rhai_fn(name = "pause", return_raw)]
    pub fn pause_on(v: &mut Map, reason: &str) -> Result<(), Box<EvalAltResult>> {
        raise(v, "pause", reason)
    }

    /// Pauses for one level of the comparison (a group `r750/db`, or a pooled level `r750/*`):
    /// as `pause(reason)`, and the verdict's `levels` map records the level as `pause`, so the
    /// canary approval and the gate report can say which groups were judged and how.
    ///
    /// ```rhai
    /// let v = verdict();
    /// v.pause("r750/db", "r750/db: cpu_util_pct +30%");
    /// assert_eq(v.verdict, "pause");
    /// assert_eq(v.levels["r750/db"], "pause");
    /// v.inconclusive("r750/db", "more");
    /// assert_eq(v.levels["r750/db"], "pause");
    /// ```
    #[rhai_fn(name = "pause", return_raw)]
    pub fn pause_at(v: &mut Map, level: &str, reason: &str) -> Result<(), Box<EvalAltResult>> {
        raise(v, "pause", reason)?;
        mark(v, level, "pause")
    }

    /// The data cannot decide for one level of the comparison: as `inconclusive(reason)`, and
    /// the verdict's `levels` map records the level as `inconclusive` (unless it is already
    /// marked worse).
    ///
    /// ```rhai
    /// let v = verdict();
    /// v.inconclusive("sm-x12/db", "cannot judge sm-x12/db: MDE 19% > threshold 10%");
    /// assert_eq(v.verdict, "inconclusive");
    /// assert_eq(v.levels, #{ "sm-x12/db": "inconclusive" });
    /// ```
    #[rhai_fn(name = "inconclusive", return_raw)]
    pub fn inconclusive_at(
        v: &mut Map,
        level: &str,
        reason: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        raise(v, "inconclusive", reason)?;
        mark(v, level, "inconclusive")
    }

    /// Fails the rollout for one level of the comparison: as `fail(reason)`, with the level
    /// marked `fail` in the verdict's `levels` map.
    ///
    /// ```rhai
    /// let v = verdict();
    /// v.fail("r750/db", "kernel panic on r750/db");
    /// assert_eq(v.levels["r750/db"], "fail");
    /// ```
    #[rhai_fn(name = "fail", return_raw)]
    pub fn fail_at(v: &mut Map, level: &str, reason: &str) -> Result<(), Box<EvalAltResult>> {
        raise(v, "fail", reason)?;
        mark(v, level, "fail")
    }

    /// A verdict that says the data cannot decide (too few hosts, or a minimum detectable
    /// effect above the threshold), with what is missing. The controller extends the bake
    /// as `extend_bake(stage)` allows, then pauses. As a method, it raises a `pass` to
    /// `inconclusive` and adds the reason; a `pause` or `fail` stays.
    ///
    /// ```rhai
    /// assert_eq(inconclusive("r750/db: mde 14% > 10%").verdict, "inconclusive");
    /// let v = verdict();
    /// v.inconclusive("3 hosts cannot detect 5%");
    /// assert_eq(v.verdict, "inconclusive");
    /// v.pause("io p99 +20%");
    /// v.inconclusive("more");
    /// assert_eq(v.verdict, "pause");
    /// ```
    #[rhai_fn(name = "inconclusive")]
    pub fn inconclusive(reason: &str) -> Map {
        make("inconclusive", Some(reason))
    }
    #[rhai_fn(name = "inconclusive", return_raw)]
    pub fn inconclusive_on(v: &mut Map, reason: &str) -> Result<(), Box<EvalAltResult>> {
        raise(v, "inconclusive", reason)
    }

    /// A verdict that fails the rollout, with a reason. As a method, it raises a verdict to
    /// `fail` and adds the reason.
    ///
    /// ```rhai
    /// assert_eq(fail("kernel panic on r740/db").verdict, "fail");
    /// let v = verdict();
    /// v.fail("panic");
    /// assert_eq(v.verdict, "fail");
    /// ```
    #[rhai_fn(name = "fail")]
    pub fn fail(reason: &str) -> Map {
        make("fail", Some(reason))
    }
    #[rhai_fn(name = "fail", return_raw)]
    pub fn fail_on(v: &mut Map, reason: &str) -> Result<(), Box<EvalAltResult>> {
        raise(v, "fail", reason)
    }

    /// The more severe of two verdicts (`fail` > `pause` > `inconclusive` > `pass`), with both sets of reasons.
    ///
    /// ```rhai
    /// let v = worst(pause("a"), pass("b"));
    /// assert_eq(v.verdict, "pause");
    /// assert_eq(v.reasons, ["a", "b"]);
    /// let x = verdict();
    /// x.inconclusive("r750/db", "mde");
    /// let y = verdict();
    /// y.pause("r750/db", "slow");
    /// assert_eq(worst(x, y).levels, #{ "r750/db": "pause" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn worst(a: Map, b: Map) -> Result<Map, Box<EvalAltResult>> {
        let (la, lb) = (level_of(&a)?, level_of(&b)?);
        let mut out = if la >= lb { a.clone() } else { b.clone() };
        let mut reasons = reasons_of(&a);
        reasons.extend(reasons_of(&b));
        out.insert("reasons".into(), reasons.into());
        out.insert("levels".into(), levels_of(&a).into());
        for (k, kind) in levels_of(&b) {
            mark(&mut out, &k, &kind.to_string())?;
        }
        if levels_of(&out).is_empty() {
            out.remove("levels");
        }
        Ok(out)
    }
}

mod helpers {
    #[allow(unused_imports)]
    use super::*;
    use crate::err;
    use rhai::{Array, Dynamic, EvalAltResult, Map};

    pub(super) fn make(kind: &str, reason: Option<&str>) -> Map {
        let mut m = Map::new();
        m.insert("verdict".into(), kind.into());
        let reasons: Array = reason
            .map(|r| vec![Dynamic::from(r.to_string())])
            .unwrap_or_default();
        m.insert("reasons".into(), reasons.into());
        m
    }

    pub(super) fn level(kind: &str) -> Option<u8> {
        match kind {
            "pass" => Some(0),
            "inconclusive" => Some(1),
            "pause" => Some(2),
            "fail" => Some(3),
            _ => None,
        }
    }

    pub(super) fn level_of(v: &Map) -> Result<u8, Box<EvalAltResult>> {
        let kind = v
            .get("verdict")
            .map(|k| k.to_string())
            .ok_or_else(|| err("not a verdict: the map has no `verdict` field"))?;
        level(&kind).ok_or_else(|| err(format!("unknown verdict `{kind}`")))
    }

    pub(super) fn reasons_of(v: &Map) -> Array {
        v.get("reasons")
            .and_then(|r| r.read_lock::<Array>().map(|a| a.clone()))
            .unwrap_or_default()
    }

    pub(super) fn levels_of(v: &Map) -> Map {
        v.get("levels")
            .and_then(|r| r.read_lock::<Map>().map(|a| a.clone()))
            .unwrap_or_default()
    }

    /// Marks `name` in the verdict's `levels` map as `kind`, unless it is marked worse.
    pub(super) fn mark(v: &mut Map, name: &str, kind: &str) -> Result<(), Box<EvalAltResult>> {
        let mut levels = levels_of(v);
        let old = levels
            .get(name)
            .map(|k| level(&k.to_string()).unwrap_or(0))
            .unwrap_or(0);
        if level(kind).unwrap_or(0) > old {
            levels.insert(name.into(), kind.into());
        }
        v.insert("levels".into(), levels.into());
        Ok(())
    }

    pub(super) fn raise(v: &mut Map, kind: &str, reason: &str) -> Result<(), Box<EvalAltResult>> {
        let current = level_of(v)?;
        if level(kind).unwrap_or(0) > current {
            v.insert("verdict".into(), kind.into());
        }
        let mut reasons = reasons_of(v);
        reasons.push(reason.to_string().into());
        v.insert("reasons".into(), reasons.into());
        Ok(())
    }
}
