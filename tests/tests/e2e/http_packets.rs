//! Plaintext HTTP read from the packets (`guardian run --http --http-no-tls`): the daemon holds
//! two cgroup socket-buffer programs and no program on any syscall, and its counts equal
//! nginx's access log, over keep-alive and new connections, IPv4 and IPv6. Where cgroup v2 is
//! missing, the syscall hook reads plaintext instead, with the same counts.
use std::path::Path;
use std::time::Duration;

use guardian_tests::links;
use guardian_tests::*;
use serde_json::Value;

use crate::http::{access_counts, curl, http_daemon, start_nginx};

/// nginx on `listen` (IPv4) and on [::1]:8081: `/` a small file (200), `/gone` 503, anything
/// else 404.
fn conf(dir: &Path, listen: &str) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n".repeat(50)).unwrap();
    let d = dir.display();
    let server = format!(
        "    server {{\n        listen {listen};\n        listen [::1]:8081;\n        root {d}/www;\n\
         \x20       location /gone {{ return 503; }}\n    }}\n"
    );
    guardian_tests::nginx::conf(
        dir,
        "warn",
        Some("$status $server_port $request_uri"),
        &server,
    )
}

fn on_service(e: &Value, netns: u64, service: &str) -> bool {
    (is_fault(e, "http_5xx", "opened") || is_fault(e, "http_5xx", "updated"))
        && e["netns"].as_u64() == Some(netns)
        && e["evidence"]["service"] == service
}

fn ev(e: &Value, k: &str) -> u64 {
    e["evidence"][k].as_u64().unwrap_or(0)
}

pub(crate) const DETECT: &str =
    "[http_5xx]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n";

/// Serves the mix, then waits for the daemon's counts to equal nginx's log for both services.
fn counts_equal_nginx_log(d: &mut Daemon, srv: &Netns, cl: &Netns, dir: &Path, listen: &str) {
    start_nginx(srv, dir, &conf(dir, listen), 8080);
    let url = |p: &str, i: usize| format!("http://{listen}{p}?{i}");
    // Keep-alive: one curl, one connection, 40 requests.
    let urls: Vec<String> = (0..20)
        .map(|i| url("/", i))
        .chain((0..10).map(|i| url("/missing", i)))
        .chain((0..10).map(|i| url("/gone", i)))
        .collect();
    let got = curl(cl, &urls, false, &[]);
    assert_eq!(got.iter().filter(|c| **c == 503).count(), 10, "{got:?}");
    // A new connection per request.
    for i in 0..10 {
        assert_eq!(curl(cl, &[url("/gone", 100 + i)], false, &[]), vec![503]);
    }
    // IPv6 on the server's own loopback: the client's segments are in the same namespace.
    let v6: Vec<String> = (0..10)
        .map(|i| format!("http://[::1]:8081/gone?{i}"))
        .collect();
    assert_eq!(curl(srv, &v6, false, &[]), vec![503; 10]);

    let log = access_counts(dir, 8080);
    let log6 = access_counts(dir, 8081);
    eprintln!("nginx access log: 8080 {log:?}, 8081 {log6:?}");
    assert_eq!(log.get(&503), Some(&20), "{log:?}");
    let netns = srv.inode();
    let total = log.values().sum::<u64>();
    let (_, e) = d.wait_for_after(
        0,
        |e| on_service(e, netns, listen) && ev(e, "s503") == 20 && ev(e, "responses") == total,
        Duration::from_secs(10),
    );
    eprintln!("http_5xx: {e}");
    assert_eq!(ev(&e, "s5xx"), 20, "{e}");
    let procs = e["evidence"]["processes"].as_array().unwrap();
    assert!(procs.iter().all(|p| p["comm"] == "nginx"), "{e}");
    let (_, e) = d.wait_for_after(
        0,
        |e| on_service(e, netns, "[::1]:8081") && ev(e, "s503") == 10,
        Duration::from_secs(10),
    );
    assert_eq!(ev(&e, "responses"), log6.values().sum::<u64>(), "{e}");
    // Never more than nginx logged, at any time (a segment counted twice would show here).
    for e in d.finish() {
        if on_service(&e, netns, listen) {
            assert!(ev(&e, "responses") <= total, "{e}");
        }
    }
}

#[test]
fn plaintext_http_is_counted_from_the_packets_with_no_program_on_the_syscalls() {
    require_root();
    let srv = Netns::new("hpk-s");
    let cl = Netns::new("hpk-c");
    let v = pair(&srv, &cl, 212);
    let dir = TempDir::new("hpk");
    let mut d = http_daemon(&srv, dir.path(), DETECT, &["--http-no-tls"]);
    let att = d.wait_attached();
    let http = &att["detail"]["http"];
    eprintln!("http: {http}");
    assert_eq!(
        http["packets"]["programs"],
        serde_json::json!(["http_ingress", "http_egress"])
    );
    assert_eq!(http["tracepoints"], serde_json::json!([]), "{http}");
    assert!(att["detail"]["tls"].is_null(), "{}", att["detail"]["tls"]);
    // The kernel's own account: cgroup ingress (0) and egress (1) links, no syscall hook.
    let held = links::of(d.pid().expect("pid"));
    let tps = links::tracepoints(&held);
    assert!(
        !tps.iter().any(|t| t.starts_with("sys_")),
        "syscall hooks: {tps:?}"
    );
    for t in [0, 1] {
        assert!(
            held.iter()
                .any(|l| l.kind == "cgroup" && l.attach_type == Some(t)),
            "no cgroup link of attach type {t}: {held:?}"
        );
    }
    counts_equal_nginx_log(&mut d, &srv, &cl, dir.path(), &format!("{}:8080", v.a_addr));
}

#[test]
fn without_cgroup_v2_the_syscall_hook_reads_plaintext_with_the_same_counts() {
    require_root();
    let srv = Netns::new("hpk-fs");
    let cl = Netns::new("hpk-fc");
    let v = pair(&srv, &cl, 213);
    let dir = TempDir::new("hpk-f");
    let cfg = dir.path().join("detect.toml");
    std::fs::write(&cfg, DETECT).unwrap();
    let run = links::without_cgroup2(dir.path(), &guardian_bin());
    let mut d = Daemon::start_with(
        &run,
        &srv,
        &[
            "--http",
            "--http-no-tls",
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    let att = d.wait_attached();
    let http = &att["detail"]["http"];
    eprintln!("http: {http}");
    let why = http["packets"]["error"].as_str().unwrap_or_default();
    assert!(why.contains("no cgroup v2"), "{http}");
    assert!(
        http["tracepoints"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{http}"
    );
    counts_equal_nginx_log(&mut d, &srv, &cl, dir.path(), &format!("{}:8080", v.a_addr));
}
