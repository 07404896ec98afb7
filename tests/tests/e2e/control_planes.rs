//! guardian in enforce mode beside real route owners: BIRD 2 withdrawing and re-adding its
//! route (guardian reports, names bird, never restores), and an operator's `ip route del`
//! (reported as a deliberate change, left deleted, then accepted with `guardian baseline
//! accept`).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use guardian_tests::truth::route_show;
use guardian_tests::*;
use serde_json::Value;

fn cli(sock: &Path, args: &[&str]) -> Output {
    Command::new(guardian_bin())
        .args(args)
        .arg("--socket")
        .arg(sock)
        .output()
        .expect("run guardian")
}

/// A daemon in enforce mode in `ns`, its state and control socket in `dir`.
fn enforcing(ns: &Netns, dir: &TempDir) -> (Daemon, PathBuf) {
    let sock = dir.path().join("guardian.sock");
    let state = dir.path().join("state");
    let (s, st) = (sock.to_str().unwrap(), state.to_str().unwrap());
    let mut d = Daemon::start(ns, &["--mode", "enforce", "--state-dir", st, "--socket", s]);
    d.wait_attached();
    (d, sock)
}

/// No remedy changed anything (so none had to be rolled back).
fn nothing_changed(events: &[Value]) {
    let acted: Vec<&Value> = events
        .iter()
        .filter(|e| {
            is_type(e, "remedy")
                && matches!(
                    str_field(e, "result"),
                    Some("applied" | "verified" | "failed" | "rolled_back")
                )
        })
        .collect();
    assert!(acted.is_empty(), "guardian changed something: {acted:?}");
}

fn wait_route(ns: &Netns, prefix: &str, present: bool) {
    let ok = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        (route_show(ns, prefix).is_empty() != present).then_some(())
    });
    assert!(ok.is_some(), "route {prefix} present={present} never held");
}

#[test]
fn bird_withdraws_its_route_and_guardian_leaves_it_to_bird() {
    require_root();
    let a = Netns::new("bird-a");
    let b = Netns::new("bird-b");
    let v = pair(&a, &b, 61);
    let dir = TempDir::new("bird");
    let conf = dir.path().join("bird.conf");
    let ctl = dir.path().join("bird.ctl");
    let prefix = "10.253.61.0/24";
    std::fs::write(
        &conf,
        format!(
            "router id 10.77.61.1;\nprotocol device {{}}\n\
             protocol kernel {{ ipv4 {{ export all; }}; }}\n\
             protocol static st {{ ipv4; route {prefix} via {}; }}\n",
            v.b_addr
        ),
    )
    .unwrap();
    let (c, s) = (conf.to_str().unwrap(), ctl.to_str().unwrap());
    let bird_pid = a.spawn(&["bird", "-f", "-c", c, "-s", s]);
    wait_route(&a, prefix, true);
    assert!(route_show(&a, prefix).contains("proto bird"));

    let (mut d, _sock) = enforcing(&a, &dir);
    let n = d.count();
    a.run(&["birdc", "-s", s, "disable", "st"]);
    let (_, lost) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "opened"),
        Duration::from_secs(10),
    );
    eprintln!("bird withdrew: {lost}");
    let ev = &lost["evidence"];
    assert_eq!(ev["protocol"], "bird", "{lost}");
    assert_eq!(ev["owner"], "control_plane", "{lost}");
    assert_eq!(ev["by"]["comm"], "bird", "{lost}");
    eprintln!("bird started as pid {bird_pid}");
    assert_eq!(str_field(&lost, "severity"), Some("info"));
    let (_, skipped) = d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "skipped"),
        Duration::from_secs(5),
    );
    assert!(
        str_field(&skipped, "reason").is_some_and(|r| r.contains("control plane")),
        "{skipped}"
    );
    // BIRD's intended state holds: the route stays withdrawn.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(route_show(&a, prefix), "", "guardian put bird's route back");

    a.run(&["birdc", "-s", s, "enable", "st"]);
    let (_, back) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "cleared"),
        Duration::from_secs(10),
    );
    eprintln!("bird re-added: {back}");
    assert_eq!(back["evidence"]["by"]["comm"], "bird", "{back}");
    assert!(route_show(&a, prefix).contains("proto bird"));
    let _ = a.run(&["birdc", "-s", s, "down"]);
    let events = d.finish();
    nothing_changed(&events);
    validate_values(&events);
}

#[test]
fn an_operators_route_del_is_left_deleted_until_accepted() {
    require_root();
    let a = Netns::new("opdel-a");
    let b = Netns::new("opdel-b");
    let v = pair(&a, &b, 62);
    let prefix = "10.250.62.0/24";
    a.run(&["ip", "route", "add", prefix, "via", &v.b_addr.to_string()]);
    let dir = TempDir::new("opdel");
    let (mut d, sock) = enforcing(&a, &dir);
    let n = d.count();
    a.run(&["ip", "route", "del", prefix]);
    let (_, lost) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "opened"),
        Duration::from_secs(10),
    );
    eprintln!("operator deleted: {lost}");
    let ev = &lost["evidence"];
    assert_eq!(ev["protocol"], "boot", "{lost}");
    assert!(ev["by"]["pid"].as_u64().is_some(), "{lost}");
    assert_eq!(str_field(&lost, "severity"), Some("warning"));
    let (_, skipped) = d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "skipped"),
        Duration::from_secs(5),
    );
    assert!(
        str_field(&skipped, "reason").is_some_and(|r| r.contains("guardian baseline accept")),
        "{skipped}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        route_show(&a, prefix),
        "",
        "guardian undid the operator's change"
    );

    let shown = cli(&sock, &["baseline", "show", "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("baseline show --json");
    assert!(
        shown["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["present"] == false && r["route"].as_str().unwrap().contains(prefix)),
        "{shown}"
    );
    let out = cli(&sock, &["baseline", "accept", prefix]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("no longer protected") && said.contains(prefix),
        "{said}"
    );
    let (_, cleared) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "cleared"),
        Duration::from_secs(5),
    );
    assert_eq!(cleared["evidence"]["accepted"], true, "{cleared}");
    let events = d.finish();
    nothing_changed(&events);
    validate_values(&events);
}
