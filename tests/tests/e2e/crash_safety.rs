//! Crash safety: the daemon dies (kill -9, or an abort at a chosen point of a change) during
//! enforce cycles; after a restart no change is left half-applied or unrecorded. The link is
//! up exactly when the journal says a link_up was verified, and down exactly when nothing was
//! journaled or the change was rolled back. The aborts need a test build of guardian (its
//! `crash-points` feature, which `cargo xtask test` turns on).
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use guardian_tests::truth::admin_up;
use guardian_tests::*;
use serde_json::Value;

const SUBNET: u8 = 140;

/// Last phase and first record of every change in the journal, by id.
fn journal(dir: &Path) -> BTreeMap<String, (String, Value)> {
    let text = std::fs::read_to_string(dir.join("journal.ndjson")).unwrap_or_default();
    let mut out: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = r["id"].as_str().unwrap().to_owned();
        let phase = r["phase"].as_str().unwrap().to_owned();
        out.entry(id)
            .and_modify(|e| e.0 = phase.clone())
            .or_insert((phase, r));
    }
    out
}

fn start(ns: &Netns, state: &str, iface: &str, crash: Option<&str>) -> Daemon {
    let args = [
        "--mode",
        "enforce",
        "--state-dir",
        state,
        "--keep-up",
        iface,
    ];
    let env: Vec<(&str, &str)> = crash
        .map(|c| ("GUARDIAN_CRASH_POINT", c))
        .into_iter()
        .collect();
    let mut d = Daemon::start_env(&daemon::guardian_bin(), ns, &args, &env);
    d.wait_attached();
    d
}

/// A pseudo-random delay for the kill, 0–19 ms (no rand crate needed for this).
fn jitter_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 20
}

#[test]
fn kill_during_enforce_cycles_leaves_nothing_half_applied() {
    require_root();
    let cycles: usize = std::env::var("GT_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let a = Netns::new("crash-a");
    let b = Netns::new("crash-b");
    let v = pair(&a, &b, SUBNET);
    let state = TempDir::new("crash-state");
    let dir = state.path().to_str().unwrap().to_owned();
    let points = ["kill", "intent", "apply", "applied"];
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = journal(state.path());
    for cycle in 0..cycles {
        let point = points[cycle % points.len()];
        let crash = (point != "kill").then_some(point);
        let mut d = start(&a, &dir, &v.a_if, crash);
        a.link_set(&v.a_if, false);
        if crash.is_some() {
            // The daemon aborts at the chosen point of its link_up.
            let died = poll(Duration::from_secs(5), Duration::from_millis(5), || {
                d.exited().map(|_| ())
            });
            if died.is_none() {
                d.fail(&format!(
                    "cycle {cycle}: no crash at {point} (is $GUARDIAN_BIN a test build, with \
                     `--features guardian/crash-points`?)"
                ));
            }
        } else {
            std::thread::sleep(Duration::from_millis(jitter_ms()));
        }
        d.kill9();
        drop(d);

        // Restart: the journal is settled before `attached`.
        let mut r = start(&a, &dir, &v.a_if, None);
        let now = journal(state.path());
        let new: Vec<(&String, &(String, Value))> = now
            .iter()
            .filter(|(id, _)| !seen.contains_key(*id))
            .collect();
        let up = admin_up(&a, &v.a_if);
        let open: Vec<_> = now
            .values()
            .filter(|(p, _)| matches!(p.as_str(), "intent" | "applied"))
            .collect();
        if !open.is_empty() {
            r.fail(&format!(
                "cycle {cycle} ({point}): changes left open: {open:?}"
            ));
        }
        let verified = new.iter().filter(|(_, (p, _))| p == "verified").count();
        let outcome = match (up, verified, new.len()) {
            (true, 1, 1) => "healed (verified)",
            (false, 0, 0) => "killed before acting (nothing journaled, link down)",
            (false, 0, 1) if new[0].1 .0 == "rolled_back" => "rolled back at start",
            _ => r.fail(&format!(
                "cycle {cycle} ({point}): link admin_up={up} but the journal's new changes are {new:?}"
            )),
        };
        // Deterministic points have a known outcome.
        let expect = match point {
            "intent" => Some("rolled back at start"),
            "apply" | "applied" => Some("healed (verified)"),
            _ => None,
        };
        if let Some(e) = expect {
            if e != outcome {
                r.fail(&format!(
                    "cycle {cycle}: crash at {point} should end {e}, ended {outcome}"
                ));
            }
        }
        let settled_at_start = r
            .events()
            .iter()
            .filter(|e| {
                is_type(e, "remedy")
                    && str_field(e, "reason").is_some_and(|s| s.contains("at start"))
            })
            .count();
        if point != "kill" && settled_at_start != 1 {
            r.fail(&format!("cycle {cycle}: expected one remedy event settling the crash, got {settled_at_start}"));
        }
        eprintln!("cycle {cycle:2} {point:8} -> {outcome}");
        *outcomes.entry(format!("{point}: {outcome}")).or_default() += 1;
        r.finish();
        if !up {
            a.link_set(&v.a_if, true);
        }
        seen = now;
    }
    eprintln!("crash outcomes over {cycles} cycles: {outcomes:#?}");
}
