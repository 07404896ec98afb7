//! Tables of the `ephemeral_port_exhaustion` detector.
use super::*;
use serde_json::json;
use crate::model::{
    Counters,
    FaultState::{self, Cleared as C, Opened as O},
};
use crate::model::sample::{DstSockets, PortRange};

fn counters(ns: u32, total: u64) -> Input {
    Input::Counters(Counters {
        netns: ns,
        interval_ms: 500,
        connect_eaddrnotavail: total,
        ..Default::default()
    })
}

fn obs(ns: u32, addr: &str, port: u16) -> Input {
    Input::Observation(Observation {
        netns: ns,
        kind: ObsKind::ConnectAddrnotavail,
        error: "EADDRNOTAVAIL".into(),
        pid: 42,
        tid: 43,
        comm: "client".into(),
        family: Some("ipv4".into()),
        addr: Some(addr.into()),
        port: Some(port),
    })
}

/// Ticks every 500 ms; `steps` are failures since the previous tick in namespace 1.
fn run(cfg: Config, steps: &[u64]) -> Vec<Vec<FaultState>> {
    let mut d = EphemeralPortExhaustion::new(cfg);
    let t0 = Instant::now();
    d.observe(&used(1, 10), t0);
    let mut total = 0;
    steps
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            total += n;
            d.observe(
                &counters(1, total),
                t0 + Duration::from_millis(500 * i as u64),
            )
            .into_iter()
            .map(|f| {
                assert_eq!(f.key, "1");
                f.state
            })
            .collect()
        })
        .collect()
}

/// A socket-table sample of namespace `ns`: a 10-port range, `n` of it toward one peer.
fn used(ns: u32, n: u64) -> Input {
    Input::Mib(MibSample {
        netns: ns,
        port_range: Some(PortRange {
            lo: 40000,
            hi: 40009,
        }),
        ephemeral_by_dst: vec![DstSockets {
            addr: "10.0.0.2".into(),
            port: 80,
            count: n,
        }],
        ..Default::default()
    })
}

#[test]
fn eaddrnotavail_without_a_used_up_range_is_not_exhaustion() {
    let steps = [0, 5, 5, 5, 5, 5, 5, 5, 5, 5];
    for (name, sample) in [
        ("no socket-table sample", None),
        ("8 of 10 ports used", Some(used(1, 8))),
        ("one socket (SO_REUSEADDR trick)", Some(used(1, 1))),
    ] {
        let mut d = EphemeralPortExhaustion::new(Config::default());
        let t0 = Instant::now();
        if let Some(m) = &sample {
            d.observe(m, t0);
        }
        let mut total = 0;
        for (i, n) in steps.iter().enumerate() {
            total += n;
            let f = d.observe(&counters(1, total), t0 + Duration::from_millis(500 * i as u64));
            assert!(f.is_empty(), "{name}: {f:?}");
        }
    }
    // 9 of 10 (the default 0.9) is exhaustion.
    let mut d = EphemeralPortExhaustion::new(Config::default());
    let t0 = Instant::now();
    d.observe(&used(1, 9), t0);
    let mut total = 0;
    let mut open = vec![];
    for (i, n) in steps.iter().enumerate() {
        total += n;
        open.extend(d.observe(&counters(1, total), t0 + Duration::from_millis(500 * i as u64)));
    }
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].evidence.json()["range_used"], 0.9);
}

#[test]
fn table() {
    let e = Vec::<FaultState>::new;
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<u64>, Vec<Vec<FaultState>>)> = vec![
        (
            "one failure a second for 3 s opens (held from 0.5 s, opens at 3.5 s)",
            vec![0, 1, 0, 1, 0, 1, 0, 1],
            vec![e(), e(), e(), e(), e(), e(), e(), vec![O]],
        ),
        (
            "a namespace first reported with failures holds from that first tick",
            vec![2, 0, 2, 0, 2, 0, 2],
            vec![e(), e(), e(), e(), e(), e(), vec![O]],
        ),
        (
            "just below: a failure every 1.5 s never holds for 3 s",
            vec![0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1],
            vec![e(); 11],
        ),
        (
            "a burst shorter than the hold does not open",
            vec![0, 50, 50, 50, 50, 0, 0, 0],
            vec![e(); 8],
        ),
        (
            "clears 5 s after the failures stop",
            {
                let mut v = vec![0];
                v.extend(std::iter::repeat_n(5, 8));
                v.extend(std::iter::repeat_n(0, 13));
                v
            },
            {
                // holds from tick 1 (0.5 s) -> opens at tick 7 (3.5 s); the last failures
                // at tick 8 stay in the 1-s window through tick 9; absent from tick 10
                // (5.0 s), cleared at tick 20 (10.0 s)
                let mut v = vec![e(); 22];
                v[7] = vec![O];
                v[20] = vec![C];
                v
            },
        ),
    ];
    for (name, steps, want) in cases {
        assert_eq!(run(Config::default(), &steps), want, "{name}");
    }
}

#[test]
fn subject_is_the_destination_and_evidence_has_the_range_usage() {
    let mut d = EphemeralPortExhaustion::new(Config::default());
    let t0 = Instant::now();
    d.observe(
        &Input::Mib(MibSample {
            netns: 1,
            port_range: Some(PortRange {
                lo: 40000,
                hi: 40009,
            }),
            ephemeral_by_dst: vec![DstSockets {
                addr: "10.0.0.2".into(),
                port: 80,
                count: 10,
            }],
            ..Default::default()
        }),
        t0,
    );
    let mut total = 0;
    let mut open = vec![];
    for i in 0..10u64 {
        let now = t0 + Duration::from_millis(500 * i);
        d.observe(&obs(1, "10.0.0.2", 80), now);
        d.observe(&obs(1, "10.0.0.2", 80), now);
        d.observe(&obs(1, "10.0.0.3", 443), now);
        // another namespace fails too, but only once: its own key, never opened
        d.observe(&counters(2, i / 5), now);
        total += 3;
        open.extend(d.observe(&counters(1, total), now));
    }
    assert_eq!(open.len(), 1, "{open:?}");
    let f = &open[0];
    assert_eq!(f.state, O);
    assert_eq!(f.netns, Some(1));
    assert_eq!(f.subject.addr.as_deref(), Some("10.0.0.2"));
    assert_eq!(f.subject.port, Some(80));
    assert_eq!(f.evidence.json()["port_range"], json!([40000, 40009]));
    assert_eq!(f.evidence.json()["range_usage"][0]["ratio"], 1.0);
    assert_eq!(f.evidence.json()["last_comm"], "client");
    assert_eq!(d.tracker.open_keys(), vec!["1"]);
}

#[test]
fn without_addresses_the_subject_is_the_destination_using_the_range() {
    let mut d = EphemeralPortExhaustion::new(Config::default());
    let t0 = Instant::now();
    d.observe(
        &Input::Mib(MibSample {
            netns: 1,
            port_range: Some(PortRange {
                lo: 40000,
                hi: 40009,
            }),
            ephemeral_by_dst: vec![DstSockets {
                addr: "10.0.0.9".into(),
                port: 5022,
                count: 10,
            }],
            ..Default::default()
        }),
        t0,
    );
    let mut open = vec![];
    for i in 0..8u64 {
        let now = t0 + Duration::from_millis(500 * i);
        let mut o = obs(1, "x", 0);
        if let Input::Observation(x) = &mut o {
            x.addr = None;
            x.port = None;
        }
        d.observe(&o, now);
        open.extend(d.observe(&counters(1, i * 2), now));
    }
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].subject.addr.as_deref(), Some("10.0.0.9"));
    assert_eq!(open[0].subject.port, Some(5022));
}
