//! A thread that dies inside a TLS handshake, with the real daemon (`--http`) and Python's
//! `ssl` as the client, killed (SIGKILL) while its handshake waits on a listener that never
//! answers. No return probe fires for such a thread: the daemon's thread-exit program
//! (guardian-ebpf/src/tls_exit.rs) must remove its entry from `HS_CALLS` and count the gate
//! (`TLS_LIVE`, slot 0) down, or every socket send of the host keeps the slow path for the
//! daemon's life, and 16 384 such threads fill the map. Read with bpftool from the maps the
//! daemon's own descriptors hold.
use std::net::TcpListener;
use std::time::Duration;

use guardian_tests::bpf_maps::{daemon_map, entries, keys};
use guardian_tests::*;

const SUBNET: u8 = 187;
const PORT: u16 = 8460;
const CLIENTS: usize = 3;

/// One TLS client whose handshake blocks inside `SSL_do_handshake`: a blocking socket (with
/// a timeout Python polls between calls, each of which returns), bounded by an alarm, whose
/// default action ends the process.
const PY_CLIENT: &str = "import signal, socket, ssl, sys\n\
signal.alarm(60)\n\
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n\
ssl.create_default_context().wrap_socket(s, server_hostname=sys.argv[1])\n";

/// `HS_CALLS`'s key for a single-threaded process: its pid_tgid.
fn thread_key(pid: u32) -> Vec<u8> {
    ((u64::from(pid) << 32) | u64::from(pid))
        .to_ne_bytes()
        .to_vec()
}

/// The handshake gate: `TLS_LIVE`'s slot 0, the number of `HS_CALLS` entries.
fn handshake_gate(live: u32) -> u64 {
    let slot0 = entries(live)
        .into_iter()
        .find(|(k, _)| k == &[0, 0, 0, 0])
        .expect("TLS_LIVE slot 0");
    u64::from_ne_bytes(slot0.1[..8].try_into().unwrap())
}

#[test]
fn a_thread_killed_inside_a_handshake_leaves_no_entry_behind() {
    require_root();
    let srv = Netns::new("tlx-s");
    let cl = Netns::new("tlx-c");
    let v = pair(&srv, &cl, SUBNET);
    let mut g = Daemon::start(&srv, &["--http"]);
    let att = g.wait_attached();
    assert_eq!(
        att["detail"]["tls"]["thread_exit"], "sched:sched_process_exit",
        "{}",
        att["detail"]["tls"]
    );
    let pid = g.pid().expect("pid");
    let (hs, live) = (daemon_map(pid, "HS_CALLS"), daemon_map(pid, "TLS_LIVE"));

    // Accepts nothing, answers nothing: the kernel completes the TCP handshake and the
    // ClientHello waits in the queue.
    let addr = v.a_addr;
    let listener = srv
        .testbed()
        .within("tlx-listen", move || TcpListener::bind((addr, PORT)))
        .unwrap()
        .expect("bind the silent listener");
    let host = addr.to_string();
    let clients: Vec<u32> = (0..CLIENTS)
        .map(|_| cl.spawn(&["python3", "-c", PY_CLIENT, &host, &PORT.to_string()]))
        .collect();

    // Each client's thread is inside SSL_do_handshake: its entry is in the daemon's map.
    let inside = poll(Duration::from_secs(20), Duration::from_millis(100), || {
        let k = keys(hs);
        clients
            .iter()
            .all(|p| k.contains(&thread_key(*p)))
            .then_some(())
    });
    assert!(
        inside.is_some(),
        "the clients {clients:?} never showed in HS_CALLS: {:?}",
        keys(hs)
    );
    let before = handshake_gate(live);
    assert!(
        before >= CLIENTS as u64,
        "gate {before} with {CLIENTS} clients inside"
    );

    for p in &clients {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill a client");
    }
    // Their entries go, and the gate counts what is left (other processes' handshakes, if any
    // are under way on this host at that moment).
    let after = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let k = keys(hs);
        let gate = handshake_gate(live);
        (!clients.iter().any(|p| k.contains(&thread_key(*p))) && gate == k.len() as u64)
            .then_some(gate)
    });
    let left = keys(hs);
    assert!(
        after.is_some(),
        "killed clients {clients:?} left HS_CALLS {left:?} with the gate at {} (was {before})",
        handshake_gate(live)
    );
    eprintln!(
        "gate: {before} with the clients inside, {} after SIGKILL",
        after.unwrap()
    );
    drop(listener);
    let events = g.finish();
    let detached = events
        .iter()
        .find(|e| is_lifecycle(e, "detached"))
        .expect("detached");
    assert!(
        detached.to_string().contains("tracepoint:tls_thread_exit"),
        "{detached}"
    );
}
