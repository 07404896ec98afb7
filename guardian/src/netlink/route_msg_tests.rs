//! Unit tests of route message conversion (`route_msg.rs`).
use super::*;
use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::route::{RouteProtocol, RouteScope, RouteType};

fn v4_msg() -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = 24;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Table(254));
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(
            "10.250.0.0".parse().unwrap(),
        )));
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(
            "10.0.0.2".parse().unwrap(),
        )));
    m.attributes.push(RouteAttribute::Oif(3));
    m
}

#[test]
fn v4_message_to_spec_and_back() {
    let spec = route_spec_from_message(&v4_msg()).unwrap();
    let want = RouteSpec::new("10.250.0.0".parse().unwrap(), 24)
        .via("10.0.0.2".parse().unwrap())
        .dev(3);
    assert_eq!(spec, want);
    assert!(spec.is_main_unicast());
    assert_eq!(spec.to_string(), "10.250.0.0/24");
    // and the message we would send re-parses to the same spec
    assert_eq!(route_spec_from_message(&route_message(&spec)), Some(spec));
}

#[test]
fn v6_default_route_with_metric() {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Static;
    m.header.kind = RouteType::Unicast;
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet6(
            "fd00::2".parse().unwrap(),
        )));
    m.attributes.push(RouteAttribute::Oif(5));
    m.attributes.push(RouteAttribute::Priority(1024));
    let spec = route_spec_from_message(&m).unwrap();
    assert_eq!(spec.family, Family::Ipv6);
    assert_eq!(spec.dst, "::".parse::<IpAddr>().unwrap());
    assert_eq!(spec.to_string(), "default");
    assert_eq!(spec.priority, Some(1024));
    let back = route_message(&spec);
    assert!(!back
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::Destination(_))));
    assert_eq!(route_spec_from_message(&back), Some(spec));
}

#[test]
fn metrics_go_out_and_come_back() {
    let spec = route_spec_from_message(&v4_msg())
        .unwrap()
        .mtu_lock(1280)
        .congctl("bbr");
    let m = route_message(&spec);
    let metrics = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Metrics(l) => Some(l.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        metrics,
        [
            RouteMetric::Lock(4),
            RouteMetric::Mtu(1280),
            RouteMetric::CcAlgo("bbr".into())
        ]
    );
    assert_eq!(route_spec_from_message(&m), Some(spec));
    // an unlocked MTU stays unlocked; other metrics are ignored
    let mut m = v4_msg();
    m.attributes.push(RouteAttribute::Metrics(vec![
        RouteMetric::Mtu(1400),
        RouteMetric::Hoplimit(9),
    ]));
    let got = route_spec_from_message(&m).unwrap().metrics;
    assert_eq!(
        (got.mtu, got.mtu_lock, got.cc_algo),
        (Some(1400), false, None)
    );
    // no metrics, no attribute
    assert!(!route_message(&route_spec_from_message(&v4_msg()).unwrap())
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::Metrics(_))));
}

#[test]
fn unrepresentable_routes_are_skipped() {
    let mut cloned = v4_msg();
    cloned.header.flags.insert(RouteFlags::Cloned);
    assert!(route_spec_from_message(&cloned).is_none());
    let mut encap = v4_msg();
    encap.attributes.push(RouteAttribute::EncapType(
        netlink_packet_route::route::RouteLwEnCapType::Mpls,
    ));
    assert!(route_spec_from_message(&encap).is_none());
    let mut other = v4_msg();
    other.header.address_family = AddressFamily::Mpls;
    assert!(route_spec_from_message(&other).is_none());
}

#[test]
fn other_tables_are_not_main_unicast() {
    let mut m = v4_msg();
    m.attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
    m.header.table = 255; // local
    assert!(!route_spec_from_message(&m).unwrap().is_main_unicast());
    let mut m = v4_msg();
    m.attributes.push(RouteAttribute::Table(1000));
    assert_eq!(route_spec_from_message(&m).unwrap().table, 1000);
}

fn hop(gw: &str, oif: u32, weight: u16) -> NextHop {
    NextHop {
        gateway: Some(gw.parse().unwrap()),
        oif,
        weight,
        onlink: false,
    }
}

/// `ip route add 10.250.0.0/24 nexthop via 10.0.0.2 dev 3 weight 1 nexthop via 10.0.0.3 dev 4
/// weight 5 onlink`, as the kernel reports it (the dead flag is state, not configuration).
fn ecmp_msg() -> RouteMessage {
    let mut m = v4_msg();
    m.attributes
        .retain(|a| !matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_)));
    let mut a = RouteNextHop::default();
    a.interface_index = 3;
    a.flags.insert(RouteNextHopFlags::Dead);
    a.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(
            "10.0.0.2".parse().unwrap(),
        )));
    let mut b = RouteNextHop::default();
    b.interface_index = 4;
    b.hops = 4;
    b.flags.insert(RouteNextHopFlags::Onlink);
    b.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(
            "10.0.0.3".parse().unwrap(),
        )));
    m.attributes.push(RouteAttribute::MultiPath(vec![a, b]));
    m
}

#[test]
fn multipath_round_trips_with_every_hop_and_weight() {
    let spec = route_spec_from_message(&ecmp_msg()).unwrap();
    let mut onlink = hop("10.0.0.3", 4, 5);
    onlink.onlink = true;
    assert_eq!(spec.nexthops, [hop("10.0.0.2", 3, 1), onlink]);
    assert_eq!((spec.gateway, spec.oif), (None, None));
    let out = route_message(&spec);
    // one RTA_MULTIPATH, no top-level gateway or device
    assert!(!out
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_))));
    let hops = out
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::MultiPath(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(hops[1].hops, 4);
    assert_eq!(hops[1].flags, RouteNextHopFlags::Onlink);
    assert!(hops[0].flags.is_empty(), "state flags are not sent back");
    assert_eq!(route_spec_from_message(&out), Some(spec.clone()));
    // and through the wire format
    let mut buf = vec![0; out.buffer_len()];
    out.emit(&mut buf);
    let parsed = RouteMessage::parse(buf.as_slice()).unwrap();
    assert_eq!(route_spec_from_message(&parsed), Some(spec));
    // an IPv6 multipath route keeps IPv6 gateways
    let v6 = RouteSpec::new("fd00:9::".parse().unwrap(), 64)
        .multipath(vec![hop("fd00::2", 3, 1), hop("fd00::3", 3, 1)])
        .metric(1024);
    assert_eq!(route_spec_from_message(&route_message(&v6)), Some(v6));
}

#[test]
fn a_nexthop_object_route_is_sent_back_with_its_id_only() {
    // compat mode: the kernel also reports the object's gateway and device
    let mut m = v4_msg();
    m.attributes.push(RouteAttribute::NhId(10));
    let spec = route_spec_from_message(&m).unwrap();
    assert_eq!(spec.nhid, Some(10));
    assert_eq!(spec.gateway, None, "the gateway is the object's");
    assert_eq!(spec.oif, Some(3), "the device says which link carries it");
    let out = route_message(&spec);
    assert!(out
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::NhId(10))));
    assert!(
        !out.attributes.iter().any(|a| matches!(
            a,
            RouteAttribute::Gateway(_)
                | RouteAttribute::Oif(_)
                | RouteAttribute::MultiPath(_)
                | RouteAttribute::Via(_)
        )),
        "{out:?}"
    );
    // a group: the compat nexthops are dropped too
    let mut g = ecmp_msg();
    g.attributes.push(RouteAttribute::NhId(20));
    let spec = route_spec_from_message(&g).unwrap();
    assert_eq!((spec.nhid, spec.nexthops.len()), (Some(20), 0));
    let mut buf = vec![0; route_message(&spec).buffer_len()];
    route_message(&spec).emit(&mut buf);
    let parsed = RouteMessage::parse(buf.as_slice()).unwrap();
    assert_eq!(route_spec_from_message(&parsed), Some(spec));
}

#[test]
fn tables_above_255_go_in_the_attribute() {
    let mut r = route_spec_from_message(&v4_msg()).unwrap();
    r.table = 1000;
    let m = route_message(&r);
    assert_eq!(m.header.table, RouteHeader::RT_TABLE_UNSPEC);
    assert_eq!(route_spec_from_message(&m).unwrap().table, 1000);
    r.table = 100;
    let m = route_message(&r);
    assert_eq!(m.header.table, 100);
    assert_eq!(route_spec_from_message(&m), Some(r));
}
