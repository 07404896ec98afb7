//! Helpers shared by the heal tests of the `sysctl`, `report_holder` and `socket_destroy`
//! remedies (a module of the e2e binary: `use super::sysctl_common::*;`).
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guardian_tests::*;
use serde_json::Value;

pub const KEYS: [&str; 6] = [
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_mtu_probing",
];

/// The six keys guardian may change, as read inside `ns` (None: the host's).
pub fn dump(ns: Option<&Netns>) -> Vec<(String, String)> {
    KEYS.iter()
        .map(|k| {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            let v = match ns {
                Some(ns) => ns.run(&["cat", &path]),
                None => std::fs::read_to_string(&path).unwrap(),
            };
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_string(), v)
        })
        .collect()
}

/// `before` with `changes` applied.
pub fn with(before: &[(String, String)], changes: &[(&str, &str)]) -> Vec<(String, String)> {
    before
        .iter()
        .map(|(k, v)| {
            let new = changes
                .iter()
                .find(|(c, _)| c == k)
                .map(|(_, n)| n.to_string());
            (k.clone(), new.unwrap_or_else(|| v.clone()))
        })
        .collect()
}

pub fn config(extra: &str) -> String {
    format!(
        "[detect.time_wait_exhaustion]\nclear_after_ms = 1000\n\
         [detect.ephemeral_port_exhaustion]\nclear_after_ms = 1000\n\
         [detect.accept_backlog_overflow]\nclear_after_ms = 1000\n{extra}"
    )
}

/// The daemon in `ns` with `--config` (TOML `cfg`), in enforce mode unless `observe`.
pub fn start(ns: &Netns, cfg: &str, observe: bool) -> (TempDir, Daemon) {
    let state = TempDir::new(&format!("st-{}", ns.name().trim_start_matches("gt-")));
    let path = state.path().join("guardian.toml");
    std::fs::write(&path, cfg).unwrap();
    let dir = state.path().join("state");
    let mut args = vec![
        "--interval-ms".to_string(),
        "250".into(),
        "--config".into(),
        path.to_str().unwrap().into(),
        "--state-dir".into(),
        dir.to_str().unwrap().into(),
    ];
    if !observe {
        args.extend(["--mode".into(), "enforce".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(ns, &args);
    d.wait_attached();
    std::thread::sleep(Duration::from_millis(600));
    (state, d)
}

/// Keeps connecting to `dst` from `ns` every 100 ms (holding `hold` connections first) until
/// `stop` or 20 s; returns (EADDRNOTAVAIL failures, successful connects).
pub fn exhaust(
    ns: &Netns,
    dst: SocketAddr,
    hold: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u32, u32)> {
    in_netns(ns, move || {
        let held: Vec<TcpStream> = (0..hold)
            .map(|_| TcpStream::connect_timeout(&dst, Duration::from_secs(2)).expect("connect"))
            .collect();
        let (mut failed, mut ok) = (0, 0);
        let end = Instant::now() + Duration::from_secs(20);
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            match TcpStream::connect(dst) {
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => failed += 1,
                Ok(_) => ok += 1,
                Err(e) => panic!("unexpected connect error: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(held);
        (failed, ok)
    })
}

pub fn heal_ms(fault: &Value, verified: &Value) -> f64 {
    millis_between(event_time(fault), event_time(verified))
}

/// Prints `heal NAME: median X ms, worst Y ms over N runs`.
pub fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    eprintln!(
        "heal {name}: median {median:.1} ms, worst {:.1} ms over {n} runs",
        ms[n - 1]
    );
}

/// The `sysctl` remedy event of `result` for the incident of `fault`.
pub fn remedy_of(d: &mut Daemon, after: usize, fault: &Value, result: &str, secs: u64) -> Value {
    remedy_ev(d, after, fault, "sysctl", result, secs)
}

/// The `remedy` event of `result` for the incident of `fault`.
pub fn remedy_ev(
    d: &mut Daemon,
    after: usize,
    fault: &Value,
    remedy: &str,
    result: &str,
    secs: u64,
) -> Value {
    let inc = fault["incident"].clone();
    let (m, r) = (remedy.to_string(), result.to_string());
    d.wait_for_after(
        after,
        move |e| is_remedy(e, &m, &r) && e["incident"] == inc,
        Duration::from_secs(secs),
    )
    .1
}
