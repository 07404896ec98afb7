//! `--log-format json`: every stderr line of the real daemon is one JSON object in the events'
//! vocabulary (lowercase enum values, arrays as arrays), a fatal error too; fault and remedy
//! events carry their one-line `message`.
use std::process::Command;
use std::time::Duration;

use guardian_tests::*;
use serde_json::Value;

/// Rust `Debug` spellings of the model's enums, which must never reach a log line.
const DEBUG_CASING: &[&str] = &[
    "Observe",
    "Enforce",
    "Opened",
    "Updated",
    "Cleared",
    "Planned",
    "Applied",
    "Verified",
    "Failed",
    "RolledBack",
    "Expired",
    "Skipped",
    "LinkDown",
    "SynFlood",
    "LinkFlapping",
];

/// Every string anywhere in `v`.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Parses every line of a JSON log and checks the fields every line has.
fn json_lines(text: &str) -> Vec<Value> {
    let levels = ["error", "warning", "info", "debug", "trace"];
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {l}"));
            assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
            assert!(levels.contains(&v["level"].as_str().unwrap_or("")), "{l}");
            assert!(v["target"].as_str().is_some_and(|t| !t.is_empty()), "{l}");
            assert!(v["message"].as_str().is_some(), "{l}");
            let mut all = Vec::new();
            strings(&v, &mut all);
            for s in all {
                assert!(!DEBUG_CASING.contains(&s), "Debug casing {s:?} in {l}");
                assert!(
                    !s.starts_with("Some(") && !s.starts_with('['),
                    "{s:?} in {l}"
                );
            }
            v
        })
        .collect()
}

fn line<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["message"] == message)
        .unwrap_or_else(|| panic!("no log line {message:?} in {lines:#?}"))
}

#[test]
fn json_logs_speak_the_event_vocabulary_and_events_carry_a_message() {
    require_root();
    let a = Netns::new("logfmt-a");
    let b = Netns::new("logfmt-b");
    let v = pair(&a, &b, 247);
    let dir = TempDir::new("logfmt");
    let cfg = dir.path().join("guardian.toml");
    std::fs::write(&cfg, "[detect.syn_flood]\nsyn_per_sec = 5000\n").unwrap();
    let mut d = Daemon::start_env(
        &guardian_bin(),
        &a,
        &[
            "--log-format",
            "json",
            "--config",
            cfg.to_str().unwrap(),
            "--keep-up",
            &v.a_if,
        ],
        &[("GUARDIAN_LOG", "guardian=debug")],
    );
    d.wait_attached();
    // A fault and its planned remedy (observe mode): both events carry a message.
    let n = d.count();
    a.link_set(&v.a_if, false);
    let (_, opened) = d.wait_for_after(
        n,
        |e| is_fault(e, "link_down", "opened"),
        Duration::from_secs(10),
    );
    let msg = opened["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("link down on {}", v.a_if)),
        "{msg}"
    );
    assert!(msg.contains("administratively down"), "{msg}");
    let (_, planned) = d.wait_for_after(
        n,
        |e| is_remedy(e, "link_up", "planned"),
        Duration::from_secs(10),
    );
    let msg = planned["message"].as_str().unwrap();
    assert!(msg.starts_with("link_up planned"), "{msg}");
    a.link_set(&v.a_if, true);
    // A reload that changes one detector: its name is logged as a JSON array of fault names.
    std::fs::write(&cfg, "[detect.syn_flood]\nsyn_per_sec = 6000\n").unwrap();
    let n = d.count();
    let pid = nix::unistd::Pid::from_raw(d.pid().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let (_, r) = d.wait_for_after(n, |e| is_lifecycle(e, "reloaded"), Duration::from_secs(5));
    assert_eq!(r["detail"]["ok"], true, "{r}");
    d.finish();

    let stderr = std::fs::read_to_string(d.dir().join("stderr.log")).unwrap();
    let lines = json_lines(&stderr);
    eprintln!("{} JSON log lines", lines.len());
    let loaded = line(&lines, "configuration loaded");
    assert_eq!(loaded["mode"], "observe", "{loaded}");
    assert_eq!(loaded["files"], serde_json::json!([cfg.to_str().unwrap()]));
    assert!(line(&lines, "capabilities reduced")["kept"].is_array());
    let started = line(&lines, "engine started");
    assert_eq!(started["keep_up"], serde_json::json!([v.a_if]), "{started}");
    let fault = line(&lines, "fault");
    assert_eq!(fault["state"], "opened", "{fault}");
    assert_eq!(fault["fault"], "link_down", "{fault}");
    let reloaded = line(&lines, "configuration reloaded");
    assert_eq!(
        reloaded["detectors"],
        serde_json::json!(["syn_flood"]),
        "{reloaded}"
    );
}

#[test]
fn a_fatal_error_is_one_json_line() {
    require_root();
    let dir = TempDir::new("logfmt-fatal");
    let cfg = dir.path().join("guardian.toml");
    std::fs::write(&cfg, "[daemon]\ninterval_ms = 5\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(guardian_bin())
            .arg("run")
            .args(args)
            .output()
            .expect("run guardian");
        assert!(out.stdout.is_empty(), "nothing on stdout");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // From the file (read before anything is set up): exit 78, one JSON object.
    let (code, stderr) = run(&["--log-format", "json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(78), "{stderr}");
    let lines = json_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "error");
    assert_eq!(lines[0]["exit_code"], 78);
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("interval_ms"),
        "{stderr}"
    );
    // Named by the file: a missing interface, exit 78.
    std::fs::write(
        &cfg,
        "[log]\nformat = \"json\"\n[interfaces]\nxdp = [\"nosuch7\"]\n",
    )
    .unwrap();
    let (code, stderr) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(78), "{stderr}");
    let lines = json_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0]["message"].as_str().unwrap().contains("nosuch7"),
        "{stderr}"
    );
    // The human format keeps its sentence.
    let (code, stderr) = run(&["--xdp", "nosuch7"]);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.starts_with("guardian: "), "{stderr}");
}
