//! Keep-alive connections that nginx accepted, and served a request on, before guardian
//! started: their later responses count, plaintext (`--http-no-tls`: the packet programs look
//! at a port only once it is marked, and a pooled connection sends no new SYN) and over TLS
//! (`--http`: the syscall hook looks for TLS records only in the reads of processes that use
//! OpenSSL, and nginx's first read after the start comes before its first `SSL_write`). A
//! load balancer's pooled connections across a restart of guardian are this case.
//!
//! Each test: a Python client opens one connection and gets one 503; guardian starts; the
//! client gets `/gone` 20 more times on the same connection. The daemon must count exactly
//! those 20, as nginx logs them, all on the one connection.
use std::path::Path;
use std::time::Duration;

use guardian_tests::nginx;
use guardian_tests::*;

use crate::http::{ev_u64, http_daemon, on_service, start_nginx};
use crate::http_packets::DETECT;

/// The client: one keep-alive connection to `host:port` (`https`: TLS, unverified), `/gone`
/// once, its status to `OUT.pre`; then, once the file `GO` exists (at most 60 s), `/gone` N
/// times on the same connection, the statuses to `OUT`.
const HELD_CLIENT: &str = r#"
import http.client, os, ssl, sys, time
host, port, scheme, n, go, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
if scheme == "https":
    c = http.client.HTTPSConnection(host, port, timeout=10, context=ssl._create_unverified_context())
else:
    c = http.client.HTTPConnection(host, port, timeout=10)
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

/// The scenario on nginx's `listen` (`tls`: an `ssl` listener with a certificate made now),
/// guardian started with `args`; `check` looks at its `attached` event.
fn held(name: &str, subnet: u8, tls: bool, args: &[&str], check: fn(&serde_json::Value)) {
    require_root();
    let srv = Netns::new(&format!("{name}-s"));
    let cl = Netns::new(&format!("{name}-c"));
    let v = pair(&srv, &cl, subnet);
    let dir = TempDir::new(name);
    let port: u16 = if tls { 8443 } else { 8080 };
    let listen = format!("{}:{port}", v.a_addr);
    let d = dir.path().display();
    let ssl = match tls {
        true => {
            nginx::make_cert(dir.path(), "held.guardian.test", 2);
            format!(" ssl;\n        ssl_certificate {d}/cert.pem;\n        ssl_certificate_key {d}/key.pem")
        }
        false => String::new(),
    };
    let server = format!(
        "    server {{\n        listen {listen}{ssl};\n        location /gone {{ return 503; }}\n    }}\n"
    );
    let conf = nginx::conf(
        dir.path(),
        "warn",
        Some("$status $server_port $request_uri $connection"),
        &server,
    );
    start_nginx(&srv, dir.path(), &conf, port);
    // The connection and its first request, before guardian runs.
    let (go, out) = (dir.path().join("go"), dir.path().join("out"));
    let n = 20;
    let scheme = if tls { "https" } else { "http" };
    cl.spawn(&[
        "python3",
        "-c",
        HELD_CLIENT,
        &v.a_addr.to_string(),
        &port.to_string(),
        scheme,
        &n.to_string(),
        go.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(wait_file(&out.with_extension("pre")), "503");

    let mut daemon = http_daemon(&srv, dir.path(), DETECT, args);
    check(&daemon.wait_attached());
    std::fs::write(&go, "").unwrap();
    assert_eq!(wait_file(&out), vec!["503"; n].join(" "));

    // nginx's own account: n + 1 responses, all on the one connection accepted before.
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let conns: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(&format!("503 {port} ")))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(conns.len(), n + 1, "{log}");
    assert!(conns.iter().all(|c| *c == conns[0]), "{log}");
    let netns = srv.inode();
    let (_, e) = daemon.wait_for_after(
        0,
        |e| on_service(e, "http_5xx", netns, &listen) && ev_u64(e, "s503") == n as u64,
        Duration::from_secs(10),
    );
    eprintln!("http_5xx: {e}");
    assert_eq!(ev_u64(&e, "responses"), n as u64, "{e}");
    for e in daemon.finish() {
        if on_service(&e, "http_5xx", netns, &listen) {
            assert!(ev_u64(&e, "responses") <= n as u64, "{e}");
        }
    }
}

#[test]
fn a_keep_alive_connection_accepted_before_the_attach_is_counted() {
    held("hpk-h", 214, false, &["--http-no-tls"], |att| {
        let marked = &att["detail"]["http"]["packets"]["listener_ports"];
        eprintln!("listener ports marked at the attach: {marked}");
        assert!(marked.as_u64().is_some_and(|m| m >= 1), "{att}");
    });
}

#[test]
fn a_tls_keep_alive_connection_from_before_the_start_is_counted() {
    held("htk-h", 216, true, &[], |att| {
        let tls = &att["detail"]["tls"];
        eprintln!("TLS: {tls}");
        assert!(
            tls["libs"].as_array().is_some_and(|l| !l.is_empty()),
            "{att}"
        );
    });
}
