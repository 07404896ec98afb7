//! Retransmissions whose transmit fails: guardian's count must still equal the kernel's MIB.
//!
//! nftables drops ~3 % of the data at B's ingress (so A retransmits) and ~5 % of A's own
//! outgoing data at A's `output` hook, so some retransmissions fail in `tcp_transmit_skb` (the
//! kernel counts them in TcpRetransSegs and in TcpExtTCPRetransFail). Since 6.17 tcp_retransmit_skb fires for them with `err`; before, it
//! does not fire at all and guardian adds the namespace's TCPRetransFail (see
//! docs/kernels.md). Either way `retrans_segs` must equal TcpRetransSegs.
use std::net::SocketAddr;
use std::time::Duration;

use guardian_tests::*;

const SUBNET: u8 = 71;
const PORT: u16 = 5071;
const BYTES: u64 = 16 << 20;

#[test]
fn retrans_segs_equals_tcp_retrans_segs_when_the_senders_output_drops() {
    require_root();
    let a = Netns::new("rtf-a");
    let b = Netns::new("rtf-b");
    let v = pair(&a, &b, SUBNET);
    nft::drop_random_tcp(&b, PORT, 3);
    nft::load(
        &a,
        &format!(
            "table inet guardian_test {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n  \
             tcp dport {PORT} numgen random mod 100 < 5 counter drop\n }}\n}}\n"
        ),
    );
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, PORT)));
    let mut d = Daemon::start(&a, &["--interval-ms", "500"]);
    d.wait_attached();

    let dst = server.addr();
    let sent = run_in_netns(&a, move || bulk_send(dst, BYTES, Duration::from_secs(120)))
        .expect("connect A -> B");
    assert!(sent.sent > 0);
    assert!(
        wait_tcp_quiet(&a, Duration::from_secs(60)),
        "connections still open in A: {:?}",
        truth::ss_busy(&a)
    );
    // One more tick, so that the last MIB sample follows the last retransmission.
    std::thread::sleep(Duration::from_millis(600));
    let events = d.finish();
    let truth = nstat(&a);
    let fin = final_counters(&events, a.inode())
        .unwrap_or_else(|| panic!("no final counters event for A's netns {}", a.inode()));
    let (ours, kernel) = (u64_field(fin, "retrans_segs"), truth["TcpRetransSegs"]);
    let fails = truth.get("TcpExtTCPRetransFail").copied().unwrap_or(0);
    eprintln!(
        "retrans_segs: guardian {ours}, nstat TcpRetransSegs {kernel} (TCPRetransFail {fails}); \
         nft dropped {} packets",
        nft::dropped(&a)
    );
    assert!(
        fails > 0,
        "output drops must make some retransmissions fail"
    );
    assert_eq!(
        ours, kernel,
        "retrans_segs must equal TcpRetransSegs exactly"
    );
    server.stop();
}
