//! Unit tests of `reset_storm`'s decision: threshold, baseline, direction, clearing.
use super::*;
use crate::model::shadows::{PortResets, ResetSample};
use crate::model::FaultState;

const NS: u32 = 4026532100;

fn sample(v: &[(u16, RstDirection, bool, u64)]) -> Input {
    Input::Resets(ResetSample {
        netns: NS,
        ports: v
            .iter()
            .map(|&(port, direction, remote, count)| PortResets {
                port,
                direction,
                remote,
                count,
            })
            .collect(),
    })
}

fn cfg() -> Config {
    Config {
        hysteresis: Hysteresis {
            clear_after_ms: 2000,
            update_every_ms: 60_000,
            ..Config::default().hysteresis
        },
        ..Default::default()
    }
}

const SENT: RstDirection = RstDirection::Sent;
const RECV: RstDirection = RstDirection::Received;

#[test]
fn twenty_resets_open_it_nineteen_do_not() {
    for (n, opened) in [(19, false), (20, true), (30, true)] {
        let mut d = ResetStorm::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let f = d.observe(
            &sample(&[(5999, SENT, false, n)]),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(f.len(), usize::from(opened), "{n}");
        if opened {
            assert_eq!(f[0].state, FaultState::Opened);
            assert_eq!(f[0].key, key(NS, &(5999, SENT, false)));
            assert_eq!(f[0].subject.port, Some(5999));
            let ev = f[0].evidence.json();
            assert_eq!(ev["resets"], n);
            assert_eq!(ev["total"], n);
            assert_eq!(ev["direction"], "sent");
            assert_eq!(ev["side"], "local");
            assert_eq!(ev["baseline_per_s"], 0.0);
        }
    }
}

#[test]
fn directions_and_sides_are_separate_subjects() {
    let mut d = ResetStorm::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    // 15 sent + 15 received on one port: neither direction reaches 20.
    let f = d.observe(
        &sample(&[(80, SENT, false, 15), (80, RECV, false, 15)]),
        t0 + Duration::from_secs(1),
    );
    assert!(f.is_empty(), "{f:?}");
    let f = d.observe(
        &sample(&[(80, SENT, false, 15), (80, RECV, false, 15), (80, RECV, true, 25)]),
        t0 + Duration::from_secs(2),
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence.json()["side"], "remote");
    assert_eq!(f[0].evidence.json()["direction"], "received");
}

#[test]
fn a_port_that_always_resets_learns_its_baseline() {
    // A service that resets 10/s for a long time (e.g. a load balancer's health checks): the
    // learned rate rises to it, and the same rate no longer opens the fault; five times it does.
    let mut c = cfg();
    c.baseline_ms = 20_000;
    let mut d = ResetStorm::new(c);
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    let mut total = 0;
    let mut opened_at = Vec::new();
    // 1 s ticks at 1/s for 60 s (below min_resets in the window): learning.
    for s in 1..=60u64 {
        total += 1;
        d.observe(&sample(&[(443, SENT, false, total)]), t0 + Duration::from_secs(s));
    }
    // Then 4/s for 30 s: 40 in the window, above min_resets but under 5 x ~1/s.
    for s in 61..=90u64 {
        total += 4;
        let f = d.observe(&sample(&[(443, SENT, false, total)]), t0 + Duration::from_secs(s));
        opened_at.extend(f.iter().filter(|f| f.state == FaultState::Opened).map(|_| s));
    }
    assert!(opened_at.is_empty(), "{opened_at:?}");
    // A storm: 300/s.
    for s in 91..=95u64 {
        total += 300;
        let f = d.observe(&sample(&[(443, SENT, false, total)]), t0 + Duration::from_secs(s));
        opened_at.extend(f.iter().filter(|f| f.state == FaultState::Opened).map(|_| s));
    }
    assert_eq!(opened_at, vec![91]);
}

#[test]
fn clears_once_the_resets_stop() {
    let mut d = ResetStorm::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    let mut states = Vec::new();
    for s in 1..=14u64 {
        let f = d.observe(&sample(&[(80, SENT, false, 25)]), t0 + Duration::from_secs(s));
        states.extend(f.into_iter().map(|f| (s, f.state)));
    }
    assert_eq!(
        states,
        vec![(1, FaultState::Opened), (13, FaultState::Cleared)]
    );
}

#[test]
fn another_namespace_neither_opens_nor_clears_it() {
    let mut d = ResetStorm::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    assert_eq!(
        d.observe(&sample(&[(80, SENT, false, 25)]), t0 + Duration::from_secs(1))
            .len(),
        1
    );
    let other = Input::Resets(ResetSample {
        netns: NS + 1,
        ports: Vec::new(),
    });
    assert!(d.observe(&other, t0 + Duration::from_secs(5)).is_empty());
}
