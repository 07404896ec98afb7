//! TLS statuses read from OpenSSL's record layer at the socket sends (Linux 6.3+:
//! guardian-ebpf/src/tls_record.rs), with the real daemon, nginx from Debian and curl.
//!
//! After ten connections the daemon has found the record layer's words in the `SSL` objects
//! and detached `SSL_write`'s uprobes. Then the statuses of HTTP/1.1 and HTTP/2 responses,
//! small and large, to fast readers and to slow ones (partial sends, EAGAIN), on new and on
//! kept-alive connections, must still equal nginx's access log, while the kernel runs no
//! `SSL_write` probe program at all (its BPF run counter) and the socket program runs. Among
//! them, HTTP/2 connections of one request take turns between two listeners: each most
//! likely gets the `SSL` object and the socket address the last one freed, and must count,
//! all of them, under its own listener.
//!
//! Then a libssl of another build appears: python3 loads a copy of the system's whose GNU
//! build id differs by one byte. The daemon must put the `SSL_write` probes back on every
//! library, the kernel must run them again, and the counts must stay exact.
use std::path::Path;
use std::time::Duration;

use guardian_tests::nginx;
use guardian_tests::*;
use serde_json::Value;

use crate::http::{access_counts, curl, ev_u64 as ev, http_daemon, on_service, start_nginx};

const DETECT: &str = "[http_5xx]\nwindow_ms = 120000\nmin_per_s = 0.01\nupdate_every_ms = 200\n";

const SYSTEM_LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

/// nginx with two TLS listeners (HTTP/1.1 and HTTP/2) on `addr`, 8443 and 8444: `/` a small
/// file, `/big` 300 kB, and `/gone` 503.
fn conf(dir: &Path, addr: &str) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n").unwrap();
    // Ends with a newline: curl writes the bodies and its status lines to one stdout.
    std::fs::write(www.join("big"), "0123456789abcdef".repeat(300 * 64) + "\n").unwrap();
    let d = dir.display();
    let server = |port: u16| {
        format!(
            "    server {{\n        listen {addr}:{port} ssl http2;\n\
             \x20       ssl_certificate {d}/cert.pem;\n        ssl_certificate_key {d}/key.pem;\n\
             \x20       root {d}/www;\n        keepalive_requests 10000;\n\
             \x20       location /gone {{ return 503; }}\n    }}\n"
        )
    };
    let server = server(8443) + &server(8444);
    nginx::conf(
        dir,
        "warn",
        Some("$status $server_port $request_uri"),
        &server,
    )
}

/// The kernel's BPF statistics on while it lives (`kernel.bpf_stats_enabled`), as before after.
struct BpfStats(String);

impl BpfStats {
    fn on() -> BpfStats {
        let key = "/proc/sys/kernel/bpf_stats_enabled";
        let was = std::fs::read_to_string(key).unwrap().trim().to_string();
        std::fs::write(key, "1").unwrap();
        BpfStats(was)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// How many times the loaded programs named `name` ran (the kernel's counter, with the
/// statistics on).
fn runs(name: &str) -> u64 {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "prog", "show", "name", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // One JSON object per program, or an array of them.
    let v: Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("[{}]", text.replace("}\n{", "},{"))))
        .unwrap_or(Value::Null);
    let progs = match v {
        Value::Array(a) => a,
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    };
    progs.iter().filter_map(|p| p["run_cnt"].as_u64()).sum()
}

/// The libssl's GNU build id, as the daemon logged it when it switched.
fn logged_build_id(log: &str) -> Vec<u8> {
    let at = log.find("build=build-id ").expect("no build id in the log") + 15;
    let hex = &log[at..at + 40];
    (0..20)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// A copy of `lib` in `dir` whose build id (`id`, found once in the file) differs in its
/// last byte: the same code, another build by its id.
fn other_build(lib: &str, id: &[u8], dir: &Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(lib).unwrap();
    let at: Vec<usize> = bytes
        .windows(id.len())
        .enumerate()
        .filter(|(_, w)| *w == id)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the build id is not in {lib} once");
    bytes[at[0] + id.len() - 1] ^= 0xff;
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("libssl.so.3");
    std::fs::write(&out, bytes).unwrap();
    out
}

/// Waits until the daemon's counts for `listen` equal nginx's access log for `port`.
fn counts_match(d: &mut Daemon, dir: &Path, netns: u64, listen: &str, port: u16) -> Value {
    let log = access_counts(dir, port);
    let total: u64 = log.values().sum();
    let s503 = log.get(&503).copied().unwrap_or(0);
    eprintln!("nginx access log: {log:?}");
    let exact = |e: &Value| {
        on_service(e, "http_5xx", netns, listen)
            && ev(e, "s503") == s503
            && ev(e, "responses") == total
    };
    // Every response, HTTP/2's under load included: a batch the walk loses its place in
    // drops its connection with an `h2_desync` loss, which this test must not see.
    match d.try_wait_for_after(0, exact, Duration::from_secs(10)) {
        Some((_, e)) => e,
        None => d.fail(&format!(
            "{listen}: no http_5xx event with {total} responses and {s503} × 503 within 10 s"
        )),
    }
}

#[test]
fn statuses_come_from_the_record_layer_once_ssl_write_has_no_probe() {
    require_root();
    let srv = Netns::new("tlsrec-s");
    let cl = Netns::new("tlsrec-c");
    let v = pair(&srv, &cl, 219);
    let dir = TempDir::new("tlsrec");
    let d_path = dir.path();
    let mut d = http_daemon(&srv, d_path, DETECT, &[]);
    let att = d.wait_attached();
    let sockets =
        att["detail"]["http"]["tracepoints"][0]["tracepoint"] == "tp_btf:sock_recv_length";
    let record = &att["detail"]["tls"]["record_layer"];
    if !sockets {
        // No socket tracepoints (before Linux 6.3): the sends are not seen, nothing to read.
        assert_eq!(record, "off", "{att}");
        eprintln!("no socket tracepoints here: the record layer is not read");
        return;
    }
    assert_eq!(record, "calibrating", "{att}");

    nginx::make_cert(d_path, "guardian-test", 2);
    let listen = format!("{}:8443", v.a_addr);
    let other = format!("{}:8444", v.a_addr);
    start_nginx(&srv, d_path, &conf(d_path, &v.a_addr.to_string()), 8443);
    let url = |p: &str, i: usize| format!("https://{listen}{p}?{i}");
    // Ten connections, one response each: one calibration sample per connection.
    for i in 0..10 {
        assert_eq!(curl(&cl, &[url("/", i)], false, &["-k"]), vec![200]);
    }
    let switched = poll(Duration::from_secs(15), Duration::from_millis(200), || {
        d.stderr_log()
            .contains("SSL_write's uprobes detached")
            .then_some(())
    });
    assert!(switched.is_some(), "{}", d.diagnostics());
    let log = d.stderr_log();
    eprintln!(
        "{}",
        log.lines()
            .find(|l| l.contains("uprobes detached"))
            .unwrap()
    );

    let stats = BpfStats::on();
    let (writes0, sends0) = (runs("tls_write"), runs("tls_sock_send"));
    let traffic = |tag: usize| {
        let mut urls = Vec::new();
        for i in 0..5 {
            urls.push(url("/gone", tag + i));
            urls.push(url("/", tag + i));
        }
        urls.push(url("/big", tag));
        urls.push(url("/gone", tag + 99));
        // HTTP/1.1 and HTTP/2 on one connection each, fast readers.
        for proto in ["--http1.1", "--http2"] {
            let got = curl(&cl, &urls, false, &["-k", proto]);
            assert_eq!(got.iter().filter(|c| **c == 503).count(), 6, "{got:?}");
        }
        // Slow readers: the 300 kB bodies fill the socket, OpenSSL's sends come back short
        // and with EAGAIN, and go on later.
        let slow = [
            url("/big", tag + 1),
            url("/big", tag + 2),
            url("/gone", tag + 3),
        ];
        for proto in ["--http1.1", "--http2"] {
            let got = curl(&cl, &slow, false, &["-k", proto, "--limit-rate", "300k"]);
            assert_eq!(got, vec![200, 200, 503], "{proto}");
        }
        // New connections, one response each.
        for i in 0..4 {
            assert_eq!(
                curl(&cl, &[url("/gone", tag + 50 + i)], false, &["-k"]),
                [503]
            );
        }
        // HTTP/2 connections taking turns between the two listeners: one nginx worker, so
        // each new connection most likely gets the `SSL` object the last one freed, and must
        // not inherit its service or its place in the frames.
        for i in 0..4 {
            let mine = format!("https://{listen}/?{}", tag + 60 + i);
            let theirs = format!("https://{other}/gone?{}", tag + 60 + i);
            assert_eq!(curl(&cl, &[mine], false, &["-k", "--http2"]), [200]);
            assert_eq!(curl(&cl, &[theirs], false, &["-k", "--http2"]), [503]);
        }
    };
    traffic(1000);
    let (writes1, sends1) = (runs("tls_write"), runs("tls_sock_send"));
    eprintln!("tls_write runs {writes0} -> {writes1}, tls_sock_send {sends0} -> {sends1}");
    assert_eq!(writes1, writes0, "an SSL_write probe ran after the switch");
    assert!(sends1 > sends0 + 40, "the socket program did not run");
    let netns = srv.inode();
    let e = counts_match(&mut d, d_path, netns, &listen, 8443);
    eprintln!("record layer: {e}");
    counts_match(&mut d, d_path, netns, &other, 8444);

    // A libssl of another build: the probes go back on, for every library.
    let lib = other_build(SYSTEM_LIBSSL, &logged_build_id(&log), &d_path.join("lib"));
    let ld = format!("LD_LIBRARY_PATH={}", lib.parent().unwrap().display());
    srv.spawn(&[
        "env",
        &ld,
        "python3",
        "-c",
        "import ssl, time; time.sleep(60)",
    ]);
    let back = poll(Duration::from_secs(15), Duration::from_millis(200), || {
        d.stderr_log()
            .contains("a libssl of another build appeared")
            .then_some(())
    });
    assert!(back.is_some(), "{}", d.diagnostics());
    traffic(2000);
    let writes2 = runs("tls_write");
    eprintln!("tls_write runs after the other build: {writes1} -> {writes2}");
    assert!(writes2 > writes1, "SSL_write's probes are not back");
    let e = counts_match(&mut d, d_path, netns, &listen, 8443);
    eprintln!("uprobes again: {e}");
    counts_match(&mut d, d_path, netns, &other, 8444);
    drop(stats);
    let events = d.finish();
    let desyncs: Vec<_> = events
        .iter()
        .filter(|e| is_type(e, "loss") && e["source"] == "h2_desync")
        .collect();
    assert!(desyncs.is_empty(), "HTTP/2 connections lost: {desyncs:?}");
    let log = access_counts(d_path, 8443);
    for e in events
        .iter()
        .filter(|e| on_service(e, "http_5xx", netns, &listen))
    {
        assert!(
            ev(e, "s503") <= log[&503],
            "counted more than nginx logged: {e}"
        );
    }
}
