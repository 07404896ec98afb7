//! http_5xx and http_429 with the real daemon (`--http`) and a real nginx from Debian as a
//! reverse proxy in a namespace, whose upstream (python3's http.server, in a second
//! namespace) is rate-limited by nginx's `limit_req` (real 429s), slow (504s with
//! `proxy_read_timeout 1s`) and then killed (real 502s). The counts in the events must equal
//! the counts of nginx's own access log.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use guardian_tests::nginx;
use guardian_tests::*;
use serde_json::Value;

/// The upstream: python3's http.server with one slow path (`/slow` answers after 3 s).
const UPSTREAM: &str = r#"
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/slow'):
            time.sleep(3)
        body = b'ok\n'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], 8000), H).serve_forever()
"#;

/// The access log's format, read by [`access_counts`].
const LOG_FORMAT: &str = "$status $server_port $request_uri";

/// nginx as a reverse proxy to `upstream` (see [`nginx::conf`]); plaintext on `listen`, TLS
/// (`dir/cert.pem`, `dir/key.pem`) on `tls_listen`.
pub fn nginx_conf(dir: &Path, listen: &str, tls_listen: &str, upstream: &str) -> String {
    let d = dir.display();
    let servers = format!(
        r#"    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;
    limit_req_status 429;
    server {{
        listen {listen};
        listen {tls_listen} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location /limited {{
            limit_req zone=one;
            proxy_pass http://{upstream};
        }}
        location / {{
            proxy_pass http://{upstream};
            proxy_connect_timeout 1s;
            proxy_read_timeout 1s;
        }}
    }}
"#
    );
    nginx::conf(dir, "warn", Some(LOG_FORMAT), &servers)
}

/// nginx serving `dir/www/index.html` (a small file), for normal 200 traffic.
pub fn nginx_static_conf(dir: &Path, listen: &str) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n".repeat(50)).unwrap();
    let d = dir.display();
    let server =
        format!("    server {{\n        listen {listen};\n        root {d}/www;\n    }}\n");
    nginx::conf(dir, "warn", Some(LOG_FORMAT), &server)
}

pub use nginx::start as start_nginx;

/// Status codes of nginx's access log (`$status $server_port $request_uri` lines) for one
/// port.
pub fn access_counts(dir: &Path, port: u16) -> BTreeMap<u16, u64> {
    let mut m = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(code), Some(p)) = (f.next(), f.next()) else {
            continue;
        };
        if let (Ok(code), Ok(p)) = (code.parse(), p.parse::<u16>()) {
            if p == port {
                *m.entry(code).or_default() += 1;
            }
        }
    }
    m
}

/// `curl` from `ns`: every URL once (`--parallel` when asked), bounded by `--max-time`;
/// returns the status codes curl saw.
pub fn curl(ns: &Netns, urls: &[String], parallel: bool, extra: &[&str]) -> Vec<u16> {
    let mut argv = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}\\n"];
    argv.extend(["--max-time", "10"]);
    if parallel {
        argv.extend(["--parallel", "--parallel-max", "20"]);
    }
    argv.extend(extra);
    argv.extend(urls.iter().map(String::as_str));
    let out = ns.output(&argv);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The daemon in `ns` with `--http`, `extra` and the detector tables `detect` (written to
/// `dir/detect.toml`), attached with its HTTP programs.
pub fn http_daemon(ns: &Netns, dir: &Path, detect: &str, extra: &[&str]) -> Daemon {
    let cfg = dir.join("detect.toml");
    std::fs::write(&cfg, detect).unwrap();
    let mut args = vec!["--http", "--detect-config", cfg.to_str().unwrap()];
    args.extend(extra);
    let mut d = Daemon::start(ns, &args);
    let attached = d.wait_attached();
    assert!(
        attached["detail"]["http"]["tracepoints"].is_array(),
        "HTTP programs not attached: {attached}"
    );
    d
}

/// A number of the event's evidence (0 when absent).
pub fn ev_u64(e: &Value, k: &str) -> u64 {
    e["evidence"][k].as_u64().unwrap_or(0)
}

/// An opened or updated `fault` event for `service` in namespace `netns`.
pub fn on_service(e: &Value, fault: &str, netns: u64, service: &str) -> bool {
    (is_fault(e, fault, "opened") || is_fault(e, fault, "updated"))
        && e["netns"].as_u64() == Some(netns)
        && e["evidence"]["service"] == service
}

#[test]
fn nginx_502_504_and_429_are_counted_as_nginx_logs_them() {
    require_root();
    let proxy = Netns::new("http-px");
    let up = Netns::new("http-up");
    let v = pair(&proxy, &up, 201);
    let dir = TempDir::new("http-nginx");
    // A window that holds the whole run, frequent updates: the counts can be compared with
    // the access log once every response is in.
    let mut d = http_daemon(
        &proxy,
        dir.path(),
        "[http_5xx]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n\
         [http_429]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n",
        &[],
    );

    let upstream_pid = up.spawn(&["python3", "-c", UPSTREAM, &v.b_addr.to_string()]);
    let listen = format!("{}:8080", v.a_addr);
    let tls = format!("{}:8443", v.a_addr);
    nginx::make_cert(dir.path(), "guardian-test", 2);
    let conf = nginx_conf(dir.path(), &listen, &tls, &format!("{}:8000", v.b_addr));
    start_nginx(&proxy, dir.path(), &conf, 8080);
    let url = |p: &str, i: usize| format!("http://{listen}{p}?{i}");
    let ok = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        (curl(&proxy, &[url("/", 0)], false, &[]) == [200]).then_some(())
    });
    assert!(ok.is_some(), "the upstream never answered through nginx");

    // 429: 1 request per second allowed, 30 at once over keep-alive connections.
    let urls: Vec<String> = (0..30).map(|i| url("/limited", i)).collect();
    let got = curl(&proxy, &urls, false, &[]);
    assert!(got.iter().filter(|c| **c == 429).count() >= 25, "{got:?}");
    // 504: 6 slow requests in parallel, each cut after 1 s.
    let urls: Vec<String> = (0..6).map(|i| url("/slow", i)).collect();
    assert_eq!(curl(&proxy, &urls, true, &[]), vec![504; 6]);
    // 502: the upstream dies.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(upstream_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let urls: Vec<String> = (0..20).map(|i| url("/", i)).collect();
    assert_eq!(curl(&proxy, &urls, false, &[]), vec![502; 20]);
    // The same over TLS (OpenSSL uprobes): 15 requests, all 502.
    let urls: Vec<String> = (0..15).map(|i| format!("https://{tls}/?{i}")).collect();
    assert_eq!(curl(&proxy, &urls, false, &["-k"]), vec![502; 15]);

    let log = access_counts(dir.path(), 8080);
    let tls_log = access_counts(dir.path(), 8443);
    eprintln!("nginx access log, TLS port: {tls_log:?}");
    eprintln!("nginx access log: {log:?}");
    let n = |c: u16| log.get(&c).copied().unwrap_or(0);
    let netns = proxy.inode();
    let (_, e) = d.wait_for_after(
        0,
        |e| {
            on_service(e, "http_5xx", netns, &listen)
                && ev_u64(e, "s502") == n(502)
                && ev_u64(e, "s504") == n(504)
        },
        Duration::from_secs(10),
    );
    eprintln!("http_5xx: {e}");
    assert_eq!(ev_u64(&e, "s5xx"), n(502) + n(504), "{e}");
    assert_eq!(ev_u64(&e, "responses"), log.values().sum::<u64>(), "{e}");
    assert_eq!(e["subject"]["port"], 8080);
    assert_eq!(e["layer"], 7);
    let procs = e["evidence"]["processes"].as_array().unwrap();
    assert!(procs.iter().all(|p| p["comm"] == "nginx"), "{e}");
    let (_, e) = d.wait_for_after(
        0,
        |e| on_service(e, "http_429", netns, &listen) && ev_u64(e, "s429") == n(429),
        Duration::from_secs(10),
    );
    eprintln!("http_429: {e}");
    let tls502 = tls_log.get(&502).copied().unwrap_or(0);
    let (_, e) = d.wait_for_after(
        0,
        |e| on_service(e, "http_5xx", netns, &tls) && ev_u64(e, "s502") == tls502,
        Duration::from_secs(10),
    );
    eprintln!("http_5xx over TLS: {e}");
    assert_eq!(
        ev_u64(&e, "responses"),
        tls_log.values().sum::<u64>(),
        "{e}"
    );
    // Never more than nginx logged, at any time.
    let events = d.finish();
    for e in events.iter().filter(|e| e["netns"].as_u64() == Some(netns)) {
        if on_service(e, "http_5xx", netns, &listen) {
            assert!(
                ev_u64(e, "s502") <= n(502) && ev_u64(e, "s504") <= n(504),
                "{e}"
            );
        }
        if on_service(e, "http_429", netns, &listen) {
            assert!(ev_u64(e, "s429") <= n(429), "{e}");
        }
    }
}
