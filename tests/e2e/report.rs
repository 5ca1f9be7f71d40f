//! What people look at and ask: the gate's HTML report rendered in a real headless Chromium
//! (Debian's package), and `fleetward explain` over the journal of a real simulated rollout.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium as the machine allows it: no sandbox as root, no background networking
/// (the network is closed), a fresh profile.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Runs the regression gate with `--report` and returns the report's path.
fn report(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("gate.html");
    let o = run(&[
        "gate",
        "--policy-dir",
        "policies",
        "--inventory",
        "policy-examples/fleet/fleet.toml",
        "--baseline",
        "policy-examples/gates/baseline.parquet",
        "--samples",
        "policy-examples/gates/wave-io-regression.parquet",
        "--wave",
        "2",
        "--report",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    out
}

#[test]
fn the_gate_report_is_self_contained_and_puts_what_paused_first() {
    let dir = tempfile::tempdir().unwrap();
    let html = std::fs::read_to_string(report(dir.path())).unwrap();
    // No scripts, no fetches: everything is inline.
    for banned in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(banned), "report contains `{banned}`");
    }
    assert!(html.contains(r#"id="verdict">PAUSE<"#));
    // The first panel is a comparison the verdict names: an r750 io p99.
    let first = html.find(r#"<div class="panel"#).unwrap();
    let panel = &html[first..first + 200];
    assert!(panel.contains("flag0"), "{panel}");
    assert!(
        panel.contains(r#"data-metric="io_latency_p99_ms""#),
        "{panel}"
    );
    assert!(panel.contains(r#"data-level="r750/"#), "{panel}");
    // Host points for updated hosts and controls, and the threshold on the effect axis.
    assert!(html.matches(r#"class="pt""#).count() > 1000);
    assert!(html.contains(r#"class="threshold""#));
}

#[test]
fn the_gate_report_renders_in_headless_chromium() {
    ensure_installed(CHROMIUM, &["chromium"]);
    let dir = tempfile::tempdir().unwrap();
    let page = report(dir.path());
    let profile = dir.path().join("profile");
    // The DOM after layout: the SVGs are parsed as SVG (circles are elements of the DOM).
    let o = chromium(&profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("<svg"), "no svg in the rendered DOM");
    assert!(dom.matches("<circle").count() > 1000);
    // The groups table, as laid out: each group with how it came out; the r750 groups the
    // verdict paused say so.
    assert!(dom.contains(r#"<table id="groups">"#), "no groups table");
    assert!(
        dom.contains(r#"<tr data-group="r750/db" data-status="paused">"#),
        "r750/db not paused in the table"
    );
    assert!(dom.matches(r#"data-status="passed""#).count() >= 15);
    // A screenshot: a real PNG whose pixels are not all one colour (the plots drew).
    let png = dir.path().join("shot.png");
    let o = chromium(&profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,1000")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 20_000, "screenshot of {} bytes", bytes.len());
    let colours = distinct_colours(&bytes);
    assert!(colours > 20, "{colours} distinct colours: nothing drew");
}

/// Distinct RGB colours of a PNG (8-bit RGB or RGBA, as Chromium writes), counted up to 1000.
fn distinct_colours(png: &[u8]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let mut seen = std::collections::HashSet::new();
    for px in buf[..info.buffer_size()].chunks(step) {
        seen.insert((px[0], px[1], px[2]));
        if seen.len() >= 1000 {
            break;
        }
    }
    seen.len()
}

/// `fleetward explain --state-dir STATE EXTRA… -o json`: exit 0 and its JSON.
fn explain_json(state: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["explain", "--state-dir", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", "json"]);
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A real simulated rollout's journal: the I/O regression scenario, which pauses at wave 2.
fn simulated(dir: &Path) -> std::path::PathBuf {
    let state = dir.join("state");
    let o = run(&[
        "simulate",
        "policy-examples/scenarios/io-regression",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    state
}

#[test]
fn explain_says_why_each_decision_of_a_simulated_rollout_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let state = simulated(dir.path());
    // The controller wrote a report beside each gate.
    for n in 0..3 {
        let p = state.join(format!("stage-{n:02}.html"));
        assert!(p.is_file(), "no {}", p.display());
    }
    let v = explain_json(&state, &[]);
    let d = v["decisions"].as_array().unwrap();
    let kinds: Vec<&str> = d.iter().map(|x| x["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert!(kinds.contains(&"controls") && kinds.contains(&"before_window"));
    assert_eq!(kinds.iter().filter(|k| **k == "gate").count(), 3);
    // Every decision names the policy that made it.
    let policy = v["policies"][0].as_str().unwrap();
    assert_eq!(policy.len(), 64);
    assert!(d.iter().all(|x| x["policy"].as_str().unwrap().len() == 64));
    // The pausing gate names its levels and reasons, and the pause belongs to wave 2.
    let gate = d.iter().rfind(|x| x["kind"] == "gate").unwrap();
    assert_eq!(gate["stage_name"], "wave 2");
    // It says how each group came out: the regressed group paused, by name.
    let summary = gate["summary"].as_str().unwrap();
    assert!(summary.starts_with("gate: pause; "), "{summary}");
    assert!(summary.contains("r750/db paused"), "{summary}");
    let r750db = gate["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "r750/db")
        .unwrap();
    assert_eq!(r750db["status"], "paused", "{r750db}");
    // The canary gate before it approved with every group judged on its own.
    let canary = d.iter().find(|x| x["kind"] == "gate").unwrap();
    assert_eq!(
        canary["summary"],
        "gate: pass; all 24 hardware × workload group(s) passed, each judged on its own"
    );
    let levels: Vec<&str> = gate["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        levels.contains(&"r750/db") && levels.contains(&"r750/*"),
        "{levels:?}"
    );
    assert!(gate["reasons"][0]
        .as_str()
        .unwrap()
        .contains("io_latency_p99_ms"));
    let paused = d.iter().find(|x| x["kind"] == "paused").unwrap();
    assert_eq!(paused["stage_name"], "wave 2");

    // One stage, by name; a host, with the gates of its stage.
    let v = explain_json(&state, &["--stage", "canary"]);
    assert!(v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["stage_name"] == "canary"));
    let o = run(&[
        "explain",
        "--state-dir",
        state.to_str().unwrap(),
        "--stage",
        "canary",
    ]);
    let text = stdout(&o);
    assert!(text.contains("[canary] gate: pass"), "{text}");
    assert!(text.contains("control host(s) chosen"), "{text}");

    // Bad input is a clear error.
    let o = run(&[
        "explain",
        "--state-dir",
        state.to_str().unwrap(),
        "--stage",
        "wave 9",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no stage `wave 9`"), "{}", stderr(&o));
    let o = run(&[
        "explain",
        "--state-dir",
        state.to_str().unwrap(),
        "--host",
        "nosuch",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("host `nosuch` takes no part"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "explain",
        "--state-dir",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("holds no rollout"), "{}", stderr(&o));
}

#[test]
fn explain_of_a_host_shows_its_quarantine_and_its_stage_gates() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let o = run(&[
        "simulate",
        "policy-examples/scenarios/clean",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = explain_json(&state, &[]);
    let q: Vec<&Value> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "quarantined")
        .collect();
    assert_eq!(q.len(), 2, "the clean scenario's two bad hosts");
    let host = q[0]["hosts"][0].as_str().unwrap();
    let v = explain_json(&state, &["--host", host]);
    let kinds: Vec<&str> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"quarantined"), "{kinds:?}");
    assert!(kinds.contains(&"gate"), "{kinds:?}");
}
