//! The gate report people look at: one self-contained HTML file with inline SVG (no scripts,
//! no fetches). Per level × metric, each host's before and after values for the updated hosts
//! and the controls as strip plots, the effect with its interval against the policy's
//! threshold, and the verdict with its reasons; flagged comparisons first.

use super::{Comparison, Method, MetricComparison};
use crate::model::{Verdict, VerdictKind};
use std::fmt::Write as _;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn colour(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::Pass => "#1a7f37",
        VerdictKind::Inconclusive => "#9a6700",
        VerdictKind::Pause => "#bc4c00",
        VerdictKind::Fail => "#cf222e",
    }
}

/// How a comparison reads in the report: flagged ones come first.
fn flag(m: &MetricComparison, reasons: &[String]) -> (u8, &'static str) {
    let named = reasons.iter().any(|r| {
        r.starts_with(&format!("{}: {} ", m.level, m.name))
            || r.starts_with(&format!("{}: insufficient data for {} ", m.level, m.name))
            || r.starts_with(&format!("{}: {} cannot", m.level, m.name))
            || (r.starts_with(&format!("cannot judge {}: ", m.level))
                || r.starts_with(&format!("cannot judge level {}: ", m.level)))
                && r.contains(&format!(" for {} (", m.name))
    });
    if named {
        (0, "named in the verdict")
    } else if m.worse {
        (1, "worse (below the threshold or significance)")
    } else if m.insufficient {
        (2, "insufficient data")
    } else {
        (3, "")
    }
}

const W: f64 = 300.0;
const H: f64 = 150.0;
const PAD: f64 = 28.0;

/// Strip plot of the host values: four columns (updated before/after, controls before/after),
/// a line from each host's before to its after.
fn strips(m: &MetricComparison) -> String {
    let mut o = String::new();
    let vals: Vec<f64> = m
        .points
        .iter()
        .flat_map(|p| p.before.into_iter().chain(std::iter::once(p.after)))
        .filter(|x| x.is_finite())
        .collect();
    let _ = write!(
        o,
        r#"<svg class="strip" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="host values of {} at {}">"#,
        esc(&m.name),
        esc(&m.level)
    );
    if vals.is_empty() {
        let _ = write!(o, r#"<text x="10" y="70">no host values</text></svg>"#);
        return o;
    }
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let span = if hi > lo {
        hi - lo
    } else {
        hi.abs().max(1.0) * 0.1
    };
    let (lo, hi) = (lo - span * 0.05, hi + span * 0.05);
    let y = |v: f64| H - PAD - (v - lo) / (hi - lo) * (H - 2.0 * PAD);
    let col = |i: usize| PAD + 20.0 + i as f64 * (W - 2.0 * PAD - 20.0) / 3.0;
    let _ = write!(
        o,
        r##"<line x1="{PAD}" y1="{}" x2="{PAD}" y2="{}" stroke="#888"/><text x="2" y="{}" font-size="9">{}</text><text x="2" y="{}" font-size="9">{}</text>"##,
        PAD,
        H - PAD,
        PAD,
        super::render::num(hi),
        H - PAD,
        super::render::num(lo)
    );
    for (i, label) in ["upd before", "upd after", "ctl before", "ctl after"]
        .iter()
        .enumerate()
    {
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" font-size="9" text-anchor="middle">{label}</text>"#,
            col(i),
            H - 8.0
        );
    }
    for (k, p) in m.points.iter().enumerate() {
        let (c0, fill) = if p.control {
            (2, "#0969da")
        } else {
            (0, "#bc4c00")
        };
        let jitter = ((k * 37 % 17) as f64 - 8.0) * 1.2;
        let ya = y(p.after);
        if let Some(b) = p.before.filter(|b| b.is_finite()) {
            let yb = y(b);
            let _ = write!(
                o,
                r#"<line x1="{:.1}" y1="{yb:.1}" x2="{:.1}" y2="{ya:.1}" stroke="{fill}" stroke-opacity="0.25"/><circle class="pt" cx="{:.1}" cy="{yb:.1}" r="2.5" fill="{fill}" fill-opacity="0.7"><title>{} before {}</title></circle>"#,
                col(c0) + jitter,
                col(c0 + 1) + jitter,
                col(c0) + jitter,
                esc(&p.host),
                super::render::num(b)
            );
        }
        let _ = write!(
            o,
            r#"<circle class="pt" cx="{:.1}" cy="{ya:.1}" r="2.5" fill="{fill}"><title>{} after {}</title></circle>"#,
            col(c0 + 1) + jitter,
            esc(&p.host),
            super::render::num(p.after)
        );
    }
    o.push_str("</svg>");
    o
}

/// The effect with its interval on an axis with zero and the threshold marked.
fn interval(m: &MetricComparison, threshold: Option<f64>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="effect" width="{W}" height="60" viewBox="0 0 {W} 60" role="img" aria-label="effect of {} at {}">"#,
        esc(&m.name),
        esc(&m.level)
    );
    if m.insufficient || !m.effect.is_finite() {
        o.push_str(r#"<text x="10" y="35" font-size="11">no effect estimated</text></svg>"#);
        return o;
    }
    let t = threshold.unwrap_or(0.0).abs();
    let reach = [
        m.effect_low.abs(),
        m.effect_high.abs(),
        t,
        m.mde.abs().min(100.0),
        1.0,
    ]
    .into_iter()
    .filter(|x| x.is_finite())
    .fold(0.0, f64::max)
        * 1.15;
    let x = |v: f64| W / 2.0 + v / reach * (W / 2.0 - 12.0);
    let _ = write!(
        o,
        r##"<line x1="8" y1="30" x2="{}" y2="30" stroke="#ccc"/><line x1="{0:.1}" y1="12" x2="{0:.1}" y2="48" stroke="#555"/>"##,
        W - 8.0,
    );
    let _ = write!(
        o,
        r##"<line x1="{:.1}" y1="12" x2="{:.1}" y2="48" stroke="#555"/><text x="{:.1}" y="58" font-size="9" text-anchor="middle">0</text>"##,
        x(0.0),
        x(0.0),
        x(0.0)
    );
    if t > 0.0 {
        for s in [-1.0, 1.0] {
            let _ = write!(
                o,
                r##"<line class="threshold" x1="{0:.1}" y1="10" x2="{0:.1}" y2="50" stroke="#cf222e" stroke-dasharray="3,2"/><text x="{0:.1}" y="9" font-size="9" text-anchor="middle">{1:+}%</text>"##,
                x(s * t),
                s * t
            );
        }
    }
    let colour = if m.worse { "#bc4c00" } else { "#1a7f37" };
    let _ = write!(
        o,
        r#"<line class="ci" x1="{:.1}" y1="30" x2="{:.1}" y2="30" stroke="{colour}" stroke-width="4"/><circle class="est" cx="{:.1}" cy="30" r="5" fill="{colour}"/><text x="{:.1}" y="24" font-size="10" text-anchor="middle">{:+.1}% [{:+.1}, {:+.1}]</text></svg>"#,
        x(m.effect_low),
        x(m.effect_high),
        x(m.effect),
        x(m.effect),
        m.effect,
        m.effect_low,
        m.effect_high
    );
    o
}

/// The report of one gate. `threshold(metric)` gives the policy's threshold in percent, when
/// the policy has one.
pub fn html(
    c: &Comparison,
    v: &Verdict,
    warnings: &[String],
    threshold: &dyn Fn(&str) -> Option<f64>,
) -> String {
    let mut o = String::new();
    let word = v.verdict.as_str().to_uppercase();
    let _ = write!(
        o,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>gate {}: {word}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328}}
h1 .v{{color:{}}} .panel{{display:inline-block;vertical-align:top;border:1px solid #d0d7de;border-radius:6px;margin:6px;padding:8px;width:{}px}}
.panel.flag0{{border-color:{};border-width:2px}} .meta{{font-size:12px;color:#57606a}} td,th{{padding:2px 8px;text-align:left}}
</style></head><body>"#,
        esc(&c.name),
        colour(v.verdict),
        W + 4.0,
        colour(v.verdict)
    );
    let _ = write!(
        o,
        r#"<h1>gate {}: <span class="v" id="verdict">{word}</span></h1><ul id="reasons">"#,
        esc(&c.name)
    );
    for r in &v.reasons {
        let _ = write!(o, "<li>{}</li>", esc(r));
    }
    let t = &c.totals;
    let _ = write!(
        o,
        r#"</ul><p class="meta">{} updated hosts ({} samples) in {} groups; {} control hosts ({} samples); {} tests, {} correction; {} insufficient.<br>method: {}</p>"#,
        t.hosts,
        t.samples,
        c.groups.len(),
        t.control_hosts,
        t.control_samples,
        t.comparisons,
        t.correction.describe(),
        t.insufficient,
        esc(c.method.describe())
    );
    for w in warnings {
        let _ = write!(o, r#"<p class="meta">warning: {}</p>"#, esc(w));
    }
    // Each group and how it came out: a canary approval claims no more than this table.
    let groups = super::judged(c, v);
    let _ = write!(
        o,
        r#"<h2>groups</h2><p id="groups-summary">{}</p><table id="groups"><tr><th>group</th><th>status</th><th>hosts</th><th>controls</th><th>metrics tested on its own</th><th>largest MDE</th></tr>"#,
        esc(&super::approval_summary(&groups))
    );
    for g in &groups {
        let status_colour = match g.status {
            super::GroupStatus::Passed => colour(VerdictKind::Pass),
            super::GroupStatus::Inconclusive | super::GroupStatus::NotJudged => {
                colour(VerdictKind::Inconclusive)
            }
            super::GroupStatus::Paused => colour(VerdictKind::Pause),
            super::GroupStatus::Failed => colour(VerdictKind::Fail),
        };
        let mde = g
            .largest_mde
            .as_ref()
            .map(|(m, x)| format!("{x:.1}% ({})", esc(m)))
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            o,
            r#"<tr data-group="{0}" data-status="{1}"><td>{0}</td><td style="color:{2}">{1}</td><td>{3}</td><td>{4}</td><td>{5}{6}</td><td>{mde}</td></tr>"#,
            esc(&g.group),
            g.status.as_str(),
            status_colour,
            g.hosts,
            g.control_hosts,
            g.tested,
            if g.pooled_variance > 0 {
                format!(" ({} on the moderated variance)", g.pooled_variance)
            } else {
                String::new()
            }
        );
    }
    o.push_str("</table>");
    let mut all: Vec<(u8, &'static str, &MetricComparison)> = c
        .levels
        .iter()
        .flat_map(|l| &l.metrics)
        .chain(c.groups.iter().flat_map(|g| &g.metrics))
        .map(|m| {
            let (rank, why) = flag(m, &v.reasons);
            (rank, why, m)
        })
        .collect();
    all.sort_by_key(|(rank, _, _)| *rank);
    o.push_str(r#"<div id="panels">"#);
    for (rank, why, m) in all {
        let method = match m.method {
            Method::DiffInDiff => "before/after against controls",
            Method::Controls => "against controls, no before window",
            Method::Baseline => "against the static baseline",
            Method::Paired => "benchmark, each host against itself before",
        };
        let _ = write!(
            o,
            r#"<div class="panel flag{rank}" data-level="{}" data-metric="{}"><b>{} · {}</b> <span class="meta">{}</span><br><span class="meta">{} hosts, {} controls, {method}; mde {:.1}%, adjusted p {}{}</span><br>"#,
            esc(&m.level),
            esc(&m.name),
            esc(&m.level),
            esc(&m.name),
            why,
            m.hosts,
            m.control_hosts,
            m.mde,
            super::render::num(m.p_adjusted),
            if m.reason.is_empty() {
                String::new()
            } else {
                format!("; {}", esc(&m.reason))
            }
        );
        o.push_str(&strips(m));
        o.push_str("<br>");
        o.push_str(&interval(m, threshold(&m.name)));
        o.push_str("</div>");
    }
    o.push_str("</div><h2>events</h2><table><tr><th>event</th><th>count</th><th>per host-hour</th><th>controls</th><th>p</th></tr>");
    for (name, e) in &c.events {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            e.count,
            super::render::num(e.rate),
            super::render::num(e.control_rate),
            super::render::num(e.p_value)
        );
    }
    o.push_str("</table></body></html>\n");
    o
}
