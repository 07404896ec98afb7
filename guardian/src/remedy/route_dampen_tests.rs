use super::*;
use crate::netlink::LinkState;
use crate::remedy::routing::fixtures::*;
use crate::remedy::testing::{change, FakeState};

fn primary() -> RouteSpec {
    RouteSpec::new(ip("10.9.0.0"), 24)
        .via(ip("10.77.132.2"))
        .dev(3)
}

fn alt() -> RouteSpec {
    RouteSpec::new(ip("10.9.0.0"), 24)
        .via(ip("10.77.133.2"))
        .dev(4)
        .metric(100)
}

fn links() -> Vec<LinkState> {
    vec![link(3, "va", true), link(4, "vb", true)]
}

fn ctx<'a>(
    s: &'a FakeState,
    links: &'a [LinkState],
    routes: &'a [RouteSpec],
    recurrences: u32,
) -> PlanContext<'a> {
    PlanContext {
        links,
        routes,
        baseline: &[],
        state: s,
        recurrences,
    }
}

fn half(dst: &str) -> RouteSpec {
    RouteSpec::new(ip(dst), 25)
        .via(ip("10.77.133.2"))
        .dev(4)
        .metric(100)
}

#[test]
fn adds_both_halves_through_the_alternative_for_the_hold() {
    let s = FakeState::default();
    let l = links();
    let routes = [connected("10.77.133.0", 24, 4), primary(), alt()];
    let f = on_iface("link_flapping", "va", 3);
    let p = change(&RouteDampen::default(), &f, &ctx(&s, &l, &routes, 0));
    let (lo, hi) = (half("10.9.0.0"), half("10.9.0.128"));
    assert_eq!(
        p.apply,
        Action::All {
            actions: vec![Action::AddRoute(lo.clone()), Action::AddRoute(hi.clone())],
            undo: vec![Action::DelRoute(lo.clone()), Action::DelRoute(hi.clone())],
        }
    );
    assert_eq!(
        p.inverse,
        Action::All {
            actions: vec![Action::DelRoute(hi.clone()), Action::DelRoute(lo.clone())],
            undo: vec![Action::AddRoute(hi.clone()), Action::AddRoute(lo.clone())],
        }
    );
    assert_eq!(
        p.verify,
        Verify::All {
            checks: vec![
                Verify::RoutePresent(lo),
                Verify::RoutePresent(hi),
                Verify::RouteVia {
                    dst: ip("10.9.0.0"),
                    oif: 4,
                    gateway: Some(ip("10.77.133.2"))
                }
            ]
        }
    );
    assert_eq!(p.targets, ["route:10.9.0.0/24"]);
    assert_eq!(p.lifetime, Lifetime::Ttl { ms: 30_000 });
    assert_eq!(p.effect, Effect::InPlace);
    assert_eq!(p.before["routes"][0]["key"], primary().key());
    // the hold doubles per recurrence, capped
    let p = change(&RouteDampen::default(), &f, &ctx(&s, &l, &routes, 2));
    assert_eq!(p.lifetime, Lifetime::Ttl { ms: 120_000 });
    let p = change(&RouteDampen::default(), &f, &ctx(&s, &l, &routes, 40));
    assert_eq!(p.lifetime, Lifetime::Ttl { ms: 600_000 });
}

#[test]
fn routes_flushed_by_the_kernel_come_from_the_baseline_and_a_default_splits_in_two() {
    let s = FakeState::default();
    let l = links();
    let def = RouteSpec::new(ip("0.0.0.0"), 0)
        .via(ip("10.77.132.2"))
        .dev(3);
    let base = [def];
    // only a covering route through the other link: the default via vb at metric 200
    let other_def = RouteSpec::new(ip("0.0.0.0"), 0)
        .via(ip("10.77.133.2"))
        .dev(4)
        .metric(200);
    let routes = [connected("10.77.133.0", 24, 4), other_def];
    let c = PlanContext {
        links: &l,
        routes: &routes,
        baseline: &base,
        state: &s,
        recurrences: 0,
    };
    let p = change(
        &RouteDampen::default(),
        &on_iface("link_flapping", "va", 3),
        &c,
    );
    let Action::All { actions, .. } = &p.apply else {
        panic!()
    };
    let dsts: Vec<String> = actions
        .iter()
        .map(|a| match a {
            Action::AddRoute(r) => {
                format!("{}/{} m{}", r.dst, r.prefix_len, r.priority.unwrap_or(0))
            }
            _ => panic!(),
        })
        .collect();
    assert_eq!(dsts, ["0.0.0.0/1 m200", "128.0.0.0/1 m200"]);
    assert_eq!(p.targets, ["route:default"]);
}

#[test]
fn table_of_skips_and_non_plans() {
    let s = FakeState::default();
    let l = links();
    let f = on_iface("link_flapping", "va", 3);
    let skip = |routes: &[RouteSpec], l: &[LinkState]| match RouteDampen::default()
        .plan(&f, &ctx(&s, l, routes, 0))
    {
        Some(Plan::Skip(r)) => r,
        other => panic!("{other:?}"),
    };
    // the only route of the prefix is on the flapping link
    assert!(skip(&[primary()], &l).contains("no alternative"));
    // the alternative's link is down
    let vb_down = [link(3, "va", true), link(4, "vb", false)];
    assert!(skip(&[primary(), alt()], &vb_down).contains("no alternative"));
    // a host route has no halves
    let host = RouteSpec::new(ip("10.9.0.7"), 32)
        .via(ip("10.77.132.2"))
        .dev(3);
    assert!(skip(&[host, alt()], &l).contains("host route"));
    // the alternative is already preferred
    let preferred = alt().metric(0);
    let primary50 = primary().metric(50);
    assert!(skip(&[primary50, preferred], &l).contains("not in use"));
    // no protected route on the link (only the kernel's connected route): not ours
    let none = RouteDampen::default().plan(&f, &ctx(&s, &l, &[connected("10.77.132.0", 24, 3)], 0));
    assert_eq!(none, None);
    // another fault
    let down = on_iface("link_down", "va", 3);
    assert_eq!(
        RouteDampen::default().plan(&down, &ctx(&s, &l, &[primary(), alt()], 0)),
        None
    );
}

#[test]
fn halves_take_a_free_metric() {
    let s = FakeState::default();
    let l = links();
    let taken = half("10.9.0.0");
    let routes = [primary(), alt(), taken];
    let p = change(
        &RouteDampen::default(),
        &on_iface("link_flapping", "va", 3),
        &ctx(&s, &l, &routes, 0),
    );
    let Action::All { actions, .. } = &p.apply else {
        panic!()
    };
    assert_eq!(actions[0], Action::AddRoute(half("10.9.0.0").metric(101)));
    assert_eq!(actions[1], Action::AddRoute(half("10.9.0.128")));
}

#[test]
fn config_defaults_and_toml() {
    let c: Config = toml::from_str("hold_ms = 2000").unwrap();
    assert_eq!(c.hold(0), 2000);
    assert_eq!(c.hold(3), 16_000);
    assert!(toml::from_str::<Config>("hold = 1").is_err());
}
