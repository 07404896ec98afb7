//! HTTP/2 over TLS (`guardian run --http`): nginx from Debian serves `http2` on a TLS listener
//! in a namespace, curl (nghttp2) sends its requests over one connection, serially and then
//! multiplexed, and the daemon's counts per status must equal nginx's access log. The
//! statuses come from the HEADERS frames in `SSL_write`'s buffer, followed from write to
//! write (guardian-ebpf/src/tls_h2.rs), across large bodies whose frames span writes and
//! the retries of writes the socket refused. Where the daemon cannot tell a retry (no
//! `http_sys_exit`: Linux 5.10), it must say that HTTP/2 is not followed.
use std::path::Path;
use std::time::Duration;

use guardian_tests::nginx;
use guardian_tests::*;

use crate::http::{access_counts, curl, ev_u64 as ev, http_daemon, on_service, start_nginx};

const DETECT: &str = "[http_5xx]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n\
                      [http_429]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n";

/// nginx with one HTTP/2 TLS listener: `/` a small file (200), `/big` 300 kB (200, its DATA
/// frames span many `SSL_write`s), `/missing` 404 (a static-table status), and 503, 502 and
/// 429 (literal statuses).
fn conf(dir: &Path, listen: &str) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n".repeat(50)).unwrap();
    // Ends with a newline: curl writes the bodies and its status lines to one stdout.
    let big = "0123456789abcdef".repeat(300 * 64) + "\n";
    std::fs::write(www.join("big"), big).unwrap();
    let d = dir.display();
    let server = format!(
        "    server {{\n        listen {listen} ssl http2;\n\
         \x20       ssl_certificate {d}/cert.pem;\n        ssl_certificate_key {d}/key.pem;\n\
         \x20       root {d}/www;\n\
         \x20       location /gone {{ return 503; }}\n\
         \x20       location /bad {{ return 502; }}\n\
         \x20       location /limited {{ return 429; }}\n    }}\n"
    );
    nginx::conf(
        dir,
        "warn",
        Some("$status $server_port $request_uri $server_protocol"),
        &server,
    )
}

#[test]
fn http2_statuses_over_tls_are_counted_as_nginx_logs_them() {
    require_root();
    let srv = Netns::new("h2-s");
    let cl = Netns::new("h2-c");
    let v = pair(&srv, &cl, 215);
    let dir = TempDir::new("h2");
    let mut d = http_daemon(&srv, dir.path(), DETECT, &[]);
    let att = d.wait_attached();
    let http = &att["detail"]["http"];
    if http["http2"] != true {
        // Where the per-syscall tracepoints stand in for `http_sys_exit` (Linux 5.10, not
        // x86-64), no hook sees a write's result, and HTTP/2 is not followed: said so.
        assert_eq!(http["http2"], false, "{http}");
        assert!(http["sys_exit_error"].is_string(), "{http}");
        eprintln!("HTTP/2 not followed here: {}", http["sys_exit_error"]);
        return;
    }
    nginx::make_cert(dir.path(), "guardian-test", 2);
    let listen = format!("{}:8443", v.a_addr);
    start_nginx(&srv, dir.path(), &conf(dir.path(), &listen), 8443);
    let url = |p: &str, i: usize| format!("https://{listen}{p}?{i}");
    let h2 = ["-k", "--http2"];
    // One connection, one request after another, large bodies between the small ones.
    let mut urls = Vec::new();
    for i in 0..6 {
        urls.push(url("/", i));
        urls.push(url("/big", i));
        urls.push(url("/gone", i));
        urls.push(url("/missing", i));
    }
    urls.extend((0..4).map(|i| url("/bad", i)));
    urls.extend((0..10).map(|i| url("/limited", i)));
    let got = curl(&cl, &urls, false, &h2);
    assert_eq!(got.iter().filter(|c| **c == 503).count(), 6, "{got:?}");
    // Multiplexed: many streams at once on one connection, so one write may carry several
    // responses.
    let par: Vec<String> = (0..12)
        .map(|i| url(if i % 2 == 0 { "/gone" } else { "/bad" }, 100 + i))
        .collect();
    let got = curl(&cl, &par, true, &h2);
    assert_eq!(got.len(), 12, "{got:?}");

    let text = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    assert!(
        text.lines().all(|l| l.ends_with("HTTP/2.0")),
        "not all HTTP/2: {text}"
    );
    let log = access_counts(dir.path(), 8443);
    eprintln!("nginx access log: {log:?}");
    let n = |c: u16| log.get(&c).copied().unwrap_or(0);
    assert_eq!((n(503), n(502), n(429)), (12, 10, 10), "{log:?}");
    let total: u64 = log.values().sum();
    let netns = srv.inode();
    let (_, e) = d.wait_for_after(
        0,
        |e| {
            on_service(e, "http_5xx", netns, &listen)
                && ev(e, "s503") == n(503)
                && ev(e, "s502") == n(502)
                && ev(e, "responses") == total
        },
        Duration::from_secs(10),
    );
    eprintln!("http_5xx over HTTP/2: {e}");
    let procs = e["evidence"]["processes"].as_array().unwrap();
    assert!(procs.iter().all(|p| p["comm"] == "nginx"), "{e}");
    let (_, e) = d.wait_for_after(
        0,
        |e| on_service(e, "http_429", netns, &listen) && ev(e, "s429") == n(429),
        Duration::from_secs(10),
    );
    eprintln!("http_429 over HTTP/2: {e}");
    let events = d.finish();
    // Never more than nginx logged, and no stream lost its place.
    for e in &events {
        if on_service(e, "http_5xx", netns, &listen) {
            assert!(ev(e, "responses") <= total, "{e}");
        }
        assert!(!(e["type"] == "loss" && e["source"] == "h2_desync"), "{e}");
    }
}
