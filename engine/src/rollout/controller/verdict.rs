//! The gate of a stage: its samples against the baseline through the one gate path, the
//! verdict journaled, and the pause or approval alert it calls for.

use super::*;

impl<'a> Controller<'a> {
    /// Compares the stage's samples with the baseline and asks `gates.rhai`.
    pub(super) fn gate(&self, stage: usize) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        let set = self.policy()?;
        let path = self.samples_path(stage);
        let updated = if path.exists() {
            self.fleet.groups.cohort(&path)?
        } else {
            Cohort::default()
        };
        let (name, specs) = self.with_state(|s| {
            let done = s.stages.get(stage).into_iter().flat_map(|p| {
                p.hosts
                    .iter()
                    .filter(|h| s.hosts.get(*h).is_some_and(|x| x.done))
                    .map(String::as_str)
            });
            let specs = self.fleet.groups.expected(done);
            let name = s
                .stages
                .get(stage)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            (name, specs)
        });
        let (cmp, verdict) = gate::evaluate(
            &set,
            &gate::Stage {
                index: stage,
                name: &name,
                groups: &specs,
                updated: &updated,
                baseline: &self.fleet.baseline,
            },
        );
        let gate_file = path.with_file_name(format!("stage-{stage:02}.gate.json"));
        if let Ok(body) = serde_json::to_vec_pretty(&cmp) {
            std::fs::write(&gate_file, body).map_err(|source| ControllerError::Io {
                path: gate_file.clone(),
                source,
            })?;
        }
        let verdict = verdict.unwrap_or_else(|e| Verdict {
            verdict: VerdictKind::Pause,
            reasons: vec![format!("the gate policy failed: {}", policy_message(&e))],
        });
        self.emit(
            Event::GateEvaluated {
                stage,
                verdict: verdict.verdict,
                reasons: verdict.reasons.clone(),
            },
            clock,
        )?;
        match verdict.verdict {
            VerdictKind::Pass => {
                let canary = self.with_state(|s| {
                    s.stages
                        .get(stage)
                        .is_some_and(|p| p.info.kind == crate::plan::StageKind::Canary)
                });
                if canary {
                    let kernel = self.with_state(|s| s.target_kernel.clone());
                    self.alert(
                        Severity::Info,
                        "canary_approved",
                        Some(stage),
                        format!(
                            "kernel `{kernel}` approved by the canaries: all {} hardware × workload group(s) passed",
                            specs.len()
                        ),
                        verdict.reasons,
                    );
                }
                Ok(())
            }
            VerdictKind::Pause => self.pause(
                "gate_paused",
                Severity::Warning,
                Some(stage),
                format!("the gate of `{name}` paused the rollout"),
                verdict.reasons,
                clock,
            ),
            VerdictKind::Fail => self.pause(
                "gate_failed",
                Severity::Critical,
                Some(stage),
                format!("the gate of `{name}` failed the kernel"),
                verdict.reasons,
                clock,
            ),
        }
    }
}
