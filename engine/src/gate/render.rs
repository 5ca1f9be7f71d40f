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

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.1}%")
    } else {
        "-".into()
    }
}

/// The human rendering of a gate: verdict, reasons, totals and method, then a row per level ×
/// metric (pooled levels first) and one per event.
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
        "  {} updated hosts ({} samples) in {} groups; {} control hosts ({} samples); {} tests, {} correction; {} insufficient",
        t.hosts, t.samples, c.groups.len(), t.control_hosts, t.control_samples, t.comparisons, t.correction.describe(), t.insufficient
    );
    let _ = writeln!(
        o,
        "  groups: {}",
        super::approval_summary(&super::judged(c, v))
    );
    let _ = writeln!(o, "  method: {}", c.method.describe());
    for w in warnings {
        let _ = writeln!(o, "  warning: {w}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<18} {:<20} {:>5} {:>5} {:>10} {:>10} {:>26} {:>7} {:>9}  flags",
        "level", "metric", "hosts", "ctrl", "mean", "control", "effect [95% CI]", "mde", "p (adj)"
    );
    let rows = c
        .levels
        .iter()
        .flat_map(|l| &l.metrics)
        .chain(c.groups.iter().flat_map(|g| &g.metrics));
    for m in rows {
        let flags = if m.pooled_only {
            "pooled only".to_string()
        } else if m.insufficient {
            format!("insufficient: {}", m.reason)
        } else {
            let mut f = Vec::new();
            if m.worse {
                f.push("worse".to_string());
            }
            if m.pooled_variance {
                f.push(format!("moderated variance ({:.0} df)", m.df));
            }
            f.join(", ")
        };
        let (effect, mde, p) = if m.insufficient || m.pooled_only && !m.mde.is_finite() {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            (
                format!(
                    "{} [{}, {}]",
                    pct(m.effect),
                    pct(m.effect_low),
                    pct(m.effect_high)
                ),
                format!("{:.1}%", m.mde),
                num(m.p_adjusted),
            )
        };
        let _ = writeln!(
            o,
            "{:<18} {:<20} {:>5} {:>5} {:>10} {:>10} {:>26} {:>7} {:>9}  {flags}",
            m.level,
            m.name,
            m.hosts,
            m.control_hosts,
            num(m.mean),
            num(m.control_mean),
            effect,
            mde,
            p
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<22} {:>6} {:>12} {:>12} {:>10}",
        "event", "count", "per host-h", "controls", "p"
    );
    for (name, e) in &c.events {
        let _ = writeln!(
            o,
            "{:<22} {:>6} {:>12} {:>12} {:>10}",
            name,
            e.count,
            num(e.rate),
            num(e.control_rate),
            num(e.p_value)
        );
    }
    o
}
