//! What the controller touches outside itself: the live policy set, operator requests (and
//! the control file that carries them), the observer, the options and the errors.

use super::*;

/// The live policy set, swapped by hot reload.
pub trait PolicySource: Send + Sync {
    fn current(&self) -> Option<Arc<PolicySet>>;
}

impl PolicySource for PolicyStore {
    fn current(&self) -> Option<Arc<PolicySet>> {
        PolicyStore::current(self)
    }
}

/// A fixed policy set.
impl PolicySource for Arc<PolicySet> {
    fn current(&self) -> Option<Arc<PolicySet>> {
        Some(Arc::clone(self))
    }
}

/// An operator's request to a running controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Request {
    Pause { reason: String },
    Abort { reason: String },
}

/// Where requests from outside the controller come from: an operator's pause or abort, and
/// hosts a drift audit says to leave alone.
pub trait Control: Send + Sync {
    /// The pending request, if any, consumed.
    fn take(&self) -> Option<Request>;

    /// Hosts to leave out from now on, with why; asked before each batch. Only hosts nothing
    /// has been done to yet are left out: one in the middle of its update finishes it.
    fn held(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// Requests as a file in the state directory: `rollout pause` and `rollout abort` write it
/// while a controller holds the lock; the controller reads and removes it between steps.
#[derive(Debug, Clone)]
pub struct ControlFile {
    path: PathBuf,
    /// The review queue of `drift audit`, read before each batch.
    drift_queue: Option<PathBuf>,
}

pub const CONTROL_FILE: &str = "control.json";

impl ControlFile {
    pub fn new(dir: &Path) -> Self {
        ControlFile {
            path: dir.join(CONTROL_FILE),
            drift_queue: None,
        }
    }

    /// Also holds back the hosts the drift review queue at `path` holds.
    pub fn with_drift_queue(mut self, path: Option<PathBuf>) -> Self {
        self.drift_queue = path;
        self
    }

    /// Leaves a request for the controller (written whole, then renamed into place).
    pub fn request(dir: &Path, req: &Request) -> std::io::Result<()> {
        let tmp = dir.join(format!("{CONTROL_FILE}.tmp"));
        let body = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, dir.join(CONTROL_FILE))
    }
}

impl Control for ControlFile {
    fn held(&self) -> BTreeMap<String, String> {
        let Some(path) = &self.drift_queue else {
            return BTreeMap::new();
        };
        match crate::drift::store::load_queue(path) {
            Ok(Some(q)) => q.held.into_iter().map(|h| (h.host, h.reason)).collect(),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                tracing::warn!("ignoring the drift review queue: {e}");
                BTreeMap::new()
            }
        }
    }

    fn take(&self) -> Option<Request> {
        let body = std::fs::read(&self.path).ok()?;
        let _ = std::fs::remove_file(&self.path);
        match serde_json::from_slice(&body) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("ignoring unreadable request `{}`: {e}", self.path.display());
                None
            }
        }
    }
}

/// No operator requests.
pub struct NoControl;

impl Control for NoControl {
    fn take(&self) -> Option<Request> {
        None
    }
}

/// Limits this controller shares with others (controllers per shard): a host holds a slot of
/// every in-flight limit it is under (its rack, its datacenter) from before its first step
/// until it is through, whichever controller drives it. One controller alone needs none: its
/// plan's batches keep its own hosts within every limit.
pub trait Limits: Send + Sync {
    /// Waits for a slot of every limit `host` is under, telling `waiting` once what it waits
    /// for; errs only when this controller may no longer act on hosts.
    fn take(&self, host: &str, waiting: &dyn Fn(&str)) -> Result<(), ControllerError>;
    /// Frees the slots `host` holds.
    fn free(&self, host: &str);
}

/// A controller alone: nothing shared.
pub struct Unshared;

impl Limits for Unshared {
    fn take(&self, _: &str, _: &dyn Fn(&str)) -> Result<(), ControllerError> {
        Ok(())
    }
    fn free(&self, _: &str) {}
}

/// One gate of a rollout: its stage, and which try (0, then one more after each verdict the
/// stage had: an inconclusive gate's bake extension, a pause and its resume re-gate it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateId {
    pub stage: usize,
    pub attempt: usize,
}

/// What one shard's controller brings to a gate over several shards: the host-level data of
/// its updated hosts and of its controls ([`crate::gate::HostCohort`], one value per host ×
/// metric × window), and which of its hosts of the stage are done.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatePart {
    pub done: Vec<String>,
    pub updated: gate::HostCohort,
    pub controls: gate::HostCohort,
}

impl GatePart {
    /// Every part as one, as if one controller had driven them all.
    pub fn union(parts: Vec<GatePart>) -> GatePart {
        let mut all = GatePart::default();
        for p in parts {
            all.done.extend(p.done);
            all.updated.merge(p.updated);
            all.controls.merge(p.controls);
        }
        all.done.sort();
        all.done.dedup();
        all
    }
}

/// A gate's verdict as written once for every shard, by the controller that wrote it first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedVerdict {
    pub verdict: Verdict,
    pub groups: Vec<gate::GroupJudgement>,
    /// The shard whose controller wrote it.
    pub by: String,
}

/// Whether every shard has brought its part to a gate.
#[derive(Debug)]
pub enum Gathered {
    All(Vec<GatePart>),
    /// The shards that have not yet, by name.
    Waiting(Vec<String>),
}

/// Gates shared by the controllers of several shards: each publishes its part, every one
/// judges the union through the one gate path once every shard's part is in, and the first
/// verdict written is every shard's. `None` in [`Io::gates`] for a controller alone.
pub trait SharedGates: Send + Sync {
    /// This controller's shard, by name.
    fn shard(&self) -> String;
    /// The verdict written for `gate`, if one was.
    fn written(&self, gate: GateId) -> Result<Option<SharedVerdict>, ControllerError>;
    /// Publishes this shard's part (in place of one it published before).
    fn publish(&self, gate: GateId, part: &GatePart) -> Result<(), ControllerError>;
    /// Every shard's part, once each has published one.
    fn gather(&self, gate: GateId) -> Result<Gathered, ControllerError>;
    /// Writes `v` unless a verdict was written first; returns the one that stands.
    fn decide(&self, gate: GateId, v: &SharedVerdict) -> Result<SharedVerdict, ControllerError>;
    /// Keeps what was written to one of the stage's sample files (`stage-NN.before.csv`, …),
    /// appended (or, `whole`, in place of what it held), where the shard's next controller
    /// finds it: a stage's windows outlive the controller that recorded them.
    fn keep_samples(&self, file: &str, bytes: &[u8], whole: bool) -> Result<(), ControllerError>;
}

/// Sees every record as it is appended, and notes that are not records.
pub trait Observer: Send + Sync {
    fn record(&self, record: &Record, state: &RolloutState);
    fn note(&self, _message: &str) {}
    /// Before the run: how many hosts it covers.
    fn begin(&self, _hosts: usize) {}
    /// After the run, before the final report.
    fn finish(&self) {}
}

pub struct NoObserver;

impl Observer for NoObserver {
    fn record(&self, _: &Record, _: &RolloutState) {}
}

/// Everything the controller touches outside itself.
#[derive(Clone, Copy)]
pub struct Io<'a> {
    pub exec: &'a dyn Executor,
    pub clock: &'a dyn Clock,
    pub alerts: &'a dyn AlertSink,
    pub policies: &'a dyn PolicySource,
    pub control: &'a dyn Control,
    pub observer: &'a dyn Observer,
    /// Prometheus, for `signals()` with `source: "prometheus"`.
    pub metrics: &'a dyn crate::signals::prometheus::MetricsStore,
    /// The controller's own HTTP fetches, for `http` checks `from: "controller"`.
    pub http: &'a dyn crate::probe::HttpProbe,
    /// Commands run on the controller for a host: `recover(host)`.
    pub oob: &'a dyn crate::exec::oob::OutOfBand,
    /// Whether this controller may issue host commands now: its lease, when controllers run
    /// per shard ([`crate::coord::etcd::Session`]); [`crate::coord::Unfenced`] alone.
    pub fence: &'a dyn crate::coord::Fence,
    /// In-flight limits shared with other controllers ([`Unshared`] alone).
    pub limits: &'a dyn Limits,
    /// Gates judged over every shard's hosts (`None` alone).
    pub gates: Option<&'a dyn SharedGates>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The rollout's name in alerts.
    pub name: String,
    /// Threads driving hosts at once (a batch never exceeds its planned size either).
    pub workers: usize,
    /// Overrides every bake, in seconds.
    pub bake: Option<u64>,
    /// Honour `windows()` before each batch.
    pub windows: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "rollout".into(),
            workers: 64,
            bake: None,
            windows: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Invalid(String),
    /// The lease that let this controller act is gone: another controller may lead its shard.
    #[error("this controller may no longer act on hosts: {0}")]
    Fenced(#[from] crate::coord::FenceError),
    #[error("cannot write `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::error::Invalid> for ControllerError {
    fn from(e: crate::error::Invalid) -> Self {
        ControllerError::Invalid(e.0)
    }
}

/// Which failed hosts a resume acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Acknowledge {
    #[default]
    None,
    /// Every host that failed so far.
    All,
    /// These hosts, each of which must have failed.
    Hosts(Vec<String>),
}
