//! Planning tables of the `sysctl` remedy.
use serde_json::json;

use super::*;
use crate::model::{FaultState, Severity, Subject};
use crate::remedy::testing::{change, ctx, FakeState};

const NS: Option<u32> = Some(4026532000);

fn finding(fault: FaultId, addr: Option<&str>, evidence: Evidence) -> Finding {
    Finding {
        fault,
        layer: 4,
        severity: Severity::Error,
        state: FaultState::Opened,
        subject: Subject {
            addr: addr.map(str::to_string),
            port: addr.map(|_| 80),
            ..Default::default()
        },
        evidence,
        key: "k".into(),
        netns: NS,
    }
}

/// A namespace with the kernel's defaults for a new namespace, except `over`.
fn state(over: &[(&str, &str)]) -> FakeState {
    let mut s = FakeState::default();
    for (k, v) in [
        (TW_REUSE, "2"),
        (PORT_RANGE, "32768 60999"),
        (SYNCOOKIES, "1"),
        (SOMAXCONN, "4096"),
        (SYN_BACKLOG, "512"),
        (MTU_PROBING, "0"),
    ]
    .into_iter()
    .chain(over.iter().copied())
    {
        s = s.with_sysctl(NS, k, v);
    }
    s
}

fn set(key: &str, value: &str) -> Action {
    Action::SetSysctl {
        netns: NS,
        key: key.into(),
        value: value.into(),
    }
}

fn check(key: &str, value: &str) -> Verify {
    Verify::Sysctl {
        netns: NS,
        key: key.into(),
        value: value.into(),
    }
}

fn skip(f: &Finding, st: &FakeState) -> String {
    match Sysctl::default().plan(f, &ctx(st)) {
        Some(Plan::Skip(r)) => r,
        p => panic!("{p:?}"),
    }
}

#[test]
fn ephemeral_exhaustion_widens_the_range_and_enables_reuse_in_the_faults_namespace() {
    let st = state(&[(PORT_RANGE, "40000 40009")]);
    let f = finding(
        ephemeral_port_exhaustion::FAULT,
        Some("10.0.0.2"),
        Evidence::Json(json!({})),
    );
    let p = change(&Sysctl::default(), &f, &ctx(&st));
    let (apply, inverse) = Action::all(vec![
        (
            set(PORT_RANGE, "10000 64999"),
            set(PORT_RANGE, "40000 40009"),
        ),
        (set(TW_REUSE, "1"), set(TW_REUSE, "2")),
    ]);
    assert_eq!(p.apply, apply);
    assert_eq!(p.inverse, inverse);
    assert_eq!(
        p.verify,
        Verify::All {
            checks: vec![check(PORT_RANGE, "10000 64999"), check(TW_REUSE, "1")]
        }
    );
    assert_eq!(
        p.targets,
        [
            "sysctl:net.ipv4.ip_local_port_range",
            "sysctl:net.ipv4.tcp_tw_reuse"
        ]
    );
    assert_eq!(p.effect, Effect::Clears);
    assert_eq!(p.lifetime, Lifetime::Permanent);
    assert_eq!(p.before["sysctl"][PORT_RANGE], "40000 40009");
    assert_eq!(p.before["netns"], NS.unwrap());
    assert_eq!(p.after["sysctl"][TW_REUSE], "1");
    assert_eq!(
        inverse.to_string(),
        "sysctl -w net.ipv4.tcp_tw_reuse=\"2\" (netns 4026532000); \
         sysctl -w net.ipv4.ip_local_port_range=\"40000 40009\" (netns 4026532000)"
    );
}

#[test]
fn the_range_only_widens_and_only_changed_keys_are_planned() {
    // Wider than the target at the top already: only the bottom moves; reuse on already.
    let st = state(&[(PORT_RANGE, "20000 65535"), (TW_REUSE, "1")]);
    let f = finding(
        time_wait_exhaustion::FAULT,
        Some("10.0.0.2"),
        Evidence::Json(json!({})),
    );
    let p = change(&Sysctl::default(), &f, &ctx(&st));
    assert_eq!(p.apply, set(PORT_RANGE, "10000 65535"));
    assert_eq!(p.inverse, set(PORT_RANGE, "20000 65535"));
    assert_eq!(p.verify, check(PORT_RANGE, "10000 65535"));
    // Already at least as wide as the target, reuse on: nothing to do.
    let st = state(&[(PORT_RANGE, "1024 65535"), (TW_REUSE, "1")]);
    let r = skip(&f, &st);
    assert!(r.starts_with("already at the targets"), "{r}");
    assert!(
        r.contains("net.ipv4.ip_local_port_range = 1024 65535"),
        "{r}"
    );
}

#[test]
fn tw_reuse_2_is_enough_only_toward_loopback() {
    let st = state(&[(PORT_RANGE, "1024 65535")]);
    let lo = finding(
        time_wait_exhaustion::FAULT,
        Some("127.0.0.1"),
        Evidence::Json(json!({})),
    );
    assert!(skip(&lo, &st).contains("net.ipv4.tcp_tw_reuse = 2"));
    let remote = finding(
        time_wait_exhaustion::FAULT,
        Some("10.0.0.2"),
        Evidence::Json(json!({})),
    );
    let p = change(&Sysctl::default(), &remote, &ctx(&st));
    assert_eq!(p.apply, set(TW_REUSE, "1"));
    assert_eq!(p.inverse, set(TW_REUSE, "2"));
}

#[test]
fn the_bucket_table_gets_reuse_only() {
    let st = state(&[(PORT_RANGE, "40000 40009"), (TW_REUSE, "0")]);
    let f = finding(time_wait_exhaustion::FAULT, None, Evidence::Json(json!({})));
    let p = change(&Sysctl::default(), &f, &ctx(&st));
    assert_eq!(p.apply, set(TW_REUSE, "1"));
    assert_eq!(p.inverse, set(TW_REUSE, "0"));
    assert_eq!(p.targets, ["sysctl:net.ipv4.tcp_tw_reuse"]);
}

#[test]
fn syn_flood_turns_cookies_on_only_when_off() {
    let f = finding(syn_flood::FAULT, None, Evidence::Json(json!({})));
    let p = change(&Sysctl::default(), &f, &ctx(&state(&[(SYNCOOKIES, "0")])));
    assert_eq!(p.apply, set(SYNCOOKIES, "1"));
    assert_eq!(p.inverse, set(SYNCOOKIES, "0"));
    assert_eq!(p.verify, check(SYNCOOKIES, "1"));
    assert_eq!(
        p.effect,
        Effect::CounterQuiet {
            counter: MibCounter::ReqQFullDrop
        }
    );
    for on in ["1", "2"] {
        assert!(skip(&f, &state(&[(SYNCOOKIES, on)])).contains("tcp_syncookies"));
    }
}

#[test]
fn accept_backlog_raises_both_limits_when_somaxconn_caps_the_listener() {
    let ev = |backlog: u32| {
        Evidence::AcceptBacklogOverflow(accept_backlog_overflow::Evidence {
            listener: Some(accept_backlog_overflow::evidence::Listener {
                addr: "10.0.0.1".into(),
                port: 80,
                backlog,
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let st = state(&[(SOMAXCONN, "128")]);
    let f = finding(accept_backlog_overflow::FAULT, Some("10.0.0.1"), ev(128));
    let p = change(&Sysctl::default(), &f, &ctx(&st));
    let (apply, inverse) = Action::all(vec![
        (set(SOMAXCONN, "16384"), set(SOMAXCONN, "128")),
        (set(SYN_BACKLOG, "16384"), set(SYN_BACKLOG, "512")),
    ]);
    assert_eq!((p.apply, p.inverse), (apply, inverse));
    assert_eq!(
        p.effect,
        Effect::CounterQuiet {
            counter: MibCounter::ListenOverflows
        }
    );
    assert!(p.after["takes_effect"]
        .as_str()
        .unwrap()
        .contains("listen(2) again"));
    // The application asked for less than somaxconn: the sysctl is not what limits it.
    let small = finding(accept_backlog_overflow::FAULT, Some("10.0.0.1"), ev(1));
    assert!(skip(&small, &st).contains("own listen(2) backlog"));
    // No listener named (namespace-wide overflow): raise what is below target.
    let any = finding(
        accept_backlog_overflow::FAULT,
        None,
        Evidence::Json(json!({})),
    );
    let st = state(&[(SOMAXCONN, "65535")]);
    let p = change(&Sysctl::default(), &any, &ctx(&st));
    assert_eq!(p.apply, set(SYN_BACKLOG, "16384"));
}

#[test]
fn mtu_blackhole_enables_probing() {
    let f = finding(
        mtu_blackhole::FAULT,
        Some("10.0.0.2"),
        Evidence::Json(json!({})),
    );
    let p = change(&Sysctl::default(), &f, &ctx(&state(&[])));
    assert_eq!(p.apply, set(MTU_PROBING, "1"));
    assert_eq!(p.inverse, set(MTU_PROBING, "0"));
    assert!(skip(&f, &state(&[(MTU_PROBING, "2")])).contains("tcp_mtu_probing = 2"));
}

#[test]
fn unreadable_keys_skip_and_other_faults_are_not_ours() {
    let f = finding(syn_flood::FAULT, None, Evidence::Json(json!({})));
    let r = skip(&f, &FakeState::default());
    assert_eq!(
        r,
        "cannot read net.ipv4.tcp_syncookies in network namespace 4026532000"
    );
    let other = finding(FaultId::LinkDown, None, Evidence::Json(json!({})));
    assert!(Sysctl::default().plan(&other, &ctx(&state(&[]))).is_none());
    // Only allowed keys are ever planned.
    for fault in Sysctl::default().faults() {
        let f = finding(*fault, Some("10.0.0.2"), Evidence::Json(json!({})));
        let st = state(&[
            (PORT_RANGE, "40000 40009"),
            (SYNCOOKIES, "0"),
            (SOMAXCONN, "1"),
        ]);
        if let Some(Plan::Change(c)) = Sysctl::default().plan(&f, &ctx(&st)) {
            for t in &c.targets {
                assert!(
                    crate::sysctl::allowed(t.to_string().trim_start_matches("sysctl:")),
                    "{t}"
                );
            }
        }
    }
}

#[test]
fn config_defaults_and_tables() {
    let c: Config =
        toml::from_str("somaxconn = 8192\nip_local_port_range = [2000, 64001]").unwrap();
    assert_eq!(c.somaxconn, 8192);
    assert_eq!(c.ip_local_port_range, [2000, 64001]);
    assert_eq!(c.tcp_tw_reuse, 1);
    assert!(toml::from_str::<Config>("tcp_tw_recycle = 1").is_err());
    let v = serde_json::to_value(set(TW_REUSE, "1")).unwrap();
    assert_eq!(
        v,
        json!({"op": "set_sysctl", "netns": NS.unwrap(), "key": TW_REUSE, "value": "1"})
    );
    assert_eq!(
        serde_json::from_value::<Action>(v).unwrap(),
        set(TW_REUSE, "1")
    );
    let v = serde_json::to_value(check(TW_REUSE, "1")).unwrap();
    assert_eq!(v["check"], "sysctl");
    assert_eq!(
        serde_json::from_value::<Verify>(v).unwrap(),
        check(TW_REUSE, "1")
    );
}

#[test]
fn a_widened_range_stops_before_listened_and_reserved_ports() {
    let f = finding(
        ephemeral_port_exhaustion::FAULT,
        Some("10.0.0.2"),
        Evidence::EphemeralPortExhaustion(Default::default()),
    );
    // A service listens on 39000 and 8080; 61000-61010 are reserved: the range grows from
    // 40000..40009 down to 39001 (not to 10000) and up to 60999 (not to 64999).
    let mut st = state(&[
        (PORT_RANGE, "40000 40009"),
        (RESERVED_PORTS, "61000-61010, 7000"),
    ]);
    st.listening.insert(NS, vec![8080, 39000]);
    let p = change(&Sysctl::default(), &f, &ctx(&st));
    assert_eq!(
        p.apply,
        Action::all(vec![
            (
                set(PORT_RANGE, "39001 60999"),
                set(PORT_RANGE, "40000 40009")
            ),
            (set(TW_REUSE, "1"), set(TW_REUSE, "2")),
        ])
        .0
    );
    // Hemmed in on both sides: nothing to widen, only tw_reuse.
    let mut st = state(&[(PORT_RANGE, "40000 40009"), (TW_REUSE, "2")]);
    st.listening.insert(NS, vec![39999, 40010]);
    let p = change(&Sysctl::default(), &f, &ctx(&st));
    assert_eq!(p.apply, set(TW_REUSE, "1"));
    // An unreadable reserved list: refused rather than guessed.
    let st = state(&[(PORT_RANGE, "40000 40009"), (RESERVED_PORTS, "x-y")]);
    assert!(skip(&f, &st).contains(RESERVED_PORTS));
}

#[test]
fn port_lists_and_widening_rules() {
    assert_eq!(parse_port_list(""), Some(vec![]));
    assert_eq!(
        parse_port_list("80,9000-9002"),
        Some(vec![80..=80, 9000..=9002])
    );
    assert_eq!(parse_port_list("80,x"), None);
    assert_eq!(widen((100, 200), (50, 300), |_| false), (50, 300));
    assert_eq!(
        widen((100, 200), (50, 300), |p| p == 60 || p == 250),
        (61, 249)
    );
    assert_eq!(
        widen((100, 200), (150, 180), |_| false),
        (100, 200),
        "never narrows"
    );
}
