use super::*;
use crate::netlink::LinkState;
use crate::remedy::routing::fixtures::*;
use crate::remedy::testing::{change, FakeState};

const OWN: u32 = 4026531840;

fn backups(toml: &str) -> RouteFailover {
    let cfg: Config = toml::from_str(toml).unwrap();
    RouteFailover::new(cfg, Some(OWN))
}

fn remedy() -> RouteFailover {
    backups("backups = [{ prefix = \"10.9.0.0/24\", via = \"10.77.131.2\" }]")
}

fn primary() -> RouteSpec {
    RouteSpec::new(ip("10.9.0.0"), 24)
        .via(ip("10.77.130.2"))
        .dev(3)
}

fn links(a_up: bool) -> Vec<LinkState> {
    vec![link(3, "va", a_up), link(4, "vb", true)]
}

fn ctx<'a>(
    s: &'a FakeState,
    links: &'a [LinkState],
    routes: &'a [RouteSpec],
    baseline: &'a [RouteSpec],
) -> PlanContext<'a> {
    PlanContext {
        links,
        routes,
        baseline,
        state: s,
        recurrences: 0,
    }
}

#[test]
fn link_down_adds_the_backup_with_an_offset_metric_until_clear() {
    let s = FakeState::default();
    let l = links(false);
    let routes = [connected("10.77.131.0", 24, 4)];
    let base = [primary()];
    let f = on_iface("link_down", "va", 3);
    let p = change(&remedy(), &f, &ctx(&s, &l, &routes, &base));
    let backup = RouteSpec::new(ip("10.9.0.0"), 24)
        .via(ip("10.77.131.2"))
        .dev(4)
        .metric(10);
    assert_eq!(p.remedy.as_str(), "route_failover");
    assert_eq!(p.apply, Action::AddRoute(backup.clone()));
    assert_eq!(p.inverse, Action::DelRoute(backup.clone()));
    assert_eq!(
        p.verify,
        Verify::All {
            checks: vec![
                Verify::RoutePresent(backup.clone()),
                Verify::RouteVia {
                    dst: ip("10.9.0.0"),
                    oif: 4,
                    gateway: Some(ip("10.77.131.2"))
                }
            ]
        }
    );
    assert_eq!(p.targets, ["route:10.9.0.0/24"]);
    assert_eq!(p.effect, Effect::InPlace);
    assert_eq!(
        p.lifetime,
        Lifetime::UntilClear {
            max_ms: 24 * 3600 * 1000
        }
    );
    assert_eq!(p.before["routes"][0]["present"], false);
    assert_eq!(p.after["routes"][0]["key"], backup.key());
}

#[test]
fn carrier_loss_replaces_the_linkdown_primary_in_place() {
    let s = FakeState::default();
    let l = [
        LinkState {
            oper_up: false,
            ..link(3, "va", true)
        },
        link(4, "vb", true),
    ];
    let routes = [connected("10.77.131.0", 24, 4), primary()];
    let base = [primary()];
    let f = on_iface("link_down", "va", 3);
    let p = change(&remedy(), &f, &ctx(&s, &l, &routes, &base));
    let to = primary().via(ip("10.77.131.2")).dev(4);
    assert_eq!(
        p.apply,
        Action::ReplaceRoute {
            from: primary(),
            to: to.clone()
        }
    );
    assert_eq!(
        p.inverse,
        Action::ReplaceRoute {
            from: to,
            to: primary()
        }
    );
    assert_eq!(p.before["routes"][0]["present"], true);
}

#[test]
fn link_down_table() {
    let s = FakeState::default();
    let f = on_iface("link_down", "va", 3);
    let routes = [connected("10.77.131.0", 24, 4)];
    let base = [primary()];
    let down = links(false);
    // no backups configured: not on the ladder
    let none = RouteFailover::new(Config::default(), Some(OWN));
    assert_eq!(none.plan(&f, &ctx(&s, &down, &routes, &base)), None);
    // the link carries no baseline route with a backup
    let other = on_iface("link_down", "vc", 9);
    assert_eq!(remedy().plan(&other, &ctx(&s, &down, &routes, &base)), None);
    // the backup gateway is not on any up link
    let no_conn: [RouteSpec; 0] = [];
    let p = remedy().plan(&f, &ctx(&s, &down, &no_conn, &base));
    assert!(
        matches!(&p, Some(Plan::Skip(r)) if r.contains("not reachable")),
        "{p:?}"
    );
    // another up link already carries the prefix
    let alt = RouteSpec::new(ip("10.9.0.0"), 24)
        .via(ip("10.77.131.9"))
        .dev(4)
        .metric(50);
    let carried = [connected("10.77.131.0", 24, 4), alt];
    let p = remedy().plan(&f, &ctx(&s, &down, &carried, &base));
    assert!(
        matches!(&p, Some(Plan::Skip(r)) if r.contains("already carried")),
        "{p:?}"
    );
    // dev names the link; a dev that is down is not a nexthop
    let by_dev =
        backups("backups = [{ prefix = \"10.9.0.0/24\", via = \"10.77.131.2\", dev = \"vb\" }]");
    assert!(by_dev
        .plan(&f, &ctx(&s, &down, &no_conn, &base))
        .is_some_and(|p| p.change().is_some()));
    let vb_down = [link(3, "va", false), link(4, "vb", false)];
    assert!(matches!(
        by_dev.plan(&f, &ctx(&s, &vb_down, &no_conn, &base)),
        Some(Plan::Skip(_))
    ));
    // another fault
    let lost = on_iface("route_lost", "va", 3);
    assert_eq!(remedy().plan(&lost, &ctx(&s, &down, &routes, &base)), None);
}

#[test]
fn link_down_moves_every_configured_route_and_the_default() {
    let s = FakeState::default();
    let l = links(false);
    let routes = [connected("10.77.131.0", 24, 4)];
    let def = RouteSpec::new(ip("0.0.0.0"), 0)
        .via(ip("10.77.130.2"))
        .dev(3)
        .metric(100);
    let unconfigured = RouteSpec::new(ip("10.8.0.0"), 16)
        .via(ip("10.77.130.2"))
        .dev(3);
    let base = [primary(), def, unconfigured];
    let r = backups(
        "backups = [{ prefix = \"10.9.0.0/24\", via = \"10.77.131.2\" }, \
         { prefix = \"default\", via = \"10.77.131.3\" }]\nmetric_offset = 1",
    );
    let p = change(
        &r,
        &on_iface("link_down", "va", 3),
        &ctx(&s, &l, &routes, &base),
    );
    assert_eq!(p.targets, ["route:10.9.0.0/24", "route:default"]);
    let Action::All { actions, undo } = &p.apply else {
        panic!("{:?}", p.apply)
    };
    let Action::AddRoute(d) = &actions[1] else {
        panic!()
    };
    assert_eq!(
        (d.priority, d.gateway),
        (Some(101), Some(ip("10.77.131.3")))
    );
    assert_eq!(undo[1], Action::DelRoute(d.clone()));
    let Verify::All { checks } = &p.verify else {
        panic!()
    };
    assert!(checks.contains(&Verify::RouteVia {
        dst: ip("128.0.0.0"),
        oif: 4,
        gateway: Some(ip("10.77.131.3"))
    }));
}

#[test]
fn storm_replaces_the_route_to_the_destination_and_back_exactly() {
    let s = FakeState::default();
    let l = links(true);
    let cur = primary().metric(5);
    let routes = [
        connected("10.77.130.0", 24, 3),
        connected("10.77.131.0", 24, 4),
        cur.clone(),
    ];
    let mut f = to_addr("retransmit_storm", Some(OWN), "10.9.0.7");
    let p = change(&remedy(), &f, &ctx(&s, &l, &routes, &[]));
    let to = cur.clone().via(ip("10.77.131.2")).dev(4);
    assert_eq!(
        p.apply,
        Action::ReplaceRoute {
            from: cur.clone(),
            to: to.clone()
        }
    );
    assert_eq!(
        p.inverse,
        Action::ReplaceRoute {
            from: to.clone(),
            to: cur.clone()
        }
    );
    assert_eq!(
        p.verify,
        Verify::All {
            checks: vec![Verify::RoutePresent(to), Verify::RouteAbsent(cur.clone())]
        }
    );
    assert_eq!(p.effect, Effect::Clears);
    assert_eq!(p.lifetime, Lifetime::Permanent);
    assert_eq!(p.targets, ["route:10.9.0.0/24"]);
    // no destination in the finding: the configured prefixes
    f.subject.addr = None;
    assert_eq!(
        change(&remedy(), &f, &ctx(&s, &l, &routes, &[])).targets,
        ["route:10.9.0.0/24"]
    );
    // already through the backup
    let via_backup = [
        connected("10.77.131.0", 24, 4),
        cur.via(ip("10.77.131.2")).dev(4),
    ];
    assert!(matches!(
        remedy().plan(&f, &ctx(&s, &l, &via_backup, &[])),
        Some(Plan::Skip(_))
    ));
    // a destination without a configured backup: not ours
    let g = to_addr("retransmit_storm", Some(OWN), "10.77.130.2");
    assert_eq!(remedy().plan(&g, &ctx(&s, &l, &routes, &[])), None);
    // another namespace: skipped with the reason
    let h = to_addr("retransmit_storm", Some(7), "10.9.0.7");
    let p = remedy().plan(&h, &ctx(&s, &l, &routes, &[]));
    assert!(
        matches!(&p, Some(Plan::Skip(r)) if r.contains("namespace 7")),
        "{p:?}"
    );
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c, Config::default());
    assert!(toml::from_str::<Config>("bogus = 1").is_err());
    assert!(
        toml::from_str::<Config>("backups = [{ prefix = \"x\", via = \"10.0.0.1\" }]").is_err()
    );
}
