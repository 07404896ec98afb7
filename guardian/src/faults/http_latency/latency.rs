//! Per-service latency histograms over a window, their p95, and the baseline learned from a
//! service's own healthy windows.
//!
//! The kernel counts responses per (namespace, process, local address:port) in the buckets of
//! `guardian_common::http::LAT_BOUND_US`; a service here is one (namespace, address:port)
//! summed over its processes, with `http_5xx`'s per-service windows (nginx's workers are
//! several processes).
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use guardian_common::http::{LAT_BOUND_US, LAT_BUCKETS};

use crate::faults::http_5xx::services::{PerService, Service};
use crate::model::http::{HttpSample, ServiceCounts};

/// Lower bound of bucket `i`, milliseconds.
pub fn from_ms(i: usize) -> f64 {
    match i {
        0 => 0.0,
        i => LAT_BOUND_US[(i - 1).min(LAT_BUCKETS - 2)] as f64 / 1000.0,
    }
}

/// Upper bound (exclusive) of bucket `i`, milliseconds; None for the last, open bucket.
pub fn to_ms(i: usize) -> Option<f64> {
    LAT_BOUND_US.get(i).map(|us| *us as f64 / 1000.0)
}

/// The 95th percentile of a histogram: the bucket holding the request of rank ⌈0.95 n⌉, and
/// a value interpolated linearly inside it (as Prometheus' `histogram_quantile`; the open last
/// bucket gives its lower bound). None without requests.
pub fn p95(lat: &[u64; LAT_BUCKETS]) -> Option<(f64, usize)> {
    let n: u64 = lat.iter().sum();
    if n == 0 {
        return None;
    }
    // ⌈0.95 n⌉ in integers.
    let rank = (95 * n).div_ceil(100);
    let mut below = 0;
    for (i, &c) in lat.iter().enumerate() {
        if c > 0 && below + c >= rank {
            let lo = from_ms(i);
            let v = match to_ms(i) {
                Some(hi) => lo + (hi - lo) * (rank - below) as f64 / c as f64,
                None => lo,
            };
            return Some((v, i));
        }
        below += c;
    }
    None
}

/// One service's requests over the window.
#[derive(Debug, Clone)]
pub struct Window {
    pub lat: [u64; LAT_BUCKETS],
    pub span: Duration,
}

impl Window {
    pub fn requests(&self) -> u64 {
        self.lat.iter().sum()
    }
}

/// Cumulative histograms per namespace and service, for deltas over a window (the buckets
/// are `http_5xx`'s per-service counters).
#[derive(Debug)]
pub struct Histograms(PerService<LAT_BUCKETS>);

impl Default for Histograms {
    fn default() -> Self {
        Self(PerService::new(buckets))
    }
}

/// A process's histogram (a shorter one padded with zeros).
fn buckets(c: &ServiceCounts) -> [u64; LAT_BUCKETS] {
    let mut b = [0; LAT_BUCKETS];
    for (a, v) in b.iter_mut().zip(&c.lat) {
        *a = *v;
    }
    b
}

impl Histograms {
    /// Records a sample; returns its services with their histograms over `window`.
    pub fn observe(
        &mut self,
        s: &HttpSample,
        now: Instant,
        window: Duration,
    ) -> Vec<(Service, Window)> {
        self.0
            .observe(s, now, window)
            .into_iter()
            .map(|(svc, lat, span)| (svc, Window { lat, span }))
            .collect()
    }
}

/// The p95 of a service's last healthy windows: their median (robust to one odd window).
#[derive(Debug, Clone)]
pub struct Learned {
    /// The end of the last window learned (or when the service was first seen): windows
    /// learned are consecutive, not overlapping.
    pub last: Instant,
    pub p95s: VecDeque<f64>,
}

impl Learned {
    pub fn new(now: Instant) -> Self {
        Self {
            last: now,
            p95s: VecDeque::new(),
        }
    }

    /// Learns one window's p95 if a whole window has passed since the last one; keeps `keep`.
    pub fn learn(&mut self, now: Instant, window: Duration, p95: f64, keep: usize) -> bool {
        if now.saturating_duration_since(self.last) < window {
            return false;
        }
        self.last = now;
        self.p95s.push_back(p95);
        while self.p95s.len() > keep {
            self.p95s.pop_front();
        }
        true
    }

    /// Lets a window pass without learning it (too few requests, or degraded).
    pub fn skip(&mut self, now: Instant, window: Duration) {
        if now.saturating_duration_since(self.last) >= window {
            self.last = now;
        }
    }

    /// The median once `need` windows are learned.
    pub fn baseline(&self, need: usize) -> Option<f64> {
        if self.p95s.len() < need.max(1) {
            return None;
        }
        let mut v: Vec<f64> = self.p95s.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        })
    }
}
