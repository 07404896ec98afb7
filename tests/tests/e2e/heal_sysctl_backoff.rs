//! Backing off from a sysctl someone else changed (as Oracle's bpftune does): guardian widens
//! the port range of A to heal an exhaustion; an operator then narrows it again by hand; the
//! same exhaustion comes back. guardian does not set the range again (`skipped`, "backed
//! off"), and neither later nor at stop does it write over the operator's value.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use guardian_tests::sockets::is_fault_in;
use guardian_tests::*;

use super::sysctl_common::*;

const RANGE: &str = "net.ipv4.ip_local_port_range";
const NARROW: &str = "40000 40009";

fn range(ns: &Netns) -> String {
    dump(Some(ns))
        .into_iter()
        .find(|(k, _)| k == RANGE)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Connects to `dst` every 50 ms until `stop` or 10 s, holding every connection it gets;
/// returns (EADDRNOTAVAIL failures, connections).
fn hold_all(
    ns: &Netns,
    dst: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u32, u32)> {
    in_netns(ns, move || {
        let mut held = Vec::new();
        let mut failed = 0;
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < end {
            match std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(1)) {
                Ok(c) => held.push(c),
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => failed += 1,
                Err(e) => panic!("unexpected connect error: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (failed, held.len() as u32)
    })
}

#[test]
fn a_range_the_operator_changed_back_is_left_to_the_operator() {
    require_root();
    let a = Netns::new("hs-bo-a");
    let b = Netns::new("hs-bo-b");
    let v = pair(&a, &b, 123);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, 5123)));
    a.sysctl(RANGE, NARROW);
    // No cooldown: the second plan must meet the back-off, not the per-subject cooldown.
    let (_state, mut d) = start(&a, &config("[safety]\nper_subject_cooldown_s = 0\n"), false);
    let ns = a.inode();

    // 1. guardian heals the exhaustion: the range is widened and verified.
    let stop = Arc::new(AtomicBool::new(false));
    let client = exhaust(&a, server.addr(), 10, stop.clone());
    let (i, open) = d.wait_for_after(
        0,
        |e| is_fault_in(e, "ephemeral_port_exhaustion", "opened", ns),
        Duration::from_secs(10),
    );
    remedy_of(&mut d, i, &open, "verified", 15);
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert_eq!(range(&a), "10000 64999", "widened by guardian");
    let (j, _) = d.wait_for_after(
        i,
        |e| is_fault_in(e, "ephemeral_port_exhaustion", "cleared", ns),
        Duration::from_secs(10),
    );

    // 2. The operator narrows it again, and the exhaustion comes back: the first phase's
    // connections left the narrow range's ports in TIME_WAIT, and every connect that still
    // gets a port is held. Whichever of the two faults opens, its plan is the port range.
    a.sysctl(RANGE, NARROW);
    let stop = Arc::new(AtomicBool::new(false));
    let client = hold_all(&a, server.addr(), stop.clone());
    let (_, skipped) = d.wait_for_after(
        j,
        |e| is_remedy(e, "sysctl", "skipped") && e["netns"].as_u64() == Some(ns),
        Duration::from_secs(10),
    );
    eprintln!("{skipped}");
    assert!(
        matches!(
            str_field(&skipped, "fault"),
            Some("ephemeral_port_exhaustion" | "time_wait_exhaustion")
        ),
        "{skipped}"
    );
    let reason = str_field(&skipped, "reason")
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("backed off") && reason.contains("someone else changed it"),
        "{reason}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let (failed, ok) = client.join().unwrap();
    eprintln!("after the back-off: {failed} connects failed, {ok} succeeded");
    assert!(failed > 0, "still exhausted: the operator's range holds");
    assert_eq!(range(&a), "40000 40009", "the operator's value, untouched");

    // 3. At stop nothing is written over it either.
    let events = d.finish();
    assert_eq!(range(&a), "40000 40009", "the operator's value after stop");
    let applied = events
        .iter()
        .filter(|e| is_remedy(e, "sysctl", "applied"))
        .count();
    assert_eq!(applied, 1, "set once, never again");
    assert!(!events.iter().any(|e| is_remedy(e, "sysctl", "rolled_back")));
    server.stop();
}
