//! Drift: what a host should look like (`declared.toml`), what it reports (one facts round
//! trip), where they differ, and what `drift.rhai` decides about each difference: fix it
//! (`auto`), ask a human (`review`), or leave it until a date (`acknowledged`). Comparison and
//! classification are pure; collection and remediation go through the [`crate::exec::Executor`].

pub mod audit;
pub mod declared;
pub mod facts;
pub mod frame;
pub mod kind;
pub mod remediate;
pub mod render;
pub mod session;
pub mod store;

use crate::model::{DriftAction, DriftDecision, Host};
use crate::runtime::PolicySet;
use crate::PolicyError;
use declared::HostSpec;
use facts::{Fact, Facts};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The kinds of declared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Kernel,
    BootEntry,
    Cmdline,
    Sysctl,
    Module,
    Package,
    Service,
    File,
    Microcode,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Kernel,
        Kind::BootEntry,
        Kind::Cmdline,
        Kind::Sysctl,
        Kind::Module,
        Kind::Package,
        Kind::Service,
        Kind::File,
        Kind::Microcode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::BootEntry => "boot_entry",
            Kind::Cmdline => "cmdline",
            Kind::Sysctl => "sysctl",
            Kind::Module => "module",
            Kind::Package => "package",
            Kind::Service => "service",
            Kind::File => "file",
            Kind::Microcode => "microcode",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How a finding is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Safe: fixed by `remediate --apply`.
    Auto,
    /// Risky: left for a human, queued.
    Review,
    /// Expected until a date; not counted as drift.
    Acknowledged,
    /// The fact could not be read: never taken for "no drift".
    Unknown,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Auto => "auto",
            Class::Review => "review",
            Class::Acknowledged => "acknowledged",
            Class::Unknown => "unknown",
        }
    }
}

/// One difference between declared and actual state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub kind: Kind,
    pub key: String,
    pub field: String,
    pub declared: String,
    pub actual: Fact,
}

/// A divergence with its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub key: String,
    pub field: String,
    pub declared: String,
    /// What the host reported; `unknown` when it could not be read.
    pub actual: String,
    pub class: Class,
    pub reason: String,
    /// For `auto`: the commands that fix it, each an argument list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<String>>,
    /// For `acknowledged` (and expired acknowledgements): when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl Finding {
    /// `sysctl vm.swappiness (runtime)`.
    pub fn subject(&self) -> String {
        let mut s = self.kind.as_str().to_string();
        if !self.key.is_empty() {
            s.push(' ');
            s.push_str(&self.key);
        }
        if !self.field.is_empty() {
            s.push_str(&format!(" ({})", self.field));
        }
        s
    }

    /// The identity of the thing that drifted, stable across audits.
    pub fn id(&self) -> (Kind, &str, &str) {
        (self.kind, &self.key, &self.field)
    }
}

/// Whitespace-separated words.
fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn octal(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim(), 8).ok()
}

fn hex(s: &str) -> Option<u64> {
    let t = s.trim();
    u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
}

/// Does `actual` satisfy `declared` for this kind of fact?
pub fn satisfies(kind: Kind, field: &str, declared: &str, actual: &str) -> bool {
    match (kind, field) {
        (Kind::Sysctl, _) => words(declared) == words(actual),
        (Kind::Cmdline, _) => {
            // The boot loader prepends `BOOT_IMAGE=…`, which names the kernel file.
            let strip = |s: &str| -> Vec<String> {
                words(s)
                    .into_iter()
                    .filter(|w| !w.starts_with("BOOT_IMAGE="))
                    .map(str::to_string)
                    .collect()
            };
            strip(declared) == strip(actual)
        }
        (Kind::Microcode, _) => match (hex(declared), hex(actual)) {
            (Some(a), Some(b)) => a == b,
            _ => declared.trim() == actual.trim(),
        },
        (Kind::Package, _) => match declared {
            "installed" | "*" => actual != "absent",
            _ => declared == actual,
        },
        (Kind::Service, "enabled") => {
            let on = matches!(
                actual,
                "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated"
            );
            if declared == "enabled" {
                on
            } else {
                !on
            }
        }
        (Kind::Service, "active") => {
            let on = matches!(actual, "active" | "reloading" | "activating");
            if declared == "active" {
                on
            } else {
                !on
            }
        }
        (Kind::File, "mode") => match (octal(declared), octal(actual)) {
            (Some(a), Some(b)) => a == b,
            _ => declared == actual,
        },
        (Kind::File, "owner") => match declared.split_once(':') {
            Some(_) => declared == actual,
            None => actual.split(':').next() == Some(declared),
        },
        (Kind::File, "sha256") => declared.eq_ignore_ascii_case(actual),
        _ => declared == actual,
    }
}

/// Every declared fact the host does not satisfy, or could not report. Pure.
pub fn diverge(spec: &HostSpec, facts: &Facts) -> (usize, Vec<Divergence>) {
    let expects = spec.expectations();
    let checked = expects.len();
    let mut out = Vec::new();
    for e in expects {
        let got = facts.get(&(e.kind, e.key.clone(), e.field.clone()));
        let actual = match got {
            Some(Fact::Value(v)) if satisfies(e.kind, &e.field, &e.declared, v) => continue,
            Some(f) => f.clone(),
            None => Fact::Unknown("the host did not report it".into()),
        };
        out.push(Divergence {
            kind: e.kind,
            key: e.key,
            field: e.field,
            declared: e.declared,
            actual,
        });
    }
    (checked, out)
}

/// What `classify(item)` is given.
#[derive(Debug, Serialize)]
struct ItemIn<'a> {
    host: &'a str,
    group: String,
    kind: &'a str,
    key: &'a str,
    field: &'a str,
    declared: &'a str,
    actual: &'a str,
    facts: &'a Host,
}

/// When an acknowledgement ends: a date (through the end of that day, UTC) or a time.
pub fn parse_until(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let d: jiff::civil::Date = s.parse().ok()?;
    let next = d.tomorrow().ok()?;
    next.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Names the host and item an evaluation error was about.
fn about(e: PolicyError, host: &str, d: &Divergence) -> PolicyError {
    match e {
        PolicyError::Eval(mut diag) => {
            diag.message = format!(
                "{} (for host `{host}`, {} `{}`)",
                diag.message,
                d.kind.as_str(),
                d.key
            );
            PolicyError::Eval(diag)
        }
        other => other,
    }
}

/// The group name a host belongs to.
pub fn group_of(h: &Host) -> String {
    h.group_name()
}

/// Decides one divergence: unreadable facts are `unknown` without asking the policy; the rest
/// go to `classify(item)`. An acknowledgement past its date, or one whose date cannot be read,
/// comes back as `review`.
pub fn classify(
    set: &PolicySet,
    host: &Host,
    d: &Divergence,
    now: Timestamp,
) -> Result<Finding, PolicyError> {
    let base = |actual: String, class: Class, reason: String| Finding {
        kind: d.kind,
        key: d.key.clone(),
        field: d.field.clone(),
        declared: d.declared.clone(),
        actual,
        class,
        reason,
        commands: Vec::new(),
        expires: None,
    };
    let actual = match &d.actual {
        Fact::Unknown(why) => {
            return Ok(base("unknown".into(), Class::Unknown, why.clone()));
        }
        Fact::Value(v) => v.clone(),
    };
    let item = ItemIn {
        host: &host.name,
        group: group_of(host),
        kind: d.kind.as_str(),
        key: &d.key,
        field: &d.field,
        declared: &d.declared,
        actual: &actual,
        facts: host,
    };
    let dec: DriftDecision = set
        .call("drift", "classify", (&item,))
        .map_err(|e| about(e, &host.name, d))?;
    let mut f = base(actual, Class::Review, dec.reason.clone());
    match dec.action {
        DriftAction::Auto if dec.commands.iter().any(|c| !c.is_empty()) => {
            f.class = Class::Auto;
            f.commands = dec.commands.into_iter().filter(|c| !c.is_empty()).collect();
        }
        DriftAction::Auto => {
            f.reason = format!("`auto` without commands: {}", dec.reason);
        }
        DriftAction::Review => {}
        DriftAction::Acknowledged => {
            let until = dec.expires.clone().unwrap_or_default();
            match parse_until(&until) {
                Some(t) if t > now => {
                    f.class = Class::Acknowledged;
                    f.expires = Some(until);
                }
                Some(_) => {
                    f.reason = format!("acknowledgement expired on {until}: {}", dec.reason);
                    f.expires = Some(until);
                }
                None => {
                    f.reason = format!(
                        "acknowledgement expiry `{until}` is not a date such as 2026-12-31: {}",
                        dec.reason
                    );
                }
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfaction_by_kind() {
        let check = |kind, field, d, a, want: bool| {
            assert_eq!(
                satisfies(kind, field, d, a),
                want,
                "{kind:?} {field} {d} vs {a}"
            );
        };
        check(
            Kind::Sysctl,
            "runtime",
            "4096 131072  6291456",
            "4096 131072 6291456",
            true,
        );
        check(Kind::Sysctl, "runtime", "10", "60", false);
        check(
            Kind::Cmdline,
            "",
            "ro quiet",
            "BOOT_IMAGE=/vmlinuz-6.8 ro quiet",
            true,
        );
        check(Kind::Cmdline, "", "ro quiet", "ro quiet splash", false);
        check(Kind::Microcode, "", "0x2B000590", "0x2b000590", true);
        check(Kind::Package, "version", "*", "1.2", true);
        check(Kind::Package, "version", "*", "absent", false);
        check(Kind::Service, "enabled", "enabled", "static", true);
        check(Kind::Service, "enabled", "disabled", "masked", true);
        check(Kind::Service, "active", "inactive", "failed", true);
        check(Kind::Service, "active", "active", "failed", false);
        check(Kind::File, "mode", "0644", "644", true);
        check(Kind::File, "mode", "0644", "755", false);
        check(Kind::File, "owner", "root", "root:adm", true);
        check(Kind::File, "owner", "root:root", "root:adm", false);
    }

    #[test]
    fn until_dates_cover_their_whole_day() {
        let t = parse_until("2026-12-31").map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert!(parse_until("2026-12-31T12:00:00Z").is_some());
        assert!(parse_until("next week").is_none());
    }
}
