//! `dns_failure` (layer 4, observe only): over 20 % of the DNS queries to one resolver failing
//! over 10 s, with at least `min_queries` queries in the window.
//!
//! Input: cumulative per-resolver counts from tcx (`Input::Dns`): queries sent, responses by
//! rcode class. Over the window `[now - window, now]`:
//! - rcode failures = new SERVFAIL + REFUSED responses;
//! - unanswered = queries sent in `[now - window, now - timeout]` (old enough to have been
//!   answered) minus every response received in the window, if positive: a query counts as
//!   unanswered once `timeout_ms` has passed without a response. Responses to younger queries
//!   can only lower the count (an underestimate by at most the answered queries of the last
//!   `timeout_ms`), so a healthy resolver never shows unanswered queries, whatever its query
//!   rate does; for a resolver that answers nothing the count is exact;
//! - ratio = (rcode failures + unanswered) / queries sent in the window.
//!
//! NXDOMAIN is an answer, not a failure. The fault opens when the ratio exceeds
//! `failure_ratio` (after `hold_ms`, 0 by default: the window already smooths) and clears after
//! the condition has been absent for `clear_after_ms` (fewer queries than `min_queries` in the
//! window is "absent": too few to judge).
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};
use crate::model::sample::DnsSample;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::DnsFailure;
crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Fraction of failing queries above which the resolver is failing.
        pub failure_ratio: f64,
        pub window_ms: u64,
        /// Fewer queries than this in the window: no judgement.
        pub min_queries: u64,
        /// A query without a response after this long is unanswered.
        pub timeout_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            failure_ratio: 0.2,
            window_ms: 10_000,
            min_queries: 10,
            timeout_ms: 2_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

/// Cumulative counts of one resolver at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Point {
    queries: u64,
    answers: u64,
    servfail: u64,
    refused: u64,
    nxdomain: u64,
}

#[derive(Debug, Default)]
struct History {
    /// Oldest first; the first point is the baseline.
    points: VecDeque<(Instant, Point)>,
    ifaces: Vec<String>,
}

impl History {
    /// The latest point at or before `t`, or the baseline.
    fn at(&self, t: Option<Instant>) -> Point {
        let Some(t) = t else {
            return self.points.front().map(|p| p.1).unwrap_or_default();
        };
        self.points
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .or(self.points.front())
            .map(|p| p.1)
            .unwrap_or_default()
    }
}

pub struct DnsFailure {
    cfg: Config,
    tracker: Tracker,
    hist: HashMap<(u32, String), History>,
    /// Time of the previous sample per namespace: a resolver that appears has counted from 0
    /// since then.
    last_sample: HashMap<u32, Instant>,
}

impl DnsFailure {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 4,
                severity: Severity::Warning,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            hist: HashMap::new(),
            last_sample: HashMap::new(),
        }
    }

    fn on_sample(&mut self, s: &DnsSample, now: Instant) -> Vec<Finding> {
        // Sum over the interfaces a resolver was seen on.
        let mut cur: HashMap<String, (Point, Vec<String>)> = HashMap::new();
        for r in &s.resolvers {
            let e = cur.entry(r.addr.clone()).or_default();
            e.0.queries += r.queries;
            e.0.answers += r.answers();
            e.0.servfail += r.servfail;
            e.0.refused += r.refused;
            e.0.nxdomain += r.nxdomain;
            if let Some(i) = &r.iface {
                if !e.1.contains(i) {
                    e.1.push(i.clone());
                }
            }
        }
        let prev_sample = self.last_sample.insert(s.netns, now);
        let window = Duration::from_millis(self.cfg.window_ms);
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let keep = window + timeout + Duration::from_secs(1);
        let mut holding = Vec::new();
        let mut addrs: Vec<&String> = cur.keys().collect();
        addrs.sort();
        for addr in addrs {
            let (point, ifaces) = &cur[addr];
            let h = self.hist.entry((s.netns, addr.clone())).or_default();
            if h.points.is_empty() {
                h.points
                    .push_back((prev_sample.unwrap_or(now), Point::default()));
            }
            h.points.push_back((now, *point));
            h.ifaces = ifaces.clone();
            // Forget points no lookup can reach, keeping one at or before the oldest lookup.
            while h.points.len() > 2
                && now
                    .checked_sub(keep)
                    .is_some_and(|old| h.points[1].0 <= old)
            {
                h.points.pop_front();
            }
            let back = |d: Duration| now.checked_sub(d);
            let start = h.at(back(window));
            let queries = point.queries.saturating_sub(start.queries);
            let rcode_failed =
                (point.servfail + point.refused).saturating_sub(start.servfail + start.refused);
            // Queries of the window old enough to have been answered, minus every answer
            // received in the window (answers to younger queries only lower the count).
            let unanswered = if timeout < window {
                let old = h.at(back(timeout));
                (old.queries.saturating_sub(start.queries))
                    .saturating_sub(point.answers.saturating_sub(start.answers))
            } else {
                0
            };
            let failed = (rcode_failed + unanswered).min(queries);
            if queries < self.cfg.min_queries.max(1) {
                continue;
            }
            let ratio = failed as f64 / queries as f64;
            if ratio <= self.cfg.failure_ratio {
                continue;
            }
            holding.push(Holding {
                key: key(s.netns, addr),
                netns: Some(s.netns),
                subject: Subject {
                    addr: Some(addr.clone()),
                    port: Some(53),
                    iface: (ifaces.len() == 1).then(|| ifaces[0].clone()),
                    ..Default::default()
                },
                evidence: super::Evidence::DnsFailure(Evidence {
                    resolver: addr.clone(),
                    window_ms: self.cfg.window_ms,
                    queries,
                    failed,
                    servfail: point.servfail.saturating_sub(start.servfail),
                    refused: point.refused.saturating_sub(start.refused),
                    unanswered,
                    nxdomain: point.nxdomain.saturating_sub(start.nxdomain),
                    failure_ratio: (ratio * 1000.0).round() / 1000.0,
                    threshold: self.cfg.failure_ratio,
                    timeout_ms: self.cfg.timeout_ms,
                    ifaces: ifaces.clone(),
                }),
            });
        }
        // Resolvers that vanished from the map (LRU eviction) are forgotten.
        self.hist
            .retain(|(ns, a), _| *ns != s.netns || cur.contains_key(a));
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

pub fn key(netns: u32, addr: &str) -> String {
    format!("dns:{netns}:{addr}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> DnsFailure {
    DnsFailure::new(cfg.clone())
}

impl Detector for DnsFailure {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        match input {
            Input::Dns(s) => self.on_sample(s, now),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultState;
    use crate::model::sample::ResolverCounts;

    const R1: &str = "10.0.0.53";
    const R2: &str = "10.0.0.54";

    fn cfg() -> Config {
        Config {
            hysteresis: Hysteresis {
                clear_after_ms: 2_000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    /// What a resolver does with each second's queries: (queries, noerror, servfail, dropped).
    #[derive(Clone, Copy)]
    struct Sec {
        q: u64,
        ok: u64,
        servfail: u64,
        nx: u64,
    }

    fn sec(q: u64, ok: u64, servfail: u64) -> Sec {
        Sec {
            q,
            ok,
            servfail,
            nx: 0,
        }
    }

    /// One sample per second for R1 (and R2 answering everything, 10 q/s); returns
    /// (second, state, key) and the evidence of the first opened finding.
    fn run(cfg: Config, secs: &[Sec]) -> (Vec<(usize, FaultState, String)>, Option<Value>) {
        let mut d = DnsFailure::new(cfg);
        let t0 = Instant::now();
        let mut c = ResolverCounts {
            addr: R1.into(),
            ifindex: 2,
            iface: Some("veth0".into()),
            ..Default::default()
        };
        let mut c2 = ResolverCounts {
            addr: R2.into(),
            ..c.clone()
        };
        let mut out = vec![];
        let mut ev = None;
        for (i, s) in secs.iter().enumerate() {
            c.queries += s.q;
            c.noerror += s.ok;
            c.servfail += s.servfail;
            c.nxdomain += s.nx;
            c2.queries += 10;
            c2.noerror += 10;
            let sample = DnsSample {
                netns: 9,
                resolvers: vec![c.clone(), c2.clone()],
            };
            for f in d.observe(&Input::Dns(sample), t0 + Duration::from_secs(i as u64 + 1)) {
                if f.state == FaultState::Opened && ev.is_none() {
                    ev = Some(f.evidence.json());
                }
                out.push((i + 1, f.state, f.key));
            }
        }
        (out, ev)
    }

    use serde_json::Value;
    use FaultState::{Cleared as C, Opened as O};

    fn k() -> String {
        key(9, R1)
    }

    #[test]
    fn twenty_percent_servfail_does_not_open_twenty_one_does() {
        // 100 q/s, 20 % SERVFAIL: exactly the threshold, not above.
        let (got, _) = run(cfg(), &[sec(100, 80, 20); 15]);
        assert!(got.is_empty(), "{got:?}");
        let (got, ev) = run(cfg(), &[sec(100, 79, 21); 10]);
        assert_eq!(got, vec![(1, O, k())]);
        let ev = ev.unwrap();
        assert_eq!(ev["servfail"], 21);
        assert_eq!(ev["queries"], 100);
    }

    #[test]
    fn nxdomain_is_an_answer_not_a_failure() {
        let s = Sec {
            q: 100,
            ok: 0,
            servfail: 0,
            nx: 100,
        };
        assert!(run(cfg(), &[s; 15]).0.is_empty());
    }

    #[test]
    fn too_few_queries_do_not_judge() {
        // 1 query per second, all failing: 9 in the window by second 9, 10 at second 10.
        let (got, _) = run(cfg(), &[sec(1, 0, 1); 10]);
        assert_eq!(got, vec![(10, O, k())]);
        let (got, _) = run(cfg(), &[sec(1, 0, 1); 9]);
        assert!(got.is_empty());
    }

    #[test]
    fn unanswered_queries_count_after_the_timeout() {
        // 20 q/s answered, then from second 5 nothing answered (drops).
        let mut s = vec![sec(20, 20, 0); 5];
        s.extend(vec![sec(20, 0, 0); 10]);
        let (got, ev) = run(cfg(), &s);
        // Drops start after the sample at 5 s; those queries time out 2 s later: at 8 s 20 of
        // 160 (12.5 %), at 9 s 40 of 180 (22 %).
        assert_eq!(got, vec![(9, O, k())], "{got:?}");
        let ev = ev.unwrap();
        assert_eq!(ev["unanswered"], 40, "{ev}");
        assert_eq!(ev["queries"], 180, "{ev}");
    }

    #[test]
    fn slow_but_answered_queries_are_not_unanswered() {
        // Answers arrive one second after their queries (within the timeout).
        let mut s = vec![sec(20, 0, 0)];
        s.extend(vec![sec(20, 20, 0); 14]);
        assert!(run(cfg(), &s).0.is_empty());
    }

    #[test]
    fn a_healthy_resolver_whose_query_rate_falls_is_not_failing() {
        // Answered at once; the rate drops from 100/s to 10/s, then to nothing.
        let mut s = vec![sec(100, 100, 0); 5];
        s.extend(vec![sec(10, 10, 0); 10]);
        s.extend(vec![sec(0, 0, 0); 5]);
        assert!(run(cfg(), &s).0.is_empty());
    }

    #[test]
    fn clears_after_failures_stop_without_flapping() {
        let mut s = vec![sec(100, 0, 100); 3];
        // Healthy: the window still holds the failures for a while, then clears.
        s.extend(vec![sec(100, 100, 0); 16]);
        let (got, _) = run(cfg(), &s);
        // At 11 s the window holds 200 failures of 1000 queries: 20 %, not above; cleared
        // 2 s later. No clear/re-open in between.
        assert_eq!(got, vec![(1, O, k()), (13, C, k())], "{got:?}");
    }

    #[test]
    fn resolvers_are_separate() {
        let (got, _) = run(cfg(), &[sec(100, 0, 100); 5]);
        assert!(got.iter().all(|g| g.2 == k()), "R2 answers all: {got:?}");
    }
}
