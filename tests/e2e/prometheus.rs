//! Prometheus as a signals source, against a real `prometheus` scraping a real
//! `prometheus-node-exporter` on loopback. One exporter stands for many hosts: a file-based
//! service discovery file lists it once per host, relabelled to `instance="HOST:9100"`.
//! Read through `fleetward collect` and through a rollout's signals; and what happens when
//! Prometheus is down, slow, rejects a query, knows no series of a host, or a template needs
//! a fact a host lacks.

use crate::rollout::Lab;
use crate::support::{code, ensure_installed, free_port, root, stderr, stdout};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus and a node_exporter, killed on drop.
pub struct Prom {
    pub dir: tempfile::TempDir,
    pub url: String,
    children: Vec<Child>,
}

impl Drop for Prom {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn get(url: &str) -> Option<Value> {
    let o = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    serde_json::from_slice(&o.stdout).ok()
}

impl Prom {
    /// Scrapes every second, one target per host in `hosts`.
    pub fn start(hosts: &[String]) -> Prom {
        ensure_installed("/usr/bin/prometheus", &["prometheus"]);
        ensure_installed(
            "/usr/bin/prometheus-node-exporter",
            &["prometheus-node-exporter"],
        );
        ensure_installed("/usr/bin/curl", &["curl"]);
        let dir = tempfile::tempdir().unwrap();
        let exporter = free_port();
        let node = Command::new("/usr/bin/prometheus-node-exporter")
            .args([
                &format!("--web.listen-address=127.0.0.1:{exporter}"),
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.diskstats",
                "--collector.netdev",
                "--collector.pressure",
                "--collector.stat",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let targets: Vec<Value> = hosts
            .iter()
            .map(|h| {
                serde_json::json!({
                    "targets": [format!("127.0.0.1:{exporter}")],
                    "labels": { "host": h },
                })
            })
            .collect();
        std::fs::write(
            dir.path().join("targets.json"),
            serde_json::to_vec(&targets).unwrap(),
        )
        .unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: node\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n    relabel_configs:\n      - source_labels: [host]\n        target_label: instance\n        replacement: '${{1}}:9100'\n      - regex: host\n        action: labeldrop\n",
            dir.path().join("targets.json").display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let prom = Command::new("/usr/bin/prometheus")
            .args([
                &format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ),
                &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Prom {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            children: vec![node, prom],
        }
    }

    /// Waits until every one of `n` targets has `secs` seconds of `up` history.
    pub fn wait_history(&self, n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let q = format!(
            "{}/api/v1/query?query=count(count_over_time(up%5B{secs}s%5D)%20%3E%3D%20{})",
            self.url,
            secs.saturating_sub(2).max(2)
        );
        loop {
            let have = get(&q)
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .and_then(|s| s.parse::<usize>().ok())
                })
                .unwrap_or(0);
            if have >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus at {} has {have} of {n} targets with {secs} s of history: {}",
                self.url,
                std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// An inventory of `names`, each with `facts` as TOML inline-table text (or none).
fn inventory(dir: &Path, hosts: &[(&str, &str)]) -> PathBuf {
    let mut inv = String::from("hosts = [\n");
    for (i, (name, facts)) in hosts.iter().enumerate() {
        inv.push_str(&format!(
            "  {{ name = \"{name}\", address = \"127.0.0.{}\", hardware = \"r750\", workload = \"web\", datacenter = \"lo\", rack = \"r1\", kernel = \"6.8.0-45-generic\"{facts} }},\n",
            i + 1
        ));
    }
    inv.push_str("]\n");
    write(dir, "inventory.toml", &inv)
}

fn collect(policies: &Path, inv: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(crate::support::bin());
    c.args(["collect", "--policy-dir"])
        .arg(policies)
        .arg("--inventory")
        .arg(inv)
        .arg("--out")
        .arg(out)
        .args(["--output", "json"])
        .args(extra)
        .env("XDG_STATE_HOME", crate::support::state_home())
        .env("NO_COLOR", "1")
        .env_remove("PROM_TOKEN");
    c.output().unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(stdout(o).lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// The shipped policies with `rollout.rhai` patched and `fleetward.toml` extended.
fn policies(dir: &Path, patches: &[(&str, &str)], toml: &str) -> PathBuf {
    let to = dir.join("policies");
    crate::rollout::copy_dir(&root().join("policies"), &to);
    let file = to.join("rollout.rhai");
    let mut text = std::fs::read_to_string(&file).unwrap();
    for (from, by) in patches {
        assert!(text.contains(from), "rollout.rhai no longer has `{from}`");
        text = text.replace(from, by);
    }
    std::fs::write(&file, text).unwrap();
    let t = to.join("fleetward.toml");
    let mut text = std::fs::read_to_string(&t).unwrap();
    text.push_str(toml);
    std::fs::write(&t, text).unwrap();
    to
}

/// Rows of a samples CSV: (host, metric, value).
fn rows(path: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[2].to_string(), f[3].parse().unwrap())
        })
        .collect()
}

/// A listener that accepts and never answers: a Prometheus that hangs.
fn silent_listener() -> (u16, std::thread::JoinHandle<()>) {
    let port = free_port();
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        l.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
            if held.len() >= 8 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    (port, h)
}

/// One HTTP exchange: records the request head and answers an empty range result.
fn recording_listener() -> (u16, std::thread::JoinHandle<String>) {
    let port = free_port();
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        let answer = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let mut s = s;
        write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        head
    });
    (port, h)
}

#[test]
fn collect_reads_a_real_prometheus_and_says_what_it_cannot() {
    let names: Vec<String> = (1..=4).map(|i| format!("web{i}")).collect();
    let prom = Prom::start(&names);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `ghost` is in the inventory but Prometheus scrapes no target of it.
    let inv = inventory(
        d,
        &[
            ("web1", ", facts = { cluster = \"a\" }"),
            ("web2", ""),
            ("web3", ""),
            ("web4", ""),
            ("ghost", ""),
        ],
    );
    prom.wait_history(4, 12);
    let shipped = root().join("policies");
    let out = d.join("prom.csv");
    let o = collect(
        &shipped,
        &inv,
        &out,
        &[
            "--source",
            &format!("prometheus:{}", prom.url),
            "--from",
            "now-10s",
            "--to",
            "now",
            "--step",
            "1",
        ],
    );
    // The host without series makes it exit 2; the others have their samples.
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let j = json(&o);
    // One query per standard metric: all five hosts fit one batch.
    assert_eq!(j["queries"], 10, "{j}");
    assert_eq!(j["requests"], 10, "{j}");
    let hosts = j["hosts"].as_array().unwrap();
    let ghost = hosts.iter().find(|h| h["host"] == "ghost").unwrap();
    assert_eq!(ghost["samples"], 0, "{ghost}");
    let errs = ghost["errors"].to_string();
    assert!(
        errs.contains("no series for `cpu_util_pct` (`instance` `ghost:9100`)"),
        "{errs}"
    );
    let got = rows(&out);
    let direct = crate::signals::mem_used_pct();
    for h in &names {
        for m in ["cpu_util_pct", "mem_used_pct", "net_throughput_mbps"] {
            let v: Vec<f64> = got
                .iter()
                .filter(|(x, y, _)| x == h && y == m)
                .map(|r| r.2)
                .collect();
            assert!(v.len() >= 5, "{h} {m}: {v:?}");
            if m == "cpu_util_pct" {
                assert!(
                    v.iter().all(|x| (0.0..=100.0).contains(x)),
                    "{h} {m}: {v:?}"
                );
            }
            if m == "mem_used_pct" {
                // The same machine's memory, read by node_exporter and by this test.
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                assert!(
                    (mean - direct).abs() < 5.0,
                    "{h}: prometheus {mean} vs /proc {direct}"
                );
            }
        }
        if Path::new("/proc/pressure/cpu").exists() {
            assert!(
                got.iter()
                    .any(|(x, y, _)| x == h && y == "psi_cpu_some_pct"),
                "{h}: no psi"
            );
        }
    }

    // Prometheus rejects a query: its own message, and the query, are in the error.
    let bad = policies(
        &d.join("bad"),
        &[(
            r#"source: "ssh","#,
            r#"source: "prometheus", url: "http://unused:1", standard: false, queries: #{ cpu_util_pct: "rate(node_cpu_seconds_total{instance=~\"{{instance}}\"}[" },"#,
        )],
        "",
    );
    let o = collect(
        &bad,
        &inv,
        &d.join("bad.csv"),
        &["--source", &format!("prometheus:{}", prom.url)],
    );
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let e = json(&o)["errors"].to_string();
    assert!(
        e.contains("prometheus rejected `rate(node_cpu_seconds_total"),
        "{e}"
    );
    assert!(e.contains("bad_data"), "{e}");
    assert!(e.contains("parse error"), "{e}");

    // A template needs a fact one host lacks: that host's error names it; the other reads.
    let fact = policies(
        &d.join("fact"),
        &[(
            r#"source: "ssh","#,
            r#"source: "prometheus", url: "http://unused:1", standard: false, queries: #{ up: "max by (instance) (up{instance=~\"{{instance}}\",cluster!=\"{{facts.cluster}}\"})" },"#,
        )],
        "",
    );
    let o = collect(
        &fact,
        &inv,
        &d.join("fact.csv"),
        &[
            "--host",
            "web1",
            "--host",
            "web2",
            "--source",
            &format!("prometheus:{}", prom.url),
            "--from",
            "now-5s",
            "--step",
            "1",
        ],
    );
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let j = json(&o);
    let web2 = j["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "web2")
        .unwrap()
        .to_string();
    assert!(
        web2.contains("the query of `up`: host `web2` has no fact `cluster`"),
        "{web2}"
    );
    assert!(rows(&d.join("fact.csv"))
        .iter()
        .any(|(h, m, v)| h == "web1" && m == "up" && *v == 1.0));
    drop(prom);
}

#[test]
fn a_prometheus_that_is_down_slow_or_needs_auth_gives_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inv = inventory(d, &[("web1", ""), ("web2", "")]);
    let fast = policies(
        &d.join("fast"),
        &[],
        "\n[prometheus]\ntimeout_secs = 2\nretries = 1\nbackoff_ms = 100\n",
    );

    // Down: nothing listens. Two attempts each (one retry), then the error names the URL.
    let closed = free_port();
    let o = collect(
        &fast,
        &inv,
        &d.join("down.csv"),
        &["--source", &format!("prometheus:http://127.0.0.1:{closed}")],
    );
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let j = json(&o);
    let e = j["errors"].to_string();
    assert!(
        e.contains(&format!(
            "prometheus `http://127.0.0.1:{closed}` could not be reached"
        )),
        "{e}"
    );
    assert!(e.contains("after 2 attempt(s)"), "{e}");
    assert_eq!(j["requests"], 20, "{j}");
    for h in j["hosts"].as_array().unwrap() {
        assert_eq!(h["samples"], 0, "{h}");
    }

    // Slow: it accepts and never answers. The request times out (2 s), is retried once, and
    // the whole collection returns well inside the hang guard below.
    let (port, _hold) = silent_listener();
    let started = Instant::now();
    let o = collect(
        &fast,
        &inv,
        &d.join("slow.csv"),
        &["--source", &format!("prometheus:http://127.0.0.1:{port}")],
    );
    assert!(started.elapsed() < Duration::from_secs(50), "collect hung");
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let e = json(&o)["errors"].to_string();
    assert!(e.contains("could not be reached"), "{e}");
    assert!(
        e.to_lowercase().contains("timeout") || e.contains("timed out"),
        "{e}"
    );

    // Auth from the environment variable fleetward.toml names: missing, then sent.
    let auth = policies(
        &d.join("auth"),
        &[],
        "\n[prometheus]\nbearer_token_env = \"PROM_TOKEN\"\nretries = 0\n",
    );
    let o = collect(
        &auth,
        &inv,
        &d.join("auth.csv"),
        &[
            "--source",
            "prometheus:http://127.0.0.1:9",
            "--host",
            "web1",
        ],
    );
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let e = json(&o)["errors"].to_string();
    assert!(
        e.contains("the environment has no `PROM_TOKEN`, which `[prometheus] bearer_token_env` in fleetward.toml names"),
        "{e}"
    );
    let (port, head) = recording_listener();
    let mut c = Command::new(crate::support::bin());
    c.args(["collect", "--policy-dir"])
        .arg(&auth)
        .arg("--inventory")
        .arg(&inv)
        .arg("--out")
        .arg(d.join("auth2.csv"))
        .args(["--output", "json", "--host", "web1"])
        .args(["--source", &format!("prometheus:http://127.0.0.1:{port}")])
        .env("XDG_STATE_HOME", crate::support::state_home())
        .env("PROM_TOKEN", "sekrit");
    // Only the first query reaches the one-exchange listener; the rest find it closed.
    let o = c.output().unwrap();
    let head = head.join().unwrap();
    assert!(head.starts_with("POST /api/v1/query_range "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer sekrit"),
        "{head}"
    );
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));

    // Bad arguments are errors before anything is read.
    let o = collect(
        &fast,
        &inv,
        &d.join("x.csv"),
        &["--source", "prometheus:ftp://x"],
    );
    assert_ne!(code(&o), 0);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("must start with http:// or https://"), "{all}");
    let o = collect(
        &fast,
        &inv,
        &d.join("x.csv"),
        &["--source", "prometheus:http://x", "--from", "yesterday"],
    );
    assert_ne!(code(&o), 0);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("`yesterday` is not a time"), "{all}");
    let o = collect(&fast, &inv, &d.join("x.csv"), &["--from", "now-1h"]);
    assert_ne!(code(&o), 0);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("--from and --to are for"), "{all}");
}

/// `n` sshd hosts whose signals come from a Prometheus scraping one target per host, every
/// second, with every metric change tolerated (see `tolerate_any_change_in_one_group`), and
/// steady disk writes while the returned guard lives: a disk with no completed I/O has no
/// latency to compare, which leaves the gate insufficient (as it should) and the rollout
/// paused.
fn prometheus_lab(n: usize) -> (Lab, Prom, crate::signals::DiskWrites) {
    let lab = Lab::new(
        n,
        &[
            ("const SAMPLE_EVERY = 300;", "const SAMPLE_EVERY = 1;"),
            (
                r#"source: "ssh","#,
                r#"source: "prometheus", url: "PROM_URL", step: 1, rate: 5,"#,
            ),
        ],
    );
    let prom = Prom::start(&lab.names());
    let file = lab.policies.join("rollout.rhai");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("PROM_URL", &prom.url)).unwrap();
    crate::signals::tolerate_any_change_in_one_group(&lab);
    let io = crate::signals::DiskWrites::start(lab.fleet.dir.path());
    (lab, prom, io)
}

/// Signals through a rollout: 8 sshd hosts, metrics from Prometheus (the before window from
/// its history, the bake read at its end), reboots still watched over SSH.
#[test]
fn a_rollout_reads_its_signals_from_a_real_prometheus() {
    let (lab, prom, _io) = prometheus_lab(8);
    prom.wait_history(8, 8);
    let mut args = lab.start_args(&[]);
    let i = args.iter().position(|a| a == "--bake").unwrap();
    args[i + 1] = "3".into();
    let o = lab.fleetward(&args);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    // Every stage has a before window read from history and a bake read at its end, with
    // samples of its hosts.
    let mut stages = 0;
    for e in std::fs::read_dir(&lab.state).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".prometheus.csv") {
            stages += 1;
            let r = rows(&p);
            assert!(r.iter().any(|(_, m, _)| m == "cpu_util_pct"), "{name}");
            let before = p.with_file_name(name.replace(".prometheus.csv", ".before.csv"));
            assert!(
                rows(&before).iter().any(|(_, m, _)| m == "mem_used_pct"),
                "{name}"
            );
        }
    }
    assert!(stages >= 2, "{stages} stages read prometheus");
    // No host ran the collector for metrics: only the kernel-log check (window 0).
    for h in lab.names() {
        for (_, c) in lab.commands(&h) {
            assert!(
                !c.starts_with("sh -c fleetward-signals ")
                    || c.starts_with("sh -c fleetward-signals 0 0"),
                "{h} was sent `{c}`"
            );
        }
    }
    drop(prom);
}

/// `kill -9` right after a window's Prometheus samples are on disk (the before window before
/// it is put on record; a bake before its gate), then `rollout resume`: the window is read
/// again and written whole, so no sample is lost or counted twice, and the rollout completes.
#[test]
fn a_kill_after_a_prometheus_window_is_written_loses_and_doubles_nothing() {
    use std::io::BufRead;
    for point in [
        "rollout.after_prometheus_before",
        "rollout.after_prometheus_bake",
    ] {
        let (lab, prom, _io) = prometheus_lab(8);
        prom.wait_history(8, 6);
        let mut args = lab.start_args(&[]);
        let i = args.iter().position(|a| a == "--bake").unwrap();
        args[i + 1] = "2".into();
        let mut child = Command::new(crate::support::bin())
            .args(&args)
            .env("XDG_STATE_HOME", crate::support::state_home())
            .env("FLEETWARD_FAILPOINT", point)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains(&format!("failpoint {point}")) {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "{point}: the controller ended before the failpoint"
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let o = lab.resume(&[]);
        assert_eq!(code(&o), 0, "{point}: {}\n{}", stdout(&o), stderr(&o));
        assert_eq!(lab.status()["phase"], "completed", "{point}");
        let mut files = 0;
        for e in std::fs::read_dir(&lab.state).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".prometheus.csv") || name.ends_with(".before.csv") {
                files += 1;
                let text = std::fs::read_to_string(&p).unwrap();
                let mut seen = std::collections::BTreeSet::new();
                for l in text.lines().skip(1) {
                    assert!(
                        seen.insert(l.to_string()),
                        "{point}: {name} has `{l}` twice"
                    );
                }
                assert!(!seen.is_empty(), "{point}: {name} is empty");
            }
        }
        assert!(files >= 4, "{point}: {files} window files");
        drop(prom);
    }
}

/// Prometheus down during a rollout: no samples, so the canary gate is insufficient and the
/// rollout pauses; it never passes a stage on no data.
#[test]
fn a_rollout_whose_prometheus_is_down_pauses_insufficient_never_clean() {
    let closed = free_port();
    let url = format!("http://127.0.0.1:{closed}");
    let lab = Lab::new(
        4,
        &[
            ("const SAMPLE_EVERY = 300;", "const SAMPLE_EVERY = 1;"),
            (
                r#"source: "ssh","#,
                &format!(r#"source: "prometheus", url: "{url}", step: 1, rate: 5,"#),
            ),
        ],
    );
    let toml = lab.policies.join("fleetward.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("\n[prometheus]\nretries = 0\ntimeout_secs = 2\n");
    std::fs::write(&toml, text).unwrap();
    crate::signals::tolerate_any_change_in_one_group(&lab);
    let mut args = lab.start_args(&[]);
    let i = args.iter().position(|a| a == "--bake").unwrap();
    args[i + 1] = "1".into();
    let o = lab.fleetward(&args);
    let s = lab.status();
    assert_eq!(s["phase"], "paused", "{s}\n{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(s["stages"][0]["gate"], "pause", "{s}");
    assert!(
        s["stages"][0]["reasons"]
            .to_string()
            .contains("no metric samples to compare"),
        "{s}"
    );
    assert!(
        stdout(&o).contains("could not be reached"),
        "{}",
        stdout(&o)
    );
}
