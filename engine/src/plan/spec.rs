//! What `rollout.rhai` returns, as checked Rust types: eligibility, blast-radius limits and
//! maintenance windows, and the group and stage records the policy is called with.

use crate::error::Invalid;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What `eligible(host)` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    Eligible,
    Excluded(String),
}

/// `eligible(host)` returns `true`, `false`, or `exclude(reason)` (a map
/// `#{eligible: false, reason: "..."}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum EligibilityRepr {
    Bool(bool),
    Map(EligibilityMap),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EligibilityMap {
    eligible: bool,
    #[serde(default)]
    reason: String,
}

impl Eligibility {
    /// Reads `eligible(host)`'s result as JSON.
    pub fn from_json(v: &serde_json::Value) -> Result<Eligibility, Invalid> {
        let r: EligibilityRepr =
            serde_json::from_value(v.clone()).map_err(|_| format!("got `{v}`"))?;
        Ok(match r {
            EligibilityRepr::Bool(true)
            | EligibilityRepr::Map(EligibilityMap { eligible: true, .. }) => Eligibility::Eligible,
            EligibilityRepr::Bool(false) => {
                Eligibility::Excluded("`eligible(host)` is false".into())
            }
            EligibilityRepr::Map(EligibilityMap { reason, .. }) if reason.trim().is_empty() => {
                Eligibility::Excluded("`eligible(host)` is false".into())
            }
            EligibilityRepr::Map(EligibilityMap { reason, .. }) => Eligibility::Excluded(reason),
        })
    }
}

/// A limit as a count of hosts or a share of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Count(u64),
    Percent { percent: f64 },
}

impl Amount {
    /// Hosts allowed out of `total`: a percentage rounds down but never below 1; a count is
    /// used as it is.
    pub fn of(&self, total: usize) -> usize {
        match *self {
            Amount::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Amount::Percent { percent } => {
                (((percent / 100.0) * total as f64 + 1e-9).floor() as usize).max(1)
            }
        }
    }

    fn check(&self, what: &str) -> Result<(), Invalid> {
        match *self {
            Amount::Count(0) => Err(format!("{what} is 0, which would stop every host").into()),
            Amount::Percent { percent } if !(percent > 0.0 && percent <= 100.0) => {
                Err(format!("{what} is `{percent}%`; a share must be in (0, 100]").into())
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent { percent } => write!(f, "{percent}%"),
        }
    }
}

/// What one host value (a rack, a datacenter, ...) scopes a limit to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Hardware,
    Workload,
    Datacenter,
    /// Racks are named within their datacenter: `ams1/r01`.
    Rack,
    /// The hardware × workload group.
    Group,
    /// A host fact, `fact:NAME` (for example a power domain).
    Fact(String),
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, Invalid> {
        Ok(match s {
            "hardware" => Scope::Hardware,
            "workload" => Scope::Workload,
            "datacenter" => Scope::Datacenter,
            "rack" => Scope::Rack,
            "group" => Scope::Group,
            _ => match s.strip_prefix("fact:") {
                Some(f) if !f.is_empty() => Scope::Fact(f.to_string()),
                _ => {
                    return Err(format!(
                        "unknown scope `{s}`; scopes are hardware, workload, datacenter, rack, group and fact:NAME"
                    ).into())
                }
            },
        })
    }

    /// The scope's value for a host.
    pub fn value_of(&self, h: &crate::model::Host) -> String {
        match self {
            Scope::Hardware => h.hardware.clone(),
            Scope::Workload => h.workload.clone(),
            Scope::Datacenter => h.datacenter.clone(),
            Scope::Rack => format!("{}/{}", h.datacenter, h.rack),
            Scope::Group => format!("{}/{}", h.hardware, h.workload),
            Scope::Fact(f) => match h.facts.get(f) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            },
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Hardware => write!(f, "hardware"),
            Scope::Workload => write!(f, "workload"),
            Scope::Datacenter => write!(f, "datacenter"),
            Scope::Rack => write!(f, "rack"),
            Scope::Group => write!(f, "group"),
            Scope::Fact(x) => write!(f, "fact:{x}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeLimitRepr {
    #[serde(default)]
    in_flight: Option<Amount>,
    #[serde(default)]
    per_wave: Option<Amount>,
}

/// A blast-radius limit: how much of each value of a scope (each rack, each datacenter) may
/// be updating at once, and how much one wave may take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeLimit {
    pub scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_wave: Option<Amount>,
}

/// Reads `blast_radius()`: `#{ rack: #{ in_flight: 1 }, datacenter: #{ per_wave: percent(10) } }`.
pub fn parse_blast_radius(v: &serde_json::Value) -> Result<Vec<ScopeLimit>, Invalid> {
    let m: BTreeMap<String, ScopeLimitRepr> = serde_json::from_value(v.clone()).map_err(|e| {
        format!("got `{v}`: {e}; expected a map like `#{{ rack: #{{ in_flight: 1 }} }}`")
    })?;
    let mut out = Vec::new();
    for (k, r) in m {
        let scope = Scope::parse(&k)?;
        if r.in_flight.is_none() && r.per_wave.is_none() {
            return Err(format!("`{k}` sets neither `in_flight` nor `per_wave`").into());
        }
        if let Some(a) = &r.in_flight {
            a.check(&format!("`{k}.in_flight`"))?;
        }
        if let Some(a) = &r.per_wave {
            a.check(&format!("`{k}.per_wave`"))?;
        }
        out.push(ScopeLimit {
            scope,
            in_flight: r.in_flight,
            per_wave: r.per_wave,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowRepr {
    #[serde(default)]
    days: Option<Vec<String>>,
    start: String,
    end: String,
    #[serde(default)]
    tz: Option<String>,
}

/// A maintenance window: on `days`, from `start` to `end` local time in `tz`. An `end` at or
/// before `start` runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
    pub tz: String,
    #[serde(skip)]
    pub(crate) weekdays: Vec<Weekday>,
    #[serde(skip)]
    pub(crate) from: Time,
    #[serde(skip)]
    pub(crate) to: Time,
    #[serde(skip)]
    pub(crate) zone: TimeZone,
}

const WEEK: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn weekday(s: &str) -> Result<usize, Invalid> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let l = s.trim().to_ascii_lowercase();
    FULL.iter()
        .position(|f| l.len() >= 3 && f.starts_with(&l))
        .ok_or_else(|| {
            Invalid(format!(
                "`{s}` is not a day of the week (mon, tue, ... sun)"
            ))
        })
}

fn days(list: &[String]) -> Result<Vec<Weekday>, Invalid> {
    let mut out = Vec::new();
    for d in list {
        match d.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (weekday(a)?, weekday(b)?);
                let mut i = a;
                loop {
                    if let Some((_, w)) = WEEK.get(i) {
                        out.push(*w);
                    }
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => {
                if let Some((_, w)) = WEEK.get(weekday(d)?) {
                    out.push(*w);
                }
            }
        }
    }
    out.sort_by_key(|w| w.to_monday_zero_offset());
    out.dedup();
    Ok(out)
}

fn clock(s: &str, what: &str) -> Result<Time, Invalid> {
    let bad = || format!("`{what}` is `{s}`; write times as `HH:MM` (00:00 to 24:00)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h == 24 && m == 0 {
        return Ok(Time::MAX);
    }
    Time::new(h, m, 0, 0).map_err(|_| bad().into())
}

/// Reads `windows()`: an array of `#{days, start, end, tz}`. An empty array means "any time".
pub fn parse_windows(v: &serde_json::Value) -> Result<Vec<Window>, Invalid> {
    let reprs: Vec<WindowRepr> = serde_json::from_value(v.clone()).map_err(|e| {
        format!("got `{v}`: {e}; expected an array like `[#{{ days: [\"mon-thu\"], start: \"02:00\", end: \"06:00\", tz: \"UTC\" }}]`")
    })?;
    let mut out = Vec::new();
    for (i, r) in reprs.into_iter().enumerate() {
        let ctx = |e: Invalid| Invalid(format!("window {i}: {e}"));
        let tz = r.tz.unwrap_or_else(|| "UTC".to_string());
        let zone =
            TimeZone::get(&tz).map_err(|_| ctx(Invalid(format!("unknown time zone `{tz}`"))))?;
        let day_names = r.days.unwrap_or_else(|| vec!["mon-sun".to_string()]);
        let weekdays = days(&day_names).map_err(ctx)?;
        if weekdays.is_empty() {
            return Err(ctx("`days` is empty".into()));
        }
        let from = clock(&r.start, "start").map_err(ctx)?;
        let to = clock(&r.end, "end").map_err(ctx)?;
        out.push(Window {
            days: day_names,
            start: r.start,
            end: r.end,
            tz,
            weekdays,
            from,
            to,
            zone,
        });
    }
    Ok(out)
}

/// What `canary(group)` decides: a count, or `"auto"`: the fewest canaries (from `floor` to
/// `cap`, and never more than the group has) whose expected minimum detectable effect at the
/// canary gate is within every gated metric's threshold, given the baseline's spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryCount {
    Fixed(usize),
    Auto { floor: usize, cap: usize },
}

/// The floor and cap of a plain `"auto"`.
pub const AUTO_FLOOR: usize = 2;
pub const AUTO_CAP: usize = 6;

impl CanaryCount {
    /// Reads `canary(group)`'s result: a count, `"auto"`, or `#{auto: true, floor: 2, cap: 6}`
    /// (either bound may be left out).
    pub fn from_json(v: &serde_json::Value) -> Result<CanaryCount, Invalid> {
        use serde_json::Value;
        let bad = || {
            Invalid(format!(
                "`canary(group)` returned `{v}`: expected a count, \"auto\" or #{{auto: true, floor: 2, cap: 6}}"
            ))
        };
        let count = |x: &Value| x.as_u64().map(|n| n as usize);
        match v {
            Value::Number(_) => count(v).map(CanaryCount::Fixed).ok_or_else(bad),
            Value::String(s) if s == "auto" => Ok(CanaryCount::Auto {
                floor: AUTO_FLOOR,
                cap: AUTO_CAP,
            }),
            Value::Object(m) => {
                if m.keys()
                    .any(|k| !matches!(k.as_str(), "auto" | "floor" | "cap"))
                    || m.get("auto") != Some(&Value::Bool(true))
                {
                    return Err(bad());
                }
                let get = |k: &str, d: usize| match m.get(k) {
                    None => Ok(d),
                    Some(x) => count(x).ok_or_else(bad),
                };
                let (floor, cap) = (get("floor", AUTO_FLOOR)?, get("cap", AUTO_CAP)?);
                if floor == 0 || cap < floor {
                    return Err(Invalid(format!(
                        "`canary(group)` returned `{v}`: need 1 ≤ floor ≤ cap"
                    )));
                }
                Ok(CanaryCount::Auto { floor, cap })
            }
            _ => Err(bad()),
        }
    }
}

/// A hardware × workload group, as `canary(group)` and `host_time(group)` see it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    /// `hardware/workload`.
    pub name: String,
    pub hardware: String,
    pub workload: String,
    /// Eligible hosts in the group.
    pub size: usize,
    /// All inventory hosts in the group.
    pub total: usize,
}

/// What a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Canary,
    Wave,
}

/// A stage (the canary cohort, or a wave or part of one), as `bake(wave)` and
/// `max_in_flight(wave)` see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageInfo {
    /// 0 for the canaries, then 1, 2, ... for each stage after.
    pub index: usize,
    pub name: String,
    pub kind: StageKind,
    /// The wave of `waves()` this stage belongs to (1-based; 0 for the canaries).
    pub wave: usize,
    /// Which part of its wave, when blast-radius limits split it (1-based).
    pub part: usize,
    pub parts: usize,
    /// The cumulative share of the eligible fleet done when the wave ends.
    pub percent: f64,
    /// Hosts in this stage.
    pub size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eligibility_shapes() {
        assert_eq!(
            Eligibility::from_json(&json!(true)).unwrap(),
            Eligibility::Eligible
        );
        assert_eq!(
            Eligibility::from_json(&json!({"eligible": false, "reason": "tagged `x`"})).unwrap(),
            Eligibility::Excluded("tagged `x`".into())
        );
        assert!(matches!(
            Eligibility::from_json(&json!(false)).unwrap(),
            Eligibility::Excluded(_)
        ));
        assert!(Eligibility::from_json(&json!(3)).is_err());
        assert!(Eligibility::from_json(&json!({"eligible": false, "why": 1})).is_err());
    }

    #[test]
    fn canary_counts() {
        let ok = |v: serde_json::Value| CanaryCount::from_json(&v).unwrap();
        assert_eq!(ok(json!(3)), CanaryCount::Fixed(3));
        assert_eq!(ok(json!("auto")), CanaryCount::Auto { floor: 2, cap: 6 });
        assert_eq!(
            ok(json!({"auto": true, "cap": 10})),
            CanaryCount::Auto { floor: 2, cap: 10 }
        );
        for bad in [
            json!(-1),
            json!("many"),
            json!({"auto": true, "floor": 0}),
            json!({"auto": true, "floor": 4, "cap": 3}),
            json!({"floor": 2}),
            json!({"auto": true, "max": 3}),
            json!(2.5),
        ] {
            assert!(CanaryCount::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(Amount::Percent { percent: 10.0 }.of(25), 2);
        assert_eq!(Amount::Percent { percent: 10.0 }.of(5), 1);
        assert_eq!(Amount::Percent { percent: 10.0 }.of(1700), 170);
        assert_eq!(Amount::Count(3).of(1), 3);
    }

    #[test]
    fn blast_radius() {
        let l = parse_blast_radius(
            &json!({"rack": {"in_flight": 1}, "datacenter": {"per_wave": {"percent": 10.0}}}),
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        for bad in [
            json!({"shelf": {"in_flight": 1}}),
            json!({"rack": {}}),
            json!({"rack": {"in_flight": 0}}),
            json!({"rack": {"per_wave": {"percent": 150.0}}}),
            json!({"rack": {"inflight": 1}}),
            json!([1]),
        ] {
            assert!(parse_blast_radius(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows() {
        let w = parse_windows(&json!([{"days": ["mon-wed", "sat"], "start": "22:00", "end": "04:00", "tz": "Europe/Amsterdam"}])).unwrap();
        assert_eq!(
            w[0].weekdays,
            vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Saturday
            ]
        );
        let w = parse_windows(&json!([{"days": ["fri-mon"], "start": "00:00", "end": "24:00"}]))
            .unwrap();
        assert_eq!(w[0].weekdays.len(), 4);
        for bad in [
            json!([{"days": ["funday"], "start": "01:00", "end": "02:00"}]),
            json!([{"start": "25:00", "end": "02:00"}]),
            json!([{"start": "01:00", "end": "02:00", "tz": "Mars/Base"}]),
            json!([{"start": "01:00"}]),
            json!([{"days": [], "start": "01:00", "end": "02:00"}]),
        ] {
            assert!(parse_windows(&bad).is_err(), "{bad}");
        }
    }
}
