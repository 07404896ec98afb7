//! A connection's service is kept from its first response on (guardian-ebpf/src/sys_exit.rs),
//! so a fd number that a process reuses for a connection to another listener must not carry
//! the old service. A real server (python3, one process, two listeners, read(2)/write(2) on
//! raw fds) serves three connections on the same fd number: to A (503s), closed; to B (502s),
//! accepted onto that number; to A again, then replaced by a connection to B with dup2(2)
//! (504s), with no close(2) of that number and no accept(2) returning it. The counts per
//! service must be exactly what each listener answered.
use std::time::Duration;

use guardian_tests::*;

use super::http::{curl, http_daemon};

/// The server: `argv[1]` its address, `argv[2]` a file where it writes the fd numbers it
/// used, so that the test checks the reuse it relies on really happened.
const SERVER: &str = r#"
import os, socket, sys
addr, out = sys.argv[1], sys.argv[2]
a = socket.create_server((addr, 8080))
b = socket.create_server((addr, 8081))

def serve(fd, status):
    buf = b''
    while True:
        d = os.read(fd, 65536)
        if not d:
            return
        buf += d
        while b'\r\n\r\n' in buf:
            _, buf = buf.split(b'\r\n\r\n', 1)
            os.write(fd, b'HTTP/1.1 %d X\r\nContent-Length: 3\r\n\r\nok\n' % status)

c1, _ = a.accept(); n = c1.fileno(); serve(n, 503); c1.close()
c2, _ = b.accept(); n2 = c2.fileno(); serve(n2, 502); c2.close()
c3, _ = a.accept(); n3 = c3.fileno(); serve(n3, 503)
c4, _ = b.accept(); m = c4.fileno()
os.dup2(m, n3)
c4.close()
serve(n3, 504)
with open(out, 'w') as f:
    f.write(f'{n} {n2} {n3} {m}\n')
c3.close()
"#;

#[test]
fn a_reused_fd_number_counts_for_its_new_listener() {
    require_root();
    let srv = Netns::new("fdr-s");
    let cli = Netns::new("fdr-c");
    let v = pair(&srv, &cli, 207);
    let dir = TempDir::new("http-fd-reuse");
    let mut d = http_daemon(
        &srv,
        dir.path(),
        "[http_5xx]\nwindow_ms = 60000\nmin_per_s = 0.1\nupdate_every_ms = 200\n",
        &[],
    );
    // The program that keeps services per connection needs bpf_get_current_task_btf (5.11);
    // before, the syscall tracepoints walk to the socket at every response, and the counts
    // below must hold all the same.
    let http = d.wait_attached()["detail"]["http"].clone();
    eprintln!("HTTP hooks: {http}");
    // From 6.3, TLS takes the socket tracepoints instead (tls_sock.rs): no syscall hook at
    // all while the packet programs read plaintext.
    if crate::kernel_features::kernel() >= (6, 3) && http["packets"]["programs"].is_array() {
        assert_eq!(
            http["tracepoints"][0]["tracepoint"], "tp_btf:sock_recv_length",
            "{http}"
        );
    } else if cfg!(target_arch = "x86_64") && crate::kernel_features::kernel() >= (5, 11) {
        assert_eq!(
            http["tracepoints"][0]["tracepoint"], "tp_btf:sys_exit",
            "{http}"
        );
    } else {
        assert!(http["sys_exit_error"].is_string(), "{http}");
    }
    let fds = dir.path().join("fds");
    srv.spawn(&[
        "python3",
        "-c",
        SERVER,
        &v.a_addr.to_string(),
        fds.to_str().unwrap(),
    ]);
    srv.wait_listening(8081, "the python server");
    let a = format!("{}:8080", v.a_addr);
    let b = format!("{}:8081", v.a_addr);
    // One curl is one keep-alive connection for all its URLs.
    let get = |svc: &str, n: usize, code: u16| {
        let urls: Vec<String> = (0..n).map(|i| format!("http://{svc}/?{i}")).collect();
        assert_eq!(curl(&cli, &urls, false, &[]), vec![code; n], "{svc}");
    };
    get(&a, 5, 503);
    get(&b, 7, 502);
    get(&a, 2, 503);
    get(&b, 4, 504);
    let used = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        std::fs::read_to_string(&fds)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .expect("the server never finished");
    let used: Vec<u32> = used
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(
        used[0] == used[1] && used[1] == used[2] && used[3] != used[2],
        "the server did not reuse its fd numbers as planned: {used:?}"
    );

    let netns = srv.inode();
    let n = |e: &serde_json::Value, k: &str| e["evidence"][k].as_u64().unwrap_or(0);
    let on = |e: &serde_json::Value, svc: &str| {
        (is_fault(e, "http_5xx", "opened") || is_fault(e, "http_5xx", "updated"))
            && e["netns"].as_u64() == Some(netns)
            && e["evidence"]["service"] == svc
    };
    let (_, e) = d.wait_for_after(
        0,
        |e| on(e, &b) && n(e, "s502") == 7 && n(e, "s504") == 4,
        Duration::from_secs(10),
    );
    assert_eq!(n(&e, "responses"), 11, "{e}");
    let (_, e) = d.wait_for_after(
        0,
        |e| on(e, &a) && n(e, "s503") == 7,
        Duration::from_secs(10),
    );
    assert_eq!(n(&e, "responses"), 7, "{e}");
    // Never one response of B's counted for A, at any time.
    for e in d.finish().iter().filter(|e| on(e, &a)) {
        assert_eq!(n(e, "s502") + n(e, "s504"), 0, "{e}");
    }
}
