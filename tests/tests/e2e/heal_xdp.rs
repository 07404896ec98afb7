//! Healing floods with guardian's XDP SYN limits: `xdp_source_limit` on a connection flood
//! from one source, `xdp_port_limit` on a spoofed SYN flood (hping3 --rand-source).
//!
//! The daemon runs in the server namespace S with `--xdp` on S's veths; the limit maps are
//! read back with bpftool through the program attached to S's interface (so that another
//! guardian running on the machine is never confused with ours).
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guardian_tests::flows::*;
use guardian_tests::xdp_limits::*;
use guardian_tests::*;

const CF_A: u8 = 100;
const CF_C: u8 = 101;
const CF_PORT: u16 = 5100;
const SF_A: u8 = 102;
const SF_C: u8 = 103;
const SF_PORT: u16 = 5102;

/// TTL of the source limit in the tests (the default is 60 s).
const SRC_TTL_MS: u64 = 6000;

/// Starts the daemon in S with `--config` (the limits' parameters, `src_ttl_ms` for the
/// source limit) and the detector thresholds in `detect`. The sysctl remedy (tcp_syncookies,
/// first on syn_flood's ladder) is off: these tests are about the XDP limits.
fn start(
    s: &Netns,
    dir: &TempDir,
    mode: &str,
    detect: &str,
    src_ttl_ms: u64,
    ifaces: &[&str],
) -> Daemon {
    let detect = detect_config(dir, detect);
    let config: PathBuf = dir.path().join("guardian.toml");
    std::fs::write(
        &config,
        format!(
            "[remedies]\nmodes = {{ sysctl = \"off\" }}\n\n[remedies.xdp_source_limit]\nrate_pps = 2\nburst = 2\nttl_ms = {src_ttl_ms}\n\n\
             [remedies.xdp_port_limit]\nrate_pps = 10\nburst = 20\nttl_ms = 30000\n\n\
             # The flooding client completes its handshakes: limiting it is an operator's choice.\n\
             [safety]\nprotected_sources = [\"gateways\", \"resolvers\", \"local\"]\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut args = vec![
        "--mode".to_string(),
        mode.into(),
        "--state-dir".into(),
        state.to_str().unwrap().into(),
        "--interval-ms".into(),
        "200".into(),
        "--detect-config".into(),
        detect.to_str().unwrap().into(),
        "--config".into(),
        config.to_str().unwrap().into(),
    ];
    for i in ifaces {
        args.extend(["--xdp".into(), i.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(s, &args);
    d.wait_attached();
    d
}

// ---------------------------------------------------------------------------------------------
// connection_flood from one source: A connects ~400/s, C is another client.

#[test]
fn enforce_limits_a_connection_flooding_source() {
    require_root();
    heal_times("xdp_source_limit", |_| {
        match conn_flood_once(Mode::Enforce) {
            Outcome::Verified(ms) => ms,
            _ => unreachable!(),
        }
    });
}

#[test]
fn observe_plans_a_source_limit_and_changes_nothing() {
    require_root();
    assert!(matches!(conn_flood_once(Mode::Observe), Outcome::Planned));
}

#[test]
fn a_limit_that_cannot_verify_is_rolled_back() {
    require_root();
    assert!(matches!(
        conn_flood_once(Mode::Unverifiable),
        Outcome::RolledBack
    ));
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Enforce,
    Observe,
    /// Enforce with a TTL of 0: the entry is expired as soon as it is written.
    Unverifiable,
}

enum Outcome {
    /// ms from `opened` to `verified`.
    Verified(f64),
    Planned,
    RolledBack,
}

/// A floods (~400 connects/s for 3 s), C is another client; the daemon runs in S.
fn conn_flood_once(mode: Mode) -> Outcome {
    let a = Netns::new("hx-a");
    let c = Netns::new("hx-c");
    let s = Netns::new("hx-s");
    let va = pair(&a, &s, CF_A);
    let vc = pair(&c, &s, CF_C);
    let server = DiscardServer::start(&s, SocketAddr::from(([0, 0, 0, 0], CF_PORT)));
    let dir = TempDir::new("heal-xdp-cf");
    let cfg =
        "[connection_flood]\nper_source_per_sec = 100.0\nwindow_ms = 1000\nclear_after_ms = 1000\n";
    let (dmode, ttl) = match mode {
        Mode::Enforce => ("enforce", SRC_TTL_MS),
        Mode::Observe => ("observe", SRC_TTL_MS),
        Mode::Unverifiable => ("enforce", 0),
    };
    let mut d = start(&s, &dir, dmode, cfg, ttl, &[&va.b_if, &vc.b_if]);
    let (dst_a, dst_c) = (
        SocketAddr::from((va.b_addr, CF_PORT)),
        SocketAddr::from((vc.b_addr, CF_PORT)),
    );
    let src = va.a_addr.to_string();
    let netns = s.inode();
    let limits = || map_entries(&s, &va.b_if, "LIMIT_SRC");

    let flood = in_netns(&a, move || {
        let start = Instant::now();
        let (mut ok, mut tried) = (0, 0);
        for i in 0..1200u64 {
            if start.elapsed() > Duration::from_secs(3) {
                break;
            }
            let due = start + Duration::from_micros(2500 * i);
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            tried += 1;
            ok += TcpStream::connect_timeout(&dst_a, Duration::from_millis(200)).is_ok() as usize;
        }
        (ok, tried)
    });
    let s2 = src.clone();
    let (i, opened) = d.wait_for_after(
        0,
        move |e| is_fault_on(e, "connection_flood", "opened", netns, Some(&s2), None),
        Duration::from_secs(5),
    );
    let result = match mode {
        Mode::Enforce => "verified",
        Mode::Observe => "planned",
        Mode::Unverifiable => "rolled_back",
    };
    // Enforce: verified once the incident clears (the source's rate falls under the limit).
    let (_, ev) = d.wait_for_after(
        i,
        |e| is_remedy(e, "xdp_source_limit", result),
        Duration::from_secs(10),
    );
    let (ok, tried) = flood.join().unwrap();
    eprintln!("{mode:?}: flood {ok}/{tried} connected; {result}: {ev}");
    assert_eq!(ev["fault"], "connection_flood", "{ev}");
    assert_eq!(u64_field(&ev, "netns"), netns);
    let installed = limits();
    // Another client connects fine whatever the mode.
    // (Paced at 20/s: a client well under the flood limit.)
    let others = run_in_netns(&c, move || {
        (0..20)
            .filter(|_| {
                std::thread::sleep(Duration::from_millis(50));
                TcpStream::connect_timeout(&dst_c, Duration::from_secs(1)).is_ok()
            })
            .count()
    });
    assert_eq!(others, 20, "the other client's connects");
    // The flooding source's new connections: 100 at once.
    let burst = run_in_netns(&a, move || {
        concurrent_connects(dst_a, 100, Duration::from_millis(300))
    });
    eprintln!("{mode:?}: 100 concurrent connects from the flooding source: {burst} connected");
    if mode != Mode::Enforce {
        // Observe changed nothing; a rolled-back change left nothing behind.
        assert!(installed.is_empty(), "{mode:?}: limit map {installed:?}");
        assert!(limits().is_empty());
        assert!(
            burst >= 90,
            "{mode:?}: the source must not be limited: {burst}/100"
        );
        let events = d.finish();
        if mode == Mode::Unverifiable {
            let applied = events
                .iter()
                .any(|e| is_remedy(e, "xdp_source_limit", "applied"));
            assert!(applied, "the change was applied before it was rolled back");
        }
        server.stop();
        return if mode == Mode::Observe {
            Outcome::Planned
        } else {
            Outcome::RolledBack
        };
    }
    assert_eq!(
        ev["change"]["after"]["limits"][0]["key"],
        format!("src:{src}")
    );
    assert_eq!(installed.len(), 1, "{installed:?}");
    let entry = &limits()[0];
    let dropped = value_u64(entry, "dropped", 40);
    let (rate, bucket) = (
        value_u64(entry, "rate_pps", 0),
        value_u64(entry, "burst", 8),
    );
    eprintln!("limit entry: rate {rate}/s burst {bucket}, dropped {dropped}");
    assert_eq!((rate, bucket), (2, 2));
    assert!(dropped > 0, "{entry}");
    // At most the burst plus what the rate refills in 300 ms (and a little slack) pass.
    assert!(
        burst <= 5,
        "{burst} of 100 connected past a {rate}/s burst {bucket} limit"
    );
    let ms = millis_between(event_time(&opened), event_time(&ev));
    let (_, applied) = d.wait_for_after(
        i,
        |e| is_remedy(e, "xdp_source_limit", "applied"),
        Duration::from_secs(1),
    );
    eprintln!(
        "xdp_source_limit: applied {:.1} ms after opened, verified (incident cleared) {ms:.1} ms after",
        millis_between(event_time(&opened), event_time(&applied))
    );
    // The TTL runs out: the engine reverts the entry, the map is empty, A connects again.
    let (_, expired) = d.wait_for_after(
        i,
        |e| is_remedy(e, "xdp_source_limit", "expired"),
        Duration::from_millis(SRC_TTL_MS + 3000),
    );
    eprintln!("expired: {expired}");
    let left = limits();
    assert!(left.is_empty(), "limit map after expiry: {left:?}");
    let n = run_in_netns(&a, move || connect_n(dst_a, 5, Duration::from_millis(500)));
    assert_eq!(n, 5, "connects after expiry");
    let events = d.finish();
    let bad = events.iter().any(|e| {
        is_remedy(e, "xdp_source_limit", "failed")
            || is_remedy(e, "xdp_source_limit", "rolled_back")
    });
    assert!(!bad, "the remedy failed or was rolled back");
    server.stop();
    Outcome::Verified(ms)
}

// ---------------------------------------------------------------------------------------------
// Spoofed SYN flood against a listener that cannot take it (no syncookies, small backlog).

#[test]
fn port_limit_keeps_a_spoofed_syn_flood_from_starving_clients() {
    require_root();
    let (observe, _) = syn_flood_share("observe");
    let mut shares = Vec::new();
    heal_times("xdp_port_limit", |_| {
        let (share, ms) = syn_flood_share("enforce");
        shares.push(share);
        ms.expect("verified")
    });
    let enforce = shares.iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!(
        "legitimate connects during the spoofed flood: observe {:.0} %, enforce {:.0} % (worst of {:?})",
        observe * 100.0,
        enforce * 100.0,
        shares
    );
    assert!(enforce >= 0.9, "enforce: {shares:?}");
    assert!(
        observe < 0.5,
        "the flood must hurt without the limit: {observe}"
    );
}

/// Floods, waits for the remedy (planned/verified) and returns the share of 100 connects
/// (1 s timeout each) from a returning client that succeed, and the ms from `opened` to
/// `verified` in enforce mode.
fn syn_flood_share(mode: &str) -> (f64, Option<f64>) {
    let a = Netns::new("hxs-a");
    let c = Netns::new("hxs-c");
    let s = Netns::new("hxs-s");
    let va = pair(&a, &s, SF_A);
    let vc = pair(&c, &s, SF_C);
    for (k, v) in [
        ("net.ipv4.tcp_syncookies", "0"),
        ("net.ipv4.tcp_max_syn_backlog", "128"),
        ("net.core.somaxconn", "128"),
        ("net.ipv4.tcp_synack_retries", "1"),
        // Otherwise the client's cached RTT "proves" it and exempts its SYNs from the
        // 3/4-full SYN queue drop that hits everyone else.
        ("net.ipv4.tcp_no_metrics_save", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
    ] {
        s.sysctl(k, v);
    }
    // SYN-ACKs to the spoofed sources go to A, which drops them (no forwarding): the requests
    // sit in S's SYN queue until they time out, as in a real spoofed flood.
    let gw = va.a_addr.to_string();
    s.run(&["ip", "route", "add", "default", "via", &gw]);
    let server = DiscardServer::start(&s, SocketAddr::from(([0, 0, 0, 0], SF_PORT)));
    let dir = TempDir::new("heal-xdp-sf");
    let cfg = "[syn_flood]\nsyn_per_sec = 500.0\nwindow_ms = 1000\nclear_after_ms = 3000\n";
    let mut d = start(&s, &dir, mode, cfg, SRC_TTL_MS, &[&va.b_if, &vc.b_if]);
    let dst = SocketAddr::from((vc.b_addr, SF_PORT));
    // A returning client: it completed a handshake before the flood.
    assert_eq!(
        run_in_netns(&c, move || connect_n(dst, 3, Duration::from_secs(1))),
        3
    );

    let target = va.b_addr.to_string();
    let port = SF_PORT.to_string();
    let t0 = Instant::now();
    // ~5,000 SYN/s from random sources, bounded in count and time.
    let pid = a.spawn(&[
        "timeout",
        "25",
        "hping3",
        "-q",
        "-S",
        "-p",
        &port,
        "-i",
        "u200",
        "--rand-source",
        "-c",
        "120000",
        &target,
    ]);
    let (i, opened) = d.wait_for_after(
        0,
        |e| is_fault(e, "syn_flood", "opened") && e["subject"]["port"] == SF_PORT,
        Duration::from_secs(10),
    );
    eprintln!("{mode}: opened after {:?}: {opened}", t0.elapsed());
    let result = if mode == "enforce" {
        "verified"
    } else {
        "planned"
    };
    let (_, ev) = d.wait_for_after(
        i,
        |e| is_remedy(e, "xdp_port_limit", result),
        Duration::from_secs(5),
    );
    eprintln!("{mode}: {ev}");
    assert_eq!(
        ev["change"]["after"]["limits"][0]["key"],
        format!("port:{SF_PORT}")
    );
    let ms = (mode == "enforce").then(|| millis_between(event_time(&opened), event_time(&ev)));
    // Let the requests queued before the limit time out (1 s + 2 s with one SYN-ACK retry).
    std::thread::sleep(Duration::from_secs(4));
    let share = run_in_netns(&c, move || {
        let hs: Vec<_> = (0..10)
            .map(|_| std::thread::spawn(move || connect_n(dst, 10, Duration::from_secs(1))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>() as f64 / 100.0
    });
    let port_map = map_entries(&s, &va.b_if, "LIMIT_PORT");
    let syn_recv = s.sh("ss -Htn state syn-recv | wc -l");
    eprintln!(
        "{mode}: {:.0} % of 100 connects succeeded; {} requests in S's SYN queue",
        share * 100.0,
        syn_recv.trim()
    );
    if mode == "enforce" {
        assert_eq!(port_map.len(), 1, "{port_map:?}");
        let dropped = value_u64(&port_map[0], "dropped", 40);
        let passed = value_u64(&port_map[0], "passed", 48);
        eprintln!("port limit: {dropped} SYNs dropped, {passed} passed");
        assert!(dropped > 0);
    } else {
        assert!(port_map.is_empty(), "observe changed the map: {port_map:?}");
    }
    // Stop the flood (our own child, by pid).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    d.finish();
    server.stop();
    (share, ms)
}
