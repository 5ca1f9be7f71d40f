//! Controllers per shard: one controller leads each shard through an etcd election, standing
//! by while another leads; the shard's journal lives in etcd, each record written by a
//! transaction fenced by the leader's key, and the leader's local journal is a copy of it. A
//! controller that takes a shard over adopts that journal before it acts, and carries on
//! from the record where its predecessor stopped. In-flight limits that span shards (a rack
//! whose hosts are in several) are etcd semaphores ([`EtcdLimits`]).

use super::controller::{
    Control, ControllerError, GateId, GatePart, Gathered, Limits, Request, SharedGates,
    SharedVerdict,
};
use super::journal::{Mirror, MirrorError};
use super::{Event, Phase, Record, RolloutState};
use crate::coord::etcd::{CoordError, Leader, Session, SessionOptions, Slot};
use crate::coord::{Fence, FenceError, Keys, Shard};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `rollout start --etcd … --shard …` asks for.
#[derive(Debug, Clone)]
pub struct ShardRequest {
    /// etcd members, `host:port` or URLs.
    pub endpoints: Vec<String>,
    pub shard: Shard,
    /// The lease's TTL: how long a dead leader holds its shard.
    pub ttl: Duration,
    /// The rollout's name in etcd, the same for all its controllers. Default: from the target
    /// kernel and the inventory's hash, which controllers started alike share.
    pub rollout: Option<String>,
}

impl ShardRequest {
    /// The rollout's name in etcd: the one asked for, or the target kernel and the
    /// inventory's hash, which controllers started with the same inputs share.
    pub fn rollout_name(&self, target_kernel: &str, inventory_hash: &str) -> String {
        self.rollout.clone().unwrap_or_else(|| {
            format!(
                "{target_kernel}-{}",
                inventory_hash.chars().take(12).collect::<String>()
            )
        })
    }
}

/// A shard this process leads.
pub struct Led {
    pub session: Arc<Session>,
    pub leader: Leader,
    pub shard: Shard,
    /// This controller, as its leader key names it (`pid N on HOST`).
    pub me: String,
    /// The shard's journal in etcd when leadership was won, each record's JSON.
    pub records: Vec<Vec<u8>>,
    /// The in-flight limits its hosts share with the other shards'
    /// ([`crate::plan::in_flight_slots`] over the whole fleet); set by the caller.
    pub limits: BTreeMap<String, Vec<(String, usize)>>,
    /// Every shard of the rollout by name, this one included: whose parts each gate waits
    /// for ([`crate::coord::Shard::all`]); set by the caller.
    pub shards: Vec<String>,
}

impl Led {
    /// Ends the shard's leadership once its controller is done with it: revokes the lease,
    /// so a standby takes the shard over (and finds its rollout as it was left) at once
    /// rather than at the lease's end. Returns whether it did: not while anything else still
    /// holds the session, whose lease then simply expires, as a crashed controller's does.
    pub fn step_down(self) -> Result<bool, CoordError> {
        match Arc::try_unwrap(self.session) {
            Ok(s) => s.close().map(|()| true),
            Err(_) => Ok(false),
        }
    }
}

/// Connects and campaigns for the shard, standing by (`standing_by` is told once) until
/// elected.
pub fn lead(
    req: &ShardRequest,
    rollout: &str,
    me: &str,
    standing_by: &dyn Fn(&str),
) -> Result<Led, CoordError> {
    let session = Session::connect(
        SessionOptions::new(req.endpoints.clone(), req.ttl),
        Keys::new(rollout),
    )?;
    let shard = req.shard.name();
    let election = session.keys().shard_election(&shard);
    let wait = session.options().interval.max(Duration::from_secs(1));
    let mut told = false;
    let leader = loop {
        if let Some(l) = session.campaign(&election, me, wait)? {
            break l;
        }
        if let Err(FenceError::Expired) = session.check() {
            return Err(CoordError::Invalid(
                "the lease expired while standing by: etcd was unreachable past its TTL".into(),
            ));
        }
        if !told {
            standing_by(&format!(
                "standing by: another controller leads shard `{shard}` of rollout `{rollout}`"
            ));
            told = true;
        }
    };
    let mut records = Vec::new();
    for (i, (seq, bytes)) in session.records(&shard)?.into_iter().enumerate() {
        if seq != i as u64 + 1 {
            return Err(CoordError::Invalid(format!(
                "the journal of shard `{shard}` in etcd has record {seq} where {} belongs",
                i + 1
            )));
        }
        records.push(bytes);
    }
    Ok(Led {
        session: Arc::new(session),
        leader,
        shard: req.shard.clone(),
        me: me.to_string(),
        records,
        limits: BTreeMap::new(),
        shards: Vec::new(),
    })
}

/// The shard's journal in etcd, as the local journal's mirror: each record is written there
/// first, fenced by the leader key, and only then to the local file.
pub struct EtcdMirror {
    pub session: Arc<Session>,
    pub leader: Leader,
    pub shard: String,
    /// Told once each time etcd stops answering, with why.
    pub waiting: Box<dyn Fn(&str) + Send>,
}

impl Mirror for EtcdMirror {
    fn append(&mut self, seq: u64, line: &[u8]) -> Result<(), MirrorError> {
        let mut told = false;
        loop {
            match self
                .session
                .append_record(&self.leader, &self.shard, seq, line)
            {
                Ok(()) => return Ok(()),
                // An earlier try may have landed with its answer lost: the same bytes are fine.
                Err(CoordError::Duplicate { .. }) => {
                    return match self.session.record(&self.shard, seq) {
                        Ok(Some(b)) if b == line => Ok(()),
                        Ok(_) => Err(MirrorError(format!(
                            "etcd already holds another record {seq} of shard `{}`",
                            self.shard
                        ))),
                        Err(e) => Err(MirrorError(e.to_string())),
                    }
                }
                // Unreachable: wait for etcd while the lease may still be alive.
                Err(e @ CoordError::Unreachable { .. }) => {
                    if let Err(FenceError::Expired) = self.session.check() {
                        return Err(MirrorError(format!("{e}; and the lease expired")));
                    }
                    if !told {
                        (self.waiting)(&format!("waiting for etcd to take record {seq}: {e}"));
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(MirrorError(e.to_string())),
            }
        }
    }
}

/// The in-flight limits a shard shares with the others, as etcd semaphores: a host holds a
/// slot of each of its limits (its rack, …) while in flight. A slot is taken by a write
/// fenced by this controller's leadership, so a deposed controller takes none. It outlives
/// the controller: a host mid-reboot when its controller dies still counts against its rack,
/// and the shard's next leader frees its hosts' slots once they are through ([`reclaim`]).
///
/// [`reclaim`]: EtcdLimits::reclaim
pub struct EtcdLimits {
    session: Arc<Session>,
    leader: Leader,
    /// Per host, its limits and their sizes ([`crate::plan::in_flight_slots`]).
    slots: BTreeMap<String, Vec<(String, usize)>>,
    held: Mutex<HashMap<String, Vec<Slot>>>,
}

impl EtcdLimits {
    pub fn new(
        session: Arc<Session>,
        leader: Leader,
        slots: BTreeMap<String, Vec<(String, usize)>>,
    ) -> Self {
        EtcdLimits {
            session,
            leader,
            slots,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// On taking the shard over: frees the slots its hosts hold that are not `in_flight` (their
    /// controller died after they were through, before it freed them); those in flight keep
    /// theirs, which the crash recovery takes again as they are.
    pub fn reclaim(&self, in_flight: &BTreeSet<String>) -> Result<usize, CoordError> {
        let limits: BTreeSet<&str> = self
            .slots
            .values()
            .flatten()
            .map(|(l, _)| l.as_str())
            .collect();
        let mut freed = 0;
        for limit in limits {
            for slot in self.session.holders(&segment(limit))? {
                if self.slots.contains_key(&slot.holder) && !in_flight.contains(&slot.holder) {
                    self.session.release(&slot)?;
                    freed += 1;
                }
            }
        }
        Ok(freed)
    }

    fn free_all(&self, slots: &[Slot]) {
        for slot in slots {
            if let Err(e) = self.session.release(slot) {
                // The shard's next leader frees it, if this one cannot.
                tracing::warn!(
                    "cannot free slot {} of `{}`: {e}",
                    slot.slot,
                    slot.semaphore
                );
            }
        }
    }
}

/// A name (a limit's, a shard's) as one segment of a key: `/` (racks are `DC/RACK`) and `%`
/// escaped, so one name's keys are never under another's prefix.
fn segment(limit: &str) -> String {
    limit.replace('%', "%25").replace('/', "%2F")
}

impl Limits for EtcdLimits {
    fn take(&self, host: &str, waiting: &dyn Fn(&str)) -> Result<(), ControllerError> {
        let Some(limits) = self.slots.get(host) else {
            return Ok(());
        };
        let mut got: Vec<Slot> = Vec::new();
        let mut told = false;
        for (limit, size) in limits {
            let name = segment(limit);
            loop {
                if let Err(e) = crate::coord::wait_open(self.session.as_ref()) {
                    self.free_all(&got);
                    return Err(e.into());
                }
                match self.session.acquire(&self.leader, &name, *size, host) {
                    Ok(Some(slot)) => {
                        got.push(slot);
                        break;
                    }
                    Ok(None) => {
                        if !told {
                            let by: Vec<String> = self
                                .session
                                .holders(&name)
                                .map(|h| h.into_iter().map(|s| s.holder).collect())
                                .unwrap_or_default();
                            waiting(&format!(
                                "waits for a slot of `{limit}` ({size} in flight at most, held by {})",
                                by.join(", ")
                            ));
                            told = true;
                        }
                    }
                    Err(CoordError::Deposed { .. }) => {
                        self.free_all(&got);
                        return Err(FenceError::Expired.into());
                    }
                    // Unreachable: the fence decides above whether to wait or stop.
                    Err(CoordError::Unreachable { .. }) => {}
                    Err(e) => {
                        self.free_all(&got);
                        return Err(ControllerError::Invalid(format!(
                            "cannot take a slot of `{limit}` for `{host}`: {e}"
                        )));
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if told {
            waiting("took its slots");
        }
        if let Ok(mut h) = self.held.lock() {
            h.insert(host.to_string(), got);
        }
        Ok(())
    }

    fn free(&self, host: &str) {
        let slots = self
            .held
            .lock()
            .ok()
            .and_then(|mut h| h.remove(host))
            .unwrap_or_default();
        self.free_all(&slots);
    }
}

/// Bytes of a gate part per etcd value: well under etcd's default request limit (1.5 MiB).
const CHUNK: usize = 512 * 1024;

/// The stage gates of a rollout whose shards each have a controller, through etcd: under the
/// gate's key, each shard's part in chunks of one generation (`data/SHARD/GEN/NNNNNN`), then
/// a marker naming that generation (`parts/SHARD`), so a reader never sees half a part; and
/// the verdict, created once (`verdict`). Every write is fenced by this shard's leadership.
pub struct EtcdGates {
    session: Arc<Session>,
    leader: Leader,
    shard: String,
    shards: Vec<String>,
    published: AtomicU64,
    /// This controller's parts, in bytes of JSON and as sent (compressed).
    json_bytes: AtomicU64,
    sent_bytes: AtomicU64,
    /// Per sample file, the index of its next piece in etcd.
    pieces: Mutex<HashMap<String, u64>>,
}

/// Which generation of a shard's part is whole, and in how many chunks.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    generation: String,
    chunks: usize,
    /// The part as stored, in bytes: JSON compressed by zstd.
    bytes: usize,
    /// The JSON's own size.
    json_bytes: usize,
}

/// A sample file's bytes per piece in etcd, before compression: well under etcd's request
/// limit (1.5 MiB by default) even when the bytes do not compress.
const PIECE: usize = 512 * 1024;

/// zstd's level for gate parts: its default, about 10:1 on a part's JSON.
const ZSTD_LEVEL: i32 = 3;

impl EtcdGates {
    pub fn new(session: Arc<Session>, leader: Leader, shard: String, shards: Vec<String>) -> Self {
        EtcdGates {
            session,
            leader,
            shard,
            shards,
            published: AtomicU64::new(0),
            json_bytes: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            pieces: Mutex::new(HashMap::new()),
        }
    }

    /// Piece `i` of sample file `file`.
    fn piece_key(&self, file: &str, i: u64) -> String {
        format!(
            "{}{}/{i:08}",
            self.session.keys().shard_files(&segment(&self.shard)),
            segment(file)
        )
    }

    /// On leading the shard: writes into `dir` the sample files of `stage` (the stage in
    /// progress) its previous controllers kept in etcd, each unless `dir` already holds as
    /// much of it (a controller restarted on the same machine). Returns how many it wrote.
    pub fn restore_samples(
        &self,
        dir: &std::path::Path,
        stage: usize,
    ) -> Result<usize, ControllerError> {
        let prefix = self.session.keys().shard_files(&segment(&self.shard));
        let stage_prefix = format!("{prefix}stage-{stage:02}.");
        let what = format!("cannot read the sample files of shard `{}`", self.shard);
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut pieces: HashMap<String, u64> = HashMap::new();
        // Keys sort as pieces do: `FILE/NNNNNNNN`.
        for (key, value) in self.call(&what, || self.session.range(&stage_prefix))? {
            let rest = key.strip_prefix(&prefix).unwrap_or(&key);
            let Some((file, _)) = rest.rsplit_once('/') else {
                continue;
            };
            let file = file.replace("%2F", "/").replace("%25", "%");
            // Only a stage's sample file, in the state directory itself.
            if !file.starts_with("stage-") || file.contains('/') || file.contains("..") {
                continue;
            }
            let bytes = zstd::bulk::decompress(&value, PIECE)
                .map_err(|e| ControllerError::Invalid(format!("{what}: `{key}`: {e}")))?;
            files.entry(file.clone()).or_default().extend(bytes);
            *pieces.entry(file).or_default() += 1;
        }
        let mut written = 0;
        for (file, bytes) in &files {
            let path = dir.join(file);
            let have = std::fs::metadata(&path).map_or(0, |m| m.len());
            if have >= bytes.len() as u64 {
                continue;
            }
            std::fs::write(&path, bytes).map_err(|source| ControllerError::Io {
                path: path.clone(),
                source,
            })?;
            written += 1;
        }
        if let Ok(mut p) = self.pieces.lock() {
            p.extend(pieces);
        }
        Ok(written)
    }

    /// This controller's gate parts so far: bytes of JSON, and bytes sent to etcd.
    pub fn published_bytes(&self) -> (u64, u64) {
        (
            self.json_bytes.load(Ordering::SeqCst),
            self.sent_bytes.load(Ordering::SeqCst),
        )
    }

    /// Runs `op` until etcd answers, waiting while the lease may still be alive; errs once
    /// this controller may no longer act (its lease expired, another leads its shard).
    fn call<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Result<T, CoordError>,
    ) -> Result<T, ControllerError> {
        loop {
            crate::coord::wait_open(self.session.as_ref())?;
            match op() {
                Ok(v) => return Ok(v),
                Err(CoordError::Unreachable { .. }) => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(CoordError::Deposed { .. }) => return Err(FenceError::Expired.into()),
                Err(e) => return Err(ControllerError::Invalid(format!("{what}: {e}"))),
            }
        }
    }

    fn base(&self, gate: GateId) -> String {
        self.session.keys().gate(gate.stage, gate.attempt)
    }

    fn verdict_key(&self, gate: GateId) -> String {
        format!("{}verdict", self.base(gate))
    }

    /// Chunk `i` of generation `generation` of `shard`'s part.
    fn chunk_key(&self, gate: GateId, shard: &str, generation: &str, i: usize) -> String {
        format!(
            "{}data/{}/{generation}/{i:06}",
            self.base(gate),
            segment(shard)
        )
    }

    fn read_part(
        &self,
        gate: GateId,
        shard: &str,
        m: &Marker,
    ) -> Result<GatePart, ControllerError> {
        let what = format!(
            "cannot read the part of shard `{shard}` in gate {}",
            gate.stage
        );
        let mut body = Vec::with_capacity(m.bytes);
        for i in 0..m.chunks {
            let key = self.chunk_key(gate, shard, &m.generation, i);
            match self.call(&what, || self.session.get(&key))? {
                Some(b) => body.extend(b),
                None => {
                    return Err(ControllerError::Invalid(format!(
                        "{what}: etcd lacks its chunk `{key}`"
                    )))
                }
            }
        }
        let json = zstd::bulk::decompress(&body, m.json_bytes)
            .map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))
    }
}

impl SharedGates for EtcdGates {
    fn shard(&self) -> String {
        self.shard.clone()
    }

    fn written(&self, gate: GateId) -> Result<Option<SharedVerdict>, ControllerError> {
        let key = self.verdict_key(gate);
        let what = format!("cannot read the verdict of gate {}", gate.stage);
        match self.call(&what, || self.session.get(&key))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ControllerError::Invalid(format!("{what}: {e}"))),
        }
    }

    fn publish(&self, gate: GateId, part: &GatePart) -> Result<(), ControllerError> {
        let what = format!(
            "cannot publish shard `{}`'s part of gate {}",
            self.shard, gate.stage
        );
        let json = serde_json::to_vec(part)
            .map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
        let body = zstd::bulk::compress(&json, ZSTD_LEVEL)
            .map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
        let n = self.published.fetch_add(1, Ordering::SeqCst);
        let generation = format!("{:x}-{n}", self.session.lease_id());
        let base = self.base(gate);
        let chunks: Vec<&[u8]> = body.chunks(CHUNK).collect();
        for (i, c) in chunks.iter().enumerate() {
            let key = self.chunk_key(gate, &self.shard, &generation, i);
            self.call(&what, || self.session.put_fenced(&self.leader, &key, c))?;
        }
        let marker = serde_json::to_vec(&Marker {
            generation,
            chunks: chunks.len(),
            bytes: body.len(),
            json_bytes: json.len(),
        })
        .map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
        let key = format!("{base}parts/{}", segment(&self.shard));
        self.call(&what, || {
            self.session.put_fenced(&self.leader, &key, &marker)
        })?;
        self.json_bytes
            .fetch_add(json.len() as u64, Ordering::SeqCst);
        self.sent_bytes
            .fetch_add(body.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn gather(&self, gate: GateId) -> Result<Gathered, ControllerError> {
        let prefix = format!("{}parts/", self.base(gate));
        let what = format!("cannot read the parts of gate {}", gate.stage);
        let mut markers: HashMap<String, Marker> = HashMap::new();
        for (key, value) in self.call(&what, || self.session.range(&prefix))? {
            let name = key.strip_prefix(&prefix).unwrap_or(&key).to_string();
            let m: Marker = serde_json::from_slice(&value)
                .map_err(|e| ControllerError::Invalid(format!("{what}: `{key}`: {e}")))?;
            markers.insert(name, m);
        }
        let missing: Vec<String> = self
            .shards
            .iter()
            .filter(|s| !markers.contains_key(&segment(s)))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Ok(Gathered::Waiting(missing));
        }
        let mut parts = Vec::with_capacity(self.shards.len());
        for s in &self.shards {
            if let Some(m) = markers.get(&segment(s)) {
                parts.push(self.read_part(gate, s, m)?);
            }
        }
        Ok(Gathered::All(parts))
    }

    fn decide(&self, gate: GateId, v: &SharedVerdict) -> Result<SharedVerdict, ControllerError> {
        let key = self.verdict_key(gate);
        let what = format!("cannot write the verdict of gate {}", gate.stage);
        let body =
            serde_json::to_vec(v).map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
        let (stood, _) = self.call(&what, || {
            self.session.create_fenced(&self.leader, &key, &body)
        })?;
        serde_json::from_slice(&stood).map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))
    }

    fn keep_samples(&self, file: &str, bytes: &[u8], whole: bool) -> Result<(), ControllerError> {
        let what = format!("cannot keep `{file}` of shard `{}` in etcd", self.shard);
        let mut pieces = self.pieces.lock().unwrap_or_else(|p| p.into_inner());
        let next = pieces.entry(file.to_string()).or_default();
        if whole {
            let prefix = self.piece_key(file, 0);
            let prefix = prefix.trim_end_matches(|c: char| c.is_ascii_digit());
            for key in self.call(&what, || self.session.keys_under(prefix))? {
                self.call(&what, || self.session.delete_fenced(&self.leader, &key))?;
            }
            *next = 0;
        }
        for raw in bytes.chunks(PIECE) {
            let body = zstd::bulk::compress(raw, ZSTD_LEVEL)
                .map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
            let key = self.piece_key(file, *next);
            self.call(&what, || self.session.put_fenced(&self.leader, &key, &body))?;
            *next += 1;
        }
        Ok(())
    }
}

/// A shard's progress as its controller last put it in etcd (`status/SHARD`): what `rollout
/// status` shows of every shard, and where `rollout pause` finds the shards still running
/// without reading their journals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardProgress {
    pub shard: String,
    pub phase: Phase,
    pub stage: Option<String>,
    /// Hosts the shard's plan updates, those updated, and those failed.
    pub planned: usize,
    pub updated: usize,
    pub failed: usize,
    pub pause_reason: Option<String>,
    /// The journal record it reflects, and when that was written.
    pub seq: u64,
    pub at: String,
    /// The controller that put it.
    pub controller: String,
}

impl ShardProgress {
    fn of(shard: &str, controller: &str, r: &Record, st: &RolloutState) -> ShardProgress {
        ShardProgress {
            shard: shard.to_string(),
            phase: st.phase.clone(),
            stage: st
                .stage
                .and_then(|s| st.stages.get(s))
                .map(|s| s.name.clone()),
            planned: st.planned_hosts(),
            updated: st.hosts.values().filter(|h| h.done).count(),
            failed: st.hosts.values().filter(|h| h.failed.is_some()).count(),
            pause_reason: st.pause_reason.clone(),
            seq: r.seq,
            at: r.at.clone(),
            controller: controller.to_string(),
        }
    }
}

/// How often, at most, a shard's controller puts its progress between milestones.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The observer of a shard's controller: passes every record on, and puts the shard's
/// progress in etcd at each milestone (a stage started, a gate judged, a pause, the end) and
/// at most every two seconds between them. A put that fails is tried again next time; the
/// progress is a view, the journal the record.
pub struct ProgressObserver<'a> {
    pub inner: &'a dyn super::controller::Observer,
    pub session: Arc<Session>,
    pub leader: Leader,
    pub shard: String,
    pub me: String,
    /// When the progress was last put, and the progress a put failed to put (tried again at
    /// the next record, or at the end of the run).
    last: Mutex<(Option<Instant>, Option<ShardProgress>)>,
}

impl<'a> ProgressObserver<'a> {
    pub fn new(inner: &'a dyn super::controller::Observer, led: &Led) -> Self {
        ProgressObserver {
            inner,
            session: Arc::clone(&led.session),
            leader: led.leader.clone(),
            shard: led.shard.name(),
            me: led.me.clone(),
            last: Mutex::new((None, None)),
        }
    }
}

impl super::controller::Observer for ProgressObserver<'_> {
    fn record(&self, r: &Record, st: &RolloutState) {
        self.inner.record(r, st);
        let milestone = matches!(
            r.event,
            Event::Started { .. }
                | Event::StageStarted { .. }
                | Event::GateEvaluated { .. }
                | Event::Paused { .. }
                | Event::Resumed { .. }
                | Event::Aborted { .. }
                | Event::Completed
                | Event::CompletedWithFailures { .. }
                | Event::RollbackStarted { .. }
                | Event::RolledBack { .. }
        );
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if !milestone && last.0.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        let p = ShardProgress::of(&self.shard, &self.me, r, st);
        last.1 = (!self.put(&p)).then_some(p);
        last.0 = Some(Instant::now());
    }
    fn note(&self, message: &str) {
        self.inner.note(message)
    }
    fn begin(&self, hosts: usize) {
        self.inner.begin(hosts)
    }
    /// The last progress, if its put failed, is tried again a few times: `rollout pause` and
    /// `status` read how the shard ended from it.
    fn finish(&self) {
        let unput = self.last.lock().ok().and_then(|mut l| l.1.take());
        if let Some(p) = unput {
            for _ in 0..5 {
                if self.put(&p) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        self.inner.finish()
    }
}

impl ProgressObserver<'_> {
    /// Puts `p` in etcd; whether it did.
    fn put(&self, p: &ShardProgress) -> bool {
        let Ok(body) = serde_json::to_vec(p) else {
            return false;
        };
        let key = self.session.keys().shard_status(&segment(&self.shard));
        match self.session.put_fenced(&self.leader, &key, &body) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("cannot put the shard's progress in etcd: {e}");
                false
            }
        }
    }
}

/// Every shard's progress as put in etcd, in shard order.
pub fn progress(session: &Session) -> Result<Vec<ShardProgress>, CoordError> {
    let mut out = Vec::new();
    for (key, value) in session.range(&session.keys().statuses())? {
        match serde_json::from_slice::<ShardProgress>(&value) {
            Ok(p) => out.push(p),
            Err(e) => tracing::warn!("ignoring an unreadable shard progress `{key}`: {e}"),
        }
    }
    out.sort_by(|a, b| a.shard.cmp(&b.shard));
    Ok(out)
}

/// How often a shard's controller asks etcd for an operator's request.
const REQUEST_POLL: Duration = Duration::from_secs(1);

/// Operator requests to a shard's controller: its state directory's (`rollout pause
/// --state-dir` while it runs), and those left in etcd for every shard of the rollout
/// (`rollout pause` of a sharded rollout), asked at most once a second. A request in etcd is
/// taken once by each controller process and noted as taken (`request-taken`, for the
/// operator's wait); it stays until a resume of the shard clears it, so a controller that
/// takes the shard over before its predecessor paused still pauses.
pub struct EtcdControl<'a> {
    pub inner: &'a dyn Control,
    pub session: Arc<Session>,
    pub leader: Leader,
    pub shard: String,
    /// When etcd was last asked, and the revision of the last request taken.
    seen: Mutex<(Option<Instant>, i64)>,
}

impl<'a> EtcdControl<'a> {
    pub fn new(
        inner: &'a dyn Control,
        session: Arc<Session>,
        leader: Leader,
        shard: String,
    ) -> Self {
        EtcdControl {
            inner,
            session,
            leader,
            shard,
            seen: Mutex::new((None, 0)),
        }
    }
}

impl Control for EtcdControl<'_> {
    fn take(&self) -> Option<Request> {
        if let Some(r) = self.inner.take() {
            return Some(r);
        }
        let mut seen = self.seen.lock().ok()?;
        if seen.0.is_some_and(|t| t.elapsed() < REQUEST_POLL) {
            return None;
        }
        seen.0 = Some(Instant::now());
        let keys = self.session.keys();
        let (body, rev) = match self.session.get_revised(&keys.shard_request(&self.shard)) {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            // Unreachable: the fence holds the controller meanwhile; asked again next time.
            Err(e) => {
                tracing::debug!("cannot read requests from etcd: {e}");
                return None;
            }
        };
        if rev <= seen.1 {
            return None;
        }
        seen.1 = rev;
        let taken = keys.shard_request_taken(&self.shard);
        if let Err(e) = self
            .session
            .put_fenced(&self.leader, &taken, rev.to_string().as_bytes())
        {
            tracing::warn!("cannot note in etcd that the request was taken: {e}");
        }
        match serde_json::from_slice(&body) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("ignoring an unreadable request in etcd: {e}");
                None
            }
        }
    }

    fn held(&self) -> BTreeMap<String, String> {
        self.inner.held()
    }
}
