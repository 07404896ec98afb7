//! http_latency ("API degradation") with the real daemon (`--http`) and a real nginx from
//! Debian as a reverse proxy in a namespace, plaintext and TLS (a certificate made at test
//! time), whose upstream (python3's http.server, in a second namespace) becomes slow: every
//! request +600 ms (bucket 500 ms to 1 s: a margin either side on a loaded machine). The fault
//! must open naming the nginx listeners with a p95 in the bucket that holds the delay — the
//! bucket nginx's own `$request_time` puts its p95 in — and clear once the upstream is fast
//! again; nginx's steady static listener opens nothing.
use std::path::Path;
use std::time::{Duration, Instant};

use guardian_tests::nginx::{self, make_cert};
use guardian_tests::*;
use serde_json::Value;

use crate::http::{curl, http_daemon};

/// The upstream: python3's http.server, delayed by the seconds written in `argv[2]` (read at
/// each request).
const UPSTREAM: &str = r#"
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        try:
            time.sleep(float(open(sys.argv[2]).read() or 0))
        except (OSError, ValueError):
            pass
        body = b'ok\n'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    # The default backlog (5) drops SYNs under 20 parallel requests: 1 s retransmits.
    request_queue_size = 128
S((sys.argv[1], 8000), H).serve_forever()
"#;

/// nginx: the proxy on `ip:8080` and `ip:8443` (TLS), a static answer on `ip:8081`; the
/// access log holds `$server_port $request_time $request_uri`.
fn conf(dir: &Path, ip: &str, upstream: &str) -> String {
    let d = dir.display();
    let servers = format!(
        r#"    server {{
        listen {ip}:8080;
        listen {ip}:8443 ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
        }}
    }}
    server {{
        listen {ip}:8081;
        location / {{ return 200 "fast\n"; }}
    }}
"#
    );
    nginx::conf(
        dir,
        "warn",
        Some("$server_port $request_time $request_uri"),
        &servers,
    )
}

/// nginx's `$request_time` (ms) of the requests to `port` whose URI holds `tag`.
fn request_times(dir: &Path, port: u16, tag: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == port.to_string() && f[2].contains(tag))
                .then(|| f[1].parse::<f64>().ok().map(|s| s * 1000.0))
                .flatten()
        })
        .collect()
}

/// The bucket bounds (ms) that hold `ms`, as the kernel's histogram has them.
fn bucket_of(ms: f64) -> (f64, f64) {
    let bounds = guardian_common::http::LAT_BOUND_US.map(|us| us as f64 / 1000.0);
    let i = bounds.iter().position(|b| ms < *b).unwrap_or(bounds.len());
    (
        if i == 0 { 0.0 } else { bounds[i - 1] },
        bounds.get(i).copied().unwrap_or(f64::INFINITY),
    )
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 95).div_ceil(100).max(1) - 1]
}

fn latency_event(e: &Value, state: &str, netns: u64, service: &str) -> bool {
    is_fault(e, "http_latency", state)
        && e["netns"].as_u64() == Some(netns)
        && e["evidence"]["service"] == service
}

/// Client load for `secs`: each round 10 requests to each listener (in parallel when
/// `parallel`), tagged `tag`; stops early when `until` says so. Bounded in rounds and time.
fn load(
    ns: &Netns,
    ip: &str,
    tag: &str,
    secs: u64,
    parallel: bool,
    mut until: impl FnMut() -> bool,
) {
    let end = Instant::now() + Duration::from_secs(secs);
    for round in 0..10_000 {
        if Instant::now() >= end || until() {
            return;
        }
        for (scheme, port) in [("http", 8080), ("https", 8443), ("http", 8081)] {
            let urls: Vec<String> = (0..10)
                .map(|i| format!("{scheme}://{ip}:{port}/?{tag}-{round}-{i}"))
                .collect();
            let got = curl(ns, &urls, parallel, &["-k"]);
            assert!(
                got.iter().all(|c| *c == 200),
                "{scheme}:{port} {tag}: {got:?}"
            );
        }
    }
}

#[test]
fn a_slow_upstream_opens_http_latency_on_the_nginx_listeners_and_clears() {
    require_root();
    let proxy = Netns::new("lat-px");
    let up = Netns::new("lat-up");
    let v = pair(&proxy, &up, 202);
    let dir = TempDir::new("http-latency");
    let mut d = http_daemon(
        &proxy,
        dir.path(),
        "[http_latency]\nwindow_ms = 3000\nmin_requests = 10\nbaseline_windows = 3\n\
         clear_after_ms = 2000\nupdate_every_ms = 500\n",
        &["--interval-ms", "250"],
    );
    let delay = dir.path().join("delay");
    std::fs::write(&delay, "0").unwrap();
    let ip = v.a_addr.to_string();
    up.spawn(&[
        "python3",
        "-c",
        UPSTREAM,
        &v.b_addr.to_string(),
        delay.to_str().unwrap(),
    ]);
    make_cert(dir.path(), "guardian-test", 2);
    nginx::start(
        &proxy,
        dir.path(),
        &conf(dir.path(), &ip, &format!("{}:8000", v.b_addr)),
        8080,
    );
    let ok = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        (curl(&proxy, &[format!("http://{ip}:8080/")], false, &[]) == [200]).then_some(())
    });
    assert!(ok.is_some(), "the upstream never answered through nginx");
    let netns = proxy.inode();
    let (plain, tls, fast) = (
        format!("{ip}:8080"),
        format!("{ip}:8443"),
        format!("{ip}:8081"),
    );

    // Healthy: 12 s, the baseline (3 windows of 3 s) is learned.
    load(&proxy, &ip, "fast", 12, false, || false);
    let before = d.events().len();
    // The upstream becomes slow: +600 ms per request.
    std::fs::write(&delay, "0.6").unwrap();
    let slow_at = std::time::SystemTime::now();
    load(&proxy, &ip, "slow", 10, true, || false);
    let (_, e) = d.wait_for_after(
        before,
        |e| latency_event(e, "opened", netns, &plain),
        Duration::from_secs(10),
    );
    eprintln!("http_latency: {e}");
    let (_, et) = d.wait_for_after(
        before,
        |e| latency_event(e, "opened", netns, &tls),
        Duration::from_secs(10),
    );
    eprintln!("http_latency over TLS: {et}");
    let nginx_p95 = p95(request_times(dir.path(), 8080, "slow"));
    let (lo, hi) = bucket_of(nginx_p95);
    eprintln!("nginx $request_time p95 of the slow phase: {nginx_p95} ms, bucket {lo}..{hi} ms");
    assert_eq!((lo, hi), (500.0, 1000.0), "the delay's bucket");
    for e in [&e, &et] {
        let ev = &e["evidence"];
        assert_eq!(
            (ev["p95_from_ms"].as_f64(), ev["p95_to_ms"].as_f64()),
            (Some(lo), Some(hi)),
            "{e}"
        );
        // Interpolated in the bucket: its upper bound when the rank is the bucket's last
        // request (all of 10 requests in it, say).
        let p = ev["p95_ms"].as_f64().unwrap();
        assert!((lo..=hi).contains(&p), "{e}");
        assert!(ev["baseline_ms"].as_f64().unwrap() < 50.0, "{e}");
        assert!(ev["requests"].as_u64().unwrap() >= 10, "{e}");
        assert!(
            ev["processes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["comm"] == "nginx"),
            "{e}"
        );
        let in_buckets: u64 = ev["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(in_buckets, ev["requests"].as_u64().unwrap(), "{e}");
        assert_eq!(e["layer"], 7);
    }
    eprintln!(
        "opened {:.0} ms (TLS {:.0} ms) after the upstream slowed",
        millis_between(slow_at, event_time(&e)),
        millis_between(slow_at, event_time(&et))
    );

    // Fast again: cleared.
    std::fs::write(&delay, "0").unwrap();
    let cleared = |d: &mut Daemon| {
        d.events()
            .iter()
            .skip(before)
            .any(|e| latency_event(e, "cleared", netns, &plain))
            && d.events()
                .iter()
                .skip(before)
                .any(|e| latency_event(e, "cleared", netns, &tls))
    };
    load(&proxy, &ip, "again", 20, false, || cleared(&mut d));
    assert!(
        cleared(&mut d),
        "http_latency did not clear once the upstream was fast"
    );

    let events = d.finish();
    // Nothing before the upstream slowed, nothing ever for the steady static listener.
    for (i, e) in events.iter().enumerate() {
        if is_fault(e, "http_latency", "opened") && e["netns"].as_u64() == Some(netns) {
            assert!(i >= before, "opened while healthy: {e}");
            assert_ne!(e["evidence"]["service"], fast.as_str(), "{e}");
        }
    }
}
