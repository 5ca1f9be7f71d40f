//! Coordination between controllers that share one rollout: shard leadership held by a lease,
//! writes fenced by that leadership, and fleet-wide limits as counting semaphores whose slots
//! die with their holder's lease.
//!
//! The rule that keeps a deposed controller away from hosts is pure and lives here
//! ([`LeaseView`]): a controller may issue a host command only while its coordinator has
//! confirmed its lease recently enough that the lease is certainly still alive, with one
//! keep-alive interval to spare. [`etcd`] feeds that view from a real etcd cluster; without
//! `--etcd` the controller runs [`Unfenced`], alone on one machine, as before.

pub mod etcd;

use crate::clock::Clock;
use crate::exec::{ExecError, Executor, Output, RemoteCommand};
use crate::model::Host;
use std::time::{Duration, Instant};

/// Why a controller may not touch a host now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The last keep-alive failed: the lease may be alive, but nothing says so.
    #[error("etcd did not confirm the lease: {reason}")]
    Unconfirmed { reason: String },
    /// The last confirmation is too old to vouch for the lease any longer.
    #[error("etcd last confirmed the lease {ago_ms} ms ago, longer than its TTL less one keep-alive interval allows")]
    Stale { ago_ms: u128 },
    /// etcd said the lease is gone: its keys, leadership included, are gone with it.
    #[error("the lease expired or was revoked: another controller may lead now")]
    Expired,
}

/// Whether this controller may issue a host command now. Asked before each host step and
/// right before a reboot.
pub trait Fence: Send + Sync {
    fn check(&self) -> Result<(), FenceError>;
}

/// One controller on one machine: nothing to be fenced from.
pub struct Unfenced;

impl Fence for Unfenced {
    fn check(&self) -> Result<(), FenceError> {
        Ok(())
    }
}

/// A fence that says when it closes and when it opens again, once per change, whoever asks:
/// the controller before a step, or [`FencedExecutor`] before a command. Only a closing
/// that may reopen is announced; an expired lease ends the controller with its own error.
pub struct Announced<'a> {
    pub inner: &'a dyn Fence,
    pub say: Box<dyn Fn(&str) + Send + Sync + 'a>,
    held: std::sync::atomic::AtomicBool,
}

impl<'a> Announced<'a> {
    pub fn new(inner: &'a dyn Fence, say: Box<dyn Fn(&str) + Send + Sync + 'a>) -> Self {
        Announced {
            inner,
            say,
            held: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Fence for Announced<'_> {
    fn check(&self) -> Result<(), FenceError> {
        use std::sync::atomic::Ordering::SeqCst;
        let got = self.inner.check();
        match &got {
            Ok(()) => {
                if self.held.swap(false, SeqCst) {
                    (self.say)("host commands resume: etcd confirmed the lease again");
                }
            }
            Err(FenceError::Expired) => {}
            Err(e) => {
                if !self.held.swap(true, SeqCst) {
                    (self.say)(&format!(
                        "host commands held until etcd confirms the lease: {e}"
                    ));
                }
            }
        }
        got
    }
}

/// The executor every host command of a fenced controller passes through: nothing is sent
/// without a live lease, whatever step or probe asks. While the fence may reopen (etcd
/// unreachable, a renewal overdue) it waits; once the lease is gone it refuses, with an error
/// that no caller takes for a reboot under way (`Spawn`, not `Unreachable`).
pub struct FencedExecutor<'a> {
    pub inner: &'a dyn Executor,
    pub fence: &'a dyn Fence,
}

impl FencedExecutor<'_> {
    fn admit(&self, host: &Host, cmd: &RemoteCommand) -> Result<(), ExecError> {
        wait_open(self.fence).map_err(|e| ExecError::Spawn {
            host: host.name.clone(),
            command: cmd.shell_line(),
            message: format!("not sent: {e}"),
        })
    }
}

/// Waits while `fence` is closed but may reopen (etcd unreachable, a renewal overdue), and
/// errs once the lease is gone.
pub fn wait_open(fence: &dyn Fence) -> Result<(), FenceError> {
    loop {
        match fence.check() {
            Err(FenceError::Unconfirmed { .. } | FenceError::Stale { .. }) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            got => return got,
        }
    }
}

impl Executor for FencedExecutor<'_> {
    fn run(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
    ) -> Result<Output, ExecError> {
        self.admit(host, cmd)?;
        self.inner.run(host, cmd, timeout)
    }

    fn run_at(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        self.admit(host, cmd)?;
        self.inner.run_at(host, cmd, timeout, clock)
    }

    fn release(&self, host: &Host) {
        self.inner.release(host);
    }
}

/// What a controller knows of its lease, from its keep-alives. Pure: the coordinator records
/// what etcd answered and when it asked, and [`LeaseView::check`] decides.
#[derive(Debug, Clone)]
pub struct LeaseView {
    /// How often the coordinator renews: also the margin a check keeps before the lease's end.
    interval: Duration,
    /// How long a renewal may take to be answered: past `interval + answer_within` since the
    /// last confirmation, a renewal is overdue and the check refuses.
    answer_within: Duration,
    /// etcd guaranteed the lease until at least this instant: when the last confirmed
    /// keep-alive was sent, plus the TTL etcd granted in its answer.
    confirmed_until: Option<Instant>,
    /// When the last confirmed keep-alive was sent.
    confirmed_at: Option<Instant>,
    /// The last keep-alive failed, and why (cleared by the next confirmation).
    failing: Option<String>,
    /// etcd answered that the lease no longer exists.
    expired: bool,
}

impl LeaseView {
    /// A view of a lease granted at `granted` (the grant's send time) for `ttl`, renewed
    /// every `interval`, each renewal answered within `answer_within`.
    pub fn new(
        granted: Instant,
        ttl: Duration,
        interval: Duration,
        answer_within: Duration,
    ) -> Self {
        LeaseView {
            interval,
            answer_within,
            confirmed_until: Some(granted + ttl),
            confirmed_at: Some(granted),
            failing: None,
            expired: false,
        }
    }

    /// A keep-alive sent at `sent` was answered with `ttl` left.
    pub fn confirmed(&mut self, sent: Instant, ttl: Duration) {
        if self.expired {
            return;
        }
        self.confirmed_until = Some(sent + ttl);
        self.confirmed_at = Some(sent);
        self.failing = None;
    }

    /// A keep-alive failed (no answer, an error, a closed stream).
    pub fn failed(&mut self, reason: String) {
        self.failing = Some(reason);
    }

    /// etcd answered that the lease is gone. Final: a lease never comes back.
    pub fn expired(&mut self) {
        self.expired = true;
    }

    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// May a host command be issued at `now`? Only while the lease is certainly alive for one
    /// more keep-alive interval, the last keep-alive did not fail, and the next is not overdue.
    /// So a controller cut off from etcd stops within one interval and one answer's wait of
    /// its last confirmation, whether the failure shows as an error or as silence.
    pub fn check(&self, now: Instant) -> Result<(), FenceError> {
        if self.expired {
            return Err(FenceError::Expired);
        }
        if let Some(reason) = &self.failing {
            return Err(FenceError::Unconfirmed {
                reason: reason.clone(),
            });
        }
        match (self.confirmed_until, self.confirmed_at) {
            (Some(until), Some(at))
                if now + self.interval < until && now < at + self.interval + self.answer_within =>
            {
                Ok(())
            }
            (_, at) => Err(FenceError::Stale {
                ago_ms: at.map_or(0, |a| now.saturating_duration_since(a).as_millis()),
            }),
        }
    }
}

/// The hosts one controller drives: those whose `key` is `value`. The key is a host field
/// (`datacenter`, `rack`, `hardware`, `workload`) or a fact's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub key: String,
    pub value: String,
}

impl Shard {
    /// `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Shard, crate::Invalid> {
        match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok(Shard {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => Err(crate::Invalid(format!(
                "shard `{text}` is not KEY=VALUE (for example `datacenter=ams1`)"
            ))),
        }
    }

    /// `KEY=VALUE`, its name in keys and messages.
    pub fn name(&self) -> String {
        format!("{}={}", self.key, self.value)
    }

    pub fn holds(&self, h: &Host) -> bool {
        Shard::value_of(&self.key, h).is_some_and(|v| v == self.value)
    }

    /// The shard of `key` that holds `h`: its value of `key`, if it has one.
    pub fn value_of(key: &str, h: &Host) -> Option<String> {
        let v = match key {
            "datacenter" => h.datacenter.clone(),
            "rack" => h.rack.clone(),
            "hardware" => h.hardware.clone(),
            "workload" => h.workload.clone(),
            fact => match h.facts.get(fact) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                _ => return None,
            },
        };
        (!v.trim().is_empty()).then_some(v)
    }

    /// Every shard of `key` among `hosts`, by name, in order. Errs on a host in none, which
    /// no shard's controller would drive.
    pub fn all(key: &str, hosts: &[Host]) -> Result<Vec<String>, crate::Invalid> {
        let mut names = std::collections::BTreeSet::new();
        for h in hosts {
            match Shard::value_of(key, h) {
                Some(v) => names.insert(format!("{key}={v}")),
                None => {
                    return Err(crate::Invalid(format!(
                        "host `{}` has no `{key}`, so no controller of a shard by `{key}` would drive it",
                        h.name
                    )))
                }
            };
        }
        Ok(names.into_iter().collect())
    }
}

/// Keys of one rollout in the coordination store, under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `/fleetward/rollouts/NAME`.
    pub fn new(rollout: &str) -> Self {
        Keys {
            prefix: format!("/fleetward/rollouts/{rollout}"),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The election of the shard's controller.
    pub fn shard_election(&self, shard: &str) -> String {
        format!("{}/shards/{shard}/leader", self.prefix)
    }

    /// Every shard's keys.
    pub fn shards(&self) -> String {
        format!("{}/shards/", self.prefix)
    }

    /// An operator's pending request (pause, abort) to the shard's controller.
    pub fn shard_request(&self, shard: &str) -> String {
        format!("{}/shards/{shard}/request", self.prefix)
    }

    /// The revision of the last request the shard's controller took.
    pub fn shard_request_taken(&self, shard: &str) -> String {
        format!("{}/shards/{shard}/request-taken", self.prefix)
    }

    /// The shard's journal, one key a record.
    pub fn shard_journal(&self, shard: &str) -> String {
        format!("{}/shards/{shard}/journal/", self.prefix)
    }

    /// Record `seq` of the shard's journal: zero-padded, so keys sort as records do.
    pub fn journal_record(&self, shard: &str, seq: u64) -> String {
        format!("{}{seq:020}", self.shard_journal(shard))
    }

    /// The slots of semaphore `name`.
    pub fn semaphore(&self, name: &str) -> String {
        format!("{}/semaphores/{name}/", self.prefix)
    }

    /// The gate of `stage` at its `attempt` (0, then one more after each verdict the stage
    /// had): each shard's part, and the verdict.
    pub fn gate(&self, stage: usize, attempt: usize) -> String {
        format!("{}/gates/{stage:04}-{attempt:03}/", self.prefix)
    }

    /// Every shard's progress, one key a shard.
    pub fn statuses(&self) -> String {
        format!("{}/status/", self.prefix)
    }

    /// The shard's progress as its controller last put it.
    pub fn shard_status(&self, shard: &str) -> String {
        format!("{}{shard}", self.statuses())
    }

    /// The shard's sample files (a stage's windows), for its next controller: under
    /// `FILE/`, the file's pieces in order.
    pub fn shard_files(&self, shard: &str) -> String {
        format!("{}/files/{shard}/", self.prefix)
    }

    /// Slot `slot` of semaphore `name`.
    pub fn semaphore_slot(&self, name: &str, slot: usize) -> String {
        format!("{}{slot:06}", self.semaphore(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(6);
    const EVERY: Duration = Duration::from_secs(2);
    const ANSWER: Duration = Duration::from_secs(1);

    fn view() -> (Instant, LeaseView) {
        let t0 = Instant::now();
        (t0, LeaseView::new(t0, TTL, EVERY, ANSWER))
    }

    #[test]
    fn an_unrenewed_lease_allows_commands_until_its_renewal_is_overdue() {
        let (t0, v) = view();
        assert_eq!(v.check(t0), Ok(()));
        // The renewal is due at 2 s and must be answered by 3 s.
        assert_eq!(v.check(t0 + Duration::from_millis(2_999)), Ok(()));
        assert!(matches!(
            v.check(t0 + Duration::from_secs(3)),
            Err(FenceError::Stale { ago_ms: 3000 })
        ));
    }

    #[test]
    fn a_short_ttl_allows_commands_until_one_interval_before_its_end() {
        let t0 = Instant::now();
        // etcd granted less than asked (a TTL of 2.5 s): the end comes before the overdue mark.
        let v = LeaseView::new(t0, Duration::from_millis(2_500), EVERY, ANSWER);
        assert_eq!(v.check(t0 + Duration::from_millis(499)), Ok(()));
        assert!(v.check(t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn confirmations_count_from_when_the_keep_alive_was_sent() {
        let (t0, mut v) = view();
        // Sent at 2 s: vouched for until 2 + 3 = 5 s (overdue), well before 2 + 6 - 2 = 6 s.
        v.confirmed(t0 + EVERY, TTL);
        assert_eq!(v.check(t0 + Duration::from_millis(4_999)), Ok(()));
        assert!(v.check(t0 + Duration::from_secs(5)).is_err());
    }

    #[test]
    fn a_failed_keep_alive_stops_commands_at_once_and_a_confirmation_resumes_them() {
        let (t0, mut v) = view();
        v.failed("connection refused".into());
        assert_eq!(
            v.check(t0),
            Err(FenceError::Unconfirmed {
                reason: "connection refused".into()
            })
        );
        v.confirmed(t0 + EVERY, TTL);
        assert_eq!(v.check(t0 + EVERY), Ok(()));
    }

    #[test]
    fn an_expired_lease_never_comes_back() {
        let (t0, mut v) = view();
        v.expired();
        v.confirmed(t0, TTL);
        assert_eq!(v.check(t0), Err(FenceError::Expired));
    }

    #[test]
    fn finding_a_controller_stopped_past_its_lease_may_not_act_when_continued() {
        // SIGSTOP freezes the keep-alives but not the monotonic clock: on SIGCONT the last
        // confirmation is older than the TTL, and the check refuses before any keep-alive runs.
        let (t0, v) = view();
        assert!(matches!(
            v.check(t0 + TTL + EVERY),
            Err(FenceError::Stale { .. })
        ));
    }

    #[test]
    fn a_shard_is_key_equals_value_over_fields_and_facts() {
        let s = Shard::parse("datacenter=ams1").unwrap();
        assert_eq!(s.name(), "datacenter=ams1");
        let mut h = Host {
            datacenter: "ams1".into(),
            ..Host::default()
        };
        assert!(s.holds(&h));
        h.datacenter = "fra1".into();
        assert!(!s.holds(&h));
        h.facts.insert("zone".into(), serde_json::json!("z2"));
        assert!(Shard::parse("zone=z2").unwrap().holds(&h));
        for bad in ["datacenter", "=ams1", "datacenter=", ""] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not KEY=VALUE"), "{e}");
        }
    }

    #[test]
    fn every_shard_of_a_key_is_listed_and_a_host_in_none_is_refused() {
        let host = |name: &str, dc: &str| Host {
            name: name.into(),
            datacenter: dc.into(),
            ..Host::default()
        };
        let hosts = [host("a", "fra1"), host("b", "ams1"), host("c", "fra1")];
        assert_eq!(
            Shard::all("datacenter", &hosts).unwrap(),
            ["datacenter=ams1", "datacenter=fra1"]
        );
        let mut with_blank = hosts.to_vec();
        with_blank.push(host("d", " "));
        let e = Shard::all("datacenter", &with_blank)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "host `d` has no `datacenter`, so no controller of a shard by `datacenter` would drive it"
        );
        let e = Shard::all("zone", &hosts).unwrap_err().to_string();
        assert!(e.contains("host `a` has no `zone`"), "{e}");
    }

    #[test]
    fn keys_sort_as_records_do() {
        let k = Keys::new("r1");
        assert_eq!(
            k.journal_record("datacenter=ams1", 7),
            "/fleetward/rollouts/r1/shards/datacenter=ams1/journal/00000000000000000007"
        );
        assert!(k.journal_record("s", 9) < k.journal_record("s", 10));
        assert_eq!(
            k.semaphore_slot("rack=r1", 0),
            "/fleetward/rollouts/r1/semaphores/rack=r1/000000"
        );
        assert_eq!(k.gate(3, 1), "/fleetward/rollouts/r1/gates/0003-001/");
    }
}
