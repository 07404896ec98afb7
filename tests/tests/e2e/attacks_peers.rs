//! Attacks on the XDP limits, run as the attacker would (issue 14, attacks 1, 2 and 4), against
//! the release binary in `--mode enforce` with the default config: a SYN flood spoofing the
//! gateway's address, a load balancer that is simply busy, a spread SYN flood while SYN
//! cookies absorb it. Each test measures what the victim keeps and asserts that guardian
//! said why it did not act.
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use guardian_tests::xdp_limits::*;
use guardian_tests::*;

const GW: u8 = 187;
const ATK: u8 = 188;
const LB: u8 = 189;
const CK_A: u8 = 190;
const CK_C: u8 = 191;
const NEW: u8 = 192;
const PORT: u16 = 5187;

/// The daemon in S, enforce, default config, XDP on `ifaces`.
fn start(s: &Netns, dir: &TempDir, ifaces: &[&str]) -> Daemon {
    let state = dir.path().join("state");
    let mut args = vec![
        "--mode".to_string(),
        "enforce".into(),
        "--state-dir".into(),
        state.to_str().unwrap().into(),
        "--interval-ms".into(),
        "200".into(),
    ];
    for i in ifaces {
        args.extend(["--xdp".into(), i.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(s, &args);
    d.wait_attached();
    d
}

/// `n` connects paced `every` apart, `timeout` each: how many succeeded.
fn paced(dst: SocketAddr, n: usize, every: Duration, timeout: Duration) -> usize {
    let t0 = Instant::now();
    (0..n)
        .filter(|&i| {
            if let Some(w) = (t0 + every * i as u32).checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            TcpStream::connect_timeout(&dst, timeout).is_ok()
        })
        .count()
}

fn skipped_with(e: &serde_json::Value, remedy: &str, words: &[&str]) -> bool {
    is_remedy(e, remedy, "skipped")
        && e["reason"]
            .as_str()
            .is_some_and(|r| words.iter().all(|w| r.contains(w)))
}

/// Attack 1: hping3 floods S with SYNs whose source is S's gateway. Before: the gateway's
/// connects went 100/100 -> 0/100. Now the source limit is refused (the gateway is
/// protected), and the gateway keeps every connect.
#[test]
fn a_flood_spoofing_the_gateway_does_not_cut_the_gateway_off() {
    require_root();
    let g = Netns::new("ap-gw");
    let a = Netns::new("ap-atk");
    let s = Netns::new("ap-s");
    let vg = pair(&g, &s, GW);
    let va = pair(&a, &s, ATK);
    s.sysctl("net.ipv4.conf.all.rp_filter", "0");
    s.sysctl("net.ipv4.conf.default.rp_filter", "0");
    let gw = vg.a_addr.to_string();
    s.run(&["ip", "route", "add", "default", "via", &gw]);
    let server = DiscardServer::start(&s, SocketAddr::from(([0, 0, 0, 0], PORT)));
    let dir = TempDir::new("attack-gw");
    let mut d = start(&s, &dir, &[&vg.b_if, &va.b_if]);
    let target = va.b_addr.to_string();
    let port = PORT.to_string();
    // ~4,000 SYN/s "from the gateway", bounded in count and time.
    let pid = a.spawn(&[
        "timeout", "20", "hping3", "-q", "-S", "-p", &port, "-i", "u250", "-a", &gw, "-c", "80000",
        &target,
    ]);
    let (i, _) = d.wait_for_after(
        0,
        |e| is_fault(e, "syn_flood", "opened") && e["subject"]["port"] == PORT,
        Duration::from_secs(10),
    );
    let (_, skip) = d.wait_for_after(
        i,
        |e| skipped_with(e, "xdp_source_limit", &["protected", "gateway"]),
        Duration::from_secs(5),
    );
    eprintln!("skipped: {}", skip["reason"]);
    // The gateway's own connects into S during the flood: 100, 1 s timeout each.
    let dst = SocketAddr::from((vg.b_addr, PORT));
    let during = run_in_netns(&g, move || {
        paced(dst, 100, Duration::from_millis(20), Duration::from_secs(1))
    });
    let limits = map_entries(&s, &va.b_if, "LIMIT_SRC");
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let events = d.finish();
    server.stop();
    eprintln!("gateway's connects during the flood spoofing it: {during}/100");
    assert!(
        limits.is_empty(),
        "a source limit was installed: {limits:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| is_remedy(e, "xdp_source_limit", "applied")),
        "xdp_source_limit acted"
    );
    assert_eq!(during, 100, "the gateway lost connects");
}

/// Attack 2 (no attack at all): one load balancer opens ~400 connections/s for 4 s. Before:
/// `xdp_source_limit` took it from 269/s to 19/s. Now the plan is refused (the balancer
/// completes its handshakes) and it keeps its rate.
#[test]
fn a_busy_load_balancer_keeps_its_rate() {
    require_root();
    let l = Netns::new("ap-lb");
    let s = Netns::new("ap-lbs");
    let v = pair(&l, &s, LB);
    let server = DiscardServer::start(&s, SocketAddr::from(([0, 0, 0, 0], PORT)));
    let dir = TempDir::new("attack-lb");
    let mut d = start(&s, &dir, &[&v.b_if]);
    let dst = SocketAddr::from((v.b_addr, PORT));
    // Per second: (attempted, connected), 400/s for 4 s, 200 ms timeout each.
    let lb = in_netns(&l, move || {
        let mut per_s = vec![(0usize, 0usize); 4];
        let t0 = Instant::now();
        for i in 0..1600u32 {
            let due = t0 + Duration::from_micros(2500) * i;
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            let sec = (t0.elapsed().as_secs() as usize).min(3);
            per_s[sec].0 += 1;
            per_s[sec].1 +=
                TcpStream::connect_timeout(&dst, Duration::from_millis(200)).is_ok() as usize;
            if t0.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        per_s
    });
    let src = v.a_addr.to_string();
    let (i, _) = d.wait_for_after(
        0,
        move |e| is_fault(e, "connection_flood", "opened") && e["subject"]["addr"] == src,
        Duration::from_secs(6),
    );
    let (_, skip) = d.wait_for_after(
        i,
        |e| skipped_with(e, "xdp_source_limit", &["protected", "handshakes"]),
        Duration::from_secs(5),
    );
    eprintln!("skipped: {}", skip["reason"]);
    let per_s = lb.join().unwrap();
    let limits = map_entries(&s, &v.b_if, "LIMIT_SRC");
    d.finish();
    server.stop();
    eprintln!("load balancer per second (attempted, connected): {per_s:?}");
    assert!(limits.is_empty(), "the balancer was limited: {limits:?}");
    // The last two seconds, after the fault opened: it still connects at its rate.
    for (tried, ok) in &per_s[2..] {
        assert!(*ok * 100 >= *tried * 95, "rate fell: {per_s:?}");
    }
}

/// Attack 4: a spread SYN flood (random sources) while SYN cookies are on and regular clients
/// keep connecting. Before: `xdp_port_limit` took a new client from 20/20 to 0/20. Now the
/// port limit is skipped while the cookies absorb the flood, and a new client gets through.
#[test]
fn a_spread_flood_absorbed_by_syn_cookies_does_not_shut_out_new_clients() {
    require_root();
    let a = Netns::new("ap-cka");
    let c = Netns::new("ap-ckc");
    let s = Netns::new("ap-cks");
    let va = pair(&a, &s, CK_A);
    let vc = pair(&c, &s, CK_C);
    s.sysctl("net.ipv4.tcp_syncookies", "1");
    s.sysctl("net.ipv4.tcp_max_syn_backlog", "128");
    s.sysctl("net.ipv4.conf.all.rp_filter", "0");
    s.sysctl("net.ipv4.conf.default.rp_filter", "0");
    // SYN-ACKs to the spoofed sources go to A, which drops them.
    let gw = va.a_addr.to_string();
    s.run(&["ip", "route", "add", "default", "via", &gw]);
    let server = DiscardServer::start(&s, SocketAddr::from(([0, 0, 0, 0], PORT)));
    let dir = TempDir::new("attack-ck");
    let mut d = start(&s, &dir, &[&va.b_if, &vc.b_if]);
    let dst = SocketAddr::from((vc.b_addr, PORT));
    let target = va.b_addr.to_string();
    let port = PORT.to_string();
    // Regular clients: 10 connects/s through the flood (bounded: 20 s).
    let regular = in_netns(&c, move || {
        paced(dst, 200, Duration::from_millis(100), Duration::from_secs(1))
    });
    let pid = a.spawn(&[
        "timeout",
        "20",
        "hping3",
        "-q",
        "-S",
        "-p",
        &port,
        "-i",
        "u250",
        "--rand-source",
        "-c",
        "80000",
        &target,
    ]);
    let (i, _) = d.wait_for_after(
        0,
        |e| is_fault(e, "syn_flood", "opened") && e["subject"]["port"] == PORT,
        Duration::from_secs(10),
    );
    let (_, skip) = d.wait_for_after(
        i,
        |e| skipped_with(e, "xdp_port_limit", &["SYN cookies"]),
        Duration::from_secs(5),
    );
    eprintln!("skipped: {}", skip["reason"]);
    // A new client (a source S never saw): 20 connects, 1 s timeout each.
    let c2 = Netns::new("ap-ckn");
    let vn = pair(&c2, &s, NEW);
    let dst_new = SocketAddr::from((vn.b_addr, PORT));
    let fresh = run_in_netns(&c2, move || {
        paced(
            dst_new,
            20,
            Duration::from_millis(50),
            Duration::from_secs(1),
        )
    });
    let ports = map_entries(&s, &va.b_if, "LIMIT_PORT");
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let kept = regular.join().unwrap();
    d.finish();
    server.stop();
    eprintln!("new client during the spread flood: {fresh}/20; regular clients {kept}/200");
    assert!(ports.is_empty(), "a port limit was installed: {ports:?}");
    assert_eq!(fresh, 20, "the new client was shut out");
}
