//! IPv6 SYNs behind an extension header are counted like the others (a flood must not hide
//! from the SYN counts, and so from `syn_flood` and the XDP limits, behind a
//! destination-options header).
//!
//! A sends N connects whose SYNs carry a destination-options header (`IPV6_DSTOPTS` on the
//! socket: the kernel puts the header in every packet of the connection) and N plain ones to
//! a listener in B, where the daemon runs with `--xdp` on B's veth. An nftables rule in B
//! counts the SYNs that arrive with the header, another every SYN: the kernel's own proof of
//! what crossed the veth. guardian's per-source count must equal the second.
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use guardian_tests::*;

const SUBNET: u8 = 9;
const PORT: u16 = 5009;
const N: usize = 20;
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x6a, 9, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x6a, 9, 0, 0, 0, 0, 2);

/// A destination-options header of 8 bytes: next header (the kernel fills it in), length 0
/// (in 8-byte units beyond the first 8), one PadN option of 4 bytes.
const DSTOPTS: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];

/// One blocking connect to `to`, its packets carrying [`DSTOPTS`] when `dstopts`; closed at
/// once. Panics when the socket option is refused (the test would prove nothing).
fn connect_v6(to: SocketAddrV6, dstopts: bool) -> bool {
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        if dstopts {
            let r = libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_DSTOPTS,
                DSTOPTS.as_ptr().cast(),
                DSTOPTS.len() as libc::socklen_t,
            );
            assert_eq!(r, 0, "IPV6_DSTOPTS: {}", std::io::Error::last_os_error());
        }
        let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_port = to.port().to_be();
        sa.sin6_addr.s6_addr = to.ip().octets();
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        ) == 0
    }
}

/// The packet counts of the `counter` rules of `table`, in rule order.
fn counters(ns: &Netns, table: &str) -> Vec<u64> {
    let text = ns.run(&["nft", "list", "table", "ip6", table]);
    text.split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn syns_behind_a_destination_options_header_are_counted_per_source() {
    require_root();
    let a = Netns::new("xdp6-a");
    let b = Netns::new("xdp6-b");
    let v = pair(&a, &b, SUBNET);
    for (ns, dev, addr) in [(&a, &v.a_if, A6), (&b, &v.b_if, B6)] {
        ns.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            dev,
            "nodad",
        ]);
    }
    nft::load(
        &b,
        "table ip6 gt_v6 {\n\
           chain input {\n\
             type filter hook input priority 0; policy accept;\n\
             tcp flags & (syn | ack) == syn exthdr dst exists counter\n\
             tcp flags & (syn | ack) == syn counter\n\
           }\n\
         }\n",
    );
    let server = DiscardServer::start(&b, SocketAddr::from((B6, PORT)));
    let mut d = Daemon::start(&b, &["--xdp", &v.b_if, "--interval-ms", "500"]);
    d.wait_attached();

    let to = SocketAddrV6::new(B6, PORT, 0, 0);
    let (with, plain) = run_in_netns(&a, move || {
        let with = (0..N).filter(|_| connect_v6(to, true)).count();
        let plain = (0..N).filter(|_| connect_v6(to, false)).count();
        (with, plain)
    });
    assert_eq!((with, plain), (N, N), "connects that completed");
    assert!(server.wait_finished(2 * N as u64, Duration::from_secs(10)));
    assert!(wait_tcp_quiet(&a, Duration::from_secs(10)));
    let kernel = counters(&b, "gt_v6");
    let events = d.finish();
    server.stop();

    let [behind_header, all_syns] = kernel[..] else {
        panic!("two nft counters expected: {kernel:?}")
    };
    assert!(
        behind_header >= N as u64,
        "the kernel saw {behind_header} SYNs behind a destination-options header, sent {N}"
    );
    let fin = final_counters(&events, b.inode())
        .unwrap_or_else(|| panic!("no final counters event for B's netns {}", b.inode()));
    let entry = fin["xdp"]
        .as_array()
        .and_then(|x| x.iter().find(|x| x["iface"] == v.b_if.as_str()))
        .unwrap_or_else(|| panic!("no xdp entry for {}: {fin}", v.b_if));
    let counted = entry["syn_by_source"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["addr"] == A6.to_string().as_str()))
        .map_or(0, |s| u64_field(s, "count"));
    eprintln!(
        "SYNs from {A6}: guardian {counted}; nft: {all_syns} in all, {behind_header} behind a \
         destination-options header"
    );
    assert_eq!(
        counted, all_syns,
        "guardian's SYN count from {A6} against the kernel's"
    );
}
