//! The statistics a gate needs, over plain slices: Mann-Whitney U with its normal
//! approximation, the Hodges-Lehmann shift and its confidence interval, the exact conditional
//! binomial test for event rates, and Holm and Benjamini-Hochberg corrections.
//!
//! Conventions follow scipy (`mannwhitneyu(method="asymptotic", use_continuity=True)`,
//! `binomtest`, `false_discovery_control`); the tests hold scipy's outputs on fixed data.

use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// Which way a difference is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    TwoSided,
    /// The first sample tends to be larger.
    Greater,
    /// The first sample tends to be smaller.
    Less,
}

/// Mann-Whitney U for `x` against `y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of `x`: pairs with `x > y`, plus half the ties.
    pub u: f64,
    pub p_value: f64,
}

fn std_normal() -> Option<Normal> {
    Normal::new(0.0, 1.0).ok()
}

/// Sorts, dropping NaN. Returns how many were dropped.
pub fn clean_sorted(v: &mut Vec<f64>) -> usize {
    let before = v.len();
    v.retain(|x| !x.is_nan());
    v.sort_by(f64::total_cmp);
    before - v.len()
}

/// Mann-Whitney U on two **sorted, NaN-free** samples, with the tie-corrected normal
/// approximation and continuity correction. `None` when either sample is empty. When every
/// value is tied the test has no information and the p-value is 1.
pub fn mann_whitney(x: &[f64], y: &[f64], alt: Alternative) -> Option<MannWhitney> {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    if x.is_empty() || y.is_empty() {
        return None;
    }
    // Merge the sorted samples, giving each run of ties its mean rank.
    let (mut i, mut j) = (0usize, 0usize);
    let mut rank = 1.0f64;
    let mut r1 = 0.0f64;
    let mut tie_term = 0.0f64;
    while i < x.len() || j < y.len() {
        let v = match (x.get(i), y.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        let (mut cx, mut cy) = (0usize, 0usize);
        while x.get(i) == Some(&v) {
            i += 1;
            cx += 1;
        }
        while y.get(j) == Some(&v) {
            j += 1;
            cy += 1;
        }
        let t = (cx + cy) as f64;
        let mean_rank = rank + (t - 1.0) / 2.0;
        r1 += mean_rank * cx as f64;
        tie_term += t * t * t - t;
        rank += t;
    }
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let mu = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var.is_nan() || var <= 0.0 {
        return Some(MannWhitney {
            u: u1,
            p_value: 1.0,
        });
    }
    let sd = var.sqrt();
    let norm = std_normal()?;
    let p = match alt {
        // scipy: U = max(U1, U2) for two-sided, z from (U - mu - 0.5) / sd, p = 2·sf(z).
        Alternative::TwoSided => {
            let u = u1.max(n1 * n2 - u1);
            (2.0 * norm.sf((u - mu - 0.5) / sd)).min(1.0)
        }
        Alternative::Greater => norm.sf((u1 - mu - 0.5) / sd),
        Alternative::Less => {
            let u2 = n1 * n2 - u1;
            norm.sf((u2 - mu - 0.5) / sd)
        }
    };
    Some(MannWhitney {
        u: u1,
        p_value: p.clamp(0.0, 1.0),
    })
}

/// How many pairwise differences `x_i - y_j` are at most `t`, for sorted samples: O(n + m).
fn count_le(x: &[f64], y: &[f64], t: f64) -> (u64, f64) {
    // For each x_i, the y_j with x_i - y_j <= t are those with y_j >= x_i - t; as x_i rises the
    // threshold rises, so one pointer walks y once.
    let mut count = 0u64;
    let mut best = f64::NEG_INFINITY;
    let mut j = 0usize;
    for &xi in x {
        while j < y.len() && y[j] < xi - t {
            j += 1;
        }
        count += (y.len() - j) as u64;
        if let Some(&yj) = y.get(j) {
            best = best.max(xi - yj);
        }
    }
    (count, best)
}

/// Maps a float to an integer with the same order, so bisection over values ends in at most
/// 64 steps.
fn ordered(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

fn unordered(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// The `k`-th smallest (1-based) of the `n·m` differences `x_i - y_j`, for sorted samples, by
/// bisection on the value with an O(n + m) count: O(64 · (n + m)) instead of O(n·m).
fn kth_difference(x: &[f64], y: &[f64], k: u64) -> Option<f64> {
    let (x0, x1, y0, y1) = (*x.first()?, *x.last()?, *y.first()?, *y.last()?);
    let (mut lo, mut hi) = (ordered(x0 - y1), ordered(x1 - y0));
    if count_le(x, y, unordered(lo)).0 >= k {
        return Some(count_le(x, y, unordered(lo)).1);
    }
    // Invariant: fewer than k differences at or below `lo`, at least k at or below `hi`.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if count_le(x, y, unordered(mid)).0 >= k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(count_le(x, y, unordered(hi)).1)
}

/// The Hodges-Lehmann shift of `x` against `y` (median of all `x_i - y_j`) and its
/// distribution-free `1 - alpha` confidence interval: the differences of order `k + 1` and
/// `n·m - k`, with `k = floor(n·m/2 - z·sqrt(n·m·(n+m+1)/12))`. Samples must be sorted and
/// NaN-free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

pub fn hodges_lehmann(x: &[f64], y: &[f64], alpha: f64) -> Option<Shift> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let (n, m) = (x.len() as u64, y.len() as u64);
    let total = n * m;
    let estimate = if total % 2 == 1 {
        kth_difference(x, y, total / 2 + 1)?
    } else {
        (kth_difference(x, y, total / 2)? + kth_difference(x, y, total / 2 + 1)?) / 2.0
    };
    let z = std_normal()?.inverse_cdf(1.0 - alpha / 2.0);
    let (nf, mf) = (n as f64, m as f64);
    let k = (nf * mf / 2.0 - z * (nf * mf * (nf + mf + 1.0) / 12.0).sqrt())
        .floor()
        .max(0.0) as u64;
    let low = kth_difference(x, y, (k + 1).min(total))?;
    let high = kth_difference(x, y, total.saturating_sub(k).max(1))?;
    Some(Shift {
        estimate,
        low,
        high,
    })
}

/// Exact conditional test of two Poisson rates: with `k1` events over exposure `t1` and `k0`
/// over `t0`, under equal rates `k1 ~ Binomial(k1 + k0, t1 / (t1 + t0))`. Returns the one-sided
/// p-value that the first rate is higher. `None` for non-positive exposure.
pub fn poisson_rate_greater(k1: u64, t1: f64, k0: u64, t0: f64) -> Option<f64> {
    if !(t1 > 0.0 && t0 > 0.0) {
        return None;
    }
    let n = k1 + k0;
    if n == 0 || k1 == 0 {
        return Some(1.0);
    }
    let b = Binomial::new(t1 / (t1 + t0), n).ok()?;
    // P(X >= k1) = 1 - P(X <= k1 - 1)
    Some(b.sf(k1 - 1).clamp(0.0, 1.0))
}

/// A sign test of a sorted, NaN-free sample against a reference median `m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignTest {
    /// Exact two-sided binomial p-value of the count above `m` (values equal to `m` dropped).
    pub p_value: f64,
    /// The sample median minus `m`, and the distribution-free 95% interval of that difference
    /// from the order statistics `j` and `n + 1 - j`.
    pub shift: f64,
    pub low: f64,
    pub high: f64,
}

pub fn sign_test(x: &[f64], m: f64) -> Option<SignTest> {
    if x.is_empty() || m.is_nan() {
        return None;
    }
    let above = x.iter().filter(|v| **v > m).count() as u64;
    let below = x.iter().filter(|v| **v < m).count() as u64;
    let n = above + below;
    let p_value = if n == 0 {
        1.0
    } else {
        let b = Binomial::new(0.5, n).ok()?;
        let k = above.min(below);
        (2.0 * b.cdf(k)).min(1.0)
    };
    let len = x.len() as f64;
    let z = std_normal()?.inverse_cdf(0.975);
    let j = ((len / 2.0 - z * len.sqrt() / 2.0).floor().max(1.0)) as usize;
    let low = *x.get(j - 1)?;
    let high = *x.get(x.len().saturating_sub(j))?;
    Some(SignTest {
        p_value,
        shift: quantile(x, 0.5)? - m,
        low: low - m,
        high: high - m,
    })
}

/// Benjamini-Hochberg adjusted p-values (false discovery rate), in input order. NaN stays NaN.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|i| !p[*i].is_nan()).collect();
    let m = idx.len() as f64;
    idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (r, &i) in idx.iter().enumerate() {
        let rank = m - r as f64;
        running = running.min(p[i] * m / rank);
        out[i] = running.min(1.0);
    }
    out
}

/// Holm step-down adjusted p-values (family-wise error rate), in input order. NaN stays NaN.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|i| !p[*i].is_nan()).collect();
    let m = idx.len() as f64;
    idx.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (r, &i) in idx.iter().enumerate() {
        running = running.max((m - r as f64) * p[i]);
        out[i] = running.min(1.0);
    }
    out
}

pub use fleetward_stdlib::stats::quantile;

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from scipy 1.17.1:
    /// `mannwhitneyu(x, y, alternative=..., method="asymptotic", use_continuity=True)`, and
    /// for the shift `median(x[:,None] - y[None,:])` with the interval at order statistics
    /// `k+1`, `nm-k`, `k = floor(nm/2 - norm.ppf(0.975)·sqrt(nm(n+m+1)/12))`.
    struct Ref {
        x: Vec<f64>,
        y: Vec<f64>,
        u: f64,
        p: [f64; 3], // two-sided, greater, less
        hl: (f64, f64, f64),
    }

    fn refs() -> Vec<(&'static str, Ref)> {
        let f = |v: &[f64]| v.to_vec();
        vec![
            (
                "distinct",
                Ref {
                    x: f(&[1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8]),
                    y: f(&[3.0, 4.5, 6.1, 7.2, 9.0, 10.5, 11.2, 12.9, 13.3, 14.0]),
                    u: 15.0,
                    p: [0.02948936338440756, 0.9882661767619544, 0.01474468169220378],
                    hl: (-4.55, -7.9, -0.5999999999999996),
                },
            ),
            (
                "ties",
                Ref {
                    x: f(&[1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0]),
                    y: f(&[2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 6.0, 6.0, 7.0]),
                    u: 16.5,
                    p: [
                        0.062484795672341206,
                        0.9750537275484503,
                        0.031242397836170603,
                    ],
                    hl: (-1.5, -3.0, 0.0),
                },
            ),
            (
                "shifted",
                Ref {
                    x: (0..40).map(|i| 10.0 + ((i * 7) % 13) as f64).collect(),
                    y: (0..50).map(|j| 8.0 + ((j * 5) % 11) as f64).collect(),
                    u: 1404.5,
                    p: [
                        0.001001129979238238,
                        0.000500564989619119,
                        0.9995137311810618,
                    ],
                    hl: (3.0, 1.0, 4.0),
                },
            ),
            (
                "large",
                Ref {
                    x: (0..200).map(|i| ((i * 37) % 101 + 3) as f64).collect(),
                    y: (0..300).map(|j| ((j * 53) % 97) as f64).collect(),
                    u: 33115.0,
                    p: [0.04907832265461272, 0.02453916132730636, 0.9754971729901144],
                    hl: (5.0, 0.0, 11.0),
                },
            ),
            (
                "all_equal",
                Ref {
                    x: f(&[5.0, 5.0, 5.0]),
                    y: f(&[5.0, 5.0, 5.0, 5.0]),
                    u: 6.0,
                    p: [1.0, 1.0, 1.0],
                    hl: (0.0, 0.0, 0.0),
                },
            ),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        for (name, r) in refs() {
            let (mut x, mut y) = (r.x.clone(), r.y.clone());
            clean_sorted(&mut x);
            clean_sorted(&mut y);
            for (alt, want) in [
                Alternative::TwoSided,
                Alternative::Greater,
                Alternative::Less,
            ]
            .iter()
            .zip(r.p)
            {
                let got = mann_whitney(&x, &y, *alt).unwrap();
                assert!(close(got.u, r.u), "{name} U {} != {}", got.u, r.u);
                assert!(
                    close(got.p_value, want),
                    "{name} {alt:?}: p {} != {want}",
                    got.p_value
                );
            }
            let s = hodges_lehmann(&x, &y, 0.05).unwrap();
            assert!(
                close(s.estimate, r.hl.0),
                "{name} HL {} != {}",
                s.estimate,
                r.hl.0
            );
            assert!(close(s.low, r.hl.1), "{name} low {} != {}", s.low, r.hl.1);
            assert!(
                close(s.high, r.hl.2),
                "{name} high {} != {}",
                s.high,
                r.hl.2
            );
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(mann_whitney(&[], &[1.0], Alternative::TwoSided), None);
        assert_eq!(hodges_lehmann(&[1.0], &[], 0.05), None);
        let mut v = vec![3.0, f64::NAN, 1.0, 2.0];
        assert_eq!(clean_sorted(&mut v), 1);
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
        // One value each: no variance problem, a defined p-value.
        let one = mann_whitney(&[2.0], &[1.0], Alternative::TwoSided).unwrap();
        assert!(one.p_value > 0.0 && one.p_value <= 1.0);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
    }

    #[test]
    fn sign_test_matches_scipy_binomtest() {
        // 20 values, 15 above the median 10: scipy.stats.binomtest(5, 20, 0.5).pvalue
        let mut x: Vec<f64> = (0..20)
            .map(|i| {
                if i < 5 {
                    9.0 - i as f64 * 0.1
                } else {
                    10.5 + i as f64 * 0.1
                }
            })
            .collect();
        clean_sorted(&mut x);
        let t = sign_test(&x, 10.0).unwrap();
        assert!(close(t.p_value, 0.04138946533203125), "{t:?}");
        assert!(
            t.shift > 0.0 && t.low < t.shift && t.shift < t.high,
            "{t:?}"
        );
        // Everything on the median: no information.
        assert_eq!(sign_test(&[10.0, 10.0], 10.0).unwrap().p_value, 1.0);
        assert_eq!(sign_test(&[], 10.0), None);
        assert_eq!(sign_test(&[1.0], f64::NAN), None);
    }

    #[test]
    fn corrections_match_scipy() {
        let p = [0.01, 0.04, 0.03, 0.005, 0.2];
        // scipy.stats.false_discovery_control(p, method="bh")
        let bh = benjamini_hochberg(&p);
        for (a, b) in bh.iter().zip([0.025, 0.05, 0.05, 0.025, 0.2]) {
            assert!(close(*a, b), "{bh:?}");
        }
        let h = holm(&p);
        for (a, b) in h.iter().zip([0.04, 0.09, 0.09, 0.025, 0.2]) {
            assert!(close(*a, b), "{h:?}");
        }
        assert!(benjamini_hochberg(&[f64::NAN, 0.5])[0].is_nan());
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn poisson_rates_match_scipy_binomtest() {
        // scipy.stats.binomtest(k1, k1 + k0, t1 / (t1 + t0), alternative="greater").pvalue
        assert!(close(
            poisson_rate_greater(3, 100.0, 2, 1000.0).unwrap(),
            0.00652588310535172
        ));
        assert!(close(
            poisson_rate_greater(3, 50.0, 0, 1000.0).unwrap(),
            0.00010797969981643449
        ));
        assert_eq!(poisson_rate_greater(0, 100.0, 2, 1000.0), Some(1.0));
        assert_eq!(poisson_rate_greater(1, 0.0, 2, 1000.0), None);
    }
}
