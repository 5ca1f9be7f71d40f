//! Real `redis-server` processes on loopback ports, seeded with keys of mixed types and
//! sizes, stopped when dropped.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisFleet {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
    children: Vec<Child>,
}

impl Drop for RedisFleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Installs redis-server on a fresh machine (once per run); `.ci/run` does the same.
fn ensure_redis() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::support::ensure_installed("/usr/bin/redis-server", &["redis-server", "redis-tools"])
    });
}

pub use crate::support::free_port;

/// One RESP command.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// The keys every node gets: `keys` keys of mixed types, a few big ones, some with TTLs.
pub fn seed_data(keys: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let blob = "x".repeat(64);
    for i in 0..keys {
        let k = format!("k:{i:07}");
        match i % 10 {
            0..=5 => out.extend(resp(&[
                "SET",
                &format!("user:{i:07}"),
                &blob[..(i % 60) + 4],
            ])),
            6 => out.extend(resp(&[
                "HSET",
                &format!("session:{i:07}"),
                "a",
                "1",
                "b",
                "2",
            ])),
            7 => out.extend(resp(&["RPUSH", &format!("queue:{i:07}"), "a", "b", "c"])),
            8 => out.extend(resp(&["SADD", &format!("tags:{i:07}"), "x", "y"])),
            _ => out.extend(resp(&[
                "SET",
                &format!("ttl:{i:07}"),
                "v",
                "EX",
                &format!("{}", 3600 + i % 100),
            ])),
        }
        let _ = k;
    }
    // A few big keys, so big-keys has something to find.
    for (i, size) in [200_000usize, 120_000, 80_000].iter().enumerate() {
        out.extend(resp(&["SET", &format!("big:{i}"), &"b".repeat(*size)]));
    }
    out.extend(resp(&["ZADD", "board", "1", "a", "2", "b"]));
    out
}

impl RedisFleet {
    /// Starts `n` servers, each seeded with `keys` keys.
    pub fn start(n: usize, keys: usize) -> RedisFleet {
        ensure_redis();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for i in 0..n {
            let port = free_port();
            let data = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&data).expect("data dir");
            let child = Command::new("/usr/bin/redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&data)
                .args([
                    "--maxmemory-policy",
                    "allkeys-lfu",
                    "--slowlog-log-slower-than",
                    "0",
                ])
                // Tests provoke latency events with DEBUG SLEEP from redis-cli.
                .args(["--enable-debug-command", "local"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            children.push(child);
            ports.push(port);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for p in &ports {
            while TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server on {p} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let data = seed_data(keys);
        for p in &ports {
            let mut c = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "--pipe"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-cli");
            c.stdin
                .take()
                .expect("stdin")
                .write_all(&data)
                .expect("seed");
            assert!(c.wait().expect("redis-cli").success(), "seeding {p}");
        }
        RedisFleet {
            dir,
            ports,
            children,
        }
    }

    /// The process id of node `i` (to stop it with SIGSTOP: a node that hangs).
    pub fn pid(&self, i: usize) -> u32 {
        self.children[i].id()
    }

    /// `redis-cli -p PORT ARGS...`, its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let o = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// An inventory of these nodes (`c0`, `c1`, ...) plus `extra` lines.
    pub fn inventory(&self, extra: &str) -> std::path::PathBuf {
        let mut s = String::from("hosts = [\n");
        for (i, p) in self.ports.iter().enumerate() {
            s.push_str(&format!(
                "  {{ name = \"c{i}\", address = \"127.0.0.1\", port = {p}, hardware = \"r650\", workload = \"cache\", datacenter = \"lo\", rack = \"r{i}\", kernel = \"6.8.0-40-generic\", redis_port = {p} }},\n"
            ));
        }
        s.push_str(extra);
        s.push_str("]\n");
        let path = self.dir.path().join("inventory.toml");
        std::fs::write(&path, s).expect("inventory");
        path
    }
}
