//! `fleetward drift` over real sshd hosts (the rollout tests' stand-ins): every kind of drift
//! seeded on disk, found by one facts round trip per host, fixed only where safe, queued for
//! review otherwise; plus the example fleet in simulation against golden files.

use crate::rollout::Lab;
use crate::support::{code, root, run, stdout};
use expect_test::expect_file;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENTRY: &str = "Advanced options for Ubuntu>Ubuntu, with Linux 6.8.0-40-generic";
const APP_CONF: &str = "listen 8080\n";

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn login_group() -> String {
    let o = Command::new("id")
        .args(["-gn", crate::sshd::USER])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn write(root: &Path, path: &str, body: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// A host in its declared state.
fn conform(state: &Path) {
    let r = state.join("root");
    write(&r, "/boot/grub/grubenv", &format!("saved_entry={ENTRY}\n"));
    write(
        &r,
        "/proc/cmdline",
        "BOOT_IMAGE=/vmlinuz-6.8.0-40-generic root=/dev/md0 ro quiet\n",
    );
    write(
        &r,
        "/proc/cpuinfo",
        "processor\t: 0\nmicrocode\t: 0x2b000590\n",
    );
    write(&r, "/proc/sys/net/core/somaxconn", "4096\n");
    write(&r, "/proc/sys/vm/swappiness", "10\n");
    write(
        &r,
        "/etc/sysctl.d/10-base.conf",
        "net.core.somaxconn = 4096\nvm.swappiness = 10\n",
    );
    write(
        &r,
        "/proc/modules",
        "tcp_bbr 20480 3 - Live 0x0000000000000000\n",
    );
    write(&r, "/etc/modprobe.d/blacklist.conf", "blacklist floppy\n");
    write(
        &r,
        "/var/lib/standin/packages",
        "chrony 4.5-1ubuntu4.1\nopenssh-server 1:9.6p1-3ubuntu13.5\n",
    );
    write(&r, "/var/lib/standin/services", "chrony enabled active\n");
    write(&r, "/etc/app.conf", APP_CONF);
    std::fs::set_permissions(
        r.join("etc/app.conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // The stand-in runs as the login user: it owns its host's files, as root owns a real host's.
    let ok = Command::new("chown")
        .args(["-R", &format!("{}:", crate::sshd::USER)])
        .arg(state)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn declared(group: &str) -> String {
    format!(
        r#"[all]
kernel = "6.8.0-40-generic"
boot_entry = "{ENTRY}"
cmdline = "root=/dev/md0 ro quiet"
microcode = "0x2b000590"
sysctl = {{ "net.core.somaxconn" = 4096, "vm.swappiness" = 10 }}
modules = {{ loaded = ["tcp_bbr"], blacklisted = ["floppy"] }}
packages = {{ chrony = "4.5-1ubuntu4.1", "openssh-server" = "1:9.6p1-3ubuntu13.5" }}
services.chrony = {{ enabled = true, active = true }}

[all.files."/etc/app.conf"]
sha256 = "{}"
mode = "0644"
owner = "{}:{group}"
"#,
        sha256_hex(APP_CONF.as_bytes()),
        crate::sshd::USER
    )
}

struct DriftLab {
    lab: Lab,
    state: PathBuf,
}

impl DriftLab {
    fn args(&self, sub: &[&str], extra: &[&str]) -> Vec<String> {
        let d = self.lab.fleet.dir.path();
        let mut v: Vec<String> = vec!["drift".into()];
        v.extend(sub.iter().map(|s| s.to_string()));
        for (k, val) in [
            ("--policy-dir", self.lab.policies.display().to_string()),
            ("--inventory", self.lab.inventory.display().to_string()),
            ("--state-dir", self.state.display().to_string()),
            ("--ssh-key", self.lab.fleet.client_key.display().to_string()),
            (
                "--known-hosts",
                self.lab.fleet.known_hosts.display().to_string(),
            ),
            (
                "--ssh-config",
                d.join("no-ssh-config").display().to_string(),
            ),
            ("--timeout", "20".into()),
            ("--output", "json".into()),
        ] {
            v.push(k.into());
            v.push(val);
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn drift(&self, sub: &[&str], extra: &[&str]) -> (i32, Value) {
        let o = self.lab.fleetward(&self.args(sub, extra));
        let out = stdout(&o);
        let v: Value = serde_json::from_str(out.lines().last().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{e}: {out}\n{}", crate::support::stderr(&o)));
        (code(&o), v)
    }

    fn root(&self, host: &str) -> PathBuf {
        self.lab.host_dir(host).join("root")
    }

    fn read(&self, host: &str, path: &str) -> String {
        std::fs::read_to_string(self.root(host).join(path.trim_start_matches('/')))
            .unwrap_or_default()
    }

    /// Every file under every host's root, with its content and mode.
    fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    walk(&e.path(), out);
                } else {
                    let body = std::fs::read(e.path()).unwrap_or_default();
                    out.insert(e.path(), (body, m.permissions().mode()));
                }
            }
        }
        let mut out = BTreeMap::new();
        for h in self.lab.names() {
            walk(&self.root(&h), &mut out);
        }
        out
    }

    fn commands(&self, host: &str) -> Vec<String> {
        self.lab
            .commands(host)
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }
}

/// `(host, subject, class)` of every finding in an audit.
fn findings(v: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for h in v["hosts"].as_array().unwrap() {
        for f in h["findings"].as_array().unwrap() {
            let mut subject = f["kind"].as_str().unwrap().to_string();
            for k in ["key", "field"] {
                let s = f[k].as_str().unwrap();
                if !s.is_empty() {
                    subject.push(' ');
                    subject.push_str(s);
                }
            }
            out.insert((
                h["host"].as_str().unwrap().to_string(),
                subject,
                f["class"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn every_kind_of_drift_is_found_and_only_safe_items_are_fixed_over_real_ssh() {
    let lab = Lab::new(8, &[]);
    let state = lab.fleet.dir.path().join("drift-state");
    std::fs::write(lab.policies.join("declared.toml"), declared(&login_group())).unwrap();
    // One acknowledged item, until the end of January 2027.
    let drift_rhai = lab.policies.join("drift.rhai");
    let text = std::fs::read_to_string(&drift_rhai).unwrap();
    let text = text.replace(
        "const ACKNOWLEDGED = [",
        "const ACKNOWLEDGED = [\n    #{ host: \"host05\", kind: \"sysctl\", key: \"vm.swappiness\", reason: \"OPS-1: swap test\", expires: \"2027-01-31\" },",
    );
    std::fs::write(&drift_rhai, text).unwrap();
    for h in lab.names() {
        conform(&lab.host_dir(&h));
    }
    let dl = DriftLab { lab, state };
    let r = |h: &str| dl.root(h);

    // Seed drift of every kind.
    // host00: sysctls (raise is safe, lowering is not, an unpersisted value is fixed on disk).
    write(&r("host00"), "/proc/sys/net/core/somaxconn", "128\n");
    write(&r("host00"), "/proc/sys/vm/swappiness", "60\n");
    write(
        &r("host00"),
        "/etc/sysctl.d/10-base.conf",
        "vm.swappiness = 10\n",
    );
    // host01: a module to load (its modprobe will hang, then fail) after a sysctl raise; a
    // blacklisted module that is loaded, and its blacklist entry gone.
    write(&r("host01"), "/proc/sys/net/core/somaxconn", "1024\n");
    write(
        &r("host01"),
        "/proc/modules",
        "floppy 20480 0 - Live 0x0000000000000000\n",
    );
    std::fs::remove_file(r("host01").join("etc/modprobe.d/blacklist.conf")).unwrap();
    // host02: an upgrade (safe), a downgrade (not), a stopped and disabled service.
    write(
        &r("host02"),
        "/var/lib/standin/packages",
        "chrony 4.5-1ubuntu4\nopenssh-server 1:9.6p1-3ubuntu13.6\n",
    );
    write(
        &r("host02"),
        "/var/lib/standin/services",
        "chrony disabled inactive\n",
    );
    // host03: a file with a loose mode (safe) and changed content (not).
    write(&r("host03"), "/etc/app.conf", "listen 0.0.0.0:8080\n");
    std::fs::set_permissions(
        r("host03").join("etc/app.conf"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    // host04: boot state and ownership (all for review).
    write(
        &r("host04"),
        "/proc/cmdline",
        "root=/dev/md0 ro quiet mitigations=off\n",
    );
    write(
        &r("host04"),
        "/boot/grub/grubenv",
        "saved_entry=Ubuntu, with Linux 6.8.0-31-generic\n",
    );
    write(&r("host04"), "/proc/cpuinfo", "microcode\t: 0x2b000461\n");
    std::fs::write(
        dl.lab.host_dir("host04").join("kernel"),
        "6.8.0-31-generic\n",
    )
    .unwrap();
    Command::new("chown")
        .args(["root:root"])
        .arg(r("host04").join("etc/app.conf"))
        .status()
        .unwrap();
    // host05: acknowledged drift, and a fact that cannot be read.
    write(&r("host05"), "/proc/sys/vm/swappiness", "30\n");
    let cmdline = r("host05").join("proc/cmdline");
    Command::new("chown")
        .args(["root:root"])
        .arg(&cmdline)
        .status()
        .unwrap();
    std::fs::set_permissions(&cmdline, std::fs::Permissions::from_mode(0o600)).unwrap();
    // host06, host07: clean.

    let before_logs: BTreeMap<String, usize> = dl
        .lab
        .names()
        .iter()
        .map(|h| (h.clone(), dl.commands(h).len()))
        .collect();
    let (c, audit) = dl.drift(&["audit"], &[]);
    assert_eq!(c, 2, "{audit}");
    let want = set(&[
        ("host00", "sysctl net.core.somaxconn runtime", "auto"),
        ("host00", "sysctl net.core.somaxconn persisted", "auto"),
        ("host00", "sysctl vm.swappiness runtime", "review"),
        ("host01", "sysctl net.core.somaxconn runtime", "auto"),
        ("host01", "module tcp_bbr loaded", "auto"),
        ("host01", "module floppy loaded", "review"),
        ("host01", "module floppy blacklisted", "review"),
        ("host02", "package chrony version", "auto"),
        ("host02", "package openssh-server version", "review"),
        ("host02", "service chrony enabled", "auto"),
        ("host02", "service chrony active", "auto"),
        ("host03", "file /etc/app.conf mode", "auto"),
        ("host03", "file /etc/app.conf sha256", "review"),
        ("host04", "kernel", "review"),
        ("host04", "boot_entry", "review"),
        ("host04", "cmdline", "review"),
        ("host04", "microcode", "review"),
        ("host04", "file /etc/app.conf owner", "review"),
        ("host05", "sysctl vm.swappiness runtime", "acknowledged"),
        ("host05", "cmdline", "unknown"),
    ]);
    assert_eq!(findings(&audit), want, "{audit:#}");
    let s = &audit["summary"];
    assert_eq!(s["hosts"], 8);
    assert_eq!(s["clean"], 2, "{s}");
    assert_eq!(s["unknown"], 1);
    // One SSH round trip per host for the whole audit.
    for h in dl.lab.names() {
        let log = dl.commands(&h);
        assert_eq!(log.len() - before_logs[&h], 1, "{h}: {log:?}");
        assert!(log.last().unwrap().starts_with("sh -c "), "{log:?}");
    }
    // Review items are queued with their reasons; hosts with review or unreadable facts held.
    let queue: Value = serde_json::from_str(
        &std::fs::read_to_string(dl.state.join("drift/review-queue.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(queue["items"].as_array().unwrap().len(), 10);
    assert!(queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| !i["reason"].as_str().unwrap().is_empty()));
    let held: BTreeSet<&str> = queue["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        held,
        ["host00", "host01", "host02", "host03", "host04", "host05"].into()
    );

    // The plan leaves held hosts out, saying why.
    let plan = run(&[
        "plan",
        "--policy-dir",
        dl.lab.policies.to_str().unwrap(),
        "--inventory",
        dl.lab.inventory.to_str().unwrap(),
        "--drift-queue",
        dl.state.join("drift/review-queue.json").to_str().unwrap(),
        "--output",
        "json",
    ]);
    let p: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let drift_excluded: BTreeSet<&str> = p["plan"]["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "drift")
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(drift_excluded, held);
    assert_eq!(p["plan"]["counts"]["eligible"], 2, "{p}");

    // A dry run shows the exact commands and changes nothing on any host.
    let snap = dl.snapshot();
    let (c, dry) = dl.drift(&["remediate"], &[]);
    assert_eq!(c, 2);
    assert_eq!(dry["dry_run"], true);
    let fixes: BTreeMap<&str, Vec<Vec<String>>> = dry["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["host"].as_str().unwrap(),
                serde_json::from_value(f["commands"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fixes.keys().copied().collect::<Vec<_>>(),
        ["host00", "host01", "host02", "host03"]
    );
    assert_eq!(
        fixes["host01"],
        [
            vec!["sysctl", "-w", "net.core.somaxconn=4096"],
            vec!["modprobe", "--", "tcp_bbr"]
        ]
    );
    assert_eq!(
        fixes["host03"],
        [vec!["chmod", "0644", "--", "/etc/app.conf"]]
    );
    assert_eq!(dl.snapshot(), snap, "a dry run changed a host");
    for h in dl.lab.names() {
        assert!(
            dl.commands(&h).iter().all(|c| c.starts_with("sh -c ")),
            "{h} ran a fix in a dry run"
        );
    }

    // Apply, with host01's modprobe hanging; while it hangs, `drift.rhai` is rewritten to
    // "fix" everything. The run must keep to the decisions it started with.
    dl.lab.fault("host01", "fault-hang-modprobe", "");
    let child = Command::new(crate::support::bin())
        .args(dl.args(&["remediate"], &["--apply"]))
        .env("XDG_STATE_HOME", crate::support::state_home())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dl
        .commands("host01")
        .iter()
        .any(|c| c.starts_with("modprobe"))
    {
        assert!(Instant::now() < deadline, "modprobe never ran on host01");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(
        &drift_rhai,
        "fn classify(item) { auto(\"everything\", [[\"touch\", \"/tmp/fleetward-edited-policy-ran\"], [\"sysctl\", \"-w\", `${item.key}=${item.declared}`]]) }\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(dl.lab.host_dir("host01").join("fault-hang-modprobe")).unwrap();
    let out = child.wait_with_output().unwrap();
    let applied: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(2), "{applied}");
    let results: BTreeMap<&str, &Value> = applied["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["host"].as_str().unwrap(), r))
        .collect();
    for h in ["host00", "host02", "host03"] {
        assert_eq!(results[h]["converged"], true, "{h}: {}", results[h]);
    }
    // host01 failed partway: its sysctl ran, its modprobe failed; the others carried on.
    let r01 = results["host01"];
    assert_eq!(r01["converged"], false);
    assert!(
        r01["failed"].as_str().unwrap().contains("modprobe"),
        "{r01}"
    );
    assert_eq!(r01["runs"][0]["status"], 0);
    assert_eq!(
        dl.read("host01", "/proc/sys/net/core/somaxconn").trim(),
        "4096"
    );
    let log: Vec<Value> = std::fs::read_to_string(dl.state.join("drift/remediation.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(log
        .iter()
        .any(|l| l["outcome"]["host"] == "host01" && l["outcome"]["failed"].is_string()));

    // Safe items fixed on the hosts themselves ...
    assert_eq!(
        dl.read("host00", "/proc/sys/net/core/somaxconn").trim(),
        "4096"
    );
    assert_eq!(
        dl.read(
            "host00",
            "/etc/sysctl.d/99-zz-fleetward-net.core.somaxconn.conf"
        ),
        "net.core.somaxconn = 4096\n"
    );
    assert!(dl
        .read("host02", "/var/lib/standin/packages")
        .contains("chrony 4.5-1ubuntu4.1"));
    assert!(dl
        .read("host02", "/var/lib/standin/services")
        .contains("chrony enabled active"));
    let mode = std::fs::metadata(r("host03").join("etc/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // ... review items untouched, and nothing from the edited policy ran anywhere.
    assert_eq!(dl.read("host00", "/proc/sys/vm/swappiness").trim(), "60");
    assert!(dl.read("host01", "/proc/modules").contains("floppy"));
    assert!(dl
        .read("host02", "/var/lib/standin/packages")
        .contains("openssh-server 1:9.6p1-3ubuntu13.6"));
    assert_eq!(dl.read("host03", "/etc/app.conf"), "listen 0.0.0.0:8080\n");
    assert_eq!(
        dl.read("host04", "/proc/cmdline"),
        "root=/dev/md0 ro quiet mitigations=off\n"
    );
    for h in dl.lab.names() {
        assert!(
            !dl.commands(&h).iter().any(|c| c.starts_with("touch")),
            "{h}"
        );
    }

    // A fresh audit (with the shipped policy back): the fixed items are gone, the review
    // items and host01's unfinished module remain.
    std::fs::copy(root().join("policies/drift.rhai"), &drift_rhai).unwrap();
    let text = std::fs::read_to_string(&drift_rhai).unwrap().replace(
        "const ACKNOWLEDGED = [",
        "const ACKNOWLEDGED = [\n    #{ host: \"host05\", kind: \"sysctl\", key: \"vm.swappiness\", reason: \"OPS-1: swap test\", expires: \"2027-01-31\" },",
    );
    std::fs::write(&drift_rhai, text).unwrap();
    let (c, after) = dl.drift(&["audit"], &["--as-of", "2026-12-01"]);
    assert_eq!(c, 2);
    let mut want_after: BTreeSet<_> = want
        .iter()
        .filter(|(_, _, class)| class != "auto")
        .cloned()
        .collect();
    want_after.insert((
        "host01".into(),
        "module tcp_bbr loaded".into(),
        "auto".into(),
    ));
    assert_eq!(findings(&after), want_after, "{after:#}");

    // After its expiry the acknowledged item comes back, for review.
    let (_, later) = dl.drift(&["audit"], &["--as-of", "2027-02-01"]);
    assert!(findings(&later).contains(&(
        "host05".into(),
        "sysctl vm.swappiness runtime".into(),
        "review".into()
    )));
    let h5 = later["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "host05")
        .unwrap();
    let f = h5["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "sysctl")
        .unwrap();
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("acknowledgement expired on 2027-01-31"),
        "{f}"
    );

    // A rollout started with the review queue leaves the held hosts alone and says so.
    let queue_path = dl.state.join("drift/review-queue.json");
    let mut started = dl
        .lab
        .start(&["--drift-queue", queue_path.to_str().unwrap()]);
    // Six hosts left in four groups are too few for the gates to judge (they call it
    // inconclusive and pause); the operator accepts each gate, as they would on a fleet this
    // small.
    for _ in 0..8 {
        if code(&started) != 2 {
            break;
        }
        let text = crate::support::stdout(&started);
        assert!(text.contains("\"verdict\":\"inconclusive\""), "{text}");
        started = dl.lab.resume(&["--accept-gate"]);
    }
    assert_eq!(
        code(&started),
        0,
        "{}\n{}",
        crate::support::stdout(&started),
        crate::support::stderr(&started)
    );
    let st = dl.lab.status();
    let held_now: BTreeSet<&str> = st["held_for_drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(held_now, held, "{st}");
    for h in &held {
        assert_eq!(dl.lab.reboots(h), 0, "{h} was rebooted although held");
    }
    for h in ["host06", "host07"] {
        assert_eq!(dl.lab.reboots(h), 1, "{h}");
    }
}

#[test]
fn bad_declared_state_and_drift_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("policies");
    std::fs::create_dir_all(&pol).unwrap();
    for f in [
        "drift.rhai",
        "rollout.rhai",
        "fleetward.toml",
        "declared.toml",
    ] {
        std::fs::copy(root().join("policies").join(f), pol.join(f)).unwrap();
    }
    let inv = root().join("policy-examples/fleet/fleet.toml");
    let good_sim = root().join("policy-examples/drift/simulated.toml");
    let bad_sim = dir.path().join("sim.toml");
    std::fs::write(&bad_sim, "unreachable = [\"nosuch\"]\n").unwrap();
    // Writes `file` (when given), audits, and expects exit 1 with `want` on stderr.
    let check = |file: Option<(&str, &str)>, sim: &Path, want: &str| {
        let saved = file.map(|(name, body)| {
            let old = std::fs::read(pol.join(name)).unwrap();
            std::fs::write(pol.join(name), body).unwrap();
            (name, old)
        });
        let o = run(&[
            "drift",
            "audit",
            "--policy-dir",
            pol.to_str().unwrap(),
            "--inventory",
            inv.to_str().unwrap(),
            "--simulate",
            sim.to_str().unwrap(),
            "--state-dir",
            dir.path().join("s").to_str().unwrap(),
        ]);
        if let Some((name, old)) = saved {
            std::fs::write(pol.join(name), old).unwrap();
        }
        assert_eq!(code(&o), 1, "{}", stdout(&o));
        let err = crate::support::stderr(&o);
        assert!(err.contains(want), "want `{want}` in:\n{err}");
    };
    let declared = |body| Some(("declared.toml", body));
    check(
        declared("[all]\nsysctl = { \"vm.swappiness\" = [1] }\n"),
        &good_sim,
        "declared.toml:2:",
    );
    check(
        declared("[al]\nkernel = \"x\"\n"),
        &good_sim,
        "declared.toml:1:2: unknown field `al`",
    );
    check(
        declared("[all.files.\"/etc/x\"]\nmode = \"rwx\"\n"),
        &good_sim,
        "mode `rwx` of `/etc/x` is not octal",
    );
    check(
        None,
        &bad_sim,
        "simulated host `nosuch` is not in the inventory",
    );
    // A policy that returns a shell line instead of argument lists.
    check(
        Some((
            "drift.rhai",
            "fn classify(item) { #{ action: \"auto\", reason: \"x\", commands: [\"sysctl -w a=b\"] } }\n",
        )),
        &good_sim,
        "drift.rhai",
    );
}

/// The example fleet in simulation: audit, dry run and apply, against golden files
/// (`UPDATE_EXPECT=1` regenerates them).
#[test]
fn example_fleet_drift_goldens() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let base = [
        "--inventory",
        "policy-examples/fleet/fleet.toml",
        "--simulate",
        "policy-examples/drift/simulated.toml",
        "--as-of",
        "2026-12-01",
        "--state-dir",
        state,
    ];
    let go = |args: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(base);
        let o = run(&v);
        (code(&o), stdout(&o))
    };
    let (c, audit) = go(&["drift", "audit"]);
    assert_eq!(c, 2);
    expect_file!["../golden/drift/audit.txt"].assert_eq(&audit.replace(state, "STATE"));
    let (c, json) = go(&["drift", "audit", "-o", "json"]);
    assert_eq!(c, 2);
    let v: Value = serde_json::from_str(&json).unwrap();
    expect_file!["../golden/drift/audit.json"].assert_eq(
        &(serde_json::to_string_pretty(&v)
            .unwrap()
            .replace(state, "STATE")
            + "\n"),
    );
    let (c, dry) = go(&["drift", "remediate"]);
    assert_eq!(c, 2);
    expect_file!["../golden/drift/remediate-dry-run.txt"].assert_eq(&dry.replace(state, "STATE"));
    let (c, applied) = go(&["drift", "remediate", "--apply"]);
    assert_eq!(c, 2, "review items remain");
    expect_file!["../golden/drift/remediate-apply.txt"].assert_eq(&applied.replace(state, "STATE"));
}
