//! `big-keys` over 1M keys on one real `redis-server`: the run time, and the slowest single
//! command the server recorded in SLOWLOG while it ran (the cost to live traffic; target: no
//! command over 10 ms). Run with `cargo bench --bench cache`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unused_imports
)]

#[path = "../tests/e2e/redisd.rs"]
mod redisd;
#[path = "../tests/e2e/support.rs"]
mod support;

use std::time::Instant;

fn main() {
    let keys: usize = std::env::var("KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    let f = redisd::RedisFleet::start(1, keys);
    let port = f.ports[0];
    let dbsize = f.cli(port, &["DBSIZE"]);
    // Record every command slower than 0.5 ms while the command runs.
    f.cli(port, &["CONFIG", "SET", "slowlog-log-slower-than", "500"]);
    f.cli(port, &["CONFIG", "SET", "slowlog-max-len", "4096"]);
    f.cli(port, &["SLOWLOG", "RESET"]);
    let inv = f.inventory("");
    let t = Instant::now();
    let o = std::process::Command::new(support::bin())
        .args(["cache", "run", "big-keys", "--inventory"])
        .arg(&inv)
        .args([
            "--param",
            "count=1000",
            "--param",
            "limit=1000000",
            "--param",
            "top=10",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let node = &v["nodes"][0];
    // SLOWLOG GET entries: id, timestamp, microseconds, arguments, ...
    let slow = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--json", "SLOWLOG", "GET", "4096"])
        .output()
        .unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&slow.stdout).unwrap_or_default();
    let worst = entries
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e[2].as_u64()?, e[3].to_string())))
                .max_by_key(|(us, _)| *us)
        })
        .unwrap_or(None);
    println!(
        "big-keys over {} keys (DBSIZE {}): {secs:.2} s wall, {} rounds, {} commands, top key {} ({} bytes)",
        keys,
        dbsize.trim(),
        node["rounds"],
        node["commands"],
        node["rows"][0]["key"],
        node["rows"][0]["bytes"]
    );
    match worst {
        Some((us, cmd)) => println!(
            "slowest command the server recorded during the run: {:.2} ms ({cmd}); {} command(s) over 0.5 ms",
            us as f64 / 1000.0,
            entries.as_array().map(|a| a.len()).unwrap_or(0)
        ),
        None => println!("slowest command the server recorded during the run: none over 0.5 ms"),
    }
}
