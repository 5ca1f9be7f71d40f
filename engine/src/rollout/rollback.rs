//! Which hosts a rollback takes back to the kernel each ran before, in which batches: a pure
//! function of the rollout's state and the operator's scope.
//!
//! Only hosts the rollout rebooted go back (a host never rebooted still runs its old kernel);
//! later stages go first; each stage's own batches are kept, so its in-flight and
//! blast-radius limits hold on the way back. Quarantined hosts are left alone unless named.

use super::event::Step;
use super::event::{LeftHost, RollbackBatch};
use super::state::RolloutState;
use crate::error::Invalid;

/// What to roll back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every host the rollout rebooted into the new kernel.
    All,
    /// The hosts of the stages named (as `status` names them: `canary`, `wave 1`, …).
    Stages(Vec<String>),
    /// The hosts named, quarantined ones included.
    Hosts(Vec<String>),
}

impl Scope {
    fn describe(&self) -> String {
        match self {
            Scope::All => "the rollout".to_string(),
            Scope::Stages(s) => format!(
                "stage(s) {}",
                s.iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Scope::Hosts(h) => format!(
                "host(s) {}",
                h.iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// What a rollback of a scope does: its batches, later stages first; the hosts of the scope
/// it leaves alone that the rollout touched, with the reason; and how many it never touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackPlan {
    pub batches: Vec<RollbackBatch>,
    pub left: Vec<LeftHost>,
    pub untouched: usize,
}

/// The hosts a rollback leaves alone, one line each (`left alone: HOST: WHY`), and a line
/// for those the rollout never started: what its alert, its journal line and `explain` say.
pub fn left_alone(left: &[LeftHost], untouched: usize) -> Vec<String> {
    left.iter()
        .map(|l| format!("left alone: {}: {}", l.host, l.why))
        .chain(
            (untouched > 0)
                .then(|| format!("left alone: {untouched} host(s) the rollout never started")),
        )
        .collect()
}

/// The rollback of `scope`. An error when the scope names what the rollout does not hold,
/// names a host that cannot go back, or leaves nothing to do.
pub fn plan(st: &RolloutState, scope: &Scope) -> Result<RollbackPlan, Invalid> {
    if st.stages.is_empty() {
        return Err("the state directory holds no rollout".into());
    }
    if st.rolling_back() {
        return Err("a rollback is already under way; `rollout resume` carries it on".into());
    }
    let named = match scope {
        Scope::Stages(names) => {
            for n in names {
                if !st.stages.iter().any(|s| &s.name == n) {
                    return Err(format!(
                        "no stage `{n}` in this rollout (stages: {})",
                        st.stages
                            .iter()
                            .map(|s| format!("`{}`", s.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                    .into());
                }
            }
            None
        }
        Scope::Hosts(hosts) => {
            for h in hosts {
                if !st.stages.iter().any(|s| s.hosts.contains(h)) {
                    return Err(format!("host `{h}` is not in this rollout").into());
                }
            }
            Some(hosts)
        }
        Scope::All => None,
    };
    let in_scope = |stage: &str, host: &String| match scope {
        Scope::All => true,
        Scope::Stages(names) => names.iter().any(|n| n == stage),
        Scope::Hosts(hosts) => hosts.contains(host),
    };
    let mut batches = Vec::new();
    let mut left = Vec::new();
    let mut untouched = 0;
    for stage in st.stages.iter().rev() {
        let mut take = Vec::new();
        for host in stage.hosts.iter().filter(|h| in_scope(&stage.name, h)) {
            let hs = st.hosts.get(host).cloned().unwrap_or_default();
            let why = if let Some(b) = &hs.back {
                Some(if b.done {
                    format!(
                        "already back on `{}`",
                        hs.previous_kernel
                            .as_deref()
                            .unwrap_or("its previous kernel")
                    )
                } else {
                    "failed on its way back (quarantined)".to_string()
                })
            } else if hs.reboots == 0 && hs.untouched() && named.is_none() {
                untouched += 1;
                continue;
            } else if hs.reboots == 0 && hs.done_step >= Some(Step::SetBoot) {
                Some("never rebooted into the new kernel, but its boot entry was set: its next reboot may boot the new kernel (`grub-editenv - unset next_entry` clears a one-shot entry)".to_string())
            } else if hs.reboots == 0 {
                Some("never rebooted into the new kernel".to_string())
            } else if hs.previous_kernel.is_none() {
                Some("its previous kernel was not recorded before its update".to_string())
            } else if let (Some((step, _)), None) = (&hs.failed, named) {
                Some(format!(
                    "quarantined (failed at {}); name it with `--host {host}` to roll it back",
                    step.key()
                ))
            } else {
                None
            };
            match why {
                Some(why) if named.is_some() => {
                    return Err(format!("cannot roll back `{host}`: {why}").into())
                }
                Some(why) => left.push(LeftHost {
                    host: host.clone(),
                    why,
                }),
                None => take.push(host.clone()),
            }
        }
        for b in &stage.batches {
            let hosts: Vec<String> = b.iter().filter(|h| take.contains(h)).cloned().collect();
            if !hosts.is_empty() {
                batches.push(RollbackBatch {
                    stage: stage.index,
                    hosts,
                });
            }
        }
    }
    if batches.is_empty() {
        let mut why: Vec<String> = left
            .iter()
            .take(5)
            .map(|l| format!("{}: {}", l.host, l.why))
            .collect();
        if left.len() > 5 {
            why.push(format!("and {} more", left.len() - 5));
        }
        if untouched > 0 {
            why.push(format!("{untouched} host(s) never started"));
        }
        return Err(format!(
            "nothing to roll back in {}: no host there runs the new kernel through this rollout{}",
            scope.describe(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        )
        .into());
    }
    Ok(RollbackPlan {
        batches,
        left,
        untouched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::event::{Event, StagePlan};

    fn stage(index: usize, name: &str, batches: Vec<Vec<&str>>) -> StagePlan {
        let hosts: Vec<String> = batches.iter().flatten().map(|h| h.to_string()).collect();
        StagePlan {
            index,
            name: name.into(),
            info: crate::plan::spec::StageInfo {
                index,
                name: name.into(),
                kind: crate::plan::spec::StageKind::Wave,
                wave: index,
                part: 1,
                parts: 1,
                percent: 100.0,
                size: hosts.len(),
            },
            fleet_groups: None,
            batches: batches
                .into_iter()
                .map(|b| b.into_iter().map(String::from).collect())
                .collect(),
            hosts,
            bake_secs: 0,
            batch_secs: vec![],
        }
    }

    /// A rollout whose canaries `a`, `b` and wave-1 hosts `c`, `d` were updated (`b` failed
    /// after its reboot), `e` never started, and `f` had no previous kernel on record.
    fn state() -> RolloutState {
        let mut st = RolloutState::default();
        st.apply(&Event::Started {
            target_kernel: "new".into(),
            stages: vec![
                stage(0, "canary", vec![vec!["a", "b"]]),
                stage(1, "wave 1", vec![vec!["c"], vec!["d", "e"], vec!["f"]]),
            ],
            inventory: "inv".into(),
            seed: 0,
            held: vec![],
        });
        for h in ["a", "b", "c", "d", "f"] {
            if h != "f" {
                st.apply(&Event::PreviousKernel {
                    host: h.into(),
                    kernel: "old".into(),
                    boot_entry: None,
                });
            }
            st.apply(&Event::RebootIssued {
                host: h.into(),
                boot_id: "b0".into(),
            });
        }
        st.apply(&Event::HostFailed {
            host: "b".into(),
            step: Step::Verify,
            output: "boot fell back".into(),
        });
        st
    }

    fn check(scope: Scope, expect: &str) {
        let got = match plan(&state(), &scope) {
            Ok(RollbackPlan {
                batches,
                left,
                untouched,
            }) => {
                let b: Vec<String> = batches
                    .iter()
                    .map(|b| format!("{}:{}", b.stage, b.hosts.join(",")))
                    .collect();
                let l: Vec<String> = left
                    .iter()
                    .map(|l| format!("{} ({})", l.host, l.why))
                    .collect();
                format!(
                    "batches {} | left {} | untouched {untouched}",
                    b.join(" "),
                    l.join("; ")
                )
            }
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn later_stages_go_back_first_in_their_own_batches() {
        check(
            Scope::All,
            "batches 1:c 1:d 0:a | left f (its previous kernel was not recorded before its update); b (quarantined (failed at verify); name it with `--host b` to roll it back) | untouched 1",
        );
        check(
            Scope::Stages(vec!["canary".into()]),
            "batches 0:a | left b (quarantined (failed at verify); name it with `--host b` to roll it back) | untouched 0",
        );
    }

    #[test]
    fn a_quarantined_host_goes_back_only_when_named() {
        check(
            Scope::Hosts(vec!["b".into(), "d".into()]),
            "batches 1:d 0:b | left  | untouched 0",
        );
    }

    #[test]
    fn bad_scopes_are_clear_errors() {
        check(
            Scope::Hosts(vec!["zz".into()]),
            "error: host `zz` is not in this rollout",
        );
        check(
            Scope::Hosts(vec!["e".into()]),
            "error: cannot roll back `e`: never rebooted into the new kernel",
        );
        check(
            Scope::Stages(vec!["wave 9".into()]),
            "error: no stage `wave 9` in this rollout (stages: `canary`, `wave 1`)",
        );
        let mut fresh = state();
        fresh.hosts.clear();
        let e = plan(&fresh, &Scope::All).unwrap_err().0;
        assert_eq!(
            e,
            "nothing to roll back in the rollout: no host there runs the new kernel through this rollout (6 host(s) never started)"
        );
        assert_eq!(
            plan(&RolloutState::default(), &Scope::All).unwrap_err().0,
            "the state directory holds no rollout"
        );
    }

    #[test]
    fn a_second_rollback_skips_hosts_already_back() {
        let mut st = state();
        st.apply(&Event::RollbackStarted {
            untouched: 0,
            reason: "r".into(),
            batches: vec![RollbackBatch {
                stage: 0,
                hosts: vec!["a".into()],
            }],
            left: vec![],
        });
        assert_eq!(
            plan(&st, &Scope::All).unwrap_err().0,
            "a rollback is already under way; `rollout resume` carries it on"
        );
        st.apply(&Event::HostDone { host: "a".into() });
        st.apply(&Event::RolledBack { failed: vec![] });
        assert!(st.hosts["a"].rolled_back());
        let p = plan(&st, &Scope::All).unwrap();
        assert_eq!(p.batches.len(), 2, "{:?}", p.batches);
        assert!(p
            .left
            .iter()
            .any(|l| l.host == "a" && l.why == "already back on `old`"));
    }
}
