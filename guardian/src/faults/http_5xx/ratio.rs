//! What `http_5xx` and `http_429` share: per service, the share of one response class over the
//! window (`counter` / responses) and its rate; a service over both thresholds holds, with
//! the evidence its detector makes of it.
use std::time::{Duration, Instant};

use super::services::{Delta, Service, Services};
use crate::faults::tracker::Holding;
use crate::faults::Evidence;
use crate::model::http::HttpSample;
use crate::model::Subject;

/// The thresholds of one detector.
pub struct Judge {
    /// The counter judged (`services::S5XX`, `services::S429`).
    pub counter: usize,
    /// Share of the responses above which the service holds.
    pub ratio: f64,
    /// Fewer per second than this over the window: no judgement.
    pub min_per_s: f64,
    pub window_ms: u64,
}

/// A service over both thresholds.
pub struct Over<'a> {
    pub svc: &'a Service,
    pub d: &'a Delta,
    /// Rounded to 3 decimals, as the evidence shows them.
    pub ratio: f64,
    pub per_s: f64,
}

/// Records sample `s`; returns a holding per service over both thresholds, keyed
/// `<key_prefix>:<netns>:<service>`.
pub fn holding(
    services: &mut Services,
    s: &HttpSample,
    now: Instant,
    judge: &Judge,
    key_prefix: &str,
    evidence: impl Fn(Over) -> Evidence,
) -> Vec<Holding> {
    let window = Duration::from_millis(judge.window_ms);
    let mut out = Vec::new();
    for (svc, d) in services.observe(s, now, window) {
        let (ratio, per_s) = (d.ratio(judge.counter), d.per_s(judge.counter, window));
        if d.v[judge.counter] == 0 || ratio <= judge.ratio || per_s < judge.min_per_s {
            continue;
        }
        out.push(Holding {
            key: key(key_prefix, s.netns, &svc.name),
            netns: Some(s.netns),
            subject: Subject {
                addr: (!svc.addr.is_empty()).then(|| svc.addr.clone()),
                port: (svc.port != 0).then_some(svc.port),
                ..Default::default()
            },
            evidence: evidence(Over {
                svc: &svc,
                d: &d,
                ratio: round3(ratio),
                per_s: round3(per_s),
            }),
        });
    }
    out
}

pub fn key(prefix: &str, netns: u32, service: &str) -> String {
    format!("{prefix}:{netns}:{service}")
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
