//! `fleetward cache list` and `cache run --dry-run`: the catalogue, parameter checking, node
//! selection and the guard, with golden output (regenerate with `UPDATE_EXPECT=1`). Nothing
//! here connects to Redis.

use crate::support::{code, policy_dir, run, stderr, stdout};
use expect_test::expect_file;

const INVENTORY: &str = r#"hosts = [
  { name = "c1", address = "10.0.0.1", hardware = "r650", workload = "cache", datacenter = "dc1", rack = "r1", kernel = "6.8.0-40-generic", redis_port = 7001 },
  { name = "c2", address = "10.0.0.2", hardware = "r650", workload = "cache", datacenter = "dc1", rack = "r2", kernel = "6.8.0-40-generic" },
  { name = "w1", address = "10.0.0.3", hardware = "r650", workload = "web", datacenter = "dc1", rack = "r1", kernel = "6.8.0-40-generic" },
]
"#;

fn inventory() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("inv.toml");
    std::fs::write(&p, INVENTORY).unwrap();
    let s = p.display().to_string();
    (d, s)
}

#[test]
fn the_catalogue_lists_every_default_command() {
    let o = run(&["cache", "list"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    expect_file!["../golden/cache/list.txt"].assert_eq(&stdout(&o));
    for name in [
        "info-summary",
        "slowlog",
        "latency",
        "big-keys",
        "hot-keys",
        "key-ttl",
        "config-get",
        "config-set",
        "client-list",
        "evict-pattern",
    ] {
        assert!(stdout(&o).contains(name), "{name}");
    }
}

#[test]
fn a_dry_run_shows_each_nodes_commands() {
    let (_d, inv) = inventory();
    let o = run(&[
        "cache",
        "run",
        "big-keys",
        "--inventory",
        &inv,
        "--param",
        "pattern=user:*",
        "--param",
        "count=500",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    expect_file!["../golden/cache/dry-run-big-keys.txt"].assert_eq(&stdout(&o));

    let o = run(&[
        "cache",
        "run",
        "evict-pattern",
        "--inventory",
        &inv,
        "--target",
        "name=c2",
        "--param",
        "pattern=tmp:*",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["needs_confirm"], true);
    assert_eq!(v["nodes"][0]["node"]["port"], 6379);
    assert_eq!(v["nodes"][0]["send"][0]["command"][0], "SCAN");
}

#[test]
fn bad_cache_requests_are_clear_errors() {
    let (_d, inv) = inventory();
    let err = |args: &[&str]| {
        let mut a = vec!["cache", "run"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--inventory", &inv, "--dry-run"]);
        let o = run(&a);
        assert_eq!(code(&o), 1, "{args:?}: {}", stdout(&o));
        stderr(&o)
    };
    assert!(err(&["nope"]).contains("no cache command `nope`; the catalogue has `big-keys`"));
    assert!(err(&["big-keys", "--param", "top=0"])
        .contains("parameter `top`: `0` is below the minimum 1"));
    assert!(err(&["config-get"]).contains("parameter `name` is required (`--param name=...`)"));
    assert!(err(&["config-get", "--param", "name"]).contains("--param `name` is not `k=v`"));
    assert!(err(&["info-summary", "--target", "workload=db"])
        .contains("no inventory host matches the target `workload=db`"));
    // Without --dry-run this build refuses to run.
    let o = run(&["cache", "run", "info-summary", "--inventory", &inv]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("pass --dry-run"), "{}", stderr(&o));
}

#[test]
fn commands_a_script_builds_at_run_time_pass_the_guard() {
    let (_d, inv) = inventory();
    let dir = policy_dir(&[(
        "cache.rhai",
        br#"
fn commands() {
    #{
        "sneaky": #{ description: "looks harmless", safety: "read", target: "workload=cache", run: "sneaky" },
        "wipe": #{ description: "wipes", safety: "dangerous", target: "workload=cache", run: "wipe" },
    }
}
fn sneaky(p, r) { #{ send: [["INFO"], ["KEY" + "S", "*"], ["CONFIG", "SET", "dir", "/tmp"]] } }
fn wipe(p, r) { #{ send: [["FLUSHALL"]] } }
"#,
    )]);
    let d = dir.path().to_str().unwrap();
    let o = run(&[
        "cache",
        "run",
        "sneaky",
        "--policy-dir",
        d,
        "--inventory",
        &inv,
        "--target",
        "name=c1",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    expect_file!["../golden/cache/dry-run-refused.txt"].assert_eq(&stdout(&o));
    // A dangerous entry needs --confirm, and passes with it.
    let o = run(&[
        "cache",
        "run",
        "wipe",
        "--policy-dir",
        d,
        "--inventory",
        &inv,
        "--target",
        "name=c1",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("REFUSED FLUSHALL: `FLUSHALL` deletes every key; this `dangerous` command runs only with --confirm"), "{}", stdout(&o));
    let o = run(&[
        "cache",
        "run",
        "wipe",
        "--policy-dir",
        d,
        "--inventory",
        &inv,
        "--target",
        "name=c1",
        "--dry-run",
        "--confirm",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}
