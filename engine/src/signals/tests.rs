use super::*;
use expect_test::{expect, Expect};

fn all_classes() -> Vec<String> {
    KLOG_CLASSES.iter().map(|(c, _)| c.to_string()).collect()
}

/// Parses `input` and renders the samples, the boot id and what was missing or unreadable.
fn check(input: &str, classes: &[String], expect: Expect) {
    let out = match parse(input, 1000.0, classes) {
        Ok(c) => {
            let mut s = String::new();
            if let Some(b) = &c.boot_id {
                s.push_str(&format!("boot_id {b}\n"));
            }
            for x in &c.samples {
                s.push_str(&format!("{} {} {:.4}\n", x.timestamp, x.metric, x.value));
            }
            for m in &c.missing {
                s.push_str(&format!("missing {m}\n"));
            }
            for b in &c.bad {
                s.push_str(&format!("bad {b}\n"));
            }
            s
        }
        Err(e) => format!("error: {e}\n"),
    };
    expect.assert_eq(&out);
}

const TWO_READINGS: &str = "fleetward-signals 1
boot_id 11111111-2222
btime 1700000000
@ 100.0
cpu 100 0 100 700 100 0 0 0
disk sda 1000 2000 500 1500
net eth0 0 0
psi io some 1000000
psi io full 0
@ 102.0
cpu 200 0 200 1500 100 0 0 0
disk sda 1100 2200 600 1800
net eth0 125000000 125000000
psi io some 1500000
psi io full 0
mem 1000 250
now 1700000102
klog journal panic 0
klog journal oops 1
klog journal bug 0
klog journal soft_lockup 0
klog journal hung_task 2
klog journal mce 0
klog journal io_error 1
units_failed 1
";

#[test]
fn computes_standard_metrics_from_counter_deltas() {
    // cpu: 1000 jiffies, 800 idle+iowait -> 20% busy; one interval of 200 I/Os taking
    // 500 ms -> 2.5 ms; 250 MB in 2 s -> 1000 Mbit/s; 0.5 s of io stall in 2 s -> 25%.
    check(
        TWO_READINGS,
        &all_classes(),
        expect![[r#"
            boot_id 11111111-2222
            1000 cpu_util_pct 20.0000
            1000 mem_used_pct 75.0000
            1000 io_latency_p50_ms 2.5000
            1000 io_latency_p99_ms 2.5000
            1000 net_throughput_mbps 1000.0000
            1000 psi_io_full_pct 0.0000
            1000 psi_io_some_pct 25.0000
            1000 kernel_errors 3.0000
            1000 kernel_panics 1.0000
        "#]],
    );
}

#[test]
fn only_the_named_kernel_log_classes_count() {
    check(
        TWO_READINGS,
        &["hung_task".to_string()],
        expect![[r#"
            boot_id 11111111-2222
            1000 cpu_util_pct 20.0000
            1000 mem_used_pct 75.0000
            1000 io_latency_p50_ms 2.5000
            1000 io_latency_p99_ms 2.5000
            1000 net_throughput_mbps 1000.0000
            1000 psi_io_full_pct 0.0000
            1000 psi_io_some_pct 25.0000
            1000 kernel_errors 2.0000
            1000 kernel_panics 0.0000
        "#]],
    );
}

#[test]
fn io_latency_quantiles_span_seconds_and_devices() {
    // Four one-second intervals on two devices; idle seconds (no completions) are left out.
    let mut text = String::from("fleetward-signals 1\n");
    let sda = [(0, 0), (10, 10), (20, 20), (30, 30), (40, 440)];
    let sdb = [(0, 0), (0, 0), (10, 30), (20, 60), (30, 90)];
    for (i, (a, b)) in sda.iter().zip(sdb.iter()).enumerate() {
        text.push_str(&format!(
            "@ {i}\ndisk sda {} {} 0 0\ndisk sdb {} {} 0 0\n",
            a.0, a.1, b.0, b.1
        ));
    }
    // sda: 1, 1, 1, 41 ms; sdb: idle, 3, 3, 3 ms. Seven readings: p50 is the 4th (3 ms),
    // p99 interpolates between the 6th and 7th.
    check(
        &text,
        &[],
        expect![[r#"
            1000 io_latency_p50_ms 3.0000
            1000 io_latency_p99_ms 38.7200
        "#]],
    );
}

#[test]
fn counters_that_go_backwards_are_left_out() {
    check(
        "fleetward-signals 1
@ 1
cpu 100 0 100 700 100 0 0 0
disk sda 1000 2000 500 1500
net eth0 500 500
@ 2
cpu 50 0 100 700 100 0 0 0
disk sda 10 20 5 15
net eth0 100 100
",
        &[],
        expect![""],
    );
}

#[test]
fn missing_parts_and_bad_lines_are_reported_not_guessed() {
    check(
        "fleetward-signals 1
boot_id abc
@ 5
cpu 1 2 3
mem x y
missing klog neither journalctl -k nor dmesg can be read
missing units no systemctl
garbage here
",
        &all_classes(),
        expect![[r#"
            boot_id abc
            missing klog: neither journalctl -k nor dmesg can be read
            missing units: no systemctl
            bad cpu 1 2 3
            bad mem x y
            bad garbage here
        "#]],
    );
}

#[test]
fn direct_samples_keep_their_timestamps() {
    check(
        "fleetward-signals 1\nboot_id b\ns 990 io_latency_p99_ms 12.5\ns 995 cpu_util_pct 40\n",
        &[],
        expect![[r#"
            boot_id b
            990 io_latency_p99_ms 12.5000
            995 cpu_util_pct 40.0000
        "#]],
    );
}

#[test]
fn output_that_is_not_the_collector_is_an_error() {
    check(
        "sh: 1: awk: not found\n",
        &[],
        expect![[r#"
            error: the signals collector printed no `fleetward-signals` header (first line: `sh: 1: awk: not found`)
        "#]],
    );
    check(
        "fleetward-signals 2\n",
        &[],
        expect![[r#"
            error: the signals collector speaks protocol `2`, this fleetward speaks `1`
        "#]],
    );
}

#[test]
fn requests_round_trip_through_the_command_line() {
    let r = Request {
        window: 10,
        since: 1_700_000_000,
        devices: vec!["nvme0n1".into(), "sd a; rm -rf /".into()],
        interfaces: vec!["bond0".into()],
    };
    let cmd = r.command();
    assert_eq!(cmd.argv[0..2], ["sh", "-c"]);
    assert_eq!(cmd.argv[3], ARGV0);
    assert_eq!(Request::from_argv(&cmd.argv), Some(r));
    assert_eq!(Request::from_argv(&["uname".into()]), None);
}

/// The script itself, on this machine's `/proc`: a one-second window yields the standard
/// metrics, and a bad argument stops it with a `missing` line and exit 2.
#[test]
fn the_collector_reads_this_machines_proc() {
    let run = |args: &[&str]| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg(ARGV0)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["1", "0"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let c = parse(&text, 0.0, &all_classes()).unwrap();
    assert!(c.bad.is_empty(), "{:?}", c.bad);
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(c.boot_id.as_deref(), Some(boot.trim()));
    // Network throughput needs an interface other than `lo`, which a bare sandbox may lack.
    let net = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .any(|l| !l.trim_start().starts_with("lo:"));
    let want: &[&str] = if net {
        &["cpu_util_pct", "mem_used_pct", "net_throughput_mbps"]
    } else {
        &["cpu_util_pct", "mem_used_pct"]
    };
    for m in want {
        let v = c.samples.iter().find(|s| s.metric == *m);
        assert!(v.is_some_and(|s| s.value >= 0.0), "{m} in {text}");
    }
    let cpu = c
        .samples
        .iter()
        .find(|s| s.metric == "cpu_util_pct")
        .unwrap();
    assert!(cpu.value <= 100.0);
    let bad = run(&["ten", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stdout),
        "missing window bad window `ten`\n"
    );
}

/// The script's kernel-log classes on a real log's lines: `dmesg` (and an empty
/// `journalctl`, as on a host without a journal) are shims printing a fixture, so every
/// pattern meets the text the kernel prints for it.
#[test]
fn the_collector_counts_kernel_log_classes_from_dmesg() {
    let dir = tempfile::tempdir().unwrap();
    let log = "[    0.000000] Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075)
[  120.000000] Kernel panic - not syncing: Fatal exception
[  121.000000] Oops: 0000 [#1] PREEMPT SMP NOPTI
[  122.000000] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#2] SMP
[  123.000000] BUG: unable to handle page fault for address: ffffb2c4c0a3f000
[  124.000000] watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [kworker/3:1:1234]
[  125.000000] INFO: task jbd2/dm-0-8:512 blocked for more than 120 seconds.
[  126.000000] mce: [Hardware Error]: Machine check events logged
[  127.000000] EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0
[  128.000000] blk_update_request: I/O error, dev sdb, sector 123456 op 0x0:(READ)
[  129.000000] Buffer I/O error on dev sdb1, logical block 15432, async page read
";
    std::fs::write(dir.path().join("log"), log).unwrap();
    for (name, body) in [
        (
            "dmesg",
            format!("#!/bin/sh\ncat '{}'\n", dir.path().join("log").display()),
        ),
        ("journalctl", "#!/bin/sh\nexit 0\n".to_string()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = std::process::Command::new("sh")
        .env("PATH", path)
        .arg("-c")
        .arg(SCRIPT)
        .arg(ARGV0)
        .args(["0", "0"])
        .output()
        .unwrap();
    let c = parse(&String::from_utf8(out.stdout).unwrap(), 0.0, &all_classes()).unwrap();
    assert_eq!(c.klog_source.as_deref(), Some("dmesg"));
    let got: Vec<(&str, u64)> = c.klog.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // The soft lockup line carries `BUG:` too, and the MCE line is both `mce: ` and a
    // hardware error: one line counts once per class it matches.
    assert_eq!(
        got,
        [
            ("bug", 2),
            ("hung_task", 1),
            ("io_error", 2),
            ("mce", 2),
            ("oops", 2),
            ("panic", 1),
            ("soft_lockup", 1),
        ]
    );
}
