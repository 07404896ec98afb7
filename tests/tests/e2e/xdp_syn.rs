//! XDP SYN accounting on the receiver: per-source SYN counts must match what the sender sent.
//!
//! The daemon runs in B with `--xdp <B's veth>`; A makes N connections to a listener in B and
//! 10 to a closed port in B (answered with RST). Every SYN that reached B's veth is A's
//! connects plus its SYN retransmissions.
use std::net::SocketAddr;
use std::time::Duration;

use guardian_tests::*;

const SUBNET: u8 = 2;
const PORT: u16 = 5002;
const CLOSED_PORT: u16 = 5999;
const N: usize = 50;
const REFUSED: usize = 10;

#[test]
fn xdp_counts_syns_by_source() {
    require_root();
    let a = Netns::new("xdp-a");
    let b = Netns::new("xdp-b");
    let v = pair(&a, &b, SUBNET);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, PORT)));

    let mut d = Daemon::start(&b, &["--xdp", &v.b_if, "--interval-ms", "500"]);
    d.wait_attached();

    let (dst, closed) = (server.addr(), SocketAddr::from((v.b_addr, CLOSED_PORT)));
    let (ok, refused) = run_in_netns(&a, move || {
        (
            connect_n(dst, N, Duration::from_secs(10)),
            connect_refused_n(closed, REFUSED, Duration::from_secs(10)),
        )
    });
    assert_eq!((ok, refused), (N, REFUSED));
    assert!(server.wait_finished(N as u64, Duration::from_secs(10)));
    assert!(wait_tcp_quiet(&a, Duration::from_secs(10)));
    let syn_retrans = nstat_get(&a, "TcpExtTCPSynRetrans");
    let events = d.finish();

    let fin = final_counters(&events, b.inode())
        .unwrap_or_else(|| panic!("no final counters event for B's netns {}", b.inode()));
    let xdp = fin["xdp"]
        .as_array()
        .unwrap_or_else(|| panic!("final counters without `xdp`: {fin}"));
    let entry = xdp
        .iter()
        .find(|x| x["iface"] == v.b_if.as_str())
        .unwrap_or_else(|| panic!("no xdp entry for {}: {fin}", v.b_if));
    let ifindex = truth::link(&b, &v.b_if)["ifindex"].as_u64();
    assert_eq!(entry["ifindex"].as_u64(), ifindex, "ifindex of {}", v.b_if);
    let from_a = entry["syn_by_source"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["addr"] == v.a_addr.to_string().as_str())
        })
        .unwrap_or_else(|| panic!("{} not in syn_by_source: {entry}", v.a_addr));
    let expected = (N + REFUSED) as u64 + syn_retrans;
    let counted = u64_field(from_a, "count");
    let syn_rx = u64_field(entry, "syn_rx");
    eprintln!(
        "SYNs from {}: guardian {counted}, expected {expected} ({N} + {REFUSED} + {syn_retrans} \
         SYN retransmits); syn_rx {syn_rx}",
        v.a_addr
    );
    assert_eq!(counted, expected);
    assert!(syn_rx >= expected, "syn_rx {syn_rx} < {expected}");
    let by_port = |p: u16| {
        entry["syn_by_port"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["port"] == p))
            .map(|x| u64_field(x, "count"))
    };
    eprintln!(
        "syn_by_port: {PORT} -> {:?}, {CLOSED_PORT} -> {:?}",
        by_port(PORT),
        by_port(CLOSED_PORT)
    );
    assert!(by_port(PORT).is_some_and(|c| c >= N as u64));
    assert!(by_port(CLOSED_PORT).is_some_and(|c| c >= REFUSED as u64));
    server.stop();
}
