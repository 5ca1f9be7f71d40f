//! The Prometheus signals source at fleet scale: the before and after windows (30 minutes
//! each, 60 s steps) of 5,000 hosts × 6 metrics, read from a real `prometheus` through the
//! same planner and HTTP reader a rollout uses. Side by side, in one run: batched queries
//! (the default, 500 hosts a query), one query per metric for the whole fleet, and one query
//! per host and metric (what a script looping over hosts does). Wall time and HTTP requests.
//!
//! The history is generated, not scraped: node_exporter's series for 5,000 hosts over an hour
//! (CPU modes, memory, one disk, one interface, CPU pressure), with per-host levels that
//! differ, written as OpenMetrics and imported with `promtool tsdb create-blocks-from
//! openmetrics`; then Prometheus serves those blocks on loopback.
//!
//! Run with `cargo bench --bench prometheus` (needs `prometheus`, installed when missing as
//! root). `HOSTS=…` changes the fleet size; `PER_HOST=0` skips the per-host peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

#[path = "../tests/e2e/support.rs"]
mod support;

use fleetward_engine::model::Host;
use fleetward_engine::signals::prometheus::{
    fetch, Endpoint, HttpStore, MetricsStore, Range, Settings, Spec, STANDARD,
};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const METRICS: [&str; 6] = [
    "cpu_util_pct",
    "mem_used_pct",
    "io_latency_p50_ms",
    "io_latency_p99_ms",
    "net_throughput_mbps",
    "psi_cpu_some_pct",
];

struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An hour of node_exporter history for `hosts`, one point a minute, ending at `end`.
fn history(path: &std::path::Path, hosts: usize, end: i64) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let points: i64 = 61;
    let start = end - 60 * (points - 1);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let levels: Vec<(f64, f64, f64, f64)> = (0..hosts)
        .map(|_| {
            (
                0.2 + 0.5 * rng.unit(),    // cpu busy share
                0.3 + 0.5 * rng.unit(),    // memory used share
                0.5 + 3.0 * rng.unit(),    // ms per I/O
                50.0 + 500.0 * rng.unit(), // Mbit/s
            )
        })
        .collect();
    let counter = |w: &mut std::io::BufWriter<std::fs::File>,
                   family: &str,
                   labels: &dyn Fn(usize) -> String,
                   per_sec: &dyn Fn(usize) -> f64| {
        writeln!(w, "# TYPE {family} counter").unwrap();
        for h in 0..hosts {
            let l = labels(h);
            let r = per_sec(h);
            for p in 0..points {
                writeln!(
                    w,
                    "{family}_total{{{l}}} {} {}",
                    r * 60.0 * p as f64,
                    start + 60 * p
                )
                .unwrap();
            }
        }
    };
    let inst = |h: usize| format!("instance=\"h{h:05}:9100\",job=\"node\"");
    counter(
        &mut w,
        "node_cpu_seconds",
        &|h| format!("{},cpu=\"0\",mode=\"idle\"", inst(h)),
        &|h| 1.0 - levels[h].0,
    );
    counter(
        &mut w,
        "node_cpu_seconds",
        &|h| format!("{},cpu=\"0\",mode=\"user\"", inst(h)),
        &|h| levels[h].0,
    );
    let iops = 200.0;
    counter(
        &mut w,
        "node_disk_reads_completed",
        &|h| format!("{},device=\"nvme0n1\"", inst(h)),
        &|_| iops,
    );
    counter(
        &mut w,
        "node_disk_writes_completed",
        &|h| format!("{},device=\"nvme0n1\"", inst(h)),
        &|_| iops,
    );
    counter(
        &mut w,
        "node_disk_read_time_seconds",
        &|h| format!("{},device=\"nvme0n1\"", inst(h)),
        &|h| iops * levels[h].2 / 1000.0,
    );
    counter(
        &mut w,
        "node_disk_write_time_seconds",
        &|h| format!("{},device=\"nvme0n1\"", inst(h)),
        &|h| iops * levels[h].2 / 1000.0,
    );
    counter(
        &mut w,
        "node_network_receive_bytes",
        &|h| format!("{},device=\"eno1\"", inst(h)),
        &|h| levels[h].3 * 1e6 / 16.0,
    );
    counter(
        &mut w,
        "node_network_transmit_bytes",
        &|h| format!("{},device=\"eno1\"", inst(h)),
        &|h| levels[h].3 * 1e6 / 16.0,
    );
    counter(&mut w, "node_pressure_cpu_waiting_seconds", &inst, &|h| {
        levels[h].0 / 20.0
    });
    for (family, share) in [
        ("node_memory_MemTotal_bytes", None),
        ("node_memory_MemAvailable_bytes", Some(())),
    ] {
        writeln!(w, "# TYPE {family} gauge").unwrap();
        for (h, level) in levels.iter().enumerate() {
            let total = 256e9;
            let v = match share {
                None => total,
                Some(()) => total * (1.0 - level.1),
            };
            for p in 0..points {
                writeln!(w, "{family}{{{}}} {v} {}", inst(h), start + 60 * p).unwrap();
            }
        }
    }
    writeln!(w, "# EOF").unwrap();
    w.flush().unwrap();
}

fn main() {
    support::ensure_installed("/usr/bin/prometheus", &["prometheus"]);
    support::ensure_installed("/usr/bin/curl", &["curl"]);
    let hosts: usize = std::env::var("HOSTS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(5000);
    let per_host = std::env::var("PER_HOST").map(|v| v != "0").unwrap_or(true);
    let dir = tempfile::tempdir().unwrap();
    let now = jiff::Timestamp::now().as_second();
    let end = now - now % 60;
    let om = dir.path().join("history.om");
    let t = Instant::now();
    history(&om, hosts, end);
    let size = std::fs::metadata(&om).unwrap().len();
    let data = dir.path().join("data");
    let o = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!(
        "history: {hosts} hosts, 11 series each, 61 points: {:.0} MB of OpenMetrics, generated and imported in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    std::fs::remove_file(&om).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 1m\n",
    )
    .unwrap();
    let port = support::free_port();
    let mut prom = Command::new("/usr/bin/prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let ready = Instant::now();
    while !Command::new("curl")
        .args(["-sf", &format!("{url}/-/ready")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        assert!(
            ready.elapsed() < Duration::from_secs(120),
            "prometheus did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let inventory: Vec<Host> = (0..hosts)
        .map(|h| Host {
            name: format!("h{h:05}"),
            ..Host::default()
        })
        .collect();
    let refs: Vec<&Host> = inventory.iter().collect();
    let queries: std::collections::BTreeMap<String, String> = STANDARD
        .iter()
        .filter(|(m, _)| METRICS.contains(m))
        .map(|(m, q)| (m.to_string(), q.to_string()))
        .collect();
    let spec = |batch: usize| Spec {
        url: url.clone(),
        step: 60,
        rate: 300,
        batch,
        label: "instance".into(),
        instance: "{{host}}:9100".into(),
        queries: queries.clone(),
        devices: Vec::new(),
        interfaces: Vec::new(),
    };
    let endpoint = Endpoint {
        url: url.clone(),
        settings: Settings {
            timeout_secs: 120,
            ..Settings::default()
        },
    };
    let before = Range {
        start: (end - 3600 + 300) as f64,
        end: (end - 1800) as f64,
        step: 60,
    };
    let after = Range {
        start: (end - 1800) as f64,
        end: end as f64,
        step: 60,
    };
    let mut runs: Vec<(&str, usize)> = vec![
        ("batched, 500 hosts a query (default)", 500),
        ("one query per metric", hosts),
    ];
    if per_host {
        runs.push(("one query per host and metric", 1));
    }
    println!(
        "before and after windows of {hosts} hosts × {} metrics, 60 s steps, {} parallel requests:",
        METRICS.len(),
        endpoint.settings.parallel
    );
    for (name, batch) in runs {
        let store = HttpStore::new();
        let s = spec(batch);
        let t = Instant::now();
        let b = fetch(&store, &endpoint, &s, &refs, before);
        let a = fetch(&store, &endpoint, &s, &refs, after);
        let wall = t.elapsed().as_secs_f64();
        let missing = a.host_errors.len().max(b.host_errors.len());
        assert!(
            b.errors.is_empty() && a.errors.is_empty(),
            "{:?} {:?}",
            b.errors.first(),
            a.errors.first()
        );
        println!(
            "  {name:<40} {wall:>7.2} s  {:>6} HTTP requests  {:>8} samples  hosts missing a metric: {missing}",
            store.requests(),
            a.rows.len() + b.rows.len()
        );
    }
    let _ = prom.kill();
    let _ = prom.wait();
}
