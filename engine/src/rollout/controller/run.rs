//! The run loop: stages in order, batches in parallel under the worker limit, crash recovery
//! first, the failure budget, maintenance windows, and the policy's steps, probe, budget and
//! signals.

use super::*;
use crate::error::Invalid;

impl<'a> Controller<'a> {
    /// Runs until the rollout completes, pauses, aborts or finishes a rollback. Returns the
    /// phase it stopped in.
    pub fn run(&self) -> Result<Phase, ControllerError> {
        let phase = self.with_state(|s| s.phase.clone());
        if phase != Phase::Running {
            return Ok(phase);
        }
        self.halt.store(false, Ordering::SeqCst);
        self.recover_crash()?;
        loop {
            if self.halted(self.io.clock)? {
                break;
            }
            if self.with_state(RolloutState::rolling_back) {
                self.run_rollback()?;
                continue;
            }
            let (next, current) = self.with_state(|s| (s.next_stage(), s.stage));
            let Some(stage) = next else {
                self.complete()?;
                break;
            };
            if !self.with_state(|s| s.stage_may_start(stage)) {
                return Err(ControllerError::Invalid(format!(
                    "stage {stage} cannot start: an earlier gate has not passed"
                )));
            }
            if current != Some(stage) {
                self.emit(Event::StageStarted { stage }, self.io.clock)?;
            }
            self.before_window(stage)?;
            if self.halted(self.io.clock)? {
                continue;
            }
            if !self.run_stage(stage)? {
                continue; // halted: the loop head stops
            }
            if self.check_budget(stage, self.io.clock)? {
                continue;
            }
            self.bake(stage)?;
            if self.halted(self.io.clock)? {
                continue;
            }
            self.gate(stage)?;
        }
        Ok(self.with_state(|s| s.phase.clone()))
    }

    /// Once per controller: re-checks the hosts a crash interrupted and, after a crash,
    /// records the recovery.
    pub(super) fn recover_crash(&self) -> Result<(), ControllerError> {
        if self.recovered.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let crash = self.crashed.lock().ok().and_then(|mut c| c.take());
        let (in_flight, resent) = self.recover()?;
        let Some(c) = crash else {
            return Ok(());
        };
        let now = self.io.clock.now();
        let lost_secs = c
            .last_at
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| now.duration_since(t).as_secs().max(0) as u64)
            .unwrap_or(0);
        self.emit(
            Event::Recovered {
                in_flight,
                reboots_resent: resent,
                torn_bytes: c.torn_bytes,
                lost_secs,
            },
            self.io.clock,
        )
    }

    /// Runs `f` for each name on up to `workers` threads, each name on its own fork of the
    /// clock (so a virtual clock sees them side by side); the clock then joins the forks.
    pub(super) fn parallel<F>(
        &self,
        names: &[String],
        limit: usize,
        f: F,
    ) -> Result<(), ControllerError>
    where
        F: Fn(&str, &dyn Clock) -> Result<(), ControllerError> + Sync,
    {
        if names.is_empty() {
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let forks: Mutex<Vec<Box<dyn Clock>>> = Mutex::new(Vec::with_capacity(names.len()));
        let first_err: Mutex<Option<ControllerError>> = Mutex::new(None);
        let threads = self.opts.workers.max(1).min(limit.max(1)).min(names.len());
        let work = || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(name) = names.get(i) else { break };
            let clock = self.io.clock.fork();
            if let Err(e) = f(name, clock.as_ref()) {
                self.halt.store(true, Ordering::SeqCst);
                if let Ok(mut slot) = first_err.lock() {
                    slot.get_or_insert(e);
                }
            }
            if let Ok(mut v) = forks.lock() {
                v.push(clock);
            }
        };
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(work);
                }
            });
        }
        if let Ok(v) = forks.lock() {
            self.io.clock.join(&v);
        }
        match first_err.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Ends a rollout whose every stage passed: `completed`, or `completed_with_failures`
    /// (with its alert) while failed hosts remain that no operator acknowledged.
    fn complete(&self) -> Result<(), ControllerError> {
        let failed = self.with_state(|s| s.unacknowledged());
        let n = self.with_state(|s| s.planned_hosts());
        if failed.is_empty() {
            self.emit(Event::Completed, self.io.clock)?;
            let acked =
                self.with_state(|s| s.hosts.values().filter(|h| h.failed.is_some()).count());
            self.alert(
                Severity::Info,
                "completed",
                None,
                format!(
                    "rollout completed: {} host(s), {acked} failed and acknowledged",
                    n - acked.min(n)
                ),
                vec![],
            );
            return Ok(());
        }
        let reasons = self.with_state(|s| {
            failed
                .iter()
                .filter_map(|h| s.failure_of(h).map(|f| f.describe()))
                .collect::<Vec<_>>()
        });
        self.emit(
            Event::CompletedWithFailures {
                hosts: failed.clone(),
            },
            self.io.clock,
        )?;
        self.alert(
            Severity::Warning,
            "rollout_completed_with_failures",
            None,
            format!(
                "every stage passed, but {} host(s) failed and no operator acknowledged them: {}; acknowledge with `rollout resume --acknowledge HOST`",
                failed.len(),
                failed.join(", ")
            ),
            reasons,
        );
        Ok(())
    }

    /// Re-checks hosts a crash interrupted mid-step: their kernel and boot id go on record
    /// before anything else is done to them. A host whose reboot was issued but not answered,
    /// and which still runs the boot it had then, gets the same one-shot reboot again (it
    /// reboots only if the first never arrived), unless its wait's deadline has passed.
    /// Returns the hosts in flight with their steps, and the hosts whose reboot went again.
    pub(super) fn recover(&self) -> Result<(Vec<InFlight>, Vec<String>), ControllerError> {
        let in_flight: Vec<InFlight> = self.with_state(|s| {
            s.interrupted()
                .into_iter()
                .filter_map(|h| {
                    let hs = s.hosts.get(h)?;
                    Some(InFlight {
                        host: h.to_string(),
                        step: hs.back.as_deref().unwrap_or(hs).in_step?,
                    })
                })
                .collect()
        });
        if in_flight.is_empty() {
            return Ok((in_flight, Vec::new()));
        }
        self.io.observer.note(&format!(
            "re-checking {} host(s) interrupted mid-step",
            in_flight.len()
        ));
        let hosts: Vec<String> = in_flight.iter().map(|f| f.host.clone()).collect();
        let resent = Mutex::new(Vec::new());
        let set = self.policy()?;
        self.parallel(&hosts, usize::MAX, |name, clock| {
            let Some(host) = self.fleet.host(name) else {
                return Ok(());
            };
            // Mid-step, so in flight: its shared slots first (its steps free them).
            self.take_slots(name)?;
            let whole = self.with_state(|s| s.hosts.get(name).cloned().unwrap_or_default());
            let steps = match self.steps_now(&set, host, &whole) {
                Ok(s) => s,
                Err(m) => return self.policy_pause(None, m.0, clock),
            };
            let k = self.probe(host, &steps.probe.kernel, steps.probe.timeout, clock);
            let b = self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock);
            match (k, b) {
                (Ok(kernel), Ok(boot_id)) => {
                    self.emit(
                        Event::HostChecked {
                            host: name.to_string(),
                            kernel,
                            boot_id: boot_id.clone(),
                        },
                        clock,
                    )?;
                    let hs = self.with_state(|s| {
                        s.hosts
                            .get(name)
                            .map(|h| h.current(&s.target_kernel))
                            .unwrap_or_default()
                    });
                    let unanswered = hs.reboots > 0 && hs.done_step < Some(Step::Reboot);
                    let before = hs.boot_id_before.clone().unwrap_or_default();
                    // Past the wait's deadline too: a host up on the boot it had when the
                    // reboot was recorded never rebooted, and the one-shot wrapper makes a
                    // second send of a reboot that did arrive a no-op. The `recovered` record
                    // starts the resent reboot's wait afresh.
                    if unanswered && boot_id == before {
                        let o = self.send_reboot(host, &steps, &before, clock);
                        self.io.observer.note(&format!(
                            "host `{name}`: the reboot issued before the crash was sent again through the one-shot wrapper ({})",
                            match o { Ok(o) => o, Err(e) => e.0 }
                        ));
                        if let Ok(mut r) = resent.lock() {
                            r.push(name.to_string());
                        }
                    }
                    Ok(())
                }
                (Err(e), _) | (_, Err(e)) => {
                    self.io
                        .observer
                        .note(&format!("host `{name}` could not be re-checked: {e}"));
                    Ok(())
                }
            }
        })?;
        let mut resent = resent.into_inner().unwrap_or_default();
        resent.sort();
        Ok((in_flight, resent))
    }

    pub(super) fn steps_for(&self, set: &PolicySet, host: &Host) -> Result<Steps, Invalid> {
        if !set.defines("rollout", "steps", 1) {
            return Err(
                "`rollout.rhai` does not define `steps(host)`, so fleetward cannot know how to install a kernel on these hosts".into(),
            );
        }
        let v = set
            .eval_json("rollout", "steps", vec![host_to_dynamic(host)])
            .map_err(|e| format!("`steps(host)` for `{}`: {}", host.name, policy_message(&e)))?
            .value;
        let steps: Steps = serde_json::from_value(v).map_err(|e| format!("`steps(host)`: {e}"))?;
        if let Ok(mut p) = self.probes.lock() {
            p.insert(host.name.clone(), steps.probe.clone());
        }
        Ok(steps)
    }

    /// The host's probe commands, from the cache or a fresh `steps(host)`.
    pub(super) fn probe_for(&self, set: &PolicySet, host: &Host) -> Option<Probe> {
        let cached = self
            .probes
            .lock()
            .ok()
            .and_then(|p| p.get(&host.name).cloned());
        cached.or_else(|| self.steps_for(set, host).ok().map(|s| s.probe))
    }

    pub(super) fn budget(&self, set: &PolicySet) -> Result<FailureBudget, Invalid> {
        if !set.defines("rollout", "failure_budget", 0) {
            return Ok(FailureBudget::default());
        }
        let v = set
            .eval_json("rollout", "failure_budget", vec![])
            .map_err(|e| policy_message(&e))?
            .value;
        serde_json::from_value(v).map_err(|e| Invalid(format!("`failure_budget()`: {e}")))
    }

    pub(super) fn signals(&self, set: &PolicySet) -> Result<Signals, Invalid> {
        if !set.defines("rollout", "signals", 0) {
            return Err("`rollout.rhai` does not define `signals()`, so fleetward cannot collect metrics to gate on".into());
        }
        let v = set
            .eval_json("rollout", "signals", vec![])
            .map_err(|e| policy_message(&e))?
            .value;
        serde_json::from_value(v).map_err(|e| Invalid(format!("`signals()`: {e}")))
    }

    /// Pauses when failures in `stage`, or in all, exceed the budget. Returns whether it did.
    pub(super) fn check_budget(
        &self,
        stage: usize,
        clock: &dyn Clock,
    ) -> Result<bool, ControllerError> {
        let set = self.policy()?;
        let budget = match self.budget(&set) {
            Ok(b) => b,
            Err(m) => {
                self.policy_pause(Some(stage), m.0, clock)?;
                return Ok(true);
            }
        };
        let (stage_failed, stage_size, all_failed, all, names) = self.with_state(|s| {
            let names: Vec<String> = s
                .hosts
                .iter()
                .filter(|(_, h)| h.failed.is_some() && !h.acknowledged)
                .map(|(n, h)| {
                    let (step, out) = h.failed.clone().unwrap_or((Step::PreCheck, String::new()));
                    format!("{n}: {} failed: {out}", step.as_str())
                })
                .collect();
            (
                s.failures(Some(stage)),
                s.stages.get(stage).map(|p| p.hosts.len()).unwrap_or(0),
                s.failures(None),
                s.planned_hosts(),
                names,
            )
        });
        let per = FailureBudget::allowed(budget.per_stage, stage_size);
        let total = FailureBudget::allowed(budget.total, all);
        let why = if stage_failed > per {
            Some(format!(
                "{stage_failed} host(s) failed in this stage; the budget allows {per}"
            ))
        } else if all_failed > total {
            Some(format!(
                "{all_failed} host(s) failed in the rollout; the budget allows {total}"
            ))
        } else {
            None
        };
        match why {
            Some(w) => {
                self.pause(
                    "budget_exceeded",
                    Severity::Critical,
                    Some(stage),
                    format!("failure budget exceeded: {w}"),
                    names,
                    clock,
                )?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Updates the stage's hosts batch by batch. Returns whether every host settled.
    pub(super) fn run_stage(&self, stage: usize) -> Result<bool, ControllerError> {
        let (batches, secs) = self.with_state(|s| {
            s.stages
                .get(stage)
                .map(|p| (p.batches.clone(), p.batch_secs.clone()))
                .unwrap_or_default()
        });
        for (i, batch) in batches.iter().enumerate() {
            if self.halted(self.io.clock)? {
                return Ok(false);
            }
            let held = self.io.control.held();
            if !held.is_empty() {
                let newly: Vec<(String, String)> = self.with_state(|s| {
                    batch
                        .iter()
                        .filter(|h| s.hosts.get(*h).is_none_or(HostState::untouched))
                        .filter_map(|h| held.get(h).map(|r| (h.clone(), r.clone())))
                        .collect()
                });
                for (host, reason) in newly {
                    self.emit(Event::HostHeld { host, reason }, self.io.clock)?;
                }
            }
            let pending: Vec<String> = self.with_state(|s| {
                batch
                    .iter()
                    .filter(|h| !s.hosts.get(*h).is_some_and(HostState::settled))
                    .cloned()
                    .collect()
            });
            if pending.is_empty() {
                continue;
            }
            if self.opts.windows {
                self.wait_for_window(secs.get(i).copied().unwrap_or(0))?;
            }
            self.parallel(&pending, batch.len(), |name, clock| {
                self.drive_holding(stage, name, clock)
            })?;
        }
        Ok(self.with_state(|s| {
            s.stages.get(stage).is_some_and(|p| {
                p.hosts
                    .iter()
                    .all(|h| s.hosts.get(h).is_some_and(HostState::settled))
            })
        }))
    }

    /// Drives `name` through its steps in `stage` holding a slot of every in-flight limit it
    /// shares with other controllers, then frees them and its connection.
    pub(super) fn drive_holding(
        &self,
        stage: usize,
        name: &str,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        self.take_slots(name)?;
        let r = self.drive_host(stage, name, clock);
        self.io.limits.free(name);
        if let Some(h) = self.fleet.host(name) {
            self.io.exec.release(h);
        }
        r
    }

    /// Waits for `name`'s slot of every in-flight limit shared with other controllers,
    /// noting once what it waits for.
    fn take_slots(&self, name: &str) -> Result<(), ControllerError> {
        let waiting = |m: &str| self.io.observer.note(&format!("host `{name}` {m}"));
        self.io.limits.take(name, &waiting)
    }

    /// Sleeps until a batch lasting `secs` fits in a maintenance window.
    pub(super) fn wait_for_window(&self, secs: u64) -> Result<(), ControllerError> {
        let set = self.policy()?;
        let windows = PolicyRules::new(&set)
            .windows()
            .map_err(|e| ControllerError::Invalid(e.to_string()))?;
        let now = self.io.clock.now();
        let d = jiff::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
        match window::next_fit(&windows, now, d) {
            Some(t) if t > now => {
                self.io
                    .observer
                    .note(&format!("waiting for the maintenance window at {t}"));
                let wait = t.duration_since(now).unsigned_abs();
                self.io.clock.sleep(wait);
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(ControllerError::Invalid(format!(
                "no maintenance window fits a batch of {secs} s"
            ))),
        }
    }
}
