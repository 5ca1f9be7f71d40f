//! The simulated executor: hosts that behave like real ones (install, boot entry, reboot with
//! a new boot id and a spell of unreachability, metrics) on the virtual time of the clock they
//! are given, with injected faults. It answers the same commands as the test host stand-in:
//!
//! - `uname -r`, `cat /proc/sys/kernel/random/boot_id`
//! - `apt-get install -y linux-image-VERSION`
//! - `grub-set-default 'Advanced options for Ubuntu>Ubuntu, with Linux VERSION'` (the default
//!   entry), `grub-reboot '…'` (the next boot only: a host in `Faults::boot_falls_back` boots
//!   its default instead), `grub-editenv list` (`saved_entry=…`, `next_entry=…`)
//! - `systemctl reboot`, `systemctl is-system-running`
//! - `lbctl drain|undrain NAME`, `fleetward-validate SUITE`
//! - `fleetward-metrics --window SECS`: `timestamp metric value` lines
//! - the signals collector (`sh -c SCRIPT fleetward-signals …`): its protocol, with the
//!   metrics as direct samples; the checks script (`sh -c SCRIPT fleetward-check
//!   units|http|benchmark`): every unit active, every URL answering 200, benchmarks varying as
//!   real ones do (and slowed by a scenario's `bench_*` regressions on the new kernel)
//! - for drift: the facts command and the fix commands of the shipped `drift.rhai`
//!   (`sysctl -w`, the sysctl persister, `systemctl start|enable`, `modprobe`, `chmod`,
//!   `apt-get install -y --no-install-recommends PKG=VERSION`)

use super::drift::{FactKey, FactTable};
use super::samplegen::{level, Variation};
use crate::clock::{epoch_secs, Clock};
use crate::drift::facts::{as_facts_request, render_facts, Fact, Request};
use crate::drift::Kind;
use crate::exec::{ExecError, Executor, Output, RemoteCommand};
use crate::gate::STANDARD_METRICS;
use crate::model::Host;
use crate::plan::{keyed_hash, splitmix64_finish, SPLITMIX64_GAMMA};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Prefix of the boot-entry title `grub-set-default` is given.
pub const GRUB_TITLE_PREFIX: &str = "Advanced options for Ubuntu>Ubuntu, with Linux ";

/// Samples per metric a `fleetward-metrics` call returns, spread over its window.
const SAMPLES_PER_CALL: usize = 5;

/// The span a simulated collection's samples cover: the shipped policy's `every`.
const COLLECTION_SPAN: u64 = 300;

/// A metric that gets worse on some hosts once they run the new kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    pub metric: String,
    /// Multiplies the metric's value.
    pub factor: f64,
}

/// Faults injected into simulated hosts, by host name.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub regressions: HashMap<String, Vec<Regression>>,
    /// Down from the start.
    pub unreachable: HashSet<String>,
    /// Never come back after a reboot.
    pub never_up: HashSet<String>,
    /// Of those, the ones an out-of-band recovery (`recover(host)`, a power cycle) brings
    /// back: the one-shot entry is spent, so they boot their default entry.
    pub recover_fixes: HashSet<String>,
    /// A one-shot boot (`grub-reboot`) fails and the boot loader falls back to the default.
    pub boot_falls_back: HashSet<String>,
    /// Reboot by themselves this long after booting the new kernel.
    pub unexpected_reboot_after: HashMap<String, Duration>,
    /// Panic this long after booting the new kernel, once: the kernel log shows a panic and
    /// the host reboots into its default entry.
    pub kernel_panic_after: HashMap<String, Duration>,
    /// Commands (by first word) that hang on a host.
    pub hang: HashMap<String, HashSet<String>>,
    /// How the hosts' metrics vary (host spread, daily swing, noise).
    pub variation: Variation,
    /// Drawn into every sample's noise: runs of one scenario with different seeds see
    /// independent noise (0, the default, is the noise of the goldens).
    pub noise_seed: u64,
    /// Each host's own level wanders ([`super::samplegen::drift_factor`]): redrawn every four
    /// hours from the start, so a host's change between a before window and a bake four hours
    /// later has this standard deviation, kernel or not.
    pub host_drift: f64,
}

#[derive(Debug, Clone)]
struct SimHost {
    kernel: String,
    boot: u64,
    /// Kernels the rollout installed.
    installed: Vec<String>,
    /// The kernel it ran at the start, still installed: a rollback boots it again.
    original: String,
    default: Option<String>,
    /// The entry `grub-reboot` set for the next boot only.
    next: Option<String>,
    down_until: Option<Timestamp>,
    booted_at: Timestamp,
    reboots: u32,
    /// One-shot reboot markers of this boot (`/dev/shm` on a real host).
    reboot_markers: Vec<String>,
    /// It panicked (at most once per simulation).
    panicked: bool,
    /// Panics the kernel log holds that no collection has reported yet.
    unreported_panics: u64,
    /// Power cycles by an out-of-band recovery.
    power_cycles: u32,
}

impl SimHost {
    /// `after` past its last boot.
    fn after_boot(&self, after: Duration) -> Timestamp {
        self.booted_at
            .checked_add(SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX))
            .unwrap_or(self.booted_at)
    }
}

/// How long simulated commands take.
#[derive(Debug, Clone)]
pub struct Timing {
    pub install: Duration,
    pub reboot_down: Duration,
    pub command: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            install: Duration::from_secs(90),
            reboot_down: Duration::from_secs(150),
            command: Duration::from_secs(2),
        }
    }
}

/// A simulated fleet.
pub struct SimExecutor {
    hosts: Mutex<HashMap<String, SimHost>>,
    /// Hosts' drift facts, when simulating `fleetward drift`.
    drift: Mutex<HashMap<String, FactTable>>,
    faults: Faults,
    timing: Timing,
    start: Timestamp,
}

/// What a simulated host did, for checking a simulation's invariants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimRecord {
    pub kernel: String,
    pub reboots: u32,
    /// Power cycles by an out-of-band recovery.
    pub power_cycles: u32,
}

impl SimExecutor {
    /// Down for good after its reboot: a host that never comes up, until a recovery that
    /// fixes it power-cycles it.
    fn stuck(&self, name: &str, h: &SimHost) -> bool {
        self.faults.never_up.contains(name) && h.power_cycles == 0
    }

    pub fn new(hosts: &[Host], faults: Faults, timing: Timing, start: Timestamp) -> Self {
        let map = hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    SimHost {
                        kernel: h.kernel.clone(),
                        boot: 0,
                        installed: Vec::new(),
                        original: h.kernel.clone(),
                        default: Some(h.kernel.clone()),
                        next: None,
                        down_until: None,
                        booted_at: start,
                        reboots: 0,
                        reboot_markers: Vec::new(),
                        panicked: false,
                        unreported_panics: 0,
                        power_cycles: 0,
                    },
                )
            })
            .collect();
        SimExecutor {
            hosts: Mutex::new(map),
            drift: Mutex::new(HashMap::new()),
            faults,
            timing,
            start,
        }
    }

    /// The hosts as a previous controller of the shard left them (taken over from the
    /// journal it left in etcd): those it rebooted came back on the target kernel, since a
    /// reboot goes on without its controller, and those it finished have it as default.
    pub fn as_left(&self, st: &crate::rollout::RolloutState) {
        let Ok(mut all) = self.hosts.lock() else {
            return;
        };
        for (name, p) in &st.hosts {
            let Some(h) = all.get_mut(name) else {
                continue;
            };
            if p.reboots == 0 {
                continue;
            }
            h.kernel = st.target_kernel.clone();
            h.installed.push(st.target_kernel.clone());
            h.boot += u64::from(p.reboots);
            h.reboots += p.reboots;
            h.next = None;
            if p.done {
                h.default = Some(st.target_kernel.clone());
            }
        }
    }

    /// Gives hosts drift facts: they answer the facts command from these tables, and the fix
    /// commands `drift.rhai` sends change them.
    pub fn with_drift(self, tables: HashMap<String, FactTable>) -> Self {
        if let Ok(mut d) = self.drift.lock() {
            *d = tables;
        }
        self
    }

    /// A host's drift facts now.
    pub fn drift_table(&self, host: &str) -> Option<FactTable> {
        self.drift.lock().ok().and_then(|d| d.get(host).cloned())
    }

    /// Answers the facts command and the fix commands for hosts that have drift tables.
    fn drift_answer(&self, host: &str, argv: &[String]) -> Option<Output> {
        let mut all = self.drift.lock().ok()?;
        let t = all.get_mut(host)?;
        let ok = |s: String| Output {
            status: 0,
            stdout: s,
            stderr: String::new(),
        };
        let fail = |e: String| Output {
            status: 1,
            stdout: String::new(),
            stderr: e,
        };
        let set = |t: &mut FactTable, kind: Kind, key: &str, field: &str, v: &str| {
            t.insert(
                (kind, key.to_string(), field.to_string()),
                Fact::Value(v.to_string()),
            );
        };
        if let Some(args) = as_facts_request(argv) {
            let r = Request::from_args(args);
            let mut keys: Vec<FactKey> = [
                Kind::Kernel,
                Kind::Cmdline,
                Kind::BootEntry,
                Kind::Microcode,
            ]
            .into_iter()
            .map(|k| (k, String::new(), String::new()))
            .collect();
            let with = |keys: &mut Vec<FactKey>, kind: Kind, names: &[String], fields: &[&str]| {
                for n in names {
                    for f in fields {
                        keys.push((kind, n.clone(), (*f).to_string()));
                    }
                }
            };
            with(
                &mut keys,
                Kind::Sysctl,
                &r.sysctl,
                &["runtime", "persisted"],
            );
            with(
                &mut keys,
                Kind::Module,
                &r.module,
                &["loaded", "blacklisted"],
            );
            with(&mut keys, Kind::Package, &r.package, &["version"]);
            with(&mut keys, Kind::Service, &r.service, &["enabled", "active"]);
            with(&mut keys, Kind::File, &r.file, &["sha256", "mode", "owner"]);
            let unknown = Fact::Unknown("not simulated".into());
            let facts: Vec<(&FactKey, &Fact)> = keys
                .iter()
                .filter_map(|k| match t.get(k) {
                    Some(f) => Some((k, f)),
                    // Undeclared scalars are simply not reported.
                    None if k.1.is_empty() => None,
                    None => Some((k, &unknown)),
                })
                .collect();
            return Some(ok(render_facts(facts)));
        }
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["sysctl", "-w", kv] => {
                let (k, v) = kv.split_once('=')?;
                set(t, Kind::Sysctl, k, "runtime", v);
                Some(ok(format!("{k} = {v}\n")))
            }
            ["sh", "-c", _, "fleetward-sysctl", k, v] => {
                set(t, Kind::Sysctl, k, "persisted", v);
                Some(ok(String::new()))
            }
            ["systemctl", op @ ("start" | "enable"), "--", name] => {
                let (field, v) = if *op == "start" {
                    ("active", "active")
                } else {
                    ("enabled", "enabled")
                };
                set(t, Kind::Service, name, field, v);
                Some(ok(String::new()))
            }
            ["modprobe", "--", m] => {
                set(t, Kind::Module, m, "loaded", "yes");
                Some(ok(String::new()))
            }
            ["chmod", mode, "--", path] => {
                if !t.contains_key(&(Kind::File, path.to_string(), "mode".into())) {
                    return Some(fail(format!(
                        "chmod: cannot access '{path}': No such file or directory\n"
                    )));
                }
                set(t, Kind::File, path, "mode", mode.trim_start_matches('0'));
                Some(ok(String::new()))
            }
            ["apt-get", "install", "-y", "--no-install-recommends", pv] => {
                let (p, v) = pv.split_once('=')?;
                set(t, Kind::Package, p, "version", v);
                Some(ok(format!("Setting up {p} ({v}) ...\n")))
            }
            _ => None,
        }
    }

    /// Every host's kernel and reboot count.
    pub fn records(&self) -> BTreeMap<String, SimRecord> {
        self.hosts
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(n, h)| {
                        (
                            n.clone(),
                            SimRecord {
                                kernel: h.kernel.clone(),
                                reboots: h.reboots,
                                power_cycles: h.power_cycles,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn boot_id(name: &str, boot: u64) -> String {
        let x = splitmix64_finish(keyed_hash(boot, name));
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            x >> 32,
            (x >> 16) & 0xffff,
            x & 0xffff,
            boot & 0xffff,
            x & 0xffff_ffff_ffff
        )
    }

    /// A host's drifting level factor at `ts` ([`Faults::host_drift`]).
    fn drifted(&self, host: &str, metric: &str, ts: i64) -> f64 {
        let period = (ts - self.start.as_second()).div_euclid(super::samplegen::DRIFT_PERIOD_SECS);
        super::samplegen::drift_factor(
            self.faults.noise_seed,
            host,
            metric,
            period,
            self.faults.host_drift,
        )
    }

    fn metrics(&self, host: &Host, h: &SimHost, now: Timestamp, window: u64) -> String {
        let on_target = !h.installed.is_empty() && h.installed.contains(&h.kernel);
        let regress = self
            .faults
            .regressions
            .get(&host.name)
            .filter(|_| on_target);
        let mut out = String::new();
        let step = (window / SAMPLES_PER_CALL as u64).max(1) as i64;
        let t_end = now.as_second();
        let var = self.faults.variation;
        let group = host.group_name();
        for (metric, _) in STANDARD_METRICS {
            let base = level(metric, &host.hardware, &host.workload);
            let own = var.host_factor(&host.name, metric);
            let factor: f64 = regress
                .map(|rs| {
                    rs.iter()
                        .filter(|r| r.metric == metric)
                        .map(|r| r.factor)
                        .product()
                })
                .unwrap_or(1.0);
            let seed = self.faults.noise_seed.wrapping_mul(SPLITMIX64_GAMMA);
            for i in 0..SAMPLES_PER_CALL as i64 {
                let ts = t_end - (SAMPLES_PER_CALL as i64 - 1 - i) * step;
                let key = keyed_hash(ts as u64 ^ seed, &format!("{}/{metric}", host.name));
                let own = own * self.drifted(&host.name, metric, ts);
                let v = var.sample(metric, base * factor, own, var.time_factor(&group, ts), key);
                out.push_str(&format!("{ts} {metric} {v:.6}\n"));
            }
        }
        out
    }

    /// What the signals collector prints on a simulated host: its boot id, the metrics of
    /// [`Self::metrics`] as direct samples over the last `every` (5 minutes), and no
    /// kernel-log errors.
    fn collection(&self, host: &Host, h: &mut SimHost, now: Timestamp) -> String {
        let mut out = format!(
            "{} {}\nboot_id {}\n",
            crate::signals::ARGV0,
            crate::signals::PROTOCOL,
            Self::boot_id(&host.name, h.boot)
        );
        for line in self.metrics(host, h, now, COLLECTION_SPAN).lines() {
            out.push_str("s ");
            out.push_str(line);
            out.push('\n');
        }
        for (class, _) in crate::signals::KLOG_CLASSES {
            let n = if class == "panic" {
                h.unreported_panics
            } else {
                0
            };
            out.push_str(&format!("klog sim {class} {n}\n"));
        }
        h.unreported_panics = 0;
        out
    }

    fn answer(
        &self,
        host: &Host,
        argv: &[String],
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        let name = host.name.as_str();
        let line = || RemoteCommand::new(argv.iter().cloned()).shell_line();
        let unreachable = |why: &str| ExecError::Unreachable {
            host: name.to_string(),
            message: why.to_string(),
        };
        let now = clock.now();
        let mut hosts = self
            .hosts
            .lock()
            .map_err(|_| unreachable("simulator state poisoned"))?;
        let h = hosts
            .get_mut(name)
            .ok_or_else(|| unreachable("no such simulated host"))?;
        if self.faults.unreachable.contains(name) {
            drop(hosts);
            clock.sleep(Duration::from_secs(10));
            return Err(unreachable("connection timed out"));
        }
        if let Some(until) = h.down_until {
            if self.stuck(name, h) || now < until {
                drop(hosts);
                clock.sleep(Duration::from_secs(3));
                return Err(unreachable("connection refused"));
            }
            h.down_until = None;
            h.booted_at = until;
        }
        // A kernel that reboots the host by itself some time after it booted.
        if let Some(after) = self.faults.unexpected_reboot_after.get(name) {
            let on_target = h.installed.contains(&h.kernel);
            let at = h.after_boot(*after);
            if on_target && h.reboots == 1 && now >= at {
                h.boot += 1;
                h.reboots += 1;
                h.booted_at = at;
                h.reboot_markers.clear();
            }
        }
        // A kernel that panics some time after it booted: the host reboots into its default.
        if let Some(after) = self.faults.kernel_panic_after.get(name) {
            let on_target = h.installed.contains(&h.kernel);
            let at = h.after_boot(*after);
            if on_target && !h.panicked && now >= at {
                h.panicked = true;
                h.unreported_panics += 1;
                if let Some(d) = h.default.clone() {
                    h.kernel = d;
                }
                h.next = None;
                h.boot += 1;
                h.reboots += 1;
                h.booted_at = at;
                h.reboot_markers.clear();
            }
        }
        let first = argv.first().map(String::as_str).unwrap_or("");
        if self
            .faults
            .hang
            .get(name)
            .is_some_and(|s| s.contains(first))
        {
            drop(hosts);
            clock.sleep(timeout);
            return Err(ExecError::Timeout {
                host: name.to_string(),
                command: line(),
                after: timeout,
            });
        }
        let ok = |s: String| Output {
            status: 0,
            stdout: s,
            stderr: String::new(),
        };
        let fail = |status: i32, e: String| Output {
            status,
            stdout: String::new(),
            stderr: e,
        };
        // The one-shot reboot wrapper: a marker of this boot means the reboot was issued.
        let argv = match crate::exec::parse_reboot_once(argv) {
            Some((token, _)) if h.reboot_markers.iter().any(|m| m == token) => {
                return Ok(ok("this reboot was already issued in this boot\n".into()));
            }
            Some((token, rest)) => {
                h.reboot_markers.push(token.to_string());
                rest
            }
            None => argv,
        };
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let collection = crate::signals::Request::from_argv(argv);
        let (out, took) = match self.drift_answer(name, argv) {
            Some(o) => (o, self.timing.command),
            None => match args.as_slice() {
                ["uname", "-r"] => (ok(format!("{}\n", h.kernel)), self.timing.command),
                ["cat", "/proc/sys/kernel/random/boot_id"] => (
                    ok(format!("{}\n", Self::boot_id(name, h.boot))),
                    self.timing.command,
                ),
                ["apt-get", "install", "-y", pkg] => match pkg.strip_prefix("linux-image-") {
                    Some(v) => {
                        h.installed.push(v.to_string());
                        (ok(format!("installed {v}\n")), self.timing.install)
                    }
                    None => (
                        fail(100, format!("E: Unable to locate package {pkg}\n")),
                        self.timing.command,
                    ),
                },
                ["grub-set-default", title] => match title.strip_prefix(GRUB_TITLE_PREFIX) {
                    Some(v) if h.installed.iter().any(|k| k == v) || h.original == v => {
                        h.default = Some(v.to_string());
                        (ok(String::new()), self.timing.command)
                    }
                    _ => (
                        fail(1, format!("no boot entry `{title}`\n")),
                        self.timing.command,
                    ),
                },
                ["grub-reboot", title] => match title.strip_prefix(GRUB_TITLE_PREFIX) {
                    Some(v) if h.installed.iter().any(|k| k == v) || h.original == v => {
                        h.next = Some(v.to_string());
                        (ok(String::new()), self.timing.command)
                    }
                    _ => (
                        fail(1, format!("no boot entry `{title}`\n")),
                        self.timing.command,
                    ),
                },
                ["grub-editenv", "list"] => {
                    let mut out = String::new();
                    for (k, v) in [("saved_entry", &h.default), ("next_entry", &h.next)] {
                        if let Some(v) = v {
                            out.push_str(&format!("{k}={GRUB_TITLE_PREFIX}{v}\n"));
                        }
                    }
                    (ok(out), self.timing.command)
                }
                ["systemctl", "reboot"] => {
                    // A one-shot entry boots once; one that fails falls back to the default.
                    let next = h.next.take();
                    match next {
                        Some(n) if !self.faults.boot_falls_back.contains(name) => h.kernel = n,
                        _ => {
                            if let Some(d) = h.default.clone() {
                                h.kernel = d;
                            }
                        }
                    }
                    h.boot += 1;
                    h.reboots += 1;
                    h.reboot_markers.clear();
                    let jitter = keyed_hash(h.boot, name) % 60;
                    let down = self.timing.reboot_down + Duration::from_secs(jitter);
                    h.down_until = now
                        .checked_add(SignedDuration::try_from(down).unwrap_or(SignedDuration::MAX))
                        .ok();
                    (ok(String::new()), Duration::from_millis(500))
                }
                ["systemctl", "is-system-running"] => (ok("running\n".into()), self.timing.command),
                ["lbctl", "drain" | "undrain", _] => (ok("ok\n".into()), self.timing.command),
                ["fleetward-validate", suite] => {
                    (ok(format!("{suite}: pass\n")), Duration::from_secs(30))
                }
                ["sh", "-c", _, argv0, kind, rest @ ..]
                    if *argv0 == crate::rollout::check::ARGV0 =>
                {
                    let mut out = format!("{argv0} 1\n");
                    match *kind {
                        "units" => {
                            for u in rest {
                                out.push_str(&format!("unit {u} active\n"));
                            }
                        }
                        "http" => out.push_str("tool sim\nstatus 200\nbody\nok\n"),
                        "benchmark" => {
                            let reps: u32 = rest.first().and_then(|r| r.parse().ok()).unwrap_or(1);
                            let suites = rest.get(5..).unwrap_or(&[]);
                            out.push_str(&self.benchmark(host, h, reps, suites));
                            let secs = 4 * u64::from(reps) * suites.len() as u64;
                            let took = self.timing.command + Duration::from_secs(secs);
                            drop(hosts);
                            return self.finish(ok(out), took, timeout, name, &line, clock);
                        }
                        _ => out.push_str(&format!("missing check unknown check `{kind}`\n")),
                    }
                    (ok(out), self.timing.command)
                }
                _ if collection.is_some() => (
                    ok(self.collection(host, h, now)),
                    self.timing.command + Duration::from_secs(collection.map_or(0, |r| r.window)),
                ),
                ["fleetward-metrics", "--window", w] => match w.parse::<u64>() {
                    Ok(w) => (ok(self.metrics(host, h, now, w)), self.timing.command),
                    Err(_) => (fail(2, format!("bad window `{w}`\n")), self.timing.command),
                },
                _ => (
                    fail(127, format!("{first}: command not found\n")),
                    self.timing.command,
                ),
            },
        };
        drop(hosts);
        self.finish(out, took, timeout, name, &line, clock)
    }

    /// An answer that took `took`: a timeout past `timeout`, on the clock either way.
    fn finish(
        &self,
        out: Output,
        took: Duration,
        timeout: Duration,
        name: &str,
        line: &dyn Fn() -> String,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        if took > timeout {
            clock.sleep(timeout);
            return Err(ExecError::Timeout {
                host: name.to_string(),
                command: line(),
                after: timeout,
            });
        }
        clock.sleep(took);
        Ok(out)
    }

    /// What the benchmark script prints on a simulated host: `reps` rounds of the suites,
    /// varying as [`super::samplegen::bench_value`] says, slowed by the host's regressions of
    /// `bench_*` metrics once it runs the new kernel.
    fn benchmark(&self, host: &Host, h: &SimHost, reps: u32, suites: &[&str]) -> String {
        let on_target = !h.installed.is_empty() && h.installed.contains(&h.kernel);
        let mut out = String::new();
        for rep in 0..reps {
            for s in suites {
                for m in crate::rollout::bench::METRICS {
                    let metric = m.name;
                    if m.suite != *s {
                        continue;
                    }
                    let factor: f64 = self
                        .faults
                        .regressions
                        .get(&host.name)
                        .filter(|_| on_target)
                        .map(|rs| {
                            rs.iter()
                                .filter(|r| r.metric == metric)
                                .map(|r| r.factor)
                                .product()
                        })
                        .unwrap_or(1.0);
                    let v = super::samplegen::bench_value(
                        &host.name,
                        &host.hardware,
                        metric,
                        h.boot,
                        rep,
                        factor,
                    );
                    out.push_str(&format!("bench {metric} {v:.3} sim\n"));
                }
            }
        }
        out
    }

    /// Seconds since the simulation began.
    pub fn elapsed(&self, clock: &dyn Clock) -> f64 {
        epoch_secs(clock.now()) - epoch_secs(self.start)
    }
}

/// The controller's own fetches (`http` checks `from: "controller"`): a simulated host's
/// service answers 200 `ok` while the host is up, and nothing while it is down.
impl crate::probe::HttpProbe for SimExecutor {
    fn get(
        &self,
        host: &Host,
        _url: &str,
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<crate::probe::Answer, crate::probe::ProbeError> {
        let failed = |message: &str| crate::probe::ProbeError::Failed {
            message: message.to_string(),
        };
        let up = {
            let hosts = self
                .hosts
                .lock()
                .map_err(|_| failed("simulator state poisoned"))?;
            let h = hosts
                .get(&host.name)
                .ok_or_else(|| failed("no such simulated host"))?;
            !self.faults.unreachable.contains(&host.name)
                && match h.down_until {
                    Some(until) => !self.stuck(&host.name, h) && clock.now() >= until,
                    None => true,
                }
        };
        clock.sleep(Duration::from_secs(1).min(timeout));
        if up {
            Ok(crate::probe::Answer {
                status: 200,
                body: "ok\n".into(),
            })
        } else {
            Err(failed("connection refused"))
        }
    }
}

/// Out-of-band recovery (`recover(host)`): a power cycle through the host's BMC, which takes
/// a few seconds and answers whether or not it helps. A host of `Faults::recover_fixes` boots
/// its default entry (the one-shot entry was spent on the boot that hung); any other stays
/// as it was.
impl crate::exec::oob::OutOfBand for SimExecutor {
    fn run_for(
        &self,
        host: &Host,
        _argv: &[String],
        _timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        let spawn = |message: &str| ExecError::Spawn {
            host: host.name.clone(),
            command: "recover".into(),
            message: message.to_string(),
        };
        clock.sleep(Duration::from_secs(5));
        let now = clock.now();
        let mut hosts = self
            .hosts
            .lock()
            .map_err(|_| spawn("simulator state poisoned"))?;
        let h = hosts
            .get_mut(&host.name)
            .ok_or_else(|| spawn("no such simulated host"))?;
        if self.faults.recover_fixes.contains(&host.name) {
            h.power_cycles += 1;
            h.next = None;
            if let Some(d) = h.default.clone() {
                h.kernel = d;
            }
            // A new boot, not a reboot the controller issued: `reboots` counts those.
            h.boot += 1;
            h.reboot_markers.clear();
            h.down_until = now
                .checked_add(
                    SignedDuration::try_from(self.timing.reboot_down)
                        .unwrap_or(SignedDuration::MAX),
                )
                .ok();
        }
        Ok(Output {
            status: 0,
            stdout: "Chassis Power Control: Cycle\n".into(),
            stderr: String::new(),
        })
    }
}

impl Executor for SimExecutor {
    fn run(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
    ) -> Result<Output, ExecError> {
        // Without a timeline, run on a throwaway clock at the simulation's start.
        let clock = crate::clock::VirtualClock::new(self.start);
        self.answer(host, &cmd.argv, timeout, &clock)
    }

    fn run_at(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        self.answer(host, &cmd.argv, timeout, clock)
    }
}
