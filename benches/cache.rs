//! `big-keys` against `redis-cli --memkeys`, side by side in one run, over 1M keys on one real
//! `redis-server` (plus 20 large keys of known sizes): each tool's wall time, whether it found
//! the true top 20, and the slowest single command the server recorded in SLOWLOG while each
//! ran (the cost to live traffic; target: none over 5 ms). Run with `cargo bench --bench
//! cache` (`KEYS=N` for another keyspace size).
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

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The slowest command in SLOWLOG since the last reset: (microseconds, command), and how many
/// took over 0.5 ms.
fn slowest(f: &redisd::RedisFleet, port: u16) -> (Option<(u64, String)>, usize) {
    let slow = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--json", "SLOWLOG", "GET", "4096"])
        .output()
        .unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&slow.stdout).unwrap_or_default();
    let a = entries.as_array().cloned().unwrap_or_default();
    let worst = a
        .iter()
        .filter_map(|e| Some((e[2].as_u64()?, e[3].to_string())))
        .max_by_key(|(us, _)| *us);
    let _ = f;
    (worst, a.len())
}

fn reset(f: &redisd::RedisFleet, port: u16) {
    f.cli(port, &["SLOWLOG", "RESET"]);
}

fn show(tool: &str, secs: f64, worst: &(Option<(u64, String)>, usize)) {
    match &worst.0 {
        Some((us, cmd)) => println!(
            "  {tool:<22} {secs:>7.2} s   slowest server command {:.2} ms ({cmd}); {} over 0.5 ms",
            *us as f64 / 1000.0,
            worst.1
        ),
        None => println!("  {tool:<22} {secs:>7.2} s   no server command over 0.5 ms"),
    }
}

fn main() {
    let keys: usize = std::env::var("KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    let f = redisd::RedisFleet::start(1, keys);
    let port = f.ports[0];
    // Twenty large keys of known, distinct sizes: the true top 20.
    let mut seed = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        let stdin = seed.stdin.as_mut().unwrap();
        for i in 0..20 {
            let v = "h".repeat(400_000 - i * 10_000);
            write!(
                stdin,
                "*3\r\n$3\r\nSET\r\n${}\r\nhuge:{i:02}\r\n${}\r\n{v}\r\n",
                format!("huge:{i:02}").len(),
                v.len()
            )
            .unwrap();
        }
    }
    assert!(seed.wait().unwrap().success());
    let truth: Vec<String> = (0..20).map(|i| format!("huge:{i:02}")).collect();
    let dbsize = f.cli(port, &["DBSIZE"]);
    f.cli(port, &["CONFIG", "SET", "slowlog-log-slower-than", "500"]);
    f.cli(port, &["CONFIG", "SET", "slowlog-max-len", "4096"]);
    println!(
        "big keys over {} keys (DBSIZE {}), one redis-server on loopback",
        keys,
        dbsize.trim()
    );

    // fleetward, with the catalogue's defaults.
    reset(&f, port);
    let inv = f.inventory("");
    let t = Instant::now();
    let o = Command::new(support::bin())
        .args(["cache", "run", "big-keys", "--inventory"])
        .arg(&inv)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let ours = t.elapsed().as_secs_f64();
    let ours_slow = slowest(&f, port);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let node = &v["nodes"][0];
    let found: Vec<String> = node["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap_or("").to_string())
        .collect();

    // redis-cli --memkeys: SCAN plus MEMORY USAGE of every key, the tool an SRE reaches for.
    reset(&f, port);
    let t = Instant::now();
    let cli = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--memkeys"])
        .output()
        .unwrap();
    let theirs = t.elapsed().as_secs_f64();
    let theirs_slow = slowest(&f, port);
    assert!(cli.status.success());
    let cli_out = String::from_utf8_lossy(&cli.stdout);
    let biggest = cli_out
        .lines()
        .rev()
        .find(|l| l.contains("Biggest string found") && !l.contains("so far"))
        .unwrap_or("")
        .trim()
        .to_string();

    show("fleetward big-keys", ours, &ours_slow);
    show("redis-cli --memkeys", theirs, &theirs_slow);
    println!(
        "  fleetward: {} rounds, {} commands, examined {}, true top 20 found: {}/20",
        node["rounds"],
        node["commands"],
        node["coverage"]["examined"],
        truth.iter().filter(|k| found.contains(k)).count()
    );
    println!("  redis-cli: {biggest} (it reports the biggest key per type only)");
    println!(
        "  fleetward / redis-cli wall time: {:.2}x",
        ours / theirs.max(1e-9)
    );
}
