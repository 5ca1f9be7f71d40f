//! A full clean rollout over 20 real `sshd` hosts on loopback with zero bake time: the wall
//! time, and the controller's overhead per host beyond the hosts' own step time.
//!
//! Then a drift audit of the same kind of fleet: its wall time and the SSH round trips each
//! host saw (from the hosts' own command logs).
//!
//! Then `fleetward collect` over the same kind of fleet with the real collector on this
//! machine's `/proc` (1 s window): wall time, bytes and milliseconds per host, and round
//! trips; side by side with plain OpenSSH (one `ssh` process per host, all at once) sending
//! the same script.
//!
//! Run with `cargo bench --bench loopback` (as root: it starts sshd). Each run gets a fresh
//! fleet. The hosts' own step time is read from the journal: for each batch, the longest time
//! any of its hosts spent inside steps (from `step_started` to `step_succeeded`, the command
//! and its SSH round trip). Everything else is the controller's: process start, policy and
//! baseline loading, planning, journal fsyncs between steps, sample collection and gates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unused_imports
)]

#[path = "../tests/e2e/rollout.rs"]
mod rollout;
#[path = "../tests/e2e/sshd.rs"]
mod sshd;
#[path = "../tests/e2e/support.rs"]
mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::time::Instant;

fn secs(at: &str) -> f64 {
    let t: jiff::Timestamp = at.parse().unwrap();
    t.as_nanosecond() as f64 / 1e9
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let hosts = 20;
    let (mut walls, mut overheads) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let lab = rollout::Lab::new(hosts, &[]);
        let t0 = Instant::now();
        let o = lab.start(&[]);
        let wall = t0.elapsed().as_secs_f64();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let records: Vec<Value> = std::fs::read_to_string(lab.state.join("journal.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut started: HashMap<String, f64> = HashMap::new();
        let mut busy: HashMap<String, f64> = HashMap::new();
        for r in &records {
            let e = &r["event"];
            let host = e["host"].as_str().unwrap_or("").to_string();
            match e["type"].as_str().unwrap_or("") {
                "step_started" => {
                    started.insert(host, secs(r["at"].as_str().unwrap()));
                }
                "step_succeeded" => {
                    let t = secs(r["at"].as_str().unwrap()) - started[&host];
                    *busy.entry(host).or_default() += t;
                }
                _ => {}
            }
        }
        let batches: Vec<Vec<String>> = records[0]["event"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["batches"].as_array().unwrap().clone())
            .map(|b| {
                b.as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        let critical: f64 = batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|h| busy.get(h).copied().unwrap_or(0.0))
                    .fold(0.0, f64::max)
            })
            .sum();
        let overhead = (wall - critical) / hosts as f64;
        println!(
            "run {}: {hosts} hosts, {} batches, {} journal events: wall {wall:.2} s, hosts' own step time on the critical path {critical:.2} s, controller overhead {:.0} ms/host",
            run + 1,
            batches.len(),
            records.len(),
            overhead * 1000.0
        );
        walls.push(wall);
        overheads.push(overhead);
    }
    walls.sort_by(f64::total_cmp);
    overheads.sort_by(f64::total_cmp);
    println!(
        "loopback rollout, {hosts} hosts, bake 0: median wall {:.2} s, median controller overhead {:.0} ms/host ({runs} runs)",
        walls[runs / 2],
        overheads[runs / 2] * 1000.0
    );

    drift_audit(hosts, runs);
    collect(hosts, runs);
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn collect(hosts: usize, runs: usize) {
    let script = fleetward_engine::signals::SCRIPT;
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let lab = rollout::Lab::new(hosts, &[]);
        for h in lab.names() {
            lab.fault(&h, "real-signals", "");
        }
        let d = lab.fleet.dir.path();
        let out = d.join("samples.csv");
        let mut args = fleet_args(&lab, &["collect", "--window", "1"], "collect-state");
        args.extend(["--out".to_string(), out.display().to_string()]);
        let t0 = Instant::now();
        let o = lab.fleetward(&args);
        let wall = t0.elapsed().as_secs_f64();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let v: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
        let hs = v["hosts"].as_array().unwrap();
        let bytes: Vec<u64> = hs.iter().map(|h| h["bytes"].as_u64().unwrap()).collect();
        let ms: Vec<u64> = hs.iter().map(|h| h["max_ms"].as_u64().unwrap()).collect();
        let trips = lab
            .names()
            .iter()
            .map(|h| lab.commands(h).len())
            .max()
            .unwrap_or(0);
        // The peer: one plain `ssh` per host, all at once, sending the same script.
        let remote = format!("sh -c {} fleetward-signals 1 0", quote(script));
        let t1 = Instant::now();
        let children: Vec<_> = lab
            .fleet
            .hosts
            .iter()
            .map(|h| {
                std::process::Command::new("ssh")
                    .args(["-F", d.join("no-ssh-config").to_str().unwrap()])
                    .args(["-i", lab.fleet.client_key.to_str().unwrap()])
                    .args([
                        "-o",
                        &format!("UserKnownHostsFile={}", lab.fleet.known_hosts.display()),
                    ])
                    .args(["-o", "BatchMode=yes", "-p", &h.port.unwrap().to_string()])
                    .arg(format!("{}@127.0.0.1", h.user.clone().unwrap()))
                    .arg(&remote)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let peer_bytes: Vec<usize> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().stdout.len())
            .collect();
        let peer_wall = t1.elapsed().as_secs_f64();
        println!(
            "collect run {}: {hosts} hosts in {wall:.2} s (fleetward), {trips} SSH round trip(s) per host, {}..{} bytes and {}..{} ms per host; OpenSSH, one ssh per host: {peer_wall:.2} s, {}..{} bytes",
            run + 1,
            bytes.iter().min().unwrap(),
            bytes.iter().max().unwrap(),
            ms.iter().min().unwrap(),
            ms.iter().max().unwrap(),
            peer_bytes.iter().min().unwrap(),
            peer_bytes.iter().max().unwrap(),
        );
        ours.push(wall);
        peer.push(peer_wall);
    }
    ours.sort_by(f64::total_cmp);
    peer.sort_by(f64::total_cmp);
    println!(
        "loopback collect, {hosts} hosts, 1 s window: median wall {:.2} s (fleetward collect) against {:.2} s (OpenSSH, one ssh per host at once) ({runs} runs)",
        ours[runs / 2],
        peer[runs / 2]
    );
}

/// `command` with JSON output, the lab's policies, inventory and SSH flags, and a state
/// directory `state` in the lab.
fn fleet_args(lab: &rollout::Lab, command: &[&str], state: &str) -> Vec<String> {
    let d = lab.fleet.dir.path();
    let mut v: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    for (flag, value) in [
        ("--output", "json".to_string()),
        ("--policy-dir", lab.policies.display().to_string()),
        ("--inventory", lab.inventory.display().to_string()),
        ("--state-dir", d.join(state).display().to_string()),
        ("--ssh-key", lab.fleet.client_key.display().to_string()),
        ("--known-hosts", lab.fleet.known_hosts.display().to_string()),
        (
            "--ssh-config",
            d.join("no-ssh-config").display().to_string(),
        ),
    ] {
        v.push(flag.to_string());
        v.push(value);
    }
    v
}

fn drift_audit(hosts: usize, runs: usize) {
    let mut walls = Vec::new();
    let mut trips = Vec::new();
    for run in 0..runs {
        let lab = rollout::Lab::new(hosts, &[]);
        let args = fleet_args(&lab, &["drift", "audit"], "drift-state");
        let t0 = Instant::now();
        let o = lab.fleetward(&args);
        let wall = t0.elapsed().as_secs_f64();
        assert!(
            matches!(o.status.code(), Some(0 | 2)),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let per_host: Vec<usize> = lab.names().iter().map(|h| lab.commands(h).len()).collect();
        let max = per_host.iter().copied().max().unwrap_or(0);
        println!(
            "drift run {}: {hosts} hosts audited in {wall:.2} s, SSH round trips per host: {}..{max}",
            run + 1,
            per_host.iter().copied().min().unwrap_or(0)
        );
        walls.push(wall);
        trips.push(max);
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "loopback drift audit, {hosts} hosts: median wall {:.2} s, at most {} SSH round trip(s) per host ({runs} runs)",
        walls[runs / 2],
        trips.iter().max().unwrap()
    );
}
