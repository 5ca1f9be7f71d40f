//! Controllers per shard: one controller leads each shard through an etcd election, standing
//! by while another leads; the shard's journal lives in etcd, each record written by a
//! transaction fenced by the leader's key, and the leader's local journal is a copy of it. A
//! controller that takes a shard over adopts that journal before it acts, and carries on
//! from the record where its predecessor stopped. In-flight limits that span shards (a rack
//! whose hosts are in several) are etcd semaphores ([`EtcdLimits`]).

use super::controller::{ControllerError, Limits};
use super::journal::{Mirror, MirrorError};
use crate::coord::etcd::{CoordError, Leader, Session, SessionOptions, Slot};
use crate::coord::{Fence, FenceError, Keys, Shard};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// A shard this process leads.
pub struct Led {
    pub session: Arc<Session>,
    pub leader: Leader,
    pub shard: Shard,
    /// The shard's journal in etcd when leadership was won, each record's JSON.
    pub records: Vec<Vec<u8>>,
    /// The in-flight limits its hosts share with the other shards'
    /// ([`crate::plan::in_flight_slots`] over the whole fleet); set by the caller.
    pub limits: BTreeMap<String, Vec<(String, usize)>>,
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
        records,
        limits: BTreeMap::new(),
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
/// slot of each of its limits (its rack, …) while in flight. A slot is bound to this
/// controller's lease and taken by a write fenced by its leadership, so a deposed controller
/// takes none and a dead one's free themselves when its lease expires.
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

    fn free_all(&self, slots: &[Slot]) {
        for slot in slots {
            if let Err(e) = self.session.release(slot) {
                // Bound to the lease: it frees itself when the lease ends, at the latest.
                tracing::warn!(
                    "cannot free slot {} of `{}`: {e}",
                    slot.slot,
                    slot.semaphore
                );
            }
        }
    }
}

/// A limit's name as a semaphore name: `/` (racks are `DC/RACK`) and `%` escaped, so one
/// name's keys are never under another's prefix.
fn semaphore_name(limit: &str) -> String {
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
            let name = semaphore_name(limit);
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
