//! The harness's own pieces, checked without the daemon: namespaces, veth pairs, sockets inside
//! namespaces, ground-truth readers, nftables loss, and the Daemon guard driven by a stand-in
//! script. Needs root (fails, does not skip, without it).
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use guardian_tests::truth::{admin_up, oper_up, route_show, ss_busy};
use guardian_tests::*;

const MB: u64 = 1 << 20;

fn sock(ip: std::net::Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn runs_as_root() {
    require_root();
}

#[test]
fn netns_guard_creates_and_deletes_namespace_and_its_processes() {
    let (path, pid);
    {
        let ns = Netns::new("h-guard");
        path = ns.path();
        assert!(path.exists());
        assert!(ns.name().starts_with("gt-h-guard-"));
        let listed = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&listed.stdout).contains(ns.name()));
        let host = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_ne!(ns.inode(), host, "a new namespace has its own inode");
        let inside = ns.run(&["stat", "-L", "-c", "%i", "/proc/self/ns/net"]);
        assert_eq!(inside.trim().parse::<u64>().unwrap(), ns.inode());
        assert!(ns.run(&["ip", "-o", "link", "show", "lo"]).contains("UP"));
        pid = ns.spawn(&["sleep", "300"]);
        assert!(Path::new(&format!("/proc/{pid}")).exists());
    }
    assert!(!path.exists(), "{} still exists after drop", path.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} spawned in the namespace survived the guard"
    );
}

#[test]
fn veth_pair_and_sockets_inside_namespaces() {
    let a = Netns::new("h-veth-a");
    let b = Netns::new("h-veth-b");
    let v = pair(&a, &b, 91);
    assert_eq!(v.a_addr.to_string(), "10.77.91.1");
    assert!(oper_up(&a, &v.a_if) && oper_up(&b, &v.b_if));
    // Nothing leaks into the host's namespace.
    let host = std::process::Command::new("ip")
        .args(["link", "show", &v.a_if])
        .output()
        .unwrap();
    assert!(
        !host.status.success(),
        "{} visible in the host namespace",
        v.a_if
    );
    assert!(a
        .run(&["ip", "-4", "-o", "addr", "show", &v.a_if])
        .contains("10.77.91.1/24"));

    // A thread in the namespace sees the namespace's inode.
    let ino_b = b.inode();
    let seen = run_in_netns(&b, || {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    });
    assert_eq!(seen, ino_b);

    let server = DiscardServer::start(&b, sock(v.b_addr, 5091));
    let dst = server.addr();
    let bulk = run_in_netns(&a, move || {
        bulk_send(dst, 8 * MB, Duration::from_secs(30)).unwrap()
    });
    assert!(bulk.complete, "{bulk:?}");
    assert_eq!(bulk.sent, 8 * MB);
    assert!(server.wait_finished(1, Duration::from_secs(5)));
    assert_eq!(server.bytes(), 8 * MB);
    server.stop();
}

#[test]
fn short_connections_leave_time_wait_on_the_client_and_nstat_counts_them() {
    let a = Netns::new("h-tw-a");
    let b = Netns::new("h-tw-b");
    let v = pair(&a, &b, 92);
    let before = nstat(&a);
    assert_eq!(before["TcpActiveOpens"], 0, "a new namespace starts at 0");
    let server = DiscardServer::start(&b, sock(v.b_addr, 5092));
    let dst = server.addr();
    let n = run_in_netns(&a, move || connect_n(dst, 60, Duration::from_secs(5)));
    assert_eq!(n, 60);
    assert!(server.wait_finished(60, Duration::from_secs(10)));
    // Most end in TIME_WAIT on the client. In some runs a few of 60 leave no socket at all
    // (ss shows only TIME-WAIT sockets: 58 or 59 in earlier runs, 54 in one CI run on a slow
    // day, with tcp_tw_reuse 0 too): not explained yet. What this harness check needs is that
    // ss sees the client's TIME_WAIT sockets and the count settles, so it asserts "most";
    // guardian's own claim (its gauge equals ss) is tested in time_wait.rs whatever the count.
    let mut last = usize::MAX;
    let tw = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        let now = ss_time_wait(&a);
        let stable = now == last && now > n / 2;
        last = now;
        stable.then_some(now)
    });
    assert!(
        tw.is_some(),
        "TIME_WAIT in A: {}; all TCP sockets in A:\n{}",
        ss_time_wait(&a),
        a.run(&["ss", "-tanoi"])
    );
    assert_eq!(
        ss_time_wait(&b),
        0,
        "the server closes second: no TIME_WAIT there"
    );
    assert!(
        wait_tcp_quiet(&a, Duration::from_secs(5)),
        "{:?}",
        ss_busy(&a)
    );
    let after = nstat(&a);
    assert_eq!(after["TcpActiveOpens"], 60);
    assert_eq!(nstat_get(&b, "TcpPassiveOpens"), 60);

    // Refused connects: RST from B, no SYN retransmission.
    let closed = sock(v.b_addr, 5993);
    let refused = run_in_netns(&a, move || {
        connect_refused_n(closed, 10, Duration::from_secs(5))
    });
    assert_eq!(refused, 10);
    let m = nstat(&a);
    assert_eq!(m["TcpActiveOpens"], 70);
    assert_eq!(m["TcpAttemptFails"], 10);
    assert_eq!(m["TcpExtTCPSynRetrans"], 0);
    server.stop();
}

#[test]
fn nft_random_loss_at_ingress_causes_retransmits() {
    let a = Netns::new("h-nft-a");
    let b = Netns::new("h-nft-b");
    let v = pair(&a, &b, 93);
    nft::drop_random_tcp(&b, 5093, 3);
    nft::drop_random_tcp(&b, 5093, 3); // idempotent: replaces, does not stack
    let rules = b.run(&["nft", "list", "ruleset"]);
    assert_eq!(rules.matches("numgen random").count(), 1, "{rules}");
    let server = DiscardServer::start(&b, sock(v.b_addr, 5093));
    let dst = server.addr();
    let t = run_in_netns(&a, move || {
        bulk_send(dst, 8 * MB, Duration::from_secs(60)).unwrap()
    });
    assert!(t.complete, "{t:?}");
    assert!(nft::dropped(&b) > 0);
    assert!(wait_tcp_quiet(&a, Duration::from_secs(10)));
    let r = nstat_get(&a, "TcpRetransSegs");
    eprintln!(
        "dropped {} packets, A retransmitted {r} segments in {:?}",
        nft::dropped(&b),
        t.elapsed
    );
    assert!(r > 0);
    nft::clear(&b);
    assert!(!b.run(&["nft", "list", "ruleset"]).contains("numgen"));
    server.stop();
}

#[test]
fn link_and_route_helpers() {
    let a = Netns::new("h-link-a");
    let b = Netns::new("h-link-b");
    let v = pair(&a, &b, 94);
    a.link_set(&v.a_if, false);
    assert!(!admin_up(&a, &v.a_if));
    // B's end loses carrier when A's goes down.
    let down = poll(Duration::from_secs(2), Duration::from_millis(10), || {
        (!oper_up(&b, &v.b_if)).then_some(())
    });
    assert!(down.is_some());
    a.link_set(&v.a_if, true);
    assert!(poll(Duration::from_secs(5), Duration::from_millis(10), || {
        oper_up(&a, &v.a_if).then_some(())
    })
    .is_some());
    a.run(&[
        "ip",
        "route",
        "add",
        "10.250.94.0/24",
        "via",
        &v.b_addr.to_string(),
    ]);
    assert!(route_show(&a, "10.250.94.0/24").contains("via 10.77.94.2"));
    a.run(&["ip", "route", "del", "10.250.94.0/24"]);
    assert_eq!(route_show(&a, "10.250.94.0/24"), "");
    a.sysctl("net.ipv4.tcp_syn_retries", "2");
    assert_eq!(
        a.run(&["sysctl", "-n", "net.ipv4.tcp_syn_retries"]).trim(),
        "2"
    );
}

/// A stand-in for guardian: writes schema-valid lifecycle and counters events for its own
/// namespace, and on SIGTERM stopping, final counters, detached, then exits with `$EXIT`.
fn stand_in(dir: &Path, exit_code: u8) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
# usage: stand-in run --events PATH [args...]
ev="$3"
ns=$(stat -L -c %i /proc/self/ns/net)
emit() {{ printf '{{"schema":1,"ts":"%s","host":"stand-in","type":%s}}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$1" >> "$ev"; }}
life() {{ emit "\"lifecycle\",\"phase\":\"$1\",\"netns\":$ns,\"version\":\"0.0.0\",\"mode\":\"observe\"$2"; }}
counters() {{ emit "\"counters\",\"netns\":$ns,\"interval_ms\":100,\"final\":$1,\"retrans_segs\":0,\"syn_retrans\":0,\"synack_retrans\":0,\"time_wait\":0,\"tw_entries\":0,\"connect_failures\":0,\"connect_eaddrnotavail\":0,\"bind_eaddrinuse\":0,\"retrans_failed\":0"; }}
echo "stand-in started with: $*" >&2
term=
trap 'term=1' TERM
life started
life attached ',"detail":{{"coverage":{{"features":[],"covered":[],"uncovered":[]}}}}'
while [ -z "$term" ]; do counters false; sleep 0.1; done
life stopping
counters true
life detached
exit {exit_code}
"#
    );
    let path = dir.join(format!("stand-in-{exit_code}.sh"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn daemon_guard_tails_events_stops_and_validates() {
    let tmp = TempDir::new("h-daemon");
    let ns = Netns::new("h-daemon");
    let mut d = Daemon::start_with(&stand_in(tmp.path(), 0), &ns, &["--mode", "observe"]);
    let attached = d.wait_attached();
    assert_eq!(
        attached["netns"].as_u64(),
        Some(ns.inode()),
        "runs inside the namespace"
    );
    let n = d.count();
    let (i, c) = d.wait_for_after(n, |e| is_counters(e, ns.inode()), Duration::from_secs(5));
    assert!(i >= n);
    assert!(event_time(&c) >= event_time(&attached));
    let events = d.finish();
    let fin = final_counters(&events, ns.inode()).expect("final counters");
    assert_eq!(u64_field(fin, "retrans_segs"), 0);
    assert!(is_lifecycle(events.last().unwrap(), "detached"));
    assert!(std::fs::read_to_string(d.dir().join("stderr.log"))
        .unwrap()
        .contains("--mode observe"));
}

#[test]
fn daemon_guard_fails_loudly() {
    let tmp = TempDir::new("h-daemon-fail");
    let ns = Netns::new("h-dfail");
    // A non-zero exit after SIGTERM fails stop(), with the stderr in the message.
    let bin = stand_in(tmp.path(), 3);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut d = Daemon::start_with(&bin, &ns, &[]);
        d.wait_attached();
        d.stop();
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("not 0") && msg.contains("stand-in started with"),
        "{msg}"
    );

    // A timeout names the wait and shows the last events.
    let bin = stand_in(tmp.path(), 0);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut d = Daemon::start_with(&bin, &ns, &[]);
        d.wait_for(|e| is_type(e, "fault"), Duration::from_millis(300));
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("no matching event") && msg.contains("\"phase\":\"attached\""),
        "{msg}"
    );

    // A daemon that exits early fails the wait at once.
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut d = Daemon::start_with(Path::new("/bin/false"), &ns, &[]);
        d.wait_attached();
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("exited"), "{msg}");

    // The guards kept their directories for debugging (they dropped while panicking).
    let prefix = format!("gt-daemon-{}-", ns.name().trim_start_matches("gt-"));
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
