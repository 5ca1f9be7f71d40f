//! The windows of a stage: the before window (its hosts and controls before any update) and
//! the bake (the updated hosts and the controls after), with signals collected every
//! `signals().every`, boot ids checked for unexpected reboots, and rows appended to the
//! stage's sample files.

use super::*;
use crate::error::Invalid;
use crate::rollout::spec::SignalSource;

pub(super) const SAMPLES_HEADER: [&str; 4] = ["host", "timestamp", "metric", "value"];

/// Which window a round of signals belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Window {
    Before,
    After,
}

pub use crate::gate::sizing::default_controls;

impl<'a> Controller<'a> {
    pub fn samples_path(&self, stage: usize) -> PathBuf {
        let dir = self.lock().journal.dir().to_path_buf();
        dir.join(format!("stage-{stage:02}.samples.csv"))
    }

    /// The stage's before-window samples, beside its samples.
    pub fn before_path(&self, stage: usize) -> PathBuf {
        let dir = self.lock().journal.dir().to_path_buf();
        dir.join(format!("stage-{stage:02}.before.csv"))
    }

    /// The stage's after-window samples from Prometheus, written whole at the end of each bake.
    pub fn prometheus_path(&self, stage: usize) -> PathBuf {
        let dir = self.lock().journal.dir().to_path_buf();
        dir.join(format!("stage-{stage:02}.prometheus.csv"))
    }

    /// An end time `secs` from now on `clock`.
    fn deadline(clock: &dyn Clock, secs: u64) -> jiff::Timestamp {
        let now = clock.now();
        now.checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(secs).unwrap_or(i64::MAX),
        ))
        .unwrap_or(now)
    }

    /// The stage's bake length: the operator's override, or `bake(wave)`.
    fn bake_secs(&self, set: &PolicySet, stage: usize) -> Result<u64, Invalid> {
        if let Some(b) = self.opts.bake {
            return Ok(b);
        }
        let info = self.with_state(|s| s.stages.get(stage).map(|p| p.info.clone()));
        match info.map(|i| PolicyRules::new(set).bake(&i)) {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(Invalid(format!("`bake(wave)`: {e}"))),
            None => Ok(0),
        }
    }

    /// The before window's length: `before(wave)`, by default the bake; never longer than
    /// an operator's bake override.
    fn before_secs(&self, set: &PolicySet, stage: usize) -> Result<u64, Invalid> {
        let bake = self.bake_secs(set, stage)?;
        if !set.defines("rollout", "before", 1) {
            return Ok(bake);
        }
        let info = self.with_state(|s| s.stages.get(stage).map(|p| p.info.clone()));
        let Some(info) = info else { return Ok(0) };
        let arg = crate::runtime::typed::to_dynamic(&info)?;
        let v = set
            .eval_json("rollout", "before", vec![arg])
            .map_err(|e| Invalid(format!("`before(wave)`: {}", policy_message(&e))))?
            .value;
        let secs = v
            .as_u64()
            .ok_or_else(|| Invalid(format!("`before(wave)` returned `{v}`, not a count")))?;
        Ok(match self.opts.bake {
            Some(b) => secs.min(b),
            None => secs,
        })
    }

    /// Chooses the stage's controls per group: hosts of the group outside this stage that
    /// are not yet updated first, then hosts updated in stages whose gates passed. How many:
    /// `controls(group)`, by default [`default_controls`].
    fn choose_controls(&self, set: &PolicySet, stage: usize) -> Result<Vec<String>, Invalid> {
        #[allow(clippy::type_complexity)]
        let (mine, later, settled, fleet_groups): (
            Vec<String>,
            std::collections::BTreeSet<String>,
            Vec<String>,
            Option<BTreeMap<String, usize>>,
        ) = self.with_state(|s| {
            let mine = s
                .stages
                .get(stage)
                .map(|p| p.hosts.clone())
                .unwrap_or_default();
            let later = s
                .stages
                .iter()
                .skip(stage + 1)
                .flat_map(|p| p.hosts.iter().cloned())
                .collect();
            let settled = s
                .stages
                .iter()
                .take(stage)
                .flat_map(|p| p.hosts.iter())
                .filter(|h| s.hosts.get(*h).is_some_and(|x| x.done))
                .cloned()
                .collect();
            let fleet_groups = s.stages.get(stage).and_then(|p| p.fleet_groups.clone());
            (mine, later, settled, fleet_groups)
        });
        let mine_set: std::collections::BTreeSet<&str> = mine.iter().map(String::as_str).collect();
        let mut updated: BTreeMap<String, usize> = BTreeMap::new();
        for h in &mine {
            if let Some(g) = self.fleet.groups.of(h) {
                *updated.entry(g.to_string()).or_default() += 1;
            }
        }
        // Controllers per shard: controls for every group of the stage, each shard's.
        if let Some(fg) = &fleet_groups {
            updated.extend(fg.iter().map(|(g, n)| (g.clone(), *n)));
        }
        let settled_set: std::collections::BTreeSet<&str> =
            settled.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for (group, n) in &updated {
            // Not-updated hosts of the group: later stages first, then hosts outside the
            // plan; then settled hosts. Each list in name order.
            let mut untouched: Vec<&str> = self
                .fleet
                .names()
                .filter(|h| {
                    !mine_set.contains(h)
                        && !settled_set.contains(h)
                        && self
                            .fleet
                            .groups
                            .of(h)
                            .is_some_and(|g| g.to_string() == *group)
                })
                .collect();
            untouched.sort_by_key(|h| (!later.contains(*h), *h));
            let mut pool: Vec<&str> = untouched;
            let mut old: Vec<&str> = settled
                .iter()
                .map(String::as_str)
                .filter(|h| {
                    self.fleet
                        .groups
                        .of(h)
                        .is_some_and(|g| g.to_string() == *group)
                })
                .collect();
            old.sort_unstable();
            pool.extend(old);
            let want = if set.defines("rollout", "controls", 1) {
                let key = crate::model::GroupKey::parse(group);
                let arg = crate::runtime::typed::to_dynamic(&serde_json::json!({
                    "name": group,
                    "hardware": key.as_ref().map(|k| k.hardware.clone()).unwrap_or_default(),
                    "workload": key.as_ref().map(|k| k.workload.clone()).unwrap_or_default(),
                    "updated": n,
                    "available": pool.len(),
                }))?;
                let v = set
                    .eval_json("rollout", "controls", vec![arg])
                    .map_err(|e| {
                        Invalid(format!(
                            "`controls(group)` for `{group}`: {}",
                            policy_message(&e)
                        ))
                    })?
                    .value;
                v.as_u64().ok_or_else(|| {
                    Invalid(format!("`controls(group)` returned `{v}`, not a count"))
                })? as usize
            } else {
                default_controls(*n)
            };
            // Controllers per shard share the group's controls, each by its share of the
            // group's hosts (rounded up, so the union has at least as many).
            let want = if fleet_groups.is_some() {
                let own = self
                    .fleet
                    .names()
                    .filter(|h| {
                        self.fleet
                            .groups
                            .of(h)
                            .is_some_and(|g| g.to_string() == *group)
                    })
                    .count();
                (want * own).div_ceil(self.fleet.groups.size(group).max(1))
            } else {
                want
            };
            out.extend(pool.into_iter().take(want).map(str::to_string));
        }
        Ok(out)
    }

    /// The before window of a stage: controls chosen, then the stage's hosts and controls
    /// recorded until the window ends (which the journal keeps, so a restart records only
    /// what is left). Skipped once any host of the stage has started.
    pub(super) fn before_window(&self, stage: usize) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        let started = self.with_state(|s| {
            s.stages.get(stage).is_some_and(|p| {
                p.hosts.iter().any(|h| {
                    s.hosts
                        .get(h)
                        .is_some_and(|x| x.in_step.is_some() || x.done || x.failed.is_some())
                })
            })
        });
        if started {
            return Ok(());
        }
        let set = self.policy()?;
        if self.with_state(|s| !s.controls.contains_key(&stage)) {
            let hosts = match self.choose_controls(&set, stage) {
                Ok(h) => h,
                Err(m) => return self.policy_pause(Some(stage), m.0, clock),
            };
            self.emit(Event::ControlsChosen { stage, hosts }, clock)?;
        }
        let signals = match self.signals(&set) {
            Ok(s) => s,
            Err(m) => return self.policy_pause(Some(stage), m.0, clock),
        };
        let until = match self.with_state(|s| s.before_until.get(&stage).cloned()) {
            Some(u) => u.parse::<jiff::Timestamp>().map_err(|e| {
                ControllerError::Invalid(format!("journal before-window end `{u}`: {e}"))
            })?,
            None => {
                let secs = match self.before_secs(&set, stage) {
                    Ok(s) => s,
                    Err(m) => return self.policy_pause(Some(stage), m.0, clock),
                };
                if signals.source() == SignalSource::Prometheus {
                    // Prometheus holds the history: the window is the last `secs`, read
                    // now and written whole, then put on record as over.
                    if secs > 0 {
                        let now = epoch_secs(clock.now());
                        let hosts = self.window_hosts(stage, Window::Before);
                        let rows =
                            self.prometheus_rows(&set, &signals, &hosts, now - secs as f64, now);
                        self.write_samples(&self.before_path(stage), &rows)?;
                        crate::failpoint::hit("rollout.after_prometheus_before");
                    }
                    self.emit(
                        Event::BeforeStarted {
                            stage,
                            until: rfc3339(clock.now()),
                        },
                        clock,
                    )?;
                    return Ok(());
                }
                let until = Self::deadline(clock, secs);
                self.emit(
                    Event::BeforeStarted {
                        stage,
                        until: rfc3339(until),
                    },
                    clock,
                )?;
                if secs == 0 {
                    return Ok(());
                }
                until
            }
        };
        if clock.now() >= until {
            return Ok(());
        }
        drop(set);
        self.record_until(stage, &signals, Window::Before, until)
    }

    /// The samples of `hosts` over `[start, end]` (epoch seconds) from the policy's
    /// Prometheus. What could not be read is noted; those hosts have fewer samples, and a
    /// host with none is insufficient at the gate, never clean.
    fn prometheus_rows(
        &self,
        set: &PolicySet,
        signals: &Signals,
        hosts: &[String],
        start: f64,
        end: f64,
    ) -> Vec<(String, Sample)> {
        let spec = signals.prometheus();
        let endpoint = crate::signals::prometheus::Endpoint {
            url: spec.url.clone(),
            settings: set.prometheus_settings(),
        };
        let hosts: Vec<&Host> = hosts.iter().filter_map(|h| self.fleet.host(h)).collect();
        let range = crate::signals::prometheus::Range {
            start: start.min(end),
            end,
            step: spec.step,
        };
        let f = crate::signals::prometheus::fetch(self.io.metrics, &endpoint, &spec, &hosts, range);
        for e in f.errors.iter().take(3) {
            self.io.observer.note(e);
        }
        if f.errors.len() > 3 {
            self.io.observer.note(&format!(
                "{} more prometheus queries failed",
                f.errors.len() - 3
            ));
        }
        for (h, errs) in f.host_errors.iter().take(5) {
            self.io
                .observer
                .note(&format!("host `{h}`: {}", errs.join("; ")));
        }
        if f.host_errors.len() > 5 {
            self.io.observer.note(&format!(
                "{} more hosts lack prometheus samples",
                f.host_errors.len() - 5
            ));
        }
        f.rows
    }

    /// Collects signals every `signals.every` until `until` (at least once).
    fn record_until(
        &self,
        stage: usize,
        signals: &Signals,
        window: Window,
        until: jiff::Timestamp,
    ) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        loop {
            if self.halted(clock)? {
                return Ok(());
            }
            self.collect(stage, signals, window)?;
            let now = clock.now();
            if now >= until {
                return Ok(());
            }
            let left = until.duration_since(now).unsigned_abs();
            clock.sleep(Duration::from_secs(signals.every).min(left));
        }
    }

    /// Extends an inconclusive stage's bake as `extend_bake(stage)` allows. Returns whether
    /// it did (else the caller pauses).
    pub(super) fn extend_bake(
        &self,
        set: &PolicySet,
        stage: usize,
        reasons: &[String],
    ) -> Result<bool, ControllerError> {
        let clock = self.io.clock;
        let (done, name) = self.with_state(|s| {
            (
                s.extensions.get(&stage).map_or(0, Vec::len),
                s.stages
                    .get(stage)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
            )
        });
        let bake = self.bake_secs(set, stage).unwrap_or(0);
        let secs = if set.defines("rollout", "extend_bake", 1) {
            let arg = crate::runtime::typed::to_dynamic(&serde_json::json!({
                "index": stage,
                "name": name,
                "bake": bake,
                "extensions": done,
            }))
            .map_err(ControllerError::from)?;
            match set.eval_json("rollout", "extend_bake", vec![arg]) {
                Ok(v) => v.value.as_u64().unwrap_or(0),
                Err(e) => {
                    self.io.observer.note(&format!(
                        "`extend_bake(stage)` failed, so the bake is not extended: {}",
                        policy_message(&e)
                    ));
                    0
                }
            }
        } else if done == 0 {
            bake
        } else {
            0
        };
        if secs == 0 {
            return Ok(false);
        }
        let until = Self::deadline(clock, secs);
        self.emit(
            Event::BakeExtended {
                stage,
                until: rfc3339(until),
                reasons: reasons.to_vec(),
            },
            clock,
        )?;
        Ok(true)
    }

    /// Bakes a stage: collects signals every `signals().every` until the bake ends (which
    /// the journal keeps, so a restart bakes only what is left).
    pub(super) fn bake(&self, stage: usize) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        let set = self.policy()?;
        let signals = match self.signals(&set) {
            Ok(s) => s,
            Err(m) => return self.policy_pause(Some(stage), m.0, clock),
        };
        let until = match self.with_state(|s| s.bake_until.get(&stage).cloned()) {
            Some(u) => u
                .parse::<jiff::Timestamp>()
                .map_err(|e| ControllerError::Invalid(format!("journal bake end `{u}`: {e}")))?,
            None => {
                let secs = match self.bake_secs(&set, stage) {
                    Ok(s) => s,
                    Err(m) => return self.policy_pause(Some(stage), m.0, clock),
                };
                let until = Self::deadline(clock, secs);
                self.emit(
                    Event::BakeStarted {
                        stage,
                        until: rfc3339(until),
                    },
                    clock,
                )?;
                until
            }
        };
        self.record_until(stage, &signals, Window::After, until)?;
        if signals.source() == SignalSource::Prometheus && clock.now() >= until {
            // The whole bake so far, read at its end and written whole (so a restart or an
            // extension reads it again instead of appending twice).
            let from = self
                .with_state(|s| s.bake_from.get(&stage).cloned())
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(epoch_secs);
            let end = epoch_secs(until).min(epoch_secs(clock.now()));
            let hosts = self.window_hosts(stage, Window::After);
            let rows = self.prometheus_rows(&set, &signals, &hosts, from.unwrap_or(end), end);
            self.write_samples(&self.prometheus_path(stage), &rows)?;
            crate::failpoint::hit("rollout.after_prometheus_bake");
        }
        Ok(())
    }

    /// The hosts of a stage's window, then its controls: before, all of the stage's hosts;
    /// after, only the updated ones.
    fn window_hosts(&self, stage: usize, window: Window) -> Vec<String> {
        self.with_state(|s| {
            let mut v: Vec<String> = s
                .stages
                .get(stage)
                .map(|p| {
                    p.hosts
                        .iter()
                        .filter(|h| {
                            window == Window::Before || s.hosts.get(*h).is_some_and(|x| x.done)
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            v.extend(s.controls_of(stage));
            v
        })
    }

    /// One round of signals from the stage's hosts (after: the updated ones) and its
    /// controls: metrics, and a boot-id check for unexpected reboots of updated hosts.
    /// Appended to the window's sample file.
    pub(super) fn collect(
        &self,
        stage: usize,
        signals: &Signals,
        window: Window,
    ) -> Result<(), ControllerError> {
        let hosts = self.window_hosts(stage, window);
        let controls = self.with_state(|s| s.controls_of(stage));
        let is_control = |h: &str| controls.contains(h);
        let set = self.policy()?;
        let rows: Mutex<Vec<(String, Sample)>> = Mutex::new(Vec::new());
        let source = signals.source();
        self.parallel(&hosts, usize::MAX, |name, clock| {
            let Some(host) = self.fleet.host(name) else {
                return Ok(());
            };
            let now = epoch_secs(clock.now());
            let cmd = match source {
                SignalSource::Ssh => Some(signals.request(now.max(0.0) as u64).command()),
                SignalSource::Command => Some(RemoteCommand::new(signals.metrics.iter().cloned())),
                // Metrics come from Prometheus at the end of the window; a round here only
                // watches for unexpected reboots.
                SignalSource::Prometheus => None,
            };
            let mut mine = Vec::new();
            // The boot id the collector read, which spares the probe's round trip.
            let mut seen_boot: Option<String> = None;
            let ran = cmd.map(|cmd| {
                self.io
                    .exec
                    .run_at(host, &cmd, Duration::from_secs(signals.timeout), clock)
            });
            match ran {
                None => {}
                Some(Ok(o)) if o.success() => {
                    let (samples, bad) = match source {
                        SignalSource::Command | SignalSource::Prometheus => {
                            parse_metrics(&o.stdout, now)
                        }
                        SignalSource::Ssh => {
                            match crate::signals::parse(&o.stdout, now, &signals.kernel_log) {
                                Ok(c) => {
                                    seen_boot = c.boot_id;
                                    (c.samples, c.bad)
                                }
                                Err(e) => {
                                    self.io.observer.note(&format!("host `{name}`: {e}"));
                                    (Vec::new(), Vec::new())
                                }
                            }
                        }
                    };
                    if !bad.is_empty() {
                        self.io.observer.note(&format!(
                            "host `{name}`: {} unreadable metrics line(s), e.g. `{}`",
                            bad.len(),
                            bad.first().map(String::as_str).unwrap_or("")
                        ));
                    }
                    mine.extend(samples);
                }
                // A control that does not answer only leaves the comparison with fewer
                // controls, which the gate reports; a stage host's silence is news.
                Some(Ok(_) | Err(_)) if is_control(name) => {}
                Some(Ok(o)) => self.io.observer.note(&format!(
                    "host `{name}`: metrics command exited {}: {}",
                    o.status,
                    o.first_line()
                )),
                Some(Err(e)) => self.io.observer.note(&format!("host `{name}`: {e}")),
            }
            // Unexpected reboots of updated hosts: the boot id moved since the host was verified.
            let updated = window == Window::After
                && self.with_state(|s| s.hosts.get(name).is_some_and(|h| h.done));
            if let Some(probe) = updated.then(|| self.probe_for(&set, host)).flatten() {
                let known = self.with_state(|s| s.hosts.get(name).and_then(|h| h.boot_id.clone()));
                let id = match seen_boot.take() {
                    Some(id) => Ok(id),
                    None => self.probe(host, &probe.boot_id, probe.timeout, clock),
                };
                if let (Ok(id), Some(known)) = (id, known) {
                    let rebooted = id != known;
                    if rebooted {
                        self.emit(
                            Event::UnexpectedReboot {
                                host: name.to_string(),
                                boot_id: id,
                            },
                            clock,
                        )?;
                    }
                    mine.push(Sample {
                        timestamp: now,
                        metric: gate::EVENTS[0].to_string(),
                        value: if rebooted { 1.0 } else { 0.0 },
                    });
                }
            }
            if let Ok(mut r) = rows.lock() {
                r.extend(mine.into_iter().map(|s| (name.to_string(), s)));
            }
            self.io.exec.release(host);
            Ok(())
        })?;
        let rows = rows.into_inner().unwrap_or_default();
        let path = match window {
            Window::Before => self.before_path(stage),
            Window::After => self.samples_path(stage),
        };
        self.append_samples(&path, &rows)
    }

    /// Writes `rows` as the whole of `path` (beside it, then renamed into place).
    pub(super) fn write_samples(
        &self,
        path: &Path,
        rows: &[(String, Sample)],
    ) -> Result<(), ControllerError> {
        self.write_whole(path, rows, true)
    }

    /// [`Self::write_samples`] of a file derived from the journal, which the shard's next
    /// controller derives again: not kept in etcd.
    pub(super) fn write_derived(
        &self,
        path: &Path,
        rows: &[(String, Sample)],
    ) -> Result<(), ControllerError> {
        self.write_whole(path, rows, false)
    }

    fn write_whole(
        &self,
        path: &Path,
        rows: &[(String, Sample)],
        keep: bool,
    ) -> Result<(), ControllerError> {
        let _guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = path.with_extension("csv.tmp");
        let _ = std::fs::remove_file(&tmp);
        let bytes = self.append_file(&tmp, rows)?;
        if rows.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::rename(&tmp, path).map_err(|source| ControllerError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        if !keep {
            return Ok(());
        }
        self.keep_samples(path, &bytes, true)
    }

    /// Appends `rows` to `path`.
    pub(super) fn append_samples(
        &self,
        path: &Path,
        rows: &[(String, Sample)],
    ) -> Result<(), ControllerError> {
        let _guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = self.append_file(path, rows)?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.keep_samples(path, &bytes, false)
    }

    /// A shard's controller keeps what it wrote to a sample file in etcd too, for the
    /// shard's next controller.
    fn keep_samples(&self, path: &Path, bytes: &[u8], whole: bool) -> Result<(), ControllerError> {
        let (Some(g), Some(file)) = (self.io.gates, path.file_name().and_then(|f| f.to_str()))
        else {
            return Ok(());
        };
        g.keep_samples(file, bytes, whole)
    }

    /// Appends `rows` to `path` (a header first, if new); returns the bytes written. The
    /// caller holds the sample files' lock.
    fn append_file(
        &self,
        path: &Path,
        rows: &[(String, Sample)],
    ) -> Result<Vec<u8>, ControllerError> {
        let path = path.to_path_buf();
        let io_err = |source| ControllerError::Io {
            path: path.clone(),
            source,
        };
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let fresh = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::with_capacity(rows.len() * 48 + 32));
        let csv_err = |e: csv::Error| std::io::Error::other(e.to_string());
        if fresh {
            w.write_record(SAMPLES_HEADER)
                .map_err(csv_err)
                .map_err(io_err)?;
        }
        for (host, s) in rows {
            w.write_record([
                host.as_str(),
                &s.timestamp.to_string(),
                &s.metric,
                &s.value.to_string(),
            ])
            .map_err(csv_err)
            .map_err(io_err)?;
        }
        let buf = w
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .map_err(io_err)?;
        f.write_all(&buf).map_err(io_err)?;
        f.sync_data().map_err(io_err)?;
        Ok(buf)
    }
}
