//! `guardian scan` in a namespace: its TIME_WAIT count equals `ss`'s, a missing default route
//! is bad (exit 1), and adding one makes that line ok.
use std::net::SocketAddr;
use std::time::Duration;

use guardian_tests::*;
use serde_json::Value;

const SUBNET: u8 = 154;
const PORT: u16 = 5154;
const K: usize = 50;

fn scan(ns: &Netns) -> (Option<i32>, Value) {
    let o = ns
        .command(guardian_bin().to_str().unwrap())
        .args(["scan", "--json"])
        .output()
        .expect("run guardian scan");
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v)
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {v}"))
}

#[test]
fn scan_counts_time_wait_like_ss_and_flags_a_missing_default_route() {
    require_root();
    let a = Netns::new("scan-a");
    let b = Netns::new("scan-b");
    let v = pair(&a, &b, SUBNET);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, PORT)));
    let dst = server.addr();
    let ok = run_in_netns(&a, move || connect_n(dst, K, Duration::from_secs(10)));
    assert_eq!(ok, K);
    assert!(server.wait_finished(K as u64, Duration::from_secs(10)));
    // Wait until the count stops moving (TIME_WAIT lasts 60 s, far longer than this test).
    let mut last = usize::MAX;
    let settled = poll(Duration::from_secs(10), Duration::from_millis(200), || {
        let now = ss_time_wait(&a);
        let stable = now == last && now > 0;
        last = now;
        stable.then_some(now)
    })
    .expect("TIME_WAIT settles");

    let (code, out) = scan(&a);
    let ss = ss_time_wait(&a);
    eprintln!(
        "scan time_wait {}, ss {ss} (settled at {settled})",
        out["facts"]["time_wait"]
    );
    assert_eq!(out["facts"]["time_wait"].as_u64(), Some(ss as u64), "{out}");
    let remote = format!("to {}:{PORT}", v.b_addr);
    assert!(
        out["facts"]["ports_per_remote"][remote.trim_start_matches("to ")]
            .as_u64()
            .unwrap()
            >= ss as u64
    );
    let d = check(&out, "default route");
    assert_eq!(
        (d["level"].as_str(), d["value"].as_str()),
        (Some("bad"), Some("none")),
        "{d}"
    );
    assert_eq!(code, Some(1), "a bad line exits 1");
    assert_eq!(check(&out, &v.a_if)["level"], "ok");

    a.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &v.b_addr.to_string(),
    ]);
    let (_, out) = scan(&a);
    let d = check(&out, "default route");
    assert_eq!(d["level"], "ok", "{d}");
    assert!(
        d["value"].as_str().unwrap().contains(&v.b_addr.to_string()),
        "{d}"
    );

    // The human screen: one line per check, a summary at the end.
    let o = a
        .command(guardian_bin().to_str().unwrap())
        .arg("scan")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("TIME_WAIT") && text.lines().last().unwrap().ends_with("bad"),
        "{text}"
    );
}
