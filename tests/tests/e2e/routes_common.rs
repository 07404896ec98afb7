//! What the route remedies' e2e files share: modes (enforce, observe, a change that cannot
//! verify), the daemon with a config file, route dumps, remedy outcomes and heal times.
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use guardian_tests::flows::runs;
use guardian_tests::*;
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Mode {
    Enforce,
    Observe,
    /// Enforce, with the scene arranged so that the change cannot verify.
    Rollback,
}

pub const MODES: [Mode; 3] = [Mode::Enforce, Mode::Observe, Mode::Rollback];

/// The client's IPv4 main table, sorted, without the `linkdown` flag (carrier state is not a
/// route change).
pub fn routes(ns: &Netns) -> String {
    let out = ns.run(&["ip", "-4", "route", "show", "table", "main"]);
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| l.replace(" linkdown", "").trim().to_owned())
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Polls until the client's routes equal `want` (2 s), else fails with both.
pub fn routes_back(ns: &Netns, want: &str, what: &str) {
    routes_back_within(ns, want, what, Duration::from_secs(2))
}

pub fn routes_back_within(ns: &Netns, want: &str, what: &str, limit: Duration) {
    let ok = poll(limit, Duration::from_millis(20), || {
        (routes(ns) == want).then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: routes\n{}\nexpected\n{want}",
        routes(ns)
    );
}

/// Starts the daemon in `ns` with a config file; enforce unless observing.
pub fn daemon(ns: &Netns, mode: Mode, config: &str, extra: &[&str]) -> (TempDir, Daemon) {
    let state = TempDir::new("routes");
    let cfg = state.path().join("guardian.toml");
    std::fs::write(&cfg, config).unwrap();
    let dir = state.path().join("state");
    let (dir, cfg) = (dir.to_str().unwrap(), cfg.to_str().unwrap());
    let mode = if mode == Mode::Observe {
        "observe"
    } else {
        "enforce"
    };
    let mut args = vec![
        "--mode",
        mode,
        "--state-dir",
        dir,
        "--config",
        cfg,
        "--interval-ms",
        "200",
        "--verify-timeout-ms",
        "500",
    ];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(ns, &args);
    d.wait_attached();
    (state, d)
}

/// Waits for `remedy`'s event with `result` after event `from`.
pub fn remedy_event(
    d: &mut Daemon,
    from: usize,
    remedy: &'static str,
    result: &'static str,
    secs: u64,
) -> Value {
    let (_, e) = d.wait_for_after(
        from,
        move |e| is_remedy(e, remedy, result),
        Duration::from_secs(secs),
    );
    e
}

/// The remedy's outcome in `mode`; returns the heal time (fault opened → verified) in enforce.
pub fn outcome(
    d: &mut Daemon,
    n: usize,
    fault: &Value,
    remedy: &'static str,
    mode: Mode,
    secs: u64,
) -> Option<f64> {
    let result = match mode {
        Mode::Enforce => "verified",
        Mode::Observe => "planned",
        Mode::Rollback => "rolled_back",
    };
    let e = remedy_event(d, n, remedy, result, secs);
    eprintln!("{remedy} {result}: {e}");
    assert_eq!(e["incident"], fault["incident"], "{e}");
    (mode == Mode::Enforce).then(|| millis_between(event_time(fault), event_time(&e)))
}

pub fn summary(remedy: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "heal {remedy}: median {:.1} ms, worst {:.1} ms over {} runs",
        v[v.len() / 2],
        v[v.len() - 1],
        v.len()
    );
}

/// A TCP connection from `ns` to `addr` completes (and carries a few bytes).
pub fn reaches(ns: &Netns, addr: SocketAddr) -> bool {
    run_in_netns(ns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .and_then(|mut s| s.write_all(&[7u8; 4096]))
            .is_ok()
    })
}

/// A server namespace answering on `addr/32` (loopback), rp_filter off.
pub fn server_on(s: &Netns, addr: &str) {
    s.run(&["ip", "addr", "add", &format!("{addr}/32"), "dev", "lo"]);
    s.sysctl("net.ipv4.conf.all.rp_filter", "0");
    s.sysctl("net.ipv4.conf.default.rp_filter", "0");
}

pub fn scenario(remedy: &str, run: impl Fn(Mode) -> Option<f64>) {
    require_root();
    for mode in MODES {
        let n = if mode == Mode::Enforce { runs() } else { 1 };
        let times: Vec<f64> = (0..n).filter_map(|_| run(mode)).collect();
        if mode == Mode::Enforce {
            summary(remedy, times);
        }
    }
}
