//! One test per safety rule; each fails if its rule is removed.
use std::net::IpAddr;

use super::*;
use crate::model::Subject;
use crate::remedy::{Action, Effect, Lifetime, RemedyId, Verify};

/// A plan of `remedy` (check_plan ignores which; a name that is no remedy, e.g. "x", plans
/// as `link_up`).
fn plan(remedy: &str, targets: &[Target]) -> PlannedChange {
    PlannedChange {
        remedy: remedy.parse::<RemedyId>().unwrap_or(RemedyId::LinkUp),
        subject: Subject::default(),
        targets: targets.to_vec(),
        apply: Action::Nothing,
        inverse: Action::Nothing,
        verify: Verify::Nothing,
        effect: Effect::InPlace,
        lifetime: Lifetime::Permanent,
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn iface(name: &str) -> Target {
    Target::Iface(name.into())
}

/// `route:addr/len`, kept as written (a length of 0 stays a prefix, not `default`).
fn route(addr: &str, prefix_len: u8) -> Target {
    Target::Route(RouteDst::Prefix {
        addr: ip(addr),
        prefix_len,
    })
}

fn host() -> Host {
    Host {
        default_route_interfaces: ["eth0".to_string()].into(),
        managed_interfaces: 4,
        protected_sources: super::super::peers::Protected::build(
            &SafetyConfig::default().protected_sources,
            &super::super::peers::Live {
                gateways: vec![ip("10.0.0.1")],
                handshaking: vec![ip("10.9.0.7")],
                ..Default::default()
            },
        ),
    }
}

#[test]
fn protected_sources_are_never_limited() {
    let cfg = SafetyConfig::default();
    let src = |a: &str| Target::Src(ip(a));
    let e = check_plan(&cfg, &host(), &plan("x", &[src("10.0.0.1")])).unwrap_err();
    assert!(
        e.contains("source 10.0.0.1 is protected") && e.contains("gateway"),
        "{e}"
    );
    let e = check_plan(
        &cfg,
        &host(),
        &plan("x", &[src("198.51.100.1"), src("10.9.0.7")]),
    )
    .unwrap_err();
    assert!(e.contains("10.9.0.7") && e.contains("handshakes"), "{e}");
    assert!(check_plan(&cfg, &host(), &plan("x", &[src("198.51.100.1")])).is_ok());
    // Without the rule's input (an empty set), the same source is not protected.
    let bare = Host {
        protected_sources: Default::default(),
        ..host()
    };
    assert!(check_plan(&cfg, &bare, &plan("x", &[src("10.0.0.1")])).is_ok());
}

#[test]
fn protected_sources_entries_are_validated() {
    let mut cfg = SafetyConfig::default();
    cfg.protected_sources.push("192.0.2.0/24".into());
    assert!(cfg.validate().is_ok());
    cfg.protected_sources.push("10.0.0.0/40".into());
    let e = cfg.validate().unwrap_err();
    assert!(
        e.starts_with("safety.protected_sources: \"10.0.0.0/40\""),
        "{e}"
    );
}

#[test]
fn empty_target_set_is_refused() {
    let e = check_plan(&SafetyConfig::default(), &host(), &plan("x", &[])).unwrap_err();
    assert!(e.contains("empty target set"), "{e}");
}

#[test]
fn wildcards_mean_all_and_are_refused() {
    let cfg = SafetyConfig::default();
    for t in [
        Target::Dst(ip("0.0.0.0")),
        Target::Dst(ip("::")),
        route("::", 0),
        route("0.0.0.0", 0),
        Target::RestoreRoute {
            dst: RouteDst::Prefix {
                addr: ip("0.0.0.0"),
                prefix_len: 0,
            },
            key: "ipv4 0.0.0.0/0 table 254".into(),
        },
        Target::Src(ip("0.0.0.0")),
        Target::Src(ip("::")),
        Target::Port(0),
        iface("all"),
        iface("*"),
        iface(""),
        Target::Sysctl("*".into()),
        Target::Sysctl("".into()),
    ] {
        let e = check_plan(&cfg, &host(), &plan("x", std::slice::from_ref(&t))).unwrap_err();
        assert!(e.contains("means \"all\""), "{t}: {e}");
    }
    assert!(check_plan(&cfg, &host(), &plan("x", &[Target::Dst(ip("10.0.0.1"))])).is_ok());
    assert!(check_plan(&cfg, &host(), &plan("x", &[route("10.0.0.0", 8)])).is_ok());
}

#[test]
fn too_many_targets_are_refused() {
    let cfg = SafetyConfig {
        max_targets: 2,
        ..Default::default()
    };
    let ok = plan(
        "x",
        &[Target::Src(ip("10.0.0.11")), Target::Src(ip("10.0.0.2"))],
    );
    assert!(check_plan(&cfg, &host(), &ok).is_ok());
    let three = ["10.0.0.11", "10.0.0.2", "10.0.0.3"].map(|a| Target::Src(ip(a)));
    let e = check_plan(&cfg, &host(), &plan("x", &three)).unwrap_err();
    assert!(e.contains("max_targets"), "{e}");
}

#[test]
fn more_than_the_interface_fraction_is_refused() {
    let cfg = SafetyConfig::default(); // 0.5 of 4 managed
    assert!(check_plan(&cfg, &host(), &plan("x", &[iface("a"), iface("b")])).is_ok());
    let e = check_plan(
        &cfg,
        &host(),
        &plan("x", &[iface("a"), iface("b"), iface("c")]),
    )
    .unwrap_err();
    assert!(e.contains("max_interface_fraction"), "{e}");
}

#[test]
fn loopback_and_configured_interfaces_are_protected() {
    let cfg = SafetyConfig {
        protected_interfaces: vec!["mgmt0".into()],
        ..Default::default()
    };
    for i in [iface("lo"), iface("mgmt0")] {
        let e = check_plan(&cfg, &host(), &plan("link_up", &[i])).unwrap_err();
        assert!(e.contains("is protected"), "{e}");
    }
    assert!(check_plan(&cfg, &host(), &plan("link_up", &[iface("va")])).is_ok());
}

#[test]
fn the_default_route_interface_is_protected_unless_allowed() {
    let mut cfg = SafetyConfig::default();
    let e = check_plan(&cfg, &host(), &plan("x", &[iface("eth0")])).unwrap_err();
    assert!(e.contains("default route"), "{e}");
    cfg.protect_default_route_interface = false;
    assert!(check_plan(&cfg, &host(), &plan("x", &[iface("eth0")])).is_ok());
}

#[test]
fn protected_ports_are_refused() {
    let cfg = SafetyConfig::default(); // 22
    let e = check_plan(&cfg, &host(), &plan("xdp_port_limit", &[Target::Port(22)])).unwrap_err();
    assert!(e.contains("port 22 is protected"), "{e}");
    assert!(check_plan(&cfg, &host(), &plan("xdp_port_limit", &[Target::Port(80)])).is_ok());
}

#[test]
fn protected_routes_are_refused_except_to_restore_them() {
    let cfg = SafetyConfig {
        protected_routes: vec!["10.0.0.0/8".into(), "default".into()],
        ..Default::default()
    };
    for r in [route("10.9.0.0", 24), Target::Route(RouteDst::Default)] {
        let e = check_plan(
            &cfg,
            &host(),
            &plan("route_dampen", std::slice::from_ref(&r)),
        )
        .unwrap_err();
        assert!(e.contains("is protected"), "{r}: {e}");
    }
    assert!(check_plan(
        &cfg,
        &host(),
        &plan("route_dampen", &[route("192.168.0.0", 24)])
    )
    .is_ok());
    let restore = Target::RestoreRoute {
        dst: RouteDst::new(ip("10.9.0.0"), 24),
        key: "ipv4 10.9.0.0/24 table 254".into(),
    };
    assert!(check_plan(&cfg, &host(), &plan("route_restore", &[restore])).is_ok());
}

/// The old rules parsed `kind:name` strings and skipped every check for a kind they did not
/// know (`_ => {}`): `ifce:lo` or a route changed by a remedy named `route_restore` went
/// through. Now every kind has a rule, and a protected subject is refused whichever remedy
/// plans the change.
#[test]
fn every_kind_is_checked_whoever_plans_it() {
    let cfg = SafetyConfig {
        protected_interfaces: vec!["mgmt0".into()],
        protected_routes: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    // One refused and one allowed instance per kind. The match has no `_` arm: a new kind
    // does not compile until it is listed here.
    let cases = |t: &Target| -> (Target, Target) {
        match t {
            Target::Iface(_) => (iface("mgmt0"), iface("va")),
            Target::Route(_) => (route("10.9.0.0", 24), route("192.168.0.0", 24)),
            Target::RestoreRoute { .. } => (
                Target::RestoreRoute {
                    dst: RouteDst::Prefix {
                        addr: ip("::"),
                        prefix_len: 0,
                    },
                    key: "ipv6 ::/0 table 254".into(),
                },
                Target::RestoreRoute {
                    dst: RouteDst::new(ip("10.9.0.0"), 24),
                    key: "ipv4 10.9.0.0/24 table 254".into(),
                },
            ),
            Target::Sysctl(_) => (
                Target::Sysctl("all".into()),
                Target::Sysctl("net.ipv4.tcp_tw_reuse".into()),
            ),
            Target::Src(_) => (Target::Src(ip("::")), Target::Src(ip("10.0.0.7"))),
            Target::Port(_) => (Target::Port(22), Target::Port(80)),
            Target::Dst(_) => (Target::Dst(ip("0.0.0.0")), Target::Dst(ip("10.0.0.7"))),
        }
    };
    let kinds = [
        iface("x"),
        Target::Route(RouteDst::Default),
        Target::RestoreRoute {
            dst: RouteDst::Default,
            key: String::new(),
        },
        Target::Sysctl(String::new()),
        Target::Src(ip("10.0.0.1")),
        Target::Port(1),
        Target::Dst(ip("10.0.0.1")),
    ];
    for kind in &kinds {
        let (refused, allowed) = cases(kind);
        for remedy in ["x", "link_up", "route_restore", "route_dampen", "sysctl"] {
            let e = check_plan(&cfg, &host(), &plan(remedy, std::slice::from_ref(&refused)));
            assert!(e.is_err(), "{remedy}: {refused} went through");
            let ok = check_plan(&cfg, &host(), &plan(remedy, std::slice::from_ref(&allowed)));
            assert!(ok.is_ok(), "{remedy}: {allowed}: {ok:?}");
        }
    }
}

#[test]
fn an_invalid_route_prefix_is_refused_rather_than_let_through() {
    let cfg = SafetyConfig {
        protected_routes: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    let bad = route("10.9.0.0", 33);
    let e = check_plan(&cfg, &host(), &plan("route_dampen", &[bad])).unwrap_err();
    assert!(e.contains("is protected"), "{e}");
}

#[test]
fn config_validation_names_the_key() {
    let bad = SafetyConfig {
        max_interface_fraction: 2.0,
        ..Default::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .starts_with("safety.max_interface_fraction"));
    let bad = SafetyConfig {
        protected_routes: vec!["nope".into()],
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("\"nope\""));
    assert!(SafetyConfig::default().validate().is_ok());
}

fn cfg_budget() -> SafetyConfig {
    SafetyConfig {
        per_subject_max: 2,
        per_subject_cooldown_s: 10,
        per_remedy_max: 3,
        window_s: 100,
        global_max_per_hour: 4,
        repair_max_per_hour: 4,
        ..Default::default()
    }
}

#[test]
fn cooldown_per_subject() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    assert!(b.check(&cfg, RemedyId::LinkUp, "iface:va", t0).is_ok());
    b.record(RemedyId::LinkUp, "iface:va", t0);
    let e = b
        .check(
            &cfg,
            RemedyId::LinkUp,
            "iface:va",
            t0 + Duration::from_secs(9),
        )
        .unwrap_err();
    assert!(e.starts_with("cooldown"), "{e}");
    // another subject, another remedy: not cooling down
    assert!(b
        .check(
            &cfg,
            RemedyId::LinkUp,
            "iface:vb",
            t0 + Duration::from_secs(1)
        )
        .is_ok());
    assert!(b
        .check(&cfg, RemedyId::RouteRestore, "iface:va", t0)
        .is_ok());
    assert!(b
        .check(
            &cfg,
            RemedyId::LinkUp,
            "iface:va",
            t0 + Duration::from_secs(11)
        )
        .is_ok());
}

#[test]
fn per_subject_budget_within_the_window() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    b.record(RemedyId::LinkUp, "iface:va", t0);
    b.record(RemedyId::LinkUp, "iface:va", t0 + Duration::from_secs(20));
    let e = b
        .check(
            &cfg,
            RemedyId::LinkUp,
            "iface:va",
            t0 + Duration::from_secs(40),
        )
        .unwrap_err();
    assert!(e.contains("per_subject_max"), "{e}");
    // the first action leaves the window
    assert!(b
        .check(
            &cfg,
            RemedyId::LinkUp,
            "iface:va",
            t0 + Duration::from_secs(101)
        )
        .is_ok());
}

#[test]
fn per_remedy_budget_across_subjects() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    for s in ["a", "b", "c"] {
        b.record(RemedyId::Sysctl, s, t0);
    }
    let e = b.check(&cfg, RemedyId::Sysctl, "d", t0).unwrap_err();
    assert!(e.contains("per_remedy_max"), "{e}");
    assert!(b.check(&cfg, RemedyId::LinkUp, "d", t0).is_ok());
}

#[test]
fn global_budget_per_hour() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    for (r, s) in [
        (RemedyId::XdpSourceLimit, "1"),
        (RemedyId::Sysctl, "1"),
        (RemedyId::RouteFailover, "1"),
        (RemedyId::RouteDampen, "1"),
    ] {
        b.record(r, s, t0);
    }
    assert_eq!(b.global_left(&cfg, t0), 0);
    let e = b
        .check(&cfg, RemedyId::RouteCc, "1", t0 + Duration::from_secs(1))
        .unwrap_err();
    assert!(e.contains("global_max_per_hour"), "{e}");
    // issue 14: the layer 2/3 repairs have their own pool, which mitigations cannot drain
    assert!(b.check(&cfg, RemedyId::RouteRestore, "1", t0).is_ok());
    assert!(b.check(&cfg, RemedyId::LinkUp, "1", t0).is_ok());
    for s in ["a", "b", "c", "d"] {
        b.record(RemedyId::LinkUp, s, t0);
    }
    let e = b.check(&cfg, RemedyId::RouteRestore, "1", t0).unwrap_err();
    assert!(e.contains("repair_max_per_hour"), "{e}");
    assert!(b
        .check(&cfg, RemedyId::RouteCc, "1", t0 + Duration::from_secs(3601))
        .is_ok());
}

#[test]
fn other_namespaces_only_when_in_scope() {
    let mut cfg = SafetyConfig::default();
    assert!(netns_allowed(&cfg, 7, None).is_ok());
    assert!(netns_allowed(&cfg, 7, Some(7)).is_ok());
    let e = netns_allowed(&cfg, 7, Some(9)).unwrap_err();
    assert!(e.contains("outside safety.namespaces"), "{e}");
    cfg.namespaces = NetnsScope::Keyword(ScopeKeyword::All);
    assert!(netns_allowed(&cfg, 7, Some(9)).is_ok());
    // a named namespace matches by inode; this process's own namespace file stands in
    let me = crate::netns::current().unwrap();
    cfg.namespaces = NetnsScope::Named(vec!["/proc/self/ns/net".into()]);
    assert!(netns_allowed(&cfg, 1, Some(me)).is_ok());
    assert!(netns_allowed(&cfg, 1, Some(me.wrapping_add(1))).is_err());
}

#[test]
fn namespaces_parse_as_keyword_or_list() {
    let c: SafetyConfig = toml::from_str("namespaces = \"all\"").unwrap();
    assert_eq!(c.namespaces, NetnsScope::Keyword(ScopeKeyword::All));
    let c: SafetyConfig = toml::from_str("namespaces = [\"pod-a\"]").unwrap();
    assert_eq!(c.namespaces, NetnsScope::Named(vec!["pod-a".into()]));
    assert!(toml::from_str::<SafetyConfig>("namespaces = \"some\"").is_err());
}
