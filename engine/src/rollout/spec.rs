//! What `rollout.rhai` says about carrying out a rollout, as checked Rust types: the commands
//! and timeouts of every step (`steps(host)`), the failure budget (`failure_budget()`) and
//! how signals are collected during a bake (`signals()`).

use super::check::Check;
use crate::error::Invalid;
use crate::exec::RemoteCommand;
use crate::plan::spec::Amount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One command of a step: an argument vector (never a shell line) judged by `expect`, or a
/// built-in check (`check: "kernel_log" | "units" | "http"`); with its timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCommand", into = "RawCommand")]
pub struct CommandSpec {
    /// What the command checks or does, for reports.
    pub name: String,
    /// Seconds.
    pub timeout: u64,
    pub action: Action,
}

/// What a step command does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run { argv: Vec<String>, expect: Expect },
    Check(Check),
}

/// A step command as a policy writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    run: Vec<String>,
    timeout: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect: Option<Expect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suites: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repeat: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disk_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

impl TryFrom<RawCommand> for CommandSpec {
    type Error = String;

    fn try_from(r: RawCommand) -> Result<Self, String> {
        let kind = r.check.as_deref().unwrap_or("command");
        let only = |allowed: &[&str]| -> Result<(), String> {
            let given = [
                ("run", !r.run.is_empty()),
                ("expect", r.expect.is_some()),
                ("classes", r.classes.is_some()),
                ("active", r.active.is_some()),
                ("url", r.url.is_some()),
                ("status", r.status.is_some()),
                ("body_contains", r.body_contains.is_some()),
                ("suites", r.suites.is_some()),
                ("repeat", r.repeat.is_some()),
                ("dir", r.dir.is_some()),
                ("disk_mb", r.disk_mb.is_some()),
                ("peer", r.peer.is_some()),
                ("from", r.from.is_some()),
            ];
            match given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
                Some((f, _)) => Err(format!("`{f}` does not apply to a `{kind}` check")),
                None => Ok(()),
            }
        };
        let action = match kind {
            "command" => {
                only(&["run", "expect"])?;
                Action::Run {
                    argv: r.run,
                    expect: r.expect.unwrap_or_default(),
                }
            }
            "kernel_log" => {
                only(&["classes"])?;
                Action::Check(Check::KernelLog {
                    classes: r.classes.unwrap_or_else(crate::signals::all_classes),
                })
            }
            "units" => {
                only(&["active"])?;
                Action::Check(Check::Units {
                    active: r.active.unwrap_or_default(),
                })
            }
            "http" => {
                only(&["url", "status", "body_contains", "from"])?;
                let from = match r.from.as_deref() {
                    None => super::check::HttpFrom::Host,
                    Some(f) => super::check::HttpFrom::parse(f)?,
                };
                Action::Check(Check::Http {
                    url: r.url.ok_or("an `http` check needs a `url`")?,
                    status: r.status.unwrap_or(200),
                    body_contains: r.body_contains,
                    from,
                })
            }
            "benchmark" => {
                only(&["suites", "repeat", "dir", "disk_mb", "peer"])?;
                use super::check::{default_suites, BENCH_DIR, BENCH_DISK_MB, BENCH_REPEAT};
                Action::Check(Check::Benchmark {
                    suites: r.suites.unwrap_or_else(|| default_suites(r.peer.is_some())),
                    repeat: r.repeat.unwrap_or(BENCH_REPEAT),
                    dir: r.dir.unwrap_or_else(|| BENCH_DIR.into()),
                    disk_mb: r.disk_mb.unwrap_or(BENCH_DISK_MB),
                    peer: r.peer,
                })
            }
            other => {
                return Err(format!(
                    "unknown check `{other}` (known: {})",
                    super::check::KINDS.join(", ")
                ))
            }
        };
        if let Action::Check(c) = &action {
            c.validate()?;
        }
        Ok(CommandSpec {
            name: r.name,
            timeout: r.timeout,
            action,
        })
    }
}

impl From<CommandSpec> for RawCommand {
    fn from(c: CommandSpec) -> Self {
        let mut r = RawCommand {
            name: c.name,
            timeout: c.timeout,
            ..RawCommand::default()
        };
        match c.action {
            Action::Run { argv, expect } => {
                r.run = argv;
                r.expect = Some(expect);
            }
            Action::Check(Check::KernelLog { classes }) => {
                r.check = Some("kernel_log".into());
                r.classes = Some(classes);
            }
            Action::Check(Check::Units { active }) => {
                r.check = Some("units".into());
                r.active = Some(active);
            }
            Action::Check(Check::Http {
                url,
                status,
                body_contains,
                from,
            }) => {
                r.check = Some("http".into());
                r.url = Some(url);
                r.status = Some(status);
                r.body_contains = body_contains;
                r.from =
                    (from == super::check::HttpFrom::Controller).then(|| "controller".to_string());
            }
            Action::Check(Check::Benchmark {
                suites,
                repeat,
                dir,
                disk_mb,
                peer,
            }) => {
                r.check = Some("benchmark".into());
                r.suites = Some(suites);
                r.repeat = Some(repeat);
                r.dir = Some(dir);
                r.disk_mb = Some(disk_mb);
                r.peer = peer;
            }
        }
        r
    }
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
    /// The command sent to the host.
    pub fn command(&self) -> RemoteCommand {
        match &self.action {
            Action::Run { argv, .. } => RemoteCommand::new(argv.iter().cloned()),
            Action::Check(c) => c.command(self.timeout),
        }
    }

    /// A `benchmark` check: run before the update too, its results journaled.
    pub fn is_benchmark(&self) -> bool {
        matches!(self.action, Action::Check(Check::Benchmark { .. }))
    }

    /// A benchmark's results from what the host printed, or why there are none; `None` for
    /// anything but a benchmark.
    pub fn bench_results(
        &self,
        out: &crate::exec::Output,
    ) -> Option<Result<super::bench::Measured, String>> {
        match &self.action {
            Action::Check(c) => c.bench_results(out),
            Action::Run { .. } => None,
        }
    }

    /// The argument vector of a plain command (empty for a check).
    pub fn argv(&self) -> &[String] {
        match &self.action {
            Action::Run { argv, .. } => argv,
            Action::Check(_) => &[],
        }
    }

    /// What the host answered, judged: a summary for the record, or why it failed.
    pub fn judge(&self, out: &crate::exec::Output) -> Result<String, String> {
        match &self.action {
            Action::Run { expect, .. } => match expect.judge(out.status, &out.stdout) {
                None => Ok(out.stdout.clone()),
                Some(why) => Err(why),
            },
            Action::Check(c) => c.judge(out),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// The URL the controller fetches itself (an `http` check `from: "controller"`): no
    /// command goes to the host.
    pub fn controller_url(&self) -> Option<&str> {
        match &self.action {
            Action::Check(c) => c.controller_url(),
            Action::Run { .. } => None,
        }
    }

    /// The controller's own fetch, judged: a summary for the record, or why it failed.
    pub fn judge_answer(
        &self,
        got: Result<crate::probe::Answer, crate::probe::ProbeError>,
    ) -> Result<String, String> {
        match &self.action {
            Action::Check(c) => c.judge_answer(got),
            Action::Run { .. } => Err(format!(
                "`{}` is not fetched by the controller",
                self.label()
            )),
        }
    }

    /// The name, or the command line (or the check) when there is none.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        match &self.action {
            Action::Run { .. } => self.command().shell_line(),
            Action::Check(c) => c.label(),
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

/// How to read what a host runs: its kernel release, its boot id and its boot loader's
/// environment (whose `saved_entry` is the default boot entry; empty: not read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    pub kernel: Vec<String>,
    pub boot_id: Vec<String>,
    pub boot_entry: Vec<String>,
    pub timeout: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            kernel: vec!["uname".into(), "-r".into()],
            boot_id: vec!["cat".into(), "/proc/sys/kernel/random/boot_id".into()],
            boot_entry: vec!["grub-editenv".into(), "list".into()],
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
    /// Run once the host passed verification and its post-checks: make the new kernel the
    /// permanent default (`grub-set-default`) after `set_boot` booted it once
    /// (`grub-reboot`). Empty: `set_boot` already made it the default.
    #[serde(default)]
    pub commit_boot: Vec<CommandSpec>,
    #[serde(default)]
    pub undrain: Vec<CommandSpec>,
    #[serde(default)]
    pub probe: Probe,
}

impl Steps {
    /// Checks what serde cannot: non-empty commands and positive timeouts.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_lists()?;
        if self.install.is_empty() {
            return Err("`install` has no commands".into());
        }
        self.validate_common()
    }

    /// Each command's `run` and timeout, benchmarks only in `post_check`, `reboot` a command.
    fn validate_lists(&self) -> Result<(), Invalid> {
        let lists: [(&str, &[CommandSpec]); 7] = [
            ("pre_check", &self.pre_check),
            ("drain", &self.drain),
            ("install", &self.install),
            ("set_boot", &self.set_boot),
            ("post_check", &self.post_check),
            ("commit_boot", &self.commit_boot),
            ("undrain", &self.undrain),
        ];
        for (step, cmds) in lists
            .into_iter()
            .chain([("reboot", std::slice::from_ref(&self.reboot))])
        {
            for (i, c) in cmds.iter().enumerate() {
                let plain = matches!(c.action, Action::Run { .. });
                if plain && (c.argv().is_empty() || c.argv().first().is_some_and(|a| a.is_empty()))
                {
                    return Err(format!("`{step}[{i}]` has an empty `run`").into());
                }
                if c.timeout == 0 {
                    return Err(
                        format!("`{step}[{i}]` (`{}`) has a zero timeout", c.label()).into(),
                    );
                }
            }
        }
        let bench = |c: &CommandSpec| matches!(c.action, Action::Check(Check::Benchmark { .. }));
        for (step, cmds) in lists {
            if step != "post_check" && cmds.iter().any(bench) {
                return Err(format!(
                    "`{step}` has a `benchmark` check: benchmarks belong in `post_check` (fleetward runs them once more right before `install`, for the before values)"
                )
                .into());
            }
        }
        if !matches!(self.reboot.action, Action::Run { .. }) {
            return Err("`reboot` must be a command (`run`), not a check".into());
        }
        Ok(())
    }

    /// The checks of `rollback_steps(host, previous)`: as [`Steps::validate`], but nothing need
    /// be installed (the previous kernel never left), and `set_boot` must point the boot
    /// loader at the previous kernel.
    pub fn validate_way_back(&self) -> Result<(), Invalid> {
        self.validate_lists()?;
        if self.set_boot.is_empty() {
            return Err(
                "`set_boot` has no commands: the way back must point the boot loader at the previous kernel".into(),
            );
        }
        self.validate_common()
    }

    fn validate_common(&self) -> Result<(), Invalid> {
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
/// pauses, and on the way back in a rollback before the rollback pauses. Counts, or
/// `percent(n)` of the stage / of the rollout's hosts / of the rollback's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBudget {
    pub per_stage: Amount,
    pub total: Amount,
    #[serde(default = "FailureBudget::default_rollback")]
    pub rollback: Amount,
}

impl Default for FailureBudget {
    /// One host per stage, 1% of the rollout (at least one), one host on the way back.
    fn default() -> Self {
        FailureBudget {
            per_stage: Amount::Count(1),
            total: Amount::Percent { percent: 1.0 },
            rollback: FailureBudget::default_rollback(),
        }
    }
}

/// What `on_fail(stage, verdict)` decides when a gate pauses or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Pause and alert; an operator decides.
    Pause,
    /// Roll back the failed stage's hosts.
    Rollback,
    /// Roll back every host on the new kernel.
    RollbackAll,
    /// Stop for good, leaving every host as it is.
    Abort,
}

impl OnFail {
    pub const ALL: [&'static str; 4] = ["pause", "rollback", "rollback_all", "abort"];

    pub fn key(self) -> &'static str {
        match self {
            OnFail::Pause => "pause",
            OnFail::Rollback => "rollback",
            OnFail::RollbackAll => "rollback_all",
            OnFail::Abort => "abort",
        }
    }

    /// Reads a decision: one of [`OnFail::ALL`].
    pub fn parse(v: &serde_json::Value) -> Result<OnFail, Invalid> {
        match v.as_str() {
            Some("pause") => Ok(OnFail::Pause),
            Some("rollback") => Ok(OnFail::Rollback),
            Some("rollback_all") => Ok(OnFail::RollbackAll),
            Some("abort") => Ok(OnFail::Abort),
            _ => Err(format!(
                "`{v}` is not a decision: return one of {}",
                OnFail::ALL
                    .iter()
                    .map(|x| format!("\"{x}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into()),
        }
    }
}

/// `recover(host)`: out-of-band recovery of a host that does not come back from its reboot
/// (a BMC's power cycle). `run` runs on the controller, not on the host, as the argument
/// vector it is (no shell); `wait` is how long the controller then waits for a new boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    #[serde(default = "Recover::default_name")]
    pub name: String,
    pub run: Vec<String>,
    /// Seconds the command may take.
    pub timeout: u64,
    /// Seconds to wait for the host once the command succeeded.
    pub wait: u64,
}

impl Recover {
    fn default_name() -> String {
        "recover".into()
    }

    /// Reads what `recover(host)` returned: `()` means no recovery.
    pub fn parse(v: &serde_json::Value) -> Result<Option<Recover>, Invalid> {
        if v.is_null() {
            return Ok(None);
        }
        if !v.is_object() {
            return Err(format!(
                "`recover(host)` returns `()` or `#{{name, run: [ARGV…], timeout, wait}}`, not `{v}`"
            )
            .into());
        }
        let r: Recover = serde_json::from_value(v.clone()).map_err(|e| {
            Invalid::from(format!(
                "`recover(host)` returns `()` or `#{{name, run: [ARGV…], timeout, wait}}`: {e}"
            ))
        })?;
        if r.run.is_empty() || r.run.iter().any(|a| a.is_empty()) {
            return Err(
                "`recover(host)`: `run` needs a command, and no argument may be empty".into(),
            );
        }
        if r.timeout == 0 || r.wait == 0 {
            return Err("`recover(host)`: `timeout` and `wait` must be positive (seconds)".into());
        }
        Ok(Some(r))
    }

    /// The command as one shell-quoted line, for records.
    pub fn line(&self) -> String {
        RemoteCommand::new(self.run.iter().cloned()).shell_line()
    }
}

impl FailureBudget {
    fn default_rollback() -> Amount {
        Amount::Count(1)
    }

    /// The failures `amount` allows out of `total` hosts: a count as it is (0 means any
    /// failure pauses), a share rounded down but never below one, as blast-radius shares.
    pub fn allowed(amount: Amount, total: usize) -> usize {
        amount.of(total)
    }
}

/// Where a bake's signals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalSource {
    /// fleetward's agentless collector: one script over SSH reading `/proc`.
    Ssh,
    /// A command of the site's that prints `[timestamp] metric value` lines.
    Command,
    /// Range queries against a Prometheus (node_exporter's metrics by default).
    Prometheus,
}

/// `signals()`: how metrics are collected from a stage's hosts while it bakes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    /// `ssh` (the default) or `command` (the default when `metrics` is given).
    #[serde(default)]
    pub source: Option<SignalSource>,
    /// For `command`: the argument vector that prints `[timestamp] metric value` lines.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Seconds between collections.
    #[serde(default = "default_every")]
    pub every: u64,
    #[serde(default = "default_signal_timeout")]
    pub timeout: u64,
    /// For `ssh`: seconds of one-second readings per collection.
    #[serde(default = "default_window")]
    pub window: u64,
    /// For `ssh`: block devices to time (empty: every device with a backing device).
    #[serde(default)]
    pub devices: Vec<String>,
    /// For `ssh`: interfaces to count (empty: every interface with a backing device).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// For `ssh`: kernel-log classes counted as events (default: all of them).
    #[serde(default = "crate::signals::all_classes")]
    pub kernel_log: Vec<String>,
    /// For `prometheus`: its base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// For `prometheus`: PromQL templates per metric, over the standard set (an empty one
    /// drops that metric).
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
    /// For `prometheus`: start from node_exporter's templates for the standard set.
    #[serde(default = "yes")]
    pub standard: bool,
    /// For `prometheus`: seconds between points.
    #[serde(default = "default_step")]
    pub step: u64,
    /// For `prometheus`: the rate window in seconds (default: twice `step`, at least 60).
    #[serde(default)]
    pub rate: Option<u64>,
    /// For `prometheus`: a host's value of `label` (a host's fact `instance` wins).
    #[serde(default = "default_instance")]
    pub instance: String,
    /// For `prometheus`: the label naming a host's target.
    #[serde(default = "default_label")]
    pub label: String,
    /// For `prometheus`: hosts per query at most.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn yes() -> bool {
    true
}

fn default_step() -> u64 {
    60
}

fn default_instance() -> String {
    "{{host}}:9100".into()
}

fn default_label() -> String {
    "instance".into()
}

fn default_batch() -> usize {
    500
}

fn default_every() -> u64 {
    300
}

fn default_signal_timeout() -> u64 {
    30
}

fn default_window() -> u64 {
    10
}

impl Default for Signals {
    /// The ssh collector with every default: a 10 s window every 300 s.
    fn default() -> Self {
        Signals {
            source: None,
            metrics: Vec::new(),
            every: default_every(),
            timeout: default_signal_timeout(),
            window: default_window(),
            devices: Vec::new(),
            interfaces: Vec::new(),
            kernel_log: crate::signals::all_classes(),
            url: None,
            queries: BTreeMap::new(),
            standard: true,
            step: default_step(),
            rate: None,
            instance: default_instance(),
            label: default_label(),
            batch: default_batch(),
        }
    }
}

impl Signals {
    /// The source, resolved: as given, else `command` when `metrics` is set, else `ssh`.
    pub fn source(&self) -> SignalSource {
        match self.source {
            Some(s) => s,
            None if !self.metrics.is_empty() => SignalSource::Command,
            None => SignalSource::Ssh,
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.every == 0 || self.timeout == 0 {
            return Err("`every` and `timeout` must be positive".into());
        }
        let prometheus_only = self.url.is_some() || !self.queries.is_empty();
        if prometheus_only && self.source() != SignalSource::Prometheus {
            return Err("`url` and `queries` are for `source: \"prometheus\"`".into());
        }
        match self.source() {
            SignalSource::Prometheus => {
                if !self.metrics.is_empty() {
                    return Err("`metrics` is a command, for `source: \"command\"`; prometheus takes `queries`".into());
                }
                let url = self.url.as_deref().unwrap_or("");
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "`source: \"prometheus\"` needs `url`, an http:// or https:// base URL (got `{url}`)"
                    )
                    .into());
                }
                if self.step == 0 || self.batch == 0 || self.rate == Some(0) {
                    return Err("`step`, `rate` and `batch` must be positive".into());
                }
                if self.label.is_empty() {
                    return Err("`label` must name a label".into());
                }
                crate::signals::prometheus::check_template(&self.instance)
                    .map_err(|e| format!("`instance`: {e}"))?;
                let templates = crate::signals::prometheus::templates(self.standard, &self.queries);
                if templates.is_empty() {
                    return Err(
                        "no metrics to query: `standard` is false and `queries` is empty".into(),
                    );
                }
                for (m, t) in &templates {
                    if m.is_empty() || m.contains(char::is_whitespace) {
                        return Err(format!("`{m}` is not a metric name").into());
                    }
                    crate::signals::prometheus::check_template(t)
                        .map_err(|e| format!("the query of `{m}`: {e}"))?;
                }
                Ok(())
            }
            SignalSource::Command if self.metrics.is_empty() => {
                Err("`source: \"command\"` needs `metrics`, a command".into())
            }
            SignalSource::Command => Ok(()),
            SignalSource::Ssh => {
                if !self.metrics.is_empty() {
                    return Err("`metrics` is a command, for `source: \"command\"`; the ssh collector takes none".into());
                }
                if self.window == 0 {
                    return Err("`window` must be at least 1 second".into());
                }
                if self.timeout <= self.window {
                    return Err(format!(
                        "`timeout` ({} s) must exceed `window` ({} s)",
                        self.timeout, self.window
                    )
                    .into());
                }
                crate::signals::check_classes(&self.kernel_log)?;
                for d in self.devices.iter().chain(&self.interfaces) {
                    if d.is_empty() || d.contains(char::is_whitespace) || d.contains('/') {
                        return Err(format!("`{d}` is not a device or interface name").into());
                    }
                }
                Ok(())
            }
        }
    }

    /// The Prometheus source's queries, resolved.
    pub fn prometheus(&self) -> crate::signals::prometheus::Spec {
        crate::signals::prometheus::Spec {
            url: self.url.clone().unwrap_or_default(),
            step: self.step,
            rate: self.rate.unwrap_or((2 * self.step).max(60)),
            batch: self.batch,
            label: self.label.clone(),
            instance: self.instance.clone(),
            queries: crate::signals::prometheus::templates(self.standard, &self.queries),
            devices: self.devices.clone(),
            interfaces: self.interfaces.clone(),
        }
    }

    /// The collector request for a collection at `now` (epoch seconds): kernel-log lines of
    /// the last `every` seconds.
    pub fn request(&self, now: u64) -> crate::signals::Request {
        crate::signals::Request {
            window: self.window,
            since: now.saturating_sub(self.every),
            devices: self.devices.clone(),
            interfaces: self.interfaces.clone(),
        }
    }
}

pub use crate::signals::{parse_metrics, Sample};

#[cfg(test)]
mod tests {
    use super::*;

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

    /// What `recover(host)` returned (as JSON) and how it reads.
    fn check_recover(json: &str, expect: expect_test::Expect) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let got = match Recover::parse(&v) {
            Ok(None) => "none".to_string(),
            Ok(Some(r)) => format!(
                "{} `{}` timeout {} wait {}",
                r.name,
                r.line(),
                r.timeout,
                r.wait
            ),
            Err(e) => e.0,
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn recover_reads_a_command_or_none() {
        check_recover("null", expect_test::expect!["none"]);
        check_recover(
            r#"{"run":["ipmitool","-H","10.0.0.5; x","chassis","power","cycle"],"timeout":120,"wait":900}"#,
            expect_test::expect![
                "recover `ipmitool -H '10.0.0.5; x' chassis power cycle` timeout 120 wait 900"
            ],
        );
        check_recover(
            r#"{"run":[],"timeout":120,"wait":900}"#,
            expect_test::expect![
                "`recover(host)`: `run` needs a command, and no argument may be empty"
            ],
        );
        check_recover(
            r#"{"run":["bmc"],"timeout":120,"wait":0}"#,
            expect_test::expect![
                "`recover(host)`: `timeout` and `wait` must be positive (seconds)"
            ],
        );
        check_recover(
            r#"{"run":["bmc"],"timeout":120}"#,
            expect_test::expect!["`recover(host)` returns `()` or `#{name, run: [ARGV…], timeout, wait}`: missing field `wait`"],
        );
        check_recover(
            r#"["bmc"]"#,
            expect_test::expect![[
                r#"`recover(host)` returns `()` or `#{name, run: [ARGV…], timeout, wait}`, not `["bmc"]`"#
            ]],
        );
    }

    /// `signals()` maps (as JSON) and what `validate` says of them.
    fn check_signals(json: &str, expect: expect_test::Expect) {
        let s: Signals = serde_json::from_str(json).unwrap();
        let got = match s.validate() {
            Ok(()) => "ok".to_string(),
            Err(e) => e.0,
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn prometheus_signals_are_checked_before_any_query() {
        check_signals(
            r#"{"source":"prometheus","url":"http://prom:9090"}"#,
            expect_test::expect!["ok"],
        );
        check_signals(
            r#"{"source":"prometheus"}"#,
            expect_test::expect![[
                r#"`source: "prometheus"` needs `url`, an http:// or https:// base URL (got ``)"#
            ]],
        );
        check_signals(
            r#"{"source":"prometheus","url":"http://p","queries":{"x":"up{{{instance}"}}"#,
            expect_test::expect!["the query of `x`: `{{` without `}}` in `up{{{instance}`"],
        );
        check_signals(
            r#"{"source":"prometheus","url":"http://p","standard":false}"#,
            expect_test::expect!["no metrics to query: `standard` is false and `queries` is empty"],
        );
        check_signals(
            r#"{"source":"ssh","url":"http://p"}"#,
            expect_test::expect![[r#"`url` and `queries` are for `source: "prometheus"`"#]],
        );
        check_signals(
            r#"{"source":"prometheus","url":"http://p","step":0}"#,
            expect_test::expect!["`step`, `rate` and `batch` must be positive"],
        );
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
