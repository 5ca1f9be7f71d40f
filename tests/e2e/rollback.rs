//! `fleetward rollout rollback` against real `sshd` hosts on loopback: every updated host goes
//! back to the kernel it ran before through the same steps as the update, with one reboot per
//! transition, later stages first; `kill -9` mid-rollback then `rollout resume` loses nothing
//! and repeats no reboot; bad requests are clear errors that record nothing.

use crate::rollout::{Lab, TARGET};
use crate::support::{bin, code, stderr, stdout};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const OLD: &str = "6.8.0-40-generic";
const OLD_ENTRY: &str = "Advanced options for Ubuntu>Ubuntu, with Linux 6.8.0-40-generic";

fn rollback_args(lab: &Lab, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "rollout".into(),
        "rollback".into(),
        "--state-dir".into(),
        lab.state.display().to_string(),
        "--output".into(),
        "json".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn rollback(lab: &Lab, extra: &[&str]) -> Output {
    lab.fleetward(&rollback_args(lab, extra))
}

fn journal(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// A finished clean rollout of `n` hosts.
fn updated_lab(n: usize) -> Lab {
    let lab = Lab::new(n, &[]);
    let o = lab.start(&[]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    for h in lab.names() {
        assert_eq!(lab.kernel(&h), TARGET, "{h}");
    }
    lab
}

/// Each host of `back` runs the old kernel again, as its default, after exactly two reboots;
/// the others still run the new one after one.
fn check_back(lab: &Lab, back: &[String]) {
    for h in lab.names() {
        let default = std::fs::read_to_string(lab.host_dir(&h).join("default")).unwrap();
        if back.contains(&h) {
            assert_eq!(lab.kernel(&h), OLD, "{h}");
            assert_eq!(default.trim(), OLD, "{h}");
            assert_eq!(lab.reboots(&h), 2, "{h}");
        } else {
            assert_eq!(lab.kernel(&h), TARGET, "{h}");
            assert_eq!(lab.reboots(&h), 1, "{h}");
        }
    }
}

#[test]
fn a_rollback_returns_every_updated_host_to_its_previous_kernel_later_stages_first() {
    let lab = updated_lab(8);
    let stages = lab.plan_stages();
    let o = rollback(&lab, &["--reason", "kernel judged bad"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let st = lab.status();
    assert_eq!(st["phase"], "rolled_back", "{st}");
    assert_eq!(st["rollback"]["back"], 8, "{st}");
    assert_eq!(st["rollback"]["reason"], "kernel judged bad", "{st}");
    let all = lab.names();
    check_back(&lab, &all);
    for h in &all {
        // The way back: drained, the previous entry booted once, made the default again only
        // after the checks, then undrained; nothing installed.
        let cmds: Vec<String> = lab.commands(h).into_iter().map(|(_, c)| c).collect();
        let after = cmds
            .iter()
            .rposition(|c| c.starts_with("apt-get install"))
            .unwrap();
        let back: Vec<&String> = cmds[after..].iter().collect();
        let at = |p: &str| {
            back.iter()
                .rposition(|c| c.starts_with(p))
                .unwrap_or_else(|| panic!("{h}: no `{p}` on the way back: {back:?}"))
        };
        assert!(
            back.iter()
                .any(|c| *c == &format!("grub-reboot {OLD_ENTRY}")),
            "{h}: {back:?}"
        );
        assert!(at("grub-reboot") < at("systemctl reboot"), "{h}: {back:?}");
        assert!(
            at("systemctl reboot") < at("grub-set-default"),
            "{h}: {back:?}"
        );
        assert!(
            at("grub-set-default") < at("lbctl undrain"),
            "{h}: {back:?}"
        );
        assert_eq!(
            back.iter().filter(|c| c.starts_with("apt-get")).count(),
            1,
            "{h}: {back:?}"
        );
    }
    // Later stages first: each host of a later stage was back before any of an earlier one.
    let records = journal(&lab.state);
    let started = records
        .iter()
        .position(|r| r["event"]["type"] == "rollback_started")
        .unwrap();
    let done: Vec<String> = records[started..]
        .iter()
        .filter(|r| r["event"]["type"] == "host_done")
        .map(|r| r["event"]["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(done.len(), 8, "{done:?}");
    let stage_of = |h: &String| stages.iter().position(|(_, hs)| hs.contains(h)).unwrap();
    let order: Vec<usize> = done.iter().map(stage_of).collect();
    assert!(order.windows(2).all(|p| p[0] >= p[1]), "{order:?}");
    // status says where every host is; explain shows the rollback.
    for k in st["hosts"].as_array().unwrap() {
        assert_eq!(k["status"], "rolled back", "{k}");
        assert_eq!(k["kernel"], OLD, "{k}");
    }
    let o = lab.fleetward(&[
        "explain".into(),
        "--state-dir".into(),
        lab.state.display().to_string(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("8 host(s) sent back to the kernel each ran before"),
        "{}",
        stdout(&o)
    );
    // A second rollback has nothing to do: a clear error, nothing recorded.
    let n = records.len();
    let o = rollback(&lab, &[]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("nothing to roll back"),
        "{}",
        stdout(&o)
    );
    assert_eq!(journal(&lab.state).len(), n);
}

#[test]
fn bad_rollback_requests_are_clear_errors_that_record_nothing() {
    let lab = Lab::new(4, &[]);
    let stages = lab.plan_stages();
    let missing = lab.state.with_file_name("no-such-state");
    let o = lab.fleetward(&[
        "rollout".into(),
        "rollback".into(),
        "--state-dir".into(),
        missing.display().to_string(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("holds no rollout"), "{}", stderr(&o));
    assert!(!missing.exists());
    // A rollout that updated nothing yet: its canaries fail before any reboot.
    for h in &stages[0].1 {
        lab.fault(h, "fault-fail-apt-get", "");
    }
    let o = lab.start(&[]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    let n = journal(&lab.state).len();
    for (args, says) in [
        (vec![], "nothing to roll back in the rollout"),
        (
            vec!["--host", "nosuch"],
            "host `nosuch` is not in this rollout",
        ),
        (
            vec!["--stage", "wave 9"],
            "no stage `wave 9` in this rollout",
        ),
        (
            vec!["--host", stages[0].1[0].as_str()],
            "never rebooted into the new kernel",
        ),
    ] {
        let o = rollback(&lab, &args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stdout(&o));
        assert!(stdout(&o).contains(says), "{args:?}: {}", stdout(&o));
        assert_eq!(journal(&lab.state).len(), n, "{args:?}");
    }
}

#[test]
fn a_boot_that_falls_back_on_the_way_back_is_quarantined_and_the_rest_go_back() {
    let lab = updated_lab(8);
    let stuck = lab.names()[0].clone();
    lab.fault(&stuck, "fault-boot-fallback", "");
    let o = rollback(&lab, &[]);
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let st = lab.status();
    assert_eq!(st["phase"], "rolled_back", "{st}");
    let failed = st["rollback"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{st}");
    let f = failed[0].as_str().unwrap();
    assert!(
        f.starts_with(&format!(
            "{stuck}: failed at verify on its way back to `{OLD}`: boot fell back to `{TARGET}`"
        )),
        "{f}"
    );
    // It stays on the new kernel (its default), rebooted once per transition.
    assert_eq!(lab.kernel(&stuck), TARGET);
    assert_eq!(lab.reboots(&stuck), 2);
    let others: Vec<String> = lab.names().into_iter().filter(|h| *h != stuck).collect();
    for h in &others {
        assert_eq!(lab.kernel(h), OLD, "{h}");
        assert_eq!(lab.reboots(h), 2, "{h}");
    }
}

#[test]
#[allow(clippy::zombie_processes)] // every child is killed and waited for, or waited for
fn kill_9_during_a_rollback_then_resume_repeats_no_reboot_and_skips_no_host() {
    let lab = updated_lab(8);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill points seed: {seed}");
    let mut x = seed | 1;
    let mut next = move || {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut kills = 0;
    let mut first = true;
    let mut finished = None;
    while finished.is_none() {
        let args = if first {
            rollback_args(&lab, &[])
        } else {
            vec![
                "rollout".into(),
                "resume".into(),
                "--state-dir".into(),
                lab.state.display().to_string(),
                "--output".into(),
                "json".into(),
            ]
        };
        let mut child = Command::new(bin())
            .args(&args)
            .env("XDG_STATE_HOME", crate::support::state_home())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if kills < 6 {
            // After 1 to 8 more journal records, plus up to 40 ms: close enough together
            // that the rollback of eight hosts meets at least three (with up to 15, a seed
            // whose first kills came late let it finish after two: the full suite's finding).
            let target = journal(&lab.state).len() + 1 + (next() % 8) as usize;
            let extra = Duration::from_millis(next() % 40);
            let t = Instant::now();
            let mut reached: Option<Instant> = None;
            while t.elapsed() < Duration::from_secs(120) {
                if let Some(s) = child.try_wait().unwrap() {
                    finished = Some(s);
                    break;
                }
                if reached.is_none() && journal(&lab.state).len() >= target {
                    reached = Some(Instant::now());
                }
                if reached.is_some_and(|r| r.elapsed() >= extra) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if finished.is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                // A kill before `rollback_started` reached the disk leaves nothing to resume:
                // the operator asks for the rollback again.
                first = !journal(&lab.state)
                    .iter()
                    .any(|r| r["event"]["type"] == "rollback_started");
                continue;
            }
        } else {
            finished = Some(child.wait().unwrap());
        }
    }
    assert!(
        kills >= 3,
        "only {kills} kills before the rollback finished, in {} journal records",
        journal(&lab.state).len()
    );
    let st = lab.status();
    assert_eq!(st["phase"], "rolled_back", "{st}");
    assert_eq!(st["rollback"]["failed"], serde_json::json!([]), "{st}");
    let all = lab.names();
    check_back(&lab, &all);
}

#[test]
fn a_kernel_panic_in_the_canary_bake_fails_the_gate_and_the_policy_rolls_every_updated_host_back() {
    let lab = Lab::new(8, &[]);
    let stages = lab.plan_stages();
    let victim = stages[0].1[0].clone();
    lab.fault(&victim, "fault-late-klog-panic", "");
    let o = lab.start(&[]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let st = lab.status();
    assert_eq!(st["phase"], "rolled_back", "{st}");
    let records = journal(&lab.state);
    let decided: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["type"] == "on_fail_decided")
        .collect();
    assert_eq!(decided.len(), 1, "{records:?}");
    let e = &decided[0]["event"];
    assert_eq!(e["stage"], 0);
    assert_eq!(e["verdict"], "fail");
    assert_eq!(e["decision"], "rollback_all");
    assert!(
        e["reasons"][0].as_str().unwrap().contains("kernel panic"),
        "{e}"
    );
    // Every host on the new kernel (the canaries) is back, one reboot per transition; later
    // stages never started.
    let canaries = &stages[0].1;
    for h in lab.names() {
        if canaries.contains(&h) {
            assert_eq!(lab.kernel(&h), OLD, "{h}");
            assert_eq!(lab.reboots(&h), 2, "{h}");
        } else {
            assert_eq!(lab.reboots(&h), 0, "{h}");
        }
    }
    let alerts = std::fs::read_to_string(lab.state.join("alerts.jsonl")).unwrap();
    let kinds: Vec<String> = alerts
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["gate_failed", "rollback_started", "rolled_back"],
        "{alerts}"
    );
}

#[test]
fn a_rollback_past_its_failure_budget_pauses_and_resumes_when_acknowledged() {
    let lab = updated_lab(8);
    let stuck: Vec<String> = lab.names().into_iter().take(2).collect();
    for h in &stuck {
        lab.fault(h, "fault-boot-fallback", "");
    }
    let o = rollback(&lab, &[]);
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let st = lab.status();
    assert_eq!(st["phase"], "paused", "{st}");
    let why = st["pause_reason"].as_str().unwrap();
    assert!(
        why.starts_with("rollback paused: 2 host(s) failed on the way back; the budget allows 1"),
        "{why}"
    );
    let o = lab.resume(&["--acknowledge-failures"]);
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let st = lab.status();
    assert_eq!(st["phase"], "rolled_back", "{st}");
    assert_eq!(
        st["rollback"]["failed"].as_array().unwrap().len(),
        2,
        "{st}"
    );
    for h in lab.names() {
        assert_eq!(lab.reboots(&h), 2, "{h}");
        let want = if stuck.contains(&h) { TARGET } else { OLD };
        assert_eq!(lab.kernel(&h), want, "{h}");
    }
}

/// Out-of-band recovery: a host that never comes back from its reboot gets the policy's
/// `recover(host)`, run on the controller (here a BMC stand-in, `tests/hosts/bmc.sh`, given the
/// host's `bmc` fact as one argument), once, journaled before it runs; then a second, bounded
/// wait. One host comes back from the power cycle on its default entry, the old kernel, and is
/// quarantined as a boot that fell back; one stays down and is quarantined after the wait.
#[test]
fn recover_runs_once_for_a_host_that_never_comes_back() {
    let bmc = crate::support::root().join("tests/hosts/bmc.sh");
    let recover = format!(
        r#"const RECOVER = ["{}", "--state", "{{bmc}}", "chassis", "power", "cycle"];"#,
        bmc.display()
    );
    let lab = Lab::new(
        20,
        &[
            ("const RECOVER = [];", recover.as_str()),
            ("const RECOVER_WAIT = 900;", "const RECOVER_WAIT = 10;"),
            (
                "#{ per_stage: 1, total: percent(1), rollback: 1 }",
                "#{ per_stage: 3, total: 5 }",
            ),
        ],
    );
    let stages = lab.plan_stages();
    let last = &stages.last().unwrap().1;
    assert!(last.len() >= 4, "{stages:?}");
    let (fixed, dead) = (&last[0], &last[1]);
    for h in [fixed, dead] {
        lab.fault(h, "fault-never-up", "");
    }
    lab.fault(fixed, "fault-recover-fixes", "");
    let o = lab.start(&[]);
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let st = lab.status();
    assert_eq!(st["phase"], "completed_with_failures", "{st}");
    let failed = |h: &str| -> (String, String) {
        let f = st["failed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["host"] == h)
            .unwrap_or_else(|| panic!("{h} did not fail: {st}"));
        (
            f["step"].as_str().unwrap().to_string(),
            f["output"].as_str().unwrap().to_string(),
        )
    };
    // Journaled once per host, each with the host's own BMC as a single argument.
    let issued: Vec<(String, Vec<String>)> = journal(&lab.state)
        .iter()
        .filter(|r| r["event"]["type"] == "recover_issued")
        .map(|r| {
            (
                r["event"]["host"].as_str().unwrap().to_string(),
                serde_json::from_value(r["event"]["command"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(issued.len(), 2, "{issued:?}");
    for (h, argv) in &issued {
        assert!(h == fixed || h == dead, "{h}");
        assert_eq!(argv[2], lab.host_dir(h).display().to_string());
        assert_eq!(argv[3..], ["chassis", "power", "cycle"]);
    }
    // The BMC's own record: one power cycle each, none for anyone else.
    let cycles = |h: &str| {
        std::fs::read_to_string(lab.host_dir(h).join("power-cycles"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    for h in lab.names() {
        let want = usize::from(&h == fixed || &h == dead);
        assert_eq!(cycles(&h), want, "{h}");
    }
    let (step, why) = failed(fixed);
    assert_eq!(step, "verify", "{why}");
    assert!(
        why.starts_with(&format!("boot fell back to `{OLD}`")),
        "{why}"
    );
    assert_eq!(lab.kernel(fixed), OLD);
    let (step, why) = failed(dead);
    assert_eq!(step, "wait_up", "{why}");
    assert!(
        why.contains("nor within 10 s of out-of-band recovery at ")
            && why.contains("exited 0: Chassis Power Control: Cycle"),
        "{why}"
    );
    // One reboot issued to each; the rest are on the new kernel.
    for h in lab.names() {
        assert_eq!(lab.reboots(&h), 1, "{h}");
        if &h != fixed && &h != dead {
            assert_eq!(lab.kernel(&h), TARGET, "{h}");
        }
    }
    // `explain` tells it.
    let text = stdout(&lab.fleetward(&[
        "explain".into(),
        "--state-dir".into(),
        lab.state.display().to_string(),
    ]));
    assert!(text.contains("did not come back from its reboot"), "{text}");
}
