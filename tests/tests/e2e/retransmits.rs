//! Retransmitted segments: guardian's per-netns count must equal the kernel's MIB exactly.
//!
//! A (sender, daemon) → B (receiver) over a veth pair; nftables drops ~3 % of the data at B's
//! ingress, and B's end of the link flaps for 300 ms in the middle of a ~30 MB transfer.
use std::net::SocketAddr;
use std::time::Duration;

use guardian_tests::*;

const SUBNET: u8 = 1;
const PORT: u16 = 5001;
const BYTES: u64 = 30 << 20;

#[test]
fn retrans_segs_equals_tcp_retrans_segs_under_loss_and_link_flap() {
    require_root();
    let a = Netns::new("rtx-a");
    let b = Netns::new("rtx-b");
    let v = pair(&a, &b, SUBNET);
    nft::drop_random_tcp(&b, PORT, 3);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, PORT)));

    let mut d = Daemon::start(&a, &["--interval-ms", "500"]);
    d.wait_attached();
    assert_eq!(
        nstat_get(&a, "TcpRetransSegs"),
        0,
        "a new namespace starts at 0"
    );

    let dst = server.addr();
    let sender = in_netns(&a, move || bulk_send(dst, BYTES, Duration::from_secs(120)));
    // Flap B's end once about half of the data has arrived.
    poll(Duration::from_secs(60), Duration::from_millis(5), || {
        (server.bytes() >= BYTES / 2 || sender.is_finished()).then_some(())
    });
    b.link_set(&v.b_if, false);
    std::thread::sleep(Duration::from_millis(300));
    b.link_set(&v.b_if, true);
    let bulk = sender
        .join()
        .expect("sender thread")
        .expect("connect A -> B");
    eprintln!(
        "sent {} of {BYTES} bytes in {:?} (complete: {}); nft dropped {} packets",
        bulk.sent,
        bulk.elapsed,
        bulk.complete,
        nft::dropped(&b)
    );
    assert!(bulk.sent > 0);
    // No connection left that could still retransmit (TIME_WAIT sockets never do).
    assert!(
        wait_tcp_quiet(&a, Duration::from_secs(60)),
        "connections still open in A: {:?}",
        truth::ss_busy(&a)
    );
    let truth_before = nstat(&a);
    let events = d.finish();
    let truth_after = nstat(&a);
    for k in ["TcpRetransSegs", "TcpExtTCPSynRetrans"] {
        assert_eq!(truth_before[k], truth_after[k], "{k} moved while stopping");
    }

    let fin = final_counters(&events, a.inode())
        .unwrap_or_else(|| panic!("no final counters event for A's netns {}", a.inode()));
    let (ours, kernel) = (
        u64_field(fin, "retrans_segs"),
        truth_after["TcpRetransSegs"],
    );
    // The kernel's TCPSynRetrans counts SYN and SYN-ACK retransmits together.
    let (syn_ours, syn_kernel) = (
        u64_field(fin, "syn_retrans") + u64_field(fin, "synack_retrans"),
        truth_after["TcpExtTCPSynRetrans"],
    );
    eprintln!("retrans_segs: guardian {ours}, nstat TcpRetransSegs {kernel}");
    eprintln!(
        "syn_retrans + synack_retrans: guardian {syn_ours}, nstat TcpExtTCPSynRetrans {syn_kernel}"
    );
    eprintln!(
        "retrans_failed (not retransmissions): {}",
        u64_field(fin, "retrans_failed")
    );
    assert!(ours > 0, "loss and a link flap must cause retransmissions");
    assert_eq!(
        ours, kernel,
        "retrans_segs must equal TcpRetransSegs exactly"
    );
    assert_eq!(
        syn_ours, syn_kernel,
        "syn_retrans + synack_retrans must equal TcpExtTCPSynRetrans"
    );
    server.stop();
}
