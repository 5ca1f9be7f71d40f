//! The `rollout` policy kind: what `rollout.rhai` must and may define, and the checks its
//! results pass (planning and the controller read them).

use crate::error::Invalid;
use crate::plan::spec::{parse_blast_radius, parse_windows, CanaryCount, Eligibility};
use crate::rollout::spec::{FailureBudget, Signals, Steps};
use crate::runtime::kinds::{
    check_count, check_kernel, check_positive, json, typed, FnSpec, KindSpec,
};
use rhai::Dynamic;
use serde_json::Value;

fn check_eligible(d: &Dynamic) -> Result<Value, Invalid> {
    let v = json(d)?;
    Eligibility::from_json(&v)?;
    Ok(v)
}

fn check_canary(d: &Dynamic) -> Result<Value, Invalid> {
    let v = json(d)?;
    CanaryCount::from_json(&v)?;
    Ok(v)
}

fn check_blast_radius(d: &Dynamic) -> Result<Value, Invalid> {
    let v = json(d)?;
    parse_blast_radius(&v)?;
    Ok(v)
}

fn check_windows(d: &Dynamic) -> Result<Value, Invalid> {
    let v = json(d)?;
    parse_windows(&v)?;
    Ok(v)
}

fn check_waves(d: &Dynamic) -> Result<Value, Invalid> {
    let (w, v) = typed::<Vec<f64>>(d)?;
    if w.is_empty() {
        return Err("the wave list is empty".into());
    }
    let mut prev = 0.0;
    for (i, p) in w.iter().enumerate() {
        if !p.is_finite() || *p <= prev || *p > 100.0 {
            return Err(format!(
                "wave {i} is `{p}`: waves must be cumulative percentages, rising, in (0, 100]"
            )
            .into());
        }
        prev = *p;
    }
    if (prev - 100.0).abs() > f64::EPSILON {
        return Err(format!("the last wave is `{prev}`, it must be 100").into());
    }
    Ok(v)
}

fn check_steps(d: &Dynamic) -> Result<Value, Invalid> {
    let (s, v) = typed::<Steps>(d)?;
    s.validate()?;
    Ok(v)
}

fn check_way_back(d: &Dynamic) -> Result<Value, Invalid> {
    let (s, v) = typed::<Steps>(d)?;
    s.validate_way_back()?;
    Ok(v)
}

fn check_on_fail(d: &Dynamic) -> Result<Value, Invalid> {
    let v = json(d)?;
    crate::rollout::spec::OnFail::parse(&v)?;
    Ok(v)
}

fn check_recover(d: &Dynamic) -> Result<Value, Invalid> {
    let v = json(d)?;
    crate::rollout::spec::Recover::parse(&v)?;
    Ok(v)
}

fn check_budget(d: &Dynamic) -> Result<Value, Invalid> {
    typed::<FailureBudget>(d).map(|x| x.1)
}

fn check_signals(d: &Dynamic) -> Result<Value, Invalid> {
    let (s, v) = typed::<Signals>(d)?;
    s.validate()?;
    Ok(v)
}

/// The kind.
pub const ROLLOUT: KindSpec = KindSpec {
    name: "rollout",
    doc: "Which hosts take the new kernel, in which waves, how fast.",
    required: &[
        FnSpec {
            name: "eligible",
            params: &["host"],
            returns: "`true`, `false` or `exclude(reason)`",
            doc: "Whether a host may take part in the rollout, and if not, why.",
            check: check_eligible,
        },
        FnSpec {
            name: "canary",
            params: &["group"],
            returns: "a non-negative int, `\"auto\"` or `#{auto: true, floor: 2, cap: 6}`",
            doc: "How many canaries to take from a hardware × workload group: a count, or sized by power from the production history (the fewest from floor to cap whose expected MDE at the canary gate is within every metric's threshold).",
            check: check_canary,
        },
        FnSpec {
            name: "waves",
            params: &[],
            returns: "an array of rising cumulative percentages ending in 100",
            doc: "The waves, as cumulative percentages of the eligible fleet.",
            check: check_waves,
        },
        FnSpec {
            name: "bake",
            params: &["wave"],
            returns: "a non-negative int (seconds)",
            doc: "How long to watch a stage (`wave.kind`, `wave.wave`, `wave.part`) before its gate.",
            check: check_count,
        },
    ],
    optional: &[
        FnSpec {
            name: "target_kernel",
            params: &[],
            returns: "a kernel version string",
            doc: "The kernel to roll out (`--kernel` overrides it).",
            check: check_kernel,
        },
        FnSpec {
            name: "max_in_flight",
            params: &["wave"],
            returns: "a positive int",
            doc: "How many hosts of a stage may be updating at once. Default: no limit.",
            check: check_positive,
        },
        FnSpec {
            name: "blast_radius",
            params: &[],
            returns: "a map from scope to `#{in_flight, per_wave}` (counts or `percent(n)`)",
            doc: "Limits per rack, datacenter, hardware, workload, group or `fact:NAME`. Default: none.",
            check: check_blast_radius,
        },
        FnSpec {
            name: "windows",
            params: &[],
            returns: "an array of `#{days, start, end, tz}`",
            doc: "Maintenance windows batches must fit in. Default: `[]`, any time.",
            check: check_windows,
        },
        FnSpec {
            name: "host_time",
            params: &["group"],
            returns: "a non-negative int (seconds)",
            doc: "Estimated time to update one host of a group. Default: 15 minutes.",
            check: check_count,
        },
        FnSpec {
            name: "steps",
            params: &["host"],
            returns: "a map of step name to commands (`#{name, run, timeout, expect}`) or built-in checks (`#{name, check, timeout, …}`)",
            doc: "The commands of each step for one host: pre_check, drain, install, set_boot, reboot, wait_up, post_check, commit_boot, undrain, probe. `set_boot` may boot the new kernel once (`grub-reboot`) and `commit_boot` make it the default (`grub-set-default`) only after verification and post-checks pass; a host that comes back on the kernel it ran before is quarantined (\"boot fell back\"). `probe` has `kernel`, `boot_id` and `boot_entry` (default `grub-editenv list`, whose `saved_entry` is journaled with the running kernel before the host's first step). A command is `run: [ARGV…]` with `expect`; a check is `check: \"kernel_log\"` (`classes`), `\"units\"` (`active`), `\"http\"` (`url`, `status`, `body_contains`; `from`: `\"host\"`, the default, fetches with curl or wget on the host, `\"controller\"` fetches from fleetward itself) or `\"benchmark\"` (post_check only: `suites` of cpu, memory, disk, network; `repeat`, default 5; `dir`, default /var/tmp; `disk_mb`, default 256; `peer`, an iperf3 server for network), which fleetward also runs right before install so the gate compares each host with itself: metrics bench_cpu_sha256_mbps (openssl speed, else sha256sum), bench_mem_fill_mbps (dd), bench_disk_write_mbps and bench_disk_read_mbps (fio, else dd with direct I/O, on a temporary file it removes), bench_disk_randread_p50_us and bench_disk_randread_p99_us (random 4 KiB direct reads for 1 s, fio only: a host without fio says so and measures the rest with dd), bench_net_mbps (iperf3); latencies (`_us`) are higher-is-worse, the rest lower-is-worse; a suite that cannot run fails the check with the reason. Needed by `rollout start` and `simulate`.",
            check: check_steps,
        },
        FnSpec {
            name: "rollback_steps",
            params: &["host", "previous"],
            returns: "a map of step name to commands, as `steps(host)`",
            doc: "The steps that take one updated host back to the kernel it ran before the rollout (`fleetward rollout rollback`). `previous` has `kernel` and `boot_entry` as journaled before the host's first step (`boot_entry` is \"\" when none was read) and `from`, the kernel it leaves. The controller runs them as it runs `steps`, verifying the host then runs `previous.kernel`; `install` may be empty, `set_boot` may not; benchmark checks are dropped. Needed by `rollout rollback`.",
            check: check_way_back,
        },
        FnSpec {
            name: "on_fail",
            params: &["stage", "verdict"],
            returns: "`\"pause\"`, `\"rollback\"`, `\"rollback_all\"` or `\"abort\"`",
            doc: "What the controller does when a stage's gate pauses or fails: pause and alert, roll back the stage's hosts, roll back every host on the new kernel, or abort. `stage` has `index`, `name`, `kind`, `wave`; `verdict` has `kind` (`\"pause\"` or `\"fail\"`) and `reasons`. The decision, with the verdict's reasons, is journaled and alerted. Default: `\"pause\"`.",
            check: check_on_fail,
        },
        FnSpec {
            name: "recover",
            params: &["host"],
            returns: "`()` (none) or `#{name, run: [ARGV…], timeout, wait}`",
            doc: "Out-of-band recovery of a host that does not come back from a reboot within `wait_up.timeout` (a BMC's power cycle, for example `ipmitool … chassis power cycle`). `run` runs on the controller, not on the host, as the argument vector it is (host facts as single arguments, no shell), at most once per host per transition, journaled before it runs (`recover_issued`); the controller then waits up to `wait` seconds for a new boot id and goes on with verification. A command that fails, or a host still missing after `wait`, is quarantined. Default: none (the host is quarantined when its wait ends).",
            check: check_recover,
        },
        FnSpec {
            name: "failure_budget",
            params: &[],
            returns: "a map `#{per_stage, total, rollback}` (counts or `percent(n)`)",
            doc: "Failed hosts tolerated per stage and across the rollout before it pauses, and (`rollback`) hosts failed on the way back before a rollback pauses. Default: 1 per stage, 1% in all, 1 in a rollback.",
            check: check_budget,
        },
        FnSpec {
            name: "signals",
            params: &[],
            returns: "a map `#{source, every, timeout, window, devices, interfaces, kernel_log}` or `#{source: \"command\", metrics, every, timeout}` or `#{source: \"prometheus\", url, queries, standard, step, rate, instance, label, batch, every}`",
            doc: "How a stage's hosts and controls are read during its windows, and how often. `source: \"ssh\"` (the default) is fleetward's agentless collector: one SSH round trip reading /proc for `window` seconds (CPU, memory, I/O latency p50/p99 per device, network, PSI), the boot id and the kernel log; `\"command\"` runs `metrics`, which prints `[timestamp] metric value` lines; `\"prometheus\"` runs batched `query_range` requests against `url` with node_exporter's templates for the standard set, overlaid by `queries` (PromQL with `{{instance}}`, `{{host}}` and fact placeholders), the before window read from history and the bake at its end. Needed by `rollout start` and `simulate`.",
            check: check_signals,
        },
        FnSpec {
            name: "before",
            params: &["wave"],
            returns: "a non-negative int (seconds)",
            doc: "How long a stage's hosts and controls are recorded before the first update, for the before/after comparison. Default: the stage's bake; 0 compares host-level values against the controls without a before window.",
            check: check_count,
        },
        FnSpec {
            name: "controls",
            params: &["group"],
            returns: "a non-negative int (hosts)",
            doc: "How many control hosts (not-updated hosts of the group, recorded over the same windows) a group of a stage gets; `group` has `name`, `hardware`, `workload`, `updated` and `available`. Default: 3× the updated hosts, at least 5 and at most 30.",
            check: check_count,
        },
        FnSpec {
            name: "extend_bake",
            params: &["stage"],
            returns: "a non-negative int (seconds; 0 pauses)",
            doc: "How much longer to bake when a gate is inconclusive; `stage` has `index`, `name`, `bake` (seconds) and `extensions` (how many so far). Default: one more bake, once.",
            check: check_count,
        },
    ],
};
