//! A pod deleted while one of its faults is open: the fault clears once the daemon takes the
//! namespace as gone (no path has led to it for 5 s), with the engine's evidence saying why,
//! and `status` no longer lists it. Before, it stayed open until the kernel gave the number to
//! another namespace, which may be never.
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use guardian_tests::flows::{detect_config, is_fault_on, refuse_once_known};
use guardian_tests::*;
use serde_json::Value;

const SUBNET: u8 = 233;
const PORT: u16 = 5999;
/// The daemon's `GONE_AFTER` (source/counters_gone.rs) and a few 250 ms ticks.
const CLEAR_BOUND: Duration = Duration::from_secs(8);

fn status(sock: &std::path::Path) -> Value {
    let o = Command::new(guardian_bin())
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .expect("guardian status");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

#[test]
fn a_fault_open_in_a_deleted_namespace_clears_saying_why() {
    require_root();
    let home = Netns::new("gone-d");
    let dir = TempDir::new("gone");
    // A fault that would stay open for a minute on its own.
    let cfg = detect_config(
        &dir,
        "[connection_refused]\nwindow_ms = 60000\nclear_after_ms = 60000\n",
    );
    let sock = dir.path().join("guardian.sock");
    let mut d = Daemon::start(
        &home,
        &[
            "--interval-ms",
            "250",
            "--socket",
            sock.to_str().unwrap(),
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();

    let pod = Netns::new("gone-pod");
    let peer = Netns::new("gone-peer");
    let v = pair(&pod, &peer, SUBNET);
    let netns = pod.inode();
    // The pod known first, with one refusal to another port.
    refuse_once_known(&mut d, &pod, SocketAddr::from((v.b_addr, PORT + 1)));
    let t = Duration::from_secs(2);
    let dst = SocketAddr::from((v.b_addr, PORT));
    assert_eq!(
        run_in_netns(&pod, move || connect_refused_n(dst, 30, t)),
        30
    );
    let addr = v.b_addr.to_string();
    let (_, opened) = d.wait_for_after(
        0,
        |e| {
            is_fault_on(
                e,
                "connection_refused",
                "opened",
                netns,
                Some(&addr),
                Some(PORT),
            )
        },
        Duration::from_secs(5),
    );
    let incident = opened["incident"].as_str().unwrap().to_owned();
    let listed = |s: &Value| {
        s["incidents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["incident"] == incident.as_str()))
    };
    assert!(listed(&status(&sock)), "open incident not in status");

    let n = d.count();
    drop(v);
    drop(peer);
    drop(pod);
    let deleted = Instant::now();
    let (_, cleared) = d.wait_for_after(
        n,
        |e| e["type"] == "fault" && e["state"] == "cleared" && e["incident"] == incident.as_str(),
        CLEAR_BOUND.mul_f64(guardian_tests::util::time_scale()),
    );
    let took = deleted.elapsed();
    eprintln!("cleared {took:?} after the deletion: {cleared}");
    assert_eq!(cleared["netns"].as_u64(), Some(netns), "{cleared}");
    assert_eq!(
        cleared["evidence"]["reason"], "the network namespace was deleted",
        "{cleared}"
    );
    assert!(
        cleared["message"]
            .as_str()
            .unwrap_or("")
            .contains("namespace was deleted"),
        "{cleared}"
    );
    assert!(
        !listed(&status(&sock)),
        "the cleared incident is still in status"
    );
    d.finish();
}
