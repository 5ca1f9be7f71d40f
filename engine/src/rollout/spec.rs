//! What `rollout.rhai` says about carrying out a rollout, as checked Rust types: the commands
//! and timeouts of every step (`steps(host)`), the failure budget (`failure_budget()`) and
//! how signals are collected during a bake (`signals()`).

use crate::error::Invalid;
use crate::exec::RemoteCommand;
use crate::plan::spec::Amount;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One command of a step: an argument vector (never a shell line), its timeout, and what
/// counts as a pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// What the command checks or does, for reports.
    #[serde(default)]
    pub name: String,
    pub run: Vec<String>,
    /// Seconds.
    pub timeout: u64,
    #[serde(default)]
    pub expect: Expect,
}

/// Pass criteria: the exit status, and optionally text the output must (not) contain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    pub exit: i32,
    pub stdout_contains: Option<String>,
    pub stdout_lacks: Option<String>,
}

impl Expect {
    /// Why `status`/`stdout` fail these criteria, or `None` when they pass.
    pub fn judge(&self, status: i32, stdout: &str) -> Option<String> {
        if status != self.exit {
            return Some(format!("exit status {status}, expected {}", self.exit));
        }
        if let Some(t) = &self.stdout_contains {
            if !stdout.contains(t.as_str()) {
                return Some(format!("output lacks `{t}`"));
            }
        }
        if let Some(t) = &self.stdout_lacks {
            if stdout.contains(t.as_str()) {
                return Some(format!("output contains `{t}`"));
            }
        }
        None
    }
}

impl CommandSpec {
    pub fn command(&self) -> RemoteCommand {
        RemoteCommand::new(self.run.iter().cloned())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// The name, or the command line when there is none.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.command().shell_line()
        } else {
            self.name.clone()
        }
    }
}

/// How to wait for a rebooted host: poll from `first` seconds after the reboot, backing off
/// by doubling up to `max_interval`, for at most `timeout` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaitUp {
    pub timeout: u64,
    pub first: u64,
    pub max_interval: u64,
}

impl Default for WaitUp {
    fn default() -> Self {
        WaitUp {
            timeout: 900,
            first: 10,
            max_interval: 30,
        }
    }
}

/// How to read what a host runs: its kernel release and its boot id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    pub kernel: Vec<String>,
    pub boot_id: Vec<String>,
    pub timeout: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            kernel: vec!["uname".into(), "-r".into()],
            boot_id: vec!["cat".into(), "/proc/sys/kernel/random/boot_id".into()],
            timeout: 30,
        }
    }
}

/// `steps(host)`: every step's commands for one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    #[serde(default)]
    pub pre_check: Vec<CommandSpec>,
    #[serde(default)]
    pub drain: Vec<CommandSpec>,
    pub install: Vec<CommandSpec>,
    pub set_boot: Vec<CommandSpec>,
    pub reboot: CommandSpec,
    #[serde(default)]
    pub wait_up: WaitUp,
    #[serde(default)]
    pub post_check: Vec<CommandSpec>,
    #[serde(default)]
    pub undrain: Vec<CommandSpec>,
    #[serde(default)]
    pub probe: Probe,
}

impl Steps {
    /// Checks what serde cannot: non-empty commands and positive timeouts.
    pub fn validate(&self) -> Result<(), Invalid> {
        let lists: [(&str, &[CommandSpec]); 6] = [
            ("pre_check", &self.pre_check),
            ("drain", &self.drain),
            ("install", &self.install),
            ("set_boot", &self.set_boot),
            ("post_check", &self.post_check),
            ("undrain", &self.undrain),
        ];
        for (step, cmds) in lists
            .into_iter()
            .chain([("reboot", std::slice::from_ref(&self.reboot))])
        {
            for (i, c) in cmds.iter().enumerate() {
                if c.run.is_empty() || c.run.first().is_some_and(|a| a.is_empty()) {
                    return Err(format!("`{step}[{i}]` has an empty `run`").into());
                }
                if c.timeout == 0 {
                    return Err(
                        format!("`{step}[{i}]` (`{}`) has a zero timeout", c.label()).into(),
                    );
                }
            }
        }
        if self.install.is_empty() {
            return Err("`install` has no commands".into());
        }
        if self.probe.kernel.is_empty() || self.probe.boot_id.is_empty() {
            return Err("`probe` needs `kernel` and `boot_id` commands".into());
        }
        if self.wait_up.timeout == 0 {
            return Err("`wait_up.timeout` is 0".into());
        }
        Ok(())
    }
}

/// `failure_budget()`: failed hosts tolerated per stage and across the rollout before it
/// pauses. Counts, or `percent(n)` of the stage / of the rollout's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBudget {
    pub per_stage: Amount,
    pub total: Amount,
}

impl Default for FailureBudget {
    /// One host per stage, 1% of the rollout (at least one).
    fn default() -> Self {
        FailureBudget {
            per_stage: Amount::Count(1),
            total: Amount::Percent { percent: 1.0 },
        }
    }
}

impl FailureBudget {
    /// The failures `amount` allows out of `total` hosts: a count as it is (0 means any
    /// failure pauses), a share rounded down but never below one, as blast-radius shares.
    pub fn allowed(amount: Amount, total: usize) -> usize {
        amount.of(total)
    }
}

/// `signals()`: how metrics are collected from a stage's hosts while it bakes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    /// Prints `[timestamp] metric value` lines.
    pub metrics: Vec<String>,
    /// Seconds between collections.
    #[serde(default = "default_every")]
    pub every: u64,
    #[serde(default = "default_signal_timeout")]
    pub timeout: u64,
}

fn default_every() -> u64 {
    300
}

fn default_signal_timeout() -> u64 {
    30
}

impl Signals {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.metrics.is_empty() {
            return Err("`metrics` is an empty command".into());
        }
        if self.every == 0 || self.timeout == 0 {
            return Err("`every` and `timeout` must be positive".into());
        }
        Ok(())
    }
}

/// One metric sample a host printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub timestamp: f64,
    pub metric: String,
    pub value: f64,
}

/// Parses a metrics command's output: `metric value` or `timestamp metric value` per line;
/// blank lines and `#` comments are skipped. Returns the samples and the lines it could not
/// read (reported, never guessed).
pub fn parse_metrics(text: &str, now: f64) -> (Vec<Sample>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = t.split_whitespace().collect();
        let parsed = match parts.as_slice() {
            [m, v] => v.parse::<f64>().ok().map(|v| (now, *m, v)),
            [ts, m, v] => match (ts.parse::<f64>(), v.parse::<f64>()) {
                (Ok(ts), Ok(v)) => Some((ts, *m, v)),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some((timestamp, metric, value)) if value.is_finite() && timestamp.is_finite() => out
                .push(Sample {
                    timestamp,
                    metric: metric.to_string(),
                    value,
                }),
            _ => bad.push(t.to_string()),
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines() {
        let (s, bad) = parse_metrics(
            "# comment\ncpu_util_pct 41.5\n1700000000 io_latency_p99_ms 12\nbroken\nx y z\n",
            5.0,
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].timestamp, 5.0);
        assert_eq!(s[1].timestamp, 1_700_000_000.0);
        assert_eq!(bad, vec!["broken", "x y z"]);
    }

    #[test]
    fn expectations() {
        let e = Expect {
            exit: 0,
            stdout_contains: Some("ok".into()),
            stdout_lacks: Some("degraded".into()),
        };
        assert_eq!(e.judge(0, "ok\n"), None);
        assert!(e.judge(1, "ok").is_some());
        assert!(e.judge(0, "fine").is_some());
        assert!(e.judge(0, "ok degraded").is_some());
    }

    #[test]
    fn budgets_round_down_but_never_below_one() {
        assert_eq!(
            FailureBudget::allowed(Amount::Percent { percent: 2.0 }, 20),
            1
        );
        assert_eq!(FailureBudget::allowed(Amount::Count(0), 20), 0);
        assert_eq!(
            FailureBudget::allowed(Amount::Percent { percent: 2.0 }, 500),
            10
        );
        assert_eq!(FailureBudget::allowed(Amount::Count(3), 1), 3);
    }
}
