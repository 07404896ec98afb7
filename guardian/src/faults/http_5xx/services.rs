//! Per-service windowed response counts, shared by the `http_*` detectors: the kernel counts
//! per (namespace, process, local address:port); a service here is one (namespace,
//! address:port), the growth of its processes' entries added up (nginx's workers are several
//! processes). Each entry is its own series, so one evicted from the LRU map and made again
//! from zero restarts alone (`Windows::restarting`) instead of making the sum go down.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::faults::window::Windows;
use crate::model::http::{HttpSample, ServiceCounts};

/// The counters tracked per service, in this order.
pub const RESPONSES: usize = 0;
pub const S5XX: usize = 1;
pub const S500: usize = 2;
pub const S502: usize = 3;
pub const S503: usize = 4;
pub const S504: usize = 5;
pub const S4XX: usize = 6;
pub const S429: usize = 7;
const N: usize = 8;

fn values(c: &ServiceCounts) -> [u64; N] {
    [
        c.responses(),
        c.s5xx,
        c.s500,
        c.s502,
        c.s503,
        c.s504,
        c.s4xx,
        c.s429,
    ]
}

/// A server process of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Process {
    pub comm: String,
    pub pid: u32,
}

/// One service of a sample, its processes and its totals.
#[derive(Debug, Clone)]
pub struct Service {
    /// `addr:port`.
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub processes: Vec<Process>,
}

/// A service's counts over the window.
#[derive(Debug, Clone)]
pub struct Delta {
    pub v: [u64; N],
    /// The span the deltas cover (at most the window, shorter right after the start).
    pub span: Duration,
}

impl Delta {
    /// `v[i]` per second over the whole window, even right after the start when the span is
    /// shorter: a short burst must reach `min_per_s * window` before it counts.
    pub fn per_s(&self, i: usize, window: Duration) -> f64 {
        self.v[i] as f64 / window.as_secs_f64().max(0.001)
    }

    /// `v[i]` / responses (0 without responses).
    pub fn ratio(&self, i: usize) -> f64 {
        match self.v[RESPONSES] {
            0 => 0.0,
            r => self.v[i] as f64 / r as f64,
        }
    }
}

/// Cumulative counts per namespace and service, for deltas over a window (the responses by
/// status class of `http_5xx` and `http_429`).
#[derive(Debug)]
pub struct Services(PerService<N>);

impl Default for Services {
    fn default() -> Self {
        Self(PerService::new(values))
    }
}

impl Services {
    /// Records a sample; returns its services with their counts over `window`.
    pub fn observe(
        &mut self,
        s: &HttpSample,
        now: Instant,
        window: Duration,
    ) -> Vec<(Service, Delta)> {
        self.0
            .observe(s, now, window)
            .into_iter()
            .map(|(svc, v, span)| (svc, Delta { v, span }))
            .collect()
    }
}

/// `N` cumulative counters per namespace and service, read from each process's counts by
/// `values` and summed over the service's processes, for deltas over a window: what the
/// `http_*` detectors share (`http_latency` keeps its histogram buckets in one).
#[derive(Debug)]
pub struct PerService<const N: usize> {
    values: fn(&ServiceCounts) -> [u64; N],
    /// Series per (service, pid, counter).
    by_ns: HashMap<u32, Windows<(String, u32, usize)>>,
}

impl<const N: usize> PerService<N> {
    pub fn new(values: fn(&ServiceCounts) -> [u64; N]) -> Self {
        Self {
            values,
            by_ns: HashMap::new(),
        }
    }

    /// Records a sample; returns its services (sorted by name) with their counters over
    /// `window` and the span the deltas cover (at most the window, shorter right after the
    /// start).
    pub fn observe(
        &mut self,
        s: &HttpSample,
        now: Instant,
        window: Duration,
    ) -> Vec<(Service, [u64; N], Duration)> {
        let mut services: HashMap<String, Service> = HashMap::new();
        let mut entries: HashMap<(String, u32), [u64; N]> = HashMap::new();
        for c in &s.services {
            let name = c.service();
            services
                .entry(name.clone())
                .or_insert_with(|| Service {
                    name: name.clone(),
                    addr: c.addr.clone(),
                    port: c.port,
                    processes: Vec::new(),
                })
                .processes
                .push(Process {
                    comm: c.comm.clone(),
                    pid: c.pid,
                });
            let e = entries.entry((name, c.pid)).or_insert([0; N]);
            for (a, b) in e.iter_mut().zip((self.values)(c)) {
                *a += b;
            }
        }
        let keep = window + Duration::from_secs(1);
        // The kernel counts since attach, and a namespace's first sample comes with its first
        // service: everything in it is new. (A detector rebuilt by a reload also counts the
        // totals since attach as new once; the window forgets them.)
        let w = self.by_ns.entry(s.netns).or_insert_with(|| {
            let mut w = Windows::restarting();
            let before = now.checked_sub(Duration::from_millis(1)).unwrap_or(now);
            w.observe(before, std::iter::empty(), keep);
            w
        });
        w.observe(
            now,
            entries.iter().flat_map(|((name, pid), v)| {
                (0..N).map(move |i| ((name.clone(), *pid, i), v[i]))
            }),
            keep,
        );
        // Every series still kept counts, an entry missing from this sample included.
        let mut sums: HashMap<&str, ([u64; N], Duration)> = HashMap::new();
        for k in w.keys() {
            if let Some((d, span)) = w.delta(k, now, window) {
                let e = sums.entry(k.0.as_str()).or_insert(([0; N], Duration::ZERO));
                e.0[k.2] += d;
                e.1 = e.1.max(span);
            }
        }
        let mut out: Vec<(Service, [u64; N], Duration)> = services
            .into_values()
            .map(|mut svc| {
                let (v, span) = sums
                    .get(svc.name.as_str())
                    .copied()
                    .unwrap_or(([0; N], Duration::ZERO));
                svc.processes.sort();
                svc.processes.dedup();
                (svc, v, span)
            })
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(pid: u32, s2xx: u64, s502: u64) -> ServiceCounts {
        ServiceCounts {
            addr: "10.0.0.1".into(),
            port: 80,
            pid,
            comm: "nginx".into(),
            s2xx,
            s5xx: s502,
            s502,
            ..Default::default()
        }
    }

    #[test]
    fn sums_processes_and_counts_from_zero_at_first_sight() {
        let mut s = Services::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        let sample = |a, b| HttpSample {
            netns: 1,
            services: vec![svc(10, a, b), svc(11, a, b)],
        };
        // The first sample of a namespace already holds counts: all new.
        let out = s.observe(&sample(5, 1), t0 + Duration::from_secs(1), w);
        assert_eq!(out.len(), 1);
        let (svc, d) = &out[0];
        assert_eq!(svc.name, "10.0.0.1:80");
        assert_eq!(svc.processes.len(), 2);
        assert_eq!((d.v[RESPONSES], d.v[S502], d.v[S5XX]), (12, 2, 2));
        // 20 s later the first counts left the window.
        s.observe(&sample(5, 1), t0 + Duration::from_secs(15), w);
        let out = s.observe(&sample(6, 1), t0 + Duration::from_secs(21), w);
        assert_eq!(out[0].1.v[RESPONSES], 2);
        assert_eq!(out[0].1.v[S502], 0);
    }

    #[test]
    fn an_evicted_worker_entry_neither_loses_nor_repeats_its_counts() {
        let mut s = Services::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        // Two workers answer one 502 a second each; worker 11's entry is evicted at 2 s
        // (missing from that sample) and made again from zero at 3 s.
        let mut got = Vec::new();
        for i in 0..5u64 {
            let mut services = vec![svc(10, 0, i + 1)];
            match i {
                2 => {}
                3 => services.push(svc(11, 0, 1)),
                _ => services.push(svc(11, 0, i + 1 - (i / 3) * 3)),
            }
            let out = s.observe(&HttpSample { netns: 1, services }, t0 + Duration::from_secs(i), w);
            got.push(out[0].1.v[S502]);
        }
        // Worker 11: 1, 2, (lost with the entry), 1, 1 more.
        assert_eq!(got, [2, 4, 5, 7, 9]);
    }
}
