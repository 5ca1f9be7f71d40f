//! The bake: signals collected from a stage's updated hosts every `signals().every`, boot ids
//! checked for unexpected reboots, rows appended to the stage's sample file.

use super::*;

pub(super) const SAMPLES_HEADER: [&str; 4] = ["host", "timestamp", "metric", "value"];

impl<'a> Controller<'a> {
    pub fn samples_path(&self, stage: usize) -> PathBuf {
        let dir = self.lock().journal.dir().to_path_buf();
        dir.join(format!("stage-{stage:02}.samples.csv"))
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
                let secs = match self.opts.bake {
                    Some(b) => b,
                    None => {
                        let info = self.with_state(|s| s.stages.get(stage).map(|p| p.info.clone()));
                        match info.map(|i| PolicyRules::new(&set).bake(&i)) {
                            Some(Ok(b)) => b,
                            Some(Err(e)) => {
                                return self.policy_pause(
                                    Some(stage),
                                    format!("`bake(wave)`: {e}"),
                                    clock,
                                )
                            }
                            None => 0,
                        }
                    }
                };
                let now = clock.now();
                let until = now
                    .checked_add(jiff::SignedDuration::from_secs(
                        i64::try_from(secs).unwrap_or(i64::MAX),
                    ))
                    .unwrap_or(now);
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
        drop(set);
        loop {
            if self.halted(clock)? {
                return Ok(());
            }
            self.collect(stage, &signals)?;
            let now = clock.now();
            if now >= until {
                return Ok(());
            }
            let left = until.duration_since(now).unsigned_abs();
            clock.sleep(Duration::from_secs(signals.every).min(left));
        }
    }

    /// One round of signals from the stage's updated hosts: metrics, and a boot-id check for
    /// unexpected reboots. Appended to the stage's sample file.
    pub(super) fn collect(&self, stage: usize, signals: &Signals) -> Result<(), ControllerError> {
        let hosts: Vec<String> = self.with_state(|s| {
            s.stages
                .get(stage)
                .map(|p| {
                    p.hosts
                        .iter()
                        .filter(|h| s.hosts.get(*h).is_some_and(|x| x.done))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        let set = self.policy()?;
        let rows: Mutex<Vec<(String, Sample)>> = Mutex::new(Vec::new());
        let cmd = RemoteCommand::new(signals.metrics.iter().cloned());
        self.parallel(&hosts, usize::MAX, |name, clock| {
            let Some(host) = self.fleet.host(name) else {
                return Ok(());
            };
            let now = epoch_secs(clock.now());
            let mut mine = Vec::new();
            match self
                .io
                .exec
                .run_at(host, &cmd, Duration::from_secs(signals.timeout), clock)
            {
                Ok(o) if o.success() => {
                    let (samples, bad) = parse_metrics(&o.stdout, now);
                    if !bad.is_empty() {
                        self.io.observer.note(&format!(
                            "host `{name}`: {} unreadable metrics line(s), e.g. `{}`",
                            bad.len(),
                            bad.first().map(String::as_str).unwrap_or("")
                        ));
                    }
                    mine.extend(samples);
                }
                Ok(o) => self.io.observer.note(&format!(
                    "host `{name}`: metrics command exited {}",
                    o.status
                )),
                Err(e) => self.io.observer.note(&format!("host `{name}`: {e}")),
            }
            // Unexpected reboots: the boot id moved since the host was verified.
            if let Some(probe) = self.probe_for(&set, host) {
                let known = self.with_state(|s| s.hosts.get(name).and_then(|h| h.boot_id.clone()));
                if let (Ok(id), Some(known)) = (
                    self.probe(host, &probe.boot_id, probe.timeout, clock),
                    known,
                ) {
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
        self.append_samples(stage, &rows)
    }

    pub(super) fn append_samples(
        &self,
        stage: usize,
        rows: &[(String, Sample)],
    ) -> Result<(), ControllerError> {
        let _guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.samples_path(stage);
        let io_err = |source| ControllerError::Io {
            path: path.clone(),
            source,
        };
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
        f.sync_data().map_err(io_err)
    }
}
