use super::*;
use crate::model::{FaultState, Severity, Subject};
use crate::remedy::testing::{change, ctx, FakeState};

const NS: u32 = 4026532100;

fn finding(addr: Option<&str>, port: Option<u16>) -> Finding {
    Finding {
        fault: connect_timeout_cascade::FAULT,
        layer: 4,
        severity: Severity::Error,
        state: FaultState::Opened,
        subject: Subject {
            addr: addr.map(Into::into),
            port,
            ..Default::default()
        },
        evidence: crate::faults::Evidence::ConnectTimeoutCascade(
            connect_timeout_cascade::Evidence {
                failed_connects: 25,
                timed_out: 25,
                timeout_uids: vec![0, 1000],
                ..Default::default()
            },
        ),
        key: "k".into(),
        netns: Some(NS),
    }
}

fn remedy(cfg: Config) -> SockoptFailfast {
    SockoptFailfast {
        cfg,
        unavailable: || None,
    }
}

fn plan(r: &SockoptFailfast, f: &Finding) -> Option<Plan> {
    r.plan(f, &ctx(&FakeState::default()))
}

fn skipped(p: Option<Plan>) -> String {
    match p {
        Some(Plan::Skip(r)) => r,
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[test]
fn plans_a_policy_for_the_destination_in_the_faults_namespace() {
    let r = remedy(Config::default());
    let p = change(
        &r,
        &finding(Some("10.77.110.2"), Some(5110)),
        &ctx(&FakeState::default()),
    );
    let dst = Dst {
        netns: Some(NS),
        addr: "10.77.110.2".parse().unwrap(),
        port: 5110,
    };
    let pol = Policy {
        dst: dst.clone(),
        syn_count: 1,
        user_timeout_ms: 2500,
        ttl_ms: 300_000,
    };
    assert_eq!(p.remedy, NAME);
    assert_eq!(p.targets, ["dst:10.77.110.2"]);
    assert_eq!(p.apply, Action::FailfastInsert(pol.clone()));
    assert_eq!(p.inverse, Action::FailfastRemove(dst));
    assert_eq!(p.verify, Verify::FailfastPresent(pol));
    assert_eq!(p.effect, Effect::InPlace);
    assert_eq!(p.lifetime, Lifetime::Ttl { ms: 300_000 });
    assert_eq!(
        p.before,
        json!({"dst": "10.77.110.2:5110", "netns": NS, "policy": null})
    );
    assert_eq!(
        p.after["policy"],
        json!({"syn_count": 1, "user_timeout_ms": 2500, "ttl_ms": 300_000})
    );
    assert_eq!(p.subject.port, Some(5110));
    assert_eq!(
        p.apply.to_string(),
        format!(
            "failfast add 10.77.110.2:5110 netns {NS} syncnt 1 user_timeout 2500ms ttl 300000ms"
        )
    );
    assert_eq!(
        p.inverse.to_string(),
        format!("failfast del 10.77.110.2:5110 netns {NS}")
    );
}

#[test]
fn actions_and_checks_round_trip_through_the_journal() {
    let r = remedy(Config {
        ttl_ms: 5000,
        ..Default::default()
    });
    let p = change(
        &r,
        &finding(Some("fd00::2"), Some(80)),
        &ctx(&FakeState::default()),
    );
    assert_eq!(p.targets, ["dst:fd00::2"]);
    assert_eq!(p.before["dst"], "[fd00::2]:80");
    for a in [&p.apply, &p.inverse] {
        let v = serde_json::to_value(a).unwrap();
        assert_eq!(&serde_json::from_value::<Action>(v).unwrap(), a);
    }
    let v = serde_json::to_value(&p.verify).unwrap();
    assert_eq!(v["check"], "failfast_present");
    assert_eq!(serde_json::from_value::<Verify>(v).unwrap(), p.verify);
    assert_eq!(
        serde_json::to_value(&p.apply).unwrap()["op"],
        "failfast_insert"
    );
}

#[test]
fn refuses_empty_wildcard_or_portless_destinations() {
    let r = remedy(Config::default());
    assert!(skipped(plan(&r, &finding(None, Some(80)))).contains("no usable destination"));
    assert!(skipped(plan(&r, &finding(Some(""), Some(80)))).contains("no usable destination"));
    assert!(skipped(plan(&r, &finding(Some("0.0.0.0"), Some(80)))).contains("wildcard"));
    assert!(skipped(plan(&r, &finding(Some("::"), Some(80)))).contains("wildcard"));
    assert!(skipped(plan(&r, &finding(Some("0.0.0.0/0"), Some(80)))).contains("no usable"));
    assert!(skipped(plan(&r, &finding(Some("10.0.0.2"), None))).contains("no destination port"));
    assert!(skipped(plan(&r, &finding(Some("10.0.0.2"), Some(0)))).contains("no destination port"));
}

#[test]
fn skips_when_the_program_is_not_attached_or_nothing_would_be_set() {
    let r = SockoptFailfast {
        cfg: Config::default(),
        unavailable: || Some("no cgroup v2 mount found".into()),
    };
    let why = skipped(plan(&r, &finding(Some("10.0.0.2"), Some(80))));
    assert!(why.contains("not attached: no cgroup v2"), "{why}");
    let r = remedy(Config {
        syn_count: 0,
        user_timeout_ms: 0,
        ttl_ms: 1,
        ..Default::default()
    });
    assert!(skipped(plan(&r, &finding(Some("10.0.0.2"), Some(80)))).contains("nothing usable"));
    let r = remedy(Config {
        syn_count: 200,
        ..Default::default()
    });
    assert!(skipped(plan(&r, &finding(Some("10.0.0.2"), Some(80)))).contains("nothing usable"));
}

#[test]
fn other_faults_are_not_its_business() {
    let mut f = finding(Some("10.0.0.2"), Some(80));
    f.fault = crate::faults::FaultId::SynFlood;
    assert!(plan(&remedy(Config::default()), &f).is_none());
}

#[test]
fn config_reads_from_toml_and_refuses_unknown_keys() {
    let c: Config = toml::from_str("syn_count = 2\nttl_ms = 1000\n").unwrap();
    assert_eq!(
        c,
        Config {
            syn_count: 2,
            user_timeout_ms: 2500,
            ttl_ms: 1000,
            cgroup: None,
            min_timeouts: 10,
            min_uids: 2,
        }
    );
    assert!(toml::from_str::<Config>("syncnt = 2\n").is_err());
}

/// The finding's evidence replaced: `timed_out` timeouts from `uids`, `abandoned` closed by
/// the application, out of `failed` failures.
fn with_ends(failed: u64, timed_out: u64, abandoned: u64, uids: &[u32]) -> Finding {
    let mut f = finding(Some("10.77.110.2"), Some(5432));
    f.evidence =
        crate::faults::Evidence::ConnectTimeoutCascade(connect_timeout_cascade::Evidence {
            failed_connects: failed,
            timed_out,
            abandoned,
            timeout_uids: uids.to_vec(),
            ..Default::default()
        });
    f
}

#[test]
fn abandoned_connects_are_not_evidence() {
    // nobody's IP_TTL=1 connects, closed before any timeout: 25 failures, none timed out.
    let r = remedy(Config::default());
    let why = skipped(plan(&r, &with_ends(25, 0, 25, &[])));
    assert!(
        why.contains("only 0 of the 25 failed connects timed out"),
        "{why}"
    );
    assert!(
        why.contains("25 were abandoned by the application"),
        "{why}"
    );
    // A few timeouts among many abandoned ones stay under min_timeouts.
    let why = skipped(plan(&r, &with_ends(30, 9, 21, &[0, 65534])));
    assert!(why.contains("min_timeouts 10"), "{why}");
}

#[test]
fn one_uids_timeouts_are_reported_only() {
    let r = remedy(Config::default());
    let why = skipped(plan(&r, &with_ends(25, 25, 0, &[65534])));
    assert!(
        why.contains("came from 1 uid(s) [65534], fewer than min_uids 2"),
        "{why}"
    );
    // Timeouts whose uid the kernel could not tell (no sock.sk_uid in BTF) are no uid at all.
    let why = skipped(plan(&r, &with_ends(25, 25, 0, &[])));
    assert!(why.contains("came from 0 uid(s)"), "{why}");
}

#[test]
fn timeouts_from_two_uids_plan_the_policy() {
    let r = remedy(Config::default());
    assert!(matches!(
        plan(&r, &with_ends(24, 24, 0, &[0, 65534])),
        Some(Plan::Change(_))
    ));
    // Exactly at the thresholds.
    assert!(matches!(
        plan(&r, &with_ends(20, 10, 10, &[0, 65534])),
        Some(Plan::Change(_))
    ));
}

#[test]
fn thresholds_are_config_values() {
    let one = remedy(Config {
        min_uids: 1,
        min_timeouts: 20,
        ..Default::default()
    });
    assert!(matches!(
        plan(&one, &with_ends(25, 25, 0, &[65534])),
        Some(Plan::Change(_))
    ));
    assert!(skipped(plan(&one, &with_ends(25, 19, 6, &[65534]))).contains("min_timeouts 20"));
    let three = remedy(Config {
        min_uids: 3,
        ..Default::default()
    });
    assert!(skipped(plan(&three, &with_ends(25, 25, 0, &[0, 65534]))).contains("min_uids 3"));
    let c: Config = toml::from_str("min_uids = 3\nmin_timeouts = 4\n").unwrap();
    assert_eq!((c.min_uids, c.min_timeouts), (3, 4));
}

#[test]
fn thresholds_are_range_checked() {
    use crate::remedy::config::RemedyConfig;
    let check = |f: Config| {
        RemedyConfig {
            sockopt_failfast: f,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("{}: {}", e.key, e.what))
    };
    assert!(check(Config::default()).is_ok());
    let e = check(Config {
        min_uids: 0,
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("remedies.sockopt_failfast.min_uids"), "{e}");
    assert!(
        e.contains("0 is out of range; expected 1 to 1024 uids"),
        "{e}"
    );
    let e = check(Config {
        min_timeouts: 0,
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("remedies.sockopt_failfast.min_timeouts"), "{e}");
    assert!(check(Config {
        min_uids: 1025,
        ..Default::default()
    })
    .is_err());
}
