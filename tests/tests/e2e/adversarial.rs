//! Adversarial conditions, in enforce mode:
//! - an interface flapping 10×/s (`GT_FLAP_SECS`, default 10 s; `cargo xtask reliability` runs
//!   60 s): the daemon keeps up, its memory stays bounded, its link_up budget holds and every
//!   refusal is a `skipped` event;
//! - a SYN flood at hping3's maximum rate from random spoofed sources (`GT_FLOOD_SECS`,
//!   default 10 s; 60 s in the reliability run) against the XDP program: the per-source maps
//!   stay within their LRU bounds, the daemon keeps writing counters on schedule, every lost
//!   event is reported, blast-radius refusals are events, and nothing crashes.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guardian_tests::pressure::{rss_kib, StatusPoller, Watch};
use guardian_tests::xdp_limits::map_with;
use guardian_tests::*;
use serde_json::Value;

fn secs(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn count(events: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

#[test]
fn flapping_interface_budget_holds_and_every_refusal_is_an_event() {
    require_root();
    let secs = secs("GT_FLAP_SECS", 10);
    let a = Netns::new("flap-a");
    let b = Netns::new("flap-b");
    let v = pair(&a, &b, 222);
    let state = TempDir::new("flap-state");
    let dir = state.path().to_str().unwrap().to_owned();
    let mut d = Daemon::start(
        &a,
        &[
            "--mode",
            "enforce",
            "--state-dir",
            &dir,
            "--keep-up",
            &v.a_if,
            "--interval-ms",
            "500",
        ],
    );
    d.wait_attached();
    let pid = d.pid().unwrap();
    let rss0 = rss_kib(pid);
    let mut peak = rss0;

    // 10 cycles a second: down 50 ms, up 50 ms.
    let start = Instant::now();
    let mut flaps = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        a.link_set(&v.a_if, false);
        std::thread::sleep(Duration::from_millis(50));
        a.link_set(&v.a_if, true);
        std::thread::sleep(Duration::from_millis(50));
        flaps += 1;
        if flaps.is_multiple_of(10) {
            peak = peak.max(rss_kib(pid));
            if d.exited().is_some() {
                d.fail("the daemon died while the link flapped");
            }
        }
    }
    // Let it settle on a final down: the budget must refuse the next heal with an event.
    a.link_set(&v.a_if, false);
    std::thread::sleep(Duration::from_secs(2));
    peak = peak.max(rss_kib(pid));
    let events = d.finish();
    a.link_set(&v.a_if, true);

    let applied = count(&events, |e| is_remedy(e, "link_up", "applied"));
    let skipped: Vec<&Value> = events
        .iter()
        .filter(|e| is_remedy(e, "link_up", "skipped"))
        .collect();
    let opened = count(&events, |e| is_fault(e, "link_down", "opened"));
    eprintln!(
        "flapping {secs} s, {flaps} flaps: {opened} link_down opened, {applied} link_up applied, \
         {} skipped, RSS {rss0} -> peak {peak} KiB, {} events",
        skipped.len(),
        events.len()
    );
    // The default per-subject budget is 3 changes per hour.
    assert!(
        applied <= 3,
        "the per-subject budget (3) did not hold: {applied} applied"
    );
    assert!(
        !skipped.is_empty(),
        "refusals past the budget must be skipped events"
    );
    for s in &skipped {
        let reason = str_field(s, "reason").unwrap_or_default();
        assert!(!reason.is_empty(), "a skipped event without a reason: {s}");
    }
    assert!(
        peak < rss0 + 32 * 1024,
        "memory grew from {rss0} to {peak} KiB while flapping"
    );
}

#[test]
fn spoofed_syn_flood_keeps_maps_bounded_and_the_daemon_responsive() {
    require_root();
    let secs = secs("GT_FLOOD_SECS", 10);
    let s = Netns::new("spoof-s");
    let c = Netns::new("spoof-c");
    let v = pair(&s, &c, 223);
    let server = DiscardServer::start(&s, SocketAddr::from((v.a_addr, 5223)));
    let dir = TempDir::new("spoof");
    let cfg: PathBuf = dir.path().join("guardian.toml");
    std::fs::write(
        &cfg,
        "[remedies]\nmodes = { sysctl = \"off\" }\n\n[detect.syn_flood]\nsyn_per_sec = 500.0\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("guardian.sock");
    let interval_ms = 200u64;
    let mut d = Daemon::start(
        &s,
        &[
            "--mode",
            "enforce",
            "--xdp",
            &v.a_if,
            "--state-dir",
            state.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--interval-ms",
            &interval_ms.to_string(),
            "--socket",
            socket.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    let pid = d.pid().unwrap();
    let from = d.count();
    // `status` through the control socket every 50 ms while the flood runs.
    let asker = StatusPoller::start(socket.clone(), Duration::from_millis(50));
    let watch = Watch::start(pid);
    let dst = v.a_addr.to_string();
    let flood_secs = secs.to_string();
    let t0 = Instant::now();
    let wall0 = std::time::SystemTime::now();
    let out = c.output(&[
        "timeout",
        &flood_secs,
        "hping3",
        "-q",
        "-S",
        "--flood",
        "--rand-source",
        "-p",
        "5223",
        &dst,
    ]);
    let flood = t0.elapsed();
    let wall1 = std::time::SystemTime::now();
    let usage = watch.stop();
    let answers = asker.stop();
    let (status_p99, status_max) = (answers.p99(), answers.max());
    let (rss0, peak) = (usage.rss_start, usage.rss_peak);
    assert!(
        flood >= Duration::from_secs(secs.saturating_sub(1)),
        "hping3 ended early ({flood:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if d.exited().is_some() {
        d.fail("the daemon died during the flood");
    }

    // The maps the flood fills are LRU maps: bounded by their max_entries.
    let mut sizes = Vec::new();
    let mut full = Vec::new();
    for name in ["XDP_SYN_SRC", "LIMIT_SRC", "GOOD_SRC"] {
        let (show, entries) = map_with(&s, &v.a_if, name);
        let max = show["max_entries"].as_u64().expect("max_entries") as usize;
        let n = entries.len();
        sizes.push(format!("{name} {n}/{max} ({})", show["type"]));
        assert!(
            show["type"].as_str().is_some_and(|t| t.starts_with("lru")),
            "{name} must be an LRU map: {show}"
        );
        assert!(n <= max, "{name} holds {n} entries, more than {max}");
        // An LRU map evicts a little before it is full (per-CPU free lists).
        if n * 10 >= max * 9 {
            full.push(name);
        }
    }
    let events = d.finish();
    server.stop();
    let during: Vec<&Value> = events[from..].iter().collect();
    // Responsiveness: counters events kept coming on schedule through the flood (the XDP
    // counts change on every tick while it lasts, so every tick writes one).
    let ts: Vec<std::time::SystemTime> = during
        .iter()
        .filter(|e| is_type(e, "counters") && e["final"] == false)
        .filter_map(|e| e["ts"].as_str().and_then(parse_ts))
        .filter(|t| *t >= wall0 && *t <= wall1)
        .collect();
    let mut gaps: Vec<u128> = ts
        .windows(2)
        .filter_map(|w| w[1].duration_since(w[0]).ok())
        .map(|d| d.as_millis())
        .collect();
    gaps.sort_unstable();
    let p99 = gaps
        .get(gaps.len() * 99 / 100)
        .copied()
        .unwrap_or(u128::MAX);
    let lost: u64 = during
        .iter()
        .filter(|e| is_type(e, "loss"))
        .map(|e| u64_field(e, "lost"))
        .sum();
    // A full LRU map that the flood cycles reports its evictions.
    for name in full {
        let source = format!("evicted:{name}");
        let evicted: u64 = events
            .iter()
            .filter(|e| is_type(e, "loss") && e["source"] == source.as_str())
            .map(|e| u64_field(e, "lost"))
            .sum();
        eprintln!("{name} full: {evicted} evictions reported");
        assert!(evicted > 0, "{name} is full but no eviction was reported");
    }
    let skipped = during
        .iter()
        .filter(|e| is_type(e, "remedy") && e["result"] == "skipped")
        .count();
    let applied = during
        .iter()
        .filter(|e| is_type(e, "remedy") && e["result"] == "applied")
        .count();
    let floods = during
        .iter()
        .filter(|e| is_fault(e, "syn_flood", "opened"))
        .count();
    eprintln!(
        "spoofed flood {flood:?}: maps {sizes:?}; counters gaps p99 {p99} ms (interval {interval_ms}); \
         {floods} syn_flood opened, {applied} applied, {skipped} skipped; {lost} events lost (reported); \
         RSS {rss0} -> peak {peak} KiB, CPU {:.0} % of a core; status answered {} times (p99 {status_p99:?}, max {status_max:?}), {} failed",
        usage.cpu_pct,
        answers.took.len(),
        answers.failed
    );
    assert!(floods >= 1, "the flood was detected");
    assert_eq!(answers.failed, 0, "status requests failed during the flood");
    assert!(
        answers.took.len() as u64 >= secs * 5,
        "status answered only {} times in {secs} s",
        answers.took.len()
    );
    assert!(
        status_p99 < Duration::from_millis(100),
        "status p99 {status_p99:?} during the flood (goal < 100 ms)"
    );
    assert!(
        gaps.len() as u64 >= secs * 1000 / interval_ms / 2,
        "counters kept coming: {} in {secs} s",
        gaps.len()
    );
    assert!(
        p99 < (interval_ms as u128) * 5,
        "counters stalled during the flood: p99 gap {p99} ms"
    );
    assert!(
        peak < rss0 + 64 * 1024,
        "memory grew from {rss0} to {peak} KiB during the flood"
    );
}
