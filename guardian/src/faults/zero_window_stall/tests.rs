//! Unit tests of `zero_window_stall`'s decision: a flow stalled `stall_ms` opens it for its
//! local port, a shorter stall or too few flows do not, the fault stays open while the stall
//! lasts and clears once the flows resume; namespaces and ports are apart.
use std::time::Duration;

use super::*;
use crate::model::shadows::{PortStalls, SocketOwner, StalledFlow, ZeroWindowSample};
use crate::model::FaultState;

const NS: u32 = 4026532100;

fn flow(remote: u16, stalled_ms: u64) -> StalledFlow {
    StalledFlow {
        local: "10.99.0.2:8099".into(),
        remote: format!("10.99.0.1:{remote}"),
        stalled_ms,
        probes: 4,
        queued: 1000,
        snd_wnd: Some(0),
        inode: 42,
    }
}

fn sample(netns: u32, ports: &[(u16, &[u64])]) -> Input {
    Input::ZeroWindow(ZeroWindowSample {
        netns,
        win_probes: 9,
        ports: ports
            .iter()
            .map(|&(port, stalls)| PortStalls {
                port,
                flows: stalls
                    .iter()
                    .enumerate()
                    .map(|(i, &ms)| flow(40000 + i as u16, ms))
                    .collect(),
                owners: vec![SocketOwner {
                    pid: 77,
                    comm: "nginx".into(),
                    sockets: stalls.len() as u64,
                }],
            })
            .collect(),
    })
}

fn cfg(min_flows: u64) -> Config {
    Config {
        stall_ms: 5000,
        min_flows,
        hysteresis: Hysteresis::new(0, 2000, 60_000),
    }
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn a_flow_stalled_long_enough_opens_it_with_the_kernels_numbers() {
    let mut d = ZeroWindowStall::new(cfg(1));
    let t0 = Instant::now();
    assert!(d.observe(&sample(NS, &[(8099, &[4999])]), t0).is_empty());
    let f = d.observe(&sample(NS, &[(8099, &[5000, 300])]), at(t0, 1000));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].state, FaultState::Opened);
    assert_eq!(f[0].key, key(NS, 8099));
    assert_eq!(f[0].subject.port, Some(8099));
    let ev = f[0].evidence.json();
    assert_eq!(ev["stalled_flows"], 1, "the 300 ms one is not stalled yet");
    assert_eq!(ev["longest_ms"], 5000);
    assert_eq!(ev["queued_bytes"], 1000);
    assert_eq!(ev["stall_ms"], 5000);
    assert_eq!(ev["flows"][0]["remote"], "10.99.0.1:40000");
    assert_eq!(ev["flows"][0]["probes"], 4);
    assert_eq!(ev["flows"][0]["snd_wnd"], 0);
    assert_eq!(ev["owners"][0]["comm"], "nginx");
    let msg = f[0].evidence.detail();
    assert!(msg.contains("1 flows stalled on a zero window for at least 5000 ms"), "{msg}");
    assert!(msg.contains("held by pid 77 (nginx)"), "{msg}");
}

#[test]
fn fewer_than_min_flows_stalled_flows_do_not_open_it() {
    let mut d = ZeroWindowStall::new(cfg(3));
    let t0 = Instant::now();
    assert!(d
        .observe(&sample(NS, &[(80, &[9000, 8000, 10])]), t0)
        .is_empty());
    let f = d.observe(&sample(NS, &[(80, &[9000, 8000, 6000])]), at(t0, 1000));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence.json()["stalled_flows"], 3);
    assert_eq!(f[0].evidence.json()["queued_bytes"], 3000);
}

#[test]
fn stalls_on_other_ports_are_not_added_up() {
    let mut d = ZeroWindowStall::new(cfg(2));
    let t0 = Instant::now();
    assert!(d
        .observe(&sample(NS, &[(80, &[9000]), (443, &[9000])]), t0)
        .is_empty());
}

#[test]
fn it_stays_open_while_stalled_and_clears_after_the_flows_resume() {
    let mut d = ZeroWindowStall::new(cfg(1));
    let t0 = Instant::now();
    let f = d.observe(&sample(NS, &[(8099, &[6000])]), t0);
    assert_eq!(f[0].state, FaultState::Opened);
    // Still stalled: no new event (updates at most every 60 s here).
    assert!(d.observe(&sample(NS, &[(8099, &[7000])]), at(t0, 1000)).is_empty());
    // The reader read: the flow left the persist state. Cleared after clear_after_ms.
    assert!(d.observe(&sample(NS, &[]), at(t0, 2000)).is_empty());
    let f = d.observe(&sample(NS, &[]), at(t0, 4000));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].state, FaultState::Cleared);
    assert_eq!(f[0].key, key(NS, 8099));
}

#[test]
fn a_stall_that_resumes_before_clear_after_does_not_flap() {
    let mut d = ZeroWindowStall::new(cfg(1));
    let t0 = Instant::now();
    assert_eq!(d.observe(&sample(NS, &[(80, &[6000])]), t0).len(), 1);
    // The flow sent a little (the stall restarted at 0), then stalled again.
    assert!(d.observe(&sample(NS, &[(80, &[200])]), at(t0, 1000)).is_empty());
    assert!(d.observe(&sample(NS, &[(80, &[5200])]), at(t0, 2500)).is_empty());
    assert!(d.observe(&sample(NS, &[(80, &[6200])]), at(t0, 5000)).is_empty());
}

#[test]
fn another_namespaces_sample_neither_opens_nor_clears_it() {
    let mut d = ZeroWindowStall::new(cfg(1));
    let t0 = Instant::now();
    assert_eq!(d.observe(&sample(NS, &[(80, &[6000])]), t0).len(), 1);
    assert!(d.observe(&sample(NS + 1, &[]), at(t0, 5000)).is_empty());
    let f = d.observe(&sample(NS + 1, &[(80, &[7000])]), at(t0, 6000));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].key, key(NS + 1, 80));
}

#[test]
fn the_evidence_lists_the_longest_flows_only() {
    let mut d = ZeroWindowStall::new(cfg(1));
    let stalls: Vec<u64> = (0..8).map(|i| 20_000 - i * 1000).collect();
    let f = d.observe(&sample(NS, &[(80, &stalls)]), Instant::now());
    let ev = f[0].evidence.json();
    assert_eq!(ev["stalled_flows"], 8);
    assert_eq!(ev["flows"].as_array().unwrap().len(), LISTED);
    assert_eq!(ev["longest_ms"], 20_000);
    assert_eq!(ev["flows"][0]["stalled_ms"], 20_000);
}

#[test]
fn other_inputs_are_ignored_and_the_table_is_validated() {
    let mut d = ZeroWindowStall::new(cfg(1));
    let other = Input::CloseWait(Default::default());
    assert!(d.observe(&other, Instant::now()).is_empty());
    use crate::faults::ranges::Validate;
    assert!(Config::default().validate("detect.zero_window_stall").is_ok());
    let zero = Config {
        stall_ms: 0,
        ..Config::default()
    };
    let e = zero.validate("detect.zero_window_stall").unwrap_err();
    assert_eq!(e.key, "detect.zero_window_stall.stall_ms");
    let none = Config {
        min_flows: 0,
        ..Config::default()
    };
    assert_eq!(
        none.validate("detect.zero_window_stall").unwrap_err().key,
        "detect.zero_window_stall.min_flows"
    );
}
