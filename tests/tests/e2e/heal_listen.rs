//! The `sysctl` remedy on listener faults, with the real daemon:
//! - `accept_backlog_overflow`: a listener asks for a backlog of 4096 but `somaxconn` = 4 caps
//!   it. `somaxconn` (and `tcp_max_syn_backlog`) are raised in that namespace; the listener
//!   listens again when it sees the new limit, `ListenOverflows` stops growing → `verified`.
//!   Without the re-listen the counter keeps growing and the change is rolled back exactly.
//! - `syn_flood`: `tcp_syncookies` = 0 and a listener with backlog 8 under a bounded hping3 SYN
//!   stream (200/s, spoofed from A with A's RSTs dropped so half-open requests stay queued):
//!   `TCPReqQFullDrop` grows; cookies are turned on and it stops → `verified`.
//!
//! `GT_RUNS=N` repeats the healing scenarios and prints heal times (`opened` → `verified`).
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guardian_tests::sockets::*;
use guardian_tests::*;
use serde_json::Value;

use super::sysctl_common::*;

/// One accept-backlog scenario in subnet `subnet`; returns (fault, final remedy event).
fn backlog(subnet: u8, port: u16, relisten: bool, cfg: &str) -> (Value, Value) {
    let a = Netns::new("hl-bl-a");
    let b = Netns::new("hl-bl-b");
    let v = pair(&a, &b, subnet);
    b.sysctl("net.core.somaxconn", "4");
    let b0 = dump(Some(&b));
    let (_state, mut d) = start(&b, cfg, false);
    let laddr = SocketAddrV4::new(v.b_addr, port);
    let listener = run_in_netns(&b, move || listen_backlog(laddr, 4096));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let clients = in_netns(&a, move || {
        let end = Instant::now() + Duration::from_secs(20);
        let mut held = Vec::new();
        while !stop2.load(Ordering::SeqCst) && Instant::now() < end {
            let to = SocketAddr::V4(laddr);
            if let Ok(s) = TcpStream::connect_timeout(&to, Duration::from_millis(100)) {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        held.len()
    });
    let ns = b.inode();
    let (i, open) = d.wait_for_after(
        0,
        |e| is_fault_in(e, "accept_backlog_overflow", "opened", ns),
        Duration::from_secs(10),
    );
    let applied = remedy_of(&mut d, i, &open, "applied", 5);
    let note = applied["change"]["after"]["takes_effect"].as_str().unwrap();
    assert!(note.contains("listen(2) again"), "{applied}");
    let syn_backlog = b0[4].1.parse::<u64>().unwrap();
    let mut expect = vec![("net.core.somaxconn", "16384")];
    if syn_backlog < 16384 {
        expect.push(("net.ipv4.tcp_max_syn_backlog", "16384"));
    }
    assert_eq!(dump(Some(&b)), with(&b0, &expect), "{applied}");
    if relisten {
        // The application listens again once it sees the new limit.
        // SAFETY: listen(2) on a descriptor we own.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 4096) }, 0);
    }
    let end = if relisten { "verified" } else { "rolled_back" };
    let last = remedy_of(&mut d, i, &open, end, 15);
    let overflows = nstat_get(&b, "TcpExtListenOverflows");
    if relisten {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            nstat_get(&b, "TcpExtListenOverflows"),
            overflows,
            "overflows stopped"
        );
    } else {
        assert_eq!(
            dump(Some(&b)),
            b0,
            "rolled back to the exact previous values"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let held = clients.join().unwrap();
    eprintln!("{held} connections held, ListenOverflows {overflows}; {last}");
    d.finish();
    drop(listener);
    (open, last)
}

#[test]
fn accept_backlog_capped_by_somaxconn_is_raised() {
    require_root();
    let mut heals = Vec::new();
    for _ in 0..gt_runs() {
        let (open, verified) = backlog(124, 5124, true, &config(""));
        heals.push(heal_ms(&open, &verified));
    }
    report("sysctl(accept_backlog_overflow)", heals);
}

#[test]
fn accept_backlog_without_relisten_is_rolled_back() {
    require_root();
    let cfg = config("[safety]\neffect_timeout_ms = 1500\n");
    let (_, rolled) = backlog(125, 5125, false, &cfg);
    assert!(
        rolled["reason"].as_str().unwrap().contains("no effect"),
        "{rolled}"
    );
}

#[test]
fn syn_flood_without_cookies_gets_cookies() {
    require_root();
    let mut heals = Vec::new();
    for run in 0..gt_runs() {
        let a = Netns::new("hl-syn-a");
        let b = Netns::new("hl-syn-b");
        let c = Netns::new("hl-syn-c");
        let v = pair(&a, &b, 126);
        b.sysctl("net.ipv4.tcp_syncookies", "0");
        let (host0, b0, c0) = (dump(None), dump(Some(&b)), dump(Some(&c)));
        // A answers B's SYN-ACKs with RSTs (no socket): drop them so requests stay queued.
        nft::load(
            &a,
            "table inet gt_syn {\n chain out {\n  type filter hook output priority 0; \
             policy accept;\n  tcp flags & rst == rst drop\n }\n}\n",
        );
        let cfg = "[detect.syn_flood]\nsyn_per_sec = 50.0\nclear_after_ms = 1000\n";
        let state = TempDir::new("hl-syn-cfg");
        let path = state.path().join("g.toml");
        std::fs::write(&path, cfg).unwrap();
        let sd = state.path().join("state");
        let mut d = Daemon::start(
            &b,
            &[
                "--mode",
                "enforce",
                "--xdp",
                &v.b_if,
                "--interval-ms",
                "250",
                "--config",
                path.to_str().unwrap(),
                "--state-dir",
                sd.to_str().unwrap(),
            ],
        );
        d.wait_attached();
        let laddr = SocketAddrV4::new(v.b_addr, 5126);
        let listener = run_in_netns(&b, move || listen_backlog(laddr, 8));
        let drops0 = nstat_get(&b, "TcpExtTCPReqQFullDrop");
        let dst = v.b_addr.to_string();
        // 200 SYNs/s for at most 15 s.
        a.spawn(&[
            "hping3", "-q", "-S", "-p", "5126", "-i", "u5000", "-c", "3000", &dst,
        ]);
        let ns = b.inode();
        let (i, open) = d.wait_for_after(
            0,
            |e| is_fault_in(e, "syn_flood", "opened", ns) && e["subject"]["port"] == 5126,
            Duration::from_secs(10),
        );
        let drops1 = nstat_get(&b, "TcpExtTCPReqQFullDrop");
        let verified = remedy_of(&mut d, i, &open, "verified", 10);
        let drops2 = nstat_get(&b, "TcpExtTCPReqQFullDrop");
        std::thread::sleep(Duration::from_millis(500));
        let drops3 = nstat_get(&b, "TcpExtTCPReqQFullDrop");
        let cookies = nstat_get(&b, "TcpExtTCPReqQFullDoCookies");
        eprintln!(
            "run {}: ReqQFullDrop {drops0} -> {drops1} (opened) -> {drops2} (verified) -> \
             {drops3}; ReqQFullDoCookies {cookies}; {verified}",
            run + 1
        );
        assert!(drops1 > drops0, "without cookies a full SYN queue drops");
        assert_eq!(drops3, drops2, "with cookies it stops dropping");
        assert!(cookies > 0, "cookies answer instead");
        assert_eq!(
            dump(Some(&b)),
            with(&b0, &[("net.ipv4.tcp_syncookies", "1")])
        );
        assert_eq!(dump(None), host0);
        assert_eq!(dump(Some(&c)), c0);
        heals.push(heal_ms(&open, &verified));
        d.finish();
        drop(listener);
    }
    report("sysctl(syn_flood)", heals);
}
