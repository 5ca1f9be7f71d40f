//! `fleetward simulate`: the example scenarios end as they say they will, with golden output
//! (regenerate with `UPDATE_EXPECT=1`), and bad scenarios get clear errors.

use crate::support::{code, root, run, stderr, stdout};
use expect_test::expect_file;
use serde_json::Value;

/// The human output without the wall-clock line, the one thing that differs between runs.
fn stable(out: &str) -> String {
    out.lines()
        .filter(|l| !l.trim_start().starts_with("wall time"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every line of `simulate -o json`, each of which must be JSON.
fn json_lines(o: &std::process::Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_regression_scenario_pauses_at_wave_2() {
    let o = run(&["simulate", "policy-examples/scenarios/io-regression"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    expect_file!["../golden/simulate/io-regression.txt"].assert_eq(&stable(&stdout(&o)));

    let o = run(&[
        "simulate",
        "policy-examples/scenarios/io-regression",
        "-o",
        "json",
    ]);
    let lines = json_lines(&o);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["phase"], "paused");
    assert_eq!(summary["stage"], "wave 2");
    assert_eq!(summary["expectation_met"], true);
    assert!(summary["violations"].as_array().unwrap().is_empty());
    let kinds: Vec<&str> = summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["canary_approved", "gate_paused"]);
    let alert = &summary["alerts"][1];
    assert!(alert["reasons"][0]
        .as_str()
        .unwrap()
        .contains("r750/db: io_latency_p99_ms"));
    // Hours of virtual time in well under a minute of wall time.
    assert!(summary["virtual_secs"].as_f64().unwrap() > 4.0 * 3600.0);
    // Every event was streamed before the summary.
    let events = lines.iter().filter(|l| l["type"] == "event").count();
    assert_eq!(events as u64, summary["events"].as_u64().unwrap());
}

/// A kernel panic on a canary during its bake: the gate fails, the shipped `on_fail` rolls
/// back every updated host, and each runs the kernel it ran before.
#[test]
fn the_panic_scenario_rolls_every_updated_host_back() {
    let o = run(&["simulate", "policy-examples/scenarios/panic-rollback"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    expect_file!["../golden/simulate/panic-rollback.txt"].assert_eq(&stable(&stdout(&o)));
    let o = run(&[
        "simulate",
        "policy-examples/scenarios/panic-rollback",
        "-o",
        "json",
    ]);
    let lines = json_lines(&o);
    let summary = lines.last().unwrap();
    assert_eq!(summary["phase"], "rolled_back", "{summary}");
    assert_eq!(summary["expectation_met"], true);
    assert!(
        summary["violations"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    // Every host the rollout updated went back: the canaries, and nothing after them.
    let canaries = lines
        .iter()
        .find(|l| l["event"]["type"] == "started")
        .map(|l| l["event"]["stages"][0]["hosts"].as_array().unwrap().len())
        .unwrap();
    assert_eq!(summary["rolled_back"].as_u64().unwrap() as usize, canaries);
    let decided = lines
        .iter()
        .find(|l| l["event"]["type"] == "on_fail_decided")
        .unwrap();
    assert_eq!(decided["event"]["verdict"], "fail");
    assert_eq!(decided["event"]["decision"], "rollback_all");
    assert!(decided["event"]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("kernel panic"));
    let kinds: Vec<&str> = summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["gate_failed", "rollback_started", "rolled_back"]);
}

/// A disk slowdown only the benchmark set sees: the canary gate pauses on the paired
/// benchmark of the hardware class, not on traffic.
#[test]
fn the_disk_benchmark_scenario_pauses_the_canaries_on_the_benchmark() {
    let o = run(&[
        "simulate",
        "policy-examples/scenarios/disk-bench-regression",
        "-o",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let summary: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(summary["phase"], "paused");
    assert_eq!(summary["stage"], "canary");
    assert_eq!(summary["expectation_met"], true);
    let alerts = summary["alerts"].as_array().unwrap();
    let paused = alerts.iter().find(|a| a["kind"] == "gate_paused").unwrap();
    let reasons: Vec<&str> = paused["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|r| !r.starts_with("note: "))
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("r750/*: bench_disk_write_mbps -")
            && reasons[0].contains("each against itself before the update"),
        "{reasons:?}"
    );
}

#[test]
fn the_clean_scenario_completes_with_its_two_bad_hosts_quarantined() {
    let o = run(&["simulate", "policy-examples/scenarios/clean", "-o", "json"]);
    // The scenario expects it: exit 0.
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let summary: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    // Two unacknowledged failures are never a plain `completed`.
    assert_eq!(summary["phase"], "completed_with_failures");
    assert_eq!(summary["failed"], 2);
    assert_eq!(
        summary["updated"].as_u64().unwrap() + 2,
        summary["hosts"].as_u64().unwrap()
    );
    assert!(summary["violations"].as_array().unwrap().is_empty());
}

#[test]
fn bad_scenarios_are_refused_with_the_place_of_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |body: &str| std::fs::write(dir.path().join("scenario.toml"), body).unwrap();
    let head = format!(
        "inventory = \"{}\"\npolicies = \"{}\"\nbaseline = \"{}\"\nstart = \"2026-12-07T14:00:00Z\"\n",
        root().join("policy-examples/fleet/fleet.toml").display(),
        root().join("policies").display(),
        root().join("policy-examples/gates/baseline.parquet").display()
    );
    let d = dir.path().to_str().unwrap();

    write(&format!("{head}[faults]\nnever_up = [\"no-such-host\"]\n"));
    let o = run(&["simulate", d]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("host `no-such-host` is not in the inventory"),
        "{}",
        stderr(&o)
    );

    write(&format!(
        "{head}[[regression]]\ngroup = \"r750/db\"\nmetric = \"io\"\nfactor = \"big\"\n"
    ));
    let o = run(&["simulate", d]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("scenario.toml:8:"), "{}", stderr(&o));

    write(&format!("{head}host_drift_pct = 300.0\n"));
    let o = run(&["simulate", d]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("host_drift_pct must be a percentage from 0 to 100, not `300`"),
        "{}",
        stderr(&o)
    );

    write(&format!("{head}surprise = 1\n"));
    let o = run(&["simulate", d]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("scenario.toml:5:1"), "{}", stderr(&o));

    // An expectation the outcome does not meet is a failure (exit 3).
    write(&format!(
        "{head}[expect]\nphase = \"paused\"\nstage = \"canary\"\n"
    ));
    let o = run(&["simulate", d]);
    assert_eq!(code(&o), 3, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("NOT as the scenario expects"),
        "{}",
        stdout(&o)
    );
}

/// Finding: with the shipped two canaries per group, no group was judged on its own, and a
/// +30% CPU regression confined to one group passed the canary gate (diluted in the pooled
/// levels) while the alert said every group passed. Through `simulate` and the shipped
/// policies, the canary gate now pauses and names the group: a small one (three hosts, two
/// canaries, one control) and a large one.
#[test]
fn finding_a_single_group_regressed_from_the_canaries_pauses_the_canary_gate_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    for group in ["sm-x12/db", "r640/cache"] {
        let sc = dir.path().join(group.replace('/', "-"));
        std::fs::create_dir_all(&sc).unwrap();
        let ex = root.join("policy-examples");
        std::fs::write(
            sc.join("scenario.toml"),
            format!(
                r#"description = "cpu +30% on {group} from the canaries"
inventory = "{}"
policies = "{}"
baseline = "{}"
start = "2026-12-07T14:00:00Z"

[[regression]]
group = "{group}"
from_stage = 0
metric = "cpu_util_pct"
factor = 1.3

[expect]
phase = "paused"
stage = "canary"
"#,
                ex.join("fleet/fleet.toml").display(),
                root.join("policies").display(),
                ex.join("gates/baseline.parquet").display(),
            ),
        )
        .unwrap();
        let o = run(&["simulate", sc.to_str().unwrap(), "-o", "json"]);
        assert_eq!(code(&o), 0, "{group}: {}\n{}", stdout(&o), stderr(&o));
        let summary: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
        assert_eq!(summary["expectation_met"], true, "{group}: {summary}");
        let paused = summary["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "gate_paused")
            .unwrap_or_else(|| panic!("{group}: no pause: {summary}"));
        let named = paused["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .any(|r| r.starts_with(&format!("{group}: cpu_util_pct +")));
        assert!(named, "{group}: {paused}");
        assert!(
            !summary["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["kind"] == "canary_approved"),
            "{group}: {summary}"
        );
    }
}

/// A kernel panic in wave 2, with the canaries and wave 1 already through: the wave-2 gate
/// fails, the shipped `on_fail` rolls back every host on the new kernel (the canaries, wave 1
/// and wave 2), later stages never start, and every host of the rollback is on its old kernel.
#[test]
fn a_panic_in_wave_2_rolls_back_every_updated_host() {
    // The plan's wave-2 hosts, from the panic scenario's `started` event (same fleet, policy,
    // baseline and start, so the same plan).
    let o = run(&[
        "simulate",
        "policy-examples/scenarios/panic-rollback",
        "-o",
        "json",
    ]);
    let started: Value = json_lines(&o)
        .into_iter()
        .find(|l| l["event"]["type"] == "started")
        .unwrap();
    let stages = started["event"]["stages"].as_array().unwrap();
    let upto = stages.iter().position(|s| s["name"] == "wave 2").unwrap();
    let victim = stages[upto]["hosts"][0].as_str().unwrap().to_string();
    let updated: usize = stages[..=upto]
        .iter()
        .map(|s| s["hosts"].as_array().unwrap().len())
        .sum();

    let dir = tempfile::tempdir().unwrap();
    let ex = root().join("policy-examples");
    std::fs::write(
        dir.path().join("scenario.toml"),
        format!(
            r#"description = "a kernel panic in wave 2"
inventory = "{}"
policies = "{}"
baseline = "{}"
start = "2026-12-07T14:00:00Z"

[[kernel_panic]]
host = "{victim}"
after_secs = 1200

[expect]
phase = "rolled_back"
stage = "wave 2"
"#,
            ex.join("fleet/fleet.toml").display(),
            root().join("policies").display(),
            ex.join("gates/baseline.parquet").display(),
        ),
    )
    .unwrap();
    let o = run(&["simulate", dir.path().to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let lines = json_lines(&o);
    let summary = lines.last().unwrap();
    assert_eq!(summary["expectation_met"], true, "{summary}");
    assert!(
        summary["violations"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    let decided = lines
        .iter()
        .find(|l| l["event"]["type"] == "on_fail_decided")
        .unwrap();
    assert_eq!(decided["event"]["stage"], upto);
    assert_eq!(decided["event"]["decision"], "rollback_all");
    // Every host of the canaries, wave 1 and wave 2 went back; none of a later stage started.
    assert_eq!(
        summary["rolled_back"].as_u64().unwrap() as usize,
        updated,
        "{summary}"
    );
    assert!(!lines.iter().any(|l| l["event"]["type"] == "stage_started"
        && l["event"]["stage"].as_u64().unwrap() as usize > upto));
}
