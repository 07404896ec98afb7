//! The benign run: 30 s of ordinary traffic — bulk transfers, hundreds of short connections,
//! DNS that answers, nginx serving a small file (HTTP 200s, `--http`) — with every detector at
//! the catalogue's defaults must open no fault.
//! The daemon runs in B (server side) with XDP and the DNS programs on B's veth; the kernel
//! probes and samplers also see A, the client namespace.
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use guardian_tests::dns::{query_paced, Responder, NOERROR};
use guardian_tests::*;

const SUBNET: u8 = 81;
const PORT: u16 = 5081;
const RUN: Duration = Duration::from_secs(30);

#[test]
fn thirty_seconds_of_normal_traffic_open_no_fault() {
    require_root();
    let a = Netns::new("benign-a");
    let b = Netns::new("benign-b");
    let v = pair(&a, &b, SUBNET);
    let server = DiscardServer::start(&b, SocketAddr::from((v.b_addr, PORT)));
    let resolver = Responder::start(&b, SocketAddr::from((v.b_addr, 53)), NOERROR);
    let mut d = Daemon::start(&b, &["--xdp", &v.b_if, "--http"]);
    d.wait_attached();
    let www = TempDir::new("benign-nginx");
    let listen = format!("{}:8081", v.b_addr);
    let conf = super::http::nginx_static_conf(www.path(), &listen);
    super::http::start_nginx(&b, www.path(), &conf, 8081);

    // The kernel's own TCP counters of both ends, to say what a storm was made of.
    let mib0 = [nstat(&a), nstat(&b)];
    let start = Instant::now();
    let dst = server.addr();
    // Bulk: a 20 MB transfer every 5 s, at up to 200 MB/s (unpaced, a veth sender's bursts
    // overrun the XDP end and make a real retransmit storm: `bulk_send_paced`).
    let bulk = in_netns(&a, move || {
        let mut sent = 0u64;
        while start.elapsed() + Duration::from_secs(5) <= RUN {
            let t = Instant::now();
            sent += bulk_send_paced(dst, 20 << 20, Duration::from_secs(5), Some(200 << 20))
                .map(|r| r.sent)
                .unwrap_or(0);
            thread::sleep(Duration::from_secs(5).saturating_sub(t.elapsed()));
        }
        sent
    });
    // Churn: 10 short connections per second (300 in all).
    let churn = in_netns(&a, move || {
        let mut ok = 0;
        while start.elapsed() < RUN {
            ok += connect_n(dst, 10, Duration::from_secs(2));
            thread::sleep(Duration::from_secs(1));
        }
        ok
    });
    // DNS: 20 queries per second, all answered.
    let dns = query_paced(
        &a,
        SocketAddr::from((v.b_addr, 53)),
        20,
        RUN,
        Duration::from_millis(500),
    );
    // HTTP: 20 requests per second over keep-alive connections, all 200.
    let url = format!("http://{listen}/index.html");
    let a_path = a.path();
    let web = thread::spawn(move || {
        let mut codes = Vec::new();
        while start.elapsed() < RUN {
            let t = Instant::now();
            let mut c = std::process::Command::new("nsenter");
            c.arg(format!("--net={}", a_path.display()))
                .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}\\n"])
                .args(["--max-time", "5"])
                .args(std::iter::repeat_n(url.as_str(), 20));
            if let Ok(out) = c.output() {
                codes.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .filter_map(|l| l.trim().parse::<u16>().ok()),
                );
            }
            thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
        }
        codes
    });
    let sent = bulk.join().expect("bulk thread");
    let web = web.join().expect("http thread");
    let conns = churn.join().expect("churn thread");
    let dns = dns.join().expect("dns thread");
    thread::sleep(Duration::from_secs(2));
    let events = d.finish();

    eprintln!(
        "benign: {} MB bulk, {conns} short connections, {} DNS queries ({} answered) in {:?}",
        sent >> 20,
        dns.sent,
        dns.answered(),
        start.elapsed()
    );
    assert!(sent >= 5 * (20 << 20), "bulk transfers ran: {sent} bytes");
    assert!(conns >= 250, "short connections ran: {conns}");
    assert!(
        dns.sent >= 500 && dns.answered() == dns.sent,
        "DNS: {dns:?}"
    );
    assert!(resolver.queries() >= dns.sent);
    assert!(
        web.len() >= 400 && web.iter().all(|c| *c == 200),
        "HTTP: {} responses, not all 200",
        web.len()
    );
    let logged = super::http::access_counts(www.path(), 8081);
    assert_eq!(
        logged.get(&200).copied(),
        Some(web.len() as u64),
        "{logged:?}"
    );
    // The daemon saw the traffic (so silence is not blindness).
    let fin = final_counters(&events, b.inode()).expect("final counters for B");
    let xdp = &fin["xdp"][0];
    assert!(u64_field(xdp, "syn_rx") >= conns as u64, "{xdp}");
    assert!(u64_field(xdp, "bytes") >= sent, "{xdp}");
    let faults: Vec<&serde_json::Value> = events.iter().filter(|e| is_type(e, "fault")).collect();
    assert!(
        faults.is_empty(),
        "the benign run opened faults: {faults:#?}\nthe kernel's TCP counters over the run \
         (A, B): {}",
        tcp_mib_deltas(&mib0, &[nstat(&a), nstat(&b)])
    );
}

/// What the kernel counted over the run in A and in B: segments out and retransmitted, and
/// what retransmits come from (fast retransmits, tail-loss probes, timeouts) and whether the
/// receivers saw loss or only reordering (out-of-order queueing, duplicate SACKs).
fn tcp_mib_deltas(
    before: &[std::collections::HashMap<String, u64>; 2],
    after: &[std::collections::HashMap<String, u64>; 2],
) -> String {
    const KEYS: [&str; 8] = [
        "TcpOutSegs",
        "TcpRetransSegs",
        "TcpExtTCPFastRetrans",
        "TcpExtTCPLossProbes",
        "TcpExtTCPTimeouts",
        "TcpExtTCPOFOQueue",
        "TcpExtTCPDSACKRecv",
        "TcpExtTCPDSACKUndo",
    ];
    let get = |m: &std::collections::HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    KEYS.iter()
        .map(|k| {
            let d = |i: usize| get(&after[i], k).saturating_sub(get(&before[i], k));
            format!("{k} {}/{}", d(0), d(1))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
