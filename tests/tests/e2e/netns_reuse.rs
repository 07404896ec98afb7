//! A namespace's inode number is reused by the kernel for a namespace made after it is freed:
//! on a node where pods come and go, a new pod's namespace often carries a deleted one's
//! number, and its MIB counters start from zero. The detectors keyed by that number must judge
//! the new namespace on its own counters: `retransmit_storm` opens in it within its usual
//! latency bound, although the old namespace under the same number had sent a gigabyte.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use guardian_tests::sockets::*;
use guardian_tests::*;

/// Bound after the loss starts, ms (as `faults_sockets::retransmit_storm_*`), on the host.
const RATE_BOUND_MS: f64 = 1500.0;

#[test]
fn a_new_namespace_under_a_reused_inode_is_judged_on_its_own_counters() {
    require_root();
    let home = Netns::new("nr-d");
    let dir = TempDir::new("nr-d");
    let cfg = detect_config(dir.path(), "[retransmit_storm]\nclear_after_ms = 1000\n");
    let mut d = Daemon::start(
        &home,
        &[
            "--interval-ms",
            "250",
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();

    // The old namespace sends 1 GiB without loss; the daemon samples its MIB.
    let old = Netns::new("nr-old");
    let sink = Netns::new("nr-sink");
    let v = pair(&old, &sink, 62);
    let server = DiscardServer::start(&sink, SocketAddr::from((v.b_addr, 5062)));
    let dst = server.addr();
    let bulk = in_netns(&old, move || {
        bulk_send(dst, 1 << 30, Duration::from_secs(60))
    })
    .join()
    .expect("sender")
    .expect("connect old -> sink");
    assert!(bulk.complete, "1 GiB not sent in 60 s: {} bytes", bulk.sent);
    let inode = old.inode();
    let out_segs = nstat_get(&old, "TcpOutSegs");
    let seen = d.count();
    d.wait_for_after(
        seen,
        |e| e["type"] == "counters" && e["netns"].as_u64() == Some(inode),
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_secs(2)); // more samples of the old counters
    server.stop();
    drop(v);
    drop(sink);
    drop(old);

    // A new namespace under the same number, its counters from zero.
    let (new, _others) = namespace_with_inode(inode, "nr-new");
    eprintln!(
        "old namespace sent {out_segs} segments; inode {inode} reused at {:?}",
        SystemTime::now()
    );
    let peer = Netns::new("nr-peer");
    let v = pair(&new, &peer, 61);
    let server = DiscardServer::start(&peer, SocketAddr::from((v.b_addr, 5061)));
    // The stream outlasts the wait below, scaled as it is in a VM.
    let max = Duration::from_secs(25).mul_f64(guardian_tests::util::time_scale());
    let stream = Held::connect(&new, server.addr(), max);
    // Two ticks of the new namespace's own counters before the loss.
    std::thread::sleep(Duration::from_secs(2));
    nft::drop_random_tcp(&peer, 5061, 10);
    let t0 = SystemTime::now();
    stream.go();
    eprintln!("loss from {t0:?}");
    let (_, open) = d.wait_for_after(
        0,
        |e| is_fault_in(e, "retransmit_storm", "opened", inode),
        Duration::from_secs(10),
    );
    eprintln!("opened: {open}");
    assert!(open["evidence"]["ratio"].as_f64().unwrap() > 0.05, "{open}");
    // Its own segments: far fewer than the old namespace's.
    let sent = open["evidence"]["sent_segs"].as_u64().unwrap();
    assert!((1000..out_segs).contains(&sent), "{open}");
    // Scaled in a TCG guest (`cargo xtask test --kernel`), where everything runs slower.
    let bound = RATE_BOUND_MS * guardian_tests::util::time_scale();
    Latencies::new("retransmit_storm after inode reuse").record(0, t0, &open, bound);
    stream.stop();
    server.stop();
    d.finish();
}
