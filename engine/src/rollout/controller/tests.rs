//! The controller on a simulated fleet: a crash at every journal append (before and after the
//! record reaches disk), each followed by a fresh controller resuming from the journal, keeps
//! every invariant, checked against the simulated hosts' own records.

use super::*;
use crate::alert::Alerts;
use crate::clock::VirtualClock;
use crate::plan::PlanRequest;
use crate::rollout::state::RolloutState;
use crate::runtime::LoadOptions;
use crate::sim::exec::{Faults, SimExecutor, Timing};
use crate::sim::samplegen::{self, Scenario};

const TARGET: &str = "6.8.0-45-generic";

fn hosts() -> Vec<Host> {
    let groups = [
        ("r650", "web"),
        ("r650", "db"),
        ("r750", "web"),
        ("r750", "db"),
    ];
    (0..16)
        .map(|i| {
            let (hw, wl) = groups[i % 4];
            Host {
                name: format!("h{i:02}"),
                address: format!("10.0.0.{i}"),
                hardware: hw.into(),
                workload: wl.into(),
                datacenter: "dc1".into(),
                rack: format!("r{i:02}"),
                kernel: "6.8.0-40-generic".into(),
                ..Host::default()
            }
        })
        .collect()
}

struct World {
    _dir: tempfile::TempDir,
    state: PathBuf,
    set: Arc<PolicySet>,
    fleet: Fleet,
    plan: Plan,
    start: jiff::Timestamp,
}

fn world() -> World {
    world_with(&[])
}

/// The world with `patches` (from, to) applied to the shipped `rollout.rhai`.
fn world_with(patches: &[(&str, &str)]) -> World {
    let dir = tempfile::tempdir().unwrap();
    // The shipped policies, with waves not split by datacenter (16 hosts in one).
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(policies.join("lib")).unwrap();
    for f in [
        "rollout.rhai",
        "gates.rhai",
        "fleetward.toml",
        "lib/thresholds.rhai",
    ] {
        std::fs::copy(shipped.join(f), policies.join(f)).unwrap();
    }
    let rollout = policies.join("rollout.rhai");
    let mut text = std::fs::read_to_string(&rollout).unwrap();
    let from = "datacenter: #{ per_wave: percent(10) },";
    for (from, to) in std::iter::once((from, "datacenter: #{ per_wave: percent(100) },"))
        .chain(patches.iter().copied())
    {
        assert!(text.contains(from), "rollout.rhai no longer has `{from}`");
        text = text.replace(from, to);
    }
    std::fs::write(&rollout, text).unwrap();
    // Two canaries and two controls per group cannot detect 5%: this fleet tests the
    // controller, not the statistics, so the canary gate does not require power.
    let th = policies.join("lib/thresholds.rhai");
    let text = std::fs::read_to_string(&th).unwrap();
    let from = "fn power_required() {\n    true\n}";
    assert!(text.contains(from));
    std::fs::write(
        &th,
        text.replace(from, "fn power_required() {\n    false\n}"),
    )
    .unwrap();
    let set = Arc::new(PolicySet::load(&policies, &LoadOptions::default()).unwrap());
    let hosts = hosts();
    // Production history from the same distributions the simulator draws from.
    let refs: Vec<&Host> = hosts.iter().collect();
    let samples = samplegen::generate(&refs, Scenario::Baseline, 24, 1_700_000_000);
    let base = dir.path().join("baseline.parquet");
    crate::gate::frames::write(samples.rows(), &base).unwrap();
    // A Monday, 06:00 in Los Angeles: inside the shipped policy's windows.
    let start: jiff::Timestamp = "2026-12-07T14:00:00Z".parse().unwrap();
    let plan = crate::plan::plan(
        &PlanRequest {
            hosts: &hosts,
            target_kernel: TARGET,
            seed: 3,
            start,
            held: &Default::default(),
            sizing: None,
        },
        &PolicyRules::new(&set),
    )
    .unwrap();
    World {
        state: dir.path().join("state"),
        _dir: dir,
        set,
        fleet: Fleet::load(&hosts, &base).unwrap(),
        plan,
        start,
    }
}

fn opts() -> Options {
    Options {
        name: "test".into(),
        workers: 4,
        bake: Some(1800),
        windows: true,
    }
}

/// The controller's I/O on the simulator: `exec` answers for the hosts, for the controller's
/// own fetches and for its out-of-band commands.
fn sim_io<'a>(
    w: &'a World,
    exec: &'a SimExecutor,
    clock: &'a VirtualClock,
    alerts: &'a Alerts,
    control: &'a dyn Control,
) -> Io<'a> {
    Io {
        exec,
        clock,
        alerts,
        policies: &w.set,
        control,
        observer: &NoObserver,
        metrics: &crate::signals::prometheus::NoMetricsStore,
        http: exec,
        oob: exec,
        fence: &crate::coord::Unfenced,
        limits: &crate::rollout::controller::Unshared,
        gates: None,
    }
}

/// Runs the rollout, crashing at append `crash` (if any); returns the phase of the last run.
fn run_with_crash(
    w: &World,
    exec: &SimExecutor,
    clock: &VirtualClock,
    crash: Option<(usize, bool)>,
) -> Phase {
    run_with_crash_down(w, exec, clock, crash, Duration::from_secs(30), opts())
}

/// [`run_with_crash`], the controller staying down for `down` after the crash.
fn run_with_crash_down(
    w: &World,
    exec: &SimExecutor,
    clock: &VirtualClock,
    crash: Option<(usize, bool)>,
    down: Duration,
    opts: Options,
) -> Phase {
    let alerts = Alerts::default();
    let io = sim_io(w, exec, clock, &alerts, &NoControl);
    let mut journal = Journal::open(&w.state).unwrap();
    journal.set_durable(false);
    journal.crash_at = crash;
    let first = if journal.records().is_empty() {
        Controller::start(journal, &w.fleet, io, opts.clone(), &w.plan, "inv").map(|c| c.run())
    } else {
        Ok(Controller::open(journal, &w.fleet, io, opts.clone()).run())
    };
    match first {
        Ok(Ok(phase)) => return phase,
        Ok(Err(ControllerError::Journal(_))) | Err(ControllerError::Journal(_)) => {}
        Ok(Err(e)) | Err(e) => panic!("unexpected error: {e}"),
    }
    // The crash: a new controller picks up from what reached the disk. Hosts caught mid-step
    // must be re-checked (kernel and boot id) before anything else is done to them.
    clock.sleep(down);
    let at_crash = Journal::read_only(&w.state).unwrap_or_default();
    let crashed = RolloutState::fold(&at_crash);
    let interrupted: Vec<(String, bool)> = crashed
        .interrupted()
        .into_iter()
        .map(|h| (h.to_string(), crashed.hosts[h].reboots > 0))
        .collect();
    let mut journal = Journal::open(&w.state).unwrap();
    journal.set_durable(false);
    let mut phase = if journal.records().is_empty() {
        // Nothing reached the disk: the operator starts again.
        let c = Controller::start(journal, &w.fleet, io, opts.clone(), &w.plan, "inv").unwrap();
        c.run().unwrap()
    } else {
        Controller::open(journal, &w.fleet, io, opts.clone())
            .run()
            .unwrap()
    };
    let after = Journal::read_only(&w.state).unwrap();
    for (h, rebooting) in &interrupted {
        let first = after[at_crash.len()..].iter().find(|r| match &r.event {
            Event::StepStarted { host, .. }
            | Event::HostChecked { host, .. }
            | Event::RebootIssued { host, .. }
            | Event::HostFailed { host, .. } => host == h,
            _ => false,
        });
        // A host down in its reboot cannot answer the re-check; waiting for its new boot id
        // (which only reads it) is then the re-check.
        let ok = match first.map(|r| &r.event) {
            Some(Event::HostChecked { .. }) => true,
            Some(Event::StepStarted {
                step: Step::WaitUp, ..
            }) => *rebooting,
            _ => false,
        };
        assert!(
            ok,
            "{h} was interrupted; first event after the crash: {first:?}"
        );
    }
    // A crash can quarantine a host (see `check`); a stage left with no host to judge then
    // pauses. The operator acknowledges and accepts, as `rollout resume` lets them.
    for _ in 0..10 {
        if !matches!(phase, Phase::Paused | Phase::CompletedWithFailures) {
            break;
        }
        let mut journal = Journal::open(&w.state).unwrap();
        journal.set_durable(false);
        let c = Controller::open(journal, &w.fleet, io, opts.clone());
        c.resume(&Acknowledge::All, true).unwrap();
        phase = c.run().unwrap();
    }
    phase
}

/// Checks the invariants against the hosts' own records and the final journal.
fn check(w: &World, exec: &SimExecutor, label: &str) -> RolloutState {
    let records = Journal::read_only(&w.state).unwrap();
    let st = RolloutState::fold(&records);
    assert_eq!(
        st.phase,
        Phase::Completed,
        "{label}: {:?} {:?}",
        st.pause_reason,
        st.gates
    );
    let hosts = exec.records();
    for (name, h) in &st.hosts {
        let r = &hosts[name];
        assert!(
            r.reboots <= 1,
            "{label}: {name} rebooted {} times",
            r.reboots
        );
        assert!(h.settled(), "{label}: {name} skipped");
        if h.done {
            assert_eq!(r.kernel, TARGET, "{label}: {name}");
            assert_eq!(r.reboots, 1, "{label}: {name}");
        } else {
            // A reboot recorded but never sent is sent again after the crash: no crash fails
            // a host.
            panic!("{label}: {name} failed: {:?}", h.failed);
        }
    }
    // No stage started before the gate of the one before it passed.
    let stage_of: HashMap<&str, usize> = st
        .stages
        .iter()
        .flat_map(|s| s.hosts.iter().map(move |h| (h.as_str(), s.index)))
        .collect();
    let mut passed = 0usize; // stages whose gate passed so far
    for r in &records {
        match &r.event {
            Event::GateEvaluated {
                stage,
                verdict: VerdictKind::Pass,
                ..
            } => passed = passed.max(stage + 1),
            Event::StepStarted { host, .. } => {
                let s = stage_of[host.as_str()];
                assert!(
                    s <= passed,
                    "{label}: {host} (stage {s}) started with {passed} gate(s) passed"
                );
            }
            _ => {}
        }
    }
    st
}

#[test]
fn a_clean_simulated_rollout_completes() {
    let w = world();
    let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    run_with_crash(&w, &exec, &clock, None);
    let st = check(&w, &exec, "clean");
    assert!(st.hosts.values().all(|h| h.done));
    assert!(w.state.join("stage-00.gate.json").exists());
}

#[test]
fn a_crash_at_every_append_then_resume_keeps_every_invariant() {
    // How many appends a clean run makes.
    let total = {
        let w = world();
        let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
        let clock = VirtualClock::new(w.start);
        run_with_crash(&w, &exec, &clock, None);
        Journal::read_only(&w.state).unwrap().len()
    };
    assert!(total > 100, "{total}");
    let mut w = world();
    for n in 0..total {
        for written in [false, true] {
            w.state = w._dir.path().join(format!("state-{n}-{written}"));
            let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
            let clock = VirtualClock::new(w.start);
            let label = format!(
                "crash at append {n} ({})",
                if written {
                    "after writing"
                } else {
                    "before writing"
                }
            );
            run_with_crash(&w, &exec, &clock, Some((n, written)));
            check(&w, &exec, &label);
        }
    }
}

/// Finding (e2e, kill -9 at random points): a controller killed between recording a reboot and
/// sending it, resumed after the reboot's wait had run out, found the host up on its old boot
/// and quarantined it ("boot id unchanged"): the reboot was sent again only inside the first
/// wait. It is now sent again whenever the host still runs the boot it had, and waited for
/// afresh. A crash at every append from the first reboot to the first answer, each resumed
/// three hours later (the wait is minutes): every host is updated, each rebooted once.
#[test]
fn finding_a_resume_after_the_reboot_wait_ran_out_quarantined_a_host_never_rebooted() {
    // One worker: the appends come in one order, so each crash point is the same every run.
    let one = Options {
        workers: 1,
        ..opts()
    };
    let down = Duration::from_secs(3 * 3600);
    let (from, to) = {
        let w = world();
        let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
        let clock = VirtualClock::new(w.start);
        run_with_crash_down(&w, &exec, &clock, None, down, one.clone());
        let records = Journal::read_only(&w.state).unwrap();
        let at = |f: &dyn Fn(&Event) -> bool| records.iter().position(|r| f(&r.event)).unwrap();
        (
            at(&|e| matches!(e, Event::RebootIssued { .. })),
            at(&|e| {
                matches!(
                    e,
                    Event::StepSucceeded {
                        step: Step::WaitUp,
                        ..
                    }
                )
            }),
        )
    };
    assert!(from < to, "{from} {to}");
    let mut w = world();
    let mut resent = 0;
    for n in from..=to {
        for written in [false, true] {
            w.state = w._dir.path().join(format!("late-{n}-{written}"));
            let label = format!("crash at append {n} (written: {written}), resumed 3 h later");
            let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
            let clock = VirtualClock::new(w.start);
            run_with_crash_down(&w, &exec, &clock, Some((n, written)), down, one.clone());
            let st = check(&w, &exec, &label);
            resent += st.hosts.values().filter(|h| h.reboot_resent).count();
        }
    }
    // The resends happened (a crash right after `reboot_issued` leaves one unsent).
    assert!(resent > 0);
}

/// Holds back two hosts from the start of the run, as a drift audit during the rollout would.
struct HoldTwo(Vec<String>);

impl Control for HoldTwo {
    fn take(&self) -> Option<crate::rollout::controller::Request> {
        None
    }
    fn held(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|h| (h.clone(), "review drift: cmdline".to_string()))
            .collect()
    }
}

#[test]
fn hosts_a_drift_audit_holds_during_the_rollout_are_left_out() {
    let w = world();
    // One host of the last stage and one of the canaries.
    let last = w.plan.stages.last().unwrap().batches[0].hosts[0].clone();
    let canary = w.plan.stages[0].batches[0].hosts[0].clone();
    let control = HoldTwo(vec![last.clone(), canary.clone()]);
    let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    let alerts = Alerts::default();
    let io = sim_io(&w, &exec, &clock, &alerts, &control);
    let mut journal = Journal::open(&w.state).unwrap();
    journal.set_durable(false);
    let c = Controller::start(journal, &w.fleet, io, opts(), &w.plan, "inv").unwrap();
    assert_eq!(c.run().unwrap(), Phase::Completed);
    let st = RolloutState::fold(&Journal::read_only(&w.state).unwrap());
    for h in [&last, &canary] {
        assert_eq!(exec.records()[h].reboots, 0, "{h}");
        assert_eq!(st.hosts[h].held.as_deref(), Some("review drift: cmdline"));
    }
    let held: Vec<&str> = st.held.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(held.len(), 2, "{held:?}");
    let others = st
        .hosts
        .iter()
        .filter(|(n, _)| **n != last && **n != canary);
    for (n, h) in others {
        assert!(h.done, "{n}");
    }
    let k = st.kernels(&|_| None);
    assert_eq!(k.iter().filter(|x| x.status == "held for drift").count(), 2);
}

#[test]
fn faults_are_quarantined_within_the_budget() {
    let w = world();
    let mut faults = Faults::default();
    faults.unreachable.insert("h03".into());
    faults.never_up.insert("h10".into());
    let exec = SimExecutor::new(&hosts(), faults, Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    let phase = run_with_crash(&w, &exec, &clock, None);
    let st = RolloutState::fold(&Journal::read_only(&w.state).unwrap());
    let failed: Vec<(&String, Step)> = st
        .hosts
        .iter()
        .filter_map(|(n, h)| h.failed.as_ref().map(|f| (n, f.0)))
        .collect();
    // Budget: one per stage and 1% (at least one) in all, so the second failure pauses.
    assert_eq!(phase, Phase::Paused, "{failed:?}");
    assert!(st.pause_reason.unwrap().contains("failure budget exceeded"));
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(exec.records()["h10"].reboots, 1);
    assert_eq!(exec.records()["h03"].reboots, 0);
}

#[test]
fn an_unexpected_reboot_after_the_update_pauses_at_the_gate() {
    let w = world();
    // A host of the canary stage that reboots by itself ten minutes after its new kernel
    // came up: during the bake, not during its update.
    let victim = w.plan.stages[0].batches[0].hosts[0].clone();
    let mut faults = Faults::default();
    faults
        .unexpected_reboot_after
        .insert(victim.clone(), Duration::from_secs(600));
    let exec = SimExecutor::new(&hosts(), faults, Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    let alerts = Alerts::default();
    let io = sim_io(&w, &exec, &clock, &alerts, &NoControl);
    let journal = Journal::open(&w.state).unwrap();
    let c = Controller::start(journal, &w.fleet, io, opts(), &w.plan, "inv").unwrap();
    assert_eq!(c.run().unwrap(), Phase::Paused);
    let st = c.state();
    assert_eq!(st.hosts[&victim].unexpected_reboots, 1);
    let (verdict, reasons) = &st.gates[&0];
    assert_eq!(*verdict, VerdictKind::Pause);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("1 unexpected reboot(s) in canary")),
        "{reasons:?}"
    );
    // The controller itself rebooted it once; the second reboot was the host's own.
    assert_eq!(exec.records()[&victim].reboots, 2);
}

#[test]
fn the_control_file_holds_what_the_drift_queue_holds() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("review-queue.json");
    let c = ControlFile::new(dir.path()).with_drift_queue(Some(q.clone()));
    assert!(c.held().is_empty(), "no queue yet");
    std::fs::write(
        &q,
        r#"{"audited_at":"2026-12-01T00:00:00Z","policy":"p","items":[],"held":[{"host":"db1","reason":"review drift: cmdline"}]}"#,
    )
    .unwrap();
    assert_eq!(
        c.held().get("db1").map(String::as_str),
        Some("review drift: cmdline")
    );
    std::fs::write(&q, "not json").unwrap();
    assert!(c.held().is_empty(), "an unreadable queue holds nothing");
    assert!(ControlFile::new(dir.path()).held().is_empty());
}

/// Starts a rollback of `scope` on the rollout in `w.state`, crashing at its append `crash`
/// (if any); a fresh controller then carries it on (`rollout resume`), or, when nothing of
/// it reached the disk, the operator asks again. Returns the final phase.
fn rollback_with_crash(
    w: &World,
    exec: &SimExecutor,
    clock: &VirtualClock,
    scope: &crate::rollout::rollback::Scope,
    crash: Option<(usize, bool)>,
) -> Phase {
    let alerts = Alerts::default();
    let io = sim_io(w, exec, clock, &alerts, &NoControl);
    let open = |crash| {
        let mut journal = Journal::open(&w.state).unwrap();
        journal.set_durable(false);
        journal.crash_at = crash;
        Controller::open(journal, &w.fleet, io, opts())
    };
    {
        let c = open(crash);
        match c.rollback(scope, "test").and_then(|_| c.run()) {
            Ok(phase) => return phase,
            Err(ControllerError::Journal(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    clock.sleep(Duration::from_secs(30));
    let c = open(None);
    if c.with_state(|s| s.phase == Phase::RolledBack) {
        // The crash came after its last record reached the disk.
        c.with_state(|s| s.phase.clone())
    } else if c.with_state(RolloutState::rolling_back) {
        c.run().unwrap()
    } else {
        c.rollback(scope, "test").unwrap();
        c.run().unwrap()
    }
}

/// Every updated host of `hosts` runs its old kernel again, rebooted exactly twice (once per
/// transition), and the hosts outside it still run the new kernel after one reboot.
fn check_rolled_back(w: &World, exec: &SimExecutor, back: &[String], label: &str) {
    let st = RolloutState::fold(&Journal::read_only(&w.state).unwrap());
    assert_eq!(
        st.phase,
        Phase::RolledBack,
        "{label}: {:?}",
        st.pause_reason
    );
    let records = exec.records();
    for (name, h) in &st.hosts {
        let r = &records[name];
        if back.contains(name) {
            assert!(h.rolled_back(), "{label}: {name}: {:?}", h.back);
            assert_eq!(r.kernel, "6.8.0-40-generic", "{label}: {name}");
            assert_eq!(r.reboots, 2, "{label}: {name}");
        } else {
            assert!(h.back.is_none(), "{label}: {name}");
            assert_eq!(r.kernel, TARGET, "{label}: {name}");
            assert_eq!(r.reboots, 1, "{label}: {name}");
        }
    }
}

#[test]
fn a_rollback_puts_every_updated_host_back_later_stages_first() {
    use crate::rollout::rollback::Scope;
    let w = world();
    let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    run_with_crash(&w, &exec, &clock, None);
    let before = Journal::read_only(&w.state).unwrap().len();
    let phase = rollback_with_crash(&w, &exec, &clock, &Scope::All, None);
    assert_eq!(phase, Phase::RolledBack);
    let all: Vec<String> = hosts().into_iter().map(|h| h.name).collect();
    check_rolled_back(&w, &exec, &all, "clean");
    // Later stages first: the first host back belongs to the last stage, the last to the
    // canaries.
    let records = Journal::read_only(&w.state).unwrap();
    let st = RolloutState::fold(&records);
    let done: Vec<usize> = records[before..]
        .iter()
        .filter_map(|r| match &r.event {
            Event::HostDone { host } => Some(st.hosts[host].stage),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 16);
    assert!(done.windows(2).all(|p| p[0] >= p[1]), "{done:?}");
    assert_eq!(done.last(), Some(&0));
    // A second rollback finds nothing left to do.
    let journal = Journal::open(&w.state).unwrap();
    let alerts = Alerts::default();
    let io = sim_io(&w, &exec, &clock, &alerts, &NoControl);
    let c = Controller::open(journal, &w.fleet, io, opts());
    let e = c.rollback(&Scope::All, "again").unwrap_err().to_string();
    assert!(e.starts_with("nothing to roll back in the rollout"), "{e}");
}

#[test]
fn a_crash_at_every_append_of_a_rollback_then_resume_repeats_no_reboot_and_skips_no_host() {
    use crate::rollout::rollback::Scope;
    // The first stage's hosts go back; the rest stay on the new kernel.
    let completed = {
        let w = world();
        let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
        let clock = VirtualClock::new(w.start);
        run_with_crash(&w, &exec, &clock, None);
        Journal::read_only(&w.state).unwrap().len()
    };
    let mut w = world();
    let scope = Scope::Stages(vec![w.plan.stages[0].info.name.clone()]);
    let canaries: Vec<String> = w.plan.stages[0]
        .batches
        .iter()
        .flat_map(|b| b.hosts.iter().cloned())
        .collect();
    let total = {
        let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
        let clock = VirtualClock::new(w.start);
        run_with_crash(&w, &exec, &clock, None);
        rollback_with_crash(&w, &exec, &clock, &scope, None);
        check_rolled_back(&w, &exec, &canaries, "clean");
        Journal::read_only(&w.state).unwrap().len() - completed
    };
    assert!(total > 4 * canaries.len(), "{total}");
    for n in 0..total {
        for written in [false, true] {
            w.state = w._dir.path().join(format!("state-{n}-{written}"));
            let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
            let clock = VirtualClock::new(w.start);
            run_with_crash(&w, &exec, &clock, None);
            rollback_with_crash(&w, &exec, &clock, &scope, Some((n, written)));
            let label = format!("crash at rollback append {n} (written: {written})");
            check_rolled_back(&w, &exec, &canaries, &label);
        }
    }
}

#[test]
fn a_boot_that_falls_back_is_quarantined_with_its_kernel_and_boot_id() {
    let w = world();
    let victim = w.plan.stages[0].batches[0].hosts[0].clone();
    let mut faults = Faults::default();
    faults.boot_falls_back.insert(victim.clone());
    let exec = SimExecutor::new(&hosts(), faults, Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    run_with_crash(&w, &exec, &clock, None);
    let st = RolloutState::fold(&Journal::read_only(&w.state).unwrap());
    let (step, why) = st.hosts[&victim].failed.clone().unwrap();
    assert_eq!(step, Step::Verify);
    assert!(
        why.starts_with("boot fell back to `6.8.0-40-generic`: runs `6.8.0-40-generic` (boot id `"),
        "{why}"
    );
    assert_eq!(exec.records()[&victim].kernel, "6.8.0-40-generic");
}

#[test]
fn a_kernel_panic_in_a_later_stage_fails_its_gate_and_every_updated_host_goes_back() {
    let w = world();
    // A host of the last stage but at most the third panics ten minutes after it booted the
    // new kernel, during its stage's bake.
    let k = w.plan.stages.len().min(3) - 1;
    let victim = w.plan.stages[k].batches[0].hosts[0].clone();
    let mut faults = Faults::default();
    faults
        .kernel_panic_after
        .insert(victim.clone(), Duration::from_secs(600));
    let exec = SimExecutor::new(&hosts(), faults, Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    let phase = run_with_crash(&w, &exec, &clock, None);
    assert_eq!(phase, Phase::RolledBack);
    let records = Journal::read_only(&w.state).unwrap();
    let st = RolloutState::fold(&records);
    let decided: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::OnFailDecided {
                stage,
                verdict,
                decision,
                ..
            } => Some((*stage, *verdict, *decision)),
            _ => None,
        })
        .collect();
    assert_eq!(
        decided,
        [(
            k,
            VerdictKind::Fail,
            crate::rollout::spec::OnFail::RollbackAll
        )]
    );
    let sim = exec.records();
    for (i, stage) in w.plan.stages.iter().enumerate() {
        for h in stage.batches.iter().flat_map(|b| &b.hosts) {
            let r = &sim[h];
            assert_eq!(r.kernel, "6.8.0-40-generic", "{h}");
            if i <= k {
                assert!(st.hosts[h].rolled_back(), "{h}");
                // The update, the way back, and the victim's panic.
                let panics = u32::from(*h == victim);
                assert_eq!(r.reboots, 2 + panics, "{h}");
            } else {
                assert_eq!(r.reboots, 0, "{h}: a later stage never started");
            }
        }
    }
}

/// The shipped policy with out-of-band recovery on: a power cycle through the host's BMC,
/// then ten minutes more.
const RECOVER_ON: [(&str, &str); 2] = [
    (
        "const RECOVER = [];",
        r#"const RECOVER = ["bmc", "--host", "{host}", "power", "cycle"];"#,
    ),
    ("const RECOVER_WAIT = 900;", "const RECOVER_WAIT = 600;"),
];

/// Each host's `recover_issued` records.
fn recoveries(records: &[Record]) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for r in records {
        if let Event::RecoverIssued { host, command, .. } = &r.event {
            out.entry(host.clone()).or_default().push(command.clone());
        }
    }
    out
}

#[test]
fn recover_runs_once_for_a_host_that_never_comes_back() {
    let w = world_with(&RECOVER_ON);
    let first = &w.plan.stages[0].batches[0].hosts;
    let (fixed, dead) = (first[0].clone(), first[1].clone());
    let mut faults = Faults::default();
    faults.never_up.extend([fixed.clone(), dead.clone()]);
    faults.recover_fixes.insert(fixed.clone());
    let exec = SimExecutor::new(&hosts(), faults, Timing::default(), w.start);
    let clock = VirtualClock::new(w.start);
    run_with_crash(&w, &exec, &clock, None);
    let records = Journal::read_only(&w.state).unwrap();
    let rec = recoveries(&records);
    assert_eq!(
        rec.keys().cloned().collect::<Vec<_>>(),
        {
            let mut v = vec![fixed.clone(), dead.clone()];
            v.sort();
            v
        },
        "only the hosts that did not come back are recovered"
    );
    for (h, cmds) in &rec {
        assert_eq!(
            cmds,
            &[vec!["bmc", "--host", h.as_str(), "power", "cycle"]],
            "{h}"
        );
    }
    let st = RolloutState::fold(&records);
    // The power cycle brought it up on its default entry: the old kernel, quarantined as a
    // boot that fell back.
    let (step, why) = st.hosts[&fixed].failed.clone().unwrap();
    assert_eq!(step, Step::Verify, "{why}");
    assert!(
        why.starts_with("boot fell back to `6.8.0-40-generic`"),
        "{why}"
    );
    assert_eq!(exec.records()[&fixed].kernel, "6.8.0-40-generic");
    assert_eq!(exec.records()[&fixed].power_cycles, 1);
    // Still missing after the second wait: quarantined at the wait with both waits told.
    let (step, why) = st.hosts[&dead].failed.clone().unwrap();
    assert_eq!(step, Step::WaitUp, "{why}");
    assert!(
        why.contains("nor within 600 s of out-of-band recovery at ")
            && why.contains("`bmc --host "),
        "{why}"
    );
    for h in [&fixed, &dead] {
        assert_eq!(exec.records()[h].reboots, 1, "{h}: one reboot issued");
    }
}

#[test]
fn a_crash_at_every_append_around_a_recovery_never_runs_it_twice() {
    let w0 = world_with(&RECOVER_ON);
    let dead = w0.plan.stages[0].batches[0].hosts[0].clone();
    let faults = || {
        let mut f = Faults::default();
        f.never_up.insert(dead.clone());
        f.recover_fixes.insert(dead.clone());
        f
    };
    // Where the recovery is journaled in a run without a crash.
    let (issued, checked) = {
        let exec = SimExecutor::new(&hosts(), faults(), Timing::default(), w0.start);
        let clock = VirtualClock::new(w0.start);
        run_with_crash(&w0, &exec, &clock, None);
        let records = Journal::read_only(&w0.state).unwrap();
        let at = |f: &dyn Fn(&Event) -> bool| records.iter().position(|r| f(&r.event)).unwrap();
        (
            at(&|e| matches!(e, Event::RecoverIssued { host, .. } if *host == dead)),
            at(&|e| matches!(e, Event::HostChecked { host, .. } if *host == dead)),
        )
    };
    assert!(issued < checked);
    let mut w = w0;
    for n in issued.saturating_sub(1)..=checked {
        for written in [false, true] {
            w.state = w._dir.path().join(format!("state-{n}-{written}"));
            let exec = SimExecutor::new(&hosts(), faults(), Timing::default(), w.start);
            let clock = VirtualClock::new(w.start);
            run_with_crash(&w, &exec, &clock, Some((n, written)));
            let records = Journal::read_only(&w.state).unwrap();
            let label = format!("crash at append {n} (written: {written})");
            let rec = recoveries(&records);
            let cycles = exec.records()[&dead].power_cycles;
            // Journaled before it runs: a crash right after the record means it never ran
            // (and is not run again); otherwise it ran exactly once.
            assert_eq!(rec.get(&dead).map(Vec::len), Some(1), "{label}");
            assert!(cycles <= 1, "{label}: {cycles} power cycles");
            let st = RolloutState::fold(&records);
            assert!(
                st.hosts[&dead].failed.is_some(),
                "{label}: quarantined either way"
            );
            assert_eq!(exec.records()[&dead].reboots, 1, "{label}");
        }
    }
}

/// Runs the rollout with a crash at append `crash` and leaves it there (no resume).
fn crash_forward(w: &World, exec: &SimExecutor, clock: &VirtualClock, crash: (usize, bool)) {
    let alerts = Alerts::default();
    let io = sim_io(w, exec, clock, &alerts, &NoControl);
    let mut journal = Journal::open(&w.state).unwrap();
    journal.set_durable(false);
    journal.crash_at = Some(crash);
    match Controller::start(journal, &w.fleet, io, opts(), &w.plan, "inv").map(|c| c.run()) {
        Ok(Ok(_)) => {}
        Ok(Err(ControllerError::Journal(_))) | Err(ControllerError::Journal(_)) => {}
        Ok(Err(e)) | Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Finding: a rollback started right after a crash in the middle of the first batch's
/// reboots (`rollout rollback` instead of `resume`) began the way back of hosts still
/// booting their update, whose first step then found them unreachable and quarantined them.
/// Now the update's reboot is seen through first (sent again through the one-shot wrapper if
/// it never arrived). A crash at every append from the first reboot to the first
/// verification, then a rollback: every host it takes goes back, none fails.
#[test]
fn finding_a_rollback_right_after_a_crash_mid_reboot_sent_steps_to_hosts_still_booting() {
    use crate::rollout::rollback::Scope;
    let (from, to) = {
        let w = world();
        let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
        let clock = VirtualClock::new(w.start);
        run_with_crash(&w, &exec, &clock, None);
        let records = Journal::read_only(&w.state).unwrap();
        let at = |f: &dyn Fn(&Event) -> bool| records.iter().position(|r| f(&r.event)).unwrap();
        (
            at(&|e| matches!(e, Event::RebootIssued { .. })),
            at(&|e| matches!(e, Event::HostChecked { .. })),
        )
    };
    assert!(from < to, "{from} {to}");
    let mut w = world();
    for n in from..=to {
        for written in [false, true] {
            w.state = w._dir.path().join(format!("state-{n}-{written}"));
            let label = format!("crash at append {n} (written: {written})");
            let exec = SimExecutor::new(&hosts(), Faults::default(), Timing::default(), w.start);
            let clock = VirtualClock::new(w.start);
            crash_forward(&w, &exec, &clock, (n, written));
            // Worker threads interleave their appends, so the crash may come before any reboot
            // went out: then there is nothing to roll back, and nothing was rebooted.
            let before = RolloutState::fold(&Journal::read_only(&w.state).unwrap());
            if !before.hosts.values().any(|h| h.reboots > 0) {
                assert!(exec.records().values().all(|r| r.reboots == 0), "{label}");
                continue;
            }
            let phase = rollback_with_crash(&w, &exec, &clock, &Scope::All, None);
            let st = RolloutState::fold(&Journal::read_only(&w.state).unwrap());
            assert_eq!(phase, Phase::RolledBack, "{label}: {:?}", st.pause_reason);
            let sim = exec.records();
            for (h, hs) in &st.hosts {
                if let Some(b) = &hs.back {
                    assert!(
                        b.done,
                        "{label}: {h} failed on its way back: {:?}",
                        b.failed
                    );
                    assert!(sim[h].reboots <= 2, "{label}: {h}");
                }
                assert_eq!(sim[h].kernel, "6.8.0-40-generic", "{label}: {h}");
            }
        }
    }
}
