//! The observer the `rollout` and `simulate` commands print through: JSON lines, or a
//! progress bar with a line per notable event (the lines come from the engine's renderer).

use crate::output::{json_line, Format};
use fleetward_engine::rollout::controller::Observer;
use fleetward_engine::rollout::{render, Event, Record, RolloutState};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicI64, Ordering};

pub struct Printer {
    format: Format,
    bar: ProgressBar,
    /// Print host-level lines (off for big simulations).
    hosts: bool,
    /// Hosts settled so far; counted from the state once, then kept up by events.
    settled: AtomicI64,
}

impl Printer {
    pub fn new(format: Format, hosts: bool) -> Self {
        let bar = if format == Format::Human {
            let b = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} hosts  {msg}",
            ) {
                b.set_style(style);
            }
            b
        } else {
            ProgressBar::hidden()
        };
        Printer {
            format,
            bar,
            hosts,
            settled: AtomicI64::new(-1),
        }
    }

    fn line(&self, s: &str) {
        self.bar.suspend(|| println!("{s}"));
    }
}

impl Observer for Printer {
    fn begin(&self, hosts: usize) {
        self.bar.set_length(hosts as u64);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn record(&self, r: &Record, st: &RolloutState) {
        if self.format == Format::Json {
            json_line(
                &serde_json::json!({ "type": "event", "seq": r.seq, "at": r.at, "policy": r.policy, "event": r.event }),
            );
            return;
        }
        if self.settled.load(Ordering::Relaxed) < 0 {
            let n = st.hosts.values().filter(|h| h.settled()).count();
            self.settled.store(n as i64, Ordering::Relaxed);
        } else if matches!(
            r.event,
            Event::HostDone { .. } | Event::HostFailed { .. } | Event::HostHeld { .. }
        ) {
            self.settled.fetch_add(1, Ordering::Relaxed);
        }
        self.bar
            .set_position(self.settled.load(Ordering::Relaxed).max(0) as u64);
        if let Some(m) = render::bar_message(r, st) {
            self.bar.set_message(m);
        }
        if let Some(l) = render::event_line(r, st, self.hosts) {
            self.line(&l);
        }
    }

    fn note(&self, message: &str) {
        match self.format {
            Format::Json => json_line(&serde_json::json!({ "type": "note", "message": message })),
            Format::Human => self.line(&format!("  note: {message}")),
        }
    }
}
