//! The agentless signals collector and the built-in checks over real `sshd` on loopback:
//! `fleetward collect` against this machine's real `/proc`, compared with a direct reading
//! taken over the same seconds; unreachable hosts; and a rollout whose signals come from the
//! real collector on every host.

use crate::rollout::Lab;
use crate::support::{code, stderr, stdout};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The `cpu` line of /proc/stat: (busy, total) jiffies.
fn cpu_now() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap())
        .collect();
    let total: u64 = f.iter().sum();
    (total - f[3] - f[4], total)
}

/// Bytes received plus sent on `lo`.
fn lo_bytes() -> u64 {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .unwrap();
    let f: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    f[0] + f[8]
}

pub fn mem_used_pct() -> f64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    let get = |k: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    100.0 * (get("MemTotal:") - get("MemAvailable:")) / get("MemTotal:")
}

/// Steady load while it lives: one core spinning, and loopback TCP traffic.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s1 = stop.clone();
        let sink = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            while !s1.load(Ordering::Relaxed) {
                if c.read(&mut buf).unwrap_or(0) == 0 {
                    break;
                }
            }
        });
        let s2 = stop.clone();
        let source = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let buf = vec![7u8; 1 << 16];
            // 25 MB/s by a token bucket: a writer delayed by a busy machine catches up, so
            // any few seconds carry the same bytes.
            const RATE: f64 = 25e6;
            let t0 = std::time::Instant::now();
            let mut sent = 0f64;
            while !s2.load(Ordering::Relaxed) {
                if sent < t0.elapsed().as_secs_f64() * RATE {
                    if c.write_all(&buf).is_err() {
                        break;
                    }
                    sent += buf.len() as f64;
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        });
        let s3 = stop.clone();
        let spin = std::thread::spawn(move || {
            let mut x = 0u64;
            while !s3.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
        });
        Load {
            stop,
            threads: vec![sink, source, spin],
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A file written and synced every 50 ms while it lives.
pub struct DiskWrites {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskWrites {
    pub fn start(dir: &std::path::Path) -> DiskWrites {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let path = dir.join("disk-writes");
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::File::create(&path).unwrap();
            let buf = vec![1u8; 1 << 16];
            while !s.load(Ordering::Relaxed) {
                f.write_all(&buf).unwrap();
                f.sync_data().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        DiskWrites {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DiskWrites {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn collect_args(lab: &Lab, out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let d = lab.fleet.dir.path();
    let mut v: Vec<String> = [
        "collect",
        "--policy-dir",
        &lab.policies.display().to_string(),
        "--inventory",
        &lab.inventory.display().to_string(),
        "--ssh-key",
        &lab.fleet.client_key.display().to_string(),
        "--known-hosts",
        &lab.fleet.known_hosts.display().to_string(),
        "--ssh-config",
        &d.join("no-ssh-config").display().to_string(),
        "--state-dir",
        &d.join("collect-state").display().to_string(),
        "--out",
        &out.display().to_string(),
        "--output",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Loopback hosts made fit for a rollout test about where signals come from: every metric
/// change tolerated (events still decide), one hardware × workload group, and gate floors of
/// one host, one control and one sample.
pub fn tolerate_any_change_in_one_group(lab: &Lab) {
    // Eight "hosts" here are one machine read at moments a few hundred milliseconds apart,
    // not eight independent machines: a one-second disk or CPU reading of one differs from
    // another's by chance alone, far past any real threshold. The gate's statistics are
    // checked by the gate tests and `fleetward bench verdicts`; here every change is
    // tolerated, and events (reboots, kernel-log errors) still decide.
    let th = lab.policies.join("lib/thresholds.rhai");
    let text = std::fs::read_to_string(&th).unwrap();
    assert!(text.contains("fn max_change(metric) {"));
    std::fs::write(
        &th,
        text.replace(
            "fn max_change(metric) {",
            "fn max_change(metric) {\n    return 1000000.0;",
        ),
    )
    .unwrap();
    // One hardware × workload group: two canaries, six controls.
    let inv = std::fs::read_to_string(&lab.inventory).unwrap();
    std::fs::write(
        &lab.inventory,
        inv.replace(r#""loop-b""#, r#""loop-a""#)
            .replace(r#""db""#, r#""web""#),
    )
    .unwrap();
    // Eight hosts on one machine: this checks where the signals come from, not the
    // statistics, so two hosts, one control and one collection a window are enough.
    let toml = lab.policies.join("fleetward.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("[gates]"), "{text}");
    std::fs::write(
        &toml,
        text.replace(
            "[gates]",
            "[gates]\nmin_host_samples = 1\nmin_hosts = 1\nmin_controls = 1",
        ),
    )
    .unwrap();
}

/// A clean boot's kernel log, as `dmesg` prints it.
const CLEAN_DMESG: &str = "[    0.000000] Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0) #45-Ubuntu SMP PREEMPT_DYNAMIC
[    0.000000] Command line: BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/mapper/vg0-root ro quiet
[    0.412345] ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00-7f])
[    1.734202] EXT4-fs (dm-0): mounted filesystem with ordered data mode. Quota mode: none.
[    3.101010] bnxt_en 0000:3b:00.0 eno1np0: NIC Link is Up, 25000 Mbps full duplex
";

/// Signals on `lo`, so the test's own traffic is what the collector counts.
const ON_LO: [(&str, &str); 2] = [
    ("const SAMPLE_WINDOW = 10;", "const SAMPLE_WINDOW = 3;"),
    (r#"source: "ssh","#, r#"source: "ssh", interfaces: ["lo"],"#),
];

#[test]
fn the_collector_over_sshd_agrees_with_a_direct_reading_of_proc() {
    let lab = Lab::new(2, &ON_LO);
    for h in lab.names() {
        lab.fault(&h, "real-signals", "");
    }
    let out = lab.fleet.dir.path().join("samples.csv");
    let load = Load::start();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (b0, t0) = cpu_now();
    let n0 = lo_bytes();
    let at0 = std::time::Instant::now();
    let o = lab.fleetward(&collect_args(&lab, &out, &[]));
    let secs = at0.elapsed().as_secs_f64();
    let (b1, t1) = cpu_now();
    let n1 = lo_bytes();
    let mem = mem_used_pct();
    drop(load);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    // One round trip per host per collection, and what it cost.
    for h in v["hosts"].as_array().unwrap() {
        assert_eq!(h["round_trips"], 1, "{h}");
        assert_eq!(h["ok"], 1, "{h}");
        assert!(h["bytes"].as_u64().unwrap() > 100, "{h}");
        assert!(h.get("errors").is_none(), "{h}");
        eprintln!(
            "{}: {} round trip(s), {} bytes, {} ms for a 3 s window",
            h["host"], h["round_trips"], h["bytes"], h["max_ms"]
        );
    }
    let direct_cpu = 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64;
    let direct_net = (n1 - n0) as f64 * 8.0 / 1e6 / secs;
    // The samples file, in the gate's schema.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("host,timestamp,metric,value"));
    let mut got: std::collections::BTreeMap<(String, String), f64> = Default::default();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        got.insert((f[0].to_string(), f[2].to_string()), f[3].parse().unwrap());
    }
    for h in lab.names() {
        let g = |m: &str| {
            *got.get(&(h.clone(), m.to_string()))
                .unwrap_or_else(|| panic!("no {m} from {h}: {text}"))
        };
        let (cpu, net, m) = (
            g("cpu_util_pct"),
            g("net_throughput_mbps"),
            g("mem_used_pct"),
        );
        // The collector's window is the last 3 s of the direct one (which also covers the
        // SSH connection), under the same steady load: close, not equal.
        assert!(
            (cpu - direct_cpu).abs() < 20.0,
            "{h}: cpu {cpu:.1}% against {direct_cpu:.1}% read directly"
        );
        assert!(
            (net - direct_net).abs() < 0.35 * direct_net,
            "{h}: lo {net:.1} Mbit/s against {direct_net:.1} read directly"
        );
        assert!(
            (m - mem).abs() < 3.0,
            "{h}: memory {m:.1}% against {mem:.1}% read directly"
        );
        assert!(direct_net > 50.0, "the load made {direct_net:.1} Mbit/s");
    }
    eprintln!(
        "collector: cpu {:.1}% net {:.1} Mbit/s; direct: cpu {direct_cpu:.1}% net {direct_net:.1} Mbit/s",
        got[&(lab.names()[0].clone(), "cpu_util_pct".to_string())],
        got[&(lab.names()[0].clone(), "net_throughput_mbps".to_string())],
    );
}

#[test]
fn collect_names_the_hosts_it_could_not_read_and_keeps_the_rest() {
    let lab = Lab::new(3, &ON_LO);
    let names = lab.names();
    lab.fault(&names[0], "real-signals", "");
    lab.fault(&names[1], "fault-unreachable", "");
    // A host whose `sh` prints something that is not the collector's protocol.
    lab.fault(&names[2], "fault-fail-sh", "");
    let out = lab.fleet.dir.path().join("samples.parquet");
    let o = lab.fleetward(&collect_args(&lab, &out, &["--window", "1"]));
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts[0]["ok"], 1, "{}", hosts[0]);
    let e1 = hosts[1]["errors"].to_string();
    assert!(e1.contains(&names[1]) && e1.contains("unreachable"), "{e1}");
    let e2 = hosts[2]["errors"].to_string();
    assert!(e2.contains("exited 1"), "{e2}");
    assert!(out.exists(), "the readable host's samples are written");
    // An unknown host and a bad source are errors before anything is collected.
    let o = lab.fleetward(&collect_args(&lab, &out, &["--host", "nope"]));
    assert_eq!(code(&o), 1);
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(said.contains("`nope` is not in the inventory"), "{said}");
    // A target selects by host fields: one hardware class here, none for an unknown one.
    let o = lab.fleetward(&collect_args(&lab, &out, &["--target", "hardware=nope"]));
    assert_eq!(code(&o), 1);
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(said.contains("no hosts to collect from"), "{said}");
    let o = lab.fleetward(&collect_args(
        &lab,
        &out,
        &["--target", "name=host00", "--window", "1"],
    ));
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["hosts"].as_array().unwrap().len(), 1, "{v}");
    let o = lab.fleetward(&collect_args(&lab, &out, &["--source", "snmp"]));
    assert_eq!(code(&o), 1);
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(said.contains("`snmp`"), "{said}");
}

/// The shipped policy's signals (the real collector on every host) and its built-in checks,
/// over 8 sshd hosts: the rollout completes, every host's metrics came from `/proc`, and no
/// host was sent a command outside what the policy and fleetward's scripts provide.
#[test]
fn a_rollout_on_the_real_collector_and_built_in_checks_completes() {
    let lab = Lab::new(
        8,
        &[
            ("const SAMPLE_WINDOW = 10;", "const SAMPLE_WINDOW = 1;"),
            ("const SAMPLE_EVERY = 300;", "const SAMPLE_EVERY = 1;"),
        ],
    );
    tolerate_any_change_in_one_group(&lab);
    // The kernel log is a fixture of a clean boot, read by the real script through a `dmesg`
    // shim: this machine's own log may hold lines of any class (and `dmesg_restrict` keeps it
    // from an unprivileged login user), and this test is about the rollout completing. The
    // checks on this machine's own journal, dmesg and systemd are the engine's
    // `the_scripts_run_on_this_machine` and `the_collector_reads_this_machines_proc`.
    for h in lab.names() {
        lab.fault(&h, "real-signals", "");
        lab.fault(&h, "dmesg-fixture", CLEAN_DMESG);
    }
    let mut args = lab.start_args(&[]);
    let i = args.iter().position(|a| a == "--bake").unwrap();
    args[i + 1] = "3".into();
    // Steady disk writes, so every window has completed I/O to time.
    let io = DiskWrites::start(lab.fleet.dir.path());
    let o = lab.fleetward(&args);
    drop(io);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let allowed = [
        "sh -c fleetward-check units",
        "sh -c fleetward-check benchmark",
        "sh -c fleetward-signals ",
        "lbctl drain ",
        "lbctl undrain ",
        "apt-get install -y linux-image-",
        "grub-set-default ",
        "grub-reboot ",
        "grub-editenv list",
        "uname -r",
        "cat /proc/sys/kernel/random/boot_id",
        "systemctl reboot (one-shot",
    ];
    for h in lab.names() {
        let cmds = lab.commands(&h);
        assert!(
            cmds.iter()
                .any(|(_, c)| c.starts_with("sh -c fleetward-signals 0 0")),
            "{h}: no kernel-log check: {cmds:?}"
        );
        for (_, c) in &cmds {
            assert!(
                allowed.iter().any(|a| c.starts_with(a)),
                "{h} was sent `{c}`, which nothing in the shipped policy provides"
            );
        }
    }
    // The post-boot kernel-log check read a log and found it clean.
    let journal = std::fs::read_to_string(lab.state.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("kernel log clean since boot (dmesg"),
        "{journal}"
    );
    // Every stage's samples hold the collector's metrics, read from /proc.
    let samples = std::fs::read_to_string(lab.state.join("stage-00.samples.csv")).unwrap();
    for m in [
        "cpu_util_pct",
        "mem_used_pct",
        "kernel_panics",
        "kernel_errors",
    ] {
        assert!(samples.contains(&format!(",{m},")), "no {m}: {samples}");
    }
}

/// The benchmark set over loopback sshd, measured for real on this machine: every canary runs
/// it right before its install and again in its post-check, both runs are journaled, the
/// gate pairs each host with itself, and a kernel that makes the disk four times slower (the
/// stand-in scales what the real `fio` or `dd` measured, once the host runs the new kernel)
/// pauses the canaries on the disk benchmark. The temporary files are gone afterwards.
#[test]
fn benchmarks_pair_each_host_with_itself_and_a_slower_disk_pauses_the_canaries() {
    let lab = Lab::new(8, &[]);
    let dir = lab.fleet.dir.path().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let rollout = lab.policies.join("rollout.rhai");
    let text = std::fs::read_to_string(&rollout).unwrap();
    std::fs::write(
        &rollout,
        text.replace(
            r#"const BENCH_DIR = "/var/tmp";"#,
            &format!("const BENCH_DIR = \"{}\";", dir.display()),
        ),
    )
    .unwrap();
    // The benchmark threshold as shipped (the lab tolerates benchmark changes otherwise).
    let th = lab.policies.join("lib/thresholds.rhai");
    let text = std::fs::read_to_string(&th).unwrap();
    let tolerant = "fn bench_change(metric) {\n    return 1000000.0;\n";
    assert!(text.contains(tolerant), "{text}");
    std::fs::write(&th, text.replace(tolerant, "fn bench_change(metric) {\n")).unwrap();
    // One hardware class: its four canaries are one paired test per metric.
    let inv = std::fs::read_to_string(&lab.inventory).unwrap();
    std::fs::write(&lab.inventory, inv.replace(r#""loop-b""#, r#""loop-a""#)).unwrap();
    for h in lab.names() {
        lab.fault(&h, "regress", "bench_disk_write_mbps 0.25\n");
    }
    // One host has no `fio`: it falls back to `dd` and says so.
    let canaries = lab.plan_stages()[0].1.clone();
    let no_fio = canaries[0].clone();
    lab.fault(&no_fio, "fault-without-fio", "");
    let o = lab.start(&[]);
    assert_eq!(code(&o), 2, "{}\n{}", stdout(&o), stderr(&o));
    let lines = crate::rollout::json_lines(&o);
    let gates = crate::rollout::events(&lines, "gate_evaluated");
    let gate = gates
        .first()
        .unwrap_or_else(|| panic!("no gate: {lines:?}"));
    assert_eq!(gate["verdict"], "pause", "{gate}");
    let reasons = gate["reasons"].to_string();
    assert!(
        reasons.contains("loop-a/*: bench_disk_write_mbps -")
            && reasons.contains("(benchmark, 4 hosts each against itself"),
        "{reasons}"
    );
    // Both runs of every canary are in the journal, measured by real tools.
    let journal = std::fs::read_to_string(lab.state.join("journal.jsonl")).unwrap();
    let runs: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"]["type"] == "benchmarked")
        .collect();
    assert_eq!(runs.len(), 8, "{journal}");
    let fio = std::path::Path::new("/usr/bin/fio").exists();
    for r in &runs {
        let disk_tool = if fio && r["event"]["host"] != no_fio.as_str() {
            "fio"
        } else {
            "dd"
        };
        let results = r["event"]["results"].as_array().unwrap();
        let tools: Vec<(String, String, usize)> = results
            .iter()
            .map(|x| {
                (
                    x["metric"].as_str().unwrap().to_string(),
                    x["tool"].as_str().unwrap().to_string(),
                    x["values"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert!(
            tools.contains(&("bench_cpu_sha256_mbps".into(), "openssl".into(), 3)),
            "{tools:?}"
        );
        assert!(
            tools.contains(&("bench_mem_fill_mbps".into(), "dd".into(), 3)),
            "{tools:?}"
        );
        assert!(
            tools.contains(&("bench_disk_write_mbps".into(), disk_tool.into(), 3)),
            "{tools:?}"
        );
        // Random-read latencies come from `fio` only.
        assert_eq!(
            tools.contains(&("bench_disk_randread_p99_us".into(), "fio".into(), 3)),
            disk_tool == "fio",
            "{tools:?}"
        );
        for x in results {
            for v in x["values"].as_array().unwrap() {
                assert!(v.as_f64().unwrap() > 0.0, "{x}");
            }
        }
    }
    for phase in ["before", "after"] {
        assert_eq!(
            runs.iter().filter(|r| r["event"]["phase"] == phase).count(),
            4
        );
    }
    // The host's record shows the change; the gate's pairs are files beside the journal.
    assert!(journal.contains("% on before)"), "{journal}");
    assert!(
        journal.contains(
            "note: disk: fio is not installed on this host: dd instead, without random-read latencies"
        ),
        "{journal}"
    );
    let pairs = std::fs::read_to_string(lab.state.join("stage-00.bench.csv")).unwrap();
    assert!(pairs.contains(",bench_disk_write_mbps,"), "{pairs}");
    assert!(lab.state.join("stage-00.bench-before.csv").exists());
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// A tiny health endpoint on loopback: `GET /h/NAME` answers 200 `ok`, or 503 for the
/// hosts in `sick`; every path asked for is kept.
struct Health {
    port: u16,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Health {
    fn start(sick: Vec<String>) -> Health {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                            .unwrap();
                        let mut buf = [0u8; 2048];
                        let n = c.read(&mut buf).unwrap_or(0);
                        let req = String::from_utf8_lossy(&buf[..n]).to_string();
                        let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                        let name = path.strip_prefix("/h/").unwrap_or("").to_string();
                        s2.lock().unwrap().push(path);
                        let (status, body) = if sick.contains(&name) {
                            ("503 Service Unavailable", "draining")
                        } else {
                            ("200 OK", "ok")
                        };
                        let _ = c.write_all(
                            format!(
                                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        Health {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The application-health check fetched by the controller itself (`HEALTH_FROM =
/// "controller"`) over a real HTTP listener: every host's `health_url` is asked once by
/// fleetward, never by the host, and the host whose service answers 503 is quarantined at its
/// post-check with the answer on record while the rest take the kernel.
#[test]
fn health_checks_from_the_controller_quarantine_the_host_that_answers_503() {
    let lab = Lab::new(
        8,
        &[(
            r#"const HEALTH_FROM = "host";"#,
            r#"const HEALTH_FROM = "controller";"#,
        )],
    );
    let stages = lab.plan_stages();
    let sick = stages.last().unwrap().1[0].clone();
    let health = Health::start(vec![sick.clone()]);
    let mut inv = std::fs::read_to_string(&lab.inventory).unwrap();
    for h in lab.names() {
        let from = format!("{{ name = \"{h}\", ");
        assert!(inv.contains(&from), "{inv}");
        inv = inv.replace(
            &from,
            &format!(
                "{from}health_url = \"http://127.0.0.1:{}/h/{h}\", ",
                health.port
            ),
        );
    }
    std::fs::write(&lab.inventory, inv).unwrap();
    let o = lab.start(&[]);
    let st = lab.status();
    let failed: Vec<&Value> = st["failed"].as_array().unwrap().iter().collect();
    assert_eq!(failed.len(), 1, "{st}\n{}", stderr(&o));
    assert_eq!(failed[0]["host"], sick.as_str());
    assert_eq!(failed[0]["step"], "post_check");
    let out = failed[0]["output"].as_str().unwrap();
    assert!(
        out.contains("answered 503, expected 200; body: draining"),
        "{out}"
    );
    let journal = std::fs::read_to_string(lab.state.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("answered 200 (from the controller)"),
        "{journal}"
    );
    let seen = health.seen.lock().unwrap().clone();
    for h in lab.names() {
        assert_eq!(
            seen.iter().filter(|p| **p == format!("/h/{h}")).count(),
            1,
            "{h}: {seen:?}"
        );
        assert!(
            !lab.commands(&h)
                .iter()
                .any(|(_, c)| c.contains("fleetward-check http")),
            "{h} was sent the host-side http check"
        );
        if h != sick {
            assert_eq!(lab.kernel(&h), crate::rollout::TARGET, "{h}");
        }
    }
    // The quarantined host is not acknowledged: the rollout says so in its phase and exit code.
    assert_eq!(st["phase"], "completed_with_failures", "{}", stdout(&o));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}
