use std::collections::BTreeMap;

use super::*;
use crate::netlink::{LinkState, RouteSpec};
use crate::scan::collect::{IfaceStats, Listener};

fn facts() -> Facts {
    let link = |i, name: &str, up| LinkState {
        ifindex: i,
        name: name.into(),
        admin_up: up,
        oper_up: up,
        mtu: 1500,
    };
    Facts {
        links: vec![
            link(1, "lo", true),
            link(2, "eth0", true),
            link(3, "eth1", false),
        ],
        stats: BTreeMap::from([(
            "eth0".to_string(),
            IfaceStats {
                tx_packets: 10_000,
                rx_dropped: 300,
                rx_packets: 10_000,
                ..Default::default()
            },
        )]),
        routes: vec![
            RouteSpec::new("0.0.0.0".parse().unwrap(), 0)
                .via("10.0.0.1".parse().unwrap())
                .dev(2),
            RouteSpec::new("10.9.0.0".parse().unwrap(), 24).dev(3),
        ],
        listeners: vec![
            Listener {
                addr: "0.0.0.0".into(),
                port: 80,
                queued: 95,
                backlog: 100,
                uid: 0,
                inode: 0,
            },
            Listener {
                addr: "0.0.0.0".into(),
                port: 22,
                queued: 0,
                backlog: 128,
                uid: 0,
                inode: 0,
            },
        ],
        time_wait: 600,
        states: BTreeMap::new(),
        ports_per_remote: BTreeMap::from([("10.0.0.9:80".to_string(), 600)]),
        ephemeral_in_use: 600,
        ephemeral_range: (60000, 60999),
        sysctls: BTreeMap::from([
            ("net.ipv4.tcp_syncookies".to_string(), "0".to_string()),
            (
                "net.ipv4.tcp_max_tw_buckets".to_string(),
                "1000".to_string(),
            ),
            (
                "net.ipv4.ip_local_port_range".to_string(),
                "60000 60999".to_string(),
            ),
        ]),
    }
}

fn level_of(cs: &[Check], name: &str) -> Level {
    cs.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {cs:#?}"))
        .level
}

#[test]
fn thresholds() {
    let cs = evaluate(&facts());
    assert!(cs.iter().all(|c| c.name != "lo"));
    assert_eq!(level_of(&cs, "eth0"), Level::Ok);
    assert_eq!(level_of(&cs, "eth1"), Level::Warn);
    assert_eq!(level_of(&cs, "eth0 errors/drops"), Level::Warn); // 300 drops, 1.5% of packets
    assert_eq!(level_of(&cs, "default route"), Level::Ok);
    assert_eq!(level_of(&cs, "route 10.9.0.0/24"), Level::Bad);
    assert_eq!(level_of(&cs, "0.0.0.0:80"), Level::Bad); // 95% full
    assert_eq!(level_of(&cs, "0.0.0.0:22"), Level::Ok);
    assert_eq!(level_of(&cs, "TIME_WAIT"), Level::Warn); // 60% of 1000 buckets
    assert_eq!(level_of(&cs, "ephemeral range"), Level::Warn); // 600 of 1000
    assert_eq!(level_of(&cs, "to 10.0.0.9:80"), Level::Warn);
    assert_eq!(level_of(&cs, "net.ipv4.tcp_syncookies"), Level::Warn);
    assert_eq!(level_of(&cs, "net.ipv4.ip_local_port_range"), Level::Warn);
}

#[test]
fn no_default_route_is_bad() {
    let mut f = facts();
    f.routes.retain(|r| !r.is_default());
    let cs = evaluate(&f);
    let d = cs.iter().find(|c| c.name == "default route").unwrap();
    assert_eq!((d.level, d.value.as_str()), (Level::Bad, "none"));
}

#[test]
fn screen_snapshot() {
    let mut f = facts();
    f.links.truncate(2);
    f.stats.clear();
    f.routes.truncate(1);
    f.listeners.truncate(1);
    f.ports_per_remote.clear();
    f.sysctls.retain(|k, _| k == "net.ipv4.tcp_syncookies");
    let got = crate::scan::render(&evaluate(&f));
    assert_eq!(
        got,
        "\
interfaces
  ok   eth0                         up, carrier, mtu 1500
routes
  ok   default route                via 10.0.0.1 dev eth0
  ok   main table                   1 unicast routes
listeners
  BAD  0.0.0.0:80                   accept queue 95/100 (95.0%)
                                    (warn: >= 50% full; bad: >= 90%)
ports
  ok   TIME_WAIT                    600 sockets (0.2% of tcp_max_tw_buckets 262144)
  WARN ephemeral range              60000-60999: 600 local ports in use (60.0%)
                                    (warn: >= 50% of the range in use; bad: >= 80%)
sysctls
  WARN net.ipv4.tcp_syncookies      0
                                    (warn: 0 (no SYN flood protection))
4 ok, 2 warn, 1 bad
"
    );
}
