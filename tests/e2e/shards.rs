//! Controllers per shard over a real 3-member etcd cluster and real loopback sshd hosts:
//! two controllers for one shard, one acting; the leader killed (SIGKILL) or frozen (SIGSTOP)
//! past its lease, and the other taking over without touching a host twice.

use crate::etcd::EtcdCluster;
use crate::rollout::{regressed_lab, untouched_after, Lab, NO_BENCH, TARGET};
use crate::support::bin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const TTL_SECS: u64 = 3;

/// One controller of the lab's shard (`datacenter=lo`: every lab host), with its own state
/// directory, as on a machine of its own; its JSON lines go to `out`.
fn controller(lab: &Lab, etcd: &EtcdCluster, state: &Path, out: &Path) -> Child {
    baking(lab, etcd, state, out, 0)
}

/// As [`controller`], with bakes of `bake` seconds, so the rollout outlasts what a test does
/// to etcd meanwhile.
fn baking(lab: &Lab, etcd: &EtcdCluster, state: &Path, out: &Path, bake: u64) -> Child {
    of_shard(lab, etcd, "datacenter=lo", state, out, bake)
}

/// A controller of `shard`, as [`baking`].
fn of_shard(
    lab: &Lab,
    etcd: &EtcdCluster,
    shard: &str,
    state: &Path,
    out: &Path,
    bake: u64,
) -> Child {
    let mut args = lab.start_args(&[
        "--etcd",
        &etcd.endpoints().join(","),
        "--shard",
        shard,
        "--lease-ttl",
        &TTL_SECS.to_string(),
        "--rollout-id",
        "lab",
    ]);
    let at = args.iter().position(|a| a == "--state-dir").unwrap();
    args[at + 1] = state.display().to_string();
    let at = args.iter().position(|a| a == "--bake").unwrap();
    args[at + 1] = bake.to_string();
    Command::new(bin())
        .args(&args)
        .env("XDG_STATE_HOME", crate::support::state_home())
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
        .spawn()
        .unwrap()
}

fn journal(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(state: &Path, kind: &str) -> usize {
    journal(state)
        .iter()
        .filter(|r| r["event"]["type"] == kind)
        .count()
}

/// What the controllers writing to `outs` said, stdout and stderr, each under its name.
fn said_by(outs: &[(&str, &Path)]) -> String {
    outs.iter()
        .map(|(name, out)| {
            format!(
                "\n--- {name} ---\n{}{}",
                text(out),
                text(&out.with_extension("err"))
            )
        })
        .collect()
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Waits up to `limit` for `f`, failing with `what` and `context()`.
fn wait_for(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < limit,
            "{what} within {limit:?}: {}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Pair {
    a: PathBuf,
    b: PathBuf,
    a_out: PathBuf,
    b_out: PathBuf,
}

impl Pair {
    fn new(lab: &Lab) -> Pair {
        let base = lab.fleet.dir.path();
        Pair {
            a: base.join("controller-a"),
            b: base.join("controller-b"),
            a_out: base.join("a.jsonl"),
            b_out: base.join("b.jsonl"),
        }
    }

    fn context(&self) -> String {
        said_by(&[("a", &self.a_out), ("b", &self.b_out)])
    }
}

/// Starts `a`, then `b` once `a` leads; returns when `b` stands by and `a` finished `done`
/// hosts, having checked that `b` recorded nothing.
fn leader_and_standby(lab: &Lab, etcd: &EtcdCluster, p: &Pair, done: usize) -> (Child, Child) {
    let a = controller(lab, etcd, &p.a, &p.a_out);
    wait_for(
        Duration::from_secs(60),
        "a leads",
        || text(&p.a_out).contains("leading shard"),
        || p.context(),
    );
    let b = controller(lab, etcd, &p.b, &p.b_out);
    wait_for(
        Duration::from_secs(30),
        "b stands by",
        || text(&p.b_out).contains("standing by"),
        || p.context(),
    );
    wait_for(
        Duration::from_secs(120),
        "a finishes its hosts",
        || count(&p.a, "host_done") >= done,
        || p.context(),
    );
    assert!(journal(&p.b).is_empty(), "b acted while standing by");
    (a, b)
}

/// Every host updated, each rebooted exactly once, whichever controller did it.
fn every_host_updated_once(lab: &Lab) {
    for h in lab.names() {
        assert_eq!(lab.reboots(&h), 1, "{h} rebooted {} times", lab.reboots(&h));
        assert_eq!(lab.kernel(&h), TARGET, "{h}");
    }
}

#[test]
fn of_two_controllers_for_one_shard_one_acts_and_a_kill_9_of_the_leader_hands_over_within_the_ttl()
{
    let etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    let p = Pair::new(&lab);
    let (mut a, mut b) = leader_and_standby(&lab, &etcd, &p, 2);
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let killed = Instant::now();
    let a_records = journal(&p.a);
    wait_for(
        Duration::from_secs(TTL_SECS * 4),
        "b takes over",
        || text(&p.b_out).contains("leading shard"),
        || p.context(),
    );
    let took = killed.elapsed();
    eprintln!("takeover after kill -9: {took:?} (lease TTL {TTL_SECS} s)");
    // etcd ends the lease at its TTL (checking every 500 ms); b's campaign answers then, and
    // b reads the journal before it says so. Slack for a loaded machine.
    assert!(
        took <= Duration::from_secs(TTL_SECS + 3),
        "took over after {took:?}"
    );
    let status = b.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.context());
    // b carried a's journal on: a's records are the start of b's, record for record.
    let b_records = journal(&p.b);
    assert!(b_records.len() > a_records.len());
    for (x, y) in a_records.iter().zip(&b_records) {
        assert_eq!(x, y);
    }
    assert_eq!(count(&p.b, "recovered"), 1, "b recovered a's crash once");
    assert_eq!(count(&p.b, "completed"), 1);
    every_host_updated_once(&lab);
}

#[test]
fn a_leader_frozen_past_its_lease_touches_no_host_when_continued() {
    let etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    let p = Pair::new(&lab);
    let (mut a, mut b) = leader_and_standby(&lab, &etcd, &p, 1);
    let pid = a.id().to_string();
    let signal = |s: &str| {
        assert!(Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    wait_for(
        Duration::from_secs(TTL_SECS * 4),
        "b takes over from the frozen a",
        || text(&p.b_out).contains("leading shard"),
        || p.context(),
    );
    let frozen_records = journal(&p.a).len();
    signal("-CONT");
    let status = a.wait().unwrap();
    // a wakes with its lease gone: it records nothing more and stops with why.
    assert_ne!(status.code(), Some(0), "{}", p.context());
    assert_eq!(
        journal(&p.a).len(),
        frozen_records,
        "a recorded after waking"
    );
    let why = format!("{}{}", text(&p.a_out), text(&p.a_out.with_extension("err")));
    assert!(
        why.contains("lease") || why.contains("no longer the leader"),
        "{why}"
    );
    let status = b.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.context());
    every_host_updated_once(&lab);
}

#[test]
fn with_one_etcd_member_killed_mid_rollout_the_rollout_carries_on() {
    let mut etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    let p = Pair::new(&lab);
    let mut a = baking(&lab, &etcd, &p.a, &p.a_out, 2);
    wait_for(
        Duration::from_secs(120),
        "a finishes a host",
        || count(&p.a, "host_done") >= 1,
        || p.context(),
    );
    etcd.kill(0);
    let status = a.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.context());
    assert_eq!(count(&p.a, "completed"), 1);
    every_host_updated_once(&lab);
}

#[test]
fn with_etcd_lost_the_controller_sends_nothing_says_why_and_resumes_when_it_returns() {
    let mut etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    let p = Pair::new(&lab);
    let mut a = baking(&lab, &etcd, &p.a, &p.a_out, 3);
    wait_for(
        Duration::from_secs(120),
        "a finishes a host",
        || count(&p.a, "host_done") >= 1,
        || p.context(),
    );
    for i in 0..3 {
        etcd.kill(i);
    }
    let lost = jiff::Timestamp::now().as_second();
    // Renewals every 1 s, each answer awaited 0.5 s: the fence is shut within 1.5 s. The
    // stand-in logs whole seconds when a command reaches it, and a command let through just
    // before may take a loaded machine's ssh a while: nothing may be logged from 5 s on.
    std::thread::sleep(Duration::from_secs(10));
    let sent: Vec<(String, i64, String)> = lab
        .names()
        .into_iter()
        .flat_map(|h| {
            lab.commands(&h)
                .into_iter()
                .filter(|(t, _)| *t >= lost + 5)
                .map(move |(t, c)| (h.clone(), t, c))
        })
        .collect();
    assert!(sent.is_empty(), "sent with etcd gone: {sent:?}");
    let said = text(&p.a_out);
    assert!(
        said.contains("host commands held until etcd confirms the lease")
            || said.contains("waiting for etcd"),
        "{said}"
    );
    assert!(
        a.try_wait().unwrap().is_none(),
        "a gave up: {}",
        p.context()
    );
    for i in 0..3 {
        etcd.restart(i);
    }
    etcd.wait_all_healthy();
    let status = a.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.context());
    assert_eq!(count(&p.a, "completed"), 1);
    let said = text(&p.a_out);
    assert!(
        !said.contains("host commands held") || said.contains("host commands resume"),
        "{said}"
    );
    every_host_updated_once(&lab);
}

/// Each host's time in flight, from its journal: from its first step to its last record.
fn in_flight(state: &Path) -> Vec<(String, jiff::Timestamp, jiff::Timestamp)> {
    let mut spans: std::collections::BTreeMap<String, (jiff::Timestamp, jiff::Timestamp)> =
        Default::default();
    for r in journal(state) {
        let Some(host) = r["event"]["host"].as_str() else {
            continue;
        };
        let at: jiff::Timestamp = r["at"].as_str().unwrap().parse().unwrap();
        match spans.get_mut(host) {
            Some(s) => s.1 = at,
            None if r["event"]["type"] == "step_started" => {
                spans.insert(host.to_string(), (at, at));
            }
            None => {}
        }
    }
    spans.into_iter().map(|(h, (a, b))| (h, a, b)).collect()
}

/// Two shards (`workload=web`, `workload=db`) whose hosts share racks, two to a rack, under
/// the shipped `rack: #{ in_flight: 1 }`: each controller's own plan would update all four of
/// its hosts at once (no two of its own share a rack), so only the limit shared through etcd
/// keeps a rack's two hosts apart. Checked from the two journals: no two hosts of one rack
/// were ever in flight together, and a host did wait for its rack.
#[test]
fn a_rack_limit_of_one_holds_across_two_shards_whose_hosts_share_racks() {
    let etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    // Hosts 2k and 2k+1 (one web, one db: the lab's groups alternate) share rack k.
    let inv = std::fs::read_to_string(&lab.inventory).unwrap();
    let mut k = 0;
    let mut rack_of = std::collections::BTreeMap::new();
    let lines: Vec<String> = inv
        .lines()
        .map(|l| match l.find("rack = \"r") {
            Some(at) => {
                let rest = &l[at + "rack = \"".len()..];
                let end = rest.find('"').unwrap();
                let rack = format!("r{:02}", k / 2);
                let name = l.split('"').nth(1).unwrap().to_string();
                rack_of.insert(name, rack.clone());
                k += 1;
                format!("{}rack = \"{rack}\"{}", &l[..at], &rest[end + 1..])
            }
            None => l.to_string(),
        })
        .collect();
    assert_eq!(k, 8, "{inv}");
    std::fs::write(&lab.inventory, lines.join("\n") + "\n").unwrap();
    let base = lab.fleet.dir.path();
    let (web, db) = (base.join("web"), base.join("db"));
    let (web_out, db_out) = (base.join("web.jsonl"), base.join("db.jsonl"));
    let mut a = of_shard(&lab, &etcd, "workload=web", &web, &web_out, 0);
    let mut b = of_shard(&lab, &etcd, "workload=db", &db, &db_out, 0);
    let context = || said_by(&[("web", &web_out), ("db", &db_out)]);
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    assert_eq!(sa.code(), Some(0), "{}", context());
    assert_eq!(sb.code(), Some(0), "{}", context());
    every_host_updated_once(&lab);
    let mut spans = in_flight(&web);
    spans.extend(in_flight(&db));
    assert_eq!(spans.len(), 8, "{spans:?}");
    for (i, (h, a0, a1)) in spans.iter().enumerate() {
        for (g, b0, b1) in &spans[i + 1..] {
            if rack_of[h] == rack_of[g] {
                assert!(
                    a1 < b0 || b1 < a0,
                    "{h} ({a0} to {a1}) and {g} ({b0} to {b1}) share rack {} and were in flight together{}",
                    rack_of[h],
                    context()
                );
            }
        }
    }
    let out = format!("{}{}", text(&web_out), text(&db_out));
    // What each controller asked of etcd, printed for the record.
    let costs: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("etcd: ") && l.contains("per host"))
        .collect();
    assert_eq!(costs.len(), 2, "{}", context());
    for c in costs {
        eprintln!("{c}");
    }
    assert!(
        out.contains("waits for a slot of `rack=lo/r0"),
        "no host waited for its rack: the test did not test the limit{}",
        context()
    );
}

/// The `gate_evaluated` events of a controller's journal.
fn gates(state: &Path) -> Vec<Value> {
    journal(state)
        .into_iter()
        .filter(|r| r["event"]["type"] == "gate_evaluated")
        .map(|r| r["event"].clone())
        .collect()
}

/// Two shards (`hardware=loop-a`, `hardware=loop-b`) gated together: one plan for the whole
/// fleet, each stage's gate judging the hosts of both shards, its verdict written once and
/// each shard going on only on a written pass. A regression in the `loop-b` shard's hosts from
/// the first wave on pauses both controllers at that wave's gate: the `loop-a` shard, whose
/// own hosts are fine, pauses with the same verdict and touches none of its later hosts.
/// Resumed, each from its own state directory, both lead their shards again and judge the
/// wave anew together; an operator's acceptance in one shard is the verdict of both.
#[test]
fn a_regression_in_one_shard_pauses_every_shard_at_the_same_gate() {
    let etcd = EtcdCluster::start(3);
    // The one-controller regression test's lab: waves of 75% and 100%, two canaries a group.
    let (victim, k) = ("loop-b/", 1);
    let (lab, stages) = regressed_lab(&[NO_BENCH], victim, k);
    let base = lab.fleet.dir.path();
    let (fine, bad) = (base.join("loop-a"), base.join("loop-b"));
    let (fine_out, bad_out) = (base.join("loop-a.jsonl"), base.join("loop-b.jsonl"));
    let mut a = of_shard(&lab, &etcd, "hardware=loop-a", &fine, &fine_out, 0);
    let mut b = of_shard(&lab, &etcd, "hardware=loop-b", &bad, &bad_out, 0);
    let context = || said_by(&[("loop-a", &fine_out), ("loop-b", &bad_out)]);
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    // Both paused (exit 2).
    assert_eq!(sa.code(), Some(2), "{}", context());
    assert_eq!(sb.code(), Some(2), "{}", context());
    // The same verdicts, word for word, in both journals: the canaries', then the wave's.
    let (gw, gd) = (gates(&fine), gates(&bad));
    assert_eq!(gw.len(), k + 1, "{gw:?}{}", context());
    assert_eq!(gw, gd, "{}", context());
    assert_eq!(gw[0]["verdict"], "pass", "{}", gw[0]);
    // The canary gate judged every group, each shard's and the other's.
    let judged: std::collections::BTreeSet<&str> = gw[0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        judged,
        ["loop-a/db", "loop-a/web", "loop-b/db", "loop-b/web"]
            .into_iter()
            .collect(),
        "{}",
        gw[0]
    );
    assert_eq!(gw[k]["verdict"], "pause", "{}", gw[k]);
    let reasons = gw[k]["reasons"].to_string();
    assert!(
        reasons.contains(victim) && reasons.contains("io_latency_p99_ms"),
        "{reasons}"
    );
    // No host of a later stage was touched, in either shard: at most read as a control.
    untouched_after(&lab, &stages, k);
    // Every host of the first two stages was updated, by its own shard's controller.
    for (_, hosts) in &stages[..=k] {
        for h in hosts {
            assert_eq!(lab.kernel(h), TARGET, "{h}");
            assert_eq!(lab.reboots(h), 1, "{h}");
        }
    }
    // One approval of the kernel for the whole fleet, by whichever shard wrote the verdict.
    let approvals: usize = [&fine, &bad]
        .iter()
        .map(|d| {
            text(&d.join("alerts.jsonl"))
                .matches("canary_approved")
                .count()
        })
        .sum();
    assert_eq!(approvals, 1, "{}", context());
    // `rollout status` in either shard's directory shows every shard, from the progress
    // each controller put in etcd: both paused at the same wave, with their own counts.
    let out = lab.fleetward(
        &[
            "rollout",
            "status",
            "--output",
            "json",
            "--state-dir",
            &bad.display().to_string(),
        ]
        .map(str::to_string),
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shards = st["shards"].as_array().unwrap_or_else(|| panic!("{st:#}"));
    let row = |s: &Value| {
        (
            s["shard"].as_str().unwrap().to_string(),
            s["phase"].as_str().unwrap().to_string(),
            s["stage"].as_str().unwrap_or("-").to_string(),
        )
    };
    let stage = stages[k].0.clone();
    assert_eq!(
        shards.iter().map(row).collect::<Vec<_>>(),
        [
            (
                "hardware=loop-a".to_string(),
                "paused".to_string(),
                stage.clone()
            ),
            ("hardware=loop-b".to_string(), "paused".to_string(), stage),
        ],
        "{st:#}"
    );
    let updated: u64 = shards.iter().map(|s| s["updated"].as_u64().unwrap()).sum();
    let through: usize = stages[..=k].iter().map(|(_, h)| h.len()).sum();
    assert_eq!(updated, through as u64, "{st:#}");

    // Each shard's controller resumes from its own state directory, leading its shard again
    // through etcd: both re-bake, and the wave is judged again over both, on fresh data
    // (a new attempt of the gate, not the verdict already written): paused again.
    let resume = |dir: &Path, extra: &[&str]| {
        let mut args: Vec<String> = ["rollout", "resume", "--state-dir"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.push(dir.display().to_string());
        args.extend(["--output", "json"].iter().map(|a| a.to_string()));
        args.extend(extra.iter().map(|a| a.to_string()));
        lab.fleetward(&args)
    };
    let both = |fine_extra: &[&str], bad_extra: &[&str]| {
        std::thread::scope(|sc| {
            let a = sc.spawn(|| resume(&fine, fine_extra));
            let b = sc.spawn(|| resume(&bad, bad_extra));
            (a.join().unwrap(), b.join().unwrap())
        })
    };
    let said = |o: &std::process::Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (oa, ob) = both(&[], &[]);
    assert_eq!(oa.status.code(), Some(2), "{}", said(&oa));
    assert_eq!(ob.status.code(), Some(2), "{}", said(&ob));
    assert!(
        said(&oa).contains("leading shard `hardware=loop-a`"),
        "{}",
        said(&oa)
    );
    let (gw, gd) = (gates(&fine), gates(&bad));
    assert_eq!(gw.len(), k + 2, "{gw:?}");
    assert_eq!(gw, gd);
    assert_eq!(gw[k + 1]["stage"], k);
    assert_eq!(gw[k + 1]["verdict"], "pause", "{}", gw[k + 1]);
    assert_ne!(
        gw[k + 1]["reasons"],
        gw[k]["reasons"],
        "the wave was judged again on its fresh bake, not on the first verdict's data"
    );
    // An operator accepts the gate in one shard only and resumes the other as it is: the
    // acceptance is the wave's verdict for both, and both go on to the last wave, judged
    // together once more. (Its controls are hosts updated earlier, the regressed ones among
    // them, so what it decides is the lab's noise; that both decide alike is the point.)
    let (oa, ob) = both(&[], &["--accept-gate"]);
    assert_eq!(
        oa.status.code(),
        ob.status.code(),
        "{}{}",
        said(&oa),
        said(&ob)
    );
    let (gw, gd) = (gates(&fine), gates(&bad));
    assert_eq!(gw, gd);
    assert_eq!(gw.len(), k + 4, "{gw:?}");
    assert_eq!(gw[k + 2]["stage"], k);
    assert_eq!(gw[k + 2]["verdict"], "pass");
    assert!(
        gw[k + 2]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("accepted by an operator"),
        "{}",
        gw[k + 2]
    );
    assert_eq!(gw[k + 3]["stage"], k + 1);
    for h in lab.names() {
        assert_eq!(lab.kernel(&h), TARGET, "{h}");
        assert_eq!(lab.reboots(&h), 1, "{h}");
    }
}

/// `rollout pause` of a sharded rollout, from any one shard's state directory, reaches every
/// shard's controller through etcd: both pause mid-bake, each says why; resumed, each from
/// its own directory, both finish, every host updated once.
#[test]
fn an_operators_pause_from_one_shard_pauses_every_shard_and_both_resume() {
    let etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    let (a_dir, b_dir) = operator_request(&lab, &etcd, "pause", 2, "paused");
    // Each resumed from its own directory: the pause left in etcd is cleared, not taken again.
    let resume = |dir: &Path| {
        lab.fleetward(&[
            "rollout".into(),
            "resume".into(),
            "--state-dir".into(),
            dir.display().to_string(),
            "--bake".into(),
            "0".into(),
            "--output".into(),
            "json".into(),
        ])
    };
    let (ra, rb) = std::thread::scope(|sc| {
        let x = sc.spawn(|| resume(&a_dir));
        let y = sc.spawn(|| resume(&b_dir));
        (x.join().unwrap(), y.join().unwrap())
    });
    for o in [&ra, &rb] {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(gates(&a_dir), gates(&b_dir));
    every_host_updated_once(&lab);
}

/// Two shards (`hardware=loop-a`, `loop-b`) baking their canaries (30 s bakes), then an
/// operator's `rollout VERB` from loop-a's directory: it ends with `code` once every shard's
/// controller took it, and so do both controllers, each journaling one `EVENT` (`paused`,
/// `aborted`) with the operator's reason (a pause's says who paused), mid-bake: no gate ran.
/// Returns both directories.
fn operator_request(
    lab: &Lab,
    etcd: &EtcdCluster,
    verb: &str,
    code: i32,
    event: &str,
) -> (PathBuf, PathBuf) {
    let base = lab.fleet.dir.path();
    let (a_dir, b_dir) = (base.join("loop-a"), base.join("loop-b"));
    let (a_out, b_out) = (base.join("loop-a.jsonl"), base.join("loop-b.jsonl"));
    let mut a = of_shard(lab, etcd, "hardware=loop-a", &a_dir, &a_out, 30);
    let mut b = of_shard(lab, etcd, "hardware=loop-b", &b_dir, &b_out, 30);
    let context = || said_by(&[("loop-a", &a_out), ("loop-b", &b_out)]);
    wait_for(
        Duration::from_secs(120),
        "both shards bake the canaries",
        || count(&a_dir, "bake_started") >= 1 && count(&b_dir, "bake_started") >= 1,
        context,
    );
    let asked = std::time::Instant::now();
    let o = lab.fleetward(&[
        "rollout".into(),
        verb.into(),
        "--state-dir".into(),
        a_dir.display().to_string(),
        "--reason".into(),
        "a drill".into(),
        "--wait".into(),
        "60".into(),
        "--output".into(),
        "json".into(),
    ]);
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(code), "{said}{}", context());
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    eprintln!("both {event} {:?} after the request", asked.elapsed());
    assert_eq!(sa.code(), Some(code), "{}", context());
    assert_eq!(sb.code(), Some(code), "{}", context());
    for d in [&a_dir, &b_dir] {
        let ended: Vec<Value> = journal(d)
            .into_iter()
            .filter(|r| r["event"]["type"] == event)
            .collect();
        assert_eq!(ended.len(), 1, "{}", context());
        assert!(
            ended[0]["event"]["reason"]
                .as_str()
                .is_some_and(|r| r == "paused by an operator: a drill" || r == "a drill"),
            "{}{}",
            ended[0],
            context()
        );
        // Mid-bake: the canaries' gate never ran.
        assert_eq!(count(d, "gate_evaluated"), 0, "{}", context());
    }
    (a_dir, b_dir)
}

/// An abort from one shard's directory aborts every shard: both controllers exit aborted
/// mid-bake, every shard's progress in etcd says so, and a resume is refused.
#[test]
fn an_operators_abort_from_one_shard_aborts_every_shard() {
    let etcd = EtcdCluster::start(3);
    let lab = Lab::new(8, &[NO_BENCH]);
    let (a_dir, b_dir) = operator_request(&lab, &etcd, "abort", 3, "aborted");
    let out = lab.fleetward(&[
        "rollout".into(),
        "status".into(),
        "--output".into(),
        "json".into(),
        "--state-dir".into(),
        b_dir.display().to_string(),
    ]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    let phases: Vec<&str> = st["shards"]
        .as_array()
        .unwrap_or_else(|| panic!("{st:#}"))
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["aborted", "aborted"], "{st:#}");
    let o = lab.fleetward(&[
        "rollout".into(),
        "resume".into(),
        "--state-dir".into(),
        a_dir.display().to_string(),
    ]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Chaos over ten shards (`cell=c0` … `c9`, a fact; two hosts each, every rack shared by two
/// shards under the shipped `rack: #{ in_flight: 1 }`), each with a leader and a standby: a
/// random controller is killed (SIGKILL) every 2–4 s, ten times, and replaced by a new
/// standby. Checked from the union of the journals: every shard's controllers agree record
/// for record, every host was updated and rebooted exactly once, every shard journaled the
/// same verdicts, no host of a stage started before every host of the stage before it was
/// through (across all shards), and no two hosts of one rack were ever in flight together.
#[test]
fn chaos_random_kills_over_ten_shards_break_no_invariant() {
    const SHARDS: usize = 10;
    let etcd = EtcdCluster::start(3);
    let lab = Lab::new(2 * SHARDS, &[NO_BENCH]);
    // Host i is in cell i % 10 (a fact); hosts 2j and 2j+1 (two shards) share rack j.
    let inv = std::fs::read_to_string(&lab.inventory).unwrap();
    let mut i = 0;
    let mut rack_of = std::collections::BTreeMap::new();
    let lines: Vec<String> = inv
        .lines()
        .map(|l| {
            let Some(at) = l.find("rack = \"r") else {
                return l.to_string();
            };
            let rest = &l[at + "rack = \"".len()..];
            let end = rest.find('"').unwrap();
            let name = l.split('"').nth(1).unwrap().to_string();
            let rack = format!("r{:02}", i / 2);
            rack_of.insert(name, rack.clone());
            let out = format!("{}rack = \"{rack}{}", &l[..at], &rest[end..]).replace(
                "facts = { bmc = ",
                &format!("facts = {{ cell = \"c{}\", bmc = ", i % SHARDS),
            );
            i += 1;
            out
        })
        .collect();
    assert_eq!(i, 2 * SHARDS, "{inv}");
    let text_inv = lines.join("\n") + "\n";
    assert_eq!(
        text_inv.matches("cell = ").count(),
        2 * SHARDS,
        "{text_inv}"
    );
    std::fs::write(&lab.inventory, text_inv).unwrap();
    let base = lab.fleet.dir.path().to_path_buf();
    let mut rng = crate::rollout::Rng::new(
        std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(31),
    );
    // Per shard: its controllers' state directories, and those running.
    let mut dirs: Vec<Vec<PathBuf>> = vec![Vec::new(); SHARDS];
    let mut running: Vec<Vec<(Child, PathBuf)>> = (0..SHARDS).map(|_| Vec::new()).collect();
    let mut done = [false; SHARDS];
    let spawn = |shard: usize, n: usize| {
        let dir = base.join(format!("c{shard}-{n}"));
        let out = base.join(format!("c{shard}-{n}.jsonl"));
        let child = of_shard(&lab, &etcd, &format!("cell=c{shard}"), &dir, &out, 0);
        (child, dir)
    };
    let said = |dirs: &[Vec<PathBuf>]| {
        let mut s = String::new();
        for d in dirs.iter().flatten() {
            let out = d.with_extension("jsonl");
            s.push_str(&format!(
                "\n--- {} ---\n{}{}",
                d.display(),
                text(&out)
                    .lines()
                    .filter(|l| l.contains("\"note\"") || l.contains("\"status\""))
                    .collect::<Vec<_>>()
                    .join("\n"),
                text(&out.with_extension("err"))
            ));
        }
        s
    };
    let started = Instant::now();
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_secs(3);
    while done.iter().any(|d| !d) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the rollout did not finish within 10 min{}",
            said(&dirs)
        );
        for s in 0..SHARDS {
            // Reap: a controller that ended by itself ended its shard (0: completed, or the
            // completed rollout reported by a standby), or lost its lease.
            let mut k = 0;
            while k < running[s].len() {
                if let Some(status) = running[s][k].0.try_wait().unwrap() {
                    let (_, dir) = running[s].remove(k);
                    if status.code() == Some(0) {
                        done[s] = true;
                    } else {
                        let out = text(&dir.with_extension("jsonl"));
                        let last = out
                            .lines()
                            .rev()
                            .find(|l| l.contains("\"status\"") || l.contains("\"note\""));
                        eprintln!(
                            "{} ended with {status}: {}{}",
                            dir.display(),
                            last.unwrap_or(""),
                            text(&dir.with_extension("err"))
                        );
                    }
                } else {
                    k += 1;
                }
            }
            // Two controllers per shard while it runs: a leader and a standby.
            while !done[s] && running[s].len() < 2 {
                let (c, d) = spawn(s, dirs[s].len());
                dirs[s].push(d.clone());
                running[s].push((c, d));
            }
        }
        if kills < 10 && Instant::now() >= next_kill {
            let live: Vec<usize> = (0..SHARDS).filter(|s| !done[*s]).collect();
            if !live.is_empty() {
                let s = live[(rng.next() % live.len() as u64) as usize];
                let k = (rng.next() % running[s].len() as u64) as usize;
                let (mut c, d) = running[s].remove(k);
                c.kill().unwrap(); // SIGKILL
                c.wait().unwrap();
                eprintln!("chaos: killed {} at {:?}", d.display(), started.elapsed());
                kills += 1;
            }
            next_kill = Instant::now() + Duration::from_millis(2000 + rng.next() % 2000);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (mut c, _) in running.into_iter().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
    eprintln!(
        "chaos: {kills} controllers killed; the rollout over {SHARDS} shards finished in {:?}",
        started.elapsed()
    );
    assert!(kills >= 5, "too few kills to mean anything: {kills}");
    // Each shard's journal: the longest of its controllers', every other a prefix of it.
    let mut finals = Vec::new();
    for s in 0..SHARDS {
        let js: Vec<Vec<Value>> = dirs[s].iter().map(|d| journal(d)).collect();
        let longest = js.iter().max_by_key(|j| j.len()).unwrap().clone();
        for j in &js {
            assert_eq!(
                &longest[..j.len()],
                &j[..],
                "shard c{s}: two controllers' journals disagree{}",
                said(&dirs)
            );
        }
        assert!(
            longest.iter().any(|r| r["event"]["type"] == "completed"),
            "shard c{s} did not complete{}",
            said(&dirs)
        );
        finals.push(longest);
    }
    // No double reboot, no skipped host.
    every_host_updated_once(&lab);
    // The same verdicts in every shard.
    let verdicts = |j: &[Value]| -> Vec<Value> {
        j.iter()
            .filter(|r| r["event"]["type"] == "gate_evaluated")
            .map(|r| r["event"].clone())
            .collect()
    };
    for j in &finals[1..] {
        assert_eq!(verdicts(j), verdicts(&finals[0]));
    }
    // No stage before its gate: each stage's first step, in any shard, after the last host of
    // the stage before it was through, in every shard.
    let at = |r: &Value| {
        r["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let mut stage_of = std::collections::BTreeMap::new();
    for j in &finals {
        let plan = j.iter().find(|r| r["event"]["type"] == "started").unwrap();
        for st in plan["event"]["stages"].as_array().unwrap() {
            for h in st["hosts"].as_array().unwrap() {
                stage_of.insert(
                    h.as_str().unwrap().to_string(),
                    st["index"].as_u64().unwrap(),
                );
            }
        }
    }
    let mut first_step: std::collections::BTreeMap<u64, jiff::Timestamp> = Default::default();
    let mut last_done: std::collections::BTreeMap<u64, jiff::Timestamp> = Default::default();
    for r in finals.iter().flatten() {
        let Some(h) = r["event"]["host"].as_str() else {
            continue;
        };
        let st = stage_of[h];
        match r["event"]["type"].as_str().unwrap() {
            "step_started" => {
                let e = first_step.entry(st).or_insert(at(r));
                *e = (*e).min(at(r));
            }
            "host_done" => {
                let e = last_done.entry(st).or_insert(at(r));
                *e = (*e).max(at(r));
            }
            _ => {}
        }
    }
    for (st, t) in &first_step {
        if *st == 0 {
            continue;
        }
        let prev = last_done[&(st - 1)];
        assert!(
            prev < *t,
            "stage {st} started at {t}, before stage {} was through ({prev})",
            st - 1
        );
    }
    // No rack's limit of 1 exceeded, across shards and controllers.
    let mut spans = Vec::new();
    for shard in &dirs {
        let d = shard.iter().max_by_key(|d| journal(d).len()).unwrap();
        spans.extend(in_flight(d));
    }
    assert_eq!(spans.len(), 2 * SHARDS, "{spans:?}");
    for (i, (h, a0, a1)) in spans.iter().enumerate() {
        for (g, b0, b1) in &spans[i + 1..] {
            if rack_of[h] == rack_of[g] {
                assert!(
                    a1 < b0 || b1 < a0,
                    "{h} ({a0} to {a1}) and {g} ({b0} to {b1}) share a rack and were in flight together"
                );
            }
        }
    }
}

/// Finding (`bench shards`, its first run with a kill): a standby that took a shard over in
/// the middle of a stage had none of the stage's before window, which only its dead
/// predecessor's state directory held, so the stage's gate had no data for the shard's hosts
/// and paused inconclusive in every shard. A shard's controller now keeps its sample files
/// in etcd as it writes them, and the next leader restores those of the stage in progress.
///
/// This runs the benchmark itself over the 3-member cluster: 2,000 simulated hosts in four
/// shards, a controller process each, the first shard's leader killed (SIGKILL) once a host
/// of stage 2 is done, and its standby finishing the shard.
#[test]
fn a_standby_taking_over_mid_stage_has_the_stages_windows_and_every_shard_completes() {
    let etcd = EtcdCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["--output", "json", "bench", "shards", "--hosts", "2000"])
        .args(["--shards", "4", "--workers", "2", "--kill-at-stage", "2"])
        .args(["--lease-ttl", &TTL_SECS.to_string()])
        .args(["--etcd", &etcd.endpoints().join(",")])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let r: Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(r["problems"], serde_json::json!([]), "{r:#}");
    assert!(out.status.success(), "{r:#}");
    let roles: Vec<(&str, &str, &str)> = r["controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["shard"].as_str().unwrap(),
                c["role"].as_str().unwrap(),
                c["phase"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("datacenter=ams1", "killed", "-"),
            ("datacenter=ams1", "standby", "completed"),
            ("datacenter=iad2", "leader", "completed"),
            ("datacenter=sjc3", "leader", "completed"),
            ("datacenter=fra1", "leader", "completed"),
        ]
    );
    assert!(r["takeover_secs"].as_f64().is_some(), "{r:#}");
    assert_eq!(r["updated"], r["planned"], "{r:#}");
    assert!(r["planned"].as_u64().unwrap() > 1900, "{r:#}");
    assert!(r["gates"].as_u64().unwrap() > 4, "{r:#}");
    assert_eq!(r["verdicts_agree"], true);
    // The standby judged the stage on the very window its predecessor recorded.
    let state = dir.path().join("state");
    let before = |d: &str| std::fs::read(state.join(d).join("stage-02.before.csv")).unwrap();
    assert_eq!(
        before("datacenter-ams1-standby"),
        before("datacenter-ams1"),
        "the restored before window differs"
    );
    // Gate parts travel compressed.
    let (json, sent) = (
        r["gate_json_bytes"].as_u64().unwrap(),
        r["gate_sent_bytes"].as_u64().unwrap(),
    );
    assert!(
        sent > 0 && sent * 3 < json,
        "{json} bytes of JSON sent as {sent}"
    );
}
