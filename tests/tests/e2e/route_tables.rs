//! Routes outside the main table and of every shape, guardian in enforce mode. A link bounce
//! (nobody's decision) loses routes of two policy-routing tables (one named by a rule added
//! while guardian runs), an ECMP route, an IPv6 route and a nexthop-object route: the first
//! four come back exactly as they were (`ip -j route` before and after); the last is reported
//! (its nexthop object went with the link) and no gateway is invented for it. A route deleted
//! from table 100 by a process is reported with its sender and left deleted.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use guardian_tests::*;
use serde_json::Value;

/// A daemon in enforce mode in `ns`, its state and control socket in `dir`.
fn enforcing(ns: &Netns, dir: &TempDir) -> (Daemon, PathBuf) {
    let sock = dir.path().join("guardian.sock");
    let state = dir.path().join("state");
    let (s, st) = (sock.to_str().unwrap(), state.to_str().unwrap());
    let mut d = Daemon::start(ns, &["--mode", "enforce", "--state-dir", st, "--socket", s]);
    d.wait_attached();
    (d, sock)
}

/// `ip -j ARGS` as JSON, each route's `flags` left out (they carry state such as `linkdown`,
/// not configuration).
fn shown(ns: &Netns, args: &str) -> Vec<Value> {
    let out = ns.sh(&format!("ip -j {args}"));
    let mut v: Vec<Value> = serde_json::from_str(out.trim()).unwrap_or_default();
    for r in &mut v {
        if let Some(o) = r.as_object_mut() {
            o.remove("flags");
            for h in o
                .get_mut("nexthops")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                h.as_object_mut().map(|h| h.remove("flags"));
            }
        }
    }
    v
}

/// The `route_lost` fault opened for the route to `prefix` (its `subject.route`).
fn lost<'a>(events: &'a [Value], prefix: &str) -> &'a Value {
    events
        .iter()
        .find(|e| is_fault(e, "route_lost", "opened") && subject_str(e, "route") == Some(prefix))
        .unwrap_or_else(|| panic!("no route_lost opened for {prefix}: {events:#?}"))
}

/// The `route_restore` event of `result` that shares `fault`'s incident.
fn remedy_of<'a>(events: &'a [Value], fault: &Value, result: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| is_remedy(e, "route_restore", result) && e["incident"] == fault["incident"])
}

fn changed(events: &[Value], results: &[&str]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| {
            is_type(e, "remedy") && str_field(e, "result").is_some_and(|r| results.contains(&r))
        })
        .cloned()
        .collect()
}

/// The routes the test compares before and after: tables 100 and 101, the ECMP route, the
/// IPv6 route.
fn kept(a: &Netns) -> [Vec<Value>; 4] {
    [
        shown(a, "route show table 100"),
        shown(a, "route show table 101"),
        shown(a, "route show 10.251.171.0/24"),
        shown(a, "-6 route show fd99:171::/64"),
    ]
}

#[test]
fn every_table_and_shape_lost_by_a_link_bounce_is_restored_exactly() {
    require_root();
    let a = Netns::new("rtab-a");
    let b = Netns::new("rtab-b");
    let v = pair(&a, &b, 171);
    let (dev, gw, gw2) = (&v.a_if, v.b_addr.to_string(), "10.77.171.3");
    b.sh(&format!("ip addr add {gw2}/24 dev {}", v.b_if));
    // IPv6 on the same link; the address stays across the bounce (as a static config's does)
    a.sh(&format!(
        "sysctl -qw net.ipv6.conf.{dev}.keep_addr_on_down=1 && \
         ip -6 addr add fd77:171::1/64 dev {dev} nodad"
    ));
    b.sh(&format!(
        "ip -6 addr add fd77:171::2/64 dev {} nodad",
        v.b_if
    ));
    a.sh(&format!(
        "set -e
         ip rule add from 10.77.171.0/24 lookup 100
         ip route add 10.250.171.0/24 via {gw} table 100 proto static metric 7
         ip route add 10.253.171.0/24 via {gw} table 101 proto static
         ip route add 10.251.171.0/24 nexthop via {gw} dev {dev} weight 1 \
             nexthop via {gw2} dev {dev} weight 3
         ip -6 route add fd99:171::/64 via fd77:171::2 metric 512 proto static
         ip nexthop add id 171 via {gw} dev {dev}
         ip route add 10.252.171.0/24 nhid 171"
    ));
    let before = kept(&a);
    assert_eq!(before[2][0]["nexthops"].as_array().map(Vec::len), Some(2));
    assert!(before.iter().all(|r| r.len() == 1), "{before:#?}");
    assert!(!shown(&a, "route show 10.252.171.0/24").is_empty());

    let dir = TempDir::new("rtab");
    let (mut d, sock) = enforcing(&a, &dir);
    // the rule watch: table 101 is protected from the moment a rule names it
    a.sh("ip rule add from 10.77.171.0/24 lookup 101 pref 1001");
    let protected = poll(Duration::from_secs(5), Duration::from_millis(20), || {
        let out = Command::new(guardian_bin())
            .args(["baseline", "show", "--json", "--socket"])
            .arg(&sock)
            .output()
            .expect("run guardian baseline show");
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let routes = v["routes"].as_array()?;
        routes
            .iter()
            .any(|r| r["route"].as_str().is_some_and(|r| r.contains("table 101")))
            .then_some(())
    });
    assert!(protected.is_some(), "table 101 never became protected");

    let n = d.count();
    a.link_set(dev, false);
    a.link_set(dev, true);
    // four restored, the nexthop-object route skipped
    let done = |evs: &[Value]| {
        changed(evs, &["verified"]).len() >= 4
            && evs.iter().any(|e| is_remedy(e, "route_restore", "skipped"))
    };
    let ok = poll(Duration::from_secs(15), Duration::from_millis(20), || {
        done(&d.events()[n..]).then_some(())
    });
    let events = d.events()[n..].to_vec();
    assert!(
        ok.is_some(),
        "four routes restored, one skipped: {events:#?}"
    );

    // exactly as they were
    assert_eq!(kept(&a), before, "routes after the restore");
    let t100 = lost(&events, "10.250.171.0/24");
    assert_eq!(t100["evidence"]["route"]["table"], 100, "{t100}");
    assert_eq!(str_field(t100, "severity"), Some("error"), "{t100}");
    let by = t100["evidence"]["by_text"].as_str().unwrap_or("");
    assert!(by.starts_with("the kernel"), "{t100}");
    let t101 = lost(&events, "10.253.171.0/24");
    assert_eq!(t101["evidence"]["route"]["table"], 101, "{t101}");
    let ecmp = lost(&events, "10.251.171.0/24");
    let hops = ecmp["evidence"]["route"]["nexthops"].as_array().unwrap();
    let weights: Vec<u64> = hops.iter().map(|h| h["weight"].as_u64().unwrap()).collect();
    assert_eq!(weights, [1, 3], "{ecmp}");
    let v6 = lost(&events, "fd99:171::/64");
    assert_eq!(v6["evidence"]["route"]["family"], "ipv6", "{v6}");
    for f in [t100, t101, ecmp, v6] {
        assert!(remedy_of(&events, f, "verified").is_some(), "{f}");
    }
    // the nexthop object went with the link: reported, no route with a made-up gateway
    let nh = lost(&events, "10.252.171.0/24");
    assert_eq!(nh["evidence"]["route"]["nhid"], 171, "{nh}");
    let skipped = remedy_of(&events, nh, "skipped").expect("route_restore skipped");
    let reason = str_field(skipped, "reason").unwrap_or("");
    assert!(reason.contains("nexthop object 171"), "{skipped}");
    assert!(shown(&a, "route show 10.252.171.0/24").is_empty());
    let events = d.finish();
    let bad = changed(&events, &["failed", "rolled_back"]);
    assert!(bad.is_empty(), "remedies failed: {bad:#?}");
    validate_values(&events);
}

#[test]
fn a_route_deleted_from_table_100_by_a_process_is_reported_not_restored() {
    require_root();
    let a = Netns::new("rtdel-a");
    let b = Netns::new("rtdel-b");
    let v = pair(&a, &b, 172);
    let prefix = "10.250.172.0/24";
    a.sh(&format!(
        "set -e
         ip rule add from 10.77.172.0/24 lookup 100
         ip route add {prefix} via {} table 100",
        v.b_addr
    ));
    let dir = TempDir::new("rtdel");
    let (mut d, _sock) = enforcing(&a, &dir);
    let n = d.count();
    a.sh(&format!("ip route del {prefix} table 100"));
    let (_, lost) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "opened"),
        Duration::from_secs(10),
    );
    eprintln!("deleted from table 100: {lost}");
    let ev = &lost["evidence"];
    assert_eq!(ev["route"]["table"], 100, "{lost}");
    assert!(ev["by"]["pid"].as_u64().is_some(), "{lost}");
    assert_eq!(str_field(&lost, "severity"), Some("warning"), "{lost}");
    let (_, skipped) = d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "skipped"),
        Duration::from_secs(5),
    );
    let reason = str_field(&skipped, "reason").unwrap_or("");
    assert!(reason.contains("deleted by pid"), "{skipped}");
    std::thread::sleep(Duration::from_millis(300));
    let left = shown(&a, "route show table 100");
    assert!(left.is_empty(), "guardian undid the deletion: {left:?}");
    let events = d.finish();
    let acted = changed(&events, &["applied", "verified", "failed", "rolled_back"]);
    assert!(acted.is_empty(), "guardian changed something: {acted:#?}");
    validate_values(&events);
}
