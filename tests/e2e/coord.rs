//! The coordination primitives against a real 3-member etcd cluster on loopback: leadership
//! by lease, fenced writes, semaphores across controllers, a member lost, the cluster lost.

use crate::etcd::EtcdCluster;
use fleetward_engine::coord::etcd::{CoordError, Session, SessionOptions};
use fleetward_engine::coord::{Fence, FenceError, Keys};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A lease of 3 s, renewed every second, each renewal answered within half a second.
const TTL: Duration = Duration::from_secs(3);

fn session(c: &EtcdCluster, rollout: &str) -> Session {
    Session::connect(SessionOptions::new(c.endpoints(), TTL), Keys::new(rollout)).unwrap()
}

/// Waits up to `limit` for `f` to hold, returning how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn of_two_controllers_for_one_shard_one_leads_and_the_other_takes_over_within_the_ttl_after_a_crash(
) {
    let c = EtcdCluster::start(3);
    let a = session(&c, "r1");
    let b = session(&c, "r1");
    let election = a.keys().shard_election("datacenter=ams1");
    let la = a.campaign(&election, "a", TTL).unwrap().expect("a leads");
    assert!(
        b.campaign(&election, "b", Duration::from_millis(500))
            .unwrap()
            .is_none(),
        "b must stand by while a leads"
    );
    // Asking again, as after an answer lost on the way, keeps the same leadership: the
    // key is neither recreated nor deleted (finding: a campaign abandoned on a timeout
    // resigned the key its next campaign had just won).
    assert_eq!(a.campaign(&election, "a", TTL).unwrap(), Some(la.clone()));
    assert!(a.still_leads(&la).unwrap());
    a.append_record(&la, "datacenter=ams1", 0, b"{\"seq\":0}")
        .unwrap();
    // a crashes: it stops renewing and revokes nothing, as after kill -9.
    drop(a);
    let crashed = Instant::now();
    let lb = b
        .campaign(&election, "b", TTL * 3)
        .unwrap()
        .expect("b takes over");
    let took = crashed.elapsed();
    // etcd ends a lease at its TTL, checking every 500 ms; b's wait is that, no more.
    assert!(
        took <= TTL + Duration::from_secs(1),
        "takeover took {took:?}"
    );
    // b continues the shard's journal where a left it.
    let records = b.records("datacenter=ams1").unwrap();
    assert_eq!(records, vec![(0, b"{\"seq\":0}".to_vec())]);
    b.append_record(&lb, "datacenter=ams1", 1, b"{\"seq\":1}")
        .unwrap();
    assert!(matches!(
        b.append_record(&lb, "datacenter=ams1", 1, b"again"),
        Err(CoordError::Duplicate { seq: 1, .. })
    ));
    b.close().unwrap();
}

#[test]
fn a_deposed_leaders_writes_are_refused_and_its_fence_closes() {
    let c = EtcdCluster::start(3);
    let a = session(&c, "r2");
    let b = session(&c, "r2");
    let election = a.keys().shard_election("s");
    let la = a.campaign(&election, "a", TTL).unwrap().unwrap();
    assert_eq!(a.check(), Ok(()));
    // An operator revokes a's lease (as etcd does when it expires): a is deposed at once.
    let o = c.etcdctl(&["lease", "revoke", &format!("{:x}", a.lease_id())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lb = b.campaign(&election, "b", TTL).unwrap().expect("b leads");
    assert!(!a.still_leads(&la).unwrap());
    assert!(b.still_leads(&lb).unwrap());
    assert!(matches!(
        a.put_fenced(&la, "/fleetward/rollouts/r2/verdict", b"pass"),
        Err(CoordError::Deposed { .. })
    ));
    assert!(matches!(
        a.append_record(&la, "s", 0, b"x"),
        Err(CoordError::Deposed { .. })
    ));
    assert!(matches!(
        a.acquire(&la, "rack=r1", 1, "host-1"),
        Err(CoordError::Deposed { .. })
    ));
    assert!(matches!(
        a.create_fenced(
            &la,
            "/fleetward/rollouts/r2/gates/0000-000/verdict",
            b"pass"
        ),
        Err(CoordError::Deposed { .. })
    ));
    // a's next renewal hears that the lease is gone: its fence closes within one interval
    // and the answer's wait.
    let closed = within(
        Duration::from_millis(1_500) + Duration::from_millis(300),
        || a.check() == Err(FenceError::Expired),
    );
    assert!(closed.is_some(), "a's fence: {:?}", a.check());
    b.put_fenced(&lb, "/fleetward/rollouts/r2/verdict", b"pass")
        .unwrap();
}

/// A gate's verdict is created once: every controller that decides after the first reads
/// the first one's, racing or not, and a key it cannot read is never taken as written.
#[test]
fn the_first_verdict_written_stands_for_every_shard() {
    let c = EtcdCluster::start(3);
    let key = "/fleetward/rollouts/r5/gates/0001-000/verdict";
    let sessions: Vec<Session> = (0..4).map(|_| session(&c, "r5")).collect();
    let leaders: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.campaign(&s.keys().shard_election(&format!("dc{i}")), "x", TTL)
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(sessions[0].get(key).unwrap(), None);
    // Four shards decide at once, each its own verdict.
    let stood: Vec<(Vec<u8>, bool)> = std::thread::scope(|sc| {
        let hs: Vec<_> = sessions
            .iter()
            .zip(&leaders)
            .enumerate()
            .map(|(i, (s, l))| {
                sc.spawn(move || s.create_fenced(l, key, format!("v{i}").as_bytes()))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert_eq!(
        stood.iter().filter(|(_, mine)| *mine).count(),
        1,
        "{stood:?}"
    );
    let first = &stood.iter().find(|(_, mine)| *mine).unwrap().0;
    for (v, _) in &stood {
        assert_eq!(v, first);
    }
    assert_eq!(sessions[2].get(key).unwrap().as_ref(), Some(first));
    // The parts under a gate's prefix, in key order.
    let parts = "/fleetward/rollouts/r5/gates/0001-000/parts/";
    for (i, (s, l)) in sessions.iter().zip(&leaders).enumerate().rev() {
        s.put_fenced(l, &format!("{parts}dc{i}"), format!("p{i}").as_bytes())
            .unwrap();
    }
    let got = sessions[1].range(parts).unwrap();
    assert_eq!(
        got,
        (0..4)
            .map(|i| (format!("{parts}dc{i}"), format!("p{i}").into_bytes()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_semaphore_of_one_is_never_held_twice_across_controllers_and_a_dead_holders_slot_waits_for_its_shard(
) {
    let c = EtcdCluster::start(3);
    // Two controllers, each the leader of its own shard, share one rack's limit of 1.
    let held = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = ["ams1", "fra1"]
        .into_iter()
        .map(|dc| {
            let s = session(&c, "r3");
            let (held, most, taken) = (held.clone(), most.clone(), taken.clone());
            std::thread::spawn(move || {
                let l = s
                    .campaign(&s.keys().shard_election(dc), dc, TTL)
                    .unwrap()
                    .unwrap();
                for i in 0..15 {
                    let me = format!("{dc}-host-{i}");
                    let slot = loop {
                        if let Some(slot) = s.acquire(&l, "rack=r1", 1, &me).unwrap() {
                            break slot;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    };
                    let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    taken.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    held.fetch_sub(1, Ordering::SeqCst);
                    s.release(&slot).unwrap();
                }
                s.close().unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(taken.load(Ordering::SeqCst), 30);
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "the rack's limit of 1 was exceeded"
    );
    // A controller that dies holding a slot leaves it with its host, which may still be
    // mid-reboot: past the dead controller's TTL the other shard still cannot take it.
    let a = session(&c, "r3");
    let b = session(&c, "r3");
    let la = a
        .campaign(&a.keys().shard_election("ams1"), "a", TTL)
        .unwrap()
        .unwrap();
    let lb = b
        .campaign(&b.keys().shard_election("fra1"), "b", TTL)
        .unwrap()
        .unwrap();
    assert!(a
        .acquire(&la, "rack=r1", 1, "ams1-host-x")
        .unwrap()
        .is_some());
    assert!(b
        .acquire(&lb, "rack=r1", 1, "fra1-host-y")
        .unwrap()
        .is_none());
    drop(a);
    let a2 = session(&c, "r3");
    let la2 = a2
        .campaign(&a2.keys().shard_election("ams1"), "a2", TTL * 3)
        .unwrap()
        .expect("a2 leads ams1 once a's lease ended");
    assert!(b
        .acquire(&lb, "rack=r1", 1, "fra1-host-y")
        .unwrap()
        .is_none());
    // The shard's next leader takes the host's slot again as it is, and frees it once the
    // host is through; then the other shard's host gets it.
    let again = a2
        .acquire(&la2, "rack=r1", 1, "ams1-host-x")
        .unwrap()
        .expect("the host's own slot");
    assert_eq!(a2.holders("rack=r1").unwrap(), vec![again.clone()]);
    a2.release(&again).unwrap();
    assert!(b
        .acquire(&lb, "rack=r1", 1, "fra1-host-y")
        .unwrap()
        .is_some());
    assert_eq!(b.holders("rack=r1").unwrap().len(), 1);
}

#[test]
fn with_one_member_killed_the_leader_keeps_its_lease_and_writes_on() {
    let mut c = EtcdCluster::start(3);
    let a = session(&c, "r4");
    let l = a
        .campaign(&a.keys().shard_election("s"), "a", TTL)
        .unwrap()
        .unwrap();
    c.kill(0);
    // Writes carry on: a request that went to the dead member fails over to the others.
    for seq in 0..20u64 {
        let wrote = within(Duration::from_secs(3), || {
            a.append_record(&l, "s", seq, b"r").is_ok()
        });
        assert!(wrote.is_some(), "record {seq}: {:?}", a.check());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Over three TTLs the lease never ended: quorum held.
    assert!(a.still_leads(&l).unwrap());
    assert_eq!(a.check(), Ok(()));
    assert_eq!(a.records("s").unwrap().len(), 20);
}

#[test]
fn with_etcd_lost_the_fence_closes_within_one_interval_says_why_and_reopens_when_it_returns() {
    let mut c = EtcdCluster::start(3);
    let a = session(&c, "r5");
    let l = a
        .campaign(&a.keys().shard_election("s"), "a", TTL)
        .unwrap()
        .unwrap();
    assert_eq!(a.check(), Ok(()));
    for i in 0..3 {
        c.kill(i);
    }
    // The interval is 1 s and a renewal's answer is awaited 0.5 s: the fence closes by then.
    let closed = within(Duration::from_secs(3), || a.check().is_err())
        .expect("the fence stayed open with etcd gone");
    assert!(
        closed <= Duration::from_millis(1_500) + Duration::from_millis(300),
        "closed after {closed:?}"
    );
    let why = a.check().unwrap_err().to_string();
    assert!(why.contains("etcd"), "{why}");
    assert!(a.append_record(&l, "s", 0, b"r").is_err());
    // The cluster comes back on its data: etcd renews every lease when a leader is elected,
    // so the controller holds its leadership again and its fence reopens.
    for i in 0..3 {
        c.restart(i);
    }
    c.wait_all_healthy();
    let reopened = within(Duration::from_secs(15), || a.check().is_ok());
    assert!(reopened.is_some(), "still closed: {:?}", a.check());
    assert!(a.still_leads(&l).unwrap());
    a.append_record(&l, "s", 0, b"r").unwrap();
}
