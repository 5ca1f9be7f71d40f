//! The gate of a stage: its updated hosts against its controls (before and after) through the
//! one gate path, or against the static baseline when it has no controls; the verdict
//! journaled, an inconclusive gate's bake extended, and the pause or approval alert.

use super::*;
use crate::rollout::spec::OnFail;

/// How often a gate over several shards asks whether every shard's part is in.
const GATE_POLL: Duration = Duration::from_millis(500);

impl<'a> Controller<'a> {
    /// The stage's host-level data: its after window, merged with its before window, with
    /// the medians and p99s the gate's host statistic reads.
    fn stage_data(
        &self,
        stage: usize,
        q: gate::Quantiles,
    ) -> Result<gate::HostCohort, ControllerError> {
        let path = self.samples_path(stage);
        let mut all = if path.exists() {
            self.fleet.groups.aggregate(&path, &gate::Split::None, q)?
        } else {
            gate::HostCohort::default()
        };
        let prometheus = self.prometheus_path(stage);
        if prometheus.exists() {
            all.merge(
                self.fleet
                    .groups
                    .aggregate(&prometheus, &gate::Split::None, q)?,
            );
        }
        let before = self.before_path(stage);
        if before.exists() {
            all.merge(
                self.fleet
                    .groups
                    .aggregate(&before, &gate::Split::AllBefore, q)?,
            );
        }
        if let Some((before, after)) = self.benchmark_files(stage)? {
            all.merge(self.fleet.groups.aggregate(&after, &gate::Split::None, q)?);
            all.merge(
                self.fleet
                    .groups
                    .aggregate(&before, &gate::Split::AllBefore, q)?,
            );
        }
        Ok(all)
    }

    /// The stage's benchmark pairs, from the journal: each host's runs before and after its
    /// update, written whole as `stage-NN.bench-before.csv` and `stage-NN.bench.csv` (derived
    /// files: the journal is the record, so a restart writes the same again). `None` when no
    /// host of the stage has a pair.
    fn benchmark_files(&self, stage: usize) -> Result<Option<(PathBuf, PathBuf)>, ControllerError> {
        let runs = self.with_state(|s| {
            let hosts = s
                .stages
                .get(stage)
                .map(|p| p.hosts.clone())
                .unwrap_or_default();
            hosts
                .into_iter()
                .filter_map(|h| {
                    let st = s.hosts.get(&h)?;
                    let b = st.bench.get(&BenchPhase::Before)?.clone();
                    let a = st.bench.get(&BenchPhase::After)?.clone();
                    Some((h, b, a))
                })
                .collect::<Vec<_>>()
        });
        let secs = |at: &str| {
            at.parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .unwrap_or(0)
        };
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (h, b, a) in runs {
            let (pb, pa) =
                crate::rollout::bench::paired(&b.results, secs(&b.at), &a.results, secs(&a.at));
            let row = |(t, metric, value): (i64, String, f64)| {
                (
                    h.clone(),
                    Sample {
                        timestamp: t as f64,
                        metric,
                        value,
                    },
                )
            };
            before.extend(pb.into_iter().map(row));
            after.extend(pa.into_iter().map(row));
        }
        if after.is_empty() {
            return Ok(None);
        }
        let dir = self.samples_path(stage);
        let bp = dir.with_file_name(format!("stage-{stage:02}.bench-before.csv"));
        let ap = dir.with_file_name(format!("stage-{stage:02}.bench.csv"));
        self.write_derived(&bp, &before)?;
        self.write_derived(&ap, &after)?;
        Ok(Some((bp, ap)))
    }

    /// Compares the stage's updated hosts with its controls and asks `gates.rhai`. With
    /// controllers per shard, the comparison is of every shard's hosts: this shard's part is
    /// published, the union of every part judged, and the first verdict written stands for
    /// all ([`SharedGates`]).
    pub(super) fn gate(&self, stage: usize) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        let set = self.policy()?;
        let q = gate::Quantiles::for_statistic(set.gate_settings().host_statistic);
        let all = self.stage_data(stage, q)?;
        let (name, done, controls, attempt) = self.with_state(|s| {
            let done: std::collections::BTreeSet<String> = s
                .stages
                .get(stage)
                .into_iter()
                .flat_map(|p| {
                    p.hosts
                        .iter()
                        .filter(|h| s.hosts.get(*h).is_some_and(|x| x.done))
                        .cloned()
                })
                .collect();
            let name = s
                .stages
                .get(stage)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let attempt = s.gate_runs.get(&stage).copied().unwrap_or(0);
            (name, done, s.controls_of(stage), attempt)
        });
        let local = GatePart {
            updated: all.retain(|h| done.contains(h)),
            controls: all.retain(|h| controls.contains(h) && !done.contains(h)),
            done: done.into_iter().collect(),
        };
        let id = GateId { stage, attempt };
        let part = match self.io.gates {
            None => local,
            Some(g) => match self.gather_gate(g, id, &name, &local, clock)? {
                Some(p) => p,
                None => return Ok(()), // halted: the run loop stops
            },
        };
        let specs = self
            .fleet
            .groups
            .expected(part.done.iter().map(String::as_str));
        // The static baseline: the reference of comparisons with too few controls.
        let summary = Some(&self.fleet.baseline);
        let (cmp, verdict) = gate::evaluate(
            &set,
            &gate::Stage {
                index: stage,
                name: &name,
                groups: &specs,
                updated: &part.updated,
                reference: gate::Reference {
                    controls: &part.controls,
                    summary,
                },
            },
        );
        let verdict = verdict.unwrap_or_else(|e| Verdict {
            verdict: VerdictKind::Pause,
            reasons: vec![format!("the gate policy failed: {}", policy_message(&e))],
            levels: Default::default(),
        });
        // Each group and how it came out: what the approval may claim.
        let groups = gate::judged(&cmp, &verdict);
        // With other shards, the verdict written first is every shard's.
        let (verdict, groups, announce) = match self.io.gates {
            None => (verdict, groups, true),
            Some(g) => {
                let me = g.shard();
                let stood = g.decide(
                    id,
                    &SharedVerdict {
                        verdict,
                        groups,
                        by: me.clone(),
                    },
                )?;
                let mine = stood.by == me;
                if !mine {
                    self.io.observer.note(&format!(
                        "the gate of `{name}`: {} as shard `{}` wrote it",
                        stood.verdict.verdict.as_str(),
                        stood.by
                    ));
                }
                (stood.verdict, stood.groups, mine)
            }
        };
        let gate_file = self
            .samples_path(stage)
            .with_file_name(format!("stage-{stage:02}.gate.json"));
        if let Ok(body) = serde_json::to_vec_pretty(&cmp) {
            std::fs::write(&gate_file, body).map_err(|source| ControllerError::Io {
                path: gate_file.clone(),
                source,
            })?;
        }
        // The report people look at, beside the gate's JSON.
        let html = gate_file.with_file_name(format!("stage-{stage:02}.html"));
        std::fs::write(&html, gate::report(&set, &cmp, &verdict, &[])).map_err(|source| {
            ControllerError::Io {
                path: html.clone(),
                source,
            }
        })?;
        self.emit(
            Event::GateEvaluated {
                stage,
                verdict: verdict.verdict,
                reasons: verdict.reasons.clone(),
                groups: groups.clone(),
            },
            clock,
        )?;
        match verdict.verdict {
            VerdictKind::Inconclusive => {
                if self.extend_bake(&set, stage, &verdict.reasons)? {
                    return Ok(());
                }
                let n = self.with_state(|s| s.extensions.get(&stage).map_or(0, Vec::len));
                self.pause(
                    "gate_inconclusive",
                    Severity::Warning,
                    Some(stage),
                    format!(
                        "the gate of `{name}` is inconclusive: the data cannot decide ({n} bake extension(s) used)"
                    ),
                    verdict.reasons,
                    clock,
                )
            }
            VerdictKind::Pass => {
                let canary = self.with_state(|s| {
                    s.stages
                        .get(stage)
                        .is_some_and(|p| p.info.kind == crate::plan::StageKind::Canary)
                });
                // With other shards, the one whose controller wrote the verdict tells.
                if canary && announce {
                    let kernel = self.with_state(|s| s.target_kernel.clone());
                    // Each group as judged, then the policy's own notes.
                    let mut reasons: Vec<String> =
                        groups.iter().map(gate::GroupJudgement::describe).collect();
                    reasons.extend(verdict.reasons);
                    self.alert(
                        Severity::Info,
                        "canary_approved",
                        Some(stage),
                        format!(
                            "kernel `{kernel}` approved by the canaries: {}",
                            gate::approval_summary(&groups)
                        ),
                        reasons,
                    );
                }
                Ok(())
            }
            kind @ (VerdictKind::Pause | VerdictKind::Fail) => {
                self.on_gate_failure(&set, stage, &name, kind, verdict.reasons, clock)
            }
        }
    }

    /// Publishes this shard's part of a gate over several shards and waits for every other
    /// shard's, saying once which it waits for. Returns their union; this shard's part alone
    /// once a verdict is written without it (an operator's acceptance in another shard, or
    /// before this controller took the shard over), which [`SharedGates::decide`] then
    /// returns; `None` when an operator's request halted the wait.
    fn gather_gate(
        &self,
        g: &dyn SharedGates,
        id: GateId,
        name: &str,
        part: &GatePart,
        clock: &dyn Clock,
    ) -> Result<Option<GatePart>, ControllerError> {
        if g.written(id)?.is_some() {
            return Ok(Some(part.clone()));
        }
        g.publish(id, part)?;
        let mut told = false;
        loop {
            match g.gather(id)? {
                Gathered::All(parts) => {
                    if told {
                        self.io
                            .observer
                            .note(&format!("the gate of `{name}` has every shard's hosts"));
                    }
                    return Ok(Some(GatePart::union(parts)));
                }
                Gathered::Waiting(missing) => {
                    if g.written(id)?.is_some() {
                        return Ok(Some(part.clone()));
                    }
                    if !told {
                        self.io.observer.note(&format!(
                            "the gate of `{name}` waits for the hosts of shard(s) {}",
                            missing
                                .iter()
                                .map(|m| format!("`{m}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        told = true;
                    }
                    if self.halted(clock)? {
                        return Ok(None);
                    }
                    std::thread::sleep(GATE_POLL);
                }
            }
        }
    }

    /// A gate paused or failed: the policy's `on_fail(stage, verdict)` decides (journaled and
    /// alerted with the verdict's reasons), then the controller pauses, rolls back the
    /// stage or every updated host, or aborts. Without `on_fail`, it pauses. A decision the
    /// policy cannot make, or a rollback that cannot start, pauses with the reason.
    fn on_gate_failure(
        &self,
        set: &PolicySet,
        stage: usize,
        name: &str,
        kind: VerdictKind,
        reasons: Vec<String>,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        let (what, alert, severity) = if kind == VerdictKind::Fail {
            ("failed the kernel", "gate_failed", Severity::Critical)
        } else {
            ("paused the rollout", "gate_paused", Severity::Warning)
        };
        let summary = format!("the gate of `{name}` {what}");
        if !set.defines("rollout", "on_fail", 2) {
            return self.pause(alert, severity, Some(stage), summary, reasons, clock);
        }
        // The stage as `bake(wave)` sees it, and the verdict.
        let info = self.with_state(|s| s.stages.get(stage).map(|p| p.info.clone()));
        let args = serde_json::json!([info, { "kind": kind.as_str(), "reasons": reasons }]);
        let mut dynamic = Vec::new();
        for a in args.as_array().into_iter().flatten() {
            dynamic.push(crate::runtime::typed::to_dynamic(a).map_err(ControllerError::from)?);
        }
        let decision = match set
            .eval_json("rollout", "on_fail", dynamic)
            .map_err(|e| policy_message(&e))
            .and_then(|v| OnFail::parse(&v.value).map_err(|e| e.0))
        {
            Ok(d) => d,
            Err(m) => {
                return self.pause(
                    alert,
                    severity,
                    Some(stage),
                    format!("{summary}, and `on_fail(stage, verdict)` could not decide: {m}"),
                    reasons,
                    clock,
                )
            }
        };
        self.emit(
            Event::OnFailDecided {
                stage,
                verdict: kind,
                decision,
                reasons: reasons.clone(),
            },
            clock,
        )?;
        match decision {
            OnFail::Pause => self.pause(alert, severity, Some(stage), summary, reasons, clock),
            OnFail::Abort => {
                self.alert(
                    severity,
                    alert,
                    Some(stage),
                    format!("{summary}; on_fail decided `abort`"),
                    reasons,
                );
                self.abort(&format!("{summary}; on_fail decided `abort`"), clock)
            }
            OnFail::Rollback | OnFail::RollbackAll => {
                let (scope, whose) = if decision == OnFail::Rollback {
                    (
                        crate::rollout::rollback::Scope::Stages(vec![name.to_string()]),
                        format!("the hosts of `{name}`"),
                    )
                } else {
                    (
                        crate::rollout::rollback::Scope::All,
                        "every host on the new kernel".to_string(),
                    )
                };
                let why = format!("{summary}; on_fail decided `{}`", decision.key());
                self.alert(
                    severity,
                    alert,
                    Some(stage),
                    format!("{why}: rolling back {whose}"),
                    reasons.clone(),
                );
                match self.rollback(&scope, &why) {
                    Ok(_) => Ok(()),
                    Err(ControllerError::Invalid(m)) => self.pause(
                        alert,
                        severity,
                        Some(stage),
                        format!("{why}, but the rollback cannot start: {m}"),
                        reasons,
                        clock,
                    ),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
