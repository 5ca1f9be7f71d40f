//! The host-level estimator of a gate: one value per host, strata (groups) as fixed effects,
//! one pooled residual variance, a t interval, a p-value and the minimum detectable effect.
//!
//! Each host contributes one number `y`: with a before window, `f(after) − f(before)` (the
//! host's own change, so host-to-host spread cancels); without one, `f(value)`. `f` is `ln` on
//! the log scale (ratio metrics) and the identity on the linear scale. The effect is the
//! inverse-variance weighted mean over strata of `mean(y | updated) − mean(y | controls)`,
//! which cancels what the controls saw over the same hours (the time of day). Against a
//! static reference level instead of controls, it is `mean(y) − f(reference)` per stratum.

use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;

/// How the host values are transformed before differences are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// `ln`: effects are ratios, reported in percent. Used when every value is positive.
    Log,
    /// The identity: effects are differences, reported in percent of the control level.
    Linear,
}

/// One stratum (a hardware × workload group) of an estimate.
#[derive(Debug, Clone, Default)]
pub struct Stratum {
    /// The updated hosts' `y`.
    pub updated: Vec<f64>,
    /// The controls' `y`, or empty when judged against `reference`.
    pub controls: Vec<f64>,
    /// `f(reference level)`, when there are no controls.
    pub reference: Option<f64>,
}

/// An effect with its uncertainty, on the estimate's scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub effect: f64,
    pub se: f64,
    pub df: f64,
    pub low: f64,
    pub high: f64,
    /// Two-sided p-value of no effect.
    pub p_value: f64,
    /// The smallest effect (either way) this data detects with the given power at `alpha`.
    pub mde: f64,
}

/// Why no estimate could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEstimate {
    /// No stratum has both updated hosts and a reference (controls or a level).
    NoComparison,
    /// No residual degrees of freedom: every stratum has one host per side.
    NoVariance,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn ss(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum()
}

/// A residual variance fitted elsewhere: its sum of squares and degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residual {
    pub ss: f64,
    pub df: f64,
}

/// The residual variance of `strata` with each stratum's own mean taken out (strata as fixed
/// effects, updated and controls each with its own mean): what a group too small to estimate
/// its own spread borrows from the groups of its gate.
pub fn residual(strata: &[Stratum]) -> Residual {
    let mut r = Residual { ss: 0.0, df: 0.0 };
    for s in strata {
        for side in [&s.updated, &s.controls] {
            if side.len() > 1 {
                r.ss += ss(side);
                r.df += side.len() as f64 - 1.0;
            }
        }
    }
    r
}

/// The spread the groups of a gate share, fitted from each group's own residual variance: a
/// prior variance `s2` worth `df` degrees of freedom. Infinite (the plain pooled variance)
/// unless Bartlett's test finds the groups' variances unequal at [`HETEROGENEITY_ALPHA`];
/// then fitted by empirical Bayes (Smyth 2004, as limma's `fitFDist`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub s2: f64,
    pub df: f64,
    /// Every group's residual degrees of freedom, summed: no prior is worth more.
    pub total_df: f64,
}

/// Bartlett's test must reject equal variances at this level before groups keep part of their
/// own spread. Finding: with 24 groups of 6 degrees of freedom, the empirical Bayes fit alone
/// read sampling noise as unequal spreads about half the time (prior worth 9 to 16 degrees of
/// freedom on a fleet whose spread was one), and a three-host group lost a tenth of its catches.
pub const HETEROGENEITY_ALPHA: f64 = 0.01;

/// Bartlett's statistic for equal variances over `(s², df)` pairs, and its p-value against
/// chi-square with `k − 1` degrees of freedom.
fn bartlett(fit: &[(f64, f64)]) -> (f64, f64) {
    let k = fit.len() as f64;
    let total: f64 = fit.iter().map(|(_, d)| d).sum();
    let pooled = fit.iter().map(|(s, d)| s * d).sum::<f64>() / total;
    let m = total * pooled.ln() - fit.iter().map(|(s, d)| d * s.ln()).sum::<f64>();
    let c = 1.0 + (fit.iter().map(|(_, d)| 1.0 / d).sum::<f64>() - 1.0 / total) / (3.0 * (k - 1.0));
    let t = m / c;
    let p = statrs::distribution::ChiSquared::new(k - 1.0)
        .map(|chi| chi.sf(t))
        .unwrap_or(1.0);
    (t, p)
}

/// The prior of `groups`' residual variances: each with degrees of freedom and a positive
/// sum of squares enters the fit; with fewer than three, the plain pooled variance.
pub fn prior(groups: &[Residual]) -> Prior {
    let total = groups
        .iter()
        .fold(Residual { ss: 0.0, df: 0.0 }, |a, r| Residual {
            ss: a.ss + r.ss,
            df: a.df + r.df,
        });
    let pooled = Prior {
        s2: if total.df > 0.0 {
            total.ss / total.df
        } else {
            0.0
        },
        df: f64::INFINITY,
        total_df: total.df,
    };
    let fit: Vec<(f64, f64)> = groups
        .iter()
        .filter(|r| r.df > 0.0 && r.ss > 0.0 && r.ss.is_finite())
        .map(|r| (r.ss / r.df, r.df))
        .collect();
    if fit.len() < 3 || bartlett(&fit).1 >= HETEROGENEITY_ALPHA {
        return pooled;
    }
    let n = fit.len() as f64;
    // `ln s²` less its expectation under a scaled chi-square: what is left varies only by
    // the groups' true variances and by sampling (`trigamma(df/2)`).
    let e: Vec<f64> = fit
        .iter()
        .map(|(s2, d)| s2.ln() - digamma(d / 2.0) + (d / 2.0).ln())
        .collect();
    let mean = e.iter().sum::<f64>() / n;
    let spread = e.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
        - fit.iter().map(|(_, d)| trigamma(d / 2.0)).sum::<f64>() / n;
    if spread <= 0.0 {
        return pooled;
    }
    let df = 2.0 * trigamma_inverse(spread);
    Prior {
        s2: (mean + digamma(df / 2.0) - (df / 2.0).ln()).exp(),
        df,
        total_df: total.df,
    }
}

/// One group's residual variance moderated by the gate's `prior`: `(d·s² + d0·s0²)/(d + d0)`
/// on `d + d0` degrees of freedom, the prior worth at most the other groups' degrees of
/// freedom. A group like the others is judged on nearly the gate's spread (a maximum over
/// many groups of their own noisy variances no longer decides power), and one whose spread
/// stands out keeps most of its own.
pub fn moderated(own: Residual, prior: Prior) -> Residual {
    let d0 = prior.df.min((prior.total_df - own.df).max(0.0));
    Residual {
        ss: own.ss + d0 * prior.s2,
        df: own.df + d0,
    }
}

fn digamma(x: f64) -> f64 {
    statrs::function::gamma::digamma(x)
}

/// `ψ'(x)` for `x > 0`: the recurrence up to 6, then the asymptotic series.
fn trigamma(x: f64) -> f64 {
    let (mut x, mut acc) = (x, 0.0);
    while x < 6.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let x2 = 1.0 / (x * x);
    acc + 1.0 / x
        + x2 / 2.0
        + (1.0 / x) * x2 * (1.0 / 6.0 - x2 * (1.0 / 30.0 - x2 * (1.0 / 42.0 - x2 / 30.0)))
}

/// `ψ''(x)` for `x > 0`, as [`trigamma`].
fn tetragamma(x: f64) -> f64 {
    let (mut x, mut acc) = (x, 0.0);
    while x < 6.0 {
        acc -= 2.0 / (x * x * x);
        x += 1.0;
    }
    let x2 = 1.0 / (x * x);
    acc - x2 - x2 / x - x2 * x2 * (0.5 - x2 * (1.0 / 6.0 - x2 * (1.0 / 6.0 - x2 * 0.3)))
}

/// The `y` with `trigamma(y) = x`, by Newton's method from limma's start.
fn trigamma_inverse(x: f64) -> f64 {
    if x > 1e7 {
        return 1.0 / x.sqrt();
    }
    if x < 1e-6 {
        return 1.0 / x;
    }
    let mut y = 0.5 + 1.0 / x;
    for _ in 0..50 {
        let t = trigamma(y);
        let step = t * (1.0 - t / x) / tetragamma(y);
        y += step;
        if -step / y < 1e-8 {
            break;
        }
    }
    y
}

/// The estimate over `strata` at `1 − alpha` confidence, with the MDE at `power`.
pub fn estimate(strata: &[Stratum], alpha: f64, power: f64) -> Result<Estimate, NoEstimate> {
    estimate_with(strata, None, alpha, power)
}

/// [`estimate`], with the residual variance taken from `pooled` instead of `strata` when
/// given: the effect is still `strata`'s alone, its standard error
/// `sqrt(s²_pooled · Σ 1/w)` on the pooled degrees of freedom. One or two updated hosts of a
/// group are then a test of their own, against their own concurrent controls.
pub fn estimate_with(
    strata: &[Stratum],
    pooled: Option<Residual>,
    alpha: f64,
    power: f64,
) -> Result<Estimate, NoEstimate> {
    let mut num = 0.0;
    let mut weights = 0.0;
    let mut resid = 0.0;
    let mut df = 0.0;
    let mut used = 0;
    for s in strata {
        if s.updated.is_empty() {
            continue;
        }
        let (nu, mu) = (s.updated.len() as f64, mean(&s.updated));
        let (d, inv_w) = if !s.controls.is_empty() {
            let nc = s.controls.len() as f64;
            resid += ss(&s.controls);
            df += nc - 1.0;
            (mu - mean(&s.controls), 1.0 / nu + 1.0 / nc)
        } else if let Some(r) = s.reference {
            (mu - r, 1.0 / nu)
        } else {
            continue;
        };
        resid += ss(&s.updated);
        df += nu - 1.0;
        let w = 1.0 / inv_w;
        num += w * d;
        weights += w;
        used += 1;
    }
    if used == 0 || weights <= 0.0 {
        return Err(NoEstimate::NoComparison);
    }
    if let Some(p) = pooled {
        (resid, df) = (p.ss, p.df);
    }
    // Degrees of freedom may be fractional: a moderated variance borrows the prior's, which
    // groups whose spreads differ widely make worth less than one (limma's moderated t).
    if !(df > 0.0 && df.is_finite()) {
        return Err(NoEstimate::NoVariance);
    }
    let effect = num / weights;
    let s2 = resid / df;
    let se = (s2 / weights).sqrt();
    let t = StudentsT::new(0.0, 1.0, df).map_err(|_| NoEstimate::NoVariance)?;
    let crit = t.inverse_cdf(1.0 - alpha / 2.0);
    if !crit.is_finite() || !se.is_finite() {
        return Err(NoEstimate::NoVariance);
    }
    let p_value = if se > 0.0 {
        (2.0 * t.sf((effect / se).abs())).clamp(0.0, 1.0)
    } else if effect == 0.0 {
        1.0
    } else {
        0.0
    };
    let mde = (crit + t.inverse_cdf(power.clamp(0.5, 0.999))) * se;
    Ok(Estimate {
        effect,
        se,
        df,
        low: effect - crit * se,
        high: effect + crit * se,
        p_value,
        mde,
    })
}

/// An effect on `scale` in percent: of the ratio on the log scale, of `level` on the linear.
pub fn percent(x: f64, scale: Scale, level: f64) -> f64 {
    match scale {
        Scale::Log => (x.exp() - 1.0) * 100.0,
        Scale::Linear if level != 0.0 => x / level.abs() * 100.0,
        Scale::Linear => f64::NAN,
    }
}

/// The transform of `scale`.
pub fn transform(x: f64, scale: Scale) -> f64 {
    match scale {
        Scale::Log => x.ln(),
        Scale::Linear => x,
    }
}

/// Groups values by key, in key order: a small helper for building strata.
pub fn by_key<K: Ord, V>(items: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut m: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in items {
        m.entry(k).or_default().push(v);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stratum(u: &[f64], c: &[f64]) -> Stratum {
        Stratum {
            updated: u.to_vec(),
            controls: c.to_vec(),
            reference: None,
        }
    }

    /// Reference values from scipy 1.17.1 `ttest_ind(u, c, equal_var=True)` and
    /// `t.ppf(0.975, df)` on one stratum.
    #[test]
    fn one_stratum_is_the_pooled_two_sample_t_test() {
        let u = [1.0, 2.0, 3.0, 4.0];
        let c = [2.0, 3.0, 4.0, 5.0, 6.0];
        let e = estimate(&[stratum(&u, &c)], 0.05, 0.8).expect("estimate");
        assert!((e.effect - (-1.5)).abs() < 1e-12, "{e:?}");
        assert_eq!(e.df, 7.0);
        // t = -1.5 / (sqrt(s2) * sqrt(1/4 + 1/5)), s2 = (5 + 10) / 7
        let se = ((15.0f64 / 7.0) * (0.25 + 0.2)).sqrt();
        assert!((e.se - se).abs() < 1e-12);
        assert!((e.p_value - 0.170_8).abs() < 5e-4, "{e:?}");
        assert!((e.high - (-1.5 + 2.364_624 * se)).abs() < 1e-5);
    }

    #[test]
    fn strata_cancel_their_levels() {
        // Two groups at very different levels with the same shift of +1 for updated hosts.
        let a = stratum(&[11.0, 12.0, 13.0], &[10.0, 11.0, 12.0, 10.5]);
        let b = stratum(&[101.0, 102.0, 103.0], &[100.0, 101.0, 102.0, 100.5]);
        let e = estimate(&[a, b], 0.05, 0.8).expect("estimate");
        assert!((e.effect - 1.125).abs() < 1e-9, "{e:?}");
        assert!(
            e.high - e.low < 3.0,
            "levels must not widen the interval: {e:?}"
        );
    }

    #[test]
    fn a_reference_level_is_a_one_sample_test() {
        let s = Stratum {
            updated: vec![1.0, 2.0, 3.0],
            controls: vec![],
            reference: Some(0.0),
        };
        let e = estimate(&[s], 0.05, 0.8).expect("estimate");
        assert_eq!(e.effect, 2.0);
        assert_eq!(e.df, 2.0);
        assert!((e.se - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn too_little_data_says_why() {
        assert_eq!(
            estimate(&[stratum(&[1.0], &[])], 0.05, 0.8),
            Err(NoEstimate::NoComparison)
        );
        assert_eq!(
            estimate(&[stratum(&[1.0], &[2.0])], 0.05, 0.8),
            Err(NoEstimate::NoVariance)
        );
    }

    /// One updated host against two controls has one residual degree of freedom of its own;
    /// with the spread of the other groups it is a test on their degrees of freedom, with the
    /// same effect.
    #[test]
    fn a_pooled_residual_judges_one_host_on_the_other_groups_spread() {
        let small = stratum(&[1.5], &[0.9, 1.1]);
        let others = [
            stratum(&[10.0, 10.2, 9.8], &[10.1, 9.9, 10.0, 10.0]),
            stratum(&[5.0, 5.2], &[4.9, 5.1, 5.0]),
        ];
        let pooled = residual(&others);
        // 0.08 + 0.02 (updated) and 0.02 + 0.02 (controls): 0.14 on 2 + 1 + 3 + 2 df.
        assert!((pooled.ss - 0.14).abs() < 1e-12, "{pooled:?}");
        assert_eq!(pooled.df, 8.0);
        let own = estimate(std::slice::from_ref(&small), 0.05, 0.8).expect("own");
        let e = estimate_with(&[small], Some(pooled), 0.05, 0.8).expect("pooled");
        assert!((e.effect - 0.5).abs() < 1e-12 && (own.effect - 0.5).abs() < 1e-12);
        assert_eq!((own.df, e.df), (1.0, 8.0));
        let se = (0.14f64 / 8.0 * (1.0 + 0.5)).sqrt();
        assert!((e.se - se).abs() < 1e-12, "{e:?}");
        assert!(e.mde < own.mde / 4.0, "{} vs {}", e.mde, own.mde);
        // No spread anywhere is no estimate, as without a pool.
        assert_eq!(
            estimate_with(
                &[stratum(&[1.0], &[2.0])],
                Some(Residual { ss: 0.0, df: 0.0 }),
                0.05,
                0.8
            ),
            Err(NoEstimate::NoVariance)
        );
    }

    fn r(ss: f64, df: f64) -> Residual {
        Residual { ss, df }
    }

    /// Reference values from scipy 1.17.1 `polygamma(1, x)` and `polygamma(2, x)`.
    #[test]
    fn polygammas_match_scipy() {
        for (x, want) in [
            (0.5, 4.934_802_2),
            (1.0, 1.644_934_07),
            (3.7, 0.310_037_86),
            (11.0, 0.095_166_34),
        ] {
            assert!(
                (trigamma(x) - want).abs() < 1e-7,
                "trigamma({x}) = {}",
                trigamma(x)
            );
            assert!((trigamma_inverse(want) - x).abs() < 1e-6 * x, "{x}");
        }
        assert!((tetragamma(0.5) + 16.828_796_64).abs() < 1e-7);
        assert!((tetragamma(3.7) + 0.095_395_31).abs() < 1e-7);
    }

    /// Reference: limma's `fitFDist` steps in scipy (`digamma`, `polygamma`, and `brentq`
    /// for the inverse trigamma) on these variances: d0 = 3.31438816, s0² = 0.91143741.
    #[test]
    fn prior_matches_limma_fit_f_dist() {
        let s2 = [1.0, 4.3, 0.3, 1.1, 0.2, 6.0, 1.2, 0.5];
        let df = [4.0, 4.0, 5.0, 5.0, 3.0, 6.0, 4.0, 10.0];
        let groups: Vec<Residual> = s2.iter().zip(df).map(|(s, d)| r(s * d, d)).collect();
        let p = prior(&groups);
        assert!((p.df - 3.314_388_16).abs() < 1e-5, "{p:?}");
        assert!((p.s2 - 0.911_437_41).abs() < 1e-5, "{p:?}");
        assert_eq!(p.total_df, 41.0);
    }

    /// Reference: Bartlett's formula in numpy with scipy's `chi2.sf`.
    #[test]
    fn bartlett_matches_scipy() {
        let fit = [
            (1.0, 4.0),
            (4.3, 4.0),
            (0.3, 5.0),
            (1.1, 5.0),
            (0.2, 3.0),
            (6.0, 6.0),
            (1.2, 4.0),
            (0.5, 10.0),
        ];
        let (t, p) = bartlett(&fit);
        assert!(
            (t - 22.667_472_47).abs() < 1e-6 && (p - 0.001_947_33).abs() < 1e-7,
            "{t} {p}"
        );
        let alike: Vec<(f64, f64)> = [0.9, 1.1, 1.0, 1.2, 0.8, 1.05, 0.95, 1.3]
            .iter()
            .map(|s| (*s, 22.0))
            .collect();
        let (t, p) = bartlett(&alike);
        assert!(
            (t - 1.849_972).abs() < 1e-5 && (p - 0.967_675).abs() < 1e-5,
            "{t} {p}"
        );
    }

    /// Finding: groups judged on their own spread with six canaries each were inconclusive
    /// on every clean gate, because the largest of 24 noisy variances set some group's MDE
    /// above its threshold. Variances alike up to sampling are one shared spread.
    #[test]
    fn finding_alike_groups_share_one_spread() {
        let groups: Vec<Residual> = [0.9, 1.1, 1.0, 1.2, 0.8, 1.05, 0.95, 1.3]
            .iter()
            .map(|s| r(s * 22.0, 22.0))
            .collect();
        let p = prior(&groups);
        assert_eq!(p.df, f64::INFINITY, "{p:?}");
        let m = moderated(groups[7], p);
        // The prior is worth the other seven groups' 154 degrees of freedom.
        assert_eq!(m.df, 176.0);
        let s2 = m.ss / m.df;
        // (28.6 + 154 × 1.0375) / 176: nearly the pooled 1.0375, not its own 1.3.
        assert!((s2 - 1.070_3).abs() < 1e-3, "{m:?}");
        // Two groups, or none with spread: the plain pooled variance.
        let two = prior(&[r(2.0, 2.0), r(8.0, 2.0)]);
        assert_eq!((two.s2, two.df), (2.5, f64::INFINITY));
        assert_eq!(prior(&[r(0.0, 3.0), r(0.0, 0.0)]).s2, 0.0);
    }

    /// A group whose spread stands out among groups that differ keeps most of its own.
    #[test]
    fn a_group_that_stands_out_keeps_its_spread() {
        let mut groups: Vec<Residual> = [1.0, 0.3, 3.0, 0.5, 2.0, 1.5, 0.7]
            .iter()
            .map(|s| r(s * 10.0, 10.0))
            .collect();
        groups.push(r(20.0 * 10.0, 10.0));
        let p = prior(&groups);
        assert!(p.df.is_finite() && p.df < 10.0, "{p:?}");
        let m = moderated(groups[7], p);
        assert!(m.ss / m.df > 10.0, "{m:?}");
    }

    /// Finding (e2e, a one-shot boot test, 1 run in 2): the canary gate was inconclusive on
    /// "one host per side: no spread to test against" for a group of one canary and one
    /// control. Its moderated variance is all prior, and groups whose spreads differed widely
    /// had made the prior worth 0.6 degrees of freedom, which the test refused as fewer than
    /// one. The variance it borrows is a real one: the test runs on its fractional degrees of
    /// freedom, cautious as they make it, and says what it saw.
    #[test]
    fn finding_a_group_with_one_host_per_side_borrows_a_prior_worth_under_one_df() {
        let groups: Vec<Residual> = [0.001, 50.0, 0.02, 9.0, 0.3, 200.0]
            .iter()
            .map(|s| r(s * 2.0, 2.0))
            .collect();
        let p = prior(&groups);
        assert!(p.df > 0.0 && p.df < 1.0, "{p:?}");
        let m = moderated(r(0.0, 0.0), p);
        assert!(m.df > 0.0 && m.df < 1.0, "{m:?}");
        let e = estimate_with(&[stratum(&[1.3], &[1.0])], Some(m), 0.05, 0.8).expect("estimate");
        assert_eq!(e.df, m.df);
        assert!((e.effect - 0.3).abs() < 1e-12, "{e:?}");
        // Cautious: a wide interval, a large p-value, an MDE far above the effect.
        assert!(e.low < 0.0 && e.high > 0.6, "{e:?}");
        assert!(e.p_value > 0.5 && e.p_value <= 1.0, "{e:?}");
        assert!(e.mde.is_finite() && e.mde > 1.0, "{e:?}");
        // With no degrees of freedom anywhere there is still nothing to test against.
        assert_eq!(
            estimate_with(&[stratum(&[1.3], &[1.0])], Some(r(0.0, 0.0)), 0.05, 0.8).err(),
            Some(NoEstimate::NoVariance)
        );
    }

    #[test]
    fn mde_shrinks_with_hosts() {
        let few = estimate(&[stratum(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0])], 0.05, 0.8).expect("few");
        let many: Vec<f64> = (0..30).map(|i| 1.0 + (i % 3) as f64).collect();
        let lots = estimate(&[stratum(&many, &many)], 0.05, 0.8).expect("many");
        assert!(lots.mde < few.mde / 3.0, "{} vs {}", lots.mde, few.mde);
        assert_eq!(few.p_value, 1.0);
    }
}
