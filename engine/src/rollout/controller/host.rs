//! One host's steps: pre-check, drain, install, set-boot, the one-shot reboot, wait-up,
//! verify, post-check, undrain; each journaled before it runs.

use super::*;

/// The last `n` bytes of a command's output, on one line, for a host's failure record.
pub(super) fn tail(text: &str, n: usize) -> String {
    let t = text.trim();
    let mut start = t.len().saturating_sub(n);
    while !t.is_char_boundary(start) {
        start += 1;
    }
    let s = t.get(start..).unwrap_or("").replace('\n', " | ");
    if start > 0 {
        format!("…{s}")
    } else {
        s
    }
}

/// A finished command against its `expect`: its output for the record, or why it failed.
pub(super) fn judged(c: &CommandSpec, out: &crate::exec::Output) -> StepResult {
    match c.judge(out) {
        Ok(summary) => Ok(tail(&summary, 200)),
        Err(why) => Err(format!(
            "`{}`: {why}; output: {}",
            c.label(),
            tail(&format!("{}\n{}", out.stdout, out.stderr), 400)
        )
        .into()),
    }
}

impl<'a> Controller<'a> {
    /// Takes one host through its remaining steps, stopping at a step boundary if halted.
    pub(super) fn drive_host(
        &self,
        stage: usize,
        name: &str,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        let Some(host) = self.fleet.host(name) else {
            return self.fail_host(
                stage,
                name,
                Step::PreCheck,
                "not in the inventory".into(),
                clock,
            );
        };
        let set = self.policy()?;
        let steps = match self.steps_for(&set, host) {
            Ok(s) => s,
            Err(m) => return self.policy_pause(Some(stage), m.0, clock),
        };
        drop(set);
        loop {
            let hs = self.with_state(|s| s.hosts.get(name).cloned().unwrap_or_default());
            if hs.settled() {
                return Ok(());
            }
            let Some(step) = hs.resume_step() else {
                return self.emit(
                    Event::HostDone {
                        host: name.to_string(),
                    },
                    clock,
                );
            };
            if self.halted(clock)? {
                return Ok(());
            }
            self.emit(
                Event::StepStarted {
                    host: name.to_string(),
                    step,
                },
                clock,
            )?;
            let result = match step {
                Step::PreCheck => self.run_commands(host, &steps.pre_check, clock),
                Step::Drain => self.run_commands(host, &steps.drain, clock),
                Step::Install => self.run_commands(host, &steps.install, clock),
                Step::SetBoot => self.run_commands(host, &steps.set_boot, clock),
                Step::Reboot => self.reboot(host, &steps, clock)?,
                Step::WaitUp => self.wait_up(host, &steps, &hs, clock),
                Step::Verify => self.verify(host, &steps, &hs, clock)?,
                Step::PostCheck => self.run_commands(host, &steps.post_check, clock),
                Step::Undrain => self.run_commands(host, &steps.undrain, clock),
            };
            match result {
                Ok(output) => self.emit(
                    Event::StepSucceeded {
                        host: name.to_string(),
                        step,
                        output,
                    },
                    clock,
                )?,
                Err(why) => return self.fail_host(stage, name, step, why.0, clock),
            }
        }
    }

    /// Marks a host failed (quarantined: never retried by the controller), then checks the
    /// failure budget.
    pub(super) fn fail_host(
        &self,
        stage: usize,
        name: &str,
        step: Step,
        output: String,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        self.emit(
            Event::HostFailed {
                host: name.to_string(),
                step,
                output,
            },
            clock,
        )?;
        self.check_budget(stage, clock).map(|_| ())
    }

    pub(super) fn run_one(&self, host: &Host, c: &CommandSpec, clock: &dyn Clock) -> StepResult {
        match self.io.exec.run_at(host, &c.command(), c.timeout(), clock) {
            Ok(out) => judged(c, &out),
            Err(e) => Err(format!("`{}`: {e}", c.label()).into()),
        }
    }

    pub(super) fn run_commands(
        &self,
        host: &Host,
        cmds: &[CommandSpec],
        clock: &dyn Clock,
    ) -> StepResult {
        let mut outs = Vec::new();
        for c in cmds {
            let o = self.run_one(host, c, clock)?;
            if !o.is_empty() {
                outs.push(o);
            }
        }
        Ok(outs.join(" | "))
    }

    pub(super) fn probe(
        &self,
        host: &Host,
        argv: &[String],
        timeout: u64,
        clock: &dyn Clock,
    ) -> Result<String, StepFailure> {
        let cmd = RemoteCommand::new(argv.iter().cloned());
        match self
            .io
            .exec
            .run_at(host, &cmd, Duration::from_secs(timeout), clock)
        {
            Ok(o) if o.success() && !o.stdout.trim().is_empty() => Ok(o.stdout.trim().to_string()),
            Ok(o) => Err(format!(
                "`{}` exited {}: {}",
                cmd.shell_line(),
                o.status,
                tail(&o.stderr, 200)
            )
            .into()),
            Err(e) => Err(e.to_string().into()),
        }
    }

    /// Records the boot id, then reboots, at most once per host per rollout.
    pub(super) fn reboot(
        &self,
        host: &Host,
        steps: &Steps,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        if !self.with_state(|s| s.may_reboot(&host.name)) {
            return Ok(Err(
                "a reboot was already issued in this rollout; refusing to issue a second".into(),
            ));
        }
        let before = match self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
            Ok(b) => b,
            Err(e) => {
                return Ok(Err(format!(
                    "cannot read the boot id before rebooting: {e}"
                )
                .into()))
            }
        };
        self.emit(
            Event::RebootIssued {
                host: host.name.clone(),
                boot_id: before.clone(),
            },
            clock,
        )?;
        crate::failpoint::hit("rollout.after_reboot_issued");
        Ok(self.send_reboot(host, steps, &before, clock))
    }

    /// Sends the reboot through the one-shot wrapper, its token fixed by the host and the
    /// boot id before the reboot: sent twice in one boot, it reboots once.
    pub(super) fn send_reboot(
        &self,
        host: &Host,
        steps: &Steps,
        before: &str,
        clock: &dyn Clock,
    ) -> StepResult {
        use sha2::{Digest, Sha256};
        let token: String = Sha256::digest(format!("{}\n{before}", host.name).as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let c = &steps.reboot;
        let cmd = crate::exec::reboot_once(&token, c.argv());
        match self.io.exec.run_at(host, &cmd, c.timeout(), clock) {
            Ok(out) => judged(c, &out),
            // The connection dropping under a reboot is what a reboot looks like.
            Err(ExecError::Unreachable { .. } | ExecError::Timeout { .. }) => {
                Ok("connection closed by the reboot".into())
            }
            Err(e) => Err(e.to_string().into()),
        }
    }

    /// Polls the boot id with backoff until it differs from the one before the reboot.
    pub(super) fn wait_up(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        clock: &dyn Clock,
    ) -> StepResult {
        let Some(before) = hs.boot_id_before.clone() else {
            return Err("no boot id was recorded before the reboot".into());
        };
        let w = &steps.wait_up;
        let start = clock.now();
        let deadline = start
            .checked_add(jiff::SignedDuration::from_secs(w.timeout as i64))
            .unwrap_or(start);
        let mut interval = Duration::from_secs(1);
        let max = Duration::from_secs(w.max_interval.max(1));
        // A crash between `RebootIssued` and the reboot's answer leaves it unknown whether the
        // reboot reached the host. If the host still runs the old boot, the reboot goes again
        // through the one-shot wrapper: it reboots only if the first one never arrived.
        let mut resent = String::new();
        if hs.done_step < Some(Step::Reboot) {
            if let Ok(id) = self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
                if id == before {
                    resent = match self.send_reboot(host, steps, &before, clock) {
                        Ok(o) => format!("; the reboot was sent again after a restart ({o})"),
                        Err(e) => format!("; sending the reboot again after a restart failed: {e}"),
                    };
                }
            }
        }
        clock.sleep(Duration::from_secs(w.first));
        loop {
            let last = match self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
                Ok(id) if id != before => {
                    let secs = clock.now().duration_since(start).as_secs_f64();
                    return Ok(format!("up after {secs:.1} s, boot id {id}{resent}"));
                }
                Ok(_) => format!("boot id unchanged{resent}"),
                Err(e) => e.0,
            };
            let now = clock.now();
            if now >= deadline {
                return Err(format!(
                    "did not come back within {} s after the reboot (last: {last})",
                    w.timeout
                )
                .into());
            }
            let left = deadline.duration_since(now).unsigned_abs();
            clock.sleep(interval.min(left));
            interval = (interval * 2).min(max);
        }
    }

    /// Reads kernel and boot id: the kernel must be the target and the boot id new.
    pub(super) fn verify(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let p = &steps.probe;
        let kernel = match self.probe(host, &p.kernel, p.timeout, clock) {
            Ok(k) => k,
            Err(e) => return Ok(Err(format!("cannot read the kernel: {e}").into())),
        };
        let boot_id = match self.probe(host, &p.boot_id, p.timeout, clock) {
            Ok(b) => b,
            Err(e) => return Ok(Err(format!("cannot read the boot id: {e}").into())),
        };
        self.emit(
            Event::HostChecked {
                host: host.name.clone(),
                kernel: kernel.clone(),
                boot_id: boot_id.clone(),
            },
            clock,
        )?;
        let target = self.with_state(|s| s.target_kernel.clone());
        Ok(if kernel != target {
            Err(format!("runs `{kernel}` after the reboot, not `{target}`").into())
        } else if hs.boot_id_before.as_deref() == Some(boot_id.as_str()) {
            Err(format!("boot id `{boot_id}` did not change: the host did not reboot").into())
        } else {
            Ok(format!("{kernel}, boot id {boot_id}"))
        })
    }
}
