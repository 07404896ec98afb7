//! No misfires: thirty connects refused by a real peer (nothing listens: the kernel answers the
//! SYN with a RST, no SYN is retransmitted) open `connection_refused` for that destination and
//! never `connect_timeout_cascade`, and the fail-fast remedy is neither planned nor applied,
//! in enforce mode. The kernel's own counts agree: `TcpAttemptFails` grows by 30, as
//! `connect_failures` and `connect_refused` do, with no SYN retransmit. (Dropped SYNs still
//! open the cascade: faults_flows::connect_timeout_cascade_opens_and_clears, heal_failfast.)
use std::net::SocketAddr;
use std::time::Duration;

use guardian_tests::flows::{detect_config, is_fault_on, refuse_once_known};
use guardian_tests::*;

const SUBNET: u8 = 232;
const PORT: u16 = 5999;
const N: usize = 30;

#[test]
fn refused_connects_open_connection_refused_not_a_timeout_cascade() {
    require_root();
    let c = Netns::new("refused-c");
    let s = Netns::new("refused-s");
    let v = pair(&c, &s, SUBNET);
    let dir = TempDir::new("refused");
    // A short window so that the fault clears within the test.
    let cfg = detect_config(
        &dir,
        "[connection_refused]\nwindow_ms = 2000\nclear_after_ms = 300\n",
    );
    let state = dir.path().join("state");
    let mut d = Daemon::start(
        &c,
        &[
            "--mode",
            "enforce",
            "--interval-ms",
            "100",
            "--state-dir",
            state.to_str().unwrap(),
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    let netns = c.inode();
    // The client's namespace known first, with one refusal to another port.
    refuse_once_known(&mut d, &c, SocketAddr::from((v.b_addr, PORT + 1)));
    let before = nstat(&c);
    let dst = SocketAddr::from((v.b_addr, PORT));
    let refused = run_in_netns(&c, move || {
        connect_refused_n(dst, N, Duration::from_secs(2))
    });
    assert_eq!(refused, N, "every connect refused by the peer's kernel");
    let after = nstat(&c);
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(
        delta("TcpAttemptFails"),
        N as u64,
        "the kernel's failed connects"
    );
    assert_eq!(delta("TcpExtTCPSynRetrans"), 0, "no SYN retransmitted");
    let addr = v.b_addr.to_string();
    let (i, opened) = d.wait_for_after(
        0,
        |e| {
            is_fault_on(
                e,
                "connection_refused",
                "opened",
                netns,
                Some(&addr),
                Some(PORT),
            )
        },
        Duration::from_secs(5),
    );
    eprintln!("opened: {opened}");
    assert_eq!(opened["severity"], "warning");
    assert!(opened["evidence"]["refused_connects"].as_u64().unwrap() >= 20);
    assert_eq!(opened["evidence"]["threshold"], 20);
    // Every refusal counted, by destination; then the window passes and the fault clears.
    d.wait_for_after(
        0,
        |e| {
            is_counters(e, netns)
                && u64_field(e, "connect_refused") == N as u64 + 1
                && e["connect_refused_by_dst"][0]["count"] == N as u64
        },
        Duration::from_secs(5),
    );
    d.wait_for_after(
        i,
        |e| {
            is_fault_on(
                e,
                "connection_refused",
                "cleared",
                netns,
                Some(&addr),
                Some(PORT),
            )
        },
        Duration::from_secs(8),
    );
    let events = d.finish();
    let misfires: Vec<_> = events
        .iter()
        .filter(|e| {
            e["fault"] == "connect_timeout_cascade"
                || (is_type(e, "remedy") && e["remedy"] == "sockopt_failfast")
        })
        .collect();
    assert!(misfires.is_empty(), "{misfires:?}");
    let last = final_counters(&events, netns).expect("final counters");
    assert_eq!(u64_field(last, "connect_failures"), N as u64 + 1, "{last}");
    assert_eq!(u64_field(last, "connect_refused"), N as u64 + 1, "{last}");
    assert!(
        last.get("connect_failures_by_dst").is_none(),
        "no failure that was not a refusal: {last}"
    );
    assert_eq!(u64_field(last, "syn_retrans"), 0, "{last}");
}
