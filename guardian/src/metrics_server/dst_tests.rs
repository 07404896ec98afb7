//! The per-destination deltas, the bounded label set and the rendering.
use super::*;
use crate::model::sample::{FlowRetrans, FlowSample};
use crate::model::{Counters, DstCount};

fn fails(netns: u32, v: &[(&str, u16, u64)]) -> Input {
    Input::Counters(Counters {
        netns,
        connect_failures_by_dst: v
            .iter()
            .map(|&(addr, port, count)| DstCount {
                addr: addr.into(),
                port,
                count,
            })
            .collect(),
        ..Counters::default()
    })
}

fn flows(netns: u32, v: &[(&str, u16, u16, u64)]) -> Input {
    Input::Flows(FlowSample {
        netns,
        retrans_by_flow: v
            .iter()
            .map(|&(daddr, dport, sport, full)| FlowRetrans {
                daddr: daddr.into(),
                dport,
                sport,
                full,
                small: 1,
                ..FlowRetrans::default()
            })
            .collect(),
        ..FlowSample::default()
    })
}

#[test]
fn cumulative_totals_become_per_address_sums() {
    let mut s = State::default();
    s.observe(&[
        fails(1, &[("10.0.3.7", 80, 5), ("10.0.3.7", 443, 2)]),
        fails(2, &[("10.0.3.7", 80, 1)]),
    ]);
    assert_eq!(s.get("10.0.3.7").unwrap().connect_failures, 8);
    // Unchanged totals add nothing; growth adds the difference; a key that vanished from the
    // top list and came back is not counted twice.
    s.observe(&[fails(1, &[("10.0.3.7", 80, 5)])]);
    s.observe(&[fails(1, &[("10.0.3.7", 80, 9), ("10.0.3.7", 443, 2)])]);
    assert_eq!(s.get("10.0.3.7").unwrap().connect_failures, 12);
    // Flows: full + small per flow; a flow that restarted on the same ports counts afresh.
    s.observe(&[flows(
        1,
        &[("10.0.3.8", 80, 40000, 3), ("10.0.3.8", 80, 40001, 1)],
    )]);
    assert_eq!(s.get("10.0.3.8").unwrap().retransmits, 6);
    s.observe(&[flows(1, &[("10.0.3.8", 80, 40000, 0)])]);
    assert_eq!(s.get("10.0.3.8").unwrap().retransmits, 7);
    assert_eq!(s.get("10.0.3.8").unwrap().connect_failures, 0);
}

#[test]
fn the_label_set_stays_bounded() {
    let mut s = State::default();
    let all: Vec<String> = (0..TOP_K).map(|i| format!("10.1.0.{i}")).collect();
    let v: Vec<(&str, u16, u64)> = all.iter().map(|a| (a.as_str(), 80, 1)).collect();
    s.observe(&[fails(1, &v)]);
    assert_eq!(s.dsts.len(), TOP_K);
    // Every slot moved in the same sample as a newcomer: it goes to `other`.
    let mut v2: Vec<(&str, u16, u64)> = all.iter().map(|a| (a.as_str(), 80, 2)).collect();
    v2.push(("10.2.0.1", 80, 4));
    s.observe(&[fails(1, &v2)]);
    assert_eq!(s.dsts.len(), TOP_K);
    assert_eq!(s.get(OTHER).unwrap().connect_failures, 4);
    assert!(s.get("10.2.0.1").is_none());
    // Later, only 10.1.0.0 keeps moving: a newcomer evicts one of the quiet ones.
    s.observe(&[fails(1, &[("10.1.0.0", 80, 3)])]);
    s.observe(&[fails(1, &[("10.1.0.0", 80, 4), ("10.2.0.2", 80, 6)])]);
    assert_eq!(s.dsts.len(), TOP_K);
    assert_eq!(s.get("10.2.0.2").unwrap().connect_failures, 6);
    assert_eq!(s.get("10.1.0.0").unwrap().connect_failures, 4);
}

#[test]
fn remembered_keys_are_bounded() {
    let mut s = State::default();
    for round in 0..3u16 {
        let addrs: Vec<String> = (0..4000u32)
            .map(|i| format!("10.{}.{}.{}", round, i / 256, i % 256))
            .collect();
        let v: Vec<(&str, u16, u64)> = addrs.iter().map(|a| (a.as_str(), 1, 1)).collect();
        s.observe(&[fails(1, &v)]);
        assert!(s.last.len() <= MAX_KEYS, "{}", s.last.len());
    }
}

#[test]
fn renders_both_families_with_other_always_present() {
    let mut out = String::new();
    State::default().render(&mut out);
    assert!(out.contains("# TYPE guardian_dst_retransmits_total counter\n"));
    assert!(out.contains("guardian_dst_connect_failures_total{dst=\"other\"} 0\n"));
    let mut s = State::default();
    s.observe(&[fails(1, &[("fd00::7", 80, 2)])]);
    let mut out = String::new();
    s.render(&mut out);
    assert!(
        out.contains("guardian_dst_connect_failures_total{dst=\"fd00::7\"} 2\n"),
        "{out}"
    );
    assert!(out.contains("guardian_dst_retransmits_total{dst=\"fd00::7\"} 0\n"));
}

#[test]
fn own_scope_counts_the_daemons_namespace_only() {
    let t = Tracker(Mutex::new(None));
    t.observe(
        &[
            fails(1, &[("10.0.3.7", 80, 5)]),
            fails(2, &[("10.0.3.7", 80, 7)]),
        ],
        Some(2),
    );
    let mut out = String::new();
    t.render(&mut out);
    assert!(
        out.contains("guardian_dst_connect_failures_total{dst=\"10.0.3.7\"} 7\n"),
        "{out}"
    );
}

#[test]
fn refused_connects_count_as_failed_connects_on_their_own_series() {
    let mut s = State::default();
    let both = |timed_out: u64, refused: u64| {
        Input::Counters(Counters {
            netns: 1,
            connect_failures_by_dst: vec![DstCount {
                addr: "10.99.0.7".into(),
                port: 81,
                count: timed_out,
            }],
            connect_refused_by_dst: vec![DstCount {
                addr: "10.99.0.7".into(),
                port: 81,
                count: refused,
            }],
            ..Counters::default()
        })
    };
    s.observe(&[both(2, 5)]);
    assert_eq!(s.get("10.99.0.7").unwrap().connect_failures, 7);
    // Each cumulative series is differenced on its own: 1 more timeout, 3 more refusals.
    s.observe(&[both(3, 8)]);
    assert_eq!(s.get("10.99.0.7").unwrap().connect_failures, 11);
}
