//! Connection-level shadows (issue #18 item 3): `reset_storm` from real resets. A port nothing
//! listens on (the kernel refuses every SYN with a RST) and a real python3 server that closes
//! each accepted connection with `SO_LINGER` 0 (a RST in place of a FIN) open `reset_storm`
//! for the port and direction, on both sides, with totals equal to the kernel's own
//! `TcpOutRsts` and to the client's count of refused or reset connections; then it clears.
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use guardian_tests::flows::{detect_config, is_fault_on};
use guardian_tests::*;
use serde_json::Value;

const SUBNET: u8 = 247;
const REFUSED: u16 = 5998;
const LINGER: u16 = 5997;
const N: usize = 30;

/// Closes every accepted connection with a RST (`SO_LINGER` on, 0 s), `n` times, then exits.
const LINGER_SERVER: &str = r#"
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
s.settimeout(20)
for _ in range(int(sys.argv[3])):
    c, _ = s.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
"#;

/// Connects `n` times and reads until the server's RST: the connections that were reset.
/// Under load the RST can arrive before the non-blocking connect is checked: then the connect
/// itself reports the reset.
fn reset_n(addr: SocketAddr, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => s,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 16];
            matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
        })
        .count()
}

fn storm(e: &Value, netns: u64, port: u16, direction: &str, side: &str, state: &str) -> bool {
    is_fault_on(e, "reset_storm", state, netns, None, Some(port))
        && e["evidence"]["direction"] == direction
        && e["evidence"]["side"] == side
}

/// Waits for a `reset_storm` event of that subject whose total is `total` (the fault opens
/// once 20 are in the window; the updates carry the rest).
fn wait_total(d: &mut Daemon, netns: u64, port: u16, dir: &str, side: &str, total: u64) {
    let (_, ev) = d.wait_for_after(
        0,
        |e| {
            ["opened", "updated"]
                .iter()
                .any(|s| storm(e, netns, port, dir, side, s))
                && e["evidence"]["total"] == total
        },
        Duration::from_secs(8),
    );
    eprintln!("{ev}");
    assert_eq!(ev["severity"], "warning");
    assert!(ev["evidence"]["resets"].as_u64().unwrap() >= 20, "{ev}");
}

#[test]
fn resets_sent_and_received_open_reset_storm_with_the_kernels_counts() {
    require_root();
    let c = Netns::new("rst-c");
    let s = Netns::new("rst-s");
    let v = pair(&c, &s, SUBNET);
    let dir = TempDir::new("rst");
    let cfg = detect_config(
        &dir,
        "[reset_storm]\nwindow_ms = 2000\nclear_after_ms = 300\nupdate_every_ms = 200\n",
    );
    let mut d = Daemon::start(
        &c,
        &[
            "--interval-ms",
            "100",
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    let (cn, sn) = (c.inode(), s.inode());
    // The detectors take a namespace's first sample as its baseline: one refusal on another
    // port makes both namespaces known first.
    let warm = SocketAddr::from((v.b_addr, REFUSED + 2));
    assert_eq!(
        run_in_netns(&c, move || connect_refused_n(
            warm,
            1,
            Duration::from_secs(2)
        )),
        1
    );
    d.wait_for(
        |e| is_counters(e, cn) && u64_field(e, "connect_refused") == 1,
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(500));

    // 1. Refused connects: the server's kernel resets SYNs no socket owns.
    let before = nstat_get(&s, "TcpOutRsts");
    let dst = SocketAddr::from((v.b_addr, REFUSED));
    let refused = run_in_netns(&c, move || {
        connect_refused_n(dst, N, Duration::from_secs(2))
    });
    assert_eq!(refused, N, "every connect refused by the peer's kernel");
    let sent = nstat_get(&s, "TcpOutRsts") - before;
    assert_eq!(sent, N as u64, "the server's kernel sent one RST per SYN");
    wait_total(&mut d, sn, REFUSED, "sent", "local", sent);
    wait_total(&mut d, cn, REFUSED, "received", "remote", refused as u64);

    // 2. A real server that aborts every connection it accepts.
    let addr = v.b_addr.to_string();
    let (port, n) = (LINGER.to_string(), N.to_string());
    s.spawn(&["python3", "-c", LINGER_SERVER, &addr, &port, &n]);
    let dst = SocketAddr::from((v.b_addr, LINGER));
    assert!(
        poll(Duration::from_secs(5), Duration::from_millis(50), || {
            s.run(&["ss", "-Htln", &format!("sport = :{LINGER}")])
                .contains("LISTEN")
                .then_some(())
        })
        .is_some(),
        "the python3 server listens"
    );
    let before = nstat_get(&s, "TcpOutRsts");
    let reset = run_in_netns(&c, move || reset_n(dst, N));
    assert_eq!(reset, N, "every connection reset by the server");
    let sent = nstat_get(&s, "TcpOutRsts") - before;
    assert_eq!(sent, N as u64, "the server's kernel sent one RST per close");
    wait_total(&mut d, sn, LINGER, "sent", "local", sent);
    wait_total(&mut d, cn, LINGER, "received", "remote", reset as u64);

    // The resets stop: every subject clears.
    for (ns, port, dir, side) in [
        (sn, REFUSED, "sent", "local"),
        (cn, REFUSED, "received", "remote"),
        (sn, LINGER, "sent", "local"),
        (cn, LINGER, "received", "remote"),
    ] {
        d.wait_for_after(
            0,
            |e| storm(e, ns, port, dir, side, "cleared"),
            Duration::from_secs(8),
        );
    }
    let events = d.finish();
    // The warm-up's single refusal opened nothing.
    let warm: Vec<_> = events
        .iter()
        .filter(|e| e["fault"] == "reset_storm" && e["subject"]["port"] == REFUSED + 2)
        .collect();
    assert!(warm.is_empty(), "{warm:?}");
}

/// Accepts `n` connections and never closes them (nor reads: the peers' FINs leave them in
/// CLOSE_WAIT), then sleeps until killed.
const LEAKY_SERVER: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
s.settimeout(20)
held = [s.accept()[0] for _ in range(int(sys.argv[3]))]
time.sleep(60)
"#;

const LEAK: u16 = 5996;
const LEAKED: usize = 40;

#[test]
fn a_server_that_never_closes_opens_close_wait_leak_naming_it() {
    let c = Netns::new("cw-c");
    let s = Netns::new("cw-s");
    let v = pair(&c, &s, 249);
    close_wait_leak(&s, &c, v.b_addr, false);
}

/// The leak happens before the daemon's first tick, in the only namespace that tick samples
/// (clients and server share it): the count the first tick sees is growth since attach, not
/// a baseline. The daemon is held stopped from `attached` until the sockets are in CLOSE_WAIT
/// (the probes count on in the kernel meanwhile).
#[test]
fn a_leak_before_the_first_tick_opens_close_wait_leak() {
    let s = Netns::new("cw-one");
    close_wait_leak(&s, &s, Ipv4Addr::LOCALHOST, true);
}

/// Stops a process until dropped (SIGSTOP, then SIGCONT even when the test fails).
struct Stopped(libc::pid_t);

impl Stopped {
    fn new(pid: u32) -> Self {
        let pid = pid as libc::pid_t;
        // SAFETY: kill(2) on the test's own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// A python3 server in `s` (where the daemon runs) accepts [`LEAKED`] connections from
/// clients in `c` that close at once, and never closes them: `close_wait_leak` opens for its
/// port naming it, with the count `ss` shows, and clears when it exits. `stop`: the daemon
/// is held stopped from `attached` until the sockets are in CLOSE_WAIT.
fn close_wait_leak(s: &Netns, c: &Netns, server: Ipv4Addr, stop: bool) {
    require_root();
    let dir = TempDir::new("cw");
    let cfg = detect_config(
        &dir,
        "[close_wait_leak]\nmin_sockets = 20\nwindow_ms = 5000\nclear_after_ms = 300\nupdate_every_ms = 200\n",
    );
    // Held stopped, a first tick 1 s after `attached` is surely not taken before the stop.
    let interval = if stop { "1000" } else { "100" };
    let mut d = Daemon::start(
        s,
        &[
            "--interval-ms",
            interval,
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    let stopped = stop.then(|| Stopped::new(d.pid().expect("the daemon runs")));
    let sn = s.inode();
    let addr = server.to_string();
    let (port, n) = (LEAK.to_string(), LEAKED.to_string());
    let pid = s.spawn(&["python3", "-c", LEAKY_SERVER, &addr, &port, &n]);
    assert!(
        poll(Duration::from_secs(5), Duration::from_millis(50), || {
            s.run(&["ss", "-Htln", &format!("sport = :{LEAK}")])
                .contains("LISTEN")
                .then_some(())
        })
        .is_some(),
        "the python3 server listens"
    );
    // The clients connect and close at once: each server-side socket enters CLOSE_WAIT.
    let dst = SocketAddr::from((server, LEAK));
    let closed = run_in_netns(c, move || {
        (0..LEAKED)
            .filter(|_| TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok())
            .count()
    });
    assert_eq!(closed, LEAKED);
    let ss_close_wait = || {
        s.run(&["ss", "-Htan", "state", "close-wait"])
            .lines()
            .filter(|l| l.contains(&format!(":{LEAK} ")))
            .count() as u64
    };
    assert!(
        poll(Duration::from_secs(5), Duration::from_millis(50), || {
            (ss_close_wait() == LEAKED as u64).then_some(())
        })
        .is_some(),
        "the kernel holds {LEAKED} sockets in CLOSE_WAIT ({} seen)",
        ss_close_wait()
    );
    drop(stopped);
    let (_, ev) = d.wait_for_after(
        0,
        |e| {
            ["opened", "updated"]
                .iter()
                .any(|st| is_fault_on(e, "close_wait_leak", st, sn, None, Some(LEAK)))
                && e["evidence"]["close_wait"] == LEAKED as u64
                && e["evidence"]["owners"][0]["sockets"] == LEAKED as u64
        },
        Duration::from_secs(8),
    );
    eprintln!("{ev}");
    assert_eq!(
        ev["evidence"]["close_wait"],
        ss_close_wait(),
        "as ss counts them"
    );
    assert_eq!(ev["evidence"]["owners"][0]["pid"], pid, "{ev}");
    assert_eq!(ev["evidence"]["owners"][0]["comm"], "python3", "{ev}");
    // The application exits: its sockets close (CLOSE_WAIT -> LAST_ACK) and the fault clears.
    s.run(&["kill", &pid.to_string()]);
    d.wait_for_after(
        0,
        |e| is_fault_on(e, "close_wait_leak", "cleared", sn, None, Some(LEAK)),
        Duration::from_secs(8),
    );
    assert_eq!(ss_close_wait(), 0);
    let events = d.finish();
    let remedies: Vec<_> = events.iter().filter(|e| is_type(e, "remedy")).collect();
    assert!(
        remedies.iter().all(|r| r["fault"] != "close_wait_leak"),
        "{remedies:?}"
    );
}
