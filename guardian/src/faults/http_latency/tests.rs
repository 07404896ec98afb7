use std::time::{Duration, Instant};

use guardian_common::http::LAT_BUCKETS;
use serde_json::Value;

use super::latency::{p95, Learned};
use super::*;
use crate::faults::ranges::Validate;
use crate::model::http::ServiceCounts;
use crate::model::FaultState::{self, Cleared as C, Opened as O};

fn hist(pairs: &[(usize, u64)]) -> [u64; LAT_BUCKETS] {
    let mut h = [0; LAT_BUCKETS];
    for &(i, c) in pairs {
        h[i] = c;
    }
    h
}

#[test]
fn p95_is_interpolated_in_the_bucket_of_rank_95() {
    assert_eq!(p95(&[0; LAT_BUCKETS]), None);
    // 100 requests in [0.5, 1) ms: rank 95 of 100 → 0.5 + 0.5 * 0.95.
    assert_eq!(p95(&hist(&[(1, 100)])), Some((0.975, 1)));
    // 94 fast, 6 in [250, 500) ms: rank 95 is the first slow one.
    let (v, b) = p95(&hist(&[(0, 94), (9, 6)])).unwrap();
    assert_eq!(b, 9);
    assert!((v - (250.0 + 250.0 / 6.0)).abs() < 1e-9, "{v}");
    // 95 fast, 5 slow: rank 95 is still fast.
    assert_eq!(p95(&hist(&[(0, 95), (9, 5)])).map(|p| p.1), Some(0));
    // One request: rank 1.
    assert_eq!(p95(&hist(&[(7, 1)])), Some((100.0, 7)));
    // The open last bucket gives its lower bound, 30 s.
    assert_eq!(p95(&hist(&[(15, 3)])), Some((30_000.0, 15)));
}

#[test]
fn the_baseline_is_the_median_of_consecutive_windows_once_learned() {
    let t0 = Instant::now();
    let w = Duration::from_secs(10);
    let mut l = Learned::new(t0);
    // Less than a window since first seen: nothing learned.
    assert!(!l.learn(t0 + Duration::from_secs(5), w, 1.0, 3));
    assert!(l.learn(t0 + Duration::from_secs(10), w, 1.0, 3));
    assert!(!l.learn(t0 + Duration::from_secs(15), w, 99.0, 3));
    assert_eq!(l.baseline(3), None);
    assert!(l.learn(t0 + Duration::from_secs(20), w, 5.0, 3));
    assert_eq!(l.baseline(2), Some(3.0));
    assert!(l.learn(t0 + Duration::from_secs(30), w, 2.0, 3));
    assert_eq!(l.baseline(3), Some(2.0));
    // One odd window does not move the median; the oldest is forgotten.
    assert!(l.learn(t0 + Duration::from_secs(40), w, 500.0, 3));
    assert_eq!(l.p95s.len(), 3);
    assert_eq!(l.baseline(3), Some(5.0));
    // A skipped window moves the start of the next one.
    l.skip(t0 + Duration::from_secs(50), w);
    assert!(!l.learn(t0 + Duration::from_secs(55), w, 1.0, 3));
}

#[test]
fn judge_needs_requests_a_baseline_the_factor_and_the_floor() {
    let c = Config::default();
    assert_eq!(judge(&c, 19, 900.0, Some(1.0)), Verdict::TooFew);
    assert_eq!(judge(&c, 20, 900.0, None), Verdict::Learning);
    assert_eq!(judge(&c, 20, 900.0, Some(1.0)), Verdict::Degraded);
    // Twice the baseline is not more than twice.
    assert_eq!(judge(&c, 20, 400.0, Some(200.0)), Verdict::Healthy);
    assert_eq!(judge(&c, 20, 400.1, Some(200.0)), Verdict::Degraded);
    // 50 times the baseline but only 49 ms more: under the absolute floor.
    assert_eq!(judge(&c, 20, 50.0, Some(1.0)), Verdict::Healthy);
    assert_eq!(judge(&c, 20, 101.0, Some(1.0)), Verdict::Degraded);
}

#[test]
fn bad_values_are_one_sentence() {
    let mut c = Config::default();
    assert!(c.validate("detect.http_latency").is_ok());
    c.factor = Factor(1.0);
    let e = c.validate("detect.http_latency").unwrap_err();
    assert_eq!(e.key, "detect.http_latency.factor");
    assert_eq!(
        e.what,
        "1 is out of range; expected a factor greater than 1 and at most 1000"
    );
    c.factor = Factor(f64::NAN);
    assert!(c.validate("detect.http_latency").is_err());
    let c = Config {
        min_requests: 0,
        ..Default::default()
    };
    let e = c.validate("detect.http_latency").unwrap_err();
    assert_eq!(e.key, "detect.http_latency.min_requests");
    let c = Config {
        window_ms: 0,
        ..Default::default()
    };
    assert!(c.validate("detect.http_latency").is_err());
    let t: Config = toml::from_str("factor = 3.5\nmin_increase_ms = 50\n").unwrap();
    assert_eq!((t.factor, t.min_increase_ms), (Factor(3.5), 50));
}

fn cfg() -> Config {
    Config {
        window_ms: 5_000,
        min_requests: 10,
        baseline_windows: 3,
        hysteresis: Hysteresis::new(0, 2_000, 10_000),
        ..Default::default()
    }
}

/// One sample per second; each second adds (requests, bucket) to two nginx workers of
/// 10.0.0.1:80 (half each).
fn run(cfg: Config, secs: &[(u64, usize)]) -> (Vec<(usize, FaultState)>, Option<Value>) {
    let mut d = HttpLatency::new(cfg);
    let t0 = Instant::now();
    let w = |pid| ServiceCounts {
        addr: "10.0.0.1".into(),
        port: 80,
        pid,
        comm: "nginx".into(),
        lat: vec![0; LAT_BUCKETS],
        ..Default::default()
    };
    let (mut a, mut b) = (w(10), w(11));
    let mut out = vec![];
    let mut ev = None;
    let empty = HttpSample {
        netns: 9,
        services: vec![],
    };
    d.observe(&Input::Http(empty), t0);
    for (i, &(n, bucket)) in secs.iter().enumerate() {
        a.lat[bucket] += n / 2;
        a.s2xx += n / 2;
        b.lat[bucket] += n - n / 2;
        b.s2xx += n - n / 2;
        let s = HttpSample {
            netns: 9,
            services: vec![a.clone(), b.clone()],
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

/// 20 s at 10 requests/s in [0.5, 1) ms: three windows learned (at 5, 10, 15 s).
fn fast(secs: usize) -> Vec<(u64, usize)> {
    vec![(10, 1); secs]
}

#[test]
fn a_slow_service_opens_against_its_baseline_and_clears_when_fast_again() {
    let mut s = fast(20);
    // +300 ms: every request in [250, 500) ms.
    s.extend(vec![(10, 9); 6]);
    s.extend(fast(12));
    let (got, ev) = run(cfg(), &s);
    // The first slow second: 10 of 50 requests slow (20 %), p95 in the slow bucket.
    assert_eq!(got.first(), Some(&(21, O)), "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");
    // Fast again at 27 s; the window holds slow ones until 31 s; cleared 2 s later.
    assert_eq!(got[1], (33, C));
    let ev = ev.unwrap();
    assert_eq!(ev["service"], "10.0.0.1:80");
    assert_eq!(ev["requests"], 50);
    assert_eq!((ev["p95_from_ms"].as_f64(), ev["p95_to_ms"].as_f64()), (Some(250.0), Some(500.0)));
    let p = ev["p95_ms"].as_f64().unwrap();
    assert!((250.0..500.0).contains(&p), "{ev}");
    // 50 requests in [0.5, 1) ms per learned window: rank 48 → 0.98.
    assert_eq!(ev["baseline_ms"], 0.98);
    assert_eq!(ev["buckets"][0]["count"], 40);
    assert_eq!(ev["buckets"][1]["count"], 10);
    assert_eq!(ev["buckets"][1]["from_ms"], 250.0);
    assert_eq!(ev["processes"].as_array().map(Vec::len), Some(2));
}

#[test]
fn steady_services_and_slow_starts_are_silent() {
    // Fast all along.
    assert!(run(cfg(), &fast(40)).0.is_empty());
    // Slow all along, from the start: that is this service's normal.
    assert!(run(cfg(), &vec![(10, 9); 40]).0.is_empty());
    // Slow before the baseline is learned (at 15 s): not judged, and learned.
    let mut s = fast(8);
    s.extend(vec![(10, 9); 30]);
    assert!(run(cfg(), &s).0.is_empty());
}

#[test]
fn too_few_requests_are_not_judged() {
    let mut s = fast(20);
    // Idle, then 1 slow request per second: 5 in the window, under min_requests = 10.
    s.extend(vec![(0, 1); 5]);
    s.extend(vec![(1, 9); 20]);
    assert!(run(cfg(), &s).0.is_empty());
}

#[test]
fn degraded_windows_are_not_learned() {
    // Slow for 30 s after the baseline: stays open (the slow windows never become the
    // baseline), then clears once fast again.
    let mut s = fast(20);
    s.extend(vec![(10, 9); 30]);
    s.extend(fast(10));
    let (got, _) = run(cfg(), &s);
    let states: Vec<FaultState> = got.iter().map(|g| g.1).filter(|s| *s != FaultState::Updated).collect();
    assert_eq!(states, vec![O, C], "{got:?}");
    assert_eq!(got.last(), Some(&(57, C)), "{got:?}");
}
