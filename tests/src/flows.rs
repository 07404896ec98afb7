//! Helpers for the flow fault scenarios (syn_flood, connection_flood, connect_timeout_cascade,
//! mtu_blackhole): repeated runs with latency statistics, nftables rule sets, detector
//! configuration files, `/proc/net/netstat` counters read from inside a namespace.
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::Value;

use crate::events::{is_fault, subject_str};
use crate::netns::Netns;
use crate::util::{event_time, millis_between, TempDir};

/// `GT_RUNS` (default 1).
pub fn runs() -> usize {
    std::env::var("GT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Runs `scenario` `GT_RUNS` times (it returns its latency in ms), prints each latency and the
/// median/worst, and asserts every run within `bound_ms`.
pub fn repeat(fault: &str, bound_ms: f64, mut scenario: impl FnMut(usize) -> f64) {
    let n = runs();
    let mut v = Vec::with_capacity(n);
    for i in 1..=n {
        let ms = scenario(i);
        eprintln!("latency {fault}: run {i} = {ms:.1} ms");
        v.push(ms);
    }
    let mut s = v.clone();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = s[s.len() / 2];
    let worst = s[s.len() - 1];
    eprintln!("latency {fault}: median {median:.1} ms, worst {worst:.1} ms over {n} runs");
    assert!(
        worst <= bound_ms,
        "{fault}: worst latency {worst:.1} ms > {bound_ms} ms ({v:?})"
    );
}

/// Milliseconds from `from` to the event's `ts`.
pub fn latency_ms(from: SystemTime, ev: &Value) -> f64 {
    millis_between(from, event_time(ev))
}

/// A `fault` event of `fault` in `state` for namespace `netns`.
pub fn is_fault_in(e: &Value, fault: &str, state: &str, netns: u64) -> bool {
    is_fault(e, fault, state) && e.get("netns").and_then(Value::as_u64) == Some(netns)
}

/// Same, with `subject.addr == addr` (when given) and `subject.port == port` (when given).
pub fn is_fault_on(
    e: &Value,
    fault: &str,
    state: &str,
    netns: u64,
    addr: Option<&str>,
    port: Option<u16>,
) -> bool {
    is_fault_in(e, fault, state, netns)
        && addr.is_none_or(|a| subject_str(e, "addr") == Some(a))
        && port.is_none_or(|p| {
            e.get("subject")
                .and_then(|s| s.get("port"))
                .and_then(Value::as_u64)
                == Some(p as u64)
        })
}

/// Makes namespace `ns` known to daemon `d` with one connect refused by `other` (nothing
/// listens there), and waits for the counters event that counts it: the detectors take a
/// namespace's first counters as their baseline, so a test's refusals come after it.
pub fn refuse_once_known(d: &mut crate::Daemon, ns: &Netns, other: std::net::SocketAddr) {
    let t = std::time::Duration::from_secs(2);
    let refused = crate::run_in_netns(ns, move || crate::net::connect_refused_n(other, 1, t));
    assert_eq!(refused, 1, "a connect to {other} was not refused");
    let netns = ns.inode();
    d.wait_for(
        |e| crate::is_counters(e, netns) && crate::u64_field(e, "connect_refused") == 1,
        std::time::Duration::from_secs(5),
    );
}

/// Writes a `--detect-config` TOML file into `dir`.
pub fn detect_config(dir: &TempDir, toml: &str) -> PathBuf {
    crate::sockets::detect_config(dir.path(), toml)
}

/// Loads an nftables script in `ns` (`nft -f -`).
pub fn nft(ns: &Netns, script: &str) {
    crate::nft::load(ns, script);
}

/// Deletes table `inet NAME` in `ns` if it exists.
pub fn nft_delete(ns: &Netns, table: &str) {
    nft(
        ns,
        &format!("table inet {table}\ndelete table inet {table}\n"),
    );
}

/// A counter from `/proc/thread-self/net/netstat` (e.g. `TcpExt` `TCPTimeouts`) of the
/// namespace the calling thread is in.
pub fn netstat_here(group: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [h, v] = pair else { continue };
        let prefix = format!("{group}:");
        if !h.starts_with(&prefix) {
            continue;
        }
        let names = h.split_whitespace().skip(1);
        let vals = v.split_whitespace().skip(1);
        for (n, x) in names.zip(vals) {
            if n == name {
                return x.parse().unwrap_or(0);
            }
        }
    }
    0
}
