//! `retransmit_storm` (layer 4): retransmitted / sent segments > 5 % over 10 s with ≥ 1,000
//! segments sent, per namespace.
//!
//! Input: [`MibSample`](crate::model::sample::MibSample)s (`TcpRetransSegs` and `TcpOutSegs`, read
//! together from the namespace's MIB, so they are consistent). The ratio is taken over a
//! sliding window: the counters now against the latest sample at least `window_ms` old (or the
//! oldest one while the namespace has been watched for less than the window). A fault opens when
//! the ratio exceeds `ratio` with at least `min_segs` sent in the window, and clears when the
//! ratio falls below `clear_ratio` (half the trigger), or when the window holds fewer than
//! `min_segs` segments without a retransmission (traffic stopped: nothing left to judge). A
//! flow that stalls and only retransmits (RTO backoff: few segments, most of them resent) is
//! not a recovery and keeps it open: otherwise a failover onto a path as lossy as the first
//! would "clear" the fault during the stall and be verified (seen in the e2e rollback case).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::History;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::RetransmitStorm;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Retransmitted / sent segments over the window above which the fault opens.
        pub ratio: f64,
        /// The fault clears when the ratio falls below this.
        pub clear_ratio: f64,
        /// Sliding window, milliseconds.
        pub window_ms: u64,
        /// Segments sent in the window needed to judge at all.
        pub min_segs: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ratio: 0.05,
            clear_ratio: 0.025,
            window_ms: 10_000,
            min_segs: 1000,
            hysteresis: Hysteresis::new(0, 0, 10_000),
        }
    }
}

const META: FaultMeta = FaultMeta {
    fault: FAULT,
    layer: 4,
    severity: Severity::Warning,
};

pub struct RetransmitStorm {
    cfg: Config,
    tracker: Tracker,
    /// (TcpOutSegs, TcpRetransSegs) per namespace.
    hist: HashMap<u32, History<(u64, u64)>>,
}

impl RetransmitStorm {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(META, cfg.hysteresis);
        Self {
            cfg,
            tracker,
            hist: HashMap::new(),
        }
    }
}

fn key(ns: u32) -> String {
    format!("{ns}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> RetransmitStorm {
    RetransmitStorm::new(cfg.clone())
}

impl Detector for RetransmitStorm {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Mib(m) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let base = self
            .hist
            .entry(m.netns)
            .or_insert_with(|| History::new(window))
            .push(now, (m.tcp_out_segs, m.tcp_retrans_segs));
        let k = key(m.netns);
        let mut holding = Vec::new();
        if let Some((span, (out0, re0))) = base {
            let sent = m.tcp_out_segs.saturating_sub(out0);
            let retrans = m.tcp_retrans_segs.saturating_sub(re0);
            let ratio = if sent == 0 {
                0.0
            } else {
                retrans as f64 / sent as f64
            };
            let open = self.tracker.open_keys().contains(&k.as_str());
            let holds = if open {
                (sent >= self.cfg.min_segs || retrans > 0) && ratio >= self.cfg.clear_ratio
            } else {
                sent >= self.cfg.min_segs && ratio > self.cfg.ratio
            };
            if holds {
                holding.push(Holding {
                    key: k.clone(),
                    netns: Some(m.netns),
                    subject: Subject::default(),
                    evidence: super::Evidence::RetransmitStorm(Evidence {
                        ratio: (ratio * 1e4).round() / 1e4,
                        retrans_segs: retrans,
                        sent_segs: sent,
                        window_ms: span.as_millis() as u64,
                        trigger_ratio: self.cfg.ratio,
                        clear_ratio: self.cfg.clear_ratio,
                    }),
                });
            }
        }
        self.tracker.evaluate(now, holding, |key| key == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultState::{self, Cleared as C, Opened as O};
    use crate::model::sample::MibSample;

    fn mib(ns: u32, out: u64, re: u64) -> Input {
        Input::Mib(MibSample {
            netns: ns,
            tcp_out_segs: out,
            tcp_retrans_segs: re,
            ..Default::default()
        })
    }

    /// One sample per second: per-second (sent, retransmitted) increments in namespace 1.
    fn run(cfg: Config, steps: &[(u64, u64)]) -> Vec<Vec<FaultState>> {
        let mut d = RetransmitStorm::new(cfg);
        let t0 = Instant::now();
        let (mut out, mut re) = (0, 0);
        steps
            .iter()
            .enumerate()
            .map(|(i, &(o, r))| {
                out += o;
                re += r;
                d.observe(&mib(1, out, re), t0 + Duration::from_secs(i as u64))
                    .into_iter()
                    .map(|f| {
                        assert_eq!(f.key, "1");
                        assert_eq!(f.netns, Some(1));
                        f.state
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_stall_that_only_retransmits_keeps_it_open_until_traffic_stops() {
        // the storm, then 12 s of a stalled flow (10 segments a second, all resent), then
        // nothing: open through the stall, cleared once the window holds no retransmission
        let mut steps = vec![(0, 0), (2000, 400)];
        steps.extend(std::iter::repeat_n((10, 10), 12));
        steps.extend(std::iter::repeat_n((0, 0), 12));
        let states = run(Config::default(), &steps);
        assert_eq!(states[1], vec![O]);
        assert!(
            states[2..14].iter().flatten().all(|s| *s != C),
            "{states:?}"
        );
        let cleared: Vec<usize> = (14..states.len())
            .filter(|&i| states[i] == vec![C])
            .collect();
        assert_eq!(cleared.len(), 1, "{states:?}");
    }

    #[test]
    fn table() {
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<(u64, u64)>, Vec<Vec<FaultState>>)> = vec![
            (
                "just below the trigger: 5.0 % is not > 5 %",
                vec![(0, 0), (2000, 100), (2000, 100)],
                vec![vec![], vec![], vec![]],
            ),
            (
                "just above the trigger opens",
                vec![(0, 0), (2000, 101)],
                vec![vec![], vec![O]],
            ),
            (
                "too few segments: 10 % of 999 does not open",
                vec![(0, 0), (999, 100)],
                vec![vec![], vec![]],
            ),
            (
                "hysteresis: 3 % keeps it open, below 2.5 % clears",
                // window 10 s: after the storm second, clean seconds dilute the ratio
                vec![
                    (0, 0),
                    (2000, 200),
                    (2000, 0),
                    (2000, 0),
                    (4000, 0),
                    (4000, 0),
                ],
                // ratio: 10 %, 5 %, 3.3 %, 2.0 % -> clear
                vec![vec![], vec![O], vec![], vec![], vec![C], vec![]],
            ),
            (
                "traffic stops: the window empties and the fault clears",
                {
                    let mut v = vec![(0, 0), (2000, 400)];
                    v.extend(std::iter::repeat_n((0, 0), 11));
                    v
                },
                {
                    let mut v = vec![vec![], vec![O]];
                    v.extend(std::iter::repeat_n(vec![], 9));
                    v.push(vec![C]);
                    v.push(vec![]);
                    v
                },
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(Config::default(), &steps), want, "{name}");
        }
    }

    #[test]
    fn the_window_slides() {
        // 4 % over the first 10 s, then a 10 s window of 6 %: opens only once the old
        // seconds have left the window.
        let mut steps = vec![(0, 0)];
        steps.extend(std::iter::repeat_n((1000, 40), 10));
        steps.extend(std::iter::repeat_n((1000, 60), 10));
        let got = run(Config::default(), &steps);
        let first = got.iter().position(|s| !s.is_empty()).unwrap();
        assert_eq!(got[first], vec![O]);
        // ratio > 5 % once more than half of the 10-s window is at 6 %: at second 16.
        assert_eq!(first, 16, "{got:?}");
    }

    #[test]
    fn namespaces_are_separate() {
        let mut d = RetransmitStorm::new(Config::default());
        let t0 = Instant::now();
        d.observe(&mib(1, 0, 0), t0);
        d.observe(&mib(2, 0, 0), t0);
        let s = t0 + Duration::from_secs(1);
        let f = d.observe(&mib(1, 5000, 1000), s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence.json()["ratio"], 0.2);
        assert_eq!(f[0].evidence.json()["sent_segs"], 5000);
        // a clean namespace 2 neither opens nor clears namespace 1
        assert!(d.observe(&mib(2, 5000, 0), s).is_empty());
        assert_eq!(d.tracker.open_keys(), vec!["1"]);
    }

    #[test]
    fn config_from_toml() {
        let c: Config = toml::from_str("ratio = 0.1\nwindow_ms = 2000").unwrap();
        assert_eq!(c.ratio, 0.1);
        assert_eq!(c.window_ms, 2000);
        assert_eq!(c.min_segs, 1000);
        assert!(toml::from_str::<Config>("nope = 1").is_err());
    }
}
