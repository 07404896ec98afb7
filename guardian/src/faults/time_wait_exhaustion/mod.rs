//! `time_wait_exhaustion` (layer 4): TIME_WAIT over 80 % of `tcp_max_tw_buckets`, or TIME_WAIT
//! toward one destination holding over half of the ephemeral port range.
//!
//! Input: [`MibSample`](crate::model::sample::MibSample)s (exact TIME_WAIT gauge and TIME_WAIT
//! per destination from INET_DIAG, the namespace's sysctls). Two kinds of subject per
//! namespace, each its own fault:
//! - the bucket table (key `NS/buckets`, no subject fields): `time_wait > bucket_ratio ×
//!   tcp_max_tw_buckets`. At the limit the kernel stops creating TIME_WAIT sockets
//!   (`TCPTimeWaitOverflow`), so connections close without protection against stray segments.
//! - one destination (key `NS/dst/ADDR:PORT`, subject addr + port): TIME_WAIT sockets to it
//!   whose local port is in `ip_local_port_range` exceed `range_ratio ×` the range size; each
//!   one keeps its port from being reused toward that destination for 60 s, and connects to it
//!   start failing with EADDRNOTAVAIL when none is left.
//!
//! A gauge, not a rate: the condition is judged on each sample, with the usual hysteresis.
use std::time::Instant;

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::TimeWaitExhaustion;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// TIME_WAIT / tcp_max_tw_buckets above which the bucket fault opens.
        pub bucket_ratio: f64,
        /// TIME_WAIT to one destination / ephemeral range size above which that destination's
        /// fault opens.
        pub range_ratio: f64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bucket_ratio: 0.8,
            range_ratio: 0.5,
            hysteresis: Hysteresis::new(0, 5000, 10_000),
        }
    }
}

const META: FaultMeta = FaultMeta {
    fault: FAULT,
    layer: 4,
    severity: Severity::Warning,
};

pub struct TimeWaitExhaustion {
    cfg: Config,
    tracker: Tracker,
}

impl TimeWaitExhaustion {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(META, cfg.hysteresis);
        Self { cfg, tracker }
    }
}

fn ratio(n: u64, of: u64) -> f64 {
    ((n as f64 / of as f64) * 1e4).round() / 1e4
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> TimeWaitExhaustion {
    TimeWaitExhaustion::new(cfg.clone())
}

impl Detector for TimeWaitExhaustion {
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
        let ns = m.netns;
        let mut holding = Vec::new();
        let range = m.port_range.map(|r| [r.lo, r.hi]);
        if let (Some(max), Some(tw)) = (m.tcp_max_tw_buckets.filter(|&b| b > 0), m.time_wait) {
            if tw as f64 > self.cfg.bucket_ratio * max as f64 {
                holding.push(Holding {
                    key: format!("{ns}/buckets"),
                    netns: Some(ns),
                    subject: Subject::default(),
                    evidence: super::Evidence::TimeWaitExhaustion(Evidence::Buckets {
                        time_wait: tw,
                        tcp_max_tw_buckets: max,
                        ratio: ratio(tw, max),
                        trigger_ratio: self.cfg.bucket_ratio,
                        tw_overflow_total: m.tw_overflow,
                        tcp_tw_reuse: m.tcp_tw_reuse,
                        port_range: range,
                        top_dst: m.time_wait_by_dst.first().cloned(),
                    }),
                });
            }
        }
        if let Some(size) = m.range_size().filter(|&s| s > 0) {
            for d in &m.time_wait_by_dst {
                if d.count as f64 > self.cfg.range_ratio * size as f64 {
                    holding.push(Holding {
                        key: format!("{ns}/dst/{}:{}", d.addr, d.port),
                        netns: Some(ns),
                        subject: Subject {
                            addr: Some(d.addr.clone()),
                            port: Some(d.port),
                            ..Default::default()
                        },
                        evidence: super::Evidence::TimeWaitExhaustion(Evidence::Range {
                            time_wait_to_dst: d.count,
                            range_size: size,
                            ratio: ratio(d.count, size),
                            trigger_ratio: self.cfg.range_ratio,
                            port_range: range,
                            time_wait: m.time_wait,
                            tcp_tw_reuse: m.tcp_tw_reuse,
                        }),
                    });
                }
            }
        }
        self.tracker.evaluate_netns(now, ns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultState::{self, Cleared as C, Opened as O};
    use crate::model::sample::{DstSockets, MibSample, PortRange};
    use std::time::Duration;

    /// (time_wait, tcp_max_tw_buckets, TIME_WAIT to 10.0.0.2:80, range size)
    fn mib(ns: u32, tw: u64, max: u64, to_dst: u64, range: u16) -> Input {
        Input::Mib(MibSample {
            netns: ns,
            time_wait: Some(tw),
            tcp_max_tw_buckets: Some(max),
            port_range: Some(PortRange {
                lo: 32768,
                hi: 32768 + range - 1,
            }),
            time_wait_by_dst: vec![DstSockets {
                addr: "10.0.0.2".into(),
                port: 80,
                count: to_dst,
            }],
            ..Default::default()
        })
    }

    fn run(steps: &[(u64, u64, u64, u16)]) -> Vec<Vec<(FaultState, String)>> {
        let mut d = TimeWaitExhaustion::new(Config::default());
        let t0 = Instant::now();
        steps
            .iter()
            .enumerate()
            .map(|(i, &(tw, max, dst, range))| {
                d.observe(
                    &mib(1, tw, max, dst, range),
                    t0 + Duration::from_secs(i as u64),
                )
                .into_iter()
                .map(|f| (f.state, f.key))
                .collect()
            })
            .collect()
    }

    #[test]
    fn table() {
        let b = "1/buckets".to_string();
        let dst = "1/dst/10.0.0.2:80".to_string();
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Vec<(u64, u64, u64, u16)>,
            Vec<Vec<(FaultState, String)>>,
        )> = vec![
            (
                "80 % of the buckets is not above 80 %",
                vec![(80, 100, 0, 28232)],
                vec![vec![]],
            ),
            (
                "81 % opens",
                vec![(81, 100, 0, 28232)],
                vec![vec![(O, b.clone())]],
            ),
            (
                "half the range toward one destination is not above half",
                vec![(100, 10_000, 100, 200)],
                vec![vec![]],
            ),
            (
                "101 of 200 ports opens for that destination",
                vec![(101, 10_000, 101, 200)],
                vec![vec![(O, dst.clone())]],
            ),
            (
                "hysteresis: dipping below for less than clear_after keeps it open",
                vec![
                    (90, 100, 0, 28232),
                    (70, 100, 0, 28232),
                    (90, 100, 0, 28232),
                    (70, 100, 0, 28232),
                    (70, 100, 0, 28232),
                    (70, 100, 0, 28232),
                    (70, 100, 0, 28232),
                    (70, 100, 0, 28232),
                    (70, 100, 0, 28232),
                ],
                {
                    let mut v = vec![vec![]; 9];
                    v[0] = vec![(O, b.clone())];
                    v[8] = vec![(C, b.clone())]; // absent from t=3, cleared at t=8
                    v
                },
            ),
            (
                "raising the limit clears",
                vec![(90, 100, 0, 28232), (90, 10_000, 0, 28232)],
                vec![vec![(O, b.clone())], vec![]],
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(&steps), want, "{name}");
        }
    }

    #[test]
    fn subjects_and_namespaces_are_separate() {
        let mut d = TimeWaitExhaustion::new(Config::default());
        let now = Instant::now();
        let f = d.observe(&mib(1, 150, 10_000, 150, 200), now);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(f[0].subject.port, Some(80));
        assert_eq!(f[0].evidence.json()["ratio"], 0.75);
        assert_eq!(f[0].netns, Some(1));
        // namespace 2, quiet: nothing opens, and namespace 1's fault stays open
        let later = now + Duration::from_secs(60);
        assert!(d.observe(&mib(2, 0, 10_000, 0, 200), later).is_empty());
        assert_eq!(d.tracker.open_keys(), vec!["1/dst/10.0.0.2:80"]);
        // another destination in namespace 1 crowded: its own fault; the first one clears later
        let mut other = match mib(1, 150, 10_000, 0, 200) {
            Input::Mib(m) => m,
            _ => unreachable!(),
        };
        other.time_wait_by_dst = vec![DstSockets {
            addr: "10.0.0.3".into(),
            port: 443,
            count: 120,
        }];
        let f = d.observe(&Input::Mib(other), later);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "1/dst/10.0.0.3:443");
        assert_eq!(f[0].state, O);
    }
}
