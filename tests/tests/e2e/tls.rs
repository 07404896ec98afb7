//! tls_handshake_failure with the real daemon (`--http`, OpenSSL uprobes), the real nginx from
//! Debian and Python's `ssl` (server and client), with certificates made by the test with
//! openssl (guardian-testbed's `tls`: a CA, then leaves signed by `openssl ca` with explicit
//! validity dates): one with a wrong name, one expired, one expiring in 3 days and one valid
//! for a year. Verifying clients (curl, python3) fail their handshakes with the first two;
//! the counts in the events must equal the clients' own failure counts, per listener and
//! peer, on both ends.
use std::path::Path;
use std::time::Duration;

use guardian_testbed::tls::{self, make_ca, make_leaf};
use guardian_tests::nginx;
use guardian_tests::sockets::detect_config;
use guardian_tests::*;
use serde_json::Value;

/// Low enough for a handful of failed handshakes, updated often.
const DETECT: &str = "[tls_handshake_failure]\nmin_per_s = 0.05\nupdate_every_ms = 200\n";

/// A verifying Python TLS client: `n` connections to host:port, one handshake each; prints
/// how many failed certificate verification.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fails = 0
for i in range(n):
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError:
        fails += 1
print(fails)
"#;

/// nginx with one TLS server per (port, leaf name), serving a small file.
fn nginx_tls_conf(dir: &Path, addr: &str, servers: &[(u16, &str)]) -> String {
    let d = dir.display();
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n").unwrap();
    let mut s = String::new();
    for (port, name) in servers {
        s += &format!(
            "    server {{ listen {addr}:{port} ssl; ssl_certificate {d}/{name}.pem; \
             ssl_certificate_key {d}/{name}.key; root {d}/www; }}\n"
        );
    }
    nginx::conf(dir, "info", None, &s)
}

/// Runs curl `n` times (one connection each) with the test CA; returns how many failed
/// certificate verification (exit 60) and how many succeeded.
fn curl_n(ns: &Netns, ca: &Path, url: &str, n: usize) -> (u64, u64) {
    let (mut failed, mut ok) = (0, 0);
    for _ in 0..n {
        let out = ns.output(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "--cacert",
            ca.to_str().unwrap(),
            url,
        ]);
        match out.status.code() {
            Some(60) => failed += 1,
            Some(0) => ok += 1,
            c => panic!("curl {url}: exit {c:?}"),
        }
    }
    (failed, ok)
}

/// python3's verifying client, `n` handshakes; returns the failures it counted.
fn py_client(ns: &Netns, ca: &Path, host: &str, port: u16, n: usize) -> u64 {
    let out = ns.output(&[
        "python3",
        "-c",
        PY_CLIENT,
        ca.to_str().unwrap(),
        host,
        &port.to_string(),
        &n.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn hs_fault(e: &Value, netns: u64, role: &str, listener: &str) -> bool {
    (is_fault(e, "tls_handshake_failure", "opened")
        || is_fault(e, "tls_handshake_failure", "updated"))
        && e["netns"].as_u64() == Some(netns)
        && e["evidence"]["role"] == role
        && e["evidence"]["listener"] == listener
}

fn ev(e: &Value, k: &str) -> u64 {
    e["evidence"][k].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn failed_handshakes_are_counted_per_listener_and_peer_on_both_ends() {
    require_root();
    let srv = Netns::new("tls-srv");
    let cl = Netns::new("tls-cl");
    let v = pair(&srv, &cl, 218);
    let (a, b) = (v.a_addr.to_string(), v.b_addr.to_string());
    let dir = TempDir::new("tls");
    let d = dir.path();
    let detect = detect_config(d, DETECT);
    let mut g = Daemon::start(
        &srv,
        &["--http", "--detect-config", detect.to_str().unwrap()],
    );
    let attached = g.wait_attached();
    assert!(
        attached["detail"]["tls"]["libs"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "OpenSSL uprobes not attached: {attached}"
    );

    make_ca(d, "guardian-test-ca").unwrap();
    let ip = format!("IP:{a}");
    const DAY: i64 = 86_400;
    for (name, san, start, end) in [
        ("wrongname", "DNS:wrong.example", -DAY, 300 * DAY),
        ("expired", &ip, -30 * DAY, -2 * DAY),
        ("expiring", &ip, -DAY, 3 * DAY),
        ("valid", &ip, -DAY, 365 * DAY),
    ] {
        make_leaf(d, name, san, start, end).unwrap();
    }
    let servers = [
        (8443, "wrongname"),
        (8444, "expired"),
        (8445, "expiring"),
        (8446, "valid"),
    ];
    nginx::start(&srv, d, &nginx_tls_conf(d, &a, &servers), 8446);
    srv.spawn(&[
        "python3",
        "-c",
        tls::PY_SERVER,
        &a,
        "9443",
        &d.join("expired.pem").to_string_lossy(),
        &d.join("expired.key").to_string_lossy(),
    ]);
    srv.wait_listening(9443, "the python3 TLS server");

    let ca = d.join("ca.pem");
    // Wrong name (nginx, python3 client: OpenSSL checks the name inside the handshake; curl
    // checks it after a completed handshake, so its refusal is no handshake failure), expired
    // (nginx with curl, python3 with python3), valid ones.
    let wrong = py_client(&cl, &ca, &a, 8443, 6);
    let (expired_nginx, _) = curl_n(&cl, &ca, &format!("https://{a}:8444/"), 5);
    let expired_py = py_client(&cl, &ca, &a, 9443, 4);
    let (f1, ok1) = curl_n(&cl, &ca, &format!("https://{a}:8446/"), 3);
    let ok2 = 2 - py_client(&cl, &ca, &a, 8445, 2);
    eprintln!("client failures: {wrong} {expired_nginx} {expired_py}; ok {ok1} {ok2}");
    assert_eq!((wrong, expired_nginx, expired_py), (6, 5, 4));
    assert_eq!((f1, ok1, ok2), (0, 3, 2));

    let (sn, cn) = (srv.inode(), cl.inode());
    let wait = |g: &mut Daemon, netns, role: &str, port: u16, n: u64, comm: &str| {
        let listener = format!("{a}:{port}");
        let (_, e) = g.wait_for_after(
            0,
            |e| hs_fault(e, netns, role, &listener) && ev(e, "failed") == n,
            Duration::from_secs(10),
        );
        eprintln!("{role} {listener}: {e}");
        // The client's address on both ends: the server's peer, the client's own.
        assert_eq!(e["evidence"]["peers"][0]["peer"], b.as_str(), "{e}");
        assert_eq!(e["evidence"]["peers"][0]["failed"], n, "{e}");
        assert_eq!(e["subject"]["port"], port, "{e}");
        let procs = e["evidence"]["processes"].as_array().unwrap();
        // A client that exited before the sample read its name has none.
        let named = |p: &Value| p["comm"] == comm || (role == "client" && p["comm"] == "");
        assert!(procs.iter().all(named), "{e}");
    };
    wait(&mut g, sn, "server", 8443, wrong, "nginx");
    wait(&mut g, sn, "server", 8444, expired_nginx, "nginx");
    wait(&mut g, sn, "server", 9443, expired_py, "python3");
    wait(&mut g, cn, "client", 8443, wrong, "python3");
    wait(&mut g, cn, "client", 8444, expired_nginx, "curl");
    // Certificates read from the listeners themselves: expired (nginx and python3), expiring.
    let cert = |g: &mut Daemon, port: u16, severity: &str| {
        let listener = format!("{a}:{port}");
        let (_, e) = g.wait_for_after(
            0,
            |e| {
                is_fault(e, "tls_cert_expiry", "opened")
                    && e["netns"].as_u64() == Some(sn)
                    && e["severity"] == severity
                    && e["evidence"]["listener"] == listener.as_str()
            },
            Duration::from_secs(10),
        );
        eprintln!("{listener}: {e}");
        e["evidence"]["days_left"].as_f64().unwrap()
    };
    let left = cert(&mut g, 8444, "error");
    assert!((-2.1..=-1.9).contains(&left), "{left}");
    assert!(cert(&mut g, 9443, "error") < 0.0);
    let left = cert(&mut g, 8445, "warning");
    assert!((2.9..=3.1).contains(&left), "{left}");
    let events = g.finish();
    // Nothing for the long-lived certificates (valid, wrong name: 300 and 365 days).
    for e in events.iter().filter(|e| e["fault"] == "tls_cert_expiry") {
        let l = e["evidence"]["listener"].as_str().unwrap_or("");
        assert!(!l.ends_with(":8443") && !l.ends_with(":8446"), "{e}");
    }
    // Never more than the clients counted, and nothing on the valid listeners.
    for e in events
        .iter()
        .filter(|e| e["fault"] == "tls_handshake_failure")
    {
        let l = e["evidence"]["listener"].as_str().unwrap_or("");
        assert!(!l.ends_with(":8445") && !l.ends_with(":8446"), "{e}");
        let max = match l.rsplit(':').next() {
            Some("8443") => wrong,
            Some("8444") => expired_nginx,
            _ => expired_py,
        };
        assert!(ev(e, "failed") <= max || e["state"] == "cleared", "{e}");
    }
}

#[test]
fn a_libssl_deleted_under_a_running_server_is_still_probed() {
    require_root();
    let srv = Netns::new("tlsdel-srv");
    let cl = Netns::new("tlsdel-cl");
    let v = pair(&srv, &cl, 219);
    let a = v.a_addr.to_string();
    let dir = TempDir::new("tlsdel");
    let d = dir.path();
    make_ca(d, "guardian-test-ca").unwrap();
    make_leaf(d, "expired", &format!("IP:{a}"), -30 * 86_400, -2 * 86_400).unwrap();
    // A Python server on its own copy of libssl, which is then deleted while mapped: what a
    // running server looks like after a package upgrade replaced the library.
    let lib = d.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        lib.join("libssl.so.3"),
    )
    .unwrap();
    let server = srv.spawn(&[
        "env",
        &format!("LD_LIBRARY_PATH={}", lib.display()),
        "python3",
        "-c",
        tls::PY_SERVER,
        &a,
        "9443",
        &d.join("expired.pem").to_string_lossy(),
        &d.join("expired.key").to_string_lossy(),
    ]);
    srv.wait_listening(9443, "the python3 TLS server");
    std::fs::remove_file(lib.join("libssl.so.3")).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{server}/maps")).unwrap();
    assert!(
        maps.lines()
            .any(|l| l.contains(&format!("{}/libssl.so.3 (deleted)", lib.display()))),
        "the server does not map the deleted copy:\n{maps}"
    );

    let detect = detect_config(d, DETECT);
    let mut g = Daemon::start(
        &srv,
        &["--http", "--detect-config", detect.to_str().unwrap()],
    );
    let attached = g.wait_attached();
    let libs = &attached["detail"]["tls"]["libs"];
    let through_mapping = format!("/proc/{server}/map_files/");
    assert!(
        libs.as_array()
            .into_iter()
            .flatten()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with(&through_mapping))),
        "the deleted libssl is not attached: {libs}"
    );
    let failed = py_client(&cl, &d.join("ca.pem"), &a, 9443, 4);
    assert_eq!(failed, 4);
    let listener = format!("{a}:9443");
    let (_, e) = g.wait_for_after(
        0,
        |e| hs_fault(e, srv.inode(), "server", &listener) && ev(e, "failed") == 4,
        Duration::from_secs(10),
    );
    eprintln!("server {listener}: {e}");
    assert_eq!(e["evidence"]["basis"], "handshakes", "{e}");
    assert_eq!(e["evidence"]["processes"][0]["comm"], "python3", "{e}");
    g.finish();
}
