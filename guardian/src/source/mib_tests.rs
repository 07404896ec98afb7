//! Unit tests of the MIB sampler's decisions (which dumps a tick takes) and of its reading.
use super::*;
use crate::model::sample::PortRange;
use crate::netns;
use crate::source::procnet::SockStat;

fn sample(range: (u16, u16), buckets: u64) -> MibSample {
    MibSample {
        port_range: Some(PortRange {
            lo: range.0,
            hi: range.1,
        }),
        tcp_max_tw_buckets: Some(buckets),
        listen_overflows: 3,
        listen_drops: 4,
        ..Default::default()
    }
}

fn sock(inuse4: u64, inuse6: u64, tw: u64) -> Option<SockStat> {
    Some(SockStat { inuse4, inuse6, tw })
}

#[test]
fn a_quiet_namespace_needs_no_dump() {
    let s = sample((32768, 60999), 262144);
    let p = plan(
        &s,
        sock(100, 2, 30),
        true,
        Some([100, 2, 3, 4]),
        false,
        false,
    );
    assert_eq!(p, Plan::default());
}

#[test]
fn listeners_are_dumped_when_sockets_or_drops_move_and_on_refresh() {
    let s = sample((32768, 60999), 262144);
    let prev = Some([100, 2, 3, 4]);
    assert!(plan(&s, sock(101, 2, 30), true, prev, false, false).listeners);
    assert!(plan(&s, sock(100, 3, 30), true, prev, false, false).listeners);
    assert!(
        plan(
            &s,
            sock(100, 2, 30),
            true,
            Some([100, 2, 2, 4]),
            false,
            false
        )
        .listeners
    );
    assert!(plan(&s, sock(100, 2, 30), true, prev, true, false).listeners);
    assert!(plan(&s, sock(100, 2, 30), true, None, false, false).listeners);
    assert!(plan(&s, None, true, prev, false, false).listeners);
}

#[test]
fn time_wait_per_destination_only_under_pressure() {
    // 200 ports: a quarter of the range is 50.
    let s = sample((40000, 40199), 262144);
    assert!(!plan(&s, sock(0, 0, 49), true, None, false, false).time_wait);
    assert!(plan(&s, sock(0, 0, 50), true, None, false, false).time_wait);
    // Half of tcp_max_tw_buckets.
    let s = sample((32768, 60999), 100);
    assert!(!plan(&s, sock(0, 0, 49), true, None, false, false).time_wait);
    assert!(plan(&s, sock(0, 0, 50), true, None, false, false).time_wait);
    // sockstat's count is the host's (old kernel) or unreadable: always from a dump.
    assert!(plan(&s, sock(0, 0, 0), false, None, false, false).time_wait);
    assert!(plan(&s, None, true, None, false, false).time_wait);
}

#[test]
fn ephemeral_use_per_destination_only_under_pressure() {
    let s = sample((40000, 40009), 262144);
    assert!(!plan(&s, sock(2, 0, 2), true, None, false, false).ephemeral);
    assert!(plan(&s, sock(3, 0, 2), true, None, false, false).ephemeral);
    let wide = sample((32768, 60999), 262144);
    // 10 000 sockets in a 28 232-port range: no pressure.
    assert!(!plan(&wide, sock(10_000, 0, 0), true, None, false, false).ephemeral);
    assert!(plan(&wide, sock(14_116, 0, 0), true, None, false, false).ephemeral);
    // Connects failed for want of a port.
    assert!(plan(&wide, sock(1, 0, 0), true, None, false, true).ephemeral);
}

#[test]
fn a_sample_round_trips_through_json() {
    let s = MibSample {
        netns: 7,
        tcp_out_segs: 10,
        port_range: Some(PortRange { lo: 1, hi: 2 }),
        listeners: vec![Listener {
            addr: "::".into(),
            port: 1,
            queued: 0,
            backlog: 1,
            uid: 0,
            inode: 3,
        }],
        ..Default::default()
    };
    let v = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<MibSample>(&v).unwrap(), s);
}

/// The sampler reads the daemon's own namespace (no privileges needed for that), through
/// handles it keeps: the second read needs no `enter` and uses the same socket.
#[test]
fn reads_the_own_namespace() {
    let mut st = NsState {
        files: NetFiles::open_here(),
        ..Default::default()
    };
    let mut r = Reader::default();
    let s = read(1, &mut st, (true, false), &mut r, true, &mut || Ok(()));
    assert!(s.port_range.is_some());
    assert!(s.tcp_max_tw_buckets.is_some());
    assert!(s.time_wait.is_some());
    assert!(st.diag.is_some(), "the dump's socket is kept");
    let again = read(1, &mut st, (true, false), &mut r, true, &mut || {
        Err(std::io::Error::other("entered again"))
    });
    assert_eq!(again.port_range, s.port_range);
    assert!(st.diag.is_some());
}

/// Handles opened inside a namespace read that namespace from a thread outside it. Needs
/// CAP_SYS_ADMIN to make the namespace (skipped without).
#[test]
fn handles_read_their_namespace_from_outside() {
    let made = std::thread::spawn(
        || -> std::io::Result<Option<(NsState, std::net::TcpListener)>> {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return Ok(None);
            }
            std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40009")?;
            let l = std::net::TcpListener::bind("0.0.0.0:0")?;
            let st = NsState {
                files: NetFiles::open_here(),
                diag: Some(netns::diag_socket()?),
                ..Default::default()
            };
            Ok(Some((st, l)))
        },
    )
    .join()
    .unwrap()
    .unwrap();
    let Some((mut st, l)) = made else {
        eprintln!("skipped: cannot make a network namespace here");
        return;
    };
    let port = l.local_addr().unwrap().port();
    let s = read(
        7,
        &mut st,
        (true, false),
        &mut Reader::default(),
        true,
        &mut || Err(std::io::Error::other("must not enter")),
    );
    assert_eq!(
        s.port_range,
        Some(PortRange {
            lo: 40000,
            hi: 40009
        })
    );
    assert_eq!(s.sockets, 1, "the namespace's one listener");
    assert_eq!(s.listeners.len(), 1);
    assert_eq!(s.listeners[0].port, port);
}
