//! `fleetward plan` through the binary: golden human and JSON plans for the example fleet,
//! the same plan from every inventory format, and clear errors for bad inventories and
//! policies. Regenerate goldens with `UPDATE_EXPECT=1`.

use crate::support::*;
use expect_test::expect_file;

const START: &str = "2026-12-07T14:00:00Z";
const ANSIBLE_FIELDS: [&str; 4] = ["--field", "hardware=hw_class", "--field", "workload=role"];

fn plan_args<'a>(inventory: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "plan",
        "--policy-dir",
        "policies",
        "--inventory",
        inventory,
        "--start",
        START,
    ];
    v.extend_from_slice(extra);
    v
}

/// `fleetward plan` with the policy directory `pol` on `inventory`.
fn plan_with_policy(pol: &str, inventory: &str) -> std::process::Output {
    run(&[
        "plan",
        "--policy-dir",
        pol,
        "--inventory",
        inventory,
        "--start",
        START,
    ])
}

fn json_plan(o: &std::process::Output) -> serde_json::Value {
    assert_eq!(code(o), 0, "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("plan json")
}

#[test]
fn example_fleet_golden_plans() {
    // Sized from the example baseline, so the goldens show each group's canaries and MDEs.
    const BASELINE: [&str; 2] = ["--baseline", "policy-examples/gates/baseline.parquet"];
    let o = run(&plan_args("policy-examples/fleet/fleet.toml", &BASELINE));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    expect_file![root().join("policy-examples/fleet/plan.txt")].assert_eq(&stdout(&o));

    let v = json_plan(&run(&plan_args(
        "policy-examples/fleet/fleet.toml",
        &[BASELINE[0], BASELINE[1], "--output", "json"],
    )));
    let pretty = serde_json::to_string_pretty(&v).expect("pretty") + "\n";
    expect_file![root().join("policy-examples/fleet/plan.json")].assert_eq(&pretty);

    // The JSON lists every planned host once, in a batch, and every other host as excluded.
    let p = &v["plan"];
    let mut planned: Vec<&str> = p["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .flat_map(|s| s["batches"].as_array().expect("batches").iter())
        .flat_map(|b| b["hosts"].as_array().expect("hosts").iter())
        .filter_map(|h| h.as_str())
        .collect();
    let n = planned.len();
    planned.sort_unstable();
    planned.dedup();
    assert_eq!(planned.len(), n, "a host is planned twice");
    let excluded = p["excluded"].as_array().expect("excluded").len();
    assert_eq!(n + excluded, 5200);
    assert_eq!(p["counts"]["eligible"], n);
    assert!(p["uncovered"].as_array().expect("uncovered").is_empty());
}

#[test]
fn every_inventory_format_gives_the_same_plan() {
    let plan_of = |file: &str, fields: &[&str]| {
        let mut extra = vec!["--output", "json", "--seed", "7"];
        extra.extend_from_slice(fields);
        let v = json_plan(&run(&plan_args(file, &extra)));
        v["plan"].clone()
    };
    let native = plan_of("policy-examples/fleet/fleet.toml", &[]);
    assert_eq!(
        native,
        plan_of("policy-examples/fleet/fleet.ini", &ANSIBLE_FIELDS)
    );
    assert_eq!(
        native,
        plan_of("policy-examples/fleet/fleet.yaml", &ANSIBLE_FIELDS)
    );
    // The same seed always gives the same plan; another seed another one.
    assert_eq!(native, plan_of("policy-examples/fleet/fleet.toml", &[]));
    let other = json_plan(&run(&plan_args(
        "policy-examples/fleet/fleet.toml",
        &["--output", "json", "--seed", "8"],
    )));
    assert_ne!(native["stages"], other["plan"]["stages"]);
}

/// A bad inventory: exit 1, every problem at `file:line` on stderr, and as JSON.
fn bad_inventory(name: &str, body: &str, want: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(name);
    std::fs::write(&file, body).expect("write");
    let path = file.to_string_lossy().into_owned();
    let o = run(&plan_args(&path, &[]));
    assert_eq!(code(&o), 1, "{name}: {}", stdout(&o));
    let err = stderr(&o);
    for w in want {
        assert!(
            err.contains(&format!("{path}:{w}")),
            "{name}: `{w}` missing in:\n{err}"
        );
    }
    let o = run(&plan_args(&path, &["--output", "json"]));
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json error");
    assert_eq!(v["ok"], false);
    assert!(!v["inventory"]["problems"]
        .as_array()
        .expect("problems")
        .is_empty());
}

#[test]
fn bad_inventories_are_clear_errors() {
    bad_inventory(
        "dup.csv",
        "name,hardware,workload,datacenter,rack,kernel\na,h,w,d,r1,6.8.0-40-generic\na,h,w,d,r2,6.8.0-40-generic\n",
        &["3: host `a` is declared again (first on line 2)"],
    );
    bad_inventory(
        "missing.toml",
        "[[hosts]]\nname = \"a\"\nhardware = \"h\"\nworkload = \"w\"\ndatacenter = \"d\"\nrack = \"r\"\n",
        &["1: host `a`: missing `kernel`"],
    );
    bad_inventory(
        "hosts",
        "[web]\nweb[01:03] hardware=h workload=w datacenter=d rack=r kernel=6.8.0-40-generic ansible_port=http\n",
        &["2: host `web01`: `port` (from `ansible_port`) is `http`"],
    );
    bad_inventory(
        "broken.yaml",
        "all:\n  hosts:\n    a: [\n",
        &["4: not valid YAML"],
    );
    bad_inventory("empty.json", "{\"hosts\": []}", &[" holds no hosts"]);
    // A missing file is an error too, not a panic.
    let o = run(&plan_args("no/such/inventory.toml", &[]));
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("cannot read inventory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_rollout_policies_are_clear_errors() {
    let inv = "policy-examples/fleet/fleet.toml";
    let cases: &[(&str, &str)] = &[
        (
            "fn windows() { [#{ start: \"02:00\", end: \"04:00\", tz: \"Mars/Olympus\" }] }\n",
            "unknown time zone `Mars/Olympus`",
        ),
        (
            "fn blast_radius() { #{ shelf: #{ in_flight: 1 } } }\n",
            "unknown scope `shelf`",
        ),
        ("fn max_in_flight(w) { 0 }\n", "expected a positive int"),
        ("fn eligible2(h) { true }\n", "no target kernel"),
    ];
    for (extra, want) in cases {
        let rollout = if want.contains("target kernel") {
            format!("{ROLLOUT_OK}{extra}")
        } else {
            format!("{ROLLOUT_OK}fn target_kernel() {{ \"6.8.0-45-generic\" }}\n{extra}")
        };
        let dir = policy_dir(&[("rollout.rhai", rollout.as_bytes())]);
        let pol = dir.path().to_string_lossy().into_owned();
        let o = plan_with_policy(&pol, inv);
        assert_eq!(code(&o), 1, "{want}: {}", stdout(&o));
        assert!(
            stderr(&o).contains(want),
            "`{want}` missing in:\n{}",
            stderr(&o)
        );
    }
    // A canary count that is neither a count nor "auto" is refused before planning.
    for (canary, want) in [
        ("#{ auto: true, floor: 4, cap: 3 }", "floor ≤ cap"),
        ("\"many\"", "returned `\"many\"`"),
    ] {
        let rollout = ROLLOUT_OK.replace(
            "fn canary(group) { 1 }",
            &format!("fn canary(group) {{ {canary} }}"),
        );
        let rollout = format!("{rollout}fn target_kernel() {{ \"6.8.0-45-generic\" }}\n");
        let dir = policy_dir(&[("rollout.rhai", rollout.as_bytes())]);
        let o = plan_with_policy(&dir.path().to_string_lossy(), inv);
        assert_eq!(code(&o), 1, "{want}: {}", stdout(&o));
        assert!(
            stderr(&o).contains(want),
            "`{want}` missing in:\n{}",
            stderr(&o)
        );
    }
    // A policy that throws names its file and line.
    let dir = policy_dir(&[(
        "rollout.rhai",
        format!("{ROLLOUT_OK}fn target_kernel() {{ \"6.8.0-45-generic\" }}\nfn host_time(g) {{\n    throw \"no estimate for \" + g.name;\n}}\n").as_bytes(),
    )]);
    let pol = dir.path().to_string_lossy().into_owned();
    let o = plan_with_policy(&pol, inv);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("rollout.rhai:7"), "{}", stderr(&o));
    // Bad flags.
    for args in [
        vec!["--seed", "x"],
        vec!["--start", "yesterday"],
        vec!["--kernel", "banana"],
        vec!["--field", "shoe=size"],
        vec!["--inventory-format", "xml"],
    ] {
        let o = run(&plan_args(inv, &args));
        assert!(matches!(code(&o), 1 | 2), "{args:?}: {}", code(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
}
