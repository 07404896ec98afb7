//! A failed bind (EADDRINUSE) is reported as an observation naming the process, thread and port.
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use guardian_tests::*;

const SUBNET: u8 = 4;
const PORT: u16 = 47004;

#[test]
fn bind_eaddrinuse_is_observed_with_pid_comm_and_port() {
    require_root();
    let a = Netns::new("bind-a");
    let b = Netns::new("bind-b");
    let v = pair(&a, &b, SUBNET);

    let mut d = Daemon::start(&a, &["--interval-ms", "500"]);
    d.wait_attached();

    let addr = SocketAddr::from((v.a_addr, PORT));
    let holder = run_in_netns(&a, move || TcpListener::bind(addr).expect("first bind"));
    let (errno, tid) = in_netns_named(&a, "gt-binder", move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let err = TcpListener::bind(addr).expect_err("second bind must fail");
        (err.raw_os_error(), tid)
    })
    .join()
    .expect("binder thread");
    assert_eq!(errno, Some(libc::EADDRINUSE));

    let obs = d.wait_for(
        |e| {
            is_type(e, "observation")
                && str_field(e, "kind") == Some("bind_conflict")
                && e["port"] == PORT
        },
        Duration::from_secs(10),
    );
    eprintln!("observed: {obs}");
    assert_eq!(str_field(&obs, "error"), Some("EADDRINUSE"));
    assert_eq!(u64_field(&obs, "pid"), std::process::id() as u64);
    assert_eq!(u64_field(&obs, "tid"), tid as u64);
    assert_eq!(str_field(&obs, "comm"), Some("gt-binder"));
    assert_eq!(u64_field(&obs, "netns"), a.inode());
    assert_eq!(str_field(&obs, "family"), Some("ipv4"));
    assert_eq!(str_field(&obs, "addr"), Some(v.a_addr.to_string().as_str()));

    drop(holder);
    let events = d.finish();
    let fin = final_counters(&events, a.inode()).expect("final counters for A");
    assert!(u64_field(fin, "bind_eaddrinuse") >= 1, "{fin}");
}
