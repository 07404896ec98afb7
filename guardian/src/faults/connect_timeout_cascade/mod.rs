//! `connect_timeout_cascade` (layer 4): at least `failures` connects to one destination
//! (address and port) failed (SYN_SENT -> CLOSE without ESTABLISHED) within `window_ms`.
//!
//! Input: `counters.connect_failures_by_dst` (cumulative, counted in the kernel per
//! destination). Opens per (netns, destination address, port). The evidence also says how
//! the failures in the window ended and whose they were (`counters.connect_ends_by_dst`):
//! timeouts, abandoned by the application, and the uids that timed out.
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{ConnectEndReason, Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::ConnectTimeoutCascade;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Failed connects to one destination within the window that open the fault.
        pub failures: u64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            failures: 20,
            window_ms: 10_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

/// A row of `connect_ends_by_dst`: destination, uid, how it ended.
type EndKey = (String, u16, Option<u32>, ConnectEndReason);

pub struct ConnectTimeoutCascade {
    cfg: Config,
    tracker: Tracker,
    dsts: HashMap<u32, Windows<(String, u16)>>,
    ends: HashMap<u32, Windows<EndKey>>,
}

/// How the failures to `dst` in the window ended: (timed out, abandoned, uids that timed out).
fn ends_of(
    w: &Windows<EndKey>,
    dst: &(String, u16),
    now: Instant,
    window: Duration,
) -> (u64, u64, BTreeSet<u32>) {
    let (mut timed_out, mut abandoned, mut uids) = (0, 0, BTreeSet::new());
    for k in w.keys().filter(|k| k.0 == dst.0 && k.1 == dst.1) {
        let Some((n, _)) = w.delta(k, now, window).filter(|d| d.0 > 0) else {
            continue;
        };
        match k.3 {
            ConnectEndReason::Timeout => {
                timed_out += n;
                uids.extend(k.2);
            }
            ConnectEndReason::Abandoned => abandoned += n,
            ConnectEndReason::Error | ConnectEndReason::Unknown => {}
        }
    }
    (timed_out, abandoned, uids)
}

impl ConnectTimeoutCascade {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 4,
                severity: Severity::Error,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            dsts: HashMap::new(),
            ends: HashMap::new(),
        }
    }
}

pub fn key(netns: u32, addr: &str, port: u16) -> String {
    format!("{netns}/dst:{addr}:{port}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> ConnectTimeoutCascade {
    ConnectTimeoutCascade::new(cfg.clone())
}

impl Detector for ConnectTimeoutCascade {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Counters(c) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let w = self.dsts.entry(c.netns).or_insert_with(Windows::new);
        w.observe(
            now,
            c.connect_failures_by_dst
                .iter()
                .map(|d| ((d.addr.clone(), d.port), d.count)),
            window * 2,
        );
        let ends = self.ends.entry(c.netns).or_insert_with(Windows::new);
        ends.observe(
            now,
            c.connect_ends_by_dst
                .iter()
                .map(|e| ((e.addr.clone(), e.port, e.uid, e.reason), e.count)),
            window * 2,
        );
        let mut dsts: Vec<&(String, u16)> = w.keys().collect();
        dsts.sort_unstable();
        let holding = dsts
            .into_iter()
            .filter_map(|k| {
                let (n, span) = w.delta(k, now, window)?;
                if n < self.cfg.failures {
                    return None;
                }
                let (timed_out, abandoned, uids) = ends_of(ends, k, now, window);
                Some(Holding {
                    key: key(c.netns, &k.0, k.1),
                    netns: Some(c.netns),
                    subject: Subject {
                        addr: Some(k.0.clone()),
                        port: Some(k.1),
                        ..Default::default()
                    },
                    evidence: super::Evidence::ConnectTimeoutCascade(Evidence {
                        failed_connects: n,
                        span_ms: span.as_millis() as u64,
                        threshold: self.cfg.failures,
                        syn_retrans_total: c.syn_retrans,
                        timed_out,
                        abandoned,
                        timeout_uids: uids.into_iter().collect(),
                    }),
                })
            })
            .collect();
        self.tracker.evaluate_netns(now, c.netns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counters, DstCount, FaultState};

    const NS: u32 = 4026532100;

    fn sample(v: &[(&str, u16, u64)]) -> Input {
        Input::Counters(Counters {
            netns: NS,
            connect_failures_by_dst: v
                .iter()
                .map(|&(a, port, count)| DstCount {
                    addr: a.into(),
                    port,
                    count,
                })
                .collect(),
            ..Default::default()
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

    /// Failures to 10.0.0.2:80 per 1 s step.
    fn run(steps: &[u64]) -> Vec<Vec<FaultState>> {
        let mut d = ConnectTimeoutCascade::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let mut total = 0;
        steps
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                total += n;
                d.observe(
                    &sample(&[("10.0.0.2", 80, total)]),
                    t0 + Duration::from_secs(i as u64 + 1),
                )
                .into_iter()
                .map(|f| f.state)
                .collect()
            })
            .collect()
    }

    use FaultState::{Cleared as C, Opened as O};

    #[test]
    fn nineteen_in_ten_seconds_is_not_a_cascade_twenty_is() {
        assert!(run(&[19]).iter().all(Vec::is_empty));
        // 19 spread over 10 s, then 1 more after the first ones left the window.
        assert!(
            run(&[10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10])
                .iter()
                .all(Vec::is_empty)
        );
        assert_eq!(run(&[20]), vec![vec![O]]);
        let got = run(&[2; 10]);
        assert_eq!(got[9], vec![O]);
        assert!(got[..9].iter().all(Vec::is_empty));
    }

    #[test]
    fn stays_open_while_failures_continue_then_clears() {
        // 25 at once; they stay in the 10 s window, then 2 s of absence clears.
        let mut steps = vec![25];
        steps.extend([0; 13]);
        let got = run(&steps);
        assert_eq!(got[0], vec![O]);
        let cleared: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, s)| s.contains(&C))
            .map(|(i, _)| i)
            .collect();
        // In the window through t=10 (baseline at t=0), absent from t=11, cleared at t=13.
        assert_eq!(cleared, vec![12]);
        assert_eq!(got.iter().flatten().count(), 2);
    }

    fn end(uid: Option<u32>, reason: ConnectEndReason, count: u64) -> ConnectEnd {
        ConnectEnd {
            addr: "10.0.0.2".into(),
            port: 5432,
            uid,
            reason,
            count,
        }
    }

    /// Evidence of the fault opened by `ends` (cumulative rows, after a baseline sample).
    fn evidence_with(ends: Vec<ConnectEnd>) -> serde_json::Value {
        let mut d = ConnectTimeoutCascade::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let total = ends.iter().map(|e| e.count).sum();
        let Input::Counters(mut c) = sample(&[("10.0.0.2", 5432, total)]) else {
            unreachable!()
        };
        c.connect_ends_by_dst = ends;
        let f = d.observe(&Input::Counters(c), t0 + Duration::from_secs(1));
        assert_eq!(f.len(), 1, "{total} failures open the fault whatever their end");
        f[0].evidence.json()
    }

    use crate::model::{ConnectEnd, ConnectEndReason::*};

    #[test]
    fn abandoned_connects_open_the_fault_but_are_not_timeouts() {
        let e = evidence_with(vec![end(Some(65534), Abandoned, 25)]);
        assert_eq!(e["failed_connects"], 25);
        assert_eq!(e["abandoned"], 25);
        assert_eq!(e["timed_out"], 0);
        assert_eq!(e["timeout_uids"], serde_json::json!([]));
    }

    #[test]
    fn timeouts_are_counted_with_their_uids() {
        let e = evidence_with(vec![
            end(Some(65534), Timeout, 12),
            end(Some(0), Timeout, 12),
            end(Some(0), Error, 1),
            end(None, Timeout, 2),
        ]);
        assert_eq!(e["failed_connects"], 27);
        assert_eq!(e["timed_out"], 26);
        assert_eq!(e["abandoned"], 0);
        assert_eq!(e["timeout_uids"], serde_json::json!([0, 65534]), "unknown uid left out");
        let one = evidence_with(vec![end(Some(65534), Timeout, 25)]);
        assert_eq!(one["timeout_uids"], serde_json::json!([65534]));
    }

    #[test]
    fn only_the_windows_timeouts_count() {
        // 12 timeouts by uid 0 long ago, then 25 abandoned by 65534: the old ones left the window.
        let mut d = ConnectTimeoutCascade::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let at = |d: &mut ConnectTimeoutCascade, s: u64, total: u64, ends: Vec<ConnectEnd>| {
            let Input::Counters(mut c) = sample(&[("10.0.0.2", 5432, total)]) else {
                unreachable!()
            };
            c.connect_ends_by_dst = ends;
            d.observe(&Input::Counters(c), t0 + Duration::from_secs(s))
        };
        assert!(at(&mut d, 1, 12, vec![end(Some(0), Timeout, 12)]).is_empty());
        let f = at(
            &mut d,
            15,
            37,
            vec![end(Some(0), Timeout, 12), end(Some(65534), Abandoned, 25)],
        );
        assert_eq!(f.len(), 1);
        let e = f[0].evidence.json();
        assert_eq!((e["timed_out"].clone(), e["abandoned"].clone()), (0.into(), 25.into()));
    }

    #[test]
    fn destinations_are_separate() {
        let mut d = ConnectTimeoutCascade::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let f = d.observe(
            &sample(&[
                ("10.0.0.2", 80, 30),
                ("10.0.0.2", 443, 5),
                ("10.0.0.3", 80, 19),
            ]),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(f[0].subject.port, Some(80));
        assert_eq!(f[0].key, key(NS, "10.0.0.2", 80));
        assert_eq!(f[0].evidence.json()["failed_connects"], 30);
    }
}
