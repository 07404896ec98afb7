//! Unit tests of the certificate probe's cadence and parsing.
use super::*;

#[test]
fn cadence() {
    let t0 = Instant::now();
    assert!(due(None, t0), "at discovery");
    let later = |d: Duration| t0 + d;
    assert!(!due(
        Some((t0, true)),
        later(PROBE_EVERY - Duration::from_secs(1))
    ));
    assert!(due(Some((t0, true)), later(PROBE_EVERY)));
    // A failed probe is retried sooner, not on every tick.
    assert!(!due(Some((t0, false)), later(Duration::from_secs(1))));
    assert!(due(Some((t0, false)), later(RETRY_EVERY)));
}

#[test]
fn garbage_is_a_parse_error() {
    let addr: SocketAddr = "10.0.0.1:443".parse().unwrap();
    assert!(matches!(
        parse(b"not a certificate", addr, 0),
        Err(ProbeError::Parse(_))
    ));
}

#[test]
fn a_closed_port_is_an_io_error() {
    // A port on loopback nobody listens on (bound then dropped): refused at once.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    assert!(matches!(fetch_leaf(addr), Err(ProbeError::Io(_))));
}

#[test]
fn a_new_process_on_a_known_listener_is_a_restart() {
    let l: Listener = (7, "10.0.0.1".parse().unwrap(), 443);
    let other: Listener = (7, "10.0.0.1".parse().unwrap(), 8443);
    let mut p = Processes::default();
    // Discovery is not a restart (the listener is due anyway), nor the same process again.
    assert!(!p.joined(l, 100));
    assert!(!p.joined(l, 100));
    // Another listener's processes are its own.
    assert!(!p.joined(other, 200));
    // A new process serving the listener: a restart or a reload, once.
    assert!(p.joined(l, 101));
    assert!(!p.joined(l, 101));
    // The old process's counts stay in the map: seeing it again changes nothing.
    assert!(!p.joined(l, 100));
}
