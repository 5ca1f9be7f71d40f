//! The coordinator over a real etcd cluster, through etcd's JSON gateway (`/v3/...`) with the
//! HTTP client already in the tree: one lease per controller, kept alive from a background
//! thread; shard leadership by a key created under the leader's lease; every write a
//! transaction guarded by the leadership key's create revision; semaphore slots that name
//! their holder and outlive the lease.
//!
//! Every call is blocking and bounded: each request has a deadline, and a member that refuses
//! or does not answer in time is passed over for the next. Requests carry etcd's
//! require-leader flag, so a member cut off from its quorum answers at once rather than late.

use super::{Fence, FenceError, Keys, LeaseView};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// No member answered (refused, timed out, no leader).
    #[error("etcd `{endpoints}`: {op}: {message}")]
    Unreachable {
        endpoints: String,
        op: &'static str,
        message: String,
    },
    /// A member answered with an error of etcd's.
    #[error("etcd `{endpoints}`: {op}: {message}")]
    Refused {
        endpoints: String,
        op: &'static str,
        message: String,
    },
    /// A fenced write found the leadership key gone or re-created: this controller no longer
    /// leads and must not act.
    #[error("no longer the leader of `{election}`: a fenced write was refused")]
    Deposed { election: String },
    /// A journal record with this sequence number is already in etcd.
    #[error("journal record {seq} of shard `{shard}` is already in etcd")]
    Duplicate { shard: String, seq: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// How a session talks to etcd.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// `host:port` or `http://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// The lease's time to live: a dead controller's leadership and slots last this long.
    pub ttl: Duration,
    /// How often the lease is renewed; also the fence's margin. A third of the TTL by default.
    pub interval: Duration,
    /// Deadline of each request to one member, renewals included: half the interval by
    /// default, so a controller cut off from etcd stops within 1.5 intervals even when
    /// nothing answers.
    pub timeout: Duration,
}

impl SessionOptions {
    pub fn new(endpoints: Vec<String>, ttl: Duration) -> Self {
        let interval = ttl / 3;
        SessionOptions {
            endpoints,
            ttl,
            interval,
            timeout: interval / 2,
        }
    }
}

/// Won leadership of an election: the key that proves it while it exists with its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    election: String,
    key: Vec<u8>,
    rev: i64,
}

impl Leader {
    pub fn election(&self) -> &str {
        &self.election
    }

    /// The guard every fenced write carries.
    fn guard(&self) -> Value {
        json!({
            "key": B64.encode(&self.key),
            "target": "CREATE",
            "result": "EQUAL",
            "create_revision": self.rev.to_string(),
        })
    }

    /// Whether a transaction's failure branch (a read of the leader key) shows it still leads.
    fn shown_in(&self, txn: &Value) -> bool {
        responses(txn)
            .iter()
            .filter_map(|r| r.get("response_range"))
            .flat_map(kvs)
            .any(|kv| int(kv, "create_revision") == self.rev)
    }
}

/// A held semaphore slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub semaphore: String,
    pub slot: usize,
    pub holder: String,
}

/// The members, tried in turn from the last that answered.
struct Conn {
    agent: ureq::Agent,
    urls: Vec<String>,
    good: AtomicUsize,
    /// HTTP requests sent to any member, keep-alives included.
    sent: AtomicU64,
}

/// Why one call failed.
enum CallError {
    /// Try the next member.
    Unreachable(String),
    /// The member did not answer within the deadline.
    TimedOut(String),
    /// etcd's own answer: no other member would say otherwise.
    Refused(String),
}

impl Conn {
    fn new(endpoints: &[String]) -> Conn {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let urls = endpoints
            .iter()
            .map(|e| {
                let e = e.trim().trim_end_matches('/');
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        Conn {
            agent,
            urls,
            good: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
        }
    }

    fn endpoints(&self) -> String {
        self.urls.join(",")
    }

    /// POSTs `body` to `path` on each member in turn until one answers.
    fn call(&self, path: &str, body: &Value, deadline: Duration) -> Result<Value, CallError> {
        let n = self.urls.len().max(1);
        let first = self.good.load(Ordering::Relaxed);
        let body = body.to_string();
        let mut last = CallError::Unreachable("no member".into());
        for i in 0..n {
            let at = (first + i) % n;
            let Some(url) = self.urls.get(at) else {
                continue;
            };
            match self.call_one(&format!("{url}{path}"), &body, deadline) {
                Ok(v) => {
                    self.good.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(CallError::Refused(m)) => return Err(CallError::Refused(m)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn call_one(&self, url: &str, body: &str, deadline: Duration) -> Result<Value, CallError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(deadline))
            .build()
            .header("content-type", "application/json")
            // etcd's require-leader flag, as gRPC metadata through the gateway.
            .header("grpc-metadata-hasleader", "true")
            .send(body);
        let mut resp = resp.map_err(|e| match e {
            ureq::Error::Timeout(_) => CallError::TimedOut(e.to_string()),
            e => CallError::Unreachable(e.to_string()),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| CallError::Unreachable(format!("reading the answer: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            CallError::Unreachable(format!(
                "HTTP {status}, not JSON ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if status == 200 && v.get("error").is_none() {
            return Ok(v);
        }
        let message = v
            .get("message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_string();
        // gRPC UNAVAILABLE (14) and DEADLINE_EXCEEDED (4): this member cannot serve now, as
        // when it lost its quorum; another may.
        match v.get("code").and_then(Value::as_i64) {
            Some(14) | Some(4) => Err(CallError::Unreachable(format!("HTTP {status}: {message}"))),
            _ => Err(CallError::Refused(format!("HTTP {status}: {message}"))),
        }
    }
}

/// One controller's connection to etcd: its lease and the thread that keeps it alive.
pub struct Session {
    conn: Arc<Conn>,
    lease: i64,
    opts: SessionOptions,
    view: Arc<Mutex<LeaseView>>,
    /// Dropped to stop the keeper.
    stop: Option<Sender<()>>,
    keeper: Option<JoinHandle<()>>,
    keys: Keys,
}

impl Session {
    /// Connects, grants a lease and starts keeping it alive.
    pub fn connect(opts: SessionOptions, keys: Keys) -> Result<Session, CoordError> {
        if opts.endpoints.is_empty() {
            return Err(CoordError::Invalid("no etcd endpoint given".into()));
        }
        let ttl_secs = opts.ttl.as_secs();
        if ttl_secs < 2 {
            return Err(CoordError::Invalid(format!(
                "a lease TTL of {:?} is too short: etcd counts whole seconds, and renewals need at least 2",
                opts.ttl
            )));
        }
        let conn = Arc::new(Conn::new(&opts.endpoints));
        let sent = Instant::now();
        let granted = run(
            &conn,
            "grant a lease",
            "/v3/lease/grant",
            &json!({ "TTL": ttl_secs }),
            opts.timeout,
        )?;
        let lease = int(&granted, "ID");
        let ttl = Duration::from_secs(int(&granted, "TTL").max(0) as u64);
        if lease == 0 || ttl.is_zero() {
            return Err(CoordError::Refused {
                endpoints: conn.endpoints(),
                op: "grant a lease",
                message: format!("the answer grants no lease: {granted}"),
            });
        }
        let view = Arc::new(Mutex::new(LeaseView::new(
            sent,
            ttl,
            opts.interval,
            opts.timeout,
        )));
        let (stop, stopped) = mpsc::channel();
        let keeper = {
            let (conn, view, interval, timeout) = (
                Arc::clone(&conn),
                Arc::clone(&view),
                opts.interval,
                opts.timeout,
            );
            std::thread::Builder::new()
                .name("fleetward-lease".into())
                .spawn(move || loop {
                    let sent = Instant::now();
                    let renewed = conn.call(
                        "/v3/lease/keepalive",
                        &json!({ "ID": lease.to_string() }),
                        timeout,
                    );
                    let expired = match renewed {
                        Ok(v) => {
                            let ttl = int(v.get("result").unwrap_or(&v), "TTL");
                            set(&view, |w| {
                                if ttl > 0 {
                                    w.confirmed(sent, Duration::from_secs(ttl as u64));
                                } else {
                                    w.expired();
                                }
                            });
                            ttl <= 0
                        }
                        Err(
                            CallError::Unreachable(m)
                            | CallError::TimedOut(m)
                            | CallError::Refused(m),
                        ) => {
                            set(&view, |w| w.failed(m));
                            false
                        }
                    };
                    if expired {
                        return;
                    }
                    let wait = (sent + interval).saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                })
                .map_err(|e| CoordError::Invalid(format!("cannot start the lease keeper: {e}")))?
        };
        Ok(Session {
            conn,
            lease,
            opts,
            view,
            stop: Some(stop),
            keeper: Some(keeper),
            keys,
        })
    }

    /// HTTP requests this session sent to etcd so far, each try of each member counted,
    /// lease keep-alives included.
    pub fn requests(&self) -> u64 {
        self.conn.sent.load(Ordering::Relaxed)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn lease_id(&self) -> i64 {
        self.lease
    }

    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    fn run(&self, op: &'static str, path: &str, body: &Value) -> Result<Value, CoordError> {
        run(&self.conn, op, path, body, self.opts.timeout)
    }

    /// Campaigns in `election` with `value` until elected or `wait` passes (`Ok(None)`). The
    /// leader is whoever created the election's key, bound to its lease, so the key goes with
    /// a dead leader's lease; standing by is asking again every 100 ms. One transaction per
    /// ask and nothing left waiting in etcd: a candidacy abandoned on a timeout cannot later
    /// delete the key of the leadership it won meanwhile.
    pub fn campaign(
        &self,
        election: &str,
        value: &str,
        wait: Duration,
    ) -> Result<Option<Leader>, CoordError> {
        let key = election.as_bytes();
        let until = Instant::now() + wait;
        loop {
            let body = json!({
                "compare": [absent(key)],
                "success": [put(key, value.as_bytes(), Some(self.lease))],
                "failure": [{ "request_range": { "key": B64.encode(key) } }],
            });
            let v = self.run("campaign", "/v3/kv/txn", &body)?;
            let rev = if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
                // The put is the transaction's one change: the key's create revision.
                v.get("header").map(|h| int(h, "revision")).unwrap_or(0)
            } else {
                // Ours already, from an ask whose answer was lost.
                responses(&v)
                    .iter()
                    .filter_map(|r| r.get("response_range"))
                    .flat_map(kvs)
                    .find(|kv| int(kv, "lease") == self.lease)
                    .map(|kv| int(kv, "create_revision"))
                    .unwrap_or(0)
            };
            if rev > 0 {
                return Ok(Some(Leader {
                    election: election.to_string(),
                    key: key.to_vec(),
                    rev,
                }));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether `leader`'s key still exists with its revision.
    pub fn still_leads(&self, leader: &Leader) -> Result<bool, CoordError> {
        let v = self.run(
            "read the leader key",
            "/v3/kv/range",
            &json!({ "key": B64.encode(&leader.key) }),
        )?;
        Ok(kvs(&v)
            .into_iter()
            .any(|kv| int(kv, "create_revision") == leader.rev))
    }

    /// A transaction: `when` all hold, `then`; otherwise read the leader key.
    fn fenced(
        &self,
        op: &'static str,
        leader: &Leader,
        when: Vec<Value>,
        then: Vec<Value>,
    ) -> Result<(bool, Value), CoordError> {
        let body = json!({
            "compare": when,
            "success": then,
            "failure": [{ "request_range": { "key": B64.encode(&leader.key) } }],
        });
        let v = self.run(op, "/v3/kv/txn", &body)?;
        Ok((
            v.get("succeeded").and_then(Value::as_bool).unwrap_or(false),
            v,
        ))
    }

    /// Does `then`, only while `leader` leads.
    fn while_leading(
        &self,
        op: &'static str,
        leader: &Leader,
        then: Value,
    ) -> Result<(), CoordError> {
        let (ok, _) = self.fenced(op, leader, vec![leader.guard()], vec![then])?;
        if ok {
            Ok(())
        } else {
            Err(CoordError::Deposed {
                election: leader.election.clone(),
            })
        }
    }

    /// Puts `key` = `value`, only while `leader` leads.
    pub fn put_fenced(&self, leader: &Leader, key: &str, value: &[u8]) -> Result<(), CoordError> {
        self.while_leading("fenced put", leader, put(key.as_bytes(), value, None))
    }

    /// Appends record `seq` of `shard`'s journal, only while `leader` leads and only once.
    pub fn append_record(
        &self,
        leader: &Leader,
        shard: &str,
        seq: u64,
        record: &[u8],
    ) -> Result<(), CoordError> {
        let key = self.keys.journal_record(shard, seq);
        let (ok, v) = self.fenced(
            "append a journal record",
            leader,
            vec![leader.guard(), absent(key.as_bytes())],
            vec![put(key.as_bytes(), record, None)],
        )?;
        if ok {
            Ok(())
        } else if leader.shown_in(&v) {
            Err(CoordError::Duplicate {
                shard: shard.to_string(),
                seq,
            })
        } else {
            Err(CoordError::Deposed {
                election: leader.election.clone(),
            })
        }
    }

    /// The shard's journal records in order, as `(seq, bytes)`.
    pub fn records(&self, shard: &str) -> Result<Vec<(u64, Vec<u8>)>, CoordError> {
        let prefix = self.keys.shard_journal(shard);
        let mut out = Vec::new();
        for (key, value) in self.range(&prefix)? {
            let seq = key
                .strip_prefix(&prefix)
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    CoordError::Invalid(format!("`{key}` under the journal is not a record"))
                })?;
            out.push((seq, value));
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out)
    }

    /// Record `seq` of the shard's journal, if etcd has it.
    pub fn record(&self, shard: &str, seq: u64) -> Result<Option<Vec<u8>>, CoordError> {
        self.get(&self.keys.journal_record(shard, seq))
    }

    /// The value at `key`, if there is one.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoordError> {
        Ok(self.get_revised(key)?.map(|(v, _)| v))
    }

    /// The value at `key` with the revision that last changed it, if there is one.
    pub fn get_revised(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, CoordError> {
        let v = self.run(
            "read a key",
            "/v3/kv/range",
            &json!({ "key": B64.encode(key) }),
        )?;
        Ok(kvs(&v)
            .first()
            .map(|kv| (bytes(kv, "value"), int(kv, "mod_revision"))))
    }

    /// Puts `key` = `value` whoever leads, as an operator's request does; returns the
    /// revision of the write.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<i64, CoordError> {
        let v = self.run(
            "write a key",
            "/v3/kv/put",
            &json!({ "key": B64.encode(key), "value": B64.encode(value) }),
        )?;
        Ok(v.get("header").map(|h| int(h, "revision")).unwrap_or(0))
    }

    /// Deletes `key`, only while `leader` leads.
    pub fn delete_fenced(&self, leader: &Leader, key: &str) -> Result<(), CoordError> {
        self.while_leading(
            "fenced delete",
            leader,
            json!({ "request_delete_range": { "key": B64.encode(key) } }),
        )
    }

    /// The names of the keys under `prefix`, in key order, without their values.
    pub fn keys_under(&self, prefix: &str) -> Result<Vec<String>, CoordError> {
        let v = self.run(
            "list keys",
            "/v3/kv/range",
            &json!({
                "key": B64.encode(prefix),
                "range_end": B64.encode(prefix_end(prefix.as_bytes())),
                "keys_only": true,
            }),
        )?;
        Ok(kvs(&v)
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&bytes(kv, "key")).into_owned())
            .collect())
    }

    /// Every key under `prefix`, with its value, in key order.
    pub fn range(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, CoordError> {
        let v = self.range_prefix("read keys", prefix)?;
        Ok(kvs(&v)
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&bytes(kv, "key")).into_owned(),
                    bytes(kv, "value"),
                )
            })
            .collect())
    }

    /// Creates `key` = `value` while `leader` leads, unless the key exists. Returns the value
    /// the key holds afterwards, and whether this call wrote it: the first writer's value
    /// stands, whoever asks later.
    pub fn create_fenced(
        &self,
        leader: &Leader,
        key: &str,
        value: &[u8],
    ) -> Result<(Vec<u8>, bool), CoordError> {
        let body = json!({
            "compare": [leader.guard(), absent(key.as_bytes())],
            "success": [put(key.as_bytes(), value, None)],
            "failure": [
                { "request_range": { "key": B64.encode(&leader.key) } },
                { "request_range": { "key": B64.encode(key) } },
            ],
        });
        let v = self.run("create a key", "/v3/kv/txn", &body)?;
        if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok((value.to_vec(), true));
        }
        let held = responses(&v)
            .get(1)
            .and_then(|r| r.get("response_range"))
            .and_then(|r| kvs(r).first().map(|kv| bytes(kv, "value")));
        match held {
            Some(b) => Ok((b, false)),
            None if leader.shown_in(&v) => Err(CoordError::Invalid(format!(
                "etcd neither created `{key}` nor holds it"
            ))),
            None => Err(CoordError::Deposed {
                election: leader.election.clone(),
            }),
        }
    }

    fn range_prefix(&self, op: &'static str, prefix: &str) -> Result<Value, CoordError> {
        self.run(
            op,
            "/v3/kv/range",
            &json!({
                "key": B64.encode(prefix),
                "range_end": B64.encode(prefix_end(prefix.as_bytes())),
            }),
        )
    }

    /// Takes a slot of semaphore `name`, which has `limit` slots, for `holder`, while `leader`
    /// leads. `Ok(None)` when every slot is taken. Taking a slot `holder` already holds
    /// returns it again. The slot is bound to no lease: it stays with its holder (a host,
    /// which may still be mid-reboot) when this controller dies, until it is released (by the
    /// next leader of the holder's shard, say).
    pub fn acquire(
        &self,
        leader: &Leader,
        name: &str,
        limit: usize,
        holder: &str,
    ) -> Result<Option<Slot>, CoordError> {
        if let Some(s) = self.holders(name)?.into_iter().find(|s| s.holder == holder) {
            return Ok(Some(s));
        }
        for slot in 0..limit {
            let key = self.keys.semaphore_slot(name, slot);
            let (ok, v) = self.fenced(
                "take a semaphore slot",
                leader,
                vec![leader.guard(), absent(key.as_bytes())],
                vec![put(key.as_bytes(), holder.as_bytes(), None)],
            )?;
            if ok {
                return Ok(Some(Slot {
                    semaphore: name.to_string(),
                    slot,
                    holder: holder.to_string(),
                }));
            }
            if !leader.shown_in(&v) {
                return Err(CoordError::Deposed {
                    election: leader.election.clone(),
                });
            }
        }
        Ok(None)
    }

    /// Frees `slot`, if `slot.holder` still holds it.
    pub fn release(&self, slot: &Slot) -> Result<(), CoordError> {
        let key = self.keys.semaphore_slot(&slot.semaphore, slot.slot);
        let body = json!({
            "compare": [{
                "key": B64.encode(&key),
                "target": "VALUE",
                "result": "EQUAL",
                "value": B64.encode(&slot.holder),
            }],
            "success": [{ "request_delete_range": { "key": B64.encode(&key) } }],
        });
        self.run("free a semaphore slot", "/v3/kv/txn", &body)?;
        Ok(())
    }

    /// Who holds the slots of semaphore `name`.
    pub fn holders(&self, name: &str) -> Result<Vec<Slot>, CoordError> {
        let prefix = self.keys.semaphore(name);
        let v = self.range_prefix("read a semaphore", &prefix)?;
        Ok(kvs(&v)
            .into_iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(&bytes(kv, "key")).into_owned();
                let slot = key.strip_prefix(&prefix)?.parse().ok()?;
                Some(Slot {
                    semaphore: name.to_string(),
                    slot,
                    holder: String::from_utf8_lossy(&bytes(kv, "value")).into_owned(),
                })
            })
            .collect())
    }

    fn stop_keeper(&mut self) {
        self.stop.take();
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
    }

    /// Ends the session cleanly: revokes the lease, so its leadership and slots go at once
    /// rather than at the TTL. A crashed controller does not get here; its lease expires.
    pub fn close(mut self) -> Result<(), CoordError> {
        self.stop_keeper();
        self.run(
            "revoke the lease",
            "/v3/lease/revoke",
            &json!({ "ID": self.lease.to_string() }),
        )?;
        Ok(())
    }
}

impl Fence for Session {
    fn check(&self) -> Result<(), FenceError> {
        match self.view.lock() {
            Ok(v) => v.check(Instant::now()),
            Err(p) => p.into_inner().check(Instant::now()),
        }
    }
}

impl Drop for Session {
    /// Stops renewing, without revoking: from etcd's side, as a crash is.
    fn drop(&mut self) {
        self.stop_keeper();
    }
}

fn run(
    conn: &Conn,
    op: &'static str,
    path: &str,
    body: &Value,
    deadline: Duration,
) -> Result<Value, CoordError> {
    conn.call(path, body, deadline)
        .map_err(|e| error(conn, op, e))
}

fn error(conn: &Conn, op: &'static str, e: CallError) -> CoordError {
    match e {
        CallError::Unreachable(message) | CallError::TimedOut(message) => CoordError::Unreachable {
            endpoints: conn.endpoints(),
            op,
            message,
        },
        CallError::Refused(message) => CoordError::Refused {
            endpoints: conn.endpoints(),
            op,
            message,
        },
    }
}

fn set(view: &Mutex<LeaseView>, f: impl FnOnce(&mut LeaseView)) {
    match view.lock() {
        Ok(mut v) => f(&mut v),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// The gateway's int64s are strings; absent means 0.
fn int(v: &Value, field: &str) -> i64 {
    match v.get(field) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// A base64 field's bytes; absent means empty.
fn bytes(v: &Value, field: &str) -> Vec<u8> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

fn kvs(v: &Value) -> Vec<&Value> {
    v.get("kvs")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn responses(v: &Value) -> Vec<&Value> {
    v.get("responses")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn put(key: &[u8], value: &[u8], lease: Option<i64>) -> Value {
    let mut p = json!({ "key": B64.encode(key), "value": B64.encode(value) });
    if let (Some(l), Some(o)) = (lease, p.as_object_mut()) {
        o.insert("lease".into(), Value::String(l.to_string()));
    }
    json!({ "request_put": p })
}

/// The compare "`key` does not exist".
fn absent(key: &[u8]) -> Value {
    json!({
        "key": B64.encode(key),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": "0",
    })
}

/// The end of the range of keys starting with `prefix`: its last byte that is not 0xff, plus
/// one, as etcd's clients compute it.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_after_its_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn the_gateways_numbers_are_strings_and_absent_fields_are_zero() {
        let v = json!({ "ID": "7587899408214723079", "TTL": 5 });
        assert_eq!(int(&v, "ID"), 7_587_899_408_214_723_079);
        assert_eq!(int(&v, "TTL"), 5);
        assert_eq!(int(&v, "rev"), 0);
    }
}
