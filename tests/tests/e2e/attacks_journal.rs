//! Issue 14's attacks 3, 7 and 8, written as the attacker would, against the real release
//! binary in namespaces: a forged journal line, budgets drained before a real fault, and an
//! unprivileged observation flood that must not push guardian's own remedy events out of
//! the retained files (docs/security.md).
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use guardian_tests::truth::{admin_up, link};
use guardian_tests::*;
use serde_json::Value;

/// Binds `addrs` as user nobody (per-thread credentials, raw syscall: the test process keeps
/// root), counting the failures.
fn binds_as_nobody(ns: &Netns, addrs: Vec<SocketAddr>, until: Option<Instant>) -> usize {
    run_in_netns(ns, move || {
        // SAFETY: a raw setresuid changes only this thread's credentials (glibc's wrapper
        // would change every thread's).
        let r = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(r, 0, "setresuid nobody");
        let mut failed = 0;
        loop {
            for a in &addrs {
                failed += usize::from(TcpListener::bind(a).is_err());
            }
            if until.is_none_or(|t| Instant::now() >= t) {
                return failed;
            }
        }
    })
}

fn ifindex(ns: &Netns, iface: &str) -> u64 {
    link(ns, iface)["ifindex"].as_u64().expect("ifindex")
}

#[test]
fn a_forged_journal_line_changes_nothing() {
    require_root();
    let a = Netns::new("forge-a");
    let b = Netns::new("forge-b");
    let v = pair(&a, &b, 151);
    // the management path: the default route leaves through the veth
    a.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &v.b_addr.to_string(),
    ]);
    let state = TempDir::new("forge-state");
    let dir = state.path().to_str().unwrap().to_owned();
    // A first start creates the host's journal key.
    let mut d = Daemon::start(&a, &["--mode", "enforce", "--state-dir", &dir]);
    d.wait_attached();
    d.finish();
    assert!(state.path().join("journal.key").exists());
    // The attacker appends a change "left unverified": rolling it back downs the interface
    // that carries the default route, in "netns 0".
    let idx = ifindex(&a, &v.a_if);
    let forged = serde_json::json!({
        "id": "0000000000000001-0001", "ts": "2026-12-04T00:00:00.000000000Z",
        "remedy": "link_up", "subject": {}, "incident": "x", "phase": "applied",
        "action": {"op": "set_link_up", "ifindex": idx, "name": v.a_if},
        "inverse": {"op": "set_link_down", "ifindex": idx, "name": v.a_if},
        "before": {}, "after": {}, "netns": 0, "fault": "link_down", "key": "link",
        "verify": {"check": "link_up", "ifindex": 999_999}, "effect": {"kind": "in_place"}
    });
    let journal = state.path().join("journal.ndjson");
    let mut text = std::fs::read_to_string(&journal).unwrap_or_default();
    text.push_str(&format!("{forged}\n"));
    std::fs::write(&journal, text).unwrap();
    let mut d = Daemon::start(&a, &["--mode", "observe", "--state-dir", &dir]);
    let rejected = d.wait_for(
        |e| is_lifecycle(e, "journal_rejected"),
        Duration::from_secs(10),
    );
    assert_eq!(rejected["detail"]["rejected"], 1, "{rejected}");
    let why = rejected["detail"]["lines"][0]["why"].as_str().unwrap();
    assert_eq!(why, "no MAC", "{rejected}");
    d.wait_attached();
    assert!(
        admin_up(&a, &v.a_if),
        "the default route's interface went down"
    );
    let events = d.finish();
    assert!(
        !events.iter().any(|e| is_type(e, "remedy")),
        "the forged record led to a remedy event"
    );
    // `guardian rollback` still works and does not run it either.
    let out = a.output(&[
        daemon::guardian_bin().to_str().unwrap(),
        "rollback",
        "--all",
        "--state-dir",
        &dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("skipped journal line"), "{stdout}");
    assert!(stdout.contains("nothing to roll back"), "{stdout}");
    assert!(admin_up(&a, &v.a_if));
}

#[test]
fn a_drained_budget_still_heals_a_real_link_loss() {
    require_root();
    let a = Netns::new("drain-a");
    let b = Netns::new("drain-b");
    let v = pair(&a, &b, 152);
    let state = TempDir::new("drain-state");
    let dir = state.path().to_str().unwrap().to_owned();
    // The general budget is already drained (what 10 decoy floods did in the issue).
    let cfg = state.path().join("guardian.toml");
    std::fs::write(&cfg, "[safety]\nglobal_max_per_hour = 0\n").unwrap();
    let mut d = Daemon::start(
        &a,
        &[
            "--mode",
            "enforce",
            "--state-dir",
            &dir,
            "--keep-up",
            &v.a_if,
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    // Ten ports held by root; user nobody fails to bind each of them.
    let addrs: Vec<SocketAddr> = (0..10)
        .map(|i| SocketAddr::from((v.a_addr, 6100 + i)))
        .collect();
    let held = addrs.clone();
    let holders = run_in_netns(&a, move || {
        held.iter()
            .map(|a| TcpListener::bind(a).unwrap())
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(binds_as_nobody(&a, addrs, None), 10);
    let report = d.wait_for(
        |e| is_type(e, "remedy") && e["remedy"] == "report_holder",
        Duration::from_secs(10),
    );
    assert_ne!(report["result"], "skipped", "{report}");
    // The real fault: the --keep-up interface goes down.
    let n = d.count();
    a.link_set(&v.a_if, false);
    d.wait_for_after(
        n,
        |e| is_remedy(e, "link_up", "verified"),
        Duration::from_secs(5),
    );
    assert!(admin_up(&a, &v.a_if));
    drop(holders);
    let events = d.finish();
    let exhausted: Vec<&Value> = events
        .iter()
        .filter(|e| str_field(e, "reason").is_some_and(|r| r.contains("budget exhausted")))
        .collect();
    assert!(
        exhausted.is_empty(),
        "report-only remedies and the repair pool must not be held back: {exhausted:?}"
    );
}

#[test]
fn remedy_events_survive_an_observation_flood() {
    require_root();
    let a = Netns::new("vol-a");
    let b = Netns::new("vol-b");
    let v = pair(&a, &b, 153);
    let state = TempDir::new("vol-state");
    let dir = state.path().to_str().unwrap().to_owned();
    // Small files, so that a short flood rotates them as 10 minutes of it would 100 MiB × 5.
    let cfg = state.path().join("guardian.toml");
    // report_holder only plans here: 500 conflicts would otherwise cost 500 journal fsyncs.
    std::fs::write(
        &cfg,
        "[sinks]\nmax_bytes = 200000\nkeep = 1\n[remedies.modes]\nreport_holder = \"observe\"\n",
    )
    .unwrap();
    let mut d = Daemon::start(
        &a,
        &[
            "--mode",
            "enforce",
            "--state-dir",
            &dir,
            "--keep-up",
            &v.a_if,
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    let events_file = d.events_path().to_path_buf();
    let n = d.count();
    a.link_set(&v.a_if, false);
    let (_, healed) = d.wait_for_after(
        n,
        |e| is_remedy(e, "link_up", "verified"),
        Duration::from_secs(5),
    );
    let incident = healed["incident"].as_str().unwrap().to_owned();
    // The flood: user nobody fails binds on 500 held ports for 4 s.
    let addrs: Vec<SocketAddr> = (0..500)
        .map(|i| SocketAddr::from((v.a_addr, 7000 + i)))
        .collect();
    let held = addrs.clone();
    let holders = run_in_netns(&a, move || {
        held.iter()
            .map(|a| TcpListener::bind(a).unwrap())
            .collect::<Vec<_>>()
    });
    let failed = binds_as_nobody(&a, addrs, Some(Instant::now() + Duration::from_secs(4)));
    assert!(failed >= 500, "{failed}");
    drop(holders);
    // Not `finish`: the harness follows one file and the flood rotated it.
    d.stop();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let rotated = events_file.with_extension("ndjson.1");
    let main = read(&events_file) + &read(&rotated);
    assert!(
        !main.contains(&incident),
        "the flood was too small to rotate the heal out of the events files; nothing proved"
    );
    let kept_path = events_file.with_file_name("events.remedies.ndjson");
    let kept = read(&kept_path);
    assert!(
        kept.lines()
            .any(|l| l.contains(&incident) && l.contains("\"verified\"")),
        "the heal's remedy event is gone from {}",
        kept_path.display()
    );
    assert!(!kept.contains("\"observation\""));
    assert!(!kept.contains("report_holder"));
}
