//! Issue 14's attack 5 (an unprivileged user) and attack 3 with real decoy floods, written as
//! the attacker would against the release binary in `--mode enforce` with the default config.
//! The attacker's sockets are opened by a thread running as user `nobody` (raw `setresuid`:
//! that thread has nobody's credentials and no capabilities; the test process keeps root).
//!
//! - two SO_REUSEADDR sockets on one 4-tuple give EADDRNOTAVAIL 60 times: the namespace's
//!   `ip_local_port_range` stays as it was (before: widened to 10000-64999 for good);
//! - nobody's abandoned connects (`IP_TTL=1` then close) toward a database behind a router:
//!   `sockopt_failfast` is skipped with the numbers, and root's next connect to the database,
//!   through 1.5 s of dropped SYNs, keeps the default SYN retries and connects (before: root's
//!   connects got `TCP_SYNCNT=1` for 300 s);
//! - the positive control: connects that the network times out, by root and by nobody, do
//!   plan and verify the policy, and root's connect then fails fast (so the tests can fail);
//! - ten hping3 decoy floods from ten spoofed sources plus ten failed binds by nobody, then a
//!   real route loss: `route_restore` still heals it, and no repair-pool budget runs out.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::process::Child;
use std::time::{Duration, Instant};

use guardian_tests::failfast::{
    drop_syns, reuse_connect, root_connect, routed, syn_sent_with, timeout_connects,
};
use guardian_tests::flows::nft_delete;
use guardian_tests::*;
use serde_json::Value;

const DB: u16 = 5432;
const BLACKHOLE: u16 = 5433;
const NOBODY: u32 = 65534;

/// The daemon in `ns`: enforce, the default config, 200 ms ticks, XDP on `xdp`.
fn start(ns: &Netns, dir: &TempDir, xdp: &[&str]) -> Daemon {
    let state = dir.path().join("state");
    let mut args = vec![
        "--mode",
        "enforce",
        "--state-dir",
        state.to_str().unwrap(),
        "--interval-ms",
        "200",
    ];
    for i in xdp {
        args.extend(["--xdp", i]);
    }
    let mut d = Daemon::start(ns, &args);
    d.wait_attached();
    d
}

/// This thread becomes user nobody.
fn as_nobody() {
    // SAFETY: a raw setresuid changes only this thread's credentials (glibc's wrapper would
    // change every thread's).
    let r = unsafe { libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY) };
    assert_eq!(r, 0, "setresuid nobody");
}

fn on_subject(e: &Value, addr: Ipv4Addr, port: u16) -> bool {
    subject_str(e, "addr") == Some(&addr.to_string()) && e["subject"]["port"] == port
}

/// Attack 5a: nobody's two SO_REUSEADDR sockets on one 4-tuple. Before: `ip_local_port_range`
/// widened to 10000-64999 for good. Now the range is unchanged: one socket of the range is in
/// use, by the kernel's own numbers, so nothing is exhausted.
#[test]
fn nobody_cannot_widen_the_port_range() {
    require_root();
    let c = Netns::new("au-pr-c");
    let s = Netns::new("au-pr-s");
    let v = pair(&c, &s, 241);
    let server = DiscardServer::start(&s, SocketAddr::from((v.b_addr, DB)));
    let range = || c.run(&["sysctl", "-n", "net.ipv4.ip_local_port_range"]);
    let before = range();
    let dir = TempDir::new("au-pr");
    let mut d = start(&c, &dir, &[]);
    let (src, dst) = (
        SocketAddrV4::new(v.a_addr, 40123),
        SocketAddrV4::new(v.b_addr, DB),
    );
    // 60 EADDRNOTAVAIL over 4.5 s (13/s, for longer than the fault's 3 s hold).
    let failed = run_in_netns(&c, move || {
        as_nobody();
        let (first, e) = reuse_connect(src, dst);
        assert_eq!(e, 0, "the first socket connects");
        let t0 = Instant::now();
        let failed = (0..60u32)
            .filter(|i| {
                if let Some(w) =
                    (t0 + Duration::from_millis(75) * *i).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(w);
                }
                let (fd, e) = reuse_connect(src, dst);
                unsafe { libc::close(fd) };
                e == libc::EADDRNOTAVAIL
            })
            .count();
        unsafe { libc::close(first) };
        failed
    });
    assert_eq!(failed, 60, "EADDRNOTAVAIL 60/60");
    // Guardian saw them (its counters) and had its 3 s hold plus a clear margin to act.
    let ino = c.inode();
    d.wait_for(
        move |e| is_counters(e, ino) && e["connect_eaddrnotavail"].as_u64() >= Some(60),
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_secs(1));
    let in_use = c.run(&["ss", "-Htan"]).lines().count();
    let after = range();
    let events = d.finish();
    server.stop();
    eprintln!(
        "EADDRNOTAVAIL {failed}/60 as nobody; sockets in the namespace {in_use}; \
         ip_local_port_range {:?} -> {:?}",
        before.trim(),
        after.trim()
    );
    assert_eq!(after, before, "the port range changed");
    let acted: Vec<&Value> = events
        .iter()
        .filter(|e| {
            (is_fault(e, "ephemeral_port_exhaustion", "opened") && e["netns"] == ino)
                || (is_type(e, "remedy")
                    && e["remedy"] == "sysctl"
                    && str_field(e, "result") != Some("skipped"))
        })
        .collect();
    assert!(acted.is_empty(), "{acted:?}");
}

/// Attack 5b: nobody's connects to the database with `IP_TTL=1` (the router drops them and
/// answers ICMP time exceeded), closed right away. Before: `sockopt_failfast` gave root's
/// connects to the database `TCP_SYNCNT=1` for 300 s. Now the fault is reported, the remedy
/// is skipped with the numbers, and root's connect through 1.5 s of dropped SYNs keeps the
/// default SYN retries (it retransmits twice and connects).
#[test]
fn nobody_cannot_make_roots_connects_fail_fast() {
    require_root();
    let n = routed("au-ff", 242, 243);
    let db = SocketAddr::from((n.db, DB));
    let server = DiscardServer::start(&n.d, db);
    let dir = TempDir::new("au-ff");
    let mut d = start(&n.c, &dir, &[]);
    // The namespace is known to the daemon before the attack (its first sample is a baseline).
    assert_eq!(
        run_in_netns(&n.c, move || connect_n(db, 1, Duration::from_secs(2))),
        1
    );
    let ino = n.c.inode();
    d.wait_for(move |e| is_counters(e, ino), Duration::from_secs(5));
    let mark = d.count();
    run_in_netns(&n.c, move || {
        as_nobody();
        let fds: Vec<i32> = (0..30)
            .map(|_| {
                syn_sent_with(db, |fd| {
                    let one: i32 = 1;
                    // SAFETY: setsockopt from a local int.
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_IP,
                            libc::IP_TTL,
                            (&one as *const i32).cast(),
                            4,
                        )
                    };
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        for fd in fds {
            unsafe { libc::close(fd) };
        }
    });
    let (_, fault) = d.wait_for_after(
        mark,
        move |e| is_fault(e, "connect_timeout_cascade", "opened") && on_subject(e, n_db(db), DB),
        Duration::from_secs(5),
    );
    let ev = &fault["evidence"];
    assert_eq!(ev["timed_out"], 0, "{fault}");
    let (_, skipped) = d.wait_for_after(
        mark,
        move |e| is_remedy(e, "sockopt_failfast", "skipped") && on_subject(e, n_db(db), DB),
        Duration::from_secs(5),
    );
    let why = str_field(&skipped, "reason")
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("timed out after SYN retransmissions"), "{why}");
    // Root, through 1.5 s of dropped SYNs: the default retries get it through.
    let retries: i32 =
        n.c.run(&["sysctl", "-n", "net.ipv4.tcp_syn_retries"])
            .trim()
            .parse()
            .unwrap();
    let rtx0 = nstat_get(&n.c, "TcpExtTCPSynRetrans");
    drop_syns(&n.d, "gtauff", DB);
    let root = in_netns(&n.c, move || root_connect(db));
    std::thread::sleep(Duration::from_millis(1500));
    nft_delete(&n.d, "gtauff");
    let (err, ms, syncnt) = root.join().unwrap();
    let rtx = nstat_get(&n.c, "TcpExtTCPSynRetrans") - rtx0;
    let events = d.finish();
    server.stop();
    eprintln!(
        "nobody's abandoned connects: evidence {ev}; skipped: {why}\n\
         root's connect through 1.5 s of dropped SYNs: SO_ERROR {err} after {ms} ms, \
         TCP_SYNCNT {syncnt} (namespace default {retries}), SYN retransmits {rtx}"
    );
    assert!(
        !events.iter().any(|e| is_type(e, "remedy")
            && e["remedy"] == "sockopt_failfast"
            && matches!(str_field(e, "result"), Some("applied" | "verified"))),
        "sockopt_failfast acted"
    );
    assert_eq!(syncnt, retries, "root's connect got another SYN budget");
    assert_eq!(err, 0, "root's connect failed");
    assert!(rtx >= 2, "root's connect retransmitted its SYN {rtx} times");
}

/// The subject address of `db`.
fn n_db(db: SocketAddr) -> Ipv4Addr {
    match db.ip() {
        std::net::IpAddr::V4(a) => a,
        _ => unreachable!(),
    }
}

/// The positive control: the database's port drops SYNs, and connects by root and by nobody
/// time out (13 each, fewer than the fault's 20, so the fault can only open with both). The
/// policy is planned and verified, and root's next connect there fails within 3 s with
/// `TCP_SYNCNT=1`.
#[test]
fn network_timeouts_from_two_uids_do_plan_failfast() {
    require_root();
    let c = Netns::new("au-pc-c");
    let s = Netns::new("au-pc-s");
    let v = pair(&c, &s, 244);
    let good = SocketAddr::from((v.b_addr, DB));
    let dead = SocketAddr::from((v.b_addr, BLACKHOLE));
    let server = DiscardServer::start(&s, good);
    drop_syns(&s, "gtaupc", BLACKHOLE);
    let dir = TempDir::new("au-pc");
    let mut d = start(&c, &dir, &[]);
    assert_eq!(
        run_in_netns(&c, move || connect_n(good, 1, Duration::from_secs(2))),
        1
    );
    let ino = c.inode();
    d.wait_for(move |e| is_counters(e, ino), Duration::from_secs(5));
    let mark = d.count();
    timeout_connects(&c, dead, &[0, NOBODY], 13);
    let (_, fault) = d.wait_for_after(
        mark,
        move |e| {
            is_fault(e, "connect_timeout_cascade", "opened") && on_subject(e, v.b_addr, BLACKHOLE)
        },
        Duration::from_secs(5),
    );
    let (_, verified) = d.wait_for_after(
        mark,
        move |e| is_remedy(e, "sockopt_failfast", "verified") && on_subject(e, v.b_addr, BLACKHOLE),
        Duration::from_secs(5),
    );
    assert_eq!(
        fault["evidence"]["timeout_uids"],
        serde_json::json!([0, NOBODY]),
        "{fault}"
    );
    assert!(
        fault["evidence"]["timed_out"].as_u64() >= Some(20),
        "{fault}"
    );
    let (err, ms, syncnt) = run_in_netns(&c, move || root_connect(dead));
    d.finish();
    server.stop();
    nft_delete(&s, "gtaupc");
    eprintln!(
        "timeouts by uids 0 and {NOBODY}: evidence {}; {}; root's connect then: SO_ERROR {err} \
         after {ms} ms, TCP_SYNCNT {syncnt}",
        fault["evidence"], verified["result"]
    );
    assert_eq!(syncnt, 1);
    assert_eq!(err, libc::ETIMEDOUT);
    assert!(ms <= 3000, "{ms} ms");
}

/// Attack 3 with real decoys: ten hping3 SYN floods from ten spoofed sources (bounded: 1500
/// SYNs each, 5000/s), ten failed binds by nobody, then a real route loss (the link bounces
/// and the kernel flushes the route). Before: `route_restore` was skipped (budget exhausted)
/// and the route stayed gone. Now it is healed, and no repair-pool budget is exhausted.
#[test]
fn decoy_floods_do_not_starve_a_route_repair() {
    require_root();
    let s = Netns::new("au-dc-s");
    let a = Netns::new("au-dc-a");
    let g = Netns::new("au-dc-g");
    let va = pair(&a, &s, 245);
    let vg = pair(&s, &g, 246);
    s.sysctl("net.ipv4.conf.all.rp_filter", "0");
    s.sysctl("net.ipv4.conf.default.rp_filter", "0");
    let prefix = "10.250.246.0/24";
    s.run(&["ip", "route", "add", prefix, "via", &vg.b_addr.to_string()]);
    let server = DiscardServer::start(&s, SocketAddr::from((va.b_addr, DB)));
    let dir = TempDir::new("au-dc");
    let mut d = start(&s, &dir, &[&va.b_if]);
    let target = va.b_addr.to_string();
    let port = DB.to_string();
    let floods: Vec<Child> = (0..10)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(250));
            let spoofed = format!("10.66.{i}.9");
            a.command("timeout")
                .args([
                    "10", "hping3", "-q", "-S", "-p", &port, "-i", "u200", "-c", "1500", "-a",
                    &spoofed, &target,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("hping3")
        })
        .collect();
    // Ten ports held by root; nobody fails to bind each of them.
    let addrs: Vec<SocketAddr> = (0..10)
        .map(|i| SocketAddr::from((va.b_addr, 6200 + i)))
        .collect();
    let held = addrs.clone();
    let holders = run_in_netns(&s, move || {
        held.iter()
            .map(|a| TcpListener::bind(a).unwrap())
            .collect::<Vec<_>>()
    });
    let failed = run_in_netns(&s, move || {
        as_nobody();
        addrs
            .iter()
            .filter(|a| TcpListener::bind(a).is_err())
            .count()
    });
    assert_eq!(failed, 10);
    for mut f in floods {
        let _ = f.wait();
    }
    let syns = d.wait_for(
        |e| e["type"] == "counters" && e["xdp"][0]["syn_rx"].as_u64() >= Some(10_000),
        Duration::from_secs(5),
    );
    // The real fault: the link to the gateway bounces; the kernel flushes the route.
    let n = d.count();
    s.link_set(&vg.a_if, false);
    s.link_set(&vg.a_if, true);
    d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "verified"),
        Duration::from_secs(10),
    );
    let shown = s.run(&["ip", "route", "show", prefix]);
    drop(holders);
    let events = d.finish();
    server.stop();
    let decoy_acts = events
        .iter()
        .filter(|e| is_type(e, "remedy") && str_field(e, "result") == Some("applied"))
        .count();
    let critical: Vec<&Value> = events
        .iter()
        .filter(|e| is_type(e, "remedy") && e["severity"] == "critical")
        .collect();
    eprintln!(
        "decoys: {} SYNs seen by XDP, {decoy_acts} remedies applied, {} critical; route after \
         the bounce: {shown:?}",
        syns["xdp"][0]["syn_rx"],
        critical.len()
    );
    assert!(shown.contains(&format!("via {}", vg.b_addr)), "{shown:?}");
    assert!(
        !critical
            .iter()
            .any(|e| matches!(e["remedy"].as_str(), Some("route_restore" | "link_up"))),
        "the repair pool ran out: {critical:?}"
    );
}
