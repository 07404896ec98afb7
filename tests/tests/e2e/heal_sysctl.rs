//! The `sysctl` remedy with the real daemon: it sets exactly the planned keys in the fault's
//! namespace only (the host's and a bystander namespace's six keys are unchanged), waits for
//! the effect (the incident clears, or a MIB counter goes quiet) and reports `verified`;
//! observe mode changes nothing; a change whose effect never shows is rolled back to the exact
//! previous values (listener faults: heal_listen.rs). `GT_RUNS=N` repeats the heal scenarios and prints
//! `heal sysctl(<fault>): median X ms, worst Y ms over N runs` (fault `opened` → `verified`).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use guardian_tests::sockets::*;
use guardian_tests::*;

use super::sysctl_common::*;

/// Ephemeral ports of A exhausted toward B: the range is widened and tw_reuse enabled in A
/// only, the connects succeed again, the incident clears → verified.
#[test]
fn ephemeral_exhaustion_is_healed_in_that_namespace_only() {
    require_root();
    let mut heals = Vec::new();
    for run in 0..gt_runs() {
        let a = Netns::new("hs-eph-a");
        let b = Netns::new("hs-eph-b");
        let c = Netns::new("hs-eph-c");
        let v = pair(&a, &b, 120);
        let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, 5120)));
        a.sysctl("net.ipv4.ip_local_port_range", "40000 40009");
        let (host0, a0, c0) = (dump(None), dump(Some(&a)), dump(Some(&c)));
        let (_state, mut d) = start(&a, &config(""), false);
        let stop = Arc::new(AtomicBool::new(false));
        let client = exhaust(&a, server.addr(), 10, stop.clone());
        let ns = a.inode();
        let (i, open) = d.wait_for_after(
            0,
            |e| is_fault_in(e, "ephemeral_port_exhaustion", "opened", ns),
            Duration::from_secs(10),
        );
        let applied = remedy_of(&mut d, i, &open, "applied", 5);
        assert_eq!(
            dump(Some(&a)),
            with(
                &a0,
                &[
                    ("net.ipv4.ip_local_port_range", "10000 64999"),
                    ("net.ipv4.tcp_tw_reuse", "1")
                ]
            ),
            "exactly the planned keys change in A: {applied}"
        );
        assert_eq!(
            applied["change"]["before"]["sysctl"]["net.ipv4.ip_local_port_range"],
            "40000 40009"
        );
        let verified = remedy_of(&mut d, i, &open, "verified", 15);
        stop.store(true, Ordering::SeqCst);
        let (failed, ok) = client.join().unwrap();
        eprintln!(
            "run {}: {failed} failures, then {ok} connects; {verified}",
            run + 1
        );
        assert!(ok > 0, "connects succeed after the widening");
        assert_eq!(u64_field(&verified, "netns"), ns);
        heals.push(heal_ms(&open, &verified));
        assert_eq!(dump(None), host0, "the host's keys are unchanged");
        assert_eq!(dump(Some(&c)), c0, "another namespace's keys are unchanged");
        let events = d.finish();
        assert!(!events.iter().any(|e| is_remedy(e, "sysctl", "rolled_back")));
        server.stop();
    }
    report("sysctl(ephemeral_port_exhaustion)", heals);
}

/// Observe mode: planned, nothing written.
#[test]
fn observe_mode_changes_no_sysctl() {
    require_root();
    let a = Netns::new("hs-obs-a");
    let b = Netns::new("hs-obs-b");
    let v = pair(&a, &b, 121);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, 5121)));
    a.sysctl("net.ipv4.ip_local_port_range", "40000 40009");
    let (host0, a0) = (dump(None), dump(Some(&a)));
    let (_state, mut d) = start(&a, &config(""), true);
    let stop = Arc::new(AtomicBool::new(false));
    let client = exhaust(&a, server.addr(), 10, stop.clone());
    let ns = a.inode();
    let (i, open) = d.wait_for_after(
        0,
        |e| is_fault_in(e, "ephemeral_port_exhaustion", "opened", ns),
        Duration::from_secs(10),
    );
    let planned = remedy_of(&mut d, i, &open, "planned", 5);
    eprintln!("{planned}");
    assert_eq!(
        planned["change"]["after"]["sysctl"]["net.ipv4.ip_local_port_range"],
        "10000 64999"
    );
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let (failed, ok) = client.join().unwrap();
    assert_eq!(ok, 0, "still exhausted ({failed} failures)");
    assert_eq!(dump(Some(&a)), a0);
    assert_eq!(dump(None), host0);
    let events = d.finish();
    assert!(!events.iter().any(|e| is_type(e, "remedy")
        && matches!(
            str_field(e, "result"),
            Some("applied" | "verified" | "rolled_back")
        )));
    server.stop();
}

/// The effect cannot show in time (the incident needs 3 s without failures to clear, the
/// change gets 300 ms): rolled back to the exact previous values.
#[test]
fn a_change_without_effect_is_rolled_back_exactly() {
    require_root();
    let a = Netns::new("hs-rb-a");
    let b = Netns::new("hs-rb-b");
    let v = pair(&a, &b, 122);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, 5122)));
    a.sysctl("net.ipv4.ip_local_port_range", "40001 40010");
    a.sysctl("net.ipv4.tcp_tw_reuse", "0");
    let a0 = dump(Some(&a));
    let cfg = "[detect.ephemeral_port_exhaustion]\nclear_after_ms = 3000\n\
               [safety]\neffect_timeout_ms = 300\n";
    let (state, mut d) = start(&a, cfg, false);
    let stop = Arc::new(AtomicBool::new(false));
    let client = exhaust(&a, server.addr(), 10, stop.clone());
    let ns = a.inode();
    let (i, open) = d.wait_for_after(
        0,
        |e| is_fault_in(e, "ephemeral_port_exhaustion", "opened", ns),
        Duration::from_secs(10),
    );
    let rolled = remedy_of(&mut d, i, &open, "rolled_back", 10);
    eprintln!("{rolled}");
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert_eq!(
        dump(Some(&a)),
        a0,
        "every key back to its exact previous value"
    );
    let events = d.finish();
    assert!(events.iter().any(|e| is_remedy(e, "sysctl", "applied")));
    assert!(!events.iter().any(|e| is_remedy(e, "sysctl", "verified")));
    let journal = read_tree(state.path());
    assert!(
        journal.contains("rolled_back") && journal.contains("40001 40010"),
        "{journal}"
    );
    server.stop();
}

/// TIME_WAIT toward one destination holds over half of a 200-port range: widened → the ratio
/// falls → the incident clears → verified.
#[test]
fn time_wait_crowding_is_healed_by_widening() {
    require_root();
    let mut heals = Vec::new();
    for run in 0..gt_runs() {
        let a = Netns::new("hs-tw-a");
        let b = Netns::new("hs-tw-b");
        let v = pair(&a, &b, 123);
        let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, 5123)));
        a.sysctl("net.ipv4.ip_local_port_range", "40000 40199");
        let a0 = dump(Some(&a));
        let (_state, mut d) = start(&a, &config(""), false);
        let dst = server.addr();
        assert_eq!(
            run_in_netns(&a, move || connect_n(dst, 110, Duration::from_secs(5))),
            110
        );
        let ns = a.inode();
        let (i, open) = d.wait_for_after(
            0,
            |e| {
                is_fault_in(e, "time_wait_exhaustion", "opened", ns) && e["subject"]["port"] == 5123
            },
            Duration::from_secs(10),
        );
        let verified = remedy_of(&mut d, i, &open, "verified", 15);
        assert_eq!(
            dump(Some(&a)),
            with(
                &a0,
                &[
                    ("net.ipv4.ip_local_port_range", "10000 64999"),
                    ("net.ipv4.tcp_tw_reuse", "1")
                ]
            )
        );
        eprintln!("run {}: {verified}", run + 1);
        heals.push(heal_ms(&open, &verified));
        d.finish();
        server.stop();
    }
    report("sysctl(time_wait_exhaustion)", heals);
}
