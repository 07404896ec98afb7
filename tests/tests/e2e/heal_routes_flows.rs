//! The route remedies end to end for flow faults, the real daemon in a client namespace:
//! `route_mtu` (mtu_blackhole), `route_failover` and `route_cc` (retransmit_storm). Each
//! scenario runs in three modes: enforce (verified, heal time opened → verified over `GT_RUNS`
//! runs), observe (planned, the route table unchanged), and a variant whose change cannot
//! verify (rolled back to exactly the routes before). Link faults: `heal_routes.rs`.
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guardian_tests::flows::{nft, nft_delete};
use guardian_tests::*;

use super::routes_common::*;

// ---------------------------------------------------------------------------------------------
// mtu_blackhole → route_mtu: client --134-- router --135-- server; the router's far link has
// MTU 1280 and the router drops its ICMP frag-needed (as in faults_flows). A locked MTU of 1280
// for the server lets the stuck bulk transfer finish (a locked MTU also clears DF). Rollback:
// 1400 while the router also drops forwarded packets above 1300 bytes, so the fault does not
// clear within the effect timeout.

const MB_PORT: u16 = 5134;

#[test]
fn mtu_blackhole_gets_a_locked_route_mtu() {
    scenario("route_mtu", mtu_once);
}

fn mtu_once(mode: Mode) -> Option<f64> {
    let c = Netns::new("mt-c");
    let r = Netns::new("mt-r");
    let s = Netns::new("mt-s");
    let v1 = pair(&c, &r, 134);
    let v2 = pair(&r, &s, 135);
    r.sysctl("net.ipv4.ip_forward", "1");
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.135.0/24",
        "via",
        &v1.b_addr.to_string(),
    ]);
    s.run(&[
        "ip",
        "route",
        "add",
        "10.77.134.0/24",
        "via",
        &v2.a_addr.to_string(),
    ]);
    r.run(&["ip", "link", "set", &v2.a_if, "mtu", "1280"]);
    // A locked MTU clears DF, so the router would fragment a too-big packet: in the rollback
    // variant it drops forwarded packets above 1300 bytes too, and 1400 cannot get through.
    let big = if mode == Mode::Rollback {
        " chain big {\n  type filter hook forward priority 0; policy accept;\n  ip length > 1300 drop\n }\n"
    } else {
        ""
    };
    nft(
        &r,
        &format!(
            "table inet gtroutes {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  \
             icmp type destination-unreachable icmp code frag-needed drop\n }}\n{big}}}\n"
        ),
    );
    let server = DiscardServer::start(&s, SocketAddr::from((v2.b_addr, MB_PORT)));
    let mtu = if mode == Mode::Rollback { 1400 } else { 1280 };
    let config = format!(
        "[detect.mtu_blackhole]\nclear_after_ms = 500\n[remedies.route_mtu]\nmtu_ipv4 = {mtu}\n\
         [safety]\neffect_timeout_ms = 4000\n"
    );
    let (_st, mut d) = daemon(&c, mode, &config, &[]);
    let before = routes(&c);
    let n = d.count();
    let dst = server.addr();
    let sender = in_netns(&c, move || {
        let mut sock = TcpStream::connect_timeout(&dst, Duration::from_secs(3)).expect("connect");
        sock.write_all(&[1u8; 100]).expect("small write");
        std::thread::sleep(Duration::from_millis(50));
        sock.set_write_timeout(Some(Duration::from_secs(25)))
            .unwrap();
        let ok = sock.write_all(&vec![0x5au8; 2 << 20]).is_ok();
        let _ = sock.shutdown(std::net::Shutdown::Write);
        ok
    });
    let (_, fault) = d.wait_for_after(
        n,
        |e| is_fault(e, "mtu_blackhole", "opened"),
        Duration::from_secs(10),
    );
    let heal = outcome(&mut d, n, &fault, "route_mtu", mode, 15);
    match mode {
        Mode::Enforce => {
            let shown = c.run(&["ip", "route", "show", &v2.b_addr.to_string()]);
            assert!(shown.contains("mtu lock 1280"), "{shown}");
            assert!(sender.join().unwrap(), "the bulk transfer did not complete");
        }
        Mode::Observe | Mode::Rollback => {
            if mode == Mode::Observe {
                std::thread::sleep(Duration::from_millis(500));
                assert_eq!(routes(&c), before, "observe changed the routes");
            }
            routes_back(&c, &before, "after the rollback");
            nft_delete(&r, "gtroutes");
            assert!(sender.join().unwrap(), "the bulk transfer did not complete");
        }
    }
    d.finish();
    server.stop();
    heal
}

// ---------------------------------------------------------------------------------------------
// retransmit_storm → route_failover: client --136-- server (primary, the server drops 10 % of
// what arrives on it), client --137-- server (backup). The route to the server moves to the
// backup gateway and the storm clears. Rollback: the backup is lossy too, the storm never
// clears, the route goes back exactly.

const RS_DST: &str = "10.77.138.1";
const RS_PORT: u16 = 5136;

#[test]
fn retransmit_storm_fails_over_to_the_backup_gateway() {
    scenario("route_failover (retransmit_storm)", storm_once);
}

fn storm_once(mode: Mode) -> Option<f64> {
    let c = Netns::new("rs-c");
    let s = Netns::new("rs-s");
    let p = pair(&c, &s, 136);
    let b = pair(&c, &s, 137);
    server_on(&s, RS_DST);
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.138.0/24",
        "via",
        &p.b_addr.to_string(),
    ]);
    let lossy = if mode == Mode::Rollback {
        format!("{{ \"{}\", \"{}\" }}", p.b_if, b.b_if)
    } else {
        format!("\"{}\"", p.b_if)
    };
    nft(
        &s,
        &format!(
            "table inet gtroutes {{\n chain in {{\n  type filter hook input priority 0; policy accept;\n  \
             iifname {lossy} tcp dport {RS_PORT} numgen random mod 100 < 10 drop\n }}\n}}\n"
        ),
    );
    let server = DiscardServer::start(&s, SocketAddr::from(([10, 77, 138, 1], RS_PORT)));
    // Rollback: both paths lose 10 %, so the switch must not help. TCP can stall in RTO
    // backoff for longer than the 2 s window right after the switch (no segment at all: the
    // MIB counters cannot tell that from traffic that stopped), which would clear the fault
    // and verify the switch. The fault must stay absent 6 s (beyond the 5 s effect deadline)
    // to clear here, so the test judges the rollback, not the stall.
    let clear_after = if mode == Mode::Rollback { 6000 } else { 0 };
    let config = format!(
        "[detect.retransmit_storm]\nwindow_ms = 2000\nmin_segs = 300\nclear_after_ms = {clear_after}\n\
         [remedies.route_failover]\nbackups = [{{ prefix = \"10.77.138.0/24\", via = \"{}\" }}]\n\
         [safety]\neffect_timeout_ms = 5000\n",
        b.b_addr
    );
    let (_st, mut d) = daemon(&c, mode, &config, &[]);
    let before = routes(&c);
    let n = d.count();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let dst = server.addr();
    let sender = in_netns(&c, move || {
        let start = Instant::now();
        let mut sock = TcpStream::connect_timeout(&dst, Duration::from_secs(3)).expect("connect");
        sock.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let buf = vec![0x5au8; 64 * 1024];
        while !stop2.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(25) {
            if sock.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let (_, fault) = d.wait_for_after(
        n,
        |e| is_fault(e, "retransmit_storm", "opened"),
        Duration::from_secs(10),
    );
    let heal = outcome(&mut d, n, &fault, "route_failover", mode, 15);
    match mode {
        Mode::Enforce => {
            let shown = c.run(&["ip", "route", "get", RS_DST]);
            assert!(shown.contains(&format!("via {}", b.b_addr)), "{shown}");
        }
        Mode::Observe => assert_eq!(routes(&c), before, "observe changed the routes"),
        Mode::Rollback => routes_back(&c, &before, "after the rollback"),
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    d.finish();
    server.stop();
    heal
}

// ---------------------------------------------------------------------------------------------
// retransmit_storm → route_cc: one lossy link (no backup configured), the client's default
// congestion control is reno; the route to the server gets `congctl bbr` and a new connection
// uses it. The loss is the test's, not something BBR removes: the test lets it stop once the
// change is applied, so `verified` (the storm clears) measures the test, not the remedy.
// Rollback: the loss stays, the storm does not clear, the route goes back exactly.

#[test]
fn retransmit_storm_sets_the_routes_congestion_control() {
    scenario("route_cc", cc_once);
}

fn cc_once(mode: Mode) -> Option<f64> {
    let c = Netns::new("cc-c");
    let s = Netns::new("cc-s");
    let p = pair(&c, &s, 136);
    server_on(&s, RS_DST);
    c.sysctl("net.ipv4.tcp_congestion_control", "reno");
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.138.0/24",
        "via",
        &p.b_addr.to_string(),
    ]);
    nft(
        &s,
        &format!(
            "table inet gtroutes {{\n chain in {{\n  type filter hook input priority 0; policy accept;\n  \
             tcp dport {RS_PORT} numgen random mod 100 < 10 drop\n }}\n}}\n"
        ),
    );
    let server = DiscardServer::start(&s, SocketAddr::from(([10, 77, 138, 1], RS_PORT)));
    // Rollback: the loss stays, so bbr must not help; a stall of the flow (RTO backoff, or
    // another remedy changing its route: mtu_blackhole's route_mtu, seen in CI) can empty the
    // 2 s window and clear the fault before the 5 s effect deadline, which would verify
    // route_cc. As in `storm_once`, the fault must stay absent 6 s to clear here.
    let clear_after = if mode == Mode::Rollback { 6000 } else { 0 };
    let config = format!(
        "[detect.retransmit_storm]\nwindow_ms = 2000\nmin_segs = 300\nclear_after_ms = {clear_after}\n\
         [remedies.route_cc]\nprefixes = [\"10.77.138.0/24\"]\n\
         [safety]\neffect_timeout_ms = 5000\n"
    );
    let (_st, mut d) = daemon(&c, mode, &config, &[]);
    let before = routes(&c);
    let n = d.count();
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, dst) = (stop.clone(), server.addr());
    let sender = in_netns(&c, move || {
        let start = Instant::now();
        let mut sock = TcpStream::connect_timeout(&dst, Duration::from_secs(3)).expect("connect");
        sock.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let buf = vec![0x5au8; 64 * 1024];
        while !stop2.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(25) {
            if sock.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let (_, fault) = d.wait_for_after(
        n,
        |e| is_fault(e, "retransmit_storm", "opened"),
        Duration::from_secs(10),
    );
    if mode == Mode::Enforce {
        remedy_event(&mut d, n, "route_cc", "applied", 5);
        let shown = c.run(&["ip", "route", "show", "10.77.138.0/24"]);
        assert!(shown.contains("congctl bbr"), "{shown}");
        // a new connection picks the route's algorithm (its SYN crosses the 10 % loss too: a
        // few tries)
        let probe = run_in_netns(&c, move || {
            (0..5).find_map(|_| TcpStream::connect_timeout(&dst, Duration::from_secs(2)).ok())
        });
        assert!(
            probe.is_some(),
            "no probe connection to {RS_DST} in 5 tries"
        );
        let ss = c.run(&["ss", "-tin", "dst", RS_DST]);
        assert!(
            ss.contains("bbr"),
            "no connection to {RS_DST} uses bbr:\n{ss}"
        );
        drop(probe);
        nft_delete(&s, "gtroutes");
    }
    let heal = outcome(&mut d, n, &fault, "route_cc", mode, 15);
    match mode {
        Mode::Enforce => {}
        Mode::Observe => assert_eq!(routes(&c), before, "observe changed the routes"),
        Mode::Rollback => routes_back(&c, &before, "after the rollback"),
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    d.finish();
    server.stop();
    heal
}
