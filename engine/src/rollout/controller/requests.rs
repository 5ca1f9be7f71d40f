//! Operator requests and pauses: pause, abort, resume (acknowledging failures, accepting a
//! gate), and the halt check every loop makes.

use super::*;

impl<'a> Controller<'a> {
    /// Pauses (if running) and alerts.
    pub(super) fn pause(
        &self,
        kind: &str,
        severity: Severity,
        stage: Option<usize>,
        summary: String,
        reasons: Vec<String>,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        let hash = self.hash();
        {
            let mut sh = self.lock();
            if sh.state.phase != Phase::Running {
                return Ok(());
            }
            self.append_locked(
                &mut sh,
                Event::Paused {
                    reason: summary.clone(),
                },
                &hash,
                clock,
            )?;
        }
        self.alert(severity, kind, stage, summary, reasons);
        Ok(())
    }

    /// Pauses because the live policy could not decide (the message names `file:line:col`).
    pub(super) fn policy_pause(
        &self,
        stage: Option<usize>,
        message: String,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        self.pause(
            "policy_error",
            Severity::Critical,
            stage,
            message,
            vec![],
            clock,
        )
    }

    /// Applies an operator request.
    pub(super) fn apply_request(
        &self,
        req: Request,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        match req {
            Request::Pause { reason } => self.pause(
                "manual_pause",
                Severity::Info,
                None,
                format!("paused by an operator: {reason}"),
                vec![],
                clock,
            ),
            Request::Abort { reason } => self.abort(&reason, clock),
        }
    }

    /// Stops the rollout for good; hosts stay as they are.
    pub fn abort(&self, reason: &str, clock: &dyn Clock) -> Result<(), ControllerError> {
        let done = self.with_state(|s| s.phase.finished());
        if done {
            return Ok(());
        }
        self.emit(
            Event::Aborted {
                reason: reason.to_string(),
            },
            clock,
        )?;
        self.alert(
            Severity::Warning,
            "aborted",
            None,
            format!("rollout aborted: {reason}"),
            vec![],
        );
        Ok(())
    }

    /// Pauses a rollout that no controller is running (the caller holds the lock).
    pub fn pause_now(&self, reason: &str) -> Result<(), ControllerError> {
        self.apply_request(
            Request::Pause {
                reason: reason.to_string(),
            },
            self.io.clock,
        )
    }

    /// Marks a paused rollout running again. Acknowledged hosts (all that failed so far, or
    /// the ones named) stop counting against the failure budget. With `accept_gate`, the stage
    /// whose gate paused is recorded as passed by the operator. A rollout that completed with
    /// failures resumes only to take acknowledgements: it then completes once none is left.
    pub fn resume(&self, ack: &Acknowledge, accept_gate: bool) -> Result<(), ControllerError> {
        let (phase, failed, paused_gate) = self.with_state(|s| {
            let gate = s.next_stage().and_then(|st| {
                s.gates
                    .get(&st)
                    .filter(|(v, _)| *v != VerdictKind::Pass)
                    .map(|(_, r)| (st, r.clone()))
            });
            (s.phase.clone(), s.unacknowledged(), gate)
        });
        let acknowledged = match ack {
            Acknowledge::None => Vec::new(),
            Acknowledge::All => failed.clone(),
            Acknowledge::Hosts(names) => {
                let all = self.with_state(|s| s.failed_hosts());
                for n in names {
                    if !all.iter().any(|f| &f.host == n) {
                        return Err(ControllerError::Invalid(format!(
                            "cannot acknowledge `{n}`: it has not failed in this rollout (failed: {})",
                            if all.is_empty() { "none".to_string() } else { all.iter().map(|f| f.host.as_str()).collect::<Vec<_>>().join(", ") }
                        )));
                    }
                }
                names.clone()
            }
        };
        match phase {
            Phase::Paused => {}
            Phase::Running => return Ok(()),
            Phase::CompletedWithFailures if !acknowledged.is_empty() => {}
            Phase::CompletedWithFailures => {
                return Err(ControllerError::Invalid(format!(
                    "the rollout completed with {} failed host(s) no operator acknowledged ({}); acknowledge them with `--acknowledge HOST` or `--acknowledge-failures`",
                    failed.len(),
                    failed.join(", ")
                )))
            }
            other => {
                return Err(ControllerError::Invalid(format!(
                    "the rollout is {}; only a paused rollout can be resumed",
                    other.as_str()
                )))
            }
        }
        if accept_gate {
            if let Some((stage, reasons)) = paused_gate {
                let mut r = vec!["accepted by an operator at resume".to_string()];
                r.extend(reasons.into_iter().map(|x| format!("the gate said: {x}")));
                let mut accepted = SharedVerdict {
                    verdict: Verdict {
                        verdict: VerdictKind::Pass,
                        reasons: r,
                        levels: Default::default(),
                    },
                    groups: vec![],
                    by: String::new(),
                };
                // With other shards, the acceptance is the stage's next verdict for them all,
                // unless one was written first.
                if let Some(g) = self.io.gates {
                    let attempt =
                        self.with_state(|s| s.gate_runs.get(&stage).copied().unwrap_or(0));
                    accepted.by = g.shard();
                    accepted = g.decide(GateId { stage, attempt }, &accepted)?;
                }
                self.emit(
                    Event::GateEvaluated {
                        stage,
                        verdict: accepted.verdict.verdict,
                        reasons: accepted.verdict.reasons,
                        groups: accepted.groups,
                    },
                    self.io.clock,
                )?;
            }
        }
        self.halt.store(false, Ordering::SeqCst);
        self.emit(Event::Resumed { acknowledged }, self.io.clock)
    }

    /// Whether hosts must stop at their next step boundary. Takes pending operator requests.
    pub(super) fn halted(&self, clock: &dyn Clock) -> Result<bool, ControllerError> {
        if let Err(e) = self.fenced() {
            self.halt.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        if let Some(req) = self.io.control.take() {
            self.apply_request(req, clock)?;
        }
        Ok(self.halt.load(Ordering::SeqCst))
    }

    /// Waits while the fence is closed but may reopen (etcd unreachable, a renewal overdue),
    /// and errs once the lease is gone. Asked before each step and each host command: a
    /// controller cut off from etcd sends nothing until etcd confirms its lease again.
    pub(super) fn fenced(&self) -> Result<(), crate::coord::FenceError> {
        crate::coord::wait_open(self.io.fence)
    }
}
