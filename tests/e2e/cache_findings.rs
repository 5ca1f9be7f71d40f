//! Regression tests for the findings of the independent cache test, one per finding, each
//! against real `redis-server` processes: the guard reads arguments as Redis does, every
//! command (reverts included) passes it, reverts survive `kill -9` at every point of a run
//! with a hanging node, scans say how much they covered, and several instances share a host.

use crate::redisd::RedisFleet;
use crate::support::{bin, policy_dir, state_home};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `fleetward ARGS` with `env`: exit code, stdout parsed as JSON (`Null` if it is not),
/// stdout, stderr.
fn fw(args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String, String) {
    let o = Command::new(bin())
        .args(args)
        .current_dir(crate::support::root())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", state_home())
        .envs(env.iter().copied())
        .output()
        .expect("fleetward runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let v = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        out,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn config(f: &RedisFleet, port: u16, name: &str) -> String {
    f.cli(port, &["CONFIG", "GET", name])
        .lines()
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// `INFO commandstats` calls of `cmd` (e.g. `scan`, `config|set`).
fn calls(f: &RedisFleet, port: u16, cmd: &str) -> u64 {
    f.cli(port, &["INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A pid that belonged to a process that has exited.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn signal(sig: &str, pid: u32) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Spawns `fleetward ARGS` with `env` and stderr piped, and waits for a stderr line holding
/// `marker`; returns the child, still running.
fn spawn_until(args: &[&str], env: &[(&str, &str)], marker: &str) -> Child {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(crate::support::root())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", state_home())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(&marker) {
                let _ = tx.send(Ok(()));
            }
        }
        let _ = tx.send(Err(seen));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(())) => child,
        Ok(Err(seen)) => panic!("{args:?} ended before `{}`:\n{seen}", "marker"),
        Err(_) => panic!("{args:?} never printed the marker"),
    }
}

fn kill9(mut c: Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

fn journal(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("cache-reverts.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn audit(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("cache-audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn finding_forged_revert_journal_is_refused_without_confirm() {
    let f = RedisFleet::start(1, 10);
    let p = f.ports[0];
    let state = f.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let dir_before = config(&f, p, "dir");
    f.cli(p, &["CONFIG", "SET", "hz", "20"]);
    let pid = dead_pid();
    let entry = |id: &str, name: &str, old: &str, safety: &str| {
        format!(
            r#"{{"event":"pending","id":"{id}","node":{{"name":"c0","address":"127.0.0.1","port":{p}}},"name":"{name}","old":"{old}","value":"x","due":"2026-01-01T00:00:00Z","pid":{pid},"command":"config-set","safety":"{safety}"}}"#
        )
    };
    // Hand-written entries: a password (which would lock every client out), where the next
    // SAVE writes (claimed `dangerous`, which is not believed), and one legitimate tunable.
    let text = [
        entry("a", "requirepass", "hunter2", "write"),
        entry("b", "dir", "/tmp", "dangerous"),
        entry("c", "hz", "10", "write"),
    ]
    .join("\n")
        + "\n";
    std::fs::write(state.join("cache-reverts.jsonl"), text).unwrap();
    let s = state.to_str().unwrap();
    let (code, v, _, e) = fw(&["cache", "revert", "--state-dir", s, "-o", "json"], &[]);
    assert_eq!(code, 2, "{v}\n{e}");
    let by: std::collections::BTreeMap<&str, &Value> = v["reverted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o))
        .collect();
    assert!(
        by["requirepass"]["error"]
            .as_str()
            .unwrap()
            .contains("refused: `CONFIG SET` changes the protected setting `requirepass`"),
        "{v}"
    );
    assert!(
        by["dir"]["error"]
            .as_str()
            .unwrap()
            .contains("the protected setting `dir`"),
        "{v}"
    );
    assert!(by["hz"]["error"].is_null(), "{v}");
    // Nothing but the tunable reached the node.
    assert_eq!(f.cli(p, &["PING"]).trim(), "PONG", "no password was set");
    assert_eq!(config(&f, p, "requirepass"), "");
    assert_eq!(config(&f, p, "dir"), dir_before);
    assert_eq!(config(&f, p, "hz"), "10");
    // The refused entries stay pending, and are refused again.
    let (code, v, _, _) = fw(&["cache", "revert", "--state-dir", s, "-o", "json"], &[]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["reverted"].as_array().unwrap().len(), 2, "{v}");
}

const CONFIG_SET: [&str; 9] = [
    "cache",
    "run",
    "config-set",
    "--param",
    "name=maxmemory-policy",
    "--param",
    "value=noeviction",
    "--concurrency",
    "8",
];

#[test]
fn finding_killed_run_with_a_hanging_node_leaves_every_change_revertible() {
    let f = RedisFleet::start(3, 10);
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let original = "allkeys-lfu";
    // Node 2 hangs: the kernel accepts its connections and nothing answers.
    signal("-STOP", f.pid(2));
    // Every point of a run where a kill could lose a revert: after reading the old value,
    // after the audit record, before and after the CONFIG SET, while waiting for the revert
    // time, and before and after the revert itself.
    let points = [
        ("cache.before_record", "600", "30000"),
        ("cache.after_audit", "600", "30000"),
        ("cache.before_set", "600", "30000"),
        ("cache.after_set", "600", "30000"),
        ("wait", "600", "1500"),
        ("cache.before_revert", "1", "1500"),
        ("cache.after_revert", "1", "1500"),
    ];
    for (point, secs, timeout) in points {
        let state = f.dir.path().join(format!("state-{point}"));
        let s = state.to_str().unwrap();
        let revert = format!("revert_secs={secs}");
        let mut args = CONFIG_SET.to_vec();
        args.extend_from_slice(&[
            "--inventory",
            inv,
            "--state-dir",
            s,
            "--param",
            &revert,
            "--command-timeout-ms",
            timeout,
            "--connect-timeout-ms",
            timeout,
        ]);
        let (env, marker): (Vec<(&str, &str)>, &str) = if point == "wait" {
            (vec![], "reverting at")
        } else {
            (vec![("FLEETWARD_FAILPOINT", point)], "failpoint ")
        };
        let child = spawn_until(&args, &env, marker);
        // Let the other node reach the point too.
        std::thread::sleep(Duration::from_millis(200));
        kill9(child);
        let changed: Vec<usize> = (0..2)
            .filter(|i| config(&f, f.ports[*i], "maxmemory-policy") != original)
            .collect();
        // Every node that changed has its audit record and a pending revert on disk.
        let pending = journal(&state)
            .iter()
            .filter(|e| e["event"] == "pending")
            .map(|e| e["node"]["port"].as_u64().unwrap())
            .collect::<Vec<_>>();
        let sets = audit(&state)
            .iter()
            .filter(|e| e["event"] == "set")
            .map(|e| e["node"]["port"].as_u64().unwrap())
            .collect::<Vec<_>>();
        for i in &changed {
            let port = u64::from(f.ports[*i]);
            assert!(
                pending.contains(&port),
                "{point}: c{i} changed with no pending revert"
            );
            assert!(
                sets.contains(&port),
                "{point}: c{i} changed with no audit record: {:?}",
                audit(&state)
            );
        }
        let (code, v, out, e) = fw(&["cache", "revert", "--state-dir", s, "-o", "json"], &[]);
        assert_eq!(code, 0, "{point}: {out}\n{e}");
        for i in 0..2 {
            assert_eq!(
                config(&f, f.ports[i], "maxmemory-policy"),
                original,
                "{point}: c{i} after `cache revert`: {v}"
            );
        }
        let (_, _, out, _) = fw(&["cache", "revert", "--state-dir", s], &[]);
        assert_eq!(out.trim(), "no pending reverts", "{point}");
    }
    signal("-CONT", f.pid(2));
    assert_eq!(config(&f, f.ports[2], "maxmemory-policy"), original);
}

#[test]
fn finding_stacked_reverts_restore_the_original() {
    let f = RedisFleet::start(1, 10);
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let p = f.ports[0];
    let state = f.dir.path().join("state");
    let s = state.to_str().unwrap();
    let set = |value: &str, secs: &str| -> Vec<String> {
        [
            "cache",
            "run",
            "config-set",
            "--inventory",
            inv,
            "--state-dir",
            s,
            "--param",
            "name=maxmemory-policy",
            "--param",
            &format!("value={value}"),
            "--param",
            &format!("revert_secs={secs}"),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let args = |v: &[String]| v.to_vec();
    // Two runs killed one after the other: the second one's old value is the first one's new.
    for value in ["noeviction", "allkeys-random"] {
        let a = args(&set(value, "600"));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kill9(spawn_until(&a, &[], "reverting at"));
        assert_eq!(config(&f, p, "maxmemory-policy"), value);
    }
    let olds: Vec<String> = journal(&state)
        .iter()
        .filter(|e| e["event"] == "pending")
        .map(|e| e["old"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        olds,
        ["allkeys-lfu", "allkeys-lfu"],
        "both keep the original"
    );
    let (code, _, out, e) = fw(&["cache", "revert", "--state-dir", s], &[]);
    assert_eq!(code, 0, "{out}\n{e}");
    assert_eq!(config(&f, p, "maxmemory-policy"), "allkeys-lfu", "{out}");

    // Live runs: a short change on top of a long one goes back to the long one's value when
    // it expires; Ctrl-C on the long one then restores the original.
    let long = args(&set("volatile-lru", "600"));
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    let long = spawn_until(&long, &[], "reverting at");
    let short = set("volatile-ttl", "1");
    let short: Vec<&str> = short.iter().map(String::as_str).collect();
    let (code, _, out, e) = fw(&short, &[]);
    assert_eq!(code, 0, "{out}\n{e}");
    assert!(
        out.contains("reverted `maxmemory-policy` on `c0` to `volatile-lru`"),
        "{out}"
    );
    assert_eq!(config(&f, p, "maxmemory-policy"), "volatile-lru");
    signal("-INT", long.id());
    let mut long = long;
    assert_eq!(long.wait().unwrap().code(), Some(0));
    assert_eq!(config(&f, p, "maxmemory-policy"), "allkeys-lfu");
}

/// A catalogue of entries that try what the independent test tried.
const PROBES: &[u8] = br#"
fn commands() {
    #{
        "dup-count": #{ description: "d", safety: "read", target: "workload=cache", run: "dup_count" },
        "dup-samples": #{ description: "d", safety: "read", target: "workload=cache", run: "dup_samples" },
        "ro-keys": #{ description: "d", safety: "read", target: "workload=cache", run: "ro_keys" },
        "ro-loop": #{ description: "d", safety: "dangerous", target: "workload=cache", run: "ro_loop" },
        "whole-hash": #{ description: "d", safety: "read", target: "workload=cache", run: "whole_hash",
                         params: #{ key: #{ type: "string" } } },
        "server-op": #{ description: "d", safety: "write", target: "workload=cache", run: "server_op",
                        params: #{ op: #{ type: "string" } } },
        "forever": #{ description: "d", safety: "read", target: "workload=cache", run: "forever",
                      guards: #{ pace_ms: 0, deadline_secs: 2 } },
        "trimmed": #{ description: "d", safety: "read", target: "workload=cache", run: "trimmed",
                      guards: #{ keys_per_node: 150, pace_ms: 0 } },
    }
}
fn dup_count(p, r) { #{ send: [["SCAN", "0", "COUNT", "10", "COUNT", "100000000"]] } }
fn dup_samples(p, r) { #{ send: [["MEMORY", "USAGE", "big:0", "SAMPLES", "5", "SAMPLES", "0"]] } }
fn ro_keys(p, r) { #{ send: [["EVAL_RO", "return #redis.call('KEYS','*')", "0"]] } }
fn ro_loop(p, r) { #{ send: [["EVAL_RO", "while true do end", "0"]] } }
fn whole_hash(p, r) {
    if r.n == 0 { #{ send: [["HGETALL", p.key]] } } else { #{ done: true, rows: [#{ fields: r.replies[0].len() / 2 }] } }
}
fn server_op(p, r) { if r.n == 0 { #{ send: [p.op.split(" ")] } } else { #{ done: true } } }
fn forever(p, r) { #{ send: [["PING"]] } }
// A walk that follows the cursor; the keys-per-node guard trims the page that crosses it.
fn trimmed(p, r) {
    let seen = if r.n == 0 { 0 } else { r.state.seen + r.replies[0][1].len() };
    if r.n > 0 && r.replies[0][0] == "0" { return #{ done: true, rows: [#{ seen: seen }] }; }
    let cursor = if r.n == 0 { "0" } else { r.replies[0][0] };
    #{ send: [["SCAN", cursor, "COUNT", "100"]], state: #{ seen: seen } }
}
"#;

fn probe(dir: &Path, inv: &str, name: &str, extra: &[&str]) -> (i32, Value) {
    let mut a = vec![
        "cache",
        "run",
        name,
        "--policy-dir",
        dir.to_str().unwrap(),
        "--inventory",
        inv,
        "-o",
        "json",
    ];
    a.extend_from_slice(extra);
    let (code, v, out, e) = fw(&a, &[]);
    assert!(v.is_object(), "{name}: {out}\n{e}");
    (code, v)
}

/// One real node seeded with `keys` keys, its inventory, and the probe catalogue.
fn probe_lab(keys: usize) -> (RedisFleet, String, tempfile::TempDir) {
    let f = RedisFleet::start(1, keys);
    let inv = f.inventory("").to_str().unwrap().to_string();
    (f, inv, policy_dir(&[("cache.rhai", PROBES)]))
}

fn node_error(v: &Value) -> String {
    v["nodes"][0]["error"].as_str().unwrap_or("").to_string()
}

#[test]
fn finding_duplicate_count_and_duplicate_samples() {
    let (f, inv, d) = probe_lab(1000);
    let inv = inv.as_str();
    let p = f.ports[0];
    let (scans, memory) = (calls(&f, p, "scan"), calls(&f, p, "memory|usage"));
    let (code, v) = probe(d.path(), inv, "dup-count", &[]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(
        node_error(&v),
        "refused: `SCAN`: repeats `COUNT`; Redis would use the last one, so the guard refuses the command"
    );
    let (code, v) = probe(d.path(), inv, "dup-samples", &[]);
    assert_eq!(code, 2, "{v}");
    assert!(node_error(&v).contains("repeats `SAMPLES`"), "{v}");
    assert_eq!(calls(&f, p, "scan"), scans, "no SCAN reached the node");
    assert_eq!(calls(&f, p, "memory|usage"), memory);
}

#[test]
fn finding_eval_ro_with_keys_and_eval_ro_looping() {
    let (f, inv, d) = probe_lab(100);
    let inv = inv.as_str();
    let p = f.ports[0];
    let (code, v) = probe(d.path(), inv, "ro-keys", &[]);
    assert_eq!(code, 2, "{v}");
    assert!(
        node_error(&v).starts_with("refused: `EVAL_RO` runs a script"),
        "{v}"
    );
    assert_eq!(calls(&f, p, "eval_ro"), 0);
    assert_eq!(calls(&f, p, "keys"), 0);
    // From a confirmed dangerous entry the loop runs, times out, and is killed: the node
    // answers again without anyone's manual SCRIPT KILL.
    f.cli(p, &["CONFIG", "SET", "busy-reply-threshold", "200"]);
    let t = Instant::now();
    let (code, v) = probe(
        d.path(),
        inv,
        "ro-loop",
        &["--confirm", "--command-timeout-ms", "1000"],
    );
    assert_eq!(code, 2, "{v}");
    assert!(node_error(&v).contains("did not answer"), "{v}");
    assert_eq!(
        v["nodes"][0]["cleanup"], "sent `SCRIPT KILL`: the script was stopped",
        "{v}"
    );
    assert_eq!(f.cli(p, &["PING"]).trim(), "PONG");
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn finding_config_get_of_a_secret_and_credentials_from_the_policy_set() {
    let f = RedisFleet::start(1, 10);
    let p = f.ports[0];
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    // The policy set names the variable that holds the password.
    let d = policy_dir(&[
        (
            "cache.rhai",
            &std::fs::read(crate::support::root().join("policies/cache.rhai")).unwrap(),
        ),
        ("fleetward.toml", b"[cache]\npassword_env = \"CACHE_PW\"\n"),
    ]);
    let dir = d.path().to_str().unwrap();
    f.cli(p, &["CONFIG", "SET", "requirepass", "hunter2"]);
    let env = [("CACHE_PW", "hunter2")];
    let run = |args: &[&str]| {
        let mut a = vec![
            "cache",
            "run",
            "--policy-dir",
            dir,
            "--inventory",
            inv,
            "-o",
            "json",
        ];
        a.splice(2..2, args.iter().copied());
        fw(&a, &env)
    };
    let (code, v, out, e) = run(&["config-get", "--param", "name=requirepass"]);
    assert_eq!(code, 2, "{out}\n{e}");
    assert!(
        node_error(&v).contains("`CONFIG GET` reads the secret `requirepass`"),
        "{v}"
    );
    let (code, v, out, _) = run(&["config-get", "--param", "name=*pass*"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let rows = v["nodes"][0]["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["name"] == "requirepass" && r["value"] == "<redacted>"),
        "{v}"
    );
    // `cache revert` reaches a password-protected node with the policy set's credentials.
    let state = f.dir.path().join("state");
    let s = state.to_str().unwrap();
    let a = [
        "cache",
        "run",
        "config-set",
        "--policy-dir",
        dir,
        "--inventory",
        inv,
        "--state-dir",
        s,
        "--param",
        "name=hz",
        "--param",
        "value=25",
        "--param",
        "revert_secs=600",
    ];
    kill9(spawn_until(&a, &env, "reverting at"));
    let auth = |args: &[&str]| {
        let mut full = vec!["-a", "hunter2", "--no-auth-warning"];
        full.extend_from_slice(args);
        f.cli(p, &full)
    };
    assert_eq!(auth(&["CONFIG", "GET", "hz"]).lines().nth(1), Some("25"));
    let (code, _, out, e) = fw(
        &["cache", "revert", "--policy-dir", dir, "--state-dir", s],
        &env,
    );
    assert_eq!(code, 0, "{out}\n{e}");
    assert_eq!(
        auth(&["CONFIG", "GET", "hz"]).lines().nth(1),
        Some("10"),
        "{out}"
    );
    assert!(!std::fs::read_to_string(state.join("cache-audit.jsonl"))
        .unwrap()
        .contains("hunter2"));
}

#[test]
fn finding_hgetall_of_a_huge_hash() {
    let f = RedisFleet::start(1, 10);
    let p = f.ports[0];
    // 150,000 fields, as the independent test had.
    let mut resp = Vec::new();
    for chunk in 0..150 {
        let mut args = vec!["HSET".to_string(), "huge".to_string()];
        for i in 0..1000 {
            args.push(format!("f{}", chunk * 1000 + i));
            args.push("v".into());
        }
        resp.extend(format!("*{}\r\n", args.len()).into_bytes());
        for a in &args {
            resp.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
        }
    }
    let mut c = Command::new("redis-cli")
        .args(["-p", &p.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), &resp).unwrap();
    assert!(c.wait().unwrap().success());
    f.cli(p, &["HSET", "small", "a", "1", "b", "2"]);
    assert_eq!(f.cli(p, &["HLEN", "huge"]).trim(), "150000");
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let d = policy_dir(&[("cache.rhai", PROBES)]);
    let before = calls(&f, p, "hgetall");
    let (code, v) = probe(d.path(), inv, "whole-hash", &["--param", "key=huge"]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(
        node_error(&v),
        "refused: `HGETALL` of `huge` would return 150000 elements, over this entry's `collection_max` of 10000; use the SCAN form (HSCAN, SSCAN, ZSCAN)"
    );
    assert_eq!(
        calls(&f, p, "hgetall"),
        before,
        "HGETALL never reached the node"
    );
    let (code, v) = probe(d.path(), inv, "whole-hash", &["--param", "key=small"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["nodes"][0]["rows"][0]["fields"], 2);
}

#[test]
fn finding_module_load_config_rewrite_bgsave_failover_and_maxmemory_1_from_a_write_entry() {
    let f = RedisFleet::start(1, 100);
    let p = f.ports[0];
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let d = policy_dir(&[("cache.rhai", PROBES)]);
    let server = ["module|load", "config|rewrite", "bgsave", "failover"];
    let before: Vec<u64> = server.iter().map(|c| calls(&f, p, c)).collect();
    for (op, why) in [
        ("MODULE LOAD /tmp/none.so", "loads code into the server"),
        ("CONFIG REWRITE", "rewrites the server's configuration file"),
        ("BGSAVE", "forks the server to write a snapshot"),
        ("FAILOVER", "hands the primary role to a replica"),
    ] {
        let (code, v) = probe(
            d.path(),
            inv,
            "server-op",
            &["--param", &format!("op={op}")],
        );
        assert_eq!(code, 2, "{op}: {v}");
        assert!(node_error(&v).contains(why), "{op}: {v}");
    }
    let after: Vec<u64> = server.iter().map(|c| calls(&f, p, c)).collect();
    assert_eq!(before, after, "none of {server:?} reached the node");
    // The shipped config-set: maxmemory 1 is below the node's used memory (every write would
    // fail); the node's own maxmemory is untouched. A sane value goes through.
    let set = |value: &str| {
        let (code, v, out, e) = fw(
            &[
                "cache",
                "run",
                "config-set",
                "--inventory",
                inv,
                "--param",
                "name=maxmemory",
                "--param",
                &format!("value={value}"),
                "-o",
                "json",
            ],
            &[],
        );
        assert!(v.is_object(), "{out}\n{e}");
        (code, v)
    };
    let (code, v) = set("1");
    assert_eq!(code, 2, "{v}");
    assert!(
        node_error(&v).contains("would set `maxmemory` to 1 bytes, below the node's used memory"),
        "{v}"
    );
    assert_eq!(config(&f, p, "maxmemory"), "0");
    let (code, v) = set("2gb");
    assert_eq!(code, 0, "{v}");
    assert_eq!(config(&f, p, "maxmemory"), "2147483648");
}

#[test]
fn finding_a_script_that_never_finishes_meets_the_deadline() {
    let (_f, inv, d) = probe_lab(10);
    let inv = inv.as_str();
    let t = Instant::now();
    let (code, v) = probe(d.path(), inv, "forever", &[]);
    assert_eq!(code, 2, "{v}");
    assert!(
        node_error(&v).starts_with("stopped: the deadline of 2 s passed after"),
        "{v}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // The deadline can be set per run.
    let (code, v) = probe(d.path(), inv, "forever", &["--deadline-secs", "1"]);
    assert_eq!(code, 2, "{v}");
    assert!(node_error(&v).contains("the deadline of 1 s"), "{v}");
}

#[test]
fn finding_scans_say_how_much_of_the_keyspace_they_covered() {
    let f = RedisFleet::start(1, 1000);
    let inv = f.inventory("");
    let inv = inv.to_str().unwrap();
    let total = f
        .cli(f.ports[0], &["DBSIZE"])
        .trim()
        .parse::<u64>()
        .unwrap();
    // The defaults cover the whole keyspace and say so.
    let (code, v, out, e) = fw(
        &["cache", "run", "big-keys", "--inventory", inv, "-o", "json"],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{e}");
    let c = &v["nodes"][0]["coverage"];
    assert_eq!(c["examined"], total, "{c}");
    assert_eq!(c["total"], total);
    assert_eq!(c["complete"], true);
    // A limit: the output says how much, in JSON and for people.
    let (code, v, _, _) = fw(
        &[
            "cache",
            "run",
            "big-keys",
            "--inventory",
            inv,
            "--param",
            "limit=100",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let c = &v["nodes"][0]["coverage"];
    assert_eq!(
        (c["examined"].as_u64(), c["complete"].as_bool()),
        (Some(100), Some(false)),
        "{c}"
    );
    assert_eq!(c["stopped_by"], "the command's own limit");
    let (_, _, out, _) = fw(
        &[
            "cache",
            "run",
            "big-keys",
            "--inventory",
            inv,
            "--param",
            "limit=100",
        ],
        &[],
    );
    // 1,000 seeded keys, 3 big ones and a sorted set.
    assert_eq!(total, 1004);
    assert!(
        out.contains(
            "c0: examined 100 of 1,004 keys (10%); stopped before the end of the keyspace (the command's own limit)"
        ),
        "{out}"
    );
    // The keys-per-node guard trims the page that crosses it, and the node still answers.
    let d = policy_dir(&[("cache.rhai", PROBES)]);
    let (code, v) = probe(d.path(), inv, "trimmed", &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["nodes"][0]["rows"][0]["seen"], 150, "{v}");
    let c = &v["nodes"][0]["coverage"];
    assert_eq!(c["examined"], 150);
    assert_eq!(c["complete"], false);
    assert_eq!(c["stopped_by"], "the `keys_per_node` guard of 150");
}

#[test]
fn finding_two_instances_on_one_host() {
    let f = RedisFleet::start(3, 10);
    let (a, b, c) = (f.ports[0], f.ports[1], f.ports[2]);
    let host = |name: &str, rest: &str| {
        format!("  {{ name = \"{name}\", address = \"127.0.0.1\", hardware = \"r650\", workload = \"cache\", datacenter = \"lo\", rack = \"r1\", kernel = \"6.8.0-40-generic\", {rest} }},\n")
    };
    let write = |name: &str, hosts: &str| {
        let p = f.dir.path().join(name);
        std::fs::write(&p, format!("hosts = [\n{hosts}]\n")).unwrap();
        p.to_str().unwrap().to_string()
    };
    // Two entries for two instances of one machine: accepted, each its own node.
    let two = write(
        "two.toml",
        &(host("cache-a", &format!("redis_port = {a}"))
            + &*host("cache-b", &format!("redis_port = {b}"))),
    );
    let (code, v, out, e) = fw(
        &[
            "cache",
            "run",
            "info-summary",
            "--inventory",
            &two,
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{e}");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    // One entry listing its instances.
    let many = write(
        "many.toml",
        &host("cache-m", &format!("redis_ports = [{a}, {b}, {c}]")),
    );
    let (code, v, out, e) = fw(
        &[
            "cache",
            "run",
            "info-summary",
            "--inventory",
            &many,
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{e}");
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("cache-m:{a}"),
            format!("cache-m:{b}"),
            format!("cache-m:{c}")
        ]
    );
    // The same instance twice is still refused, naming both lines.
    let dup = write(
        "dup.toml",
        &(host("cache-a", &format!("redis_port = {a}"))
            + &*host("cache-b", &format!("redis_port = {a}"))),
    );
    let (code, _, _, e) = fw(&["cache", "run", "info-summary", "--inventory", &dup], &[]);
    assert_eq!(code, 1);
    assert!(
        e.contains("hosts `cache-b` and `cache-a` (line 2) share the address `127.0.0.1:22` and a Redis port; one machine would be updated twice"),
        "{e}"
    );
    // A kernel rollout updates the machine once.
    let (code, v, out, e) = fw(
        &[
            "plan",
            "--inventory",
            &two,
            "--kernel",
            "6.8.0-50-generic",
            "--ignore-drift",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{e}");
    let excluded = v["plan"]["excluded"].as_array().unwrap();
    assert!(
        excluded
            .iter()
            .any(|x| x["host"] == "cache-b" && x["kind"] == "same-machine"),
        "{v}"
    );
}

#[test]
fn dry_runs_show_every_round_they_can() {
    let inv = crate::support::root().join("policy-examples/fleet/fleet.toml");
    let inv = inv.to_str().unwrap();
    let dry = |value: &str, name: &str| {
        fw(
            &[
                "cache",
                "run",
                "config-set",
                "--inventory",
                inv,
                "--target",
                "name=cache0001.ams1",
                "--param",
                &format!("name={name}"),
                "--param",
                &format!("value={value}"),
                "--dry-run",
                "-o",
                "json",
            ],
            &[],
        )
    };
    // config-set: the CONFIG GET, then the CONFIG SET with its live check, then done.
    let (code, v, out, e) = dry("2gb", "maxmemory");
    assert_eq!(code, 0, "{out}\n{e}");
    let n = &v["nodes"][0];
    assert_eq!(
        n["rounds"][0]["send"][0]["command"],
        serde_json::json!(["CONFIG", "GET", "maxmemory"])
    );
    assert_eq!(
        n["rounds"][1]["send"][0]["command"],
        serde_json::json!(["CONFIG", "SET", "maxmemory", "2gb"])
    );
    assert_eq!(
        n["rounds"][1]["send"][0]["needs"],
        serde_json::json!([{ "need": "used_memory_at_most", "bytes": 2147483648u64 }])
    );
    assert_eq!(n["done"], true, "{v}");
    // A protected setting is refused in the round that would send it.
    let (code, v, _, _) = dry("/tmp", "dir");
    assert_eq!(code, 1, "{v}");
    let r1 = &v["nodes"][0]["rounds"][1]["send"][0];
    assert!(
        r1["refused"]
            .as_str()
            .unwrap()
            .contains("the protected setting `dir`"),
        "{v}"
    );
    assert_eq!(v["nodes"][0]["stops"], "round 1 is refused by the guard");
}
