//! Plaintext TLS alerts with the real daemon (`--http`, the write tracepoints) and a TLS stack
//! that is not OpenSSL: Debian's `gnutls-serv`, in a namespace the test creates, with a
//! self-signed certificate made by the test. OpenSSL's `s_client` provokes real alerts on
//! loopback, both directions:
//!
//! - a client offering only TLS 1.2 to a server restricted to TLS 1.3: the server (GnuTLS)
//!   refuses with a fatal alert, which s_client prints (`SSL alert number N`);
//! - a verifying client (`-verify_return_error`) against the self-signed certificate (TLS 1.2,
//!   where the alert is still cleartext): the client sends `unknown_ca`, which gnutls-serv logs
//!   (`A TLS fatal alert has been received`).
//!
//! The counts in the `tls_handshake_failure` events must equal the attempts, on both ends, with
//! the alerts named as the programs themselves report them. They stay exact when the alert
//! entries are deleted from the kernel map and made again (as the sampler's pruning and LRU
//! evictions do), and a deleted namespace's entries leave the map.
use std::path::Path;
use std::time::Duration;

use guardian_tests::bpf_maps::{daemon_map, delete_entry, keys};
use guardian_tests::sockets::detect_config;
use guardian_tests::*;
use serde_json::Value;

/// Low enough for a handful of failed handshakes, updated often.
const DETECT: &str = "[tls_handshake_failure]\nmin_per_s = 0.05\nupdate_every_ms = 200\n";

const ADDR: &str = "127.0.0.1";
/// TLS 1.3 only: refuses TLS 1.2 clients.
const STRICT: u16 = 5556;
/// TLS 1.2: its self-signed certificate is rejected by verifying clients.
const SELF_SIGNED: u16 = 5557;

/// gnutls-serv on `port` with `priority`, its output in `log`.
fn gnutls_serv(ns: &Netns, dir: &Path, port: u16, priority: &str, log: &str) {
    let d = dir.display();
    ns.spawn(&[
        "sh",
        "-c",
        &format!(
            "exec gnutls-serv --x509keyfile {d}/key.pem --x509certfile {d}/cert.pem \
             -p {port} --priority {priority} >{d}/{log} 2>&1"
        ),
    ]);
    ns.wait_listening(port, "gnutls-serv");
}

/// A self-signed certificate (`cert.pem`, `key.pem`) in `d`, made now.
fn self_signed(d: &Path) {
    let out = std::process::Command::new("openssl")
        .current_dir(d)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=guardian-tls-alerts",
            "-days",
            "2",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .output()
        .expect("run openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `openssl s_client` handshake; returns its stderr and stdout.
fn s_client(ns: &Netns, port: u16, extra: &[&str]) -> String {
    let target = format!("{ADDR}:{port}");
    let mut argv = vec![
        "timeout", "10", "openssl", "s_client", "-connect", &target, "-tls1_2",
    ];
    argv.extend_from_slice(extra);
    let out = ns
        .command(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    assert!(!out.status.success(), "s_client to {port} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// The alert number s_client says it received (`SSL alert number 40`).
fn received_alert(out: &str) -> Option<u8> {
    let i = out.find("SSL alert number ")?;
    let digits: String = out[i + 17..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn fault(e: &Value, netns: u64, role: &str, port: u16) -> bool {
    (is_fault(e, "tls_handshake_failure", "opened")
        || is_fault(e, "tls_handshake_failure", "updated"))
        && e["netns"].as_u64() == Some(netns)
        && e["evidence"]["role"] == role
        && e["evidence"]["listener"] == format!("{ADDR}:{port}").as_str()
}

/// The count of the alert (`code`, `direction`) in the evidence of `e`.
fn alert_count(e: &Value, code: u8, direction: &str) -> u64 {
    e["evidence"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["code"] == code && a["direction"] == direction)
        .map(|a| a["count"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn gnutls_alerts_are_counted_on_both_ends() {
    require_root();
    let ns = Netns::new("tlsal");
    let dir = TempDir::new("tlsal");
    let d = dir.path();
    let detect = detect_config(d, DETECT);
    let mut g = Daemon::start(
        &ns,
        &["--http", "--detect-config", detect.to_str().unwrap()],
    );
    g.wait_attached();
    self_signed(d);
    gnutls_serv(
        &ns,
        d,
        STRICT,
        "NORMAL:-VERS-ALL:+VERS-TLS1.3",
        "strict.log",
    );
    gnutls_serv(
        &ns,
        d,
        SELF_SIGNED,
        "NORMAL:-VERS-ALL:+VERS-TLS1.2",
        "self.log",
    );

    // TLS 1.2 to the TLS 1.3 server: it answers with a fatal alert, the one s_client prints.
    let (n_strict, n_self) = (5u64, 4u64);
    let mut server_alert = None;
    for _ in 0..n_strict {
        let out = s_client(&ns, STRICT, &[]);
        let code = received_alert(&out).unwrap_or_else(|| panic!("no alert received: {out}"));
        assert!(server_alert.is_none_or(|c| c == code), "{out}");
        server_alert = Some(code);
    }
    let server_alert = server_alert.unwrap();
    // Verifying the self-signed certificate: s_client refuses it (error 18) with unknown_ca.
    for _ in 0..n_self {
        let out = s_client(&ns, SELF_SIGNED, &["-verify_return_error"]);
        assert!(out.contains("self-signed certificate"), "{out}");
    }
    let logged = |log: &str, what: &str| {
        let text = std::fs::read_to_string(d.join(log)).unwrap_or_default();
        text.matches(what).count() as u64
    };
    // gnutls-serv's own view: every attempt failed; the verifying client's alerts received.
    let received = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        let n = logged("self.log", "A TLS fatal alert has been received");
        (n == n_self).then_some(n)
    });
    assert_eq!(
        received,
        Some(n_self),
        "gnutls-serv's log of the alerts received"
    );
    eprintln!("s_client received alert {server_alert} x{n_strict}; gnutls-serv received {n_self}");

    let netns = ns.inode();
    let mut wait = |role: &str, port: u16, n: u64, code: u8, dir: &str| {
        let (_, e) = g.wait_for_after(
            0,
            |e| {
                fault(e, netns, role, port)
                    && e["evidence"]["failed"] == n
                    && alert_count(e, code, dir) == n
            },
            Duration::from_secs(15),
        );
        eprintln!("{role} {port}: {e}");
        assert_eq!(e["subject"]["port"], port, "{e}");
        let a = &e["evidence"]["alerts"];
        assert_eq!(a.as_array().map(Vec::len), Some(1), "{e}");
        assert_eq!(a[0]["level"], "fatal", "{e}");
        assert_eq!(a[0]["peer"], ADDR, "{e}");
        assert_eq!(e["evidence"]["peers"][0]["peer"], ADDR, "{e}");
        assert_eq!(e["evidence"]["peers"][0]["failed"], n, "{e}");
        e
    };
    // GnuTLS sent it: judged on the alerts (no OpenSSL handshake on that side).
    let e = wait("server", STRICT, n_strict, server_alert, "sent");
    assert_eq!(e["evidence"]["basis"], "alerts", "{e}");
    // s_client received it.
    wait("client", STRICT, n_strict, server_alert, "received");
    // s_client sent unknown_ca (48); GnuTLS received it.
    let e = wait("client", SELF_SIGNED, n_self, 48, "sent");
    assert_eq!(e["evidence"]["alerts"][0]["alert"], "unknown_ca", "{e}");
    let e = wait("server", SELF_SIGNED, n_self, 48, "received");
    assert_eq!(e["evidence"]["basis"], "alerts", "{e}");

    let events = g.finish();
    for e in &events {
        // Nothing lost, never more than the attempts.
        assert!(!(e["type"] == "loss" && e["source"] == "map_full"), "{e}");
        if e["fault"] == "tls_handshake_failure" && e["state"] != "cleared" {
            let max = match e["subject"]["port"].as_u64() {
                Some(p) if p == STRICT as u64 => n_strict,
                Some(p) if p == SELF_SIGNED as u64 => n_self,
                _ => panic!("a listener nobody failed on: {e}"),
            };
            assert!(e["evidence"]["failed"].as_u64() <= Some(max), "{e}");
        }
    }
}

/// The keys of `map` (`TLS_ALERTS`: `AlertKey`, its netns first) that belong to `netns`.
fn alert_keys(map: u32, netns: u64) -> Vec<Vec<u8>> {
    keys(map)
        .into_iter()
        .filter(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]) as u64 == netns)
        .collect()
}

#[test]
fn restarted_entries_keep_their_counts_and_a_deleted_namespace_leaves_the_map() {
    require_root();
    // The daemon in one namespace; the server and its clients in another, deleted at the end.
    let home = Netns::new("tlsgd");
    let ns = Netns::new("tlsgv");
    let dir = TempDir::new("tlsgv");
    let d = dir.path();
    let detect = detect_config(d, DETECT);
    let mut g = Daemon::start(
        &home,
        &["--http", "--detect-config", detect.to_str().unwrap()],
    );
    g.wait_attached();
    self_signed(d);
    gnutls_serv(
        &ns,
        d,
        STRICT,
        "NORMAL:-VERS-ALL:+VERS-TLS1.3",
        "strict.log",
    );
    let netns = ns.inode();
    let map = daemon_map(g.pid().unwrap(), "TLS_ALERTS");
    let attempts = |n: u64| {
        for _ in 0..n {
            let out = s_client(&ns, STRICT, &[]);
            assert!(received_alert(&out).is_some(), "no alert received: {out}");
        }
    };
    let mut failed = |n: u64| {
        g.wait_for_after(
            0,
            |e| fault(e, netns, "server", STRICT) && e["evidence"]["failed"] == n,
            Duration::from_secs(15),
        );
    };
    attempts(3);
    failed(3);
    // Delete the entries, as the sampler's pruning or an LRU eviction would: the next alert
    // makes its entry again from zero, and the detector must add it to the 3, not start over.
    let before = alert_keys(map, netns);
    assert!(
        !before.is_empty(),
        "no TLS_ALERTS entry for namespace {netns}"
    );
    for k in &before {
        delete_entry(map, k);
    }
    assert!(alert_keys(map, netns).is_empty());
    std::thread::sleep(Duration::from_millis(1500)); // a tick reads the map without them
    attempts(2);
    let again = alert_keys(map, netns);
    assert_eq!(again.len(), before.len(), "the entries were not made again");
    failed(5);
    eprintln!(
        "{} entries, deleted and made again: 3 + 2 failures counted",
        before.len()
    );

    // The namespace goes (with its processes): its entries leave the map within seconds.
    drop(ns);
    let t = std::time::Instant::now();
    let emptied = poll(Duration::from_secs(20), Duration::from_millis(200), || {
        alert_keys(map, netns).is_empty().then_some(())
    });
    assert!(
        emptied.is_some(),
        "the deleted namespace's alert entries are still in the map"
    );
    eprintln!(
        "entries of the deleted namespace gone after {:?}",
        t.elapsed()
    );
    let events = g.finish();
    for e in &events {
        assert!(!(e["type"] == "loss" && e["source"] == "map_full"), "{e}");
        if e["fault"] == "tls_handshake_failure" && e["state"] != "cleared" {
            assert!(e["evidence"]["failed"].as_u64() <= Some(5), "{e}");
        }
    }
}
