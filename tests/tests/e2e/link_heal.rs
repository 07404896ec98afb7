//! Healing links and routes: enforce mode repairs and verifies, observe mode only plans.
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use guardian_tests::truth::{admin_up, oper_up, route_show};
use guardian_tests::*;
use serde_json::Value;

/// Checks what every remedy event of an incident must carry.
fn check_remedy(e: &Value, netns: u64, mode: &str, incident: &Value) {
    assert_eq!(u64_field(e, "netns"), netns, "{e}");
    assert_eq!(str_field(e, "mode"), Some(mode), "{e}");
    assert_eq!(
        &e["incident"], incident,
        "remedy and fault share the incident: {e}"
    );
}

fn no_failures(events: &[Value]) {
    let bad: Vec<&Value> = events
        .iter()
        .filter(|e| {
            is_type(e, "remedy") && matches!(str_field(e, "result"), Some("failed" | "rolled_back"))
        })
        .collect();
    assert!(bad.is_empty(), "remedies failed: {bad:?}");
}

/// Starts the daemon in `ns` in enforce mode with a state directory of its own (plus `extra`
/// arguments) and waits until it is attached.
fn enforcing(ns: &Netns, tag: &str, extra: &[&str]) -> (TempDir, Daemon) {
    let state = TempDir::new(tag);
    let dir = state.path().to_str().unwrap().to_owned();
    let mut args = vec!["--mode", "enforce", "--state-dir", &dir];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(ns, &args);
    d.wait_attached();
    (state, d)
}

#[test]
fn enforce_brings_a_keep_up_link_back_within_100ms() {
    require_root();
    let a = Netns::new("heal-a");
    let b = Netns::new("heal-b");
    let v = pair(&a, &b, 5);
    let (state, mut d) = enforcing(&a, "heal-state", &["--keep-up", &v.a_if]);
    let n = d.count();
    let iface = v.a_if.clone();
    let on_iface = move |e: &Value| subject_str(e, "iface") == Some(iface.as_str());

    // Timed at the ioctl itself: `ip` under nsenter costs two execs (~150 ms in a TCG VM).
    let injected = a.link_set_timed(&v.a_if, false);
    let on = on_iface.clone();
    let (_, fault) = d.wait_for_after(
        n,
        move |e| is_fault(e, "link_down", "opened") && on(e),
        Duration::from_secs(5),
    );
    let on = on_iface.clone();
    let (_, applied) = d.wait_for_after(
        n,
        move |e| is_remedy(e, "link_up", "applied") && on(e),
        Duration::from_secs(5),
    );
    let on = on_iface.clone();
    let (_, verified) = d.wait_for_after(
        n,
        move |e| is_remedy(e, "link_up", "verified") && on(e),
        Duration::from_secs(5),
    );
    let ms = millis_between(injected, event_time(&verified));
    eprintln!(
        "heal link_up: opened -> verified {:.3} ms",
        millis_between(event_time(&fault), event_time(&verified))
    );
    eprintln!(
        "link_down -> link_up verified in {ms:.3} ms after injection (fault at {:.3} ms, \
         applied at {:.3} ms)",
        millis_between(injected, event_time(&fault)),
        millis_between(injected, event_time(&applied)),
    );
    assert_eq!(u64_field(&fault, "netns"), a.inode());
    assert_eq!(u64_field(&fault, "layer"), 2);
    // Who: the test's SIOCSIFFLAGS, a process, never "the kernel" (the notification's port
    // id is 0 for a link whoever asked: guardian says it cannot name the process).
    let by = fault["evidence"]["by_text"].as_str().unwrap_or("");
    assert!(
        by.starts_with("pid ") || by.starts_with("a process"),
        "who took it down: {fault}"
    );
    for r in [&applied, &verified] {
        check_remedy(r, a.inode(), "enforce", &fault["incident"]);
    }
    let rollback_id = str_field(&verified, "rollback_id")
        .unwrap_or_else(|| panic!("an applied change has a journal id: {verified}"));
    assert!(event_time(&fault) <= event_time(&applied));
    assert!(event_time(&applied) <= event_time(&verified));
    // 100 ms on the host; times GUARDIAN_TIME_SCALE inside a TCG VM (cargo xtask test --kernel).
    let bound = 100.0 * guardian_tests::util::time_scale();
    assert!(ms <= bound, "healed in {ms:.3} ms, more than {bound} ms");

    assert!(admin_up(&a, &v.a_if), "{} is not up", v.a_if);
    let oper = poll(Duration::from_secs(2), Duration::from_millis(10), || {
        oper_up(&a, &v.a_if).then_some(())
    });
    assert!(oper.is_some(), "{} is not operationally up", v.a_if);

    let journal = read_tree(state.path());
    assert!(
        journal.contains("link_up") && journal.contains(&v.a_if) && journal.contains(rollback_id),
        "the journal under {} does not record the change {rollback_id}:\n{journal}",
        state.path().display()
    );
    let events = d.finish();
    no_failures(&events);
}

#[test]
fn observe_mode_only_plans_and_leaves_the_link_down() {
    require_root();
    let a = Netns::new("obs-a");
    let b = Netns::new("obs-b");
    let v = pair(&a, &b, 6);
    let mut d = Daemon::start(&a, &["--keep-up", &v.a_if]);
    let attached = d.wait_attached();
    assert_eq!(
        str_field(&attached, "mode"),
        Some("observe"),
        "observe is the default"
    );
    let n = d.count();

    let injected = Instant::now();
    a.link_set(&v.a_if, false);
    let iface = v.a_if.clone();
    let (_, fault) = d.wait_for_after(
        n,
        move |e| is_fault(e, "link_down", "opened") && subject_str(e, "iface") == Some(&iface),
        Duration::from_secs(5),
    );
    let iface = v.a_if.clone();
    let (_, planned) = d.wait_for_after(
        n,
        move |e| is_remedy(e, "link_up", "planned") && subject_str(e, "iface") == Some(&iface),
        Duration::from_secs(5),
    );
    check_remedy(&planned, a.inode(), "observe", &fault["incident"]);
    std::thread::sleep(Duration::from_secs(2).saturating_sub(injected.elapsed()));
    assert!(
        !admin_up(&a, &v.a_if),
        "observe mode must not bring the link up"
    );

    let events = d.finish();
    let acted: Vec<&Value> = events
        .iter()
        .filter(|e| {
            is_type(e, "remedy")
                && matches!(
                    str_field(e, "result"),
                    Some("applied" | "verified" | "rolled_back")
                )
        })
        .collect();
    assert!(acted.is_empty(), "observe mode acted: {acted:?}");
    assert!(!admin_up(&a, &v.a_if));
}

#[test]
fn enforce_restores_a_deleted_route() {
    require_root();
    let a = Netns::new("route-a");
    let b = Netns::new("route-b");
    let v = pair(&a, &b, 7);
    let prefix = "10.250.7.0/24";
    let via = v.b_addr.to_string();
    a.run(&["ip", "route", "add", prefix, "via", &via]);
    assert_eq!(v.b_addr, Ipv4Addr::new(10, 77, 7, 2));

    let (state, mut d) = enforcing(&a, "route-state", &[]);
    let n = d.count();

    // A real fault, not a decision: the link bounces and the kernel flushes its IPv4 routes
    // (an operator's `ip route del` is a deliberate change guardian leaves alone, see
    // control_planes.rs).
    let injected = SystemTime::now();
    a.link_set(&v.a_if, false);
    a.link_set(&v.a_if, true);
    let (_, verified) = d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "verified"),
        Duration::from_secs(10),
    );
    eprintln!(
        "route_restore verified {:.3} ms after the delete: {verified}",
        millis_between(injected, event_time(&verified))
    );
    if let Some(r) = subject_str(&verified, "route") {
        assert_eq!(r, prefix);
    }
    let events = d.events();
    let fault = events
        .iter()
        .find(|e| is_fault(e, "route_lost", "opened") && e["incident"] == verified["incident"])
        .unwrap_or_else(|| panic!("no route_lost fault for incident {}", verified["incident"]));
    check_remedy(&verified, a.inode(), "enforce", &fault["incident"]);
    let by = fault["evidence"]["by_text"].as_str().unwrap_or("");
    assert!(by.starts_with("the kernel"), "who deleted it: {fault}");
    assert_eq!(fault["evidence"]["protocol"], "boot", "{fault}");
    eprintln!(
        "heal route_restore: opened -> verified {:.3} ms",
        millis_between(event_time(fault), event_time(&verified))
    );
    let shown = route_show(&a, prefix);
    assert!(
        shown.contains(&format!("via {via}")),
        "route after restore: {shown:?}"
    );

    let journal = read_tree(state.path());
    assert!(
        journal.contains("route_restore") && journal.contains(prefix),
        "the journal under {} does not record the route change:\n{journal}",
        state.path().display()
    );
    let events = d.finish();
    no_failures(&events);
}

/// A link_up that cannot verify (the veth peer is down, so no carrier) is rolled back: the link
/// ends exactly as it was before the remedy (admin down), the journal records the rollback, and
/// the incident gets no second attempt.
#[test]
fn enforce_rolls_back_a_link_up_that_cannot_verify() {
    require_root();
    let a = Netns::new("rb-a");
    let b = Netns::new("rb-b");
    let v = pair(&a, &b, 8);
    let (state, mut d) = enforcing(
        &a,
        "rb-state",
        &["--keep-up", &v.a_if, "--verify-timeout-ms", "300"],
    );
    let n = d.count();
    // The peer goes first (A loses carrier but stays admin up: nothing to do), then A.
    b.link_set(&v.b_if, false);
    a.link_set(&v.a_if, false);
    let iface = v.a_if.clone();
    let (_, rolled) = d.wait_for_after(
        n,
        move |e| is_remedy(e, "link_up", "rolled_back") && subject_str(e, "iface") == Some(&iface),
        Duration::from_secs(5),
    );
    eprintln!("rolled back: {rolled}");
    assert!(
        !admin_up(&a, &v.a_if),
        "rollback must leave {} admin down",
        v.a_if
    );
    assert!(rolled["rollback_id"].is_string(), "{rolled}");
    // No second attempt for the same incident, even after the rollback's own link event.
    std::thread::sleep(Duration::from_millis(500));
    let events = d.finish();
    let applied = events
        .iter()
        .filter(|e| is_remedy(e, "link_up", "applied"))
        .count();
    assert_eq!(applied, 1, "exactly one attempt");
    assert!(!events.iter().any(|e| is_remedy(e, "link_up", "verified")));
    let journal = std::fs::read_to_string(state.path().join("journal.ndjson")).unwrap();
    let id = rolled["rollback_id"].as_str().unwrap();
    let phases: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["id"] == id)
        .filter_map(|r| r["phase"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        phases,
        ["intent", "applied", "rolled_back"],
        "journal: {journal}"
    );
}
