//! One test per safety rule; each fails if its rule is removed.
use super::*;
use crate::output::Subject;
use crate::remedy::{Action, Effect, Lifetime, Verify};

fn plan(remedy: &'static str, targets: &[&str]) -> PlannedChange {
    PlannedChange {
        remedy,
        subject: Subject::default(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        apply: Action::Nothing,
        inverse: Action::Nothing,
        verify: Verify::Nothing,
        effect: Effect::InPlace,
        lifetime: Lifetime::Permanent,
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
    }
}

fn host() -> Host {
    Host {
        default_route_interfaces: ["eth0".to_string()].into(),
        managed_interfaces: 4,
    }
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
        "dst:0.0.0.0/0",
        "route:::/0",
        "src:*",
        "port:0",
        "iface:all",
        "dst:",
    ] {
        let e = check_plan(&cfg, &host(), &plan("x", &[t])).unwrap_err();
        assert!(e.contains("means \"all\""), "{t}: {e}");
    }
    assert!(check_plan(&cfg, &host(), &plan("x", &["dst:10.0.0.0/8"])).is_ok());
}

#[test]
fn too_many_targets_are_refused() {
    let cfg = SafetyConfig {
        max_targets: 2,
        ..Default::default()
    };
    let ok = plan("x", &["src:10.0.0.1", "src:10.0.0.2"]);
    assert!(check_plan(&cfg, &host(), &ok).is_ok());
    let e = check_plan(&cfg, &host(), &plan("x", &["src:a", "src:b", "src:c"])).unwrap_err();
    assert!(e.contains("max_targets"), "{e}");
}

#[test]
fn more_than_the_interface_fraction_is_refused() {
    let cfg = SafetyConfig::default(); // 0.5 of 4 managed
    assert!(check_plan(&cfg, &host(), &plan("x", &["iface:a", "iface:b"])).is_ok());
    let e = check_plan(
        &cfg,
        &host(),
        &plan("x", &["iface:a", "iface:b", "iface:c"]),
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
    for i in ["iface:lo", "iface:mgmt0"] {
        let e = check_plan(&cfg, &host(), &plan("link_up", &[i])).unwrap_err();
        assert!(e.contains("is protected"), "{e}");
    }
    assert!(check_plan(&cfg, &host(), &plan("link_up", &["iface:va"])).is_ok());
}

#[test]
fn the_default_route_interface_is_protected_unless_allowed() {
    let mut cfg = SafetyConfig::default();
    let e = check_plan(&cfg, &host(), &plan("x", &["iface:eth0"])).unwrap_err();
    assert!(e.contains("default route"), "{e}");
    cfg.protect_default_route_interface = false;
    assert!(check_plan(&cfg, &host(), &plan("x", &["iface:eth0"])).is_ok());
}

#[test]
fn protected_ports_are_refused() {
    let cfg = SafetyConfig::default(); // 22
    let e = check_plan(&cfg, &host(), &plan("xdp_port_limit", &["port:22"])).unwrap_err();
    assert!(e.contains("port 22 is protected"), "{e}");
    assert!(check_plan(&cfg, &host(), &plan("xdp_port_limit", &["port:80"])).is_ok());
}

#[test]
fn protected_routes_are_refused_except_to_restore_them() {
    let cfg = SafetyConfig {
        protected_routes: vec!["10.0.0.0/8".into(), "default".into()],
        ..Default::default()
    };
    for r in ["route:10.9.0.0/24", "route:default"] {
        let e = check_plan(&cfg, &host(), &plan("route_dampen", &[r])).unwrap_err();
        assert!(e.contains("is protected"), "{r}: {e}");
    }
    assert!(check_plan(
        &cfg,
        &host(),
        &plan("route_dampen", &["route:192.168.0.0/24"])
    )
    .is_ok());
    assert!(check_plan(
        &cfg,
        &host(),
        &plan("route_restore", &["route:10.9.0.0/24"])
    )
    .is_ok());
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
        ..Default::default()
    }
}

#[test]
fn cooldown_per_subject() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    assert!(b.check(&cfg, "link_up", "iface:va", t0).is_ok());
    b.record("link_up", "iface:va", t0);
    let e = b
        .check(&cfg, "link_up", "iface:va", t0 + Duration::from_secs(9))
        .unwrap_err();
    assert!(e.starts_with("cooldown"), "{e}");
    // another subject, another remedy: not cooling down
    assert!(b
        .check(&cfg, "link_up", "iface:vb", t0 + Duration::from_secs(1))
        .is_ok());
    assert!(b.check(&cfg, "route_restore", "iface:va", t0).is_ok());
    assert!(b
        .check(&cfg, "link_up", "iface:va", t0 + Duration::from_secs(11))
        .is_ok());
}

#[test]
fn per_subject_budget_within_the_window() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    b.record("link_up", "iface:va", t0);
    b.record("link_up", "iface:va", t0 + Duration::from_secs(20));
    let e = b
        .check(&cfg, "link_up", "iface:va", t0 + Duration::from_secs(40))
        .unwrap_err();
    assert!(e.contains("per_subject_max"), "{e}");
    // the first action leaves the window
    assert!(b
        .check(&cfg, "link_up", "iface:va", t0 + Duration::from_secs(101))
        .is_ok());
}

#[test]
fn per_remedy_budget_across_subjects() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    for s in ["a", "b", "c"] {
        b.record("sysctl", s, t0);
    }
    let e = b.check(&cfg, "sysctl", "d", t0).unwrap_err();
    assert!(e.contains("per_remedy_max"), "{e}");
    assert!(b.check(&cfg, "link_up", "d", t0).is_ok());
}

#[test]
fn global_budget_per_hour() {
    let cfg = cfg_budget();
    let mut b = Budgets::default();
    let t0 = Instant::now();
    for (r, s) in [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")] {
        b.record(r, s, t0);
    }
    assert_eq!(b.global_left(&cfg, t0), 0);
    let e = b
        .check(&cfg, "e", "1", t0 + Duration::from_secs(1))
        .unwrap_err();
    assert!(e.contains("global_max_per_hour"), "{e}");
    assert!(b
        .check(&cfg, "e", "1", t0 + Duration::from_secs(3601))
        .is_ok());
}
