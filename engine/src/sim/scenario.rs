//! `scenario.toml` and its run: the rollout controller, unchanged, against a simulated fleet
//! on a virtual clock, with the faults the scenario injects resolved against its plan and
//! inventory, and the invariants checked from the simulated hosts' own records.

use super::exec::{Faults, Regression, SimExecutor, Timing};
use crate::alert::{Alert, AlertSink, Alerts, Collected};
use crate::clock::{Clock, VirtualClock};
use crate::exec::Executor;
use crate::inventory::Source;
use crate::reload::PolicyStore;
use crate::rollout::controller::{
    Acknowledge, Control, Controller, Fleet, Io, Limits, NoControl, Observer, Options,
    PolicySource, SharedGates,
};
use crate::rollout::session::{coordinate, lead_shard, SessionError, ShardView};
use crate::rollout::shard::EtcdControl;
use crate::rollout::{Journal, Phase, RolloutState};
use crate::runtime::LoadOptions;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `scenario.toml`. Paths are relative to the scenario directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    inventory: PathBuf,
    policies: PathBuf,
    baseline: PathBuf,
    /// When the simulated rollout starts (RFC 3339).
    start: String,
    kernel: Option<String>,
    seed: Option<u64>,
    /// Drawn into the simulated samples' noise (0: the noise of the shipped goldens).
    #[serde(default)]
    noise_seed: u64,
    /// Each host's own level change between windows four hours apart, kernel or not (standard
    /// deviation, percent of its level): hosts drift as their traffic shifts.
    #[serde(default)]
    host_drift_pct: f64,
    /// Bake override in seconds.
    bake: Option<u64>,
    #[serde(default)]
    timing: TimingSpec,
    #[serde(default)]
    regression: Vec<RegressionSpec>,
    #[serde(default)]
    unexpected_reboot: Vec<RebootSpec>,
    /// Hosts whose new kernel panics this long after it booted (once; the host reboots into
    /// its default entry).
    #[serde(default)]
    kernel_panic: Vec<RebootSpec>,
    #[serde(default)]
    faults: FaultSpec,
    pub expect: Option<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TimingSpec {
    install_secs: u64,
    reboot_secs: u64,
    command_secs: u64,
}

impl Default for TimingSpec {
    fn default() -> Self {
        let t = Timing::default();
        TimingSpec {
            install_secs: t.install.as_secs(),
            reboot_secs: t.reboot_down.as_secs(),
            command_secs: t.command.as_secs(),
        }
    }
}

/// A metric that worsens on `group`'s hosts in stages from `from_stage` on (0 = canaries),
/// once they run the new kernel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionSpec {
    pub group: String,
    #[serde(default)]
    pub from_stage: usize,
    pub metric: String,
    pub factor: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RebootSpec {
    host: String,
    after_secs: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FaultSpec {
    unreachable: Vec<String>,
    never_up: Vec<String>,
    /// Of the `never_up` hosts, those the policy's out-of-band recovery (`recover(host)`)
    /// brings back: they boot their default entry after the power cycle.
    recover_fixes: Vec<String>,
    /// A one-shot boot (`grub-reboot`) fails on these hosts: the default entry boots instead.
    boot_falls_back: Vec<String>,
    hang: Vec<HangSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HangSpec {
    host: String,
    command: String,
}

/// The outcome a scenario expects.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub phase: String,
    pub stage: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{col}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("scenario {0}")]
    Invalid(String),
    #[error(transparent)]
    Session(#[from] SessionError),
}

fn session(e: impl Into<SessionError>) -> ScenarioError {
    ScenarioError::Session(e.into())
}

impl Scenario {
    /// A scenario built in code (`bench verdicts`): paths as in `scenario.toml`, relative to
    /// the directory it runs in, or absolute.
    #[allow(clippy::too_many_arguments)]
    pub fn generated(
        inventory: PathBuf,
        policies: PathBuf,
        baseline: PathBuf,
        start: &str,
        seed: u64,
        host_drift_pct: f64,
        regression: Vec<RegressionSpec>,
    ) -> Scenario {
        Scenario {
            description: String::new(),
            inventory,
            policies,
            baseline,
            start: start.into(),
            kernel: None,
            seed: Some(seed),
            noise_seed: seed,
            host_drift_pct,
            bake: None,
            timing: TimingSpec::default(),
            regression,
            unexpected_reboot: Vec::new(),
            kernel_panic: Vec::new(),
            faults: FaultSpec::default(),
            expect: None,
        }
    }

    /// Reads `dir/scenario.toml`; errors name `file:line:col`.
    pub fn load(dir: &Path) -> Result<Scenario, ScenarioError> {
        let path = dir.join("scenario.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ScenarioError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| crate::error::line_col(&text, s.start))
                .unwrap_or((1, 1));
            ScenarioError::Parse {
                path,
                line,
                col,
                message: e.message().to_string(),
            }
        })
    }
}

/// How to run a scenario.
pub struct RunOptions {
    /// Where the journal, samples and gate reports go.
    pub state_dir: PathBuf,
    /// Driver threads.
    pub workers: usize,
    /// Run as the controller of one shard among several, coordinated through etcd: only the
    /// shard's hosts are simulated, and its gates wait for every shard's.
    pub shard: Option<crate::rollout::shard::ShardRequest>,
}

/// What a simulated rollout did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub phase: Phase,
    pub stage: Option<String>,
    pub pause_reason: Option<String>,
    pub hosts: usize,
    pub updated: usize,
    /// Hosts a rollback put back on their previous kernel.
    pub rolled_back: usize,
    pub failed: usize,
    pub virtual_secs: f64,
    pub wall_secs: f64,
    pub events: usize,
    pub alerts: Vec<Alert>,
    /// Invariants the simulated hosts' records break (none, in a correct controller).
    pub violations: Vec<String>,
    /// A shard's controller: what it exchanged with etcd.
    pub shard: Option<ShardFigures>,
    pub expect: Option<Expect>,
    pub expectation_met: Option<bool>,
}

impl Summary {
    /// Passed: no invariant broken, and the outcome the scenario expects, if it names one.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.expectation_met != Some(false)
    }
}

/// What one shard's controller exchanged with etcd.
#[derive(Debug, Clone, Serialize)]
pub struct ShardFigures {
    /// `KEY=VALUE`.
    pub shard: String,
    /// The rollout's name in etcd.
    pub rollout: String,
    /// It took the shard over from a controller before it: the journal it adopted held this
    /// many records.
    pub adopted_records: usize,
    /// Requests to etcd, lease keep-alives included.
    pub etcd_requests: u64,
    /// Its gate parts: bytes of JSON, and bytes sent (compressed).
    pub gate_json_bytes: u64,
    pub gate_sent_bytes: u64,
}

/// Faults, resolved against the plan and the inventory.
fn faults(
    sc: &Scenario,
    hosts: &[crate::model::Host],
    plan: &crate::plan::Plan,
) -> Result<Faults, ScenarioError> {
    let known: HashSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let check = |h: &str, what: &str| {
        if known.contains(h) {
            Ok(h.to_string())
        } else {
            Err(ScenarioError::Invalid(format!(
                "{what}: host `{h}` is not in the inventory"
            )))
        }
    };
    if !(0.0..=100.0).contains(&sc.host_drift_pct) {
        return Err(ScenarioError::Invalid(format!(
            "host_drift_pct must be a percentage from 0 to 100, not `{}`",
            sc.host_drift_pct
        )));
    }
    let mut faults = Faults {
        noise_seed: sc.noise_seed,
        host_drift: sc.host_drift_pct / 100.0,
        ..Faults::default()
    };
    let group_of: BTreeMap<&str, String> = hosts
        .iter()
        .map(|h| (h.name.as_str(), h.group_name()))
        .collect();
    // `r750/db`, or a pooled level: `r750/*` (a hardware class), `*/db` (a workload).
    let matches = |pattern: &str, g: &str| {
        let (ph, pw) = pattern.split_once('/').unwrap_or((pattern, ""));
        let (gh, gw) = g.split_once('/').unwrap_or((g, ""));
        (ph == "*" || ph == gh) && (pw == "*" || pw == gw)
    };
    for r in &sc.regression {
        if !group_of.values().any(|g| matches(&r.group, g)) {
            return Err(ScenarioError::Invalid(format!(
                "regression: no group `{}` in the inventory",
                r.group
            )));
        }
        for st in plan.stages.iter().filter(|s| s.info.index >= r.from_stage) {
            for b in &st.batches {
                for h in b.hosts.iter().filter(|h| {
                    group_of
                        .get(h.as_str())
                        .is_some_and(|g| matches(&r.group, g))
                }) {
                    faults
                        .regressions
                        .entry(h.clone())
                        .or_default()
                        .push(Regression {
                            metric: r.metric.clone(),
                            factor: r.factor,
                        });
                }
            }
        }
    }
    for h in &sc.faults.unreachable {
        faults.unreachable.insert(check(h, "unreachable")?);
    }
    for h in &sc.faults.never_up {
        faults.never_up.insert(check(h, "never_up")?);
    }
    for h in &sc.faults.recover_fixes {
        let h = check(h, "recover_fixes")?;
        if !faults.never_up.contains(&h) {
            return Err(ScenarioError::Invalid(format!(
                "recover_fixes: `{h}` is not in `never_up`; only a host that never comes back from its reboot is recovered"
            )));
        }
        faults.recover_fixes.insert(h);
    }
    for h in &sc.faults.boot_falls_back {
        faults.boot_falls_back.insert(check(h, "boot_falls_back")?);
    }
    for r in &sc.kernel_panic {
        faults.kernel_panic_after.insert(
            check(&r.host, "kernel_panic")?,
            Duration::from_secs(r.after_secs),
        );
    }
    for x in &sc.faults.hang {
        faults
            .hang
            .entry(check(&x.host, "hang")?)
            .or_default()
            .insert(x.command.clone());
    }
    for r in &sc.unexpected_reboot {
        faults.unexpected_reboot_after.insert(
            check(&r.host, "unexpected_reboot")?,
            Duration::from_secs(r.after_secs),
        );
    }
    Ok(faults)
}

/// Runs the scenario in `dir` (already read as `sc`).
pub fn run(
    dir: &Path,
    sc: &Scenario,
    opts: &RunOptions,
    load: &LoadOptions,
    observer: &dyn Observer,
) -> Result<Summary, ScenarioError> {
    let wall = Instant::now();
    let rel = |p: &Path| dir.join(p);
    let (store, set) =
        PolicyStore::load_valid(&rel(&sc.policies), load.clone()).map_err(session)?;
    let inv = Source::file(rel(&sc.inventory))
        .load(set.field_map())
        .map_err(session)?;
    let start: jiff::Timestamp = sc.start.parse().map_err(|_| {
        ScenarioError::Invalid(format!(
            "start `{}` is not an RFC 3339 time such as `2026-12-07T14:00:00Z`",
            sc.start
        ))
    })?;
    let plan = crate::plan::for_inventory(
        &set,
        &inv,
        sc.kernel.clone(),
        sc.seed,
        Some(start),
        &Default::default(),
        Some(&rel(&sc.baseline)),
    )
    .map_err(session)?;
    let mut fleet = Fleet::load(&inv.hosts, &rel(&sc.baseline)).map_err(session)?;
    let timing = Timing {
        install: Duration::from_secs(sc.timing.install_secs),
        reboot_down: Duration::from_secs(sc.timing.reboot_secs),
        command: Duration::from_secs(sc.timing.command_secs),
    };
    let faults = faults(sc, &inv.hosts, &plan)?;
    let mut plan = plan;
    let mut hosts = inv.hosts.clone();
    // One shard among several: one plan for the whole fleet, of which it keeps its hosts,
    // and its controller leads the shard in etcd (standing by while another does).
    let led = match &opts.shard {
        None => None,
        Some(sh) => {
            let view = ShardView::of(&set, &inv.hosts, &sh.shard)?;
            hosts.retain(|h| sh.shard.holds(h));
            if hosts.is_empty() {
                return Err(ScenarioError::Invalid(format!(
                    "no host of the inventory is in shard `{}`",
                    sh.shard.name()
                )));
            }
            fleet = fleet.only(|h| sh.shard.holds(h));
            plan = plan.only(|h| fleet.host(h).is_some());
            let rollout = sh.rollout_name(&plan.target_kernel, &inv.hash);
            let led = lead_shard(sh, &rollout, view, observer)?;
            Some((led, rollout))
        }
    };
    let exec = SimExecutor::new(&hosts, faults, timing, start);
    let clock = VirtualClock::new(start);
    let collected = Arc::new(Collected::default());
    let mut alerts = Alerts::default();
    alerts
        .sinks
        .push(Arc::clone(&collected) as Arc<dyn AlertSink>);
    let mut journal = Journal::open(&opts.state_dir).map_err(session)?;
    journal.set_durable(false);
    let adopted = led.as_ref().map_or(0, |(l, _)| l.records.len());
    if let Some((l, _)) = &led {
        journal = journal.adopt(&l.records).map_err(session)?;
    }
    let taken_over = RolloutState::fold(journal.records());
    if adopted > 0 {
        // The hosts as its predecessor left them.
        exec.as_left(&taken_over);
        // The clock goes on from the last record.
        let last = journal
            .records()
            .last()
            .and_then(|r| r.at.parse::<jiff::Timestamp>().ok());
        if let Some(t) = last.filter(|t| *t > start) {
            clock.advance(t.duration_since(start).unsigned_abs());
        }
    }
    let coordinated = match &led {
        Some((l, _)) => {
            let waiting = Box::new(|m: &str| tracing::warn!("{m}"));
            Some(coordinate(l, &mut journal, observer, waiting).map_err(session)?)
        }
        None => None,
    };
    let fence: &dyn crate::coord::Fence = match &led {
        Some((l, _)) => l.session.as_ref(),
        None => &crate::coord::Unfenced,
    };
    let fenced = crate::coord::FencedExecutor {
        inner: &exec as &dyn Executor,
        fence,
    };
    let etcd_control = led.as_ref().map(|(l, _)| {
        EtcdControl::new(
            &NoControl,
            Arc::clone(&l.session),
            l.leader.clone(),
            l.shard.name(),
        )
    });
    observer.begin(plan.stages.iter().map(|s| s.info.size).sum());
    let progress = led
        .as_ref()
        .map(|(l, _)| crate::rollout::shard::ProgressObserver::new(observer, l));
    let io = Io {
        exec: &fenced as &dyn Executor,
        clock: &clock as &dyn Clock,
        alerts: &alerts,
        policies: store.as_ref() as &dyn PolicySource,
        control: match &etcd_control {
            Some(c) => c as &dyn Control,
            None => &NoControl,
        },
        observer: match &progress {
            Some(p) => p as &dyn Observer,
            None => observer,
        },
        metrics: &crate::signals::prometheus::NoMetricsStore,
        http: &exec as &dyn crate::probe::HttpProbe,
        oob: &exec as &dyn crate::exec::oob::OutOfBand,
        fence,
        limits: match &coordinated {
            Some((l, _)) => l as &dyn Limits,
            None => &crate::rollout::controller::Unshared,
        },
        gates: coordinated.as_ref().map(|(_, g)| g as &dyn SharedGates),
    };
    let ropts = Options {
        name: format!("simulation {}", dir.display()),
        workers: opts.workers.max(1),
        bake: sc.bake,
        windows: true,
    };
    let c = if adopted == 0 {
        Controller::start(journal, &fleet, io, ropts, &plan, &inv.hash).map_err(session)?
    } else {
        let c = Controller::open(journal, &fleet, io, ropts);
        if taken_over.phase == Phase::Running {
            c.resume(&Acknowledge::None, false).map_err(session)?;
        }
        c
    };
    let phase = if adopted > 0 && taken_over.phase != Phase::Running {
        // Taken over after its predecessor finished: reported as it stands.
        Ok(taken_over.phase)
    } else {
        c.run()
    };
    match &progress {
        Some(p) => p.finish(),
        None => observer.finish(),
    }
    let phase = phase.map_err(session)?;
    let shard = led.as_ref().map(|(l, rollout)| {
        let (json, sent) = coordinated
            .as_ref()
            .map_or((0, 0), |(_, g)| g.published_bytes());
        ShardFigures {
            shard: l.shard.name(),
            rollout: rollout.clone(),
            adopted_records: adopted,
            etcd_requests: l.session.requests(),
            gate_json_bytes: json,
            gate_sent_bytes: sent,
        }
    });
    let st = c.state();
    drop(c);
    drop(coordinated);
    drop(etcd_control);
    drop(progress);
    if let Some((l, _)) = led {
        if let Err(e) = l.step_down() {
            tracing::warn!("could not end the shard's lease at exit: {e}");
        }
    }
    let events = Journal::read_only(&opts.state_dir)
        .map(|r| r.len())
        .unwrap_or(0);

    // Invariants, from the simulated hosts' own records.
    let mut violations = Vec::new();
    for (name, r) in &exec.records() {
        let planned = st.hosts.get(name);
        let unexpected = planned.map(|h| h.unexpected_reboots).unwrap_or(0);
        // One reboot for the update, one on the way back, and the host's own.
        let back = planned.and_then(|h| h.back.as_deref());
        let allowed = 1 + unexpected + back.map_or(0, |b| b.reboots);
        if r.reboots > allowed {
            violations.push(format!("host `{name}` was rebooted {} times", r.reboots));
        }
        if back.is_none() && planned.is_some_and(|h| h.done) && r.kernel != st.target_kernel {
            violations.push(format!(
                "host `{name}` is marked updated but runs `{}`",
                r.kernel
            ));
        }
        let previous = planned.and_then(|h| h.previous_kernel.as_deref());
        if back.is_some_and(|b| b.done) && previous != Some(r.kernel.as_str()) {
            violations.push(format!(
                "host `{name}` is marked rolled back but runs `{}`, not `{}`",
                r.kernel,
                previous.unwrap_or("its previous kernel")
            ));
        }
    }
    if phase == Phase::RolledBack {
        for h in st.rollback.iter().flat_map(|r| r.hosts()) {
            if !st
                .hosts
                .get(h)
                .and_then(|x| x.back.as_deref())
                .is_some_and(|b| b.settled())
            {
                violations.push(format!("host `{h}` was skipped by the rollback"));
            }
        }
    }
    if matches!(phase, Phase::Completed | Phase::CompletedWithFailures) {
        for (name, h) in &st.hosts {
            if !h.settled() {
                violations.push(format!("host `{name}` was skipped"));
            }
        }
    }
    let stage = st
        .stage
        .and_then(|s| st.stages.get(s))
        .map(|s| s.name.clone());
    let expectation_met = sc.expect.as_ref().map(|e| {
        (e.phase == phase.as_str() || e.phase == phase.key())
            && e.stage.as_ref().is_none_or(|s| Some(s) == stage.as_ref())
    });
    Ok(Summary {
        stage,
        pause_reason: st.pause_reason.clone(),
        hosts: st.planned_hosts(),
        updated: st.hosts.values().filter(|h| h.done).count(),
        rolled_back: st.hosts.values().filter(|h| h.rolled_back()).count(),
        failed: st.hosts.values().filter(|h| h.failed.is_some()).count(),
        virtual_secs: clock.now().duration_since(start).as_secs_f64(),
        wall_secs: wall.elapsed().as_secs_f64(),
        events,
        alerts: collected.alerts(),
        violations,
        shard,
        expect: sc.expect.clone(),
        expectation_met,
        phase,
    })
}

/// The human summary of a run.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} after {} of virtual time: {} of {} host(s) updated, {}{} failed, {} journal events",
        s.phase.as_str().to_uppercase(),
        crate::plan::human_secs(s.virtual_secs as u64),
        s.updated,
        s.hosts,
        if s.rolled_back > 0 {
            format!("{} rolled back, ", s.rolled_back)
        } else {
            String::new()
        },
        s.failed,
        s.events,
    );
    let _ = writeln!(o, "  wall time {:.2} s", s.wall_secs);
    if let (Some(r), Some(st)) = (&s.pause_reason, &s.stage) {
        let _ = writeln!(o, "  at stage {st}: {r}");
    }
    for al in &s.alerts {
        let _ = writeln!(
            o,
            "  alert [{}] {}: {}",
            al.severity.as_str(),
            al.kind,
            al.summary
        );
        for r in &al.reasons {
            let _ = writeln!(o, "      - {r}");
        }
    }
    for v in &s.violations {
        let _ = writeln!(o, "  INVARIANT VIOLATED: {v}");
    }
    if let Some(e) = &s.expect {
        let at = e
            .stage
            .as_deref()
            .map(|st| format!(" at {st}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {}as the scenario expects: {}{at}",
            if s.expectation_met == Some(true) {
                ""
            } else {
                "NOT "
            },
            e.phase
        );
    }
    o
}
