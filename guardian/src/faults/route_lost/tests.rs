//! `route_lost` detector tables: what opens, clears and updates, and who the findings name.
use super::*;
use std::time::Duration;

use FaultState::{Cleared as C, Opened as O, Updated as U};
#[allow(non_snake_case)]
fn L(l: LinkState) -> NetEvent {
    NetEvent::Link(l.into())
}

#[allow(non_snake_case)]
fn Add(r: RouteSpec) -> NetEvent {
    NetEvent::RouteAdded(r.into())
}

#[allow(non_snake_case)]
fn Del(r: RouteSpec) -> NetEvent {
    NetEvent::RouteDeleted(r.into())
}

fn link(ifindex: u32, name: &str, admin_up: bool) -> LinkState {
    LinkState {
        ifindex,
        name: name.into(),
        admin_up,
        oper_up: admin_up,
        mtu: 1500,
    }
}

fn v4() -> RouteSpec {
    RouteSpec::new("10.250.0.0".parse().unwrap(), 24)
        .via("10.0.0.2".parse().unwrap())
        .dev(3)
}

fn v6() -> RouteSpec {
    RouteSpec::new("fd99::".parse().unwrap(), 64)
        .via("fd00::2".parse().unwrap())
        .dev(3)
        .metric(1024)
}

fn v4_default_on_down_link() -> RouteSpec {
    RouteSpec::new("0.0.0.0".parse().unwrap(), 0)
        .via("10.1.0.1".parse().unwrap())
        .dev(4)
}

/// Baseline: v4, v6 (both via ifindex 3 `va`, up) and a default route via ifindex 4
/// (`vd`, admin down).
fn run(steps: &[NetEvent]) -> Vec<Vec<FaultState>> {
    let links = [link(3, "va", true), link(4, "vd", false)];
    let mut d = RouteLost::new(vec![v4(), v6(), v4_default_on_down_link()], &links);
    let t0 = Instant::now();
    steps
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            crate::faults::observe_net(&mut d, ev, t0 + Duration::from_millis(i as u64))
                .into_iter()
                .map(|f| {
                    assert_eq!((f.fault, f.layer), (FAULT, 3));
                    f.state
                })
                .collect()
        })
        .collect()
}

#[test]
fn table() {
    let other = RouteSpec::new("10.251.0.0".parse().unwrap(), 24)
        .via("10.0.0.2".parse().unwrap())
        .dev(3);
    let other_metric = v4().metric(50);
    let other_gw = v4().via("10.0.0.3".parse().unwrap());
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<NetEvent>, Vec<Vec<FaultState>>)> = vec![
        (
            "baseline route deleted opens, re-added clears",
            vec![Del(v4()), Add(v4())],
            vec![vec![O], vec![C]],
        ),
        (
            "IPv6 route",
            vec![Del(v6()), Add(v6())],
            vec![vec![O], vec![C]],
        ),
        (
            "route not in baseline ignored",
            vec![Del(other.clone()), Add(other)],
            vec![vec![], vec![]],
        ),
        (
            "different metric is another route",
            vec![Del(other_metric)],
            vec![vec![]],
        ),
        (
            "different gateway is another route",
            vec![Del(other_gw)],
            vec![vec![]],
        ),
        (
            "oif admin-down: ignored",
            vec![Del(v4_default_on_down_link())],
            vec![vec![]],
        ),
        (
            "oif went down first: ignored",
            vec![L(link(3, "va", false)), Del(v4()), Del(v6())],
            vec![vec![], vec![], vec![]],
        ),
        (
            "repeated delete does not re-open",
            vec![Del(v4()), Del(v4()), Add(v4()), Del(v4())],
            vec![vec![O], vec![], vec![C], vec![O]],
        ),
        (
            "add of a present route is quiet",
            vec![Add(v4())],
            vec![vec![]],
        ),
        (
            "oif coming back up updates an open fault once",
            vec![
                Del(v4()),
                L(link(3, "va", false)),
                L(link(3, "va", true)),
                L(link(3, "va", true)),
            ],
            vec![vec![O], vec![], vec![U], vec![]],
        ),
        (
            "oif unknown (deleted) counts as down",
            vec![
                NetEvent::LinkRemoved {
                    ifindex: 3,
                    name: "va".into(),
                    by: None,
                },
                Del(v4()),
            ],
            vec![vec![], vec![]],
        ),
        (
            "oif up later, then delete opens",
            vec![L(link(4, "vd", true)), Del(v4_default_on_down_link())],
            vec![vec![], vec![O]],
        ),
    ];
    for (name, events, want) in cases {
        assert_eq!(run(&events), want, "{name}");
    }
}

#[test]
fn finding_carries_the_baseline_spec() {
    let mut base = v4();
    base.protocol = crate::netlink::RTPROT_STATIC;
    let mut d = RouteLost::new(vec![base.clone()], &[link(3, "va", true)]);
    let now = Instant::now();
    // the deletion message may differ in non-identity fields; the baseline's are kept
    let f = crate::faults::observe_net(&mut d, &Del(v4()), now);
    assert_eq!(f.len(), 1);
    let spec: RouteSpec = serde_json::from_value(f[0].evidence.json()["route"].clone()).unwrap();
    assert_eq!(spec, base);
    assert_eq!(f[0].subject.route.as_deref(), Some("10.250.0.0/24"));
    assert_eq!(f[0].subject.iface.as_deref(), Some("va"));
    assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.2"));
    assert_eq!(
        f[0].key,
        "route:ipv4 10.250.0.0/24 table 254 via 10.0.0.2 oif 3 metric 0"
    );
    let c = crate::faults::observe_net(&mut d, &Add(v4()), now + Duration::from_millis(7));
    assert_eq!(c[0].state, FaultState::Cleared);
    assert_eq!(c[0].evidence.json()["lost_ms"], 7.0);
    assert_eq!(c[0].key, f[0].key);
}

#[test]
fn accepting_a_loss_clears_it_and_stops_protecting_the_route() {
    let mut d = RouteLost::new(vec![v4()], &[link(3, "va", true)]);
    let t0 = Instant::now();
    let ip = Who {
        portid: 4242,
        pid: Some(4242),
        exited: true,
        ..Who::default()
    };
    let del = NetEvent::RouteDeleted(crate::netlink::Change::by(v4(), Some(ip)));
    let f = crate::faults::observe_net(&mut d, &del, t0);
    assert_eq!(f[0].severity, Severity::Warning);
    let ev = f[0].evidence.json();
    assert_eq!(ev["by"]["pid"], 4242);
    assert_eq!(ev["by_text"], "pid 4242 (exited)");
    assert_eq!(ev["protocol"], "boot");
    assert_eq!(ev["owner"], "configured");
    let acc = NetEvent::BaselineAccepted {
        dropped: vec![v4()],
        added: vec![v6()],
    };
    let c = crate::faults::observe_net(&mut d, &acc, t0 + Duration::from_millis(5));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].state, C);
    assert_eq!(c[0].evidence.json()["accepted"], true);
    // no longer protected; the added route is
    assert!(crate::faults::observe_net(&mut d, &Add(v4()), t0).is_empty());
    assert!(crate::faults::observe_net(&mut d, &Del(v4()), t0).is_empty());
    assert_eq!(crate::faults::observe_net(&mut d, &Del(v6()), t0)[0].state, O);
}

#[test]
fn a_control_planes_route_is_info_and_names_its_owner() {
    let mut bird_route = v4();
    bird_route.protocol = 12;
    let mut d = RouteLost::new(vec![bird_route.clone()], &[link(3, "va", true)]);
    let bird = Who {
        portid: 812,
        pid: Some(812),
        comm: Some("bird".into()),
        ..Who::default()
    };
    let del = NetEvent::RouteDeleted(crate::netlink::Change::by(bird_route, Some(bird)));
    let f = crate::faults::observe_net(&mut d, &del, Instant::now());
    assert_eq!(f[0].severity, Severity::Info);
    let ev = f[0].evidence.json();
    assert_eq!(ev["by_text"], "pid 812 (bird)");
    assert_eq!(ev["by"]["comm"], "bird");
    assert_eq!(ev["protocol"], "bird");
    assert_eq!(ev["owner"], "control_plane");
    // the kernel dropping a configured route is the error it always was
    let mut d = RouteLost::new(vec![v4()], &[link(3, "va", true)]);
    let del = NetEvent::RouteDeleted(crate::netlink::Change::by(v4(), Some(Who::port(0))));
    let f = crate::faults::observe_net(&mut d, &del, Instant::now());
    assert_eq!(f[0].severity, Severity::Error);
    assert_eq!(f[0].evidence.json()["by_text"], "the kernel");
}

/// Ownership is the same in every table and for every shape: a policy-routing table's route,
/// an ECMP route and a nexthop-object route are restored when the kernel dropped them, left
/// to a process that deleted them, and never restored when a control plane owns them.
#[test]
fn other_tables_and_shapes_follow_the_same_ownership() {
    use crate::netlink::NextHop;
    let mut table100 = v4();
    table100.table = 100;
    let hop = |gw: &str, weight| NextHop {
        gateway: Some(gw.parse().unwrap()),
        oif: 3,
        weight,
        onlink: false,
    };
    let ecmp = RouteSpec::new("10.251.0.0".parse().unwrap(), 24)
        .multipath(vec![hop("10.0.0.2", 1), hop("10.0.0.3", 2)]);
    let nhid = RouteSpec::new("10.252.0.0".parse().unwrap(), 24)
        .nhid(10)
        .dev(3);
    let ip = Who {
        portid: 4242,
        pid: Some(4242),
        comm: Some("ip".into()),
        ..Who::default()
    };
    for route in [table100.clone(), ecmp, nhid, v6()] {
        for (by, protocol, severity) in [
            (Who::kernel("flushed while its link was down"), 3, Severity::Error),
            (ip.clone(), 3, Severity::Warning),
            (Who::port(0), 4, Severity::Error),
            (ip.clone(), 12, Severity::Info),
            (Who::port(0), 186, Severity::Info),
        ] {
            let mut r = route.clone();
            r.protocol = protocol;
            let mut d = RouteLost::new(vec![r.clone()], &[link(3, "va", true)]);
            let del = NetEvent::RouteDeleted(crate::netlink::Change::by(r.clone(), Some(by.clone())));
            let f = crate::faults::observe_net(&mut d, &del, Instant::now());
            assert_eq!(f.len(), 1, "{r:?} by {by}");
            assert_eq!(f[0].severity, severity, "{} by {by}", r.key());
            assert_eq!(f[0].evidence.json()["route"]["table"], r.table);
            let want = severity == Severity::Error;
            assert_eq!(restorable(&r, Some(&by)), want, "{} by {by}", r.key());
        }
    }
    // the same prefix in another table is another route
    let mut d = RouteLost::new(vec![table100.clone()], &[link(3, "va", true)]);
    assert!(crate::faults::observe_net(&mut d, &Del(v4()), Instant::now()).is_empty());
    let f = crate::faults::observe_net(&mut d, &Del(table100), Instant::now());
    assert_eq!(
        f[0].key,
        "route:ipv4 10.250.0.0/24 table 100 via 10.0.0.2 oif 3 metric 0"
    );
}
