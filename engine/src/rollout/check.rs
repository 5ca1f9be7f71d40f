//! The built-in validation checks a step may declare in place of a command: `kernel_log`,
//! `units`, `http` and `benchmark`. Each has a fixed host-side script ([`SCRIPT`], or the
//! signals collector for `kernel_log`) with its arguments passed as data, and a pure judge of
//! what the script printed.

use crate::exec::{Output, RemoteCommand};
use crate::signals::all_classes;
use serde::{Deserialize, Serialize};

/// The host side of `units`, `http` and `benchmark`, run as `sh -c SCRIPT fleetward-check KIND ARGS…`.
pub const SCRIPT: &str = include_str!("checks.sh");

/// `$0` of the checks script.
pub const ARGV0: &str = "fleetward-check";

/// The kinds a step command's `check` may name.
pub const KINDS: [&str; 5] = ["command", "kernel_log", "units", "http", "benchmark"];

/// A built-in check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// No kernel-log line of these classes since boot (read from the journal, else dmesg).
    KernelLog {
        #[serde(default = "all_classes")]
        classes: Vec<String>,
    },
    /// No failed systemd unit, and each named unit active.
    Units {
        #[serde(default)]
        active: Vec<String>,
    },
    /// `url`, fetched from the host itself (or from the controller), answers `status` (and
    /// contains `body_contains`).
    Http {
        url: String,
        #[serde(default = "ok_status")]
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_contains: Option<String>,
        #[serde(default, skip_serializing_if = "HttpFrom::is_host")]
        from: HttpFrom,
    },
    /// The micro-benchmark suites, `repeat` rounds, run before the update and again after it;
    /// the gate compares each host with itself (see [`super::bench`]).
    Benchmark {
        suites: Vec<String>,
        repeat: u32,
        /// Where the disk suite makes its temporary file.
        dir: String,
        /// The disk suite's file size, MiB.
        disk_mb: u32,
        /// The `iperf3` server of the network suite: `HOST` or `HOST:PORT` (default port 5201).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
}

fn ok_status() -> u16 {
    200
}

/// Who fetches an `http` check's URL: the host itself (with `curl` or `wget`, so the check
/// sees what the host's own clients see), or the controller (so it sees what the load
/// balancer sees, and the host needs neither tool).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpFrom {
    #[default]
    Host,
    Controller,
}

impl HttpFrom {
    fn is_host(&self) -> bool {
        *self == HttpFrom::Host
    }

    /// A policy's `from`, or why it is neither.
    pub fn parse(s: &str) -> Result<HttpFrom, String> {
        match s {
            "host" => Ok(HttpFrom::Host),
            "controller" => Ok(HttpFrom::Controller),
            _ => Err(format!("`from` `{s}` is neither `host` nor `controller`")),
        }
    }
}

/// Defaults of a `benchmark` check.
pub const BENCH_REPEAT: u32 = 5;
pub const BENCH_DIR: &str = "/var/tmp";
pub const BENCH_DISK_MB: u32 = 256;

/// The suites a benchmark runs when the policy names none: cpu, memory and disk, and network
/// when it names a peer.
pub fn default_suites(peer: bool) -> Vec<String> {
    let mut v: Vec<String> = ["cpu", "memory", "disk"].map(String::from).to_vec();
    if peer {
        v.push("network".into());
    }
    v
}

/// `HOST[:PORT]` as (host, port); a bracketed IPv6 address keeps its colons.
fn peer_parts(peer: &str) -> (String, String) {
    if let Some(rest) = peer.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            return (
                h.to_string(),
                p.strip_prefix(':').unwrap_or("5201").to_string(),
            );
        }
    }
    match peer.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.to_string()),
        _ => (peer.to_string(), "5201".to_string()),
    }
}

/// A protocol line `missing WHAT REASON`, as `REASON`.
fn missing(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("missing ")?;
        Some(rest.split_once(' ').map_or(rest, |(_, r)| r).to_string())
    })
}

impl Check {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Check::KernelLog { classes } => {
                if classes.is_empty() {
                    return Err("`kernel_log` names no `classes`".into());
                }
                crate::signals::check_classes(classes)
            }
            Check::Units { active } => match active.iter().find(|u| u.is_empty()) {
                Some(_) => Err("`units` names an empty unit".into()),
                None => Ok(()),
            },
            Check::Http { url, status, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "`http` needs an http:// or https:// `url`, not `{url}`"
                    ));
                }
                if !(100..=599).contains(status) {
                    return Err(format!("`status` `{status}` is not an HTTP status"));
                }
                Ok(())
            }
            Check::Benchmark {
                suites,
                repeat,
                dir,
                disk_mb,
                peer,
            } => {
                if suites.is_empty() {
                    return Err("`benchmark` names no `suites`".into());
                }
                if let Some(s) = suites
                    .iter()
                    .find(|s| !super::bench::SUITES.contains(&s.as_str()))
                {
                    return Err(format!(
                        "unknown benchmark suite `{s}` (known: {})",
                        super::bench::SUITES.join(", ")
                    ));
                }
                if !(1..=20).contains(repeat) {
                    return Err(format!("`repeat` `{repeat}` is not between 1 and 20"));
                }
                if !dir.starts_with('/') {
                    return Err(format!("`dir` `{dir}` is not an absolute path"));
                }
                if !(1..=65536).contains(disk_mb) {
                    return Err(format!("`disk_mb` `{disk_mb}` is not between 1 and 65536"));
                }
                let net = suites.iter().any(|s| s == "network");
                match peer {
                    None if net => {
                        Err("the `network` suite needs a `peer` (an iperf3 server)".into())
                    }
                    Some(p) if p.is_empty() || p.starts_with('-') => {
                        Err(format!("`peer` `{p}` is not a host name"))
                    }
                    Some(p) if !peer_parts(p).1.parse::<u16>().is_ok_and(|n| n > 0) => {
                        Err(format!("`peer` `{p}` has no valid port"))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// The one command the check sends; `timeout` bounds an HTTP fetch on the host.
    pub fn command(&self, timeout: u64) -> RemoteCommand {
        let script = |args: Vec<String>| {
            let mut argv = vec![
                "sh".to_string(),
                "-c".to_string(),
                SCRIPT.to_string(),
                ARGV0.to_string(),
            ];
            argv.extend(args);
            RemoteCommand { argv }
        };
        match self {
            Check::KernelLog { .. } => crate::signals::Request::default().command(),
            Check::Units { active } => script(
                std::iter::once("units".to_string())
                    .chain(active.iter().cloned())
                    .collect(),
            ),
            Check::Http { url, .. } => script(vec![
                "http".into(),
                url.clone(),
                // Leave the fetch a little less than the command's own timeout.
                timeout.saturating_sub(2).max(1).to_string(),
            ]),
            Check::Benchmark {
                suites,
                repeat,
                dir,
                disk_mb,
                peer,
            } => {
                let (host, port) = peer.as_deref().map(peer_parts).unwrap_or_default();
                let mut args = vec![
                    "benchmark".to_string(),
                    repeat.to_string(),
                    dir.clone(),
                    disk_mb.to_string(),
                    host,
                    if port.is_empty() { "5201".into() } else { port },
                ];
                // In the canonical order, so a host's two runs interleave the same way.
                args.extend(
                    super::bench::SUITES
                        .iter()
                        .filter(|s| suites.iter().any(|x| x == *s))
                        .map(|s| s.to_string()),
                );
                script(args)
            }
        }
    }

    /// A benchmark's results, or why it measured nothing usable; `None` for other checks.
    pub fn bench_results(&self, out: &Output) -> Option<Result<super::bench::Measured, String>> {
        let Check::Benchmark { suites, repeat, .. } = self else {
            return None;
        };
        Some(match self.judge(out) {
            Err(e) => Err(e),
            Ok(_) => super::bench::parse(&out.stdout, suites, *repeat),
        })
    }

    /// What the host printed, judged: a summary for the record, or why the check failed. A
    /// check that could not look (no journal and no dmesg, no systemd, no curl or wget)
    /// fails with the reason: it never passes on what it did not see.
    pub fn judge(&self, out: &Output) -> Result<String, String> {
        if !out.success() {
            let why = missing(&out.stdout).unwrap_or_else(|| {
                let t = format!("{}\n{}", out.stdout, out.stderr);
                t.trim().lines().last().unwrap_or("no output").to_string()
            });
            return Err(format!("exit status {}: {why}", out.status));
        }
        match self {
            Check::KernelLog { classes } => {
                let c =
                    crate::signals::parse(&out.stdout, 0.0, classes).map_err(|e| e.to_string())?;
                let Some(source) = &c.klog_source else {
                    let why = c
                        .missing
                        .iter()
                        .find_map(|m| m.strip_prefix("klog: "))
                        .unwrap_or("the collector printed no kernel-log counts");
                    return Err(format!("cannot read the kernel log: {why}"));
                };
                let found: Vec<String> = classes
                    .iter()
                    .filter_map(|k| {
                        let n = c.klog.get(k).copied().unwrap_or(0);
                        (n > 0).then(|| format!("{n} {k}"))
                    })
                    .collect();
                if found.is_empty() {
                    Ok(format!(
                        "kernel log clean since boot ({source}: {})",
                        classes.join(", ")
                    ))
                } else {
                    Err(format!(
                        "kernel log since boot ({source}) has {}",
                        found.join(", ")
                    ))
                }
            }
            Check::Units { active } => {
                script_output(&out.stdout).map_err(|why| format!("cannot check units: {why}"))?;
                let mut failed = Vec::new();
                let mut inactive = Vec::new();
                for l in out.stdout.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    match f.as_slice() {
                        ["failed", u] => failed.push(u.to_string()),
                        ["unit", u, s] if *s != "active" => inactive.push(format!("{u} is {s}")),
                        _ => {}
                    }
                }
                for u in active {
                    let seen = out.stdout.lines().any(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        matches!(f.as_slice(), ["unit", n, _] if n == u)
                    });
                    if !seen {
                        inactive.push(format!("{u} was not reported"));
                    }
                }
                let mut why = Vec::new();
                if !failed.is_empty() {
                    why.push(format!("failed units: {}", failed.join(", ")));
                }
                why.extend(inactive);
                if why.is_empty() {
                    Ok(if active.is_empty() {
                        "no failed units".into()
                    } else {
                        format!("no failed units; active: {}", active.join(", "))
                    })
                } else {
                    Err(why.join("; "))
                }
            }
            Check::Http {
                url,
                status,
                body_contains,
                ..
            } => {
                script_output(&out.stdout).map_err(|why| format!("`{url}`: {why}"))?;
                let (head, body) = out
                    .stdout
                    .split_once("\nbody\n")
                    .unwrap_or((out.stdout.as_str(), ""));
                let code = head
                    .lines()
                    .find_map(|l| l.strip_prefix("status "))
                    .and_then(|c| c.trim().parse::<u16>().ok());
                match code {
                    None => Err(format!("`{url}`: no HTTP status in the answer")),
                    Some(c) => judge_http(url, *status, body_contains.as_deref(), c, body),
                }
            }
            Check::Benchmark { suites, repeat, .. } => {
                if !out.stdout.starts_with(ARGV0) {
                    return Err(format!(
                        "not the checks script's output: `{}`",
                        out.stdout.lines().next().unwrap_or("")
                    ));
                }
                let r = super::bench::parse(&out.stdout, suites, *repeat)
                    .map_err(|why| format!("benchmark: {why}"))?;
                Ok(super::bench::summary(&r, None))
            }
        }
    }

    /// The URL the controller fetches itself, for an `http` check `from: "controller"`.
    pub fn controller_url(&self) -> Option<&str> {
        match self {
            Check::Http {
                url,
                from: HttpFrom::Controller,
                ..
            } => Some(url),
            _ => None,
        }
    }

    /// What the controller's own fetch found, judged like the host's.
    pub fn judge_answer(
        &self,
        got: Result<crate::probe::Answer, crate::probe::ProbeError>,
    ) -> Result<String, String> {
        let Check::Http {
            url,
            status,
            body_contains,
            ..
        } = self
        else {
            return Err(format!("{} is not fetched by the controller", self.label()));
        };
        match got {
            Err(e) => Err(format!("`{url}`: {e}")),
            Ok(a) => judge_http(url, *status, body_contains.as_deref(), a.status, &a.body)
                .map(|s| format!("{s} (from the controller)")),
        }
    }

    /// What the check looks at, for reports.
    pub fn label(&self) -> String {
        match self {
            Check::KernelLog { .. } => "kernel log".into(),
            Check::Units { active } if active.is_empty() => "systemd units".into(),
            Check::Units { active } => format!("systemd units ({})", active.join(", ")),
            Check::Http {
                url,
                from: HttpFrom::Controller,
                ..
            } => format!("GET {url} (from the controller)"),
            Check::Http { url, .. } => format!("GET {url}"),
            Check::Benchmark { suites, .. } => format!("benchmark ({})", suites.join(", ")),
        }
    }
}

/// An HTTP answer judged against what the check expects, wherever it was fetched.
fn judge_http(
    url: &str,
    want: u16,
    body_contains: Option<&str>,
    code: u16,
    body: &str,
) -> Result<String, String> {
    if code != want {
        return Err(format!(
            "`{url}` answered {code}, expected {want}; body: {}",
            crate::text::clip(body.trim(), 200)
        ));
    }
    match body_contains {
        Some(t) if !body.contains(t) => Err(format!(
            "`{url}` answered {code} without `{t}` in its body: {}",
            crate::text::clip(body.trim(), 200)
        )),
        _ => Ok(format!("`{url}` answered {code}")),
    }
}

/// The checks script's output, or why it is not usable: not its protocol, or a `missing`
/// record (what it could not look at).
fn script_output(text: &str) -> Result<(), String> {
    if !text.starts_with(ARGV0) {
        return Err(format!(
            "not the checks script's output: `{}`",
            text.lines().next().unwrap_or("")
        ));
    }
    match missing(text) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::KLOG_CLASSES;
    use expect_test::{expect, Expect};

    fn out(status: i32, stdout: &str) -> Output {
        Output {
            status,
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    fn check(c: &Check, o: Output, expect: Expect) {
        let r = match c.judge(&o) {
            Ok(s) => format!("pass: {s}"),
            Err(s) => format!("fail: {s}"),
        };
        expect.assert_eq(&r);
    }

    fn klog(counts: &str) -> String {
        let mut s = "fleetward-signals 1\nboot_id b\n".to_string();
        for (c, n) in KLOG_CLASSES.iter().map(|(c, _)| *c).zip(counts.split(',')) {
            s.push_str(&format!("klog dmesg {c} {n}\n"));
        }
        s
    }

    #[test]
    fn kernel_log_fails_on_named_classes_only() {
        let all = Check::KernelLog {
            classes: all_classes(),
        };
        check(&all, out(0, &klog("0,0,0,0,0,0,0")), expect!["pass: kernel log clean since boot (dmesg: panic, oops, bug, soft_lockup, hung_task, mce, io_error)"]);
        check(
            &all,
            out(0, &klog("0,1,0,0,2,0,0")),
            expect!["fail: kernel log since boot (dmesg) has 1 oops, 2 hung_task"],
        );
        let io = Check::KernelLog {
            classes: vec!["io_error".into()],
        };
        check(
            &io,
            out(0, &klog("0,1,0,0,2,0,0")),
            expect!["pass: kernel log clean since boot (dmesg: io_error)"],
        );
    }

    #[test]
    fn kernel_log_that_cannot_be_read_fails() {
        let all = Check::KernelLog {
            classes: all_classes(),
        };
        check(
            &all,
            out(
                0,
                "fleetward-signals 1\nmissing klog neither journalctl -k nor dmesg can be read\n",
            ),
            expect![
                "fail: cannot read the kernel log: neither journalctl -k nor dmesg can be read"
            ],
        );
        check(
            &all,
            out(127, ""),
            expect!["fail: exit status 127: no output"],
        );
    }

    #[test]
    fn units_report_failed_and_inactive() {
        let c = Check::Units {
            active: vec!["nginx.service".into(), "redis".into()],
        };
        check(
            &c,
            out(
                0,
                "fleetward-check 1\nunit nginx.service active\nunit redis active\n",
            ),
            expect!["pass: no failed units; active: nginx.service, redis"],
        );
        check(
            &c,
            out(0, "fleetward-check 1\nfailed cron.service\nunit nginx.service inactive\nunit redis active\n"),
            expect!["fail: failed units: cron.service; nginx.service is inactive"],
        );
        check(
            &c,
            out(0, "fleetward-check 1\nmissing units System has not been booted with systemd as init system (PID 1). Can't operate.\n"),
            expect!["fail: cannot check units: System has not been booted with systemd as init system (PID 1). Can't operate."],
        );
    }

    #[test]
    fn http_judges_status_and_body() {
        let c = Check::Http {
            url: "http://127.0.0.1:8080/health".into(),
            status: 200,
            body_contains: Some("ok".into()),
            from: HttpFrom::Host,
        };
        check(
            &c,
            out(
                0,
                "fleetward-check 1\ntool curl\nstatus 200\nbody\n{\"status\":\"ok\"}",
            ),
            expect!["pass: `http://127.0.0.1:8080/health` answered 200"],
        );
        check(
            &c,
            out(0, "fleetward-check 1\ntool curl\nstatus 503\nbody\ndown"),
            expect!["fail: `http://127.0.0.1:8080/health` answered 503, expected 200; body: down"],
        );
        check(&c, out(0, "fleetward-check 1\ntool wget\nstatus 200\nbody\nstarting"), expect!["fail: `http://127.0.0.1:8080/health` answered 200 without `ok` in its body: starting"]);
        check(
            &c,
            out(0, "fleetward-check 1\ntool curl\nmissing http curl: (7) Failed to connect to 127.0.0.1 port 8080\n"),
            expect!["fail: `http://127.0.0.1:8080/health`: curl: (7) Failed to connect to 127.0.0.1 port 8080"],
        );
        check(
            &c,
            out(
                0,
                "fleetward-check 1\nmissing http neither curl nor wget on this host\n",
            ),
            expect!["fail: `http://127.0.0.1:8080/health`: neither curl nor wget on this host"],
        );
    }

    #[test]
    fn http_from_the_controller_judges_the_answer() {
        use crate::probe::{Answer, ProbeError};
        let c = Check::Http {
            url: "http://10.0.0.7/health".into(),
            status: 200,
            body_contains: Some("ok".into()),
            from: HttpFrom::Controller,
        };
        let show = |r: Result<String, String>| match r {
            Ok(s) => format!("pass: {s}"),
            Err(s) => format!("fail: {s}"),
        };
        let ans = |status: u16, body: &str| {
            Ok(Answer {
                status,
                body: body.into(),
            })
        };
        assert_eq!(c.controller_url(), Some("http://10.0.0.7/health"));
        expect!["GET http://10.0.0.7/health (from the controller)"].assert_eq(&c.label());
        expect!["pass: `http://10.0.0.7/health` answered 200 (from the controller)"]
            .assert_eq(&show(c.judge_answer(ans(200, "ok"))));
        expect!["fail: `http://10.0.0.7/health` answered 503, expected 200; body: draining"]
            .assert_eq(&show(c.judge_answer(ans(503, "draining\n"))));
        expect![
            "fail: `http://10.0.0.7/health`: no answer from the controller within 5 s: timed out"
        ]
        .assert_eq(&show(c.judge_answer(Err(ProbeError::Timeout {
            secs: 5,
            message: "timed out".into(),
        }))));
        let host = Check::Http {
            url: "http://10.0.0.7/health".into(),
            status: 200,
            body_contains: None,
            from: HttpFrom::Host,
        };
        assert_eq!(host.controller_url(), None);
        assert_eq!(HttpFrom::parse("controller"), Ok(HttpFrom::Controller));
        expect!["`from` `lb` is neither `host` nor `controller`"]
            .assert_eq(&HttpFrom::parse("lb").unwrap_err());
    }

    #[test]
    fn bad_checks_are_rejected() {
        let bad = [
            Check::KernelLog {
                classes: vec!["panics".into()],
            },
            Check::Http {
                url: "localhost:80".into(),
                status: 200,
                body_contains: None,
                from: HttpFrom::Host,
            },
            Check::Http {
                url: "http://x".into(),
                status: 42,
                body_contains: None,
                from: HttpFrom::Host,
            },
        ];
        let msgs: Vec<String> = bad.iter().map(|c| c.validate().unwrap_err()).collect();
        expect![[r#"
            [
                "unknown kernel-log class `panics` (known: panic, oops, bug, soft_lockup, hung_task, mce, io_error)",
                "`http` needs an http:// or https:// `url`, not `localhost:80`",
                "`status` `42` is not an HTTP status",
            ]
        "#]]
        .assert_debug_eq(&msgs);
    }

    fn bench(suites: &[&str], peer: Option<&str>) -> Check {
        bench_in(suites, peer, "/var/tmp")
    }

    fn bench_in(suites: &[&str], peer: Option<&str>, dir: &str) -> Check {
        Check::Benchmark {
            suites: suites.iter().map(|s| s.to_string()).collect(),
            repeat: 2,
            dir: dir.into(),
            disk_mb: 8,
            peer: peer.map(String::from),
        }
    }

    #[test]
    fn bad_benchmarks_are_rejected() {
        let mut bad = vec![
            bench(&[], None),
            bench(&["gpu"], None),
            bench(&["network"], None),
            bench(&["network"], Some("-oProxyCommand=x")),
            bench(&["network"], Some("peer:99999")),
        ];
        if let Check::Benchmark { repeat, .. } = &mut bad[1] {
            *repeat = 0;
        }
        bad.push(bench_in(&["disk"], None, "tmp"));
        let msgs: Vec<String> = bad.iter().map(|c| c.validate().unwrap_err()).collect();
        expect![[r#"
            [
                "`benchmark` names no `suites`",
                "unknown benchmark suite `gpu` (known: cpu, memory, disk, network)",
                "the `network` suite needs a `peer` (an iperf3 server)",
                "`peer` `-oProxyCommand=x` is not a host name",
                "`peer` `peer:99999` has no valid port",
                "`dir` `tmp` is not an absolute path",
            ]
        "#]]
        .assert_debug_eq(&msgs);
        // Arguments are data, in the suites' own order.
        let c = bench(&["network", "cpu"], Some("[::1]:5202"));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.command(60).argv[3..],
            [
                "fleetward-check",
                "benchmark",
                "2",
                "/var/tmp",
                "8",
                "::1",
                "5202",
                "cpu",
                "network"
            ]
        );
    }

    fn run_local(cmd: &RemoteCommand, path: Option<&std::path::Path>) -> Output {
        let mut c = std::process::Command::new(&cmd.argv[0]);
        c.args(&cmd.argv[1..]);
        if let Some(p) = path {
            c.env("PATH", p);
        }
        let o = c.output().unwrap();
        out(
            o.status.code().unwrap_or(-1),
            &String::from_utf8_lossy(&o.stdout),
        )
    }

    /// The benchmark script on this machine: real `openssl`/`fio` where installed, the
    /// documented fallbacks (`sha256sum`, `dd` with direct I/O) on a PATH without them, a
    /// missing `iperf3` or an unreachable peer failing the check with the reason (never a
    /// pass), and a real `iperf3` server on loopback measured when the machine has one. The
    /// disk suite's file is gone afterwards.
    #[test]
    fn the_benchmark_script_runs_on_this_machine_with_its_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let with_dir = |c: Check| match c {
            Check::Benchmark {
                suites,
                repeat,
                disk_mb,
                peer,
                ..
            } => Check::Benchmark {
                suites,
                repeat,
                disk_mb,
                peer,
                dir: dir.path().display().to_string(),
            },
            c => c,
        };
        let tool_of = |r: &super::super::bench::Measured, m: &str| {
            r.results
                .iter()
                .find(|x| x.metric == m)
                .map(|x| x.tool.clone())
                .unwrap_or_default()
        };
        let c = with_dir(bench(&["cpu", "memory", "disk"], None));
        let o = run_local(&c.command(120), None);
        let r = c
            .bench_results(&o)
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}: {o:?}"));
        let have = |t: &str| {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        };
        assert_eq!(
            tool_of(&r, "bench_cpu_sha256_mbps"),
            if have("openssl") {
                "openssl"
            } else {
                "sha256sum"
            }
        );
        assert_eq!(
            tool_of(&r, "bench_disk_write_mbps"),
            if have("fio") { "fio" } else { "dd" }
        );
        assert!(
            r.results
                .iter()
                .all(|x| x.values.len() == 2 && x.values.iter().all(|v| *v > 0.0)),
            "{r:?}"
        );
        if have("fio") {
            // `fio` measures the random-read latencies too: the median below the 99th percentile.
            let p50 = tool_of(&r, "bench_disk_randread_p50_us");
            assert_eq!(p50, "fio", "{r:?}");
            let med = |m: &str| r.results.iter().find(|x| x.metric == m).unwrap().median();
            assert!(
                med("bench_disk_randread_p50_us") <= med("bench_disk_randread_p99_us"),
                "{r:?}"
            );
        }
        // A PATH with the base tools only: the fallbacks.
        let bin = tempfile::tempdir().unwrap();
        for t in [
            "sh",
            "dd",
            "awk",
            "mktemp",
            "rm",
            "sha256sum",
            "printf",
            "tail",
            "cat",
            "head",
            "grep",
        ] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(t))
                .find(|p| p.exists());
            if let Some(p) = found {
                std::os::unix::fs::symlink(p, bin.path().join(t)).unwrap();
            }
        }
        let o = run_local(&c.command(120), Some(bin.path()));
        let r = c
            .bench_results(&o)
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}: {o:?}"));
        assert_eq!(tool_of(&r, "bench_cpu_sha256_mbps"), "sha256sum");
        assert_eq!(tool_of(&r, "bench_disk_write_mbps"), "dd");
        assert_eq!(tool_of(&r, "bench_disk_read_mbps"), "dd");
        // The fallback says so, and measures no latency it cannot.
        assert_eq!(tool_of(&r, "bench_disk_randread_p99_us"), "");
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("disk: fio is not installed on this host: dd instead")),
            "{r:?}"
        );
        // No iperf3: the network suite fails the check, naming why.
        let n = with_dir(bench(&["network"], Some("127.0.0.1:1")));
        let o = run_local(&n.command(30), Some(bin.path()));
        assert_eq!(
            n.judge(&o),
            Err("benchmark: `network` could not run: iperf3 is not installed on this host".into())
        );
        if have("iperf3") {
            // A peer that does not listen, then a real iperf3 server.
            let o = run_local(&n.command(30), None);
            let e = n.judge(&o).unwrap_err();
            assert!(
                e.contains("iperf3 to 127.0.0.1:1") && e.contains("unable to connect"),
                "{e}"
            );
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            let mut server = std::process::Command::new("iperf3")
                .args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let n = with_dir(bench(&["network"], Some(&format!("127.0.0.1:{port}"))));
            let mut r = Err(String::new());
            for _ in 0..50 {
                r = n.bench_results(&run_local(&n.command(30), None)).unwrap();
                if r.is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = server.kill();
            let _ = server.wait();
            let r = r.unwrap();
            assert_eq!(tool_of(&r, "bench_net_mbps"), "iperf3");
        }
        let missing = bench_in(&["disk"], None, "/nonexistent-fleetward");
        assert_eq!(
            missing.judge(&run_local(&missing.command(30), None)),
            Err("benchmark: `disk` could not run: `/nonexistent-fleetward` is not a writable directory".into())
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// The scripts on this machine, run locally: the units check reports what systemd says
    /// (or that it cannot), the http check fetches from a real listener.
    #[test]
    fn the_scripts_run_on_this_machine() {
        let run = |cmd: RemoteCommand| {
            let o = std::process::Command::new(&cmd.argv[0])
                .args(&cmd.argv[1..])
                .output()
                .unwrap();
            out(
                o.status.code().unwrap_or(-1),
                &String::from_utf8_lossy(&o.stdout),
            )
        };
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhealthy",
            )
            .unwrap();
        });
        let c = Check::Http {
            url: format!("http://127.0.0.1:{port}/"),
            status: 200,
            body_contains: Some("healthy".into()),
            from: HttpFrom::Host,
        };
        assert_eq!(
            c.judge(&run(c.command(10))),
            Ok(format!("`http://127.0.0.1:{port}/` answered 200"))
        );
        server.join().unwrap();
        let u = Check::Units { active: vec![] };
        let o = run(u.command(10));
        let r = u.judge(&o);
        if std::path::Path::new("/run/systemd/system").exists() {
            assert!(
                r.is_ok() || r.as_ref().is_err_and(|e| e.contains("failed units")),
                "{o:?} {r:?}"
            );
        } else {
            assert!(
                r.as_ref().is_err_and(|e| e.contains("cannot check units")),
                "{o:?} {r:?}"
            );
        }
        let k = Check::KernelLog {
            classes: all_classes(),
        };
        let r = k.judge(&run(k.command(10)));
        assert!(
            r.is_ok() || r.as_ref().is_err_and(|e| e.contains("kernel log")),
            "{r:?}"
        );
    }
}
