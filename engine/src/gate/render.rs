//! The human rendering of a gate's comparison and verdict.

use super::Comparison;
use crate::model::Verdict;

/// A number in at most a few characters: 3 decimals, or 3 significant digits in `e` form.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-2) {
        format!("{x:.3e}")
    } else {
        format!("{x:.3}")
    }
}

/// The human rendering of a gate: verdict, reasons, totals, then a row per group × metric
/// and one per event.
pub fn render(c: &Comparison, v: &Verdict, warnings: &[String]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let word = v.verdict.as_str().to_uppercase();
    let t = &c.totals;
    let _ = writeln!(o, "gate  {}: {word}", c.name);
    for r in &v.reasons {
        let _ = writeln!(o, "  - {r}");
    }
    let _ = writeln!(
        o,
        "  {} samples from {} hosts in {} groups; baseline {} samples from {} hosts; {} comparisons, {} correction; {} insufficient",
        t.samples, t.hosts, c.groups.len(), t.baseline_samples, t.baseline_hosts, t.comparisons, t.correction.describe(), t.insufficient
    );
    for w in warnings {
        let _ = writeln!(o, "  warning: {w}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<18} {:<20} {:>5} {:>10} {:>10} {:>8} {:>10} {:>26}  flags",
        "group", "metric", "n", "mean", "baseline", "change", "p (adj)", "shift [95% CI]"
    );
    for g in &c.groups {
        for m in &g.metrics {
            let flags = if m.insufficient {
                format!("insufficient: {}", m.reason)
            } else if m.worse {
                "worse".to_string()
            } else {
                String::new()
            };
            let shift = if m.insufficient {
                "-".to_string()
            } else {
                format!(
                    "{} [{}, {}]",
                    num(m.shift),
                    num(m.shift_low),
                    num(m.shift_high)
                )
            };
            let _ = writeln!(
                o,
                "{:<18} {:<20} {:>5} {:>10} {:>10} {:>7}% {:>10} {:>26}  {flags}",
                g.name,
                m.name,
                m.n,
                num(m.mean),
                num(m.baseline_mean),
                if m.pct_change.is_nan() {
                    "-".into()
                } else {
                    format!("{:+.2}", m.pct_change)
                },
                if m.insufficient {
                    "-".into()
                } else {
                    num(m.p_adjusted)
                },
                shift
            );
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<22} {:>6} {:>12} {:>12} {:>10}",
        "event", "count", "per host-h", "baseline", "p"
    );
    for (name, e) in &c.events {
        let _ = writeln!(
            o,
            "{:<22} {:>6} {:>12} {:>12} {:>10}",
            name,
            e.count,
            num(e.rate),
            num(e.baseline_rate),
            num(e.p_value)
        );
    }
    o
}
