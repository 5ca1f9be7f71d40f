//! The `benchmark` check: a short micro-benchmark set (CPU, memory bandwidth, disk, optionally
//! network) run on one host before its update and again after it, so the gate can compare each
//! host with itself. Here: the suites and their metrics, the parse of what the host printed, and
//! the pairing of a host's two runs into gate samples.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The suites a `benchmark` check may name, in the order they run.
pub const SUITES: [&str; 4] = ["cpu", "memory", "disk", "network"];

/// One benchmark metric: its suite, the one tool that measures it (when its suite's fallback
/// does not), and what it measures. A latency is named `…_us` (higher is worse); the others
/// are rates (lower is worse).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub suite: &'static str,
    /// Measured only when the suite runs this tool: `fio`'s random-read latencies have no `dd`
    /// counterpart, so a host without `fio` says so and measures the rest.
    pub only_with: Option<&'static str>,
    pub doc: &'static str,
}

/// Every benchmark metric. All start with [`crate::gate::PAIRED_PREFIX`], which makes the gate
/// compare each host after its update with itself before; the gate reads a name ending in
/// [`crate::gate::PAIRED_LATENCY_SUFFIX`] as higher-is-worse.
pub const METRICS: [Metric; 7] = [
    Metric {
        name: "bench_cpu_sha256_mbps",
        suite: "cpu",
        only_with: None,
        doc: "SHA-256 over 16 KiB blocks, MB/s: `openssl speed -seconds 1 -bytes 16384 sha256`, or else 256 MiB of zeros through `sha256sum`",
    },
    Metric {
        name: "bench_mem_fill_mbps",
        suite: "memory",
        only_with: None,
        doc: "memory fill bandwidth, MB/s: 4 GiB read from /dev/zero into a 64 MiB buffer (`dd`)",
    },
    Metric {
        name: "bench_disk_write_mbps",
        suite: "disk",
        only_with: None,
        doc: "sequential direct write, MB/s, 1 MiB blocks and a final fsync (`fio`, or else `dd oflag=direct conv=fsync`) on a temporary file the check removes",
    },
    Metric {
        name: "bench_disk_read_mbps",
        suite: "disk",
        only_with: None,
        doc: "sequential direct read of that file, MB/s (`fio`, or else `dd iflag=direct`)",
    },
    Metric {
        name: "bench_disk_randread_p50_us",
        suite: "disk",
        only_with: Some("fio"),
        doc: "median completion latency of random 4 KiB direct reads of that file for 1 s, µs (`fio` only)",
    },
    Metric {
        name: "bench_disk_randread_p99_us",
        suite: "disk",
        only_with: Some("fio"),
        doc: "99th percentile of those latencies, µs (`fio` only)",
    },
    Metric {
        name: "bench_net_mbps",
        suite: "network",
        only_with: None,
        doc: "TCP throughput to the policy's `peer`, Mbit/s, receiver side (`iperf3 -c PEER -t 2`)",
    },
];

/// Before or after the host's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchPhase {
    /// Right before the install, after the drain.
    Before,
    /// In the post-check, before the undrain.
    After,
}

impl BenchPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            BenchPhase::Before => "before",
            BenchPhase::After => "after",
        }
    }
}

/// One metric of one benchmark run: the tool that measured it and each repetition's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub metric: String,
    pub tool: String,
    pub values: Vec<f64>,
}

impl BenchResult {
    /// The median of the repetitions.
    pub fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// The suite of a benchmark metric.
pub fn suite_of(metric: &str) -> Option<&'static str> {
    METRICS.iter().find(|m| m.name == metric).map(|m| m.suite)
}

/// What one benchmark run measured, and what it says of how (`note SUITE TEXT` lines: a
/// fallback taken, a metric its tool cannot measure).
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub results: Vec<BenchResult>,
    pub notes: Vec<String>,
}

/// The free text of a `missing SUITE TEXT` or `note SUITE TEXT` line.
fn text_of(line: &str) -> Option<&str> {
    line.trim().splitn(3, ' ').nth(2)
}

/// What the benchmark script printed (`bench METRIC VALUE TOOL` lines), as results per metric
/// with the script's notes; or why it is not usable: a suite that could not run (`missing
/// SUITE REASON`), a value that is not a positive number, a suite asked for that printed
/// nothing, or fewer repetitions than asked for. A metric measured only by a tool the suite
/// did not use (`fio`'s latencies on a host with `dd` only) is not asked for. A benchmark never
/// passes on what it did not measure.
pub fn parse(text: &str, suites: &[String], repeat: u32) -> Result<Measured, String> {
    let mut by: BTreeMap<String, BenchResult> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["bench", metric, value, tool] => {
                let v: f64 = value
                    .parse()
                    .map_err(|_| format!("`{metric}`: `{value}` is not a number"))?;
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("`{metric}` measured `{value}`"));
                }
                let r = by.entry(metric.to_string()).or_insert_with(|| BenchResult {
                    metric: metric.to_string(),
                    tool: tool.to_string(),
                    values: Vec::new(),
                });
                if r.tool != *tool {
                    return Err(format!(
                        "`{metric}` measured by both `{}` and `{tool}` in one run",
                        r.tool
                    ));
                }
                r.values.push(v);
            }
            ["missing", suite, ..] => {
                let why = text_of(line).unwrap_or("no reason given");
                missing.push(format!("`{suite}` could not run: {why}"));
            }
            ["note", suite, ..] => {
                notes.push(format!("{suite}: {}", text_of(line).unwrap_or("")));
            }
            _ => {}
        }
    }
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    for s in suites {
        // The tool the suite ran, as its always-measured metrics name it.
        let used = METRICS
            .iter()
            .filter(|m| m.suite == s && m.only_with.is_none())
            .find_map(|m| by.get(m.name))
            .map(|r| r.tool.as_str());
        let wanted: Vec<&str> = METRICS
            .iter()
            .filter(|m| m.suite == s && m.only_with.is_none_or(|t| used == Some(t)))
            .map(|m| m.name)
            .collect();
        for m in wanted {
            match by.get(m) {
                None => return Err(format!("`{s}` printed no `{m}`")),
                Some(r) if r.values.len() < repeat as usize => {
                    return Err(format!(
                        "`{m}`: {} of {repeat} repetition(s)",
                        r.values.len()
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(Measured {
        results: by.into_values().collect(),
        notes,
    })
}

/// A run in words, for the host's record: each metric's median and tool, and with `before`
/// the change from it (the gate judges it; this is for reading), then the run's notes.
pub fn summary(m: &Measured, before: Option<&[BenchResult]>) -> String {
    let mut out = results_summary(&m.results, before);
    for n in &m.notes {
        out.push_str(&format!("; note: {n}"));
    }
    out
}

fn results_summary(results: &[BenchResult], before: Option<&[BenchResult]>) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| {
            let m = r.median();
            let change = before
                .and_then(|b| b.iter().find(|x| x.metric == r.metric && x.tool == r.tool))
                .map(|b| {
                    let p = (m / b.median() - 1.0) * 100.0;
                    format!(", {p:+.1}% on before")
                })
                .unwrap_or_default();
            format!(
                "{} {m:.1} ({}, median of {}{change})",
                r.metric,
                r.tool,
                r.values.len()
            )
        })
        .collect();
    parts.join("; ")
}

/// The gate samples of one host's two runs, `(timestamp, metric, value)` per repetition, as
/// (before, after): only metrics measured in both runs by the same tool (a tool installed
/// between the runs measures something else), so every host's values are a pair.
pub type PairedSamples = (Vec<(i64, String, f64)>, Vec<(i64, String, f64)>);

pub fn paired(
    before: &[BenchResult],
    before_at: i64,
    after: &[BenchResult],
    after_at: i64,
) -> PairedSamples {
    let mut out = (Vec::new(), Vec::new());
    for a in after {
        let Some(b) = before
            .iter()
            .find(|b| b.metric == a.metric && b.tool == a.tool)
        else {
            continue;
        };
        for (i, v) in b.values.iter().enumerate() {
            out.0.push((before_at + i as i64, b.metric.clone(), *v));
        }
        for (i, v) in a.values.iter().enumerate() {
            out.1.push((after_at + i as i64, a.metric.clone(), *v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn suites(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn check(text: &str, s: &[&str], repeat: u32, expect: expect_test::Expect) {
        let got = match parse(text, &suites(s), repeat) {
            Ok(r) => format!("ok: {}", summary(&r, None)),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn a_run_parses_into_medians_per_metric() {
        check(
            "fleetward-check 1\nbench bench_cpu_sha256_mbps 1786.6 openssl\nbench bench_mem_fill_mbps 17600 dd\n\
             bench bench_cpu_sha256_mbps 1790.1 openssl\nbench bench_mem_fill_mbps 17100 dd\n",
            &["cpu", "memory"],
            2,
            expect!["ok: bench_cpu_sha256_mbps 1788.3 (openssl, median of 2); bench_mem_fill_mbps 17350.0 (dd, median of 2)"],
        );
    }

    /// `fio` measures the random-read latencies too; a host with `dd` only measures the rest
    /// and says why the latencies are missing, and a `fio` run without them is an error.
    #[test]
    fn latencies_are_asked_of_fio_only() {
        let fio = "fleetward-check 1\nbench bench_disk_write_mbps 900 fio\nbench bench_disk_read_mbps 1200 fio\n\
                   bench bench_disk_randread_p50_us 55 fio\nbench bench_disk_randread_p99_us 296 fio\n";
        check(
            fio,
            &["disk"],
            1,
            expect!["ok: bench_disk_randread_p50_us 55.0 (fio, median of 1); bench_disk_randread_p99_us 296.0 (fio, median of 1); bench_disk_read_mbps 1200.0 (fio, median of 1); bench_disk_write_mbps 900.0 (fio, median of 1)"],
        );
        check(
            "fleetward-check 1\nnote disk fio is not installed on this host: dd instead, without random-read latencies\n\
             bench bench_disk_write_mbps 300 dd\nbench bench_disk_read_mbps 400 dd\n",
            &["disk"],
            1,
            expect!["ok: bench_disk_read_mbps 400.0 (dd, median of 1); bench_disk_write_mbps 300.0 (dd, median of 1); note: disk: fio is not installed on this host: dd instead, without random-read latencies"],
        );
        check(
            "fleetward-check 1\nbench bench_disk_write_mbps 900 fio\nbench bench_disk_read_mbps 1200 fio\n",
            &["disk"],
            1,
            expect!["error: `disk` printed no `bench_disk_randread_p50_us`"],
        );
    }

    /// The gate reads each metric's direction from its name: latencies are higher-is-worse.
    #[test]
    fn the_gate_reads_each_metrics_direction_from_its_name() {
        let g = crate::gate::GateSettings::default();
        let latencies = ["bench_disk_randread_p50_us", "bench_disk_randread_p99_us"];
        for m in METRICS {
            assert!(crate::gate::paired(m.name), "{}", m.name);
            let want = if latencies.contains(&m.name) {
                crate::gate::Direction::HigherIsWorse
            } else {
                crate::gate::Direction::LowerIsWorse
            };
            assert_eq!(g.direction(m.name), want, "{}", m.name);
        }
    }

    #[test]
    fn what_was_not_measured_is_an_error() {
        check(
            "fleetward-check 1\nmissing network iperf3 is not installed on this host\n",
            &["network"],
            1,
            expect!["error: `network` could not run: iperf3 is not installed on this host"],
        );
        check(
            "fleetward-check 1\nbench bench_disk_write_mbps 300 dd\n",
            &["disk"],
            1,
            expect!["error: `disk` printed no `bench_disk_read_mbps`"],
        );
        check(
            "fleetward-check 1\nbench bench_cpu_sha256_mbps 300 sha256sum\n",
            &["cpu"],
            3,
            expect!["error: `bench_cpu_sha256_mbps`: 1 of 3 repetition(s)"],
        );
        check(
            "bench bench_cpu_sha256_mbps 0 openssl\n",
            &["cpu"],
            1,
            expect!["error: `bench_cpu_sha256_mbps` measured `0`"],
        );
        check(
            "bench bench_cpu_sha256_mbps fast openssl\n",
            &["cpu"],
            1,
            expect!["error: `bench_cpu_sha256_mbps`: `fast` is not a number"],
        );
    }

    #[test]
    fn only_same_tool_pairs_reach_the_gate() {
        let r = |m: &str, t: &str, v: &[f64]| BenchResult {
            metric: m.into(),
            tool: t.into(),
            values: v.to_vec(),
        };
        let before = [
            r("bench_cpu_sha256_mbps", "sha256sum", &[300.0]),
            r("bench_disk_write_mbps", "dd", &[500.0, 510.0]),
        ];
        let after = [
            r("bench_cpu_sha256_mbps", "openssl", &[1700.0]),
            r("bench_disk_write_mbps", "dd", &[460.0, 470.0]),
        ];
        let (b, a) = paired(&before, 100, &after, 900);
        expect![[r#"
            (
                [
                    (
                        100,
                        "bench_disk_write_mbps",
                        500.0,
                    ),
                    (
                        101,
                        "bench_disk_write_mbps",
                        510.0,
                    ),
                ],
                [
                    (
                        900,
                        "bench_disk_write_mbps",
                        460.0,
                    ),
                    (
                        901,
                        "bench_disk_write_mbps",
                        470.0,
                    ),
                ],
            )
        "#]]
        .assert_debug_eq(&(b, a));
        assert_eq!(
            results_summary(&after, Some(&before)),
            "bench_cpu_sha256_mbps 1700.0 (openssl, median of 1); bench_disk_write_mbps 465.0 (dd, median of 2, -7.9% on before)"
        );
    }
}
