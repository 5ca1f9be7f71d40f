//! The human rendering of a plan: stages, hosts per group and stage, limits, exclusions,
//! uncovered groups and notes.

use super::{human_secs, CanaryCount, Plan};
use crate::text::thousands;
use jiff::Timestamp;

/// What the plan's header names besides the plan.
pub struct Header<'a> {
    pub policy: &'a str,
    pub inventory: &'a str,
    pub seed_flag: bool,
}

fn when(t: Timestamp) -> String {
    t.strftime("%a %Y-%m-%d %H:%M").to_string()
}

/// The human rendering: stages, hosts per group and stage, exclusions, gaps and notes.
pub fn render(p: &Plan, h: &Header<'_>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let c = &p.counts;
    let _ = writeln!(
        o,
        "plan  kernel {}  ·  {} hosts, {} eligible, {} canaries",
        p.target_kernel,
        thousands(c.hosts as u64),
        thousands(c.eligible as u64),
        c.canaries
    );
    let _ = writeln!(o, "      inventory {}  ·  policy {}", h.inventory, h.policy);
    let _ = writeln!(
        o,
        "      seed {} ({})  ·  start {} UTC  ·  last gate {} UTC ({})",
        p.seed,
        if h.seed_flag {
            "--seed"
        } else {
            "from the inventory hash"
        },
        when(p.start),
        when(p.finish),
        human_secs(p.finish.duration_since(p.start).as_secs().unsigned_abs())
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<14} {:>6} {:>7} {:>8} {:>10} {:>7}  {:<20}  {:<20}",
        "stage", "hosts", "cum%", "batches", "in flight", "bake", "start (UTC)", "gate (UTC)"
    );
    for s in &p.stages {
        let _ = writeln!(
            o,
            "{:<14} {:>6} {:>6.1}% {:>8} {:>10} {:>7}  {:<20}  {:<20}",
            s.info.name,
            thousands(s.info.size as u64),
            s.cumulative_percent,
            s.batches.len(),
            s.max_in_flight
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            human_secs(s.bake_secs),
            when(s.start),
            when(s.gate)
        );
        if let Some(split) = &s.split {
            let _ = writeln!(o, "{:<14} {split}", "");
        }
    }

    // Hosts per group and stage.
    let _ = writeln!(o);
    let labels: Vec<String> = p
        .stages
        .iter()
        .map(|s| match (s.info.wave, s.info.parts) {
            (0, 1) => "C".to_string(),
            (0, _) => format!("C.{}", s.info.part),
            (w, 1) => format!("{w}"),
            (w, _) => format!("{w}.{}", s.info.part),
        })
        .collect();
    let width = labels.iter().map(String::len).max().unwrap_or(1).max(3);
    let _ = write!(o, "{:<20} {:>6} {:>6}", "group", "hosts", "elig");
    for l in &labels {
        let _ = write!(o, " {l:>width$}");
    }
    let _ = writeln!(o);
    for g in &p.groups {
        let _ = write!(o, "{:<20} {:>6} {:>6}", g.name, g.hosts, g.eligible);
        for s in &p.stages {
            let n = s.groups.get(&g.name).copied().unwrap_or(0);
            let cell = if n == 0 {
                ".".to_string()
            } else {
                n.to_string()
            };
            let _ = write!(o, " {cell:>width$}");
        }
        let _ = writeln!(o);
    }

    canaries(&mut o, p);

    // Limits.
    let _ = writeln!(o);
    if p.blast_radius.is_empty() {
        let _ = writeln!(o, "blast radius: none");
    } else {
        let parts: Vec<String> = p
            .blast_radius
            .iter()
            .map(|l| {
                let mut v = Vec::new();
                if let Some(a) = l.in_flight {
                    v.push(format!("{a} in flight"));
                }
                if let Some(a) = l.per_wave {
                    v.push(format!("{a} per wave"));
                }
                format!("{}: {}", l.scope, v.join(", "))
            })
            .collect();
        let _ = writeln!(o, "blast radius: {}", parts.join("; "));
    }
    if p.windows.is_empty() {
        let _ = writeln!(o, "windows: any time");
    } else {
        let w: Vec<String> = p
            .windows
            .iter()
            .map(|w| format!("{} {}-{} {}", w.days.join(","), w.start, w.end, w.tz))
            .collect();
        let _ = writeln!(o, "windows: {}", w.join("; "));
    }

    // Exclusions, one per host.
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "excluded: {} ({} ineligible, {} already on target, {} newer, {} held for drift{})",
        p.excluded.len(),
        c.ineligible,
        c.on_target,
        c.newer,
        c.drift,
        if c.same_machine > 0 {
            format!(", {} on a machine listed twice", c.same_machine)
        } else {
            String::new()
        }
    );
    for e in &p.excluded {
        let kind = e.kind.as_str();
        let _ = writeln!(
            o,
            "  {:<24} {:<20} {:<11} {}",
            e.host, e.group, kind, e.reason
        );
    }
    let _ = writeln!(o);
    if p.uncovered.is_empty() {
        let _ = writeln!(
            o,
            "uncovered groups: none (every group with hosts to update has a canary)"
        );
    } else {
        let _ = writeln!(o, "uncovered groups: {}", p.uncovered.len());
        for u in &p.uncovered {
            let _ = writeln!(o, "  {:<20} {}", u.group, u.reason);
        }
    }
    for n in &p.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

/// A metric's column label: its name without the unit.
fn short(metric: &str) -> &str {
    ["_pct", "_ms", "_mbps"]
        .iter()
        .find_map(|u| metric.strip_suffix(u))
        .unwrap_or(metric)
}

/// How the canary counts were chosen and what each group's canary gate is expected to detect.
fn canaries(o: &mut String, p: &Plan) {
    use std::fmt::Write as _;
    let auto = p
        .groups
        .iter()
        .filter_map(|g| g.canary_sizing.as_ref())
        .find_map(|z| match z.rule {
            CanaryCount::Auto { floor, cap } => Some((floor, cap)),
            CanaryCount::Fixed(_) => None,
        });
    let rule = match auto {
        Some((floor, cap)) => format!("auto (floor {floor}, cap {cap})"),
        None => "fixed by `canary(group)`".to_string(),
    };
    let Some(z) = &p.sizing else {
        if auto.is_some() {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "canaries: {rule}; no baseline to size them from (`--baseline`), so each group takes its cap, or fewer where that would leave it too few controls"
            );
        }
        return;
    };
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "canaries: {rule}; expected MDE at the canary gate ({} before, {} bake; alpha {}, power {})",
        human_secs(z.before_secs),
        human_secs(z.bake_secs),
        z.alpha,
        z.power
    );
    let _ = writeln!(
        o,
        "          spread from {} ({} hosts, {} of history, a sample every {})",
        z.baseline,
        thousands(z.hosts as u64),
        human_secs(z.history_secs.max(0.0) as u64),
        human_secs(z.interval_secs.max(0.0) as u64)
    );
    let Some(first) = p.groups.iter().find_map(|g| g.canary_sizing.as_ref()) else {
        return;
    };
    let metrics: Vec<(&str, f64)> = first
        .expected
        .iter()
        .map(|e| (e.metric.as_str(), e.threshold))
        .collect();
    let _ = write!(o, "{:<20} {:>8} {:>8}", "group", "canaries", "controls");
    for (m, _) in &metrics {
        let _ = write!(o, " {:>14}", short(m));
    }
    let _ = writeln!(o);
    let _ = write!(o, "{:<20} {:>8} {:>8}", "  threshold", "", "");
    for (_, t) in &metrics {
        let _ = write!(o, " {:>14}", format!("{t}%"));
    }
    let _ = writeln!(o);
    let mut short_of = Vec::new();
    for g in &p.groups {
        let Some(s) = &g.canary_sizing else { continue };
        let _ = write!(o, "{:<20} {:>8} {:>8}", g.name, g.canaries, s.controls);
        for (m, _) in &metrics {
            let cell = match s.expected.iter().find(|e| e.metric == *m) {
                None => "-".to_string(),
                Some(e) if !e.mde.is_finite() => "no controls".to_string(),
                Some(e) => format!(
                    "{:.1}%{}",
                    e.mde,
                    if e.mde > e.threshold { " !" } else { "" }
                ),
            };
            let _ = write!(o, " {cell:>14}");
        }
        let _ = writeln!(o);
        if !s.within {
            short_of.push(format!("  {}: {}", g.name, s.why_or_default()));
        }
    }
    if !short_of.is_empty() {
        let _ = writeln!(
            o,
            "groups whose canaries cannot detect every threshold (marked !): expect the canary gate to call them inconclusive"
        );
        for l in short_of {
            let _ = writeln!(o, "{l}");
        }
    }
}
