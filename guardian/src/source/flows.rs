//! Flow samples: completed passive handshakes per local port and per peer, and the retransmit
//! pattern of flows that needed the retransmission timer. Counters are cumulative since the
//! daemon attached (detectors compute rates from deltas against their own clock).
use std::collections::{BTreeMap, BTreeSet, HashMap};

use aya::maps::{HashMap as AyaHashMap, MapData};
use guardian_common::{
    flows::{FlowKey, FlowRtx, PortKey},
    AddrKey,
};

use super::decode;
use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::model::{AddrCount, PortCount};
use crate::probes::batch::CounterMap;
use crate::probes::{ProbeError, Probes};

/// At most this many ports, peers and flows per sample, the ones that moved most first.
pub const TOP_N: usize = 64;

use crate::model::sample::{FlowRetrans, FlowSample};

pub struct FlowSampler {
    /// Read whole with one `BPF_MAP_LOOKUP_BATCH` each per tick (an iteration took two
    /// syscalls per key: a few thousand a tick with a few hundred namespaces).
    hs_port: CounterMap<PortKey>,
    hs_peer: CounterMap<AddrKey>,
    flow_rtx: AyaHashMap<MapData, FlowKey, FlowRtx>,
    last_port: HashMap<PortKey, u64>,
    last_peer: HashMap<AddrKey, u64>,
}

/// Every (key, sum over CPUs) of `m`; nothing when the read fails (logged).
fn read_all<K: aya::Pod>(m: &CounterMap<K>) -> Vec<(K, u64)> {
    m.read().unwrap_or_else(|e| {
        tracing::warn!(map = m.name(), error = %e, "reading a handshake map failed");
        Vec::new()
    })
}

/// Top `TOP_N` of `(key, cumulative, delta since last sample)`: most recent movement first,
/// then the largest totals.
fn top<K, T>(mut v: Vec<(K, u64, u64)>, f: impl Fn(K, u64) -> T) -> Vec<T> {
    v.sort_by_key(|e| std::cmp::Reverse((e.2, e.1)));
    v.into_iter().take(TOP_N).map(|(k, c, _)| f(k, c)).collect()
}

impl FlowSampler {
    /// Takes the maps this sampler reads from the loaded probes.
    pub fn new(probes: &mut Probes) -> Result<Self, ProbeError> {
        fn conv<T: TryFrom<aya::maps::Map>>(
            p: &mut Probes,
            name: &'static str,
        ) -> Result<T, ProbeError> {
            T::try_from(p.take_map(name)?).map_err(|_| ProbeError::MissingMap(name))
        }
        fn sums<K: aya::Pod>(
            p: &mut Probes,
            name: &'static str,
        ) -> Result<CounterMap<K>, ProbeError> {
            Ok(CounterMap::new(name, p.take_map(name)?)?)
        }
        Ok(Self {
            hs_port: sums(probes, "HS_PORT")?,
            hs_peer: sums(probes, "HS_PEER")?,
            flow_rtx: conv(probes, "FLOW_RTX")?,
            last_port: HashMap::new(),
            last_peer: HashMap::new(),
        })
    }
}

impl Sampler for FlowSampler {
    fn name(&self) -> &'static str {
        "flows"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let mut ports: BTreeMap<u32, Vec<(PortKey, u64, u64)>> = BTreeMap::new();
        let mut peers: BTreeMap<u32, Vec<(AddrKey, u64, u64)>> = BTreeMap::new();
        let mut flows: BTreeMap<u32, Vec<(FlowKey, FlowRtx, u64)>> = BTreeMap::new();
        let mut netnses: BTreeSet<u32> = ctx.active.iter().copied().collect();
        // Rebuilt every tick so that keys the kernel evicted are forgotten here too.
        let (mut last_port, mut last_peer) = (HashMap::new(), HashMap::new());
        for (k, c) in read_all(&self.hs_port) {
            let d = c.saturating_sub(self.last_port.get(&k).copied().unwrap_or(0));
            last_port.insert(k, c);
            netnses.insert(k.netns);
            ports.entry(k.netns).or_default().push((k, c, d));
        }
        for (k, c) in read_all(&self.hs_peer) {
            let d = c.saturating_sub(self.last_peer.get(&k).copied().unwrap_or(0));
            last_peer.insert(k, c);
            netnses.insert(k.netns);
            peers.entry(k.netns).or_default().push((k, c, d));
        }
        self.last_port = last_port;
        self.last_peer = last_peer;
        for (k, r) in self.flow_rtx.iter().filter_map(Result::ok) {
            if r.rto_full + r.rto_small == 0 {
                continue;
            }
            netnses.insert(k.netns);
            flows
                .entry(k.netns)
                .or_default()
                .push((k, r, r.full_streak as u64));
        }
        let mono = crate::probes::clock::monotonic_ns();
        let addr = |family, raw: &[u8; 16]| {
            decode::addr(family, raw).map_or_else(String::new, |a| a.to_string())
        };
        // Gone namespaces linger in the LRU maps until evicted: not reported.
        netnses.retain(|ns| ctx.index.absent_for(*ns).is_none());
        netnses
            .into_iter()
            .map(|ns| {
                let p = ports.remove(&ns).unwrap_or_default();
                let s = peers.remove(&ns).unwrap_or_default();
                let mut f = flows.remove(&ns).unwrap_or_default();
                f.sort_by_key(|(_, r, streak)| {
                    (std::cmp::Reverse(*streak), std::cmp::Reverse(r.last_ns))
                });
                Input::Flows(FlowSample {
                    netns: ns,
                    handshakes_by_port: top(p, |k: PortKey, count| PortCount {
                        port: k.port,
                        count,
                    }),
                    established_by_source: top(s, |k: AddrKey, count| AddrCount {
                        addr: addr(k.family, &k.addr),
                        count,
                    }),
                    retrans_by_flow: f
                        .into_iter()
                        .take(TOP_N)
                        .map(|(k, r, _)| FlowRetrans {
                            daddr: addr(k.family, &k.daddr),
                            dport: k.dport,
                            sport: k.sport,
                            full: r.full,
                            small: r.small,
                            rto_full: r.rto_full,
                            rto_small: r.rto_small,
                            full_streak: r.full_streak,
                            mss: r.mss,
                            len: r.len,
                            backoff: r.backoff,
                            idle_ms: mono.saturating_sub(r.last_ns) / 1_000_000,
                        })
                        .collect(),
                })
            })
            .collect()
    }
}
