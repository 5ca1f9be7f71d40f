//! Alerts, behind the [`AlertSink`] trait: the log, a JSON-lines file and a webhook. A webhook
//! POST runs on its own thread with retries, so a slow or dead receiver never holds up the
//! controller.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// `info`, `warning`, `critical`: the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What an alert says. Serialized as the webhook's JSON body and one line of the alert file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub severity: Severity,
    /// A short machine-readable kind: `gate_paused`, `budget_exceeded`, `manual_pause`, ...
    pub kind: String,
    pub rollout: String,
    pub stage: Option<String>,
    pub summary: String,
    pub reasons: Vec<String>,
    pub at: String,
    pub policy: String,
}

/// Somewhere alerts go. `send` must return promptly.
pub trait AlertSink: Send + Sync {
    fn send(&self, alert: &Alert);
}

/// Logs alerts through `tracing`.
#[derive(Debug, Default)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn send(&self, a: &Alert) {
        match a.severity {
            Severity::Info => tracing::info!(kind = %a.kind, "{}", a.summary),
            Severity::Warning => tracing::warn!(kind = %a.kind, "{}", a.summary),
            Severity::Critical => tracing::error!(kind = %a.kind, "{}", a.summary),
        }
    }
}

/// Appends each alert as a JSON line to a file, flushed.
#[derive(Debug)]
pub struct FileSink {
    pub path: PathBuf,
}

impl AlertSink for FileSink {
    fn send(&self, a: &Alert) {
        let line = match serde_json::to_string(a) {
            Ok(l) => l,
            Err(_) => return,
        };
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                writeln!(f, "{line}")?;
                f.sync_data()
            });
        if let Err(e) = r {
            tracing::warn!("cannot write alert to `{}`: {e}", self.path.display());
        }
    }
}

/// What became of one webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub kind: String,
    pub delivered: bool,
    pub attempts: u32,
    pub error: Option<String>,
}

/// POSTs alerts as JSON to a URL from a background thread, retrying with backoff.
pub struct WebhookSink {
    tx: Mutex<Option<Sender<Alert>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

/// How a webhook retries.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub url: String,
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub backoff: Duration,
    pub timeout: Duration,
}

impl WebhookOptions {
    pub fn new(url: &str) -> Self {
        WebhookOptions {
            url: url.to_string(),
            attempts: 5,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), String> {
    agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn deliver(rx: Receiver<Alert>, opts: WebhookOptions, log: Arc<Mutex<Vec<Delivery>>>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .build()
        .into();
    for alert in rx {
        let body = match serde_json::to_string(&alert) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let mut wait = opts.backoff;
        let mut outcome = Delivery {
            kind: alert.kind.clone(),
            delivered: false,
            attempts: 0,
            error: None,
        };
        for attempt in 1..=opts.attempts.max(1) {
            outcome.attempts = attempt;
            match post(&agent, &opts.url, &body) {
                Ok(()) => {
                    outcome.delivered = true;
                    outcome.error = None;
                    break;
                }
                Err(e) => {
                    outcome.error = Some(e);
                    if attempt < opts.attempts {
                        std::thread::sleep(wait);
                        wait = wait.saturating_mul(2);
                    }
                }
            }
        }
        if let Some(e) = &outcome.error {
            tracing::warn!(
                "webhook `{}`: alert `{}` not delivered after {} attempt(s): {e}",
                opts.url,
                alert.kind,
                outcome.attempts
            );
        }
        if let Ok(mut l) = log.lock() {
            l.push(outcome);
        }
    }
}

impl WebhookSink {
    pub fn new(opts: WebhookOptions) -> Self {
        let (tx, rx) = mpsc::channel();
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&deliveries);
        let worker = std::thread::Builder::new()
            .name("fleetward-webhook".into())
            .spawn(move || deliver(rx, opts, log))
            .ok();
        WebhookSink {
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(worker),
            deliveries,
        }
    }

    /// Deliveries finished so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Stops taking alerts and waits up to `grace` for pending deliveries. Returns whether
    /// they all finished.
    pub fn flush(&self, grace: Duration) -> bool {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take()) else {
            return true;
        };
        let start = Instant::now();
        while !handle.is_finished() {
            if start.elapsed() >= grace {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = handle.join();
        true
    }
}

impl AlertSink for WebhookSink {
    fn send(&self, a: &Alert) {
        if let Ok(tx) = self.tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(a.clone());
            }
        }
    }
}

/// Sends each alert to every sink.
#[derive(Default)]
pub struct Alerts {
    pub sinks: Vec<Arc<dyn AlertSink>>,
}

impl AlertSink for Alerts {
    fn send(&self, a: &Alert) {
        for s in &self.sinks {
            s.send(a);
        }
    }
}

/// Keeps alerts in memory (simulations report them at the end).
#[derive(Default)]
pub struct Collected(pub Mutex<Vec<Alert>>);

impl Collected {
    pub fn alerts(&self) -> Vec<Alert> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl AlertSink for Collected {
    fn send(&self, a: &Alert) {
        if let Ok(mut v) = self.0.lock() {
            v.push(a.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;

    fn alert() -> Alert {
        Alert {
            severity: Severity::Warning,
            kind: "gate_paused".into(),
            rollout: "r".into(),
            stage: Some("wave 1".into()),
            summary: "paused".into(),
            reasons: vec!["slow".into()],
            at: "2026-01-01T00:00:00Z".into(),
            policy: "abc".into(),
        }
    }

    #[test]
    fn a_dead_receiver_never_blocks_and_is_retried() {
        // Bind and drop: nothing listens on this port any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut o = WebhookOptions::new(&format!("http://127.0.0.1:{port}/hook"));
        o.backoff = Duration::from_millis(10);
        o.attempts = 3;
        let sink = WebhookSink::new(o);
        let start = Instant::now();
        sink.send(&alert());
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "send returned at once"
        );
        assert!(sink.flush(Duration::from_secs(20)));
        let d = sink.deliveries();
        assert_eq!(d.len(), 1);
        assert!(!d[0].delivered);
        assert_eq!(d[0].attempts, 3);
    }

    #[test]
    fn posts_json() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l.trim().is_empty() {
                    break;
                }
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            (first, String::from_utf8(body).unwrap())
        });
        let sink = WebhookSink::new(WebhookOptions::new(&format!("http://127.0.0.1:{port}/h")));
        sink.send(&alert());
        assert!(sink.flush(Duration::from_secs(20)));
        let (first, body) = server.join().unwrap();
        assert!(first.starts_with("POST /h "), "{first}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "gate_paused");
        assert_eq!(v["reasons"][0], "slow");
        assert!(sink.deliveries()[0].delivered);
    }
}
