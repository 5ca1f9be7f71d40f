//! How many canaries a group gets: `canary(group)`'s fixed count, or `"auto"` sized by power
//! from the baseline's spread (the fewest that detect every threshold).

use super::spec::CanaryCount;
use super::CanarySizing;
use crate::gate::sizing::{default_controls, ExpectedMde, Sizing};

/// A group as the canary choice sees it.
pub(super) struct GroupSize<'a> {
    pub name: &'a str,
    /// Eligible hosts (canaries come from these).
    pub eligible: usize,
    /// All the group's hosts (controls come from those not updated).
    pub total: usize,
}

/// The canary count for a group with at least one eligible host, its sizing (for `"auto"` or
/// when a baseline is given), and notes for the plan.
pub(super) fn choose(
    g: &GroupSize<'_>,
    rule: CanaryCount,
    sizing: Option<&Sizing>,
    notes: &mut Vec<String>,
) -> (usize, Option<CanarySizing>) {
    let (name, size) = (g.name, g.eligible);
    let controls = |n: usize| default_controls(n).min(g.total.saturating_sub(n));
    let expected = |n: usize| {
        sizing
            .map(|z| z.expected(name, n, controls(n)))
            .unwrap_or_default()
    };
    let within = |e: &[ExpectedMde]| e.iter().all(|x| x.mde <= x.threshold);
    let mut why = String::new();
    let canaries = match rule {
        CanaryCount::Fixed(want) => {
            if want == 0 {
                notes.push(format!(
                    "`canary(group)` is 0 for `{name}`; every group needs a canary, so it gets 1"
                ));
            }
            if want > size {
                notes.push(format!(
                    "`{name}` has {size} eligible host(s) for {want} canaries; all of them are canaries"
                ));
            }
            want.clamp(1, size.max(1))
        }
        CanaryCount::Auto { floor, cap } => {
            let hi = cap.min(size).max(1);
            let lo = floor.clamp(1, hi);
            match sizing {
                None => {
                    // The spread is unknown: the count whose comparison with its controls is
                    // tightest (sqrt(1/n + 1/m)), fewest on ties. Large groups take the cap;
                    // a small group is split evenly, never all canaries and no controls.
                    let factor = |n: usize| match controls(n) {
                        0 => f64::INFINITY,
                        m => (1.0 / n as f64 + 1.0 / m as f64).sqrt(),
                    };
                    let best = (lo..=hi)
                        .min_by(|a, b| factor(*a).total_cmp(&factor(*b)))
                        .unwrap_or(hi);
                    why = if best == hi {
                        format!("no baseline to size from: the cap, {hi}")
                    } else {
                        format!(
                            "no baseline to size from: {best}, which leaves {} control(s) (the tightest comparison of {lo}..={hi})",
                            controls(best)
                        )
                    };
                    best
                }
                Some(_) => match (lo..=hi).find(|&n| within(&expected(n))) {
                    Some(n) if n == lo => {
                        why = format!("the floor, {lo}, detects every threshold");
                        n
                    }
                    Some(n) => {
                        why = format!("the fewest of {lo}..={hi} that detect every threshold");
                        n
                    }
                    None => {
                        // Nothing reaches every threshold: the count that comes closest
                        // (the smallest worst ratio), fewest on ties.
                        let worst = |n: usize| {
                            expected(n)
                                .iter()
                                .map(|x| x.mde / x.threshold)
                                .fold(0.0f64, f64::max)
                        };
                        let best = (lo..=hi)
                            .min_by(|a, b| worst(*a).total_cmp(&worst(*b)))
                            .unwrap_or(hi);
                        why = format!(
                            "no count of {lo}..={hi} detects every threshold; {best} comes closest: expect the canary gate to call this group inconclusive"
                        );
                        best
                    }
                },
            }
        }
    };
    let e = expected(canaries);
    let sized =
        (sizing.is_some() || matches!(rule, CanaryCount::Auto { .. })).then(|| CanarySizing {
            rule,
            controls: controls(canaries),
            within: within(&e),
            expected: e,
            why,
        });
    (canaries, sized)
}
