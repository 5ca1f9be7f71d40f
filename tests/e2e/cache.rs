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
    assert_eq!(v["nodes"][0]["rounds"][0]["send"][0]["command"][0], "SCAN");
    assert_eq!(v["nodes"][0]["done"], false);
    assert!(
        v["nodes"][0]["stops"]
            .as_str()
            .unwrap()
            .contains("live replies"),
        "{v}"
    );
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
    // A dangerous command without --confirm is refused before anything connects.
    let o = run(&[
        "cache",
        "run",
        "evict-pattern",
        "--inventory",
        &inv,
        "--param",
        "pattern=x:*",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("run it with --confirm"),
        "{}",
        stderr(&o)
    );
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

use crate::redisd::RedisFleet;
use serde_json::Value;

fn live(args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["cache", "run"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let o = run(&a);
    let v = serde_json::from_str(stdout(&o).trim()).unwrap_or(Value::Null);
    (code(&o), v, stderr(&o))
}

fn rows(v: &Value) -> Vec<&Value> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["rows"].as_array().unwrap().iter())
        .collect()
}

fn commandstat(f: &RedisFleet, port: u16, cmd: &str) -> u64 {
    let info = f.cli(port, &["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_default_command_runs_against_real_redis() {
    let f = RedisFleet::start(3, 100_000);
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let audit = f.dir.path().join("audit.jsonl");
    let audit_s = audit.to_str().unwrap();
    let base = ["--inventory", inv, "--audit-log", audit_s];
    let go = |name: &str, extra: &[&str]| {
        let mut a = vec![name];
        a.extend_from_slice(&base);
        a.extend_from_slice(extra);
        let (c, v, e) = live(&a);
        assert_eq!(c, 0, "{name}: {v}\n{e}");
        assert_eq!(v["failed"], 0, "{name}: {v}");
        v
    };

    let v = go("info-summary", &[]);
    let r = rows(&v);
    assert_eq!(r.len(), 3);
    assert!(
        r.iter()
            .all(|x| x["used_memory"].as_i64().unwrap() > 1_000_000),
        "{v}"
    );

    let v = go("slowlog", &["--param", "count=5"]);
    assert!(
        !rows(&v).is_empty(),
        "slowlog-log-slower-than is 0 on these nodes: {v}"
    );

    let _ = f.cli(
        f.ports[0],
        &["CONFIG", "SET", "latency-monitor-threshold", "1"],
    );
    let _ = f.cli(f.ports[0], &["DEBUG", "SLEEP", "0.01"]);
    let v = go("latency", &[]);
    assert!(rows(&v).iter().any(|x| x["event"] == "command"), "{v}");

    // The big keys are found on every node, largest first, with at most `limit` keys seen.
    let v = go("big-keys", &["--param", "top=3", "--param", "count=1000"]);
    for n in v["nodes"].as_array().unwrap() {
        let keys: Vec<&str> = n["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["big:0", "big:1", "big:2"], "{n}");
        assert!(
            n["commands"].as_u64().unwrap() > 100_000,
            "every key's MEMORY USAGE: {n}"
        );
    }

    let v = go(
        "hot-keys",
        &[
            "--param",
            "pattern=user:*",
            "--param",
            "top=5",
            "--param",
            "limit=2000",
        ],
    );
    assert_eq!(rows(&v).len(), 15, "{v}");

    let v = go(
        "key-ttl",
        &[
            "--param",
            "pattern=ttl:*",
            "--param",
            "top=4",
            "--param",
            "limit=5000",
        ],
    );
    let r = rows(&v);
    assert_eq!(r.len(), 12);
    assert!(
        r.iter().all(|x| x["ttl_ms"].as_i64().unwrap() > 3_000_000),
        "{v}"
    );

    let v = go("config-get", &["--param", "name=maxmemory-policy"]);
    assert!(rows(&v).iter().all(|x| x["value"] == "allkeys-lfu"), "{v}");

    let v = go(
        "config-set",
        &[
            "--target",
            "name=c1",
            "--param",
            "name=maxmemory-policy",
            "--param",
            "value=allkeys-lru",
        ],
    );
    assert_eq!(rows(&v)[0]["old"], "allkeys-lfu");
    assert_eq!(
        f.cli(f.ports[1], &["CONFIG", "GET", "maxmemory-policy"])
            .lines()
            .nth(1),
        Some("allkeys-lru")
    );
    assert!(f
        .cli(f.ports[0], &["CONFIG", "GET", "maxmemory-policy"])
        .contains("allkeys-lfu"));

    // Without an LFU policy, hot-keys ranks by idle time instead.
    let v = go(
        "hot-keys",
        &[
            "--target",
            "name=c1",
            "--param",
            "pattern=user:*",
            "--param",
            "top=3",
            "--param",
            "limit=500",
        ],
    );
    assert!(
        rows(&v)
            .iter()
            .all(|x| x["idle_secs"].is_i64() && x.get("freq").is_none()),
        "{v}"
    );

    let v = go("client-list", &[]);
    assert!(!rows(&v).is_empty(), "{v}");

    // Dangerous: refused without --confirm (nothing sent), then run.
    let before = commandstat(&f, f.ports[2], "unlink");
    let (c, v, _) = live(&[
        "evict-pattern",
        "--inventory",
        inv,
        "--audit-log",
        audit_s,
        "--target",
        "name=c2",
        "--param",
        "pattern=tags:*",
    ]);
    assert_eq!(c, 1);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("run it with --confirm"),
        "{v}"
    );
    assert_eq!(commandstat(&f, f.ports[2], "unlink"), before);
    let v = go(
        "evict-pattern",
        &[
            "--target",
            "name=c2",
            "--param",
            "pattern=tags:*",
            "--confirm",
        ],
    );
    assert_eq!(rows(&v)[0]["unlinked"], 10_000, "{v}");
    assert_eq!(f.cli(f.ports[2], &["EXISTS", "tags:0000008"]).trim(), "0");
    assert_eq!(f.cli(f.ports[1], &["EXISTS", "tags:0000008"]).trim(), "1");

    // The audit log has the write and the dangerous command: who, what, where, when, result.
    let all: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<String> = all
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["event"].as_str().unwrap(),
                l["command"].as_str().unwrap_or("")
            )
        })
        .collect();
    // The start of each run, the setting change before it was sent (and its outcome), the end.
    assert_eq!(
        events,
        [
            "start config-set",
            "set config-set",
            "set_result ",
            "result config-set",
            "start evict-pattern",
            "result evict-pattern"
        ]
    );
    assert_eq!(all[1]["old"], "allkeys-lfu");
    assert_eq!(all[1]["value"], "allkeys-lru");
    assert_eq!(all[2]["result"]["outcome"], "applied");
    let lines: Vec<&Value> = all.iter().filter(|l| l["event"] == "result").collect();
    assert!(lines[1]["user"].as_str().is_some() && lines[1]["at"].as_str().is_some());
    assert_eq!(lines[1]["nodes"][0]["node"]["name"], "c2");
    assert_eq!(lines[1]["nodes"][0]["ok"], true);
    assert_eq!(lines[1]["confirmed"], true);
}

#[test]
fn dry_runs_and_refusals_send_nothing() {
    let f = RedisFleet::start(3, 1_000);
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let scans = |f: &RedisFleet| {
        f.ports
            .iter()
            .map(|p| commandstat(f, *p, "scan"))
            .sum::<u64>()
    };
    let before = scans(&f);
    let o = run(&["cache", "run", "big-keys", "--inventory", inv, "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(scans(&f), before, "a dry run sends nothing");
    // A command built at run time is refused on the node before it is sent.
    let dir = policy_dir(&[(
        "cache.rhai",
        br#"
fn commands() {
    #{
        "sneaky": #{ description: "d", safety: "read", target: "workload=cache", run: "sneaky" },
        "greedy": #{ description: "d", safety: "read", target: "workload=cache", run: "greedy",
                     guards: #{ keys_per_node: 100, pace_ms: 0 } },
    }
}
fn sneaky(p, r) { if r.n == 0 { #{ send: [["DBSIZE"]] } } else { #{ send: [["KEY" + "S", "*"]] } } }
// Ignores the cursor and scans on and on: the runner's keys-per-node guard stops it.
fn greedy(p, r) { #{ send: [["SCAN", "0", "COUNT", "50"]] } }
"#,
    )]);
    let keys = f
        .ports
        .iter()
        .map(|p| commandstat(&f, *p, "keys"))
        .sum::<u64>();
    let (c, v, _) = live(&[
        "sneaky",
        "--policy-dir",
        dir.path().to_str().unwrap(),
        "--inventory",
        inv,
    ]);
    assert_eq!(c, 2, "{v}");
    for n in v["nodes"].as_array().unwrap() {
        assert!(
            n["error"]
                .as_str()
                .unwrap()
                .starts_with("refused: `KEYS` walks the whole keyspace"),
            "{n}"
        );
    }
    assert_eq!(
        f.ports
            .iter()
            .map(|p| commandstat(&f, *p, "keys"))
            .sum::<u64>(),
        keys
    );
    assert_eq!(
        f.ports
            .iter()
            .map(|p| commandstat(&f, *p, "dbsize"))
            .sum::<u64>(),
        3
    );
    // A script that would examine keys without end is stopped by the keys-per-node guard.
    let (c, v, _) = live(&[
        "greedy",
        "--policy-dir",
        dir.path().to_str().unwrap(),
        "--inventory",
        inv,
        "--target",
        "name=c0",
    ]);
    assert_eq!(c, 2, "{v}");
    let n = &v["nodes"][0];
    assert!(
        n["error"]
            .as_str()
            .unwrap()
            .contains("more than 100 keys examined"),
        "{n}"
    );
    assert!(n["commands"].as_u64().unwrap() <= 4, "{n}");
}

#[test]
fn a_node_that_is_down_or_hangs_fails_alone() {
    let f = RedisFleet::start(2, 1_000);
    // One address where nothing listens, one that accepts and never answers.
    let down = crate::redisd::free_port();
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let inv = f.inventory(&format!(
        "  {{ name = \"down\", address = \"127.0.0.1\", hardware = \"r650\", workload = \"cache\", datacenter = \"lo\", rack = \"r8\", kernel = \"6.8.0-40-generic\", port = {down}, redis_port = {down} }},\n  {{ name = \"hang\", address = \"127.0.0.1\", hardware = \"r650\", workload = \"cache\", datacenter = \"lo\", rack = \"r9\", kernel = \"6.8.0-40-generic\", port = {hang_port}, redis_port = {hang_port} }},\n"
    ));
    let (c, v, e) = live(&[
        "info-summary",
        "--inventory",
        inv.to_str().unwrap(),
        "--command-timeout-ms",
        "500",
        "--connect-timeout-ms",
        "500",
    ]);
    assert_eq!(c, 2, "{v}\n{e}");
    assert_eq!(v["failed"], 2);
    let by: std::collections::BTreeMap<&str, &Value> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"]["name"].as_str().unwrap(), n))
        .collect();
    assert!(by["c0"]["error"].is_null() && by["c1"]["error"].is_null());
    assert!(
        by["down"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach `down`"),
        "{}",
        by["down"]
    );
    let hung = by["hang"]["error"].as_str().unwrap();
    assert!(
        hung.contains("`hang`") && (hung.contains("did not answer") || hung.contains("timed out")),
        "{hung}"
    );
    drop(hang);
}

#[test]
fn config_set_reverts_after_its_duration_on_ctrl_c_and_after_a_kill() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let f = RedisFleet::start(1, 100);
    let inv = f.inventory("");
    let state = f.dir.path().join("state");
    let policy = |f: &RedisFleet| {
        f.cli(f.ports[0], &["CONFIG", "GET", "maxmemory-policy"])
            .lines()
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    let args = |secs: &str| -> Vec<String> {
        [
            "cache",
            "run",
            "config-set",
            "--inventory",
            inv.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--param",
            "name=maxmemory-policy",
            "--param",
            "value=noeviction",
            "--param",
            &format!("revert_secs={secs}"),
            "-o",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let wait_for = |f: &RedisFleet, want: &str| {
        let t = Instant::now();
        while policy(f) != want {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "never became `{want}`"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // After the duration.
    let a = args("2");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let t = Instant::now();
    let o = run(&a);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert_eq!(policy(&f), "allkeys-lfu");
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(
        v["reverts"][0]
            .as_str()
            .unwrap()
            .starts_with("reverted `maxmemory-policy` on `c0`"),
        "{v}"
    );

    // Ctrl-C reverts at once.
    let mut child = Command::new(crate::support::bin())
        .args(args("600"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&f, "noeviction");
    std::thread::sleep(Duration::from_millis(300));
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(policy(&f), "allkeys-lfu");

    // Killed outright: the next run reports the pending revert, and `cache revert` makes it.
    let mut child = Command::new(crate::support::bin())
        .args(args("600"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&f, "noeviction");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(policy(&f), "noeviction");
    let o = run(&[
        "cache",
        "run",
        "info-summary",
        "--inventory",
        inv.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("pending revert: `maxmemory-policy` on `c0` back to `allkeys-lfu`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["cache", "revert", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(policy(&f), "allkeys-lfu");
    let o = run(&[
        "cache",
        "run",
        "info-summary",
        "--inventory",
        inv.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(!stderr(&o).contains("pending revert"), "{}", stderr(&o));
}

#[test]
fn a_broken_catalogue_is_refused_at_load_with_its_place() {
    let dir = policy_dir(&[(
        "cache.rhai",
        b"fn commands() {\n    #{ \"x\": #{ description: \"d\", safety: \"sometimes\", run: \"x\" } }\n}\nfn x(p, r) { #{ done: true } }\n",
    )]);
    let o = run(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(e.contains("cache.rhai:1:"), "{e}");
    assert!(
        e.contains("command `x`") && e.contains("variant `sometimes`"),
        "{e}"
    );
    // `run` must name a function the file defines.
    let dir = policy_dir(&[(
        "cache.rhai",
        b"fn commands() {\n    #{ \"x\": #{ description: \"d\", safety: \"read\", run: \"missing\" } }\n}\n",
    )]);
    let o = run(&[
        "cache",
        "list",
        "--policy-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("`run` names `missing`, which cache.rhai does not define"),
        "{}",
        stderr(&o)
    );
}
