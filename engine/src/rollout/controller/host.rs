//! One host's steps: pre-check, drain, install, set-boot, the one-shot reboot, wait-up,
//! verify, post-check, commit-boot, undrain; each journaled before it runs. The same steps take
//! a host back to its previous kernel in a rollback (its second transition).

use super::*;

/// The `saved_entry` of `grub-editenv list`'s output (`KEY=VALUE` lines); `None` when the
/// boot loader keeps no default (the first entry boots).
pub(super) fn saved_entry(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("saved_entry="))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

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

/// When the wait for a rebooted host ends: the journal time of its `reboot_issued` plus the
/// policy's timeout (now plus the timeout only if that time is unreadable).
fn wait_deadline(hs: &HostState, steps: &Steps, clock: &dyn Clock) -> jiff::Timestamp {
    let timeout = jiff::SignedDuration::from_secs(steps.wait_up.timeout as i64);
    let from = hs
        .reboot_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(|| clock.now());
    from.checked_add(timeout).unwrap_or(from)
}

/// The wait for a rebooted host: when its reboot was issued and when the wait ends
/// ([`wait_deadline`]).
fn wait_window(
    hs: &HostState,
    steps: &Steps,
    clock: &dyn Clock,
) -> (jiff::Timestamp, jiff::Timestamp) {
    let deadline = wait_deadline(hs, steps, clock);
    let issued = deadline
        .checked_sub(jiff::SignedDuration::from_secs(
            steps.wait_up.timeout as i64,
        ))
        .unwrap_or(deadline);
    (issued, deadline)
}

/// The wait for a reboot sent now: from now to now plus the policy's timeout.
fn fresh_window(steps: &Steps, clock: &dyn Clock) -> (jiff::Timestamp, jiff::Timestamp) {
    let now = clock.now();
    let timeout = jiff::SignedDuration::from_secs(steps.wait_up.timeout as i64);
    (now, now.checked_add(timeout).unwrap_or(now))
}

/// What [`Controller::resend_if_unsent`] did: a note for the host's record, and whether it
/// sent the reboot just now.
struct Resent {
    note: String,
    sent_now: bool,
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
    /// Takes one host through the remaining steps of its transition (its update, or its way
    /// back once a rollback named it), stopping at a step boundary if halted.
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
        let whole = self.with_state(|s| s.hosts.get(name).cloned().unwrap_or_default());
        let back = whole.back.is_some();
        let steps = match self.steps_now(&set, host, &whole) {
            Ok(s) => s,
            Err(m) => return self.policy_pause(Some(stage), m.0, clock),
        };
        // A rollback that starts while the host's update reboot is still under way (a crash,
        // then `rollout rollback` instead of `resume`): that boot is waited for first, up to
        // its journaled deadline, as a resume would have; nothing is sent to a host mid-boot.
        let update_boot = back
            && whole.reboots > 0
            && whole.done_step < Some(Step::WaitUp)
            && whole.failed.is_none()
            && whole.back.as_ref().is_some_and(|b| b.untouched());
        let update_steps = if update_boot {
            match self.steps_for(&set, host) {
                Ok(s) => Some(s),
                Err(m) => return self.policy_pause(Some(stage), m.0, clock),
            }
        } else {
            None
        };
        drop(set);
        // Where this transition must leave the host.
        let goal = if back {
            whole.previous_kernel.clone().unwrap_or_default()
        } else {
            self.with_state(|s| s.target_kernel.clone())
        };
        if let Some(fwd) = &update_steps {
            self.wait_for_update_boot(host, fwd, &whole, clock);
        }
        let hs = whole;
        if !back && hs.untouched() && hs.previous_kernel.is_none() {
            if self.halted(clock)? {
                return Ok(());
            }
            if let Err(why) = self.record_previous(host, &steps, clock)? {
                return self.fail_host(stage, name, Step::PreCheck, why.0, clock);
            }
        }
        loop {
            let hs = self.with_state(|s| {
                s.hosts
                    .get(name)
                    .map(|h| h.current(&s.target_kernel))
                    .unwrap_or_default()
            });
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
                Step::Install if back => self.run_commands(host, &steps.install, clock),
                Step::Install => match self.benchmark_before(host, &steps, &hs, clock)? {
                    Ok(b) => self.run_commands(host, &steps.install, clock).map(|o| {
                        [b, o]
                            .into_iter()
                            .filter(|x| !x.is_empty())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    }),
                    Err(e) => Err(e),
                },
                Step::SetBoot => self.run_commands(host, &steps.set_boot, clock),
                Step::Reboot => self.reboot(host, &steps, clock)?,
                Step::WaitUp => self.wait_up(host, &steps, &hs, clock)?,
                Step::Verify => self.verify(host, &steps, &hs, &goal, clock)?,
                Step::PostCheck => self.post_check(host, &steps, clock)?,
                Step::CommitBoot => self.run_commands(host, &steps.commit_boot, clock),
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
                Err(why) if back => {
                    return self.emit(
                        Event::HostFailed {
                            host: name.to_string(),
                            step,
                            output: format!(
                                "on its way back to `{goal}`: {} [quarantined: left as it is]",
                                why.0
                            ),
                        },
                        clock,
                    )
                }
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
                output: format!(
                    "{output} [quarantined: not retried; acknowledge with `rollout resume --acknowledge {name}`]"
                ),
            },
            clock,
        )?;
        self.check_budget(stage, clock).map(|_| ())
    }

    pub(super) fn run_one(&self, host: &Host, c: &CommandSpec, clock: &dyn Clock) -> StepResult {
        if let Err(e) = self.fenced() {
            return Err(format!("`{}` not sent: {e}", c.label()).into());
        }
        if let Some(url) = c.controller_url() {
            let got = self.io.http.get(host, url, c.timeout(), clock);
            return match c.judge_answer(got) {
                Ok(summary) => Ok(tail(&summary, 200)),
                Err(why) => Err(format!("`{}`: {why}", c.label()).into()),
            };
        }
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

    /// The post-check's `benchmark` checks, run right before the install (the host is drained
    /// by then, as it is at the post-check), each run journaled as the host's before values.
    /// Runs once: after a restart mid-install, the journaled run stands.
    fn benchmark_before(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let benches: Vec<&CommandSpec> = steps
            .post_check
            .iter()
            .filter(|c| c.is_benchmark())
            .collect();
        if benches.is_empty() || hs.bench.contains_key(&BenchPhase::Before) {
            return Ok(Ok(String::new()));
        }
        let mut outs = Vec::new();
        for c in benches {
            match self.benchmark(host, c, BenchPhase::Before, None, clock)? {
                Ok(o) => outs.push(o),
                Err(e) => {
                    return Ok(Err(format!(
                        "before the update: {e}; nothing was installed"
                    )
                    .into()))
                }
            }
        }
        Ok(Ok(format!(
            "benchmark before the update: {}",
            outs.join(" | ")
        )))
    }

    /// The post-check: its commands in order, each benchmark journaled as the host's after
    /// values (its record shows the change from before; the gate judges it).
    fn post_check(
        &self,
        host: &Host,
        steps: &Steps,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let before = self.with_state(|s| {
            s.hosts
                .get(&host.name)
                .and_then(|h| h.bench.get(&BenchPhase::Before))
                .map(|r| r.results.clone())
        });
        let mut outs = Vec::new();
        for c in &steps.post_check {
            let o = if c.is_benchmark() {
                self.benchmark(host, c, BenchPhase::After, before.as_deref(), clock)?
            } else {
                self.run_one(host, c, clock)
            };
            match o {
                Ok(o) if !o.is_empty() => outs.push(o),
                Ok(_) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(outs.join(" | ")))
    }

    /// Runs one benchmark check and journals what it measured.
    fn benchmark(
        &self,
        host: &Host,
        c: &CommandSpec,
        phase: BenchPhase,
        before: Option<&[crate::rollout::bench::BenchResult]>,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let out = match self.io.exec.run_at(host, &c.command(), c.timeout(), clock) {
            Ok(out) => out,
            Err(e) => return Ok(Err(format!("`{}`: {e}", c.label()).into())),
        };
        let measured = match c.bench_results(&out) {
            Some(Ok(r)) => r,
            Some(Err(why)) => {
                return Ok(Err(format!(
                    "`{}`: {why}; output: {}",
                    c.label(),
                    tail(&format!("{}\n{}", out.stdout, out.stderr), 400)
                )
                .into()))
            }
            None => return Ok(judged(c, &out)),
        };
        let summary = crate::rollout::bench::summary(&measured, before);
        self.emit(
            Event::Benchmarked {
                host: host.name.clone(),
                phase,
                results: measured.results,
            },
            clock,
        )?;
        Ok(Ok(format!("`{}`: {summary}", c.label())))
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

    /// Journals the kernel the host runs and its default boot entry before its first step
    /// (invariant: a host's previous kernel is on disk before anything is done to it). A
    /// kernel that cannot be read fails the host; an unreadable boot entry is recorded as none.
    fn record_previous(
        &self,
        host: &Host,
        steps: &Steps,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let p = &steps.probe;
        let kernel = match self.probe(host, &p.kernel, p.timeout, clock) {
            Ok(k) => k,
            Err(e) => {
                return Ok(Err(format!(
                    "cannot read the running kernel before the first step: {e}"
                )
                .into()))
            }
        };
        let boot_entry = if p.boot_entry.is_empty() {
            None
        } else {
            self.probe(host, &p.boot_entry, p.timeout, clock)
                .ok()
                .and_then(|out| saved_entry(&out))
        };
        self.emit(
            Event::PreviousKernel {
                host: host.name.clone(),
                kernel,
                boot_entry,
            },
            clock,
        )?;
        Ok(Ok(String::new()))
    }

    /// Records the boot id, then reboots, at most once per host per transition.
    pub(super) fn reboot(
        &self,
        host: &Host,
        steps: &Steps,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        if !self.with_state(|s| s.may_reboot(&host.name)) {
            return Ok(Err(
                "a reboot was already issued in this transition; refusing to issue a second".into(),
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

    /// Polls the boot id with backoff until it differs from the one before the reboot, up to
    /// the deadline anchored at the journaled `reboot_issued`: a restarted controller waits
    /// only for the time left, and one that starts after the deadline looks once and judges.
    /// A host still missing then gets the policy's out-of-band recovery, once per transition.
    pub(super) fn wait_up(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let Some(before) = hs.boot_id_before.clone() else {
            return Ok(Err("no boot id was recorded before the reboot".into()));
        };
        let w = &steps.wait_up;
        let (mut issued, mut deadline) = wait_window(hs, steps, clock);
        // A recovery issued before a restart is never issued again: wait out what is left.
        if let Some((at, wait)) = &hs.recover_at {
            return Ok(self.wait_after_recover(
                host,
                steps,
                &before,
                issued,
                (at, *wait),
                None,
                clock,
            ));
        }
        let resent = self.resend_if_unsent(host, steps, hs, &before, clock);
        if resent.sent_now {
            (issued, deadline) = fresh_window(steps, clock);
        }
        let resent = resent.note;
        let now = clock.now();
        if now < deadline {
            let left = deadline.duration_since(now).unsigned_abs();
            clock.sleep(Duration::from_secs(w.first).min(left));
        }
        match self.poll_boot(host, steps, &before, issued, deadline, &resent, clock) {
            Ok(up) => Ok(Ok(up)),
            Err(last) => {
                let missing = format!(
                    "did not come back within {} s of the reboot issued at {issued} (deadline {deadline}; last: {last})",
                    w.timeout
                );
                self.recover_out_of_band(host, steps, &before, issued, missing, clock)
            }
        }
    }

    /// A crash between `RebootIssued` and the reboot's answer leaves it unknown whether the
    /// reboot reached the host. The recovery sends it again through the one-shot wrapper when
    /// the host still runs the old boot; where it could not look, this does: it reboots only
    /// if the first one never arrived, and says whether it sent it now (whose wait then starts
    /// afresh, the first one's deadline being no measure of it). What was done, for the record.
    fn resend_if_unsent(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        before: &str,
        clock: &dyn Clock,
    ) -> Resent {
        let note = |note: String, sent_now| Resent { note, sent_now };
        if hs.reboot_resent {
            return note("; the reboot was sent again after a restart".into(), false);
        }
        if hs.done_step < Some(Step::Reboot) {
            if let Ok(id) = self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
                if id == before {
                    return match self.send_reboot(host, steps, before, clock) {
                        Ok(o) => note(
                            format!("; the reboot was sent again after a restart ({o})"),
                            true,
                        ),
                        Err(e) => note(
                            format!("; sending the reboot again after a restart failed: {e}"),
                            false,
                        ),
                    };
                }
            }
        }
        note(String::new(), false)
    }

    /// The update's reboot of a host a rollback takes before that reboot was seen through:
    /// sends it again if it never arrived (one-shot), then waits for the new boot up to the
    /// update's own deadline. Either way the way back goes on: its own steps judge the host
    /// (one still down fails its first step; one that never rebooted still runs its previous
    /// kernel, and the way back's one-shot entry replaces the update's).
    fn wait_for_update_boot(
        &self,
        host: &Host,
        steps: &Steps,
        update: &HostState,
        clock: &dyn Clock,
    ) {
        let Some(before) = update.boot_id_before.as_deref() else {
            return;
        };
        let (mut issued, mut deadline) = wait_window(update, steps, clock);
        let resent = self.resend_if_unsent(host, steps, update, before, clock);
        if resent.sent_now {
            (issued, deadline) = fresh_window(steps, clock);
        }
        let resent = resent.note;
        match self.poll_boot(host, steps, before, issued, deadline, &resent, clock) {
            Ok(up) => tracing::info!("{}: its update's reboot is through: {up}", host.name),
            Err(last) => tracing::warn!(
                "{}: its update's reboot is not through by {deadline} (last: {last}); its way back goes on",
                host.name
            ),
        }
    }

    /// Looks at the boot id with backoff until it differs from `before` (the host's up
    /// again), or until `deadline`: then `Err` with what the last look saw.
    #[allow(clippy::too_many_arguments)]
    fn poll_boot(
        &self,
        host: &Host,
        steps: &Steps,
        before: &str,
        issued: jiff::Timestamp,
        deadline: jiff::Timestamp,
        note: &str,
        clock: &dyn Clock,
    ) -> Result<String, String> {
        let mut interval = Duration::from_secs(1);
        let max = Duration::from_secs(steps.wait_up.max_interval.max(1));
        loop {
            let last = match self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
                Ok(id) if id != before => {
                    let secs = clock.now().duration_since(issued).as_secs_f64();
                    return Ok(format!(
                        "up {secs:.1} s after the reboot was issued, boot id {id}{note}"
                    ));
                }
                Ok(_) => format!("boot id unchanged{note}"),
                Err(e) => e.0,
            };
            let now = clock.now();
            if now >= deadline {
                return Err(last);
            }
            let left = deadline.duration_since(now).unsigned_abs();
            clock.sleep(interval.min(left));
            interval = (interval * 2).min(max);
        }
    }

    /// A host that did not come back: the policy's `recover(host)`, if it has one for this
    /// host, journaled (`recover_issued`, so it runs at most once per transition), run on the
    /// controller, then a second wait. Without one, or when it fails, the host is missing.
    fn recover_out_of_band(
        &self,
        host: &Host,
        steps: &Steps,
        before: &str,
        issued: jiff::Timestamp,
        missing: String,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let set = self.policy()?;
        if !set.defines("rollout", "recover", 1) {
            return Ok(Err(missing.into()));
        }
        let asked = set
            .eval_json("rollout", "recover", vec![host_to_dynamic(host)])
            .map_err(|e| policy_message(&e))
            .and_then(|t| Recover::parse(&t.value).map_err(|e| e.0));
        drop(set);
        let r = match asked {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Err(missing.into())),
            Err(m) => {
                return Ok(Err(format!(
                    "{missing}; no out-of-band recovery: `recover(host)`: {m}"
                )
                .into()))
            }
        };
        self.emit(
            Event::RecoverIssued {
                host: host.name.clone(),
                command: r.run.clone(),
                wait: r.wait,
            },
            clock,
        )?;
        crate::failpoint::hit("rollout.after_recover_issued");
        let line = r.line();
        let ran = match self
            .io
            .oob
            .run_for(host, &r.run, Duration::from_secs(r.timeout), clock)
        {
            Ok(o) if o.success() => format!("`{line}` exited 0: {}", tail(o.first_line(), 120)),
            Ok(o) => {
                return Ok(Err(format!(
                    "{missing}; out-of-band recovery `{line}` exited {}: {}",
                    o.status,
                    tail(&format!("{}\n{}", o.stdout, o.stderr), 300)
                )
                .into()))
            }
            Err(e) => {
                return Ok(Err(format!(
                    "{missing}; out-of-band recovery `{line}` failed: {e}"
                )
                .into()))
            }
        };
        let at = self
            .with_state(|s| {
                s.hosts
                    .get(&host.name)
                    .and_then(|h| h.current(&s.target_kernel).recover_at)
            })
            .unwrap_or_else(|| (clock.now().to_string(), r.wait));
        Ok(self.wait_after_recover(host, steps, before, issued, (&at.0, at.1), Some(ran), clock))
    }

    /// The second wait, after an out-of-band recovery journaled at `at`: `wait` seconds from
    /// there, across restarts. `ran` is what the command answered (unknown after a restart).
    #[allow(clippy::too_many_arguments)]
    fn wait_after_recover(
        &self,
        host: &Host,
        steps: &Steps,
        before: &str,
        issued: jiff::Timestamp,
        (at, wait): (&str, u64),
        ran: Option<String>,
        clock: &dyn Clock,
    ) -> StepResult {
        let from = at
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|_| clock.now());
        let deadline = from
            .checked_add(jiff::SignedDuration::from_secs(wait as i64))
            .unwrap_or(from);
        let what = ran.unwrap_or_else(|| "issued before a restart; its answer is not known".into());
        let now = clock.now();
        if now < deadline {
            let left = deadline.duration_since(now).unsigned_abs();
            clock.sleep(Duration::from_secs(steps.wait_up.first).min(left));
        }
        let note = format!("; back after out-of-band recovery at {at} ({what})");
        self.poll_boot(host, steps, before, issued, deadline, &note, clock)
            .map_err(|last| {
                format!(
                    "did not come back from the reboot issued at {issued}, nor within {wait} s of out-of-band recovery at {at} ({what}; last: {last})"
                )
                .into()
            })
    }

    /// Reads kernel and boot id: the kernel must be `target` (the new kernel, or on the way
    /// back the previous one) and the boot id new.
    pub(super) fn verify(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        target: &str,
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
        Ok(
            if kernel != target && hs.previous_kernel.as_deref() == Some(kernel.as_str()) {
                // The boot loader gave up on the new kernel (a one-shot boot that failed) and
                // booted the old default: the host is up, but not on the kernel judged.
                Err(format!(
                "boot fell back to `{kernel}`: runs `{kernel}` (boot id `{boot_id}`) after the reboot, not `{target}`"
            )
            .into())
            } else if kernel != target {
                Err(format!("runs `{kernel}` after the reboot, not `{target}`").into())
            } else if hs.boot_id_before.as_deref() == Some(boot_id.as_str()) {
                Err(format!("boot id `{boot_id}` did not change: the host did not reboot").into())
            } else {
                Ok(format!("{kernel}, boot id {boot_id}"))
            },
        )
    }
}
