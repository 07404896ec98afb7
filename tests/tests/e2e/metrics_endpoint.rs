//! The metrics endpoint stays up (issue 14, attack 6): `nobody` opens 1,100 connections to the
//! metrics port while the daemon's descriptor limit is 1024, then again while only a few
//! descriptors are left (accept() fails with EMFILE); afterwards `/metrics` and `/healthz`
//! still answer, and the counters an alert needs exist at 0 from the start.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use guardian_tests::*;

/// `GET path` on 127.0.0.1:9464 inside `ns`: (status line, body), or None if not answered.
fn get(ns: &Netns, path: &'static str) -> Option<(String, String)> {
    run_in_netns(ns, move || {
        let mut s =
            TcpStream::connect_timeout(&"127.0.0.1:9464".parse().unwrap(), Duration::from_secs(2))
                .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_owned(), body.to_owned()))
    })
}

/// The value of the sample written exactly as `series` (name and labels).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `procs` processes of user nobody (65534, descriptor limit 1024) in `ns`, each opening
/// `per` connections to the metrics port with bash's /dev/tcp and holding them 3 s. Returns
/// how many connects succeeded in all.
fn flood_as_nobody(ns: &Netns, procs: usize, per: usize) -> usize {
    let script = format!(
        "ulimit -n 1024; n=0; for i in $(seq {per}); do exec {{fd}}<>/dev/tcp/127.0.0.1/9464 2>/dev/null && n=$((n+1)); done; echo $n; sleep 3"
    );
    let children: Vec<_> = (0..procs)
        .map(|_| {
            Command::new("timeout")
                .args(["60", "nsenter"])
                .arg(format!("--net={}", ns.path().display()))
                .args([
                    "--",
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "bash",
                    "-c",
                    &script,
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn the attacker")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().expect("attacker");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<usize>()
                .unwrap_or(0)
        })
        .sum()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Sets the daemon's RLIMIT_NOFILE to `soft` (hard 1024: lowered once, never raised, which
/// needs CAP_SYS_RESOURCE).
fn set_nofile(pid: u32, soft: usize) {
    let o = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:1024")])
        .output()
        .expect("prlimit");
    assert!(o.status.success(), "{o:?}");
}

/// Waits (bounded) until `/healthz` and `/metrics` answer 200; returns the metrics body.
fn answers(ns: &Netns, d: &mut Daemon, after: &str) -> String {
    let body = poll(Duration::from_secs(20), Duration::from_millis(200), || {
        let (hs, _) = get(ns, "/healthz")?;
        let (ms, mb) = get(ns, "/metrics")?;
        (hs.ends_with("200 OK") && ms.ends_with("200 OK")).then_some(mb)
    });
    match body {
        Some(b) => b,
        None => d.fail(&format!("the metrics endpoint does not answer {after}")),
    }
}

#[test]
fn the_endpoint_answers_after_fd_exhaustion_by_nobody() {
    require_root();
    let ns = Netns::new("mep");
    let mut d = Daemon::start(&ns, &["--interval-ms", "200"]);
    d.wait_attached();
    let pid = d.pid().unwrap();
    set_nofile(pid, 1024);

    // Zero from the start: alerts with increase() see the first event.
    let body = answers(&ns, &mut d, "at start");
    for series in [
        "guardian_rollbacks_total",
        "guardian_loss_events_total{source=\"ringbuf\"}",
        "guardian_loss_events_total{source=\"throttle\"}",
        "guardian_events_total{type=\"fault\",fault=\"route_lost\",severity=\"error\"}",
        "guardian_open_incidents{fault=\"link_down\",severity=\"critical\"}",
        "guardian_metrics_connections_refused_total{reason=\"cap\"}",
        "guardian_dst_connect_failures_total{dst=\"other\"}",
    ] {
        assert_eq!(sample(&body, series), Some(0.0), "{series} in {body}");
    }
    assert!(sample(&body, "process_open_fds").unwrap() > 0.0, "{body}");
    assert_eq!(sample(&body, "process_max_fds"), Some(1024.0), "{body}");
    assert_eq!(sample(&body, "guardian_last_reload_success"), Some(1.0));
    let mode = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        let (_, b) = get(&ns, "/metrics")?;
        (sample(&b, "guardian_mode{mode=\"observe\"}") == Some(1.0)
            && sample(&b, "guardian_mode{mode=\"enforce\"}") == Some(0.0))
        .then_some(())
    });
    assert!(mode.is_some(), "guardian_mode shows observe");

    // 1,100 connections from two processes of nobody: all connect, the extra ones are closed
    // at once, the daemon never runs out of descriptors.
    let opened = flood_as_nobody(&ns, 2, 550);
    assert_eq!(opened, 1100, "every connect reached the listener");
    let body = answers(&ns, &mut d, "after 1,100 connections");
    let capped = sample(
        &body,
        "guardian_metrics_connections_refused_total{reason=\"cap\"}",
    );
    assert!(capped.unwrap() >= 900.0, "{capped:?}");
    assert!(
        open_fds(pid) < 512,
        "descriptors were released: {}",
        open_fds(pid)
    );

    // Now leave the daemon a handful of descriptors: accept() fails with EMFILE, the endpoint
    // backs off and keeps accepting.
    let limit = open_fds(pid) + 8;
    set_nofile(pid, limit);
    // 100: within the listen backlog, so the connects complete while accept() fails (beyond
    // it they would wait for SYN retransmits).
    let opened = flood_as_nobody(&ns, 1, 100);
    assert!(opened >= 50, "connects reached the backlog: {opened}");
    set_nofile(pid, 1024);
    let body = answers(&ns, &mut d, "after EMFILE");
    let failed = sample(
        &body,
        "guardian_metrics_connections_refused_total{reason=\"accept_error\"}",
    );
    assert!(failed.unwrap() >= 1.0, "accept() did fail: {failed:?}");
    let stderr = d.diagnostics();
    assert!(
        stderr.contains("backing off and retrying"),
        "the EMFILE was logged: {stderr}"
    );
    assert!(!stderr.contains("the metrics endpoint stopped"), "{stderr}");
    // stderr is a file here, as under systemd: plain lines, no ANSI colour codes.
    assert!(
        !stderr.contains('\x1b'),
        "ANSI codes in a non-terminal log: {stderr}"
    );
    assert!(d.exited().is_none(), "the daemon is still running");
    let events = d.finish();
    assert!(events.iter().any(|e| is_lifecycle(e, "detached")));
}
