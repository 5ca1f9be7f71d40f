//! Controllers per shard: one controller leads each shard through an etcd election, standing
//! by while another leads; the shard's journal lives in etcd, each record written by a
//! transaction fenced by the leader's key, and the leader's local journal is a copy of it. A
//! controller that takes a shard over adopts that journal before it acts, and carries on
//! from the record where its predecessor stopped.

use super::journal::{Mirror, MirrorError};
use crate::coord::etcd::{CoordError, Leader, Session, SessionOptions};
use crate::coord::{Fence, FenceError, Keys, Shard};
use std::sync::Arc;
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
