//! `fleetward gate` through the binary: golden verdicts for the four example sample sets, exit
//! codes, and clear errors for bad sample files. Regenerate goldens with `UPDATE_EXPECT=1`.

use crate::support::*;
use expect_test::expect_file;

fn gate_args<'a>(samples: &'a str, baseline: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "gate",
        "--policy-dir",
        "policies",
        "--inventory",
        "policy-examples/fleet/fleet.toml",
        "--baseline",
        baseline,
        "--samples",
        samples,
        "--wave",
        "2",
    ];
    v.extend_from_slice(extra);
    v
}

const BASELINE: &str = "policy-examples/gates/baseline.parquet";

/// Runs one example set: the exit code, the golden human output, and the JSON verdict.
fn example(set: &str, want_code: i32) -> serde_json::Value {
    let samples = format!("policy-examples/gates/wave-{set}.parquet");
    let o = run(&gate_args(&samples, BASELINE, &[]));
    assert_eq!(code(&o), want_code, "{set}: {}{}", stdout(&o), stderr(&o));
    expect_file![root().join(format!("policy-examples/gates/verdict-{set}.txt"))]
        .assert_eq(&stdout(&o));
    let o = run(&gate_args(&samples, BASELINE, &["--output", "json"]));
    assert_eq!(code(&o), want_code);
    serde_json::from_slice(&o.stdout).expect("gate json")
}

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["verdict"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r.as_str().map(String::from))
        .collect()
}

#[test]
fn clean_wave_passes() {
    let v = example("clean", 0);
    assert_eq!(v["verdict"]["verdict"], "pass");
    assert_eq!(v["comparison"]["totals"]["insufficient"], 0);
    assert!(
        v["comparison"]["totals"]["comparisons"]
            .as_u64()
            .unwrap_or(0)
            >= 100
    );
}

#[test]
fn io_regression_pauses_naming_the_hardware_and_metric() {
    let v = example("io-regression", 2);
    assert_eq!(v["verdict"]["verdict"], "pause");
    let r = reasons(&v);
    assert!(!r.is_empty());
    for reason in &r {
        assert!(reason.starts_with("r750/"), "{reason}");
        assert!(reason.contains("io_latency_p99_ms"), "{reason}");
    }
    // Every r750 group is named, and no other hardware.
    for wl in ["batch", "cache", "db", "web"] {
        assert!(
            r.iter().any(|x| x.starts_with(&format!("r750/{wl}:"))),
            "r750/{wl} missing: {r:?}"
        );
    }
}

#[test]
fn reboots_pause_naming_the_reboots() {
    let v = example("reboots", 2);
    assert_eq!(v["verdict"]["verdict"], "pause");
    let r = reasons(&v);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].contains("3 unexpected reboot(s)") && r[0].contains("c6420/db: 3"),
        "{r:?}"
    );
}

#[test]
fn sparse_group_is_inconclusive_for_insufficient_data() {
    // One host of a group reporting cannot be judged: inconclusive (exit 2), never a pass.
    let v = example("sparse-group", 2);
    assert_eq!(v["verdict"]["verdict"], "inconclusive");
    let r = reasons(&v);
    assert!(!r.is_empty());
    for reason in &r {
        assert!(
            reason.starts_with("r640/web: insufficient data"),
            "{reason}"
        );
    }
}

#[test]
fn bad_sample_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        p.to_string_lossy().into_owned()
    };
    let no_value = write(
        "no-value.csv",
        "host,timestamp,metric\nweb0001.ams1,1,cpu_util_pct\n",
    );
    let o = run(&gate_args(&no_value, BASELINE, &[]));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no column `value`"), "{}", stderr(&o));

    // No samples at all is never a pass.
    let empty = write("empty.csv", "host,timestamp,metric,value\n");
    let o = run(&gate_args(&empty, BASELINE, &[]));
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("no samples from updated hosts"),
        "{}",
        stdout(&o)
    );

    let txt = write("samples.txt", "x");
    let o = run(&gate_args(&txt, BASELINE, &[]));
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("unknown sample format"),
        "{}",
        stderr(&o)
    );

    let o = run(&gate_args("no/such/file.parquet", BASELINE, &[]));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));

    // Unknown hosts and unparsable values are left out and reported, never guessed; with
    // nothing left, every group is insufficient.
    let odd = write(
        "odd.csv",
        "host,timestamp,metric,value\nghost.nowhere,1,cpu_util_pct,1.0\nweb0001.ams1,1,cpu_util_pct,NaN\nweb0001.ams1,2,cpu_util_pct,abc\n",
    );
    let o = run(&gate_args(&odd, BASELINE, &["--output", "json"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let w: Vec<&str> = v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(
        w.iter()
            .any(|x| x.contains("1 sample(s)") && x.contains("`ghost.nowhere`")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.contains("2 sample(s)") && x.contains("no numeric value")),
        "{w:?}"
    );
    assert_eq!(v["verdict"]["verdict"], "pause");
}

#[test]
fn a_precomputed_baseline_frame_gives_the_same_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frame = dir.path().join("baseline-frame.parquet");
    let frame_s = frame.to_string_lossy().into_owned();
    // Save the baseline's aggregates while gating the clean wave...
    let o = run(&gate_args(
        "policy-examples/gates/wave-clean.parquet",
        BASELINE,
        &["--save-baseline", &frame_s],
    ));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // ...then gate every example set against the frame alone: sign tests against the
    // baseline medians instead of rank tests, with the same verdicts.
    for (set, want) in [
        ("clean", 0),
        ("io-regression", 2),
        ("reboots", 2),
        ("sparse-group", 2),
    ] {
        let samples = format!("policy-examples/gates/wave-{set}.parquet");
        let o = run(&gate_args(&samples, &frame_s, &["--output", "json"]));
        assert_eq!(code(&o), want, "{set}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        if set == "io-regression" {
            let r = reasons(&v);
            assert!(
                r.iter()
                    .all(|x| x.starts_with("r750/") && x.contains("io_latency_p99_ms")),
                "{r:?}"
            );
        }
    }
    // A frame with a broken row is a clear error.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "group,metric,n,hosts,mean,p50,p90,p99,host_hours\nr750/db,cpu_util_pct,-3,2,1,1,1,1,1\n",
    )
    .expect("write");
    let o = run(&gate_args(
        "policy-examples/gates/wave-clean.parquet",
        &bad.to_string_lossy(),
        &[],
    ));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("must be counts"), "{}", stderr(&o));
}

#[test]
fn the_full_size_baseline_gives_the_same_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = dir.path().join("baseline-full.parquet");
    let full_s = full.to_string_lossy().into_owned();
    let o = run(&[
        "generate",
        "samples",
        "--scenario",
        "baseline",
        "--timestamps",
        "36",
        "--out",
        &full_s,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wrote 1063800 samples"),
        "{}",
        stderr(&o)
    );
    for (set, want) in [
        ("clean", 0),
        ("io-regression", 2),
        ("reboots", 2),
        ("sparse-group", 2),
    ] {
        let samples = format!("policy-examples/gates/wave-{set}.parquet");
        let o = run(&gate_args(&samples, &full_s, &[]));
        assert_eq!(code(&o), want, "{set}: {}{}", stdout(&o), stderr(&o));
    }
}
