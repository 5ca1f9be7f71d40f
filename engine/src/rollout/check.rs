//! The built-in validation checks a step may declare in place of a command: `kernel_log`,
//! `units` and `http`. Each has a fixed host-side script ([`SCRIPT`], or the signals
//! collector for `kernel_log`) with its arguments passed as data, and a pure judge of what
//! the script printed.

use crate::exec::{Output, RemoteCommand};
use crate::signals::all_classes;
use serde::{Deserialize, Serialize};

/// The host side of `units` and `http`, run as `sh -c SCRIPT fleetward-check KIND ARGS…`.
pub const SCRIPT: &str = include_str!("checks.sh");

/// `$0` of the checks script.
pub const ARGV0: &str = "fleetward-check";

/// The kinds a step command's `check` may name.
pub const KINDS: [&str; 4] = ["command", "kernel_log", "units", "http"];

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
    /// `url`, fetched from the host itself, answers `status` (and contains `body_contains`).
    Http {
        url: String,
        #[serde(default = "ok_status")]
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_contains: Option<String>,
    },
}

fn ok_status() -> u16 {
    200
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
        }
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
                    Some(c) if c != *status => Err(format!(
                        "`{url}` answered {c}, expected {status}; body: {}",
                        crate::text::clip(body.trim(), 200)
                    )),
                    Some(c) => match body_contains {
                        Some(t) if !body.contains(t.as_str()) => Err(format!(
                            "`{url}` answered {c} without `{t}` in its body: {}",
                            crate::text::clip(body.trim(), 200)
                        )),
                        _ => Ok(format!("`{url}` answered {c}")),
                    },
                }
            }
        }
    }

    /// What the check looks at, for reports.
    pub fn label(&self) -> String {
        match self {
            Check::KernelLog { .. } => "kernel log".into(),
            Check::Units { active } if active.is_empty() => "systemd units".into(),
            Check::Units { active } => format!("systemd units ({})", active.join(", ")),
            Check::Http { url, .. } => format!("GET {url}"),
        }
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
    fn bad_checks_are_rejected() {
        let bad = [
            Check::KernelLog {
                classes: vec!["panics".into()],
            },
            Check::Http {
                url: "localhost:80".into(),
                status: 200,
                body_contains: None,
            },
            Check::Http {
                url: "http://x".into(),
                status: 42,
                body_contains: None,
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
