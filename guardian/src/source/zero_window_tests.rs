//! Unit tests of the zero-window source's decisions: when a namespace is dumped, which answers
//! are stalled flows, how `tcp_info` is read, how flows are grouped, when owners are looked up.
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_sock_diag::inet::{InetResponseHeader, SocketId};

use super::*;

#[test]
fn dumps_only_when_probes_were_sent_or_a_stall_is_under_way() {
    // First sight: a namespace that never sent a probe needs no dump; one that did may be
    // stalled now.
    assert!(!should_dump(None, 0, false));
    assert!(should_dump(None, 7, false));
    // The counter did not move and nothing was stalled: no dump, however many ticks.
    assert!(!should_dump(Some(7), 7, false));
    // It moved: a new stall (or the next probe of one).
    assert!(should_dump(Some(7), 8, false));
    // Stalled last time: dump until it is over, although probes back off (no movement).
    assert!(should_dump(Some(8), 8, true));
}

/// A `tcp_info` of `len` bytes with backoff, last_data_sent and snd_wnd set.
fn info(len: usize, backoff: u8, last_sent: u32, wnd: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[BACKOFF] = backoff;
    b[LAST_DATA_SENT..LAST_DATA_SENT + 4].copy_from_slice(&last_sent.to_ne_bytes());
    if len >= SND_WND + 4 {
        b[SND_WND..SND_WND + 4].copy_from_slice(&wnd.to_ne_bytes());
    }
    b
}

#[test]
fn reads_tcp_info_fields_and_tolerates_an_older_shorter_struct() {
    // 6.18's struct is longer than 232 bytes: the extra tail is ignored.
    let i = parse_tcp_info(&info(280, 4, 6676, 0)).unwrap();
    assert_eq!(
        i,
        TcpInfo {
            backoff: 4,
            last_data_sent_ms: 6676,
            snd_wnd: Some(0)
        }
    );
    // Before 6.2 there is no tcpi_snd_wnd (the struct ends at 224 bytes or earlier).
    let old = parse_tcp_info(&info(104, 2, 900, 0)).unwrap();
    assert_eq!(old.snd_wnd, None);
    assert_eq!(old.last_data_sent_ms, 900);
    assert_eq!(
        parse_tcp_info(&[0u8; 40]),
        None,
        "too short to say anything"
    );
}

fn answer(timer: Option<Timer>, local: u16, remote: u16, nlas: Vec<Nla>) -> InetResponse {
    let mut id = SocketId::new_v4();
    id.source_address = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2));
    id.source_port = local;
    id.destination_address = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
    id.destination_port = remote;
    InetResponse {
        header: InetResponseHeader {
            family: AF_INET,
            state: 1,
            timer,
            socket_id: id,
            recv_queue: 0,
            send_queue: 69480,
            uid: 0,
            inode: 4242,
        },
        nlas: nlas.into_iter().collect(),
    }
}

#[test]
fn only_sockets_under_the_persist_timer_are_stalled_flows() {
    let tcp = || vec![Nla::TcpInfo(info(232, 4, 3636, 0))];
    let (port, f) = stalled(&answer(
        Some(Timer::Probe(Duration::from_millis(2940))),
        8099,
        35390,
        tcp(),
    ))
    .unwrap();
    assert_eq!(port, 8099);
    assert_eq!(
        f,
        StalledFlow {
            local: "10.99.0.2:8099".into(),
            remote: "10.99.0.1:35390".into(),
            stalled_ms: 3636,
            probes: 4,
            queued: 69480,
            snd_wnd: Some(0),
            inode: 4242,
        }
    );
    // Retransmitting, keep-alive or no timer: not a zero-window stall.
    for t in [
        Some(Timer::Retransmit(Duration::from_millis(200), 1)),
        Some(Timer::KeepAlive(Duration::from_secs(7200))),
        None,
    ] {
        assert!(stalled(&answer(t, 8099, 35390, tcp())).is_none());
    }
    // Without tcp_info the stall's age is unknown: left out rather than guessed.
    let bare = answer(Some(Timer::Probe(Duration::ZERO)), 8099, 1, Vec::new());
    assert!(stalled(&bare).is_none());
}

fn flow(remote: &str, stalled_ms: u64, inode: u32) -> StalledFlow {
    StalledFlow {
        local: "10.0.0.1:80".into(),
        remote: remote.into(),
        stalled_ms,
        inode,
        ..Default::default()
    }
}

#[test]
fn flows_are_grouped_per_local_port_longest_stalled_first_and_bounded() {
    let p = by_port(vec![
        (80, flow("10.0.0.9:1", 100, 1)),
        (443, flow("10.0.0.9:2", 50, 2)),
        (80, flow("10.0.0.9:3", 9000, 3)),
    ]);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].port, 80);
    assert_eq!(
        p[0].flows.iter().map(|f| f.stalled_ms).collect::<Vec<_>>(),
        vec![9000, 100]
    );
    assert_eq!(p[1].port, 443);
    let many = (0..MAX_FLOWS as u64 + 10).map(|i| (80, flow(&format!("h:{i}"), i, 0)));
    let p = by_port(many.collect());
    assert_eq!(p[0].flows.len(), MAX_FLOWS);
    assert_eq!(p[0].flows[0].stalled_ms, MAX_FLOWS as u64 + 9);
}

#[test]
fn owners_are_looked_up_once_a_flow_has_stalled_long_enough() {
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let link = std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap();
    let ino: u32 = link
        .to_string_lossy()
        .trim_start_matches("socket:[")
        .trim_end_matches(']')
        .parse()
        .unwrap();
    let mut o = Owners::default();
    let t0 = Instant::now();
    let z = |ms| ZeroWindowSample {
        netns: 1,
        win_probes: 3,
        ports: vec![PortStalls {
            port: 80,
            flows: vec![flow("10.0.0.9:1", ms, ino)],
            owners: Vec::new(),
        }],
    };
    // Stalled for less than LOOKUP_AFTER_MS: no /proc scan.
    let mut young = z(LOOKUP_AFTER_MS - 1);
    o.fill(&mut young, t0);
    assert!(young.ports[0].owners.is_empty());
    let mut old = z(LOOKUP_AFTER_MS);
    o.fill(&mut old, t0);
    assert_eq!(old.ports[0].owners.len(), 1, "{:?}", old.ports[0].owners);
    assert_eq!(old.ports[0].owners[0].pid, std::process::id());
    // The next tick reuses it.
    let mut again = z(LOOKUP_AFTER_MS + 100);
    o.fill(&mut again, t0 + Duration::from_millis(100));
    assert_eq!(again.ports[0].owners, old.ports[0].owners);
    // A namespace that is not sampled any more is forgotten.
    o.retain(|ns| ns != 1);
    assert!(o.looked.is_empty());
}
