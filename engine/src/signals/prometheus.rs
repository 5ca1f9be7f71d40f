//! Prometheus as a signals source: PromQL templates whose placeholders come from inventory
//! facts, planned into batched `query_range` requests (one per metric per batch of hosts
//! whose other placeholders agree, the hosts matched with one regex alternation), the answer
//! mapped back to hosts as gate samples, and the HTTP reader behind [`MetricsStore`] with
//! timeouts, bounded retries with backoff, and auth from the environment.

use super::Sample;
use crate::model::Host;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// node_exporter's metrics for the standard set. `{{instance}}` becomes the batch's regex
/// alternation; `{{rate}}` the rate window; `{{devices}}`/`{{interfaces}}` a `device`
/// matcher (the names `signals()` gives, else every device but virtual ones).
pub const STANDARD: [(&str, &str); 10] = [
    (
        "cpu_util_pct",
        r#"100 * (1 - sum by (instance) (rate(node_cpu_seconds_total{instance=~"{{instance}}",mode=~"idle|iowait"}[{{rate}}])) / sum by (instance) (rate(node_cpu_seconds_total{instance=~"{{instance}}"}[{{rate}}])))"#,
    ),
    (
        "mem_used_pct",
        r#"100 * (1 - node_memory_MemAvailable_bytes{instance=~"{{instance}}"} / node_memory_MemTotal_bytes{instance=~"{{instance}}"})"#,
    ),
    (
        "io_latency_p50_ms",
        r#"1000 * quantile by (instance) (0.5, (rate(node_disk_read_time_seconds_total{instance=~"{{instance}}",{{devices}}}[{{rate}}]) + rate(node_disk_write_time_seconds_total{instance=~"{{instance}}",{{devices}}}[{{rate}}])) / ((rate(node_disk_reads_completed_total{instance=~"{{instance}}",{{devices}}}[{{rate}}]) + rate(node_disk_writes_completed_total{instance=~"{{instance}}",{{devices}}}[{{rate}}])) > 0))"#,
    ),
    (
        "io_latency_p99_ms",
        r#"1000 * quantile by (instance) (0.99, (rate(node_disk_read_time_seconds_total{instance=~"{{instance}}",{{devices}}}[{{rate}}]) + rate(node_disk_write_time_seconds_total{instance=~"{{instance}}",{{devices}}}[{{rate}}])) / ((rate(node_disk_reads_completed_total{instance=~"{{instance}}",{{devices}}}[{{rate}}]) + rate(node_disk_writes_completed_total{instance=~"{{instance}}",{{devices}}}[{{rate}}])) > 0))"#,
    ),
    (
        "net_throughput_mbps",
        r#"8 * sum by (instance) (rate(node_network_receive_bytes_total{instance=~"{{instance}}",{{interfaces}}}[{{rate}}]) + rate(node_network_transmit_bytes_total{instance=~"{{instance}}",{{interfaces}}}[{{rate}}])) / 1e6"#,
    ),
    (
        "psi_cpu_some_pct",
        r#"100 * rate(node_pressure_cpu_waiting_seconds_total{instance=~"{{instance}}"}[{{rate}}])"#,
    ),
    (
        "psi_memory_some_pct",
        r#"100 * rate(node_pressure_memory_waiting_seconds_total{instance=~"{{instance}}"}[{{rate}}])"#,
    ),
    (
        "psi_memory_full_pct",
        r#"100 * rate(node_pressure_memory_stalled_seconds_total{instance=~"{{instance}}"}[{{rate}}])"#,
    ),
    (
        "psi_io_some_pct",
        r#"100 * rate(node_pressure_io_waiting_seconds_total{instance=~"{{instance}}"}[{{rate}}])"#,
    ),
    (
        "psi_io_full_pct",
        r#"100 * rate(node_pressure_io_stalled_seconds_total{instance=~"{{instance}}"}[{{rate}}])"#,
    ),
];

/// Devices left out of the default disk matcher: virtual ones.
const VIRTUAL_DEVICES: &str = "(loop|ram|zram|dm-|md|sr|fd|nbd).*";
/// Interfaces left out of the default network matcher: loopback and virtual ones.
const VIRTUAL_INTERFACES: &str = "lo|(veth|docker|br-|virbr|cni|flannel|cali|tun|tap|vxlan).*";

/// What a Prometheus source asks, resolved from `signals()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Base URL, e.g. `http://prometheus:9090`.
    pub url: String,
    /// Seconds between points of a range query.
    pub step: u64,
    /// Rate window in seconds (`{{rate}}`).
    pub rate: u64,
    /// Hosts per query at most.
    pub batch: usize,
    /// The series label that names a host's target.
    pub label: String,
    /// A host's value of that label, a template (`{{host}}:9100`); a fact `instance` wins.
    pub instance: String,
    /// Metric → PromQL template: the standard set overlaid with the policy's own.
    pub queries: BTreeMap<String, String>,
    pub devices: Vec<String>,
    pub interfaces: Vec<String>,
}

/// The templates a policy's `queries` (and `standard`) make: an empty template drops a metric.
pub fn templates(standard: bool, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = if standard {
        STANDARD
            .iter()
            .map(|(m, q)| (m.to_string(), q.to_string()))
            .collect()
    } else {
        BTreeMap::new()
    };
    for (m, q) in own {
        if q.trim().is_empty() {
            out.remove(m);
        } else {
            out.insert(m.clone(), q.clone());
        }
    }
    out
}

/// Checks a template's placeholders are closed and named (the names themselves are checked
/// per host, since facts differ).
pub fn check_template(t: &str) -> Result<(), String> {
    fill(t, |_| Ok(String::new())).map(|_| ())
}

/// `t` with each `{{name}}` replaced by `value(name)`; an unclosed or empty placeholder is an
/// error. The one scanner of templates.
fn fill(t: &str, mut value: impl FnMut(&str) -> Result<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("`{{{{` without `}}}}` in `{t}`"));
        };
        let name = after[..j].trim();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '{') {
            return Err(format!(
                "`{{{{{}}}}}` is not a placeholder name",
                &after[..j]
            ));
        }
        out.push_str(&value(name)?);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `s` as the inside of a PromQL double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as a literal inside a RE2 regular expression.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `device` matcher: these names, or every name but `virtual`.
fn device_matcher(names: &[String], virtual_: &str) -> String {
    if names.is_empty() {
        format!("device!~\"{}\"", quote(virtual_))
    } else {
        let alt: Vec<String> = names.iter().map(|n| regex_literal(n)).collect();
        format!("device=~\"{}\"", quote(&alt.join("|")))
    }
}

/// A host's fact `key` (`facts.KEY` or `KEY`) as text.
fn fact(host: &Host, name: &str) -> Result<String, String> {
    let key = name.strip_prefix("facts.").unwrap_or(name);
    match host.facts.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        Some(_) => Err(format!(
            "fact `{key}` of host `{}` is not a string or a number",
            host.name
        )),
        None => Err(format!("host `{}` has no fact `{key}`", host.name)),
    }
}

/// A host's value for a placeholder other than `instance`.
fn host_value(spec: &Spec, host: &Host, name: &str) -> Result<String, String> {
    Ok(match name {
        "host" => quote(&host.name),
        "address" => quote(&host.address),
        "hardware" => quote(&host.hardware),
        "workload" => quote(&host.workload),
        "datacenter" => quote(&host.datacenter),
        "rack" => quote(&host.rack),
        "rate" => format!("{}s", spec.rate),
        "step" => format!("{}s", spec.step),
        "devices" => device_matcher(&spec.devices, VIRTUAL_DEVICES),
        "interfaces" => device_matcher(&spec.interfaces, VIRTUAL_INTERFACES),
        other => quote(&fact(host, other)?),
    })
}

/// `t` with every placeholder but `instance` filled for `host`.
fn render(spec: &Spec, t: &str, host: &Host) -> Result<String, String> {
    fill(t, |name| match name {
        "instance" => Ok("{{instance}}".into()),
        other => host_value(spec, host, other),
    })
}

/// A host's value of the target label: its fact `instance`, else `spec.instance` filled in
/// (unquoted: it is matched, not spliced).
pub fn instance_of(spec: &Spec, host: &Host) -> Result<String, String> {
    if let Some(serde_json::Value::String(s)) = host.facts.get("instance") {
        return Ok(s.clone());
    }
    fill(&spec.instance, |name| match name {
        "host" => Ok(host.name.clone()),
        "address" => Ok(host.address.clone()),
        "instance" => Err("`instance` cannot name itself".into()),
        other => fact(host, other),
    })
}

/// One range query: a metric for a batch of hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metric: String,
    pub promql: String,
    /// Target-label value → host.
    pub hosts: BTreeMap<String, String>,
}

/// The queries for `hosts`, and the hosts no query could be made for, with why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planned {
    pub queries: Vec<Query>,
    pub errors: Vec<(String, String)>,
}

/// Plans the queries: per metric, hosts grouped by their filled template (only `{{instance}}`
/// left), then cut into batches of `spec.batch`, each matched by one alternation.
pub fn plan(spec: &Spec, hosts: &[&Host]) -> Planned {
    let mut out = Planned::default();
    let mut instances: Vec<(&Host, String)> = Vec::new();
    for h in hosts {
        match instance_of(spec, h) {
            Ok(i) => instances.push((h, i)),
            Err(e) => out
                .errors
                .push((h.name.clone(), format!("`instance` template: {e}"))),
        }
    }
    for (metric, template) in &spec.queries {
        // Filled template → (instance → host), in first-seen order of templates.
        let mut groups: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for (h, inst) in &instances {
            match render(spec, template, h) {
                Ok(t) => match groups.iter_mut().find(|(k, _)| *k == t) {
                    Some((_, m)) => {
                        m.insert(inst.clone(), h.name.clone());
                    }
                    None => groups.push((t, BTreeMap::from([(inst.clone(), h.name.clone())]))),
                },
                Err(e) => out
                    .errors
                    .push((h.name.clone(), format!("the query of `{metric}`: {e}"))),
            }
        }
        for (t, members) in groups {
            let members: Vec<(String, String)> = members.into_iter().collect();
            for chunk in members.chunks(spec.batch.max(1)) {
                let alt: Vec<String> = chunk.iter().map(|(i, _)| regex_literal(i)).collect();
                out.queries.push(Query {
                    metric: metric.clone(),
                    promql: t.replace("{{instance}}", &quote(&alt.join("|"))),
                    hosts: chunk.iter().cloned().collect(),
                });
            }
        }
    }
    out
}

/// One series of a range answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub metric: BTreeMap<String, String>,
    #[serde(default)]
    pub values: Vec<(f64, String)>,
}

/// A query's series as samples of its hosts: series matched by the target label; non-finite
/// values (idle disks' 0/0) left out. A series without the label, or two for one host, is an
/// error naming the query: the template must aggregate `by (LABEL)`.
pub fn samples(q: &Query, series: &[Series], label: &str) -> Result<Vec<(String, Sample)>, String> {
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    let mut out = Vec::new();
    for s in series {
        let Some(inst) = s.metric.get(label) else {
            return Err(format!(
                "the query of `{}` returned a series without label `{label}` ({:?}); aggregate `by ({label})`",
                q.metric, s.metric
            ));
        };
        let Some(host) = q.hosts.get(inst) else {
            continue;
        };
        if seen.insert(host.as_str(), ()).is_some() {
            return Err(format!(
                "the query of `{}` returned more than one series for host `{host}` (`{label}` `{inst}`); aggregate `by ({label})`",
                q.metric
            ));
        }
        for (t, v) in &s.values {
            if let Ok(v) = v.parse::<f64>() {
                if v.is_finite() {
                    out.push((
                        host.clone(),
                        Sample {
                            timestamp: *t,
                            metric: q.metric.clone(),
                            value: v,
                        },
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Where and how to reach a Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub settings: Settings,
}

/// `[prometheus]` in `fleetward.toml`: auth taken from environment variables (never the file),
/// per-request timeout, retries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// An environment variable holding a bearer token.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// An environment variable holding `user:password` for basic auth.
    #[serde(default)]
    pub basic_auth_env: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts after the first, on connection errors, 429 and 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Milliseconds before the first retry; doubled each time.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// Range queries in flight at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
}

fn default_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> u64 {
    250
}
fn default_parallel() -> usize {
    4
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bearer_token_env: None,
            basic_auth_env: None,
            timeout_secs: default_timeout(),
            retries: default_retries(),
            backoff_ms: default_backoff(),
            parallel: default_parallel(),
        }
    }
}

/// `[prometheus]` in `fleetward.toml`.
pub const SECTION: crate::config::SectionSpec = crate::config::SectionSpec {
    name: "prometheus",
    parse: |text| {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            prometheus: Settings,
        }
        let s = crate::config::section_of::<Only>(text)?.prometheus;
        if s.bearer_token_env.is_some() && s.basic_auth_env.is_some() {
            return Err(crate::config::ConfigError {
                message: "`[prometheus]` takes `bearer_token_env` or `basic_auth_env`, not both"
                    .into(),
                line: 1,
                col: 1,
            });
        }
        Ok(std::sync::Arc::new(s))
    },
};

impl crate::runtime::PolicySet {
    /// `[prometheus]` in `fleetward.toml`.
    pub fn prometheus_settings(&self) -> Settings {
        self.section::<Settings>(SECTION.name)
            .cloned()
            .unwrap_or_default()
    }
}

/// Why a range query gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromError {
    #[error("prometheus `{url}` could not be reached for `{query}` after {attempts} attempt(s): {message}")]
    Unreachable {
        url: String,
        query: String,
        attempts: u32,
        message: String,
    },
    #[error("prometheus rejected `{query}` ({status} {kind}): {message}")]
    Rejected {
        query: String,
        status: u16,
        kind: String,
        message: String,
    },
    #[error("prometheus answered `{query}` with what is not a range result: {message}")]
    Garbled { query: String, message: String },
    #[error("prometheus auth: the environment has no `{var}`, which `[prometheus] {key}` in fleetward.toml names")]
    Auth { var: String, key: String },
    #[error("{0}")]
    Unsupported(String),
}

/// A range query over `[start, end]` (epoch seconds) every `step` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    pub step: u64,
}

/// A Prometheus HTTP API: `query_range`, and how many requests it made.
pub trait MetricsStore: Send + Sync {
    fn query_range(
        &self,
        endpoint: &Endpoint,
        promql: &str,
        range: Range,
    ) -> Result<Vec<Series>, PromError>;

    /// HTTP requests made so far, retries included.
    fn requests(&self) -> u64 {
        0
    }
}

/// No Prometheus: every query fails (the simulator, and controllers whose policy never asks).
#[derive(Debug, Default)]
pub struct NoMetricsStore;

impl MetricsStore for NoMetricsStore {
    fn query_range(&self, _: &Endpoint, _: &str, _: Range) -> Result<Vec<Series>, PromError> {
        Err(PromError::Unsupported(
            "no prometheus is reachable from here (the simulator speaks only the ssh collector)"
                .into(),
        ))
    }
}

/// The HTTP reader: POSTed forms (an alternation of thousands of hosts does not fit a URL).
#[derive(Debug, Default)]
pub struct HttpStore {
    requests: AtomicU64,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

impl HttpStore {
    pub fn new() -> Self {
        HttpStore::default()
    }

    fn auth(s: &Settings) -> Result<Option<String>, PromError> {
        let read = |var: &str, key: &str| {
            std::env::var(var).map_err(|_| PromError::Auth {
                var: var.to_string(),
                key: key.to_string(),
            })
        };
        if let Some(var) = &s.bearer_token_env {
            return Ok(Some(format!("Bearer {}", read(var, "bearer_token_env")?)));
        }
        if let Some(var) = &s.basic_auth_env {
            let v = read(var, "basic_auth_env")?;
            return Ok(Some(format!("Basic {}", base64(v.as_bytes()))));
        }
        Ok(None)
    }
}

/// Standard base64 with padding (basic auth's encoding).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What the answer to a query says: its series, or the error Prometheus gave.
fn decode(query: &str, status: u16, body: &str) -> Result<Vec<Series>, PromError> {
    let answer: Answer = serde_json::from_str(body).map_err(|e| PromError::Garbled {
        query: query.to_string(),
        message: format!(
            "HTTP {status}, {e}: `{}`",
            body.chars().take(200).collect::<String>()
        ),
    })?;
    if answer.status != "success" {
        return Err(PromError::Rejected {
            query: query.to_string(),
            status,
            kind: answer.error_type.unwrap_or_default(),
            message: answer.error.unwrap_or_default(),
        });
    }
    match answer.data {
        Some(d) if d.result_type == "matrix" => Ok(d.result),
        Some(d) => Err(PromError::Garbled {
            query: query.to_string(),
            message: format!("result type `{}`, not `matrix`", d.result_type),
        }),
        None => Err(PromError::Garbled {
            query: query.to_string(),
            message: "no `data`".into(),
        }),
    }
}

impl MetricsStore for HttpStore {
    fn query_range(
        &self,
        endpoint: &Endpoint,
        promql: &str,
        range: Range,
    ) -> Result<Vec<Series>, PromError> {
        let s = &endpoint.settings;
        let auth = Self::auth(s)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(s.timeout_secs.max(1))))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}/api/v1/query_range", endpoint.url.trim_end_matches('/'));
        let form = [
            ("query", promql.to_string()),
            ("start", format!("{:.3}", range.start)),
            ("end", format!("{:.3}", range.end)),
            ("step", range.step.max(1).to_string()),
        ];
        let mut wait = Duration::from_millis(s.backoff_ms);
        let attempts = s.retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = agent.post(&url);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            match req.send_form(form.iter().map(|(k, v)| (*k, v.as_str()))) {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(256 * 1024 * 1024)
                        .read_to_string();
                    match body {
                        Ok(body) if status == 429 || status >= 500 => {
                            last = format!(
                                "HTTP {status}: {}",
                                body.chars().take(200).collect::<String>()
                            );
                        }
                        Ok(body) => return decode(promql, status, &body),
                        Err(e) => last = format!("reading the answer: {e}"),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < attempts {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
        }
        Err(PromError::Unreachable {
            url: endpoint.url.clone(),
            query: promql.to_string(),
            attempts,
            message: last,
        })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Samples of every host from a set of queries, and what went wrong: per host (no query
/// possible, no series) and per query (Prometheus's own error).
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub rows: Vec<(String, Sample)>,
    /// Host → why it has fewer samples than asked (or none).
    pub host_errors: BTreeMap<String, Vec<String>>,
    /// Errors of whole queries.
    pub errors: Vec<String>,
    pub queries: usize,
}

/// Plans and runs the queries for `hosts` over `range`, `settings.parallel` at a time. A
/// host a query covered but that came back without a series gets an error naming the metric:
/// its data is missing, never zero.
pub fn fetch(
    store: &dyn MetricsStore,
    endpoint: &Endpoint,
    spec: &Spec,
    hosts: &[&Host],
    range: Range,
) -> Fetched {
    let planned = plan(spec, hosts);
    let mut out = Fetched {
        queries: planned.queries.len(),
        ..Fetched::default()
    };
    for (h, e) in planned.errors {
        out.host_errors.entry(h).or_default().push(e);
    }
    let answers =
        crate::pool::bounded_map(&planned.queries, endpoint.settings.parallel.max(1), |q| {
            store.query_range(endpoint, &q.promql, range)
        });
    for (q, a) in planned.queries.iter().zip(answers) {
        let got = match a {
            Some(Ok(series)) => samples(q, &series, &spec.label),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the query's thread died".into()),
        };
        match got {
            Ok(rows) => {
                let answered: std::collections::BTreeSet<&str> =
                    rows.iter().map(|(h, _)| h.as_str()).collect();
                for (inst, host) in &q.hosts {
                    if !answered.contains(host.as_str()) {
                        out.host_errors
                            .entry(host.clone())
                            .or_default()
                            .push(format!(
                                "no series for `{}` (`{}` `{inst}`)",
                                q.metric, spec.label
                            ));
                    }
                }
                out.rows.extend(rows);
            }
            Err(e) => {
                for host in q.hosts.values() {
                    out.host_errors
                        .entry(host.clone())
                        .or_default()
                        .push(format!("no `{}`: the query failed", q.metric));
                }
                out.errors.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
