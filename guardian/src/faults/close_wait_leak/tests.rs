//! Unit tests of `close_wait_leak`'s decision: growth opens it, the level keeps it, a fall
//! below `min_sockets` clears it, a slow growth never opens it.
use super::*;
use crate::model::shadows::{CloseWaitSample, PortCloseWait, SocketOwner};
use crate::model::FaultState;

const NS: u32 = 4026532100;

fn sample(v: &[(u16, u64)]) -> Input {
    Input::CloseWait(CloseWaitSample {
        netns: NS,
        ports: v
            .iter()
            .map(|&(port, count)| PortCloseWait {
                port,
                count,
                owners: vec![SocketOwner {
                    pid: 42,
                    comm: "python3".into(),
                    sockets: count,
                }],
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

fn run(d: &mut CloseWaitLeak, t0: Instant, steps: &[(u64, u64)]) -> Vec<(u64, FaultState)> {
    steps
        .iter()
        .flat_map(|&(s, n)| {
            d.observe(&sample(&[(8080, n)]), t0 + Duration::from_secs(s))
                .into_iter()
                .map(move |f| (s, f.state))
        })
        .collect()
}

#[test]
fn a_growing_count_opens_it_and_names_the_process() {
    let mut d = CloseWaitLeak::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    let f = d.observe(&sample(&[(8080, 40)]), t0 + Duration::from_secs(1));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].state, FaultState::Opened);
    assert_eq!(f[0].key, key(NS, 8080));
    let ev = f[0].evidence.json();
    assert_eq!(ev["close_wait"], 40);
    assert_eq!(ev["grew_by"], 40);
    assert_eq!(ev["owners"][0]["pid"], 42);
    assert_eq!(ev["owners"][0]["comm"], "python3");
}

#[test]
fn below_min_sockets_nothing_opens() {
    let mut d = CloseWaitLeak::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    assert!(run(&mut d, t0, &[(1, 20), (2, 31)]).is_empty());
}

#[test]
fn a_namespace_that_joins_with_its_pile_up_already_there_opens_it() {
    // The daemon's first tick saw another namespace; this one is first sampled a tick later,
    // with 40 sockets that all entered CLOSE_WAIT since attach (the lab's and e2e's burst).
    let mut d = CloseWaitLeak::new(cfg());
    let t0 = Instant::now();
    let other = Input::CloseWait(CloseWaitSample {
        netns: NS + 1,
        ports: vec![],
    });
    d.observe(&other, t0);
    let f = d.observe(&sample(&[(8080, 40)]), t0 + Duration::from_millis(200));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].state, FaultState::Opened);
    assert_eq!(f[0].evidence.json()["grew_by"], 40);
}

#[test]
fn a_pile_up_already_there_on_the_first_tick_opens_it() {
    // The leak happened between attach and the daemon's first tick (a burst faster than one
    // interval, or a slow first tick) in the only namespace sampled: the gauges count from
    // attach, so the whole count is growth, not a baseline.
    let mut d = CloseWaitLeak::new(cfg());
    let t0 = Instant::now();
    let f = d.observe(&sample(&[(8080, 40)]), t0);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].state, FaultState::Opened);
    assert_eq!(f[0].evidence.json()["grew_by"], 40);
}

#[test]
fn a_slow_bounded_closer_does_not_open_it() {
    // One more socket every 10 s up to a steady 40 for minutes: never `min_growth` (8) within
    // a window (60 s), so not a leak however high the level.
    let mut d = CloseWaitLeak::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    let steps: Vec<(u64, u64)> = (1..=600).map(|s| (s, (s / 10).min(40))).collect();
    assert!(run(&mut d, t0, &steps).is_empty());
}

#[test]
fn stays_open_on_a_plateau_and_clears_when_the_application_closes() {
    let mut d = CloseWaitLeak::new(cfg());
    let t0 = Instant::now();
    d.observe(&sample(&[]), t0);
    let mut steps: Vec<(u64, u64)> = vec![(1, 40)];
    steps.extend((2..=100).map(|s| (s, 40)));
    steps.push((101, 3));
    steps.push((104, 3));
    assert_eq!(
        run(&mut d, t0, &steps),
        vec![
            (1, FaultState::Opened),
            (61, FaultState::Updated),
            (104, FaultState::Cleared)
        ]
    );
}
