//! Signals from hosts as gate samples: the agentless collector ([`SCRIPT`], one POSIX `sh`
//! script sent with its arguments over the executor, reading `/proc`), the pure parser that
//! turns what it prints into samples with the standard metric names ([`parse`]), and the
//! line format of metrics commands ([`parse_metrics`]).

pub mod collect;
pub mod prometheus;

use crate::exec::RemoteCommand;
use std::collections::BTreeMap;

/// The collector, run as `sh -c SCRIPT fleetward-signals WINDOW SINCE [-d DEV]… [-i IFACE]…`.
pub const SCRIPT: &str = include_str!("signals.sh");

/// `$0` of the collector: how a host stand-in or the simulator recognises a collection.
pub const ARGV0: &str = "fleetward-signals";

/// The protocol version the collector prints first.
pub const PROTOCOL: &str = "1";

/// Kernel-log classes the collector counts, and the event each one feeds: panics, oopses
/// and `BUG:`s are `kernel_panics` (the kernel is broken), the rest `kernel_errors`.
pub const KLOG_CLASSES: [(&str, &str); 7] = [
    ("panic", "kernel_panics"),
    ("oops", "kernel_panics"),
    ("bug", "kernel_panics"),
    ("soft_lockup", "kernel_errors"),
    ("hung_task", "kernel_errors"),
    ("mce", "kernel_errors"),
    ("io_error", "kernel_errors"),
];

/// Every kernel-log class, the default of `signals().kernel_log` and the `kernel_log` check.
pub fn all_classes() -> Vec<String> {
    KLOG_CLASSES.iter().map(|(c, _)| c.to_string()).collect()
}

/// Checks that each of `classes` is a kernel-log class the collector counts.
pub fn check_classes(classes: &[String]) -> Result<(), String> {
    match classes
        .iter()
        .find(|c| !KLOG_CLASSES.iter().any(|(k, _)| k == c))
    {
        Some(c) => {
            let known: Vec<&str> = KLOG_CLASSES.iter().map(|(k, _)| *k).collect();
            Err(format!(
                "unknown kernel-log class `{c}` (known: {})",
                known.join(", ")
            ))
        }
        None => Ok(()),
    }
}

/// One metric sample of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub timestamp: f64,
    pub metric: String,
    pub value: f64,
}

/// What one collection reads: the window, where kernel-log counting starts, and which
/// devices and interfaces (empty: the collector's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Seconds of one-second readings.
    pub window: u64,
    /// Epoch seconds; kernel-log lines before it are not counted (0: the whole boot).
    pub since: u64,
    pub devices: Vec<String>,
    pub interfaces: Vec<String>,
}

impl Request {
    /// The collector's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut out = vec![self.window.to_string(), self.since.to_string()];
        for d in &self.devices {
            out.push("-d".into());
            out.push(d.clone());
        }
        for i in &self.interfaces {
            out.push("-i".into());
            out.push(i.clone());
        }
        out
    }

    /// The one command of a collection: arguments passed as data, never spliced into shell.
    pub fn command(&self) -> RemoteCommand {
        let mut argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            SCRIPT.to_string(),
            ARGV0.to_string(),
        ];
        argv.extend(self.args());
        RemoteCommand { argv }
    }

    /// A collection request read back from a command line (for the simulator and stand-ins).
    pub fn from_argv(argv: &[String]) -> Option<Request> {
        let [sh, c, _script, argv0, rest @ ..] = argv else {
            return None;
        };
        if sh != "sh" || c != "-c" || argv0 != ARGV0 {
            return None;
        }
        let mut r = Request {
            window: rest.first()?.parse().ok()?,
            since: rest.get(1)?.parse().ok()?,
            ..Request::default()
        };
        let mut it = rest.iter().skip(2);
        while let Some(flag) = it.next() {
            let v = it.next()?.clone();
            match flag.as_str() {
                "-d" => r.devices.push(v),
                "-i" => r.interfaces.push(v),
                _ => return None,
            }
        }
        Some(r)
    }
}

/// What the collector's output could not be read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the signals collector printed no `fleetward-signals` header (first line: `{0}`)")]
    NoHeader(String),
    #[error("the signals collector speaks protocol `{0}`, this fleetward speaks `1`")]
    Version(String),
}

/// One collection, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collection {
    pub boot_id: Option<String>,
    /// Boot time, epoch seconds.
    pub btime: Option<u64>,
    /// The host's clock at the end of the window.
    pub host_now: Option<u64>,
    pub samples: Vec<Sample>,
    /// Kernel-log lines per class, and where they were read (`journal` or `dmesg`).
    pub klog: BTreeMap<String, u64>,
    pub klog_source: Option<String>,
    pub units_failed: Option<u64>,
    /// What the host could not read, as `what: reason`.
    pub missing: Vec<String>,
    /// Lines the parser could not read.
    pub bad: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Reading {
    up: f64,
    cpu: Option<[u64; 8]>,
    disks: BTreeMap<String, [u64; 4]>,
    nets: BTreeMap<String, [u64; 2]>,
    psi: BTreeMap<String, u64>,
}

fn nums<const N: usize>(fields: &[&str]) -> Option<[u64; N]> {
    if fields.len() < N {
        return None;
    }
    let mut out = [0u64; N];
    for (o, f) in out.iter_mut().zip(fields) {
        *o = f.parse().ok()?;
    }
    Some(out)
}

/// Reads the collector's output into samples stamped `now` (the controller's clock, epoch
/// seconds) with the standard metric names:
/// - `cpu_util_pct`: busy share of all CPU time over the window (idle and iowait are idle);
/// - `mem_used_pct`: `MemTotal - MemAvailable` over `MemTotal`;
/// - `io_latency_p50_ms`, `io_latency_p99_ms`: milliseconds per completed I/O in each
///   one-second reading of each device, p50 and p99 over all of them (seconds without a
///   completed I/O say nothing and are left out);
/// - `net_throughput_mbps`: bytes received and sent on the interfaces, in Mbit/s;
/// - `psi_RESOURCE_some_pct`, `psi_RESOURCE_full_pct`: share of the window stalled;
/// - the events `kernel_panics` and `kernel_errors`: kernel-log lines of the classes in
///   `classes` (see [`KLOG_CLASSES`]) since the request's `since`.
///
/// Failed systemd units are kept in [`Collection::units_failed`], not sampled: a count of
/// units is a state the `units` check judges, not a level to compare with controls.
///
/// A counter that went backwards (a reset) leaves that interval out.
pub fn parse(text: &str, now: f64, classes: &[String]) -> Result<Collection, ParseError> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let version = first
        .strip_prefix(ARGV0)
        .map(str::trim)
        .ok_or_else(|| ParseError::NoHeader(first.to_string()))?;
    if version != PROTOCOL {
        return Err(ParseError::Version(version.to_string()));
    }
    let mut c = Collection::default();
    let mut readings: Vec<Reading> = Vec::new();
    let mut mem: Option<[u64; 2]> = None;
    for line in lines {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        let ok = match f.as_slice() {
            ["boot_id", id] => {
                c.boot_id = Some(id.to_string());
                true
            }
            ["btime", n] => n.parse().map(|n| c.btime = Some(n)).is_ok(),
            ["now", n] => n.parse().map(|n| c.host_now = Some(n)).is_ok(),
            ["@", up] => match up.parse::<f64>() {
                Ok(up) if up.is_finite() => {
                    readings.push(Reading {
                        up,
                        ..Reading::default()
                    });
                    true
                }
                _ => false,
            },
            ["cpu", rest @ ..] => match (readings.last_mut(), nums::<8>(rest)) {
                (Some(r), Some(v)) => {
                    r.cpu = Some(v);
                    true
                }
                _ => false,
            },
            ["disk", name, rest @ ..] => match (readings.last_mut(), nums::<4>(rest)) {
                (Some(r), Some(v)) => {
                    r.disks.insert(name.to_string(), v);
                    true
                }
                _ => false,
            },
            ["net", name, rest @ ..] => match (readings.last_mut(), nums::<2>(rest)) {
                (Some(r), Some(v)) => {
                    r.nets.insert(name.to_string(), v);
                    true
                }
                _ => false,
            },
            ["psi", res, kind, total] => match (readings.last_mut(), total.parse::<u64>()) {
                (Some(r), Ok(v)) => {
                    r.psi.insert(format!("{res}_{kind}"), v);
                    true
                }
                _ => false,
            },
            ["mem", rest @ ..] => nums::<2>(rest).map(|v| mem = Some(v)).is_some(),
            ["klog", src, class, n] => match n.parse::<u64>() {
                Ok(n) => {
                    c.klog_source = Some(src.to_string());
                    c.klog.insert(class.to_string(), n);
                    true
                }
                Err(_) => false,
            },
            ["units_failed", n] => n.parse().map(|n| c.units_failed = Some(n)).is_ok(),
            ["missing", what, reason @ ..] => {
                c.missing.push(format!("{what}: {}", reason.join(" ")));
                true
            }
            // A value a stand-in or agent reports directly: `s TIMESTAMP METRIC VALUE`.
            ["s", ts, metric, v] => match (ts.parse::<f64>(), v.parse::<f64>()) {
                (Ok(ts), Ok(v)) if ts.is_finite() && v.is_finite() => {
                    c.samples.push(Sample {
                        timestamp: ts,
                        metric: metric.to_string(),
                        value: v,
                    });
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            c.bad.push(t.to_string());
        }
    }
    let mut push = |metric: &str, value: f64| {
        if value.is_finite() {
            c.samples.push(Sample {
                timestamp: now,
                metric: metric.to_string(),
                value,
            });
        }
    };
    // CPU: first and last readings.
    let cpus: Vec<&[u64; 8]> = readings.iter().filter_map(|r| r.cpu.as_ref()).collect();
    if let (Some(a), Some(b)) = (cpus.first(), cpus.last()) {
        let d: Vec<Option<u64>> = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| y.checked_sub(*x))
            .collect();
        if d.iter().all(Option::is_some) {
            let d: Vec<u64> = d.into_iter().flatten().collect();
            let total: u64 = d.iter().sum();
            let idle = d.get(3).copied().unwrap_or(0) + d.get(4).copied().unwrap_or(0);
            if total > 0 {
                push("cpu_util_pct", 100.0 * (total - idle) as f64 / total as f64);
            }
        }
    }
    if let Some([total, avail]) = mem {
        if total > 0 && avail <= total {
            push(
                "mem_used_pct",
                100.0 * (total - avail) as f64 / total as f64,
            );
        }
    }
    // I/O latency: every device in every one-second interval with completed I/O.
    let mut lat = Vec::new();
    for w in readings.windows(2) {
        let [a, b] = w else { continue };
        for (dev, x) in &a.disks {
            let Some(y) = b.disks.get(dev) else { continue };
            let d = |i: usize| y.get(i)?.checked_sub(*x.get(i)?);
            if let (Some(r), Some(rms), Some(wr), Some(wms)) = (d(0), d(1), d(2), d(3)) {
                if r + wr > 0 {
                    lat.push((rms + wms) as f64 / (r + wr) as f64);
                }
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    if let Some(p) = fleetward_stdlib::stats::quantile(&lat, 0.5) {
        push("io_latency_p50_ms", p);
    }
    if let Some(p) = fleetward_stdlib::stats::quantile(&lat, 0.99) {
        push("io_latency_p99_ms", p);
    }
    // Network and PSI: first and last readings that have them.
    if let (Some(a), Some(b)) = (readings.first(), readings.last()) {
        let secs = b.up - a.up;
        if secs > 0.0 {
            let mut bytes = 0u64;
            let mut any = false;
            for (name, x) in &a.nets {
                let Some(y) = b.nets.get(name) else { continue };
                if let (Some(rx), Some(tx)) = (y[0].checked_sub(x[0]), y[1].checked_sub(x[1])) {
                    bytes += rx + tx;
                    any = true;
                }
            }
            if any {
                push("net_throughput_mbps", bytes as f64 * 8.0 / 1e6 / secs);
            }
            for (key, x) in &a.psi {
                if let Some(d) = b.psi.get(key).and_then(|y| y.checked_sub(*x)) {
                    push(&format!("psi_{key}_pct"), 100.0 * d as f64 / (secs * 1e6));
                }
            }
        }
    }
    if c.klog_source.is_some() {
        let mut events: BTreeMap<&str, u64> = BTreeMap::new();
        for (class, event) in KLOG_CLASSES {
            let counted = events.entry(event).or_default();
            if classes.iter().any(|x| x == class) {
                *counted += c.klog.get(class).copied().unwrap_or(0);
            }
        }
        for (event, n) in events {
            push(event, n as f64);
        }
    }
    Ok(c)
}

/// Parses a metrics command's output: `metric value` or `timestamp metric value` per line;
/// blank lines and `#` comments are skipped. Returns the samples and the lines it could not
/// read (reported, never guessed).
pub fn parse_metrics(text: &str, now: f64) -> (Vec<Sample>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = t.split_whitespace().collect();
        let parsed = match parts.as_slice() {
            [m, v] => v.parse::<f64>().ok().map(|v| (now, *m, v)),
            [ts, m, v] => match (ts.parse::<f64>(), v.parse::<f64>()) {
                (Ok(ts), Ok(v)) => Some((ts, *m, v)),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some((timestamp, metric, value)) if value.is_finite() && timestamp.is_finite() => out
                .push(Sample {
                    timestamp,
                    metric: metric.to_string(),
                    value,
                }),
            _ => bad.push(t.to_string()),
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests;
