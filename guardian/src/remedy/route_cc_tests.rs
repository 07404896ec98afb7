use super::*;
use crate::netlink::LinkState;
use crate::remedy::routing::fixtures::*;
use crate::remedy::testing::{change, FakeState};

const OWN: u32 = 4026531840;

fn state() -> FakeState {
    FakeState::default().with_sysctl(Some(OWN), AVAILABLE, "reno cubic bbr")
}

fn ctx<'a>(s: &'a FakeState, links: &'a [LinkState], routes: &'a [RouteSpec]) -> PlanContext<'a> {
    PlanContext {
        links,
        routes,
        baseline: &[],
        state: s,
        recurrences: 0,
    }
}

fn net() -> RouteSpec {
    RouteSpec::new(ip("10.77.137.0"), 24)
        .via(ip("10.77.136.2"))
        .dev(3)
        .metric(20)
}

fn cc(toml: &str) -> RouteCc {
    RouteCc::new(toml::from_str(toml).unwrap(), Some(OWN))
}

#[test]
fn a_host_route_with_the_algorithm_through_the_current_nexthop() {
    let s = state();
    let l = [link(3, "va", true)];
    let routes = [connected("10.77.136.0", 24, 3), net()];
    let f = to_addr("retransmit_storm", Some(OWN), "10.77.137.2");
    let p = change(&cc(""), &f, &ctx(&s, &l, &routes));
    let want = RouteSpec::new(ip("10.77.137.2"), 32)
        .via(ip("10.77.136.2"))
        .dev(3)
        .metric(20)
        .congctl("bbr");
    assert_eq!(p.apply, Action::AddRoute(want.clone()));
    assert_eq!(p.inverse, Action::DelRoute(want.clone()));
    assert_eq!(p.verify, Verify::RoutePresent(want));
    assert_eq!(p.targets, ["route:10.77.137.2/32"]);
    assert_eq!(p.effect, Effect::Clears);
    assert_eq!(p.lifetime, Lifetime::Permanent);
    assert_eq!(p.before["routes"][0]["present"], false);
}

#[test]
fn configured_prefixes_replace_the_route_in_place_and_back() {
    let s = state();
    let l = [link(3, "va", true)];
    let routes = [connected("10.77.136.0", 24, 3), net()];
    let mut f = to_addr("retransmit_storm", Some(OWN), "x");
    f.subject.addr = None;
    let p = change(
        &cc("algo = \"reno\"\nprefixes = [\"10.77.137.0/24\"]"),
        &f,
        &ctx(&s, &l, &routes),
    );
    let to = net().congctl("reno");
    assert_eq!(
        p.apply,
        Action::ReplaceRoute {
            from: net(),
            to: to.clone()
        }
    );
    assert_eq!(
        p.inverse,
        Action::ReplaceRoute {
            from: to.clone(),
            to: net()
        }
    );
    assert_eq!(p.verify, Verify::RoutePresent(to));
    assert_eq!(p.before["routes"][0]["present"], true);
}

#[test]
fn table_of_skips_and_non_plans() {
    let l = [link(3, "va", true)];
    let routes = [connected("10.77.136.0", 24, 3), net()];
    let f = to_addr("retransmit_storm", Some(OWN), "10.77.137.2");
    let skip = |r: &RouteCc, s: &FakeState, f: &Finding, routes: &[RouteSpec]| match r
        .plan(f, &ctx(s, &l, routes))
    {
        Some(Plan::Skip(why)) => why,
        other => panic!("{other:?}"),
    };
    // the algorithm is not available, or the list cannot be read
    let s = state();
    assert!(skip(&cc("algo = \"dctcp\""), &s, &f, &routes).contains("not available"));
    assert!(skip(&cc(""), &FakeState::default(), &f, &routes).contains("cannot read"));
    // no destination and no configured prefixes
    let mut bare = f.clone();
    bare.subject.addr = None;
    assert!(skip(&cc(""), &s, &bare, &routes).contains("prefixes is empty"));
    // already using it
    let host = [
        net(),
        RouteSpec::new(ip("10.77.137.2"), 32).dev(3).congctl("bbr"),
    ];
    assert!(skip(&cc(""), &s, &f, &host).contains("already uses bbr"));
    // no route
    assert!(skip(&cc(""), &s, &f, &[]).contains("no route"));
    // another namespace
    let other_ns = to_addr("retransmit_storm", Some(5), "10.77.137.2");
    assert!(skip(&cc(""), &s, &other_ns, &routes).contains("namespace 5"));
    // another fault
    let mut other = f.clone();
    other.fault = crate::faults::FaultId::MtuBlackhole;
    assert_eq!(cc("").plan(&other, &ctx(&s, &l, &routes)), None);
}
