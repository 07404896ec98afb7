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

const DETECT: &str = "[http_5xx]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n";

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

/// A client that opens one keep-alive connection to `host:8080`, gets `/gone` once, writes the
/// status to `OUT.pre`, waits (at most 60 s) for the file `GO`, then gets `/gone` N times on
/// the same connection and writes the statuses to `OUT`.
const HELD_CLIENT: &str = r#"
import http.client, os, sys, time
host, n, go, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection(host, 8080, timeout=10)
def get(p):
    c.request("GET", p)
    r = c.getresponse()
    r.read()
    return r.status
open(out + ".pre", "w").write(str(get("/gone?before")))
end = time.time() + 60
while not os.path.exists(go):
    if time.time() > end:
        sys.exit(2)
    time.sleep(0.05)
open(out, "w").write(" ".join(str(get(f"/gone?after{i}")) for i in range(n)))
"#;

/// Waits up to 20 s for `path` and returns its text.
fn wait_file(path: &Path) -> String {
    poll(Duration::from_secs(20), Duration::from_millis(50), || {
        std::fs::read_to_string(path).ok().filter(|t| !t.is_empty())
    })
    .unwrap_or_else(|| panic!("{} never written", path.display()))
}

#[test]
fn a_keep_alive_connection_accepted_before_the_attach_is_counted() {
    require_root();
    let srv = Netns::new("hpk-hs");
    let cl = Netns::new("hpk-hc");
    let v = pair(&srv, &cl, 214);
    let dir = TempDir::new("hpk-h");
    let listen = format!("{}:8080", v.a_addr);
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let server = format!(
        "    server {{\n        listen {listen};\n        root {};\n\
         \x20       location /gone {{ return 503; }}\n    }}\n",
        www.display()
    );
    let conf = guardian_tests::nginx::conf(
        dir.path(),
        "warn",
        Some("$status $server_port $request_uri $connection"),
        &server,
    );
    start_nginx(&srv, dir.path(), &conf, 8080);
    // The connection and its first request, before guardian runs: no SYN on 8080 after it.
    let (go, out) = (dir.path().join("go"), dir.path().join("out"));
    let n = 20;
    cl.spawn(&[
        "python3",
        "-c",
        HELD_CLIENT,
        &v.a_addr.to_string(),
        &n.to_string(),
        go.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(wait_file(&out.with_extension("pre")), "503");

    let mut d = http_daemon(&srv, dir.path(), DETECT, &["--http-no-tls"]);
    let att = d.wait_attached();
    let marked = &att["detail"]["http"]["packets"]["listener_ports"];
    eprintln!("listener ports marked at the attach: {marked}");
    assert!(marked.as_u64().is_some_and(|m| m >= 1), "{att}");
    std::fs::write(&go, "").unwrap();
    assert_eq!(wait_file(&out), vec!["503"; n].join(" "));

    // nginx's own account: n + 1 responses, all on the one connection accepted before.
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let conns: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("503 8080 "))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(conns.len(), n + 1, "{log}");
    assert!(conns.iter().all(|c| *c == conns[0]), "{log}");
    let netns = srv.inode();
    let (_, e) = d.wait_for_after(
        0,
        |e| on_service(e, netns, &listen) && ev(e, "s503") == n as u64,
        Duration::from_secs(10),
    );
    eprintln!("http_5xx: {e}");
    assert_eq!(ev(&e, "responses"), n as u64, "{e}");
    for e in d.finish() {
        if on_service(&e, netns, &listen) {
            assert!(ev(&e, "responses") <= n as u64, "{e}");
        }
    }
}
