//! `http_429` (layer 7, observe only: the remedy is the report in the event): a service that
//! answers 429 Too Many Requests to over 10 % of its requests over 10 s, at least one per
//! second: a rate limit (nginx `limit_req`, an API gateway) is turning clients away.
//!
//! Input and service grouping as `http_5xx` (`Input::Http`, one service per namespace and
//! local address:port). Ratio = new 429 / new responses in the window, rate = new 429 /
//! window; opens when ratio > `ratio` and rate >= `min_per_s`.
use std::time::Instant;

use super::http_5xx::ratio::{self, Judge};
use super::http_5xx::services::{Services, RESPONSES, S429, S4XX};
use super::tracker::{FaultMeta, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::http::HttpSample;
use crate::model::Severity;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::Http_429;
crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Fraction of 429 responses above which the service is turning clients away.
        pub ratio: f64,
        /// Fewer 429 per second than this over the window: no judgement.
        pub min_per_s: f64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ratio: 0.1,
            min_per_s: 1.0,
            window_ms: 10_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

pub struct Http429 {
    cfg: Config,
    tracker: Tracker,
    services: Services,
}

impl Http429 {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 7,
                severity: Severity::Warning,
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
            counter: S429,
            ratio: c.ratio,
            min_per_s: c.min_per_s,
            window_ms: c.window_ms,
        };
        let holding = ratio::holding(&mut self.services, s, now, &judge, FAULT.as_str(), |o| {
            super::Evidence::Http_429(Evidence {
                per_s: o.per_s,
                min_per_s: c.min_per_s,
                processes: o.svc.processes.clone(),
                ratio: o.ratio,
                responses: o.d.v[RESPONSES],
                s429: o.d.v[S429],
                s4xx: o.d.v[S4XX],
                service: o.svc.name.clone(),
                threshold: c.ratio,
                window_ms: c.window_ms,
            })
        });
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

pub fn key(netns: u32, service: &str) -> String {
    ratio::key(FAULT.as_str(), netns, service)
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> Http429 {
    Http429::new(cfg.clone())
}

impl Detector for Http429 {
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

    /// One sample per second; each second adds (2xx, 429, other 4xx) to two nginx workers.
    fn run(secs: &[(u64, u64, u64)]) -> (Vec<(usize, FaultState)>, Option<Value>) {
        let mut d = Http429::new(cfg());
        let t0 = Instant::now();
        let w = |pid| ServiceCounts {
            addr: "::1".into(),
            port: 8080,
            pid,
            comm: "nginx".into(),
            ..Default::default()
        };
        let (mut a, mut b) = (w(10), w(11));
        let mut out = vec![];
        let mut ev = None;
        d.observe(&Input::Http(HttpSample { netns: 3, services: vec![] }), t0);
        for (i, &(ok, tmr, other)) in secs.iter().enumerate() {
            for c in [&mut a, &mut b] {
                c.s2xx += ok;
                c.s429 += tmr;
                c.s4xx += tmr + other;
            }
            let s = HttpSample {
                netns: 3,
                services: vec![a.clone(), b.clone()],
            };
            for f in d.observe(&Input::Http(s), t0 + Duration::from_secs(i as u64 + 1)) {
                assert_eq!(f.key, key(3, "[::1]:8080"));
                if f.state == O {
                    ev = Some(f.evidence.json());
                }
                out.push((i + 1, f.state));
            }
        }
        (out, ev)
    }

    #[test]
    fn opens_above_the_ratio_summed_over_workers() {
        let (got, ev) = run(&[(40, 6, 4); 3]);
        assert_eq!(got, vec![(1, O)]);
        let ev = ev.unwrap();
        assert_eq!(ev["s429"], 12);
        assert_eq!(ev["s4xx"], 20);
        assert_eq!(ev["responses"], 100);
        assert_eq!(ev["processes"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn other_4xx_and_low_rates_are_silent() {
        // 404s are not rate limiting.
        assert!(run(&[(10, 0, 90); 12]).0.is_empty());
        // 10 %: not above.
        assert!(run(&[(45, 5, 0); 12]).0.is_empty());
        // All 429 but 0.4 per second over the window.
        assert!(run(&[(0, 1, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)].repeat(3))
            .0
            .is_empty());
    }

    #[test]
    fn clears_after_the_limit_stops() {
        let mut s = vec![(10, 10, 0); 2];
        s.extend(vec![(100, 0, 0); 15]);
        let (got, _) = run(&s);
        assert_eq!(got.first(), Some(&(1, O)));
        assert_eq!(got.last().map(|g| g.1), Some(C));
        assert_eq!(got.len(), 2, "{got:?}");
    }
}
