//! The rollback phase: the hosts a rollback names go back to the kernel each ran before,
//! batch by batch (later stages first), through the same host steps as the update, with the
//! steps of `rollback_steps(host, previous)`: one more transition per host, journaled like the
//! first, with its own single reboot.

use super::*;
use crate::error::Invalid;
use crate::rollout::rollback::{self, Scope};

const NO_ROLLBACK_STEPS: &str = "`rollout.rhai` does not define `rollback_steps(host, previous)`, so fleetward cannot know how to put a host back on its previous kernel";

impl<'a> Controller<'a> {
    /// Starts a rollback of `scope` (see [`rollback::plan`]): journals which hosts go back in
    /// which batches and which are left alone, and alerts. `run` then carries it out. Hosts a
    /// crash interrupted are re-checked first. Returns how many hosts go back.
    pub fn rollback(&self, scope: &Scope, reason: &str) -> Result<usize, ControllerError> {
        let set = self.policy()?;
        if !set.defines("rollout", "rollback_steps", 2) {
            return Err(ControllerError::Invalid(NO_ROLLBACK_STEPS.into()));
        }
        let plan = || {
            self.with_state(|s| rollback::plan(s, scope))
                .map_err(|e| ControllerError::Invalid(e.0))
        };
        // A bad request records nothing; a good one re-checks what a crash interrupted first.
        plan()?;
        self.recover_crash()?;
        let p = plan()?;
        let n: usize = p.batches.iter().map(|b| b.hosts.len()).sum();
        let reasons = rollback::left_alone(&p.left, p.untouched);
        self.emit(
            Event::RollbackStarted {
                reason: reason.to_string(),
                batches: p.batches,
                left: p.left,
                untouched: p.untouched,
            },
            self.io.clock,
        )?;
        self.halt.store(false, Ordering::SeqCst);
        self.alert(
            Severity::Warning,
            "rollback_started",
            None,
            format!("rolling back {n} host(s) to the kernel each ran before: {reason}"),
            reasons,
        );
        Ok(n)
    }

    /// Carries the rollback on until every host of it settled (then `rolled_back`) or the
    /// controller is halted. No maintenance window is waited for: a kernel judged bad is
    /// worse than a reboot out of hours.
    pub(super) fn run_rollback(&self) -> Result<(), ControllerError> {
        let batches = self.with_state(|s| {
            s.rollback
                .as_ref()
                .map(|r| r.batches.clone())
                .unwrap_or_default()
        });
        let back_settled = |s: &RolloutState, h: &str| {
            s.hosts
                .get(h)
                .and_then(|x| x.back.as_deref())
                .is_some_and(HostState::settled)
        };
        for b in &batches {
            if self.halted(self.io.clock)? {
                return Ok(());
            }
            let pending: Vec<String> = self.with_state(|s| {
                b.hosts
                    .iter()
                    .filter(|h| !back_settled(s, h))
                    .cloned()
                    .collect()
            });
            self.parallel(&pending, b.hosts.len(), |name, clock| {
                self.drive_holding(b.stage, name, clock)
            })?;
            if self.check_rollback_budget()? {
                return Ok(());
            }
        }
        if self.halted(self.io.clock)? {
            return Ok(());
        }
        let (all, failed, reasons) = self.with_state(|s| {
            let hosts: Vec<String> = s.rollback.iter().flat_map(|r| r.hosts().cloned()).collect();
            let failed: Vec<String> = hosts
                .iter()
                .filter(|h| {
                    s.hosts
                        .get(*h)
                        .and_then(|x| x.back.as_deref())
                        .is_some_and(|b| b.failed.is_some())
                })
                .cloned()
                .collect();
            let reasons = failed
                .iter()
                .filter_map(|h| {
                    let b = s.hosts.get(h)?.back.as_deref()?;
                    let (step, out) = b.failed.as_ref()?;
                    Some(format!(
                        "{h}: failed at {} on its way back: {out}",
                        step.key()
                    ))
                })
                .collect::<Vec<_>>();
            let unsettled = hosts.iter().any(|h| !back_settled(s, h));
            ((!unsettled).then_some(hosts.len()), failed, reasons)
        });
        let Some(all) = all else {
            return Ok(());
        };
        self.emit(
            Event::RolledBack {
                failed: failed.clone(),
            },
            self.io.clock,
        )?;
        if failed.is_empty() {
            self.alert(
                Severity::Info,
                "rolled_back",
                None,
                format!("rollback finished: {all} host(s) back on the kernel each ran before"),
                vec![],
            );
        } else {
            self.alert(
                Severity::Critical,
                "rolled_back_with_failures",
                None,
                format!(
                    "rollback finished: {} of {all} host(s) back on the kernel each ran before; {} failed on the way and are quarantined: {}",
                    all - failed.len(),
                    failed.len(),
                    failed.join(", ")
                ),
                reasons,
            );
        }
        Ok(())
    }

    /// Pauses the rollback when more of its hosts failed on the way back (unacknowledged)
    /// than `failure_budget().rollback` allows. Returns whether it did.
    fn check_rollback_budget(&self) -> Result<bool, ControllerError> {
        let clock = self.io.clock;
        let set = self.policy()?;
        let budget = match self.budget(&set) {
            Ok(b) => b,
            Err(m) => {
                self.policy_pause(None, m.0, clock)?;
                return Ok(true);
            }
        };
        let (failed, n, names) = self.with_state(|s| {
            let names: Vec<String> = s
                .rollback
                .iter()
                .flat_map(|r| r.hosts())
                .filter_map(|h| s.failure_of(h).filter(|f| !f.acknowledged))
                .map(|f| f.describe())
                .collect();
            (
                s.rollback_failures(),
                s.rollback.as_ref().map_or(0, |r| r.hosts().count()),
                names,
            )
        });
        let allowed = FailureBudget::allowed(budget.rollback, n);
        if failed <= allowed {
            return Ok(false);
        }
        self.pause(
            "rollback_budget_exceeded",
            Severity::Critical,
            None,
            format!(
                "rollback paused: {failed} host(s) failed on the way back; the budget allows {allowed} (`rollout resume --acknowledge-failures` carries the rollback on)"
            ),
            names,
            clock,
        )?;
        Ok(true)
    }

    /// The steps of a host's way back: `rollback_steps(host, previous)`, `previous` holding
    /// `kernel` and `boot_entry` as journaled before its update (`""` when none was read) and
    /// `from`, the kernel it leaves. Benchmark checks are dropped: nothing compares them.
    pub(super) fn rollback_steps_for(
        &self,
        set: &PolicySet,
        host: &Host,
        hs: &HostState,
    ) -> Result<Steps, Invalid> {
        if !set.defines("rollout", "rollback_steps", 2) {
            return Err(NO_ROLLBACK_STEPS.into());
        }
        let Some(kernel) = hs.previous_kernel.clone() else {
            return Err(format!("no previous kernel was recorded for `{}`", host.name).into());
        };
        let mut previous = rhai::Map::new();
        previous.insert("kernel".into(), kernel.into());
        previous.insert(
            "boot_entry".into(),
            hs.previous_boot_entry.clone().unwrap_or_default().into(),
        );
        let from = self.with_state(|s| s.target_kernel.clone());
        previous.insert("from".into(), from.into());
        let v = set
            .eval_json(
                "rollout",
                "rollback_steps",
                vec![host_to_dynamic(host), rhai::Dynamic::from_map(previous)],
            )
            .map_err(|e| {
                format!(
                    "`rollback_steps(host, previous)` for `{}`: {}",
                    host.name,
                    policy_message(&e)
                )
            })?
            .value;
        let mut steps: Steps = serde_json::from_value(v)
            .map_err(|e| format!("`rollback_steps(host, previous)`: {e}"))?;
        steps.post_check.retain(|c| !c.is_benchmark());
        if let Ok(mut p) = self.probes.lock() {
            p.insert(host.name.clone(), steps.probe.clone());
        }
        Ok(steps)
    }

    /// The steps of the transition a host is in: its way back once a rollback named it, else
    /// its update.
    pub(super) fn steps_now(
        &self,
        set: &PolicySet,
        host: &Host,
        hs: &HostState,
    ) -> Result<Steps, Invalid> {
        if hs.back.is_some() {
            self.rollback_steps_for(set, host, hs)
        } else {
            self.steps_for(set, host)
        }
    }
}
