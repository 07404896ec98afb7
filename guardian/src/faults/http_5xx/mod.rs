//! `http_5xx` (layer 7, observe only: the remedy is the report in the event): a service whose
//! 5xx responses are over 5 % of its responses over 10 s, at least one per second.
//!
//! Input: cumulative responses per (namespace, process, local address:port) from the syscall
//! tracepoints (`Input::Http`, `guardian run --http`); a service is one (namespace,
//! address:port) summed over its processes. Over the window: ratio = new 5xx / new responses,
//! rate = new 5xx / window. Opens when ratio > `ratio` and rate >= `min_per_s`;
//! the evidence names 500, 502, 503 and 504 separately (a proxy's 502/504 point at its
//! upstream, 503 at overload or maintenance, 500 at the application itself).
use std::time::Instant;

use super::tracker::{FaultMeta, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::http::HttpSample;
use crate::model::Severity;

pub mod evidence;
pub(crate) mod ratio;
pub mod services;

pub use evidence::Evidence;
use ratio::Judge;
use services::{Services, RESPONSES, S500, S502, S503, S504, S5XX};

pub const FAULT: FaultId = FaultId::Http_5xx;
crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Fraction of 5xx responses above which the service is failing.
        pub ratio: f64,
        /// Fewer 5xx per second than this over the window: no judgement.
        pub min_per_s: f64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ratio: 0.05,
            min_per_s: 1.0,
            window_ms: 10_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

pub struct Http5xx {
    cfg: Config,
    tracker: Tracker,
    services: Services,
}

impl Http5xx {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 7,
                severity: Severity::Error,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            services: Services::default(),
        }
    }

    fn on_sample(&mut self, s: &HttpSample, now: Instant) -> Vec<Finding> {
        let c = &self.cfg;
        let judge = Judge {
            counter: S5XX,
            ratio: c.ratio,
            min_per_s: c.min_per_s,
            window_ms: c.window_ms,
        };
        let holding = ratio::holding(&mut self.services, s, now, &judge, FAULT.as_str(), |o| {
            let v = &o.d.v;
            let named = v[S500] + v[S502] + v[S503] + v[S504];
            super::Evidence::Http_5xx(Evidence {
                other_5xx: v[S5XX].saturating_sub(named),
                per_s: o.per_s,
                min_per_s: c.min_per_s,
                processes: o.svc.processes.clone(),
                ratio: o.ratio,
                responses: v[RESPONSES],
                s500: v[S500],
                s502: v[S502],
                s503: v[S503],
                s504: v[S504],
                s5xx: v[S5XX],
                service: o.svc.name.clone(),
                threshold: c.ratio,
                window_ms: c.window_ms,
            })
        });
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

pub(crate) use ratio::round3;

pub fn key(netns: u32, service: &str) -> String {
    ratio::key(FAULT.as_str(), netns, service)
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> Http5xx {
    Http5xx::new(cfg.clone())
}

impl Detector for Http5xx {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        match input {
            Input::Http(s) => self.on_sample(s, now),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use crate::model::http::ServiceCounts;
    use crate::model::FaultState::{self, Cleared as C, Opened as O};
    use serde_json::Value;

    fn cfg() -> Config {
        Config {
            hysteresis: Hysteresis {
                clear_after_ms: 2_000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    /// One sample per second; each second adds (2xx, 502, 504) to pid 10 of 10.0.0.1:80.
    fn run(cfg: Config, secs: &[(u64, u64, u64)]) -> (Vec<(usize, FaultState)>, Option<Value>) {
        let mut d = Http5xx::new(cfg);
        let t0 = Instant::now();
        let mut c = ServiceCounts {
            addr: "10.0.0.1".into(),
            port: 80,
            pid: 10,
            comm: "nginx".into(),
            ..Default::default()
        };
        let mut out = vec![];
        let mut ev = None;
        let empty = HttpSample {
            netns: 9,
            services: vec![],
        };
        d.observe(&Input::Http(empty), t0);
        for (i, &(ok, b, g)) in secs.iter().enumerate() {
            c.s2xx += ok;
            c.s502 += b;
            c.s504 += g;
            c.s5xx += b + g;
            let s = HttpSample {
                netns: 9,
                services: vec![c.clone()],
            };
            for f in d.observe(&Input::Http(s), t0 + Duration::from_secs(i as u64 + 1)) {
                assert_eq!(f.key, key(9, "10.0.0.1:80"));
                if f.state == O {
                    ev = Some(f.evidence.json());
                }
                out.push((i + 1, f.state));
            }
        }
        (out, ev)
    }

    #[test]
    fn opens_above_the_ratio_naming_the_codes() {
        let (got, ev) = run(cfg(), &[(90, 6, 4); 3]);
        assert_eq!(got, vec![(1, O)]);
        let ev = ev.unwrap();
        assert_eq!((ev["s502"].as_u64(), ev["s504"].as_u64()), (Some(6), Some(4)));
        assert_eq!(ev["responses"], 100);
        assert_eq!(ev["ratio"], 0.1);
        assert_eq!(ev["processes"][0]["comm"], "nginx");
        assert_eq!(ev["other_5xx"], 0);
    }

    #[test]
    fn at_the_ratio_or_below_the_rate_is_silent() {
        // Exactly 5 %: not above.
        assert!(run(cfg(), &[(95, 5, 0); 15]).0.is_empty());
        // 100 % errors but one every two seconds: below 1/s.
        assert!(run(cfg(), &[(0, 1, 0), (0, 0, 0)].repeat(8)).0.is_empty());
        // Healthy traffic.
        assert!(run(cfg(), &[(500, 0, 0); 15]).0.is_empty());
    }

    #[test]
    fn clears_once_the_window_is_clean() {
        let mut s = vec![(10, 10, 0); 2];
        s.extend(vec![(100, 0, 0); 15]);
        let (got, _) = run(cfg(), &s);
        // At 11 s the window [1, 11] holds 10 of the 20 errors and 1010 responses (< 5 %);
        // cleared 2 s later.
        assert_eq!(got.first(), Some(&(1, O)));
        assert_eq!(got.last().map(|g| g.1), Some(C));
        assert_eq!(got.len(), 2, "{got:?}");
    }
}
