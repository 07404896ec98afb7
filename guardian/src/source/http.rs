//! HTTP responses per service from the syscall tracepoints' map (`HTTP_STATS`), cumulative
//! since attach; one `Input::Http` per namespace with services. Present only when the HTTP
//! programs are attached (`guardian run --http`).
use std::collections::{BTreeMap, HashMap, HashSet};

use aya::maps::{MapData, PerCpuHashMap};
use guardian_common::http::{HttpKey, HttpStats, LAT_BUCKETS};

use super::decode;
use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::model::http::{HttpSample, ServiceCounts};
use crate::probes::{http::MAP, ProbeError, Probes};

pub struct HttpSampler {
    map: PerCpuHashMap<MapData, HttpKey, HttpStats>,
    /// Process names by pid, read once from /proc (a process keeps its pid), for the pids in
    /// the map.
    comms: HashMap<u32, String>,
}

impl HttpSampler {
    /// Takes the map from the loaded probes; None when the HTTP programs are not attached.
    pub fn new(probes: &mut Probes) -> Result<Option<Self>, ProbeError> {
        if !probes.http_attached() {
            return Ok(None);
        }
        let map = PerCpuHashMap::try_from(probes.take_map(MAP)?)
            .map_err(|_| ProbeError::MissingMap(MAP))?;
        Ok(Some(Self {
            map,
            comms: HashMap::new(),
        }))
    }
}

/// Sums the per-CPU values of one key into counts (`comm` left empty).
pub fn counts(key: &HttpKey, per_cpu: impl IntoIterator<Item = HttpStats>) -> ServiceCounts {
    let mut c = ServiceCounts {
        addr: decode::addr(key.family, &key.addr)
            .map(|a| a.to_string())
            .unwrap_or_default(),
        port: key.port,
        pid: key.tgid,
        lat: vec![0; LAT_BUCKETS],
        ..Default::default()
    };
    for s in per_cpu {
        c.s2xx += s.s2xx;
        c.s3xx += s.s3xx;
        c.s4xx += s.s4xx;
        c.s429 += s.s429;
        c.s5xx += s.s5xx;
        c.s500 += s.s500;
        c.s502 += s.s502;
        c.s503 += s.s503;
        c.s504 += s.s504;
        c.lat_sum_ns += s.lat_sum_ns;
        for (a, b) in c.lat.iter_mut().zip(s.lat) {
            *a += b;
        }
    }
    c
}

impl Sampler for HttpSampler {
    fn name(&self) -> &'static str {
        "http"
    }

    fn sample(&mut self, _ctx: &mut TickContext) -> Vec<Input> {
        let mut by: BTreeMap<u32, Vec<ServiceCounts>> = BTreeMap::new();
        // Each key once: when the kernel evicts the entry an iteration stands on (a full LRU
        // map), the next key is looked up from the first bucket again, and entries already
        // read come back. Counted twice, a service's total would jump, then fall back, which
        // the windows would read as a restart.
        let mut read = HashSet::new();
        for (k, v) in self.map.iter().filter_map(Result::ok) {
            if !read.insert(k) {
                continue;
            }
            let mut c = counts(&k, v.iter().copied());
            c.comm = self
                .comms
                .entry(k.tgid)
                .or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/{}/comm", k.tgid))
                        .map(|s| s.trim_end().to_string())
                        .unwrap_or_default()
                })
                .clone();
            by.entry(k.netns).or_default().push(c);
        }
        // Names of the processes still in the map only: pids come and go (and are reused).
        let pids: HashSet<u32> = by.values().flatten().map(|c| c.pid).collect();
        self.comms.retain(|pid, _| pids.contains(pid));
        by.into_iter()
            .map(|(netns, mut services)| {
                services.sort_by(|a, b| (a.port, &a.addr, a.pid).cmp(&(b.port, &b.addr, b.pid)));
                Input::Http(HttpSample { netns, services })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cpus_and_names_the_service() {
        let k = HttpKey {
            netns: 7,
            tgid: 42,
            family: guardian_common::AF_INET,
            port: 8080,
            addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let mut a = HttpStats {
            s5xx: 2,
            s502: 2,
            ..Default::default()
        };
        a.lat[3] = 2;
        let b = HttpStats {
            s2xx: 5,
            s4xx: 1,
            s429: 1,
            ..Default::default()
        };
        let c = counts(&k, [a, b]);
        assert_eq!(c.service(), "10.0.0.1:8080");
        assert_eq!((c.s2xx, c.s429, c.s502, c.responses()), (5, 1, 2, 8));
        assert_eq!(c.lat[3], 2);
        let unresolved = counts(&HttpKey::default(), []);
        assert_eq!(unresolved.service(), ":0");
    }
}
