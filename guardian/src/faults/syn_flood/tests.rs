//! Tables of the `syn_flood` detector.
use super::*;
use crate::model::{AddrCount, Counters, FaultState, PortCount, XdpIface};
use crate::model::sample::FlowSample;

const NS: u32 = 4026531840;

fn counters(syn_by_port: &[(u16, u64)], src: &[(&str, u64)]) -> Input {
    Input::Counters(Counters {
        netns: NS,
        xdp: vec![XdpIface {
            iface: "eth0".into(),
            ifindex: 2,
            syn_by_port: syn_by_port
                .iter()
                .map(|&(port, count)| PortCount { port, count })
                .collect(),
            syn_by_source: src
                .iter()
                .map(|&(a, count)| AddrCount {
                    addr: a.into(),
                    count,
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn flows(done: &[(u16, u64)]) -> Input {
    Input::Flows(FlowSample {
        netns: NS,
        handshakes_by_port: done
            .iter()
            .map(|&(port, count)| PortCount { port, count })
            .collect(),
        ..Default::default()
    })
}

fn cfg() -> Config {
    Config {
        syn_per_sec: 100.0,
        window_ms: 1000,
        hysteresis: Hysteresis {
            clear_after_ms: 2000,
            update_every_ms: 60_000,
            ..Config::default().hysteresis
        },
        ..Default::default()
    }
}

/// Feeds (syns to port 80 per second, completions per second) for each 1 s step; returns
/// the states found per step.
fn run(steps: &[(u64, u64)]) -> Vec<Vec<FaultState>> {
    let mut d = SynFlood::new(cfg());
    let t0 = Instant::now();
    let (mut syn, mut done) = (0, 0);
    let mut out = Vec::new();
    d.observe(&counters(&[], &[]), t0);
    d.observe(&flows(&[]), t0);
    for (i, &(s, c)) in steps.iter().enumerate() {
        let now = t0 + Duration::from_secs(i as u64 + 1);
        syn += s;
        done += c;
        d.observe(&counters(&[(80, syn)], &[("10.0.0.9", syn)]), now);
        out.push(
            d.observe(&flows(&[(80, done)]), now)
                .into_iter()
                .map(|f| f.state)
                .collect(),
        );
    }
    out
}

use FaultState::{Cleared as C, Opened as O};

#[test]
fn rate_just_below_and_just_above_the_limit() {
    assert!(run(&[(100, 0), (100, 0)]).iter().all(Vec::is_empty));
    assert_eq!(run(&[(101, 0)]), vec![vec![O]]);
}

#[test]
fn completion_ratio_boundary() {
    // 1000 SYNs/s, 20 % completed: a busy server, not a flood.
    assert!(run(&[(1000, 200)]).iter().all(Vec::is_empty));
    assert_eq!(run(&[(1000, 199)]), vec![vec![O]]);
}

#[test]
fn hysteresis_and_clearing() {
    // Dancing around the limit does not flap; 2 s below clears.
    let got = run(&[(500, 0), (90, 0), (500, 0), (90, 0), (0, 0), (0, 0)]);
    assert_eq!(got, vec![vec![O], vec![], vec![], vec![], vec![], vec![C]]);
}

#[test]
fn subjects_are_separate_and_evidence_names_sources() {
    let mut d = SynFlood::new(cfg());
    let t0 = Instant::now();
    d.observe(&counters(&[], &[]), t0);
    d.observe(&flows(&[]), t0);
    let t1 = t0 + Duration::from_secs(1);
    d.observe(
        &counters(
            &[(80, 5000), (22, 10)],
            &[("10.0.0.9", 4990), ("10.0.0.7", 20)],
        ),
        t1,
    );
    let f = d.observe(&flows(&[(80, 3), (22, 10)]), t1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].subject.port, Some(80));
    assert_eq!(f[0].netns, Some(NS));
    assert_eq!(f[0].key, key(NS, 80));
    assert_eq!(f[0].evidence.json()["top_sources"][0]["addr"], "10.0.0.9");
    assert_eq!(f[0].evidence.json()["syns"], 5000);
    assert_eq!(f[0].evidence.json()["completed"], 3);
}

#[test]
fn a_heavy_sender_to_another_port_is_not_this_ports_source() {
    let mut d = SynFlood::new(cfg());
    let t0 = Instant::now();
    let with_pairs = |pairs: &[(&str, u16, u64)], ports: &[(u16, u64)]| {
        let Input::Counters(mut c) = counters(ports, &[]) else {
            unreachable!()
        };
        c.xdp[0].syn_by_source_port = pairs
            .iter()
            .map(|&(a, port, count)| crate::model::DstCount {
                addr: a.into(),
                port,
                count,
            })
            .collect();
        Input::Counters(c)
    };
    d.observe(&with_pairs(&[], &[]), t0);
    d.observe(&flows(&[]), t0);
    let t1 = t0 + Duration::from_secs(1);
    // 10.0.0.89 sends 9000 SYNs to port 89; port 8081 gets 2000 spread over 100 sources.
    let mut pairs = vec![("10.0.0.89", 89, 9000)];
    let names: Vec<String> = (0..100).map(|i| format!("198.51.100.{i}")).collect();
    pairs.extend(names.iter().map(|n| (n.as_str(), 8081, 20)));
    d.observe(&with_pairs(&pairs, &[(89, 9000), (8081, 2000)]), t1);
    let f = d.observe(&flows(&[]), t1);
    let on_8081 = f.iter().find(|f| f.subject.port == Some(8081)).unwrap();
    let top = &on_8081.evidence.json()["top_sources"];
    assert_eq!(top[0]["syns"], 20, "{top}");
    assert!(top.as_array().unwrap().iter().all(|s| s["addr"] != "10.0.0.89"), "{top}");
}

#[test]
fn evidence_counts_the_cookies_of_the_window() {
    let mut d = SynFlood::new(cfg());
    let t0 = Instant::now();
    let mib = |n| {
        Input::Mib(crate::model::sample::MibSample {
            netns: NS,
            req_q_full_do_cookies: n,
            ..Default::default()
        })
    };
    d.observe(&mib(100), t0);
    d.observe(&counters(&[], &[]), t0);
    d.observe(&flows(&[]), t0);
    let t1 = t0 + Duration::from_secs(1);
    d.observe(&mib(900), t1);
    d.observe(&counters(&[(80, 5000)], &[("10.0.0.9", 10)]), t1);
    let f = d.observe(&flows(&[(80, 7)]), t1);
    assert_eq!(f[0].evidence.json()["cookies"], 800);
    assert_eq!(f[0].evidence.json()["completed"], 7);
}

#[test]
fn no_xdp_no_finding() {
    let mut d = SynFlood::new(cfg());
    let t0 = Instant::now();
    assert!(d.observe(&flows(&[(80, 0)]), t0).is_empty());
    assert!(d
        .observe(&flows(&[(80, 0)]), t0 + Duration::from_secs(1))
        .is_empty());
}

#[test]
fn windows_delta_uses_baseline_before_window() {
    let mut w: Windows<u8> = Windows::new();
    let t0 = Instant::now();
    let s = Duration::from_secs;
    w.observe(t0, [], s(20));
    w.observe(t0 + s(1), [(1, 10)], s(20));
    w.observe(t0 + s(2), [(1, 30)], s(20));
    w.observe(t0 + s(3), [(1, 60)], s(20));
    // A new key counts from 0 at the previous sample.
    assert_eq!(w.delta(&1, t0 + s(3), s(10)), Some((60, s(3))));
    assert_eq!(w.delta(&1, t0 + s(3), s(1)), Some((30, s(1))));
    assert_eq!(w.delta(&1, t0 + s(3), s(2)), Some((50, s(2))));
}

#[test]
fn config_parses_from_toml() {
    let c: super::super::DetectConfig =
        toml::from_str("[syn_flood]\nsyn_per_sec = 50.0\n").unwrap();
    assert_eq!(c.syn_flood.syn_per_sec, 50.0);
    assert_eq!(c.syn_flood.window_ms, Config::default().window_ms);
    assert!(toml::from_str::<super::super::DetectConfig>("[syn_flood]\nnope = 1\n").is_err());
}
