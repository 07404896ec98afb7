//! Periodic `counters` events from the per-CPU maps, and `loss` events from the loss counters.
//! The XDP interface totals and SYN counts are read in `counters_xdp.rs`, the losses and LRU
//! evictions in `counters_loss.rs`.
use std::collections::{HashMap, HashSet};

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use guardian_common::{
    limits::{LimitSrcKey, INS_SLOTS},
    AddrKey, NsCounters, XdpIfaceStats, XdpPortKey, XdpPortSlot, XdpSrcKey, XDP_PORT_SLOTS,
};

use super::decode;
use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::probes::batch::{CounterMap, PerCpuArrayAll};
use crate::{
    model::{Counters, DstCount},
    netns,
    output::{Body, Loss},
    probes::{ProbeError, Probes},
};

/// What one tick produced: events to write, inputs for the detectors.
#[derive(Default)]
pub struct Tick {
    pub events: Vec<Body>,
    pub inputs: Vec<Input>,
}

/// Counters events are written when something changed, and at least this often (in ticks).
const HEARTBEAT_TICKS: u64 = 10;
const TOP_N: usize = 20;

pub struct Collector {
    ns: PerCpuHashMap<MapData, u32, NsCounters>,
    fail_dst: CounterMap<AddrKey>,
    refused_dst: CounterMap<AddrKey>,
    end_dst: CounterMap<guardian_common::connect::ConnEndKey>,
    /// Interface totals by ifindex: below `XDP_IFACE_SLOTS` in the array, others in the hash.
    xdp_iface_lo: PerCpuArray<MapData, XdpIfaceStats>,
    xdp_iface: PerCpuHashMap<MapData, u32, XdpIfaceStats>,
    syn_src: CounterMap<XdpSrcKey>,
    syn_port: CounterMap<XdpPortKey>,
    /// SYNs per (interface, port) in their slots (see `XDP_PORT_SLOTS`).
    syn_port_lo: PerCpuArrayAll<XdpPortSlot>,
    loss: PerCpuArray<MapData, u64>,
    /// New keys the XDP program created per `INS_*` slot, and the good-source map, to count
    /// LRU evictions (inserts minus entries; nothing else deletes from these maps).
    inserts: PerCpuArray<MapData, u64>,
    good_src: aya::maps::HashMap<MapData, LimitSrcKey, u64>,
    evicted: [u64; INS_SLOTS as usize],
    own_netns: u32,
    /// Possible CPUs (the per-CPU values' count), None when unknown.
    cpus: Option<usize>,
    xdp_ifaces: Vec<(String, u32)>,
    interval_ms: u64,
    index: netns::Index,
    last: HashMap<u32, (NsCounters, Option<u64>)>,
    last_xdp: HashMap<u32, XdpIfaceStats>,
    lost: [u64; guardian_common::LOSS_SLOTS as usize],
    misses: super::misses::RecursionMisses,
    /// Before Linux 6.7, skipped `sock_state` runs inferred from the TIME_WAIT gauge.
    inferred: Option<super::misses::InferredTwMisses>,
    ticks: u64,
    samplers: Vec<Box<dyn Sampler>>,
    /// Told when a namespace number is gone or renewed (see `counters_gone.rs`).
    owners: Option<std::sync::Arc<crate::owner::Owners>>,
    /// Before Linux 6.17 (`tcp_retransmit_skb` without `err`), the tracepoint does not fire
    /// for a retransmission whose transmit failed, yet `TcpRetransSegs` counts it: those come
    /// from the namespace's `TcpExtTCPRetransFail`, as (value when first sampled, latest).
    /// None on kernels whose tracepoint reports them.
    retrans_fail_mib: Option<HashMap<u32, (u64, u64)>>,
}

/// The baseline of the daemon's own namespace's `TcpExtTCPRetransFail`, read when the
/// collector is made, before `attached`: a namespace first sampled at a tick has the failed
/// retransmissions before that tick in its baseline, and so not in `retrans_segs` (the
/// kernel-6.1 VM run of `retransmits::` lost one to a link flap between `attached` and
/// the first tick). The own namespace, a host's busiest, is known from the start.
fn own_retrans_fail(own: u32) -> HashMap<u32, (u64, u64)> {
    let mut base = HashMap::new();
    if let Ok(text) = std::fs::read("/proc/thread-self/net/netstat") {
        let mut v = [0u64];
        super::mibtext::Columns::default().values(&text, "TcpExt", &["TCPRetransFail"], &mut v);
        base.insert(own, (v[0], v[0]));
    }
    base
}

fn sum<T: aya::Pod + Default>(v: &PerCpuValues<T>, add: impl Fn(&mut T, &T)) -> T {
    let mut total = T::default();
    for x in v.iter() {
        add(&mut total, x);
    }
    total
}

fn add_ns(a: &mut NsCounters, b: &NsCounters) {
    a.retrans_segs += b.retrans_segs;
    a.syn_retrans += b.syn_retrans;
    a.synack_retrans += b.synack_retrans;
    a.connect_failures += b.connect_failures;
    a.tw_entries += b.tw_entries;
    a.bind_eaddrinuse += b.bind_eaddrinuse;
    a.connect_eaddrnotavail += b.connect_eaddrnotavail;
    a.retrans_failed += b.retrans_failed;
    a.connect_refused += b.connect_refused;
}

/// A whole per-CPU map, or nothing (logged) when the kernel refuses the batch read.
fn read_all<K: aya::Pod>(m: &CounterMap<K>) -> Vec<(K, u64)> {
    m.read().unwrap_or_else(|e| {
        tracing::warn!(map = m.name(), error = %e, "reading a counter map failed");
        Vec::new()
    })
}

fn top<K, T>(mut v: Vec<(K, u64)>, f: impl Fn(K, u64) -> T) -> Vec<T> {
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v.into_iter().take(TOP_N).map(|(k, c)| f(k, c)).collect()
}

impl Collector {
    pub fn new(
        probes: &mut Probes,
        own_netns: u32,
        interval_ms: u64,
        samplers: Vec<Box<dyn Sampler>>,
    ) -> Result<Self, ProbeError> {
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
            ns: conv(probes, "NS_COUNTERS")?,
            fail_dst: sums(probes, "CONNECT_FAIL_DST")?,
            refused_dst: sums(probes, "CONNECT_REFUSED_DST")?,
            end_dst: sums(probes, "CONNECT_END")?,
            xdp_iface_lo: conv(probes, "XDP_IFACE_LO")?,
            xdp_iface: conv(probes, "XDP_IFACE")?,
            syn_src: sums(probes, "XDP_SYN_SRC")?,
            syn_port: sums(probes, "XDP_SYN_PORT")?,
            syn_port_lo: PerCpuArrayAll::new(
                "XDP_SYN_PORT_LO",
                probes.take_map("XDP_SYN_PORT_LO")?,
                XDP_PORT_SLOTS,
            )?,
            loss: conv(probes, "LOSS")?,
            inserts: conv(probes, "XDP_INSERTS")?,
            good_src: conv(probes, "GOOD_SRC")?,
            evicted: [0; INS_SLOTS as usize],
            own_netns,
            cpus: aya::util::nr_cpus().ok(),
            xdp_ifaces: probes.xdp_ifaces(),
            interval_ms,
            index: netns::Index::new(),
            last: HashMap::new(),
            last_xdp: HashMap::new(),
            lost: [0; guardian_common::LOSS_SLOTS as usize],
            misses: super::misses::RecursionMisses::new(probes.program_fds()),
            inferred: (!super::misses::kernel_counts_tracepoint_misses(
                crate::probes::features::running_kernel(),
            ))
            .then(Default::default),
            ticks: 0,
            samplers,
            owners: None,
            retrans_fail_mib: (probes.offsets.rtx_err == guardian_common::Offsets::ABSENT)
                .then(|| own_retrans_fail(own_netns)),
        })
    }

    /// One tick: the events to write and the detectors' inputs. `last` forces a counters event
    /// for every namespace seen.
    pub fn tick(&mut self, last: bool) -> Tick {
        self.ticks += 1;
        let heartbeat = self.ticks.is_multiple_of(HEARTBEAT_TICKS);
        let mut out = self.losses();
        let mut inputs = Vec::new();
        let xdp = self.xdp(&mut out, heartbeat);
        let xdp_changed = xdp
            .iter()
            .any(|x| self.last_xdp.get(&x.ifindex).map(|s| s.packets) != Some(x.packets));
        for x in &xdp {
            self.last_xdp.insert(
                x.ifindex,
                XdpIfaceStats {
                    packets: x.packets,
                    bytes: x.bytes,
                    syn: x.syn_rx,
                },
            );
        }
        let mut current = self.ns_counters();
        if !xdp.is_empty() {
            current.entry(self.own_netns).or_default();
        }
        self.revive_reused(&current);
        inputs.extend(
            self.forget_gone(&mut current)
                .into_iter()
                .map(Input::NetnsGone),
        );
        let mut netnses: Vec<u32> = current.keys().copied().collect();
        netnses.sort_unstable();
        let eaddrnotavail: HashSet<u32> = current
            .iter()
            .filter(|(ns, c)| {
                let prev = self.last.get(ns).map_or(0, |p| p.0.connect_eaddrnotavail);
                c.connect_eaddrnotavail > prev
            })
            .map(|(ns, _)| *ns)
            .collect();
        // The samplers run first so that the TIME_WAIT count of their socket-table dump (one
        // namespace entry per tick) also serves the gauge; their inputs still follow the
        // counters inputs, as detectors expect.
        let mut active = netnses.clone();
        if !active.contains(&self.own_netns) {
            active.push(self.own_netns);
        }
        let mut ctx = TickContext {
            active: &active,
            own_netns: self.own_netns,
            index: &mut self.index,
            eaddrnotavail: &eaddrnotavail,
            last,
        };
        let sampled: Vec<Input> = self
            .samplers
            .iter_mut()
            .flat_map(|s| s.sample(&mut ctx))
            .collect();
        let sampled_tw: HashMap<u32, u64> = sampled
            .iter()
            .filter_map(|i| match i {
                Input::Mib(m) => m.time_wait.map(|tw| (m.netns, tw)),
                _ => None,
            })
            .collect();
        let mut failed = self.dsts_by_ns(&self.fail_dst);
        let mut refused = self.dsts_by_ns(&self.refused_dst);
        let mut ends = super::connect_ends::by_ns(read_all(&self.end_dst));
        if let Some(fails) = &mut self.retrans_fail_mib {
            for i in &sampled {
                if let Input::Mib(m) = i {
                    let e = fails.entry(m.netns).or_insert((m.tcp_retrans_fail, 0));
                    e.1 = m.tcp_retrans_fail.max(e.0);
                }
            }
        }
        for &ns in &netnses {
            let mut c = current[&ns];
            if let Some(&(base, now)) = self.retrans_fail_mib.as_ref().and_then(|f| f.get(&ns)) {
                c.retrans_segs += now - base;
            }
            let prev = self.last.get(&ns).copied();
            let had_tw = prev.and_then(|p| p.1).unwrap_or(0) > 0;
            let changed = prev.map(|p| p.0) != Some(c);
            let own_xdp = ns == self.own_netns && xdp_changed;
            let mut emit = changed || own_xdp || heartbeat || last;
            let mut tw = prev.and_then(|p| p.1);
            let fresh = emit || had_tw;
            if fresh {
                tw = match sampled_tw.get(&ns) {
                    Some(&n) => Some(n),
                    None => self.time_wait(ns),
                };
                emit = emit || prev.map(|p| p.1) != Some(tw);
            }
            self.last.insert(ns, (c, tw));
            if let (Some(inf), Some(gauge), true) = (&mut self.inferred, tw, fresh) {
                // The tick's entries were read before the gauge; re-read them after it, so
                // the inferred skips stay a lower bound.
                let after = self
                    .ns
                    .get(&ns, 0)
                    .map_or(c.tw_entries, |v| sum(&v, add_ns).tw_entries);
                inf.observe(ns, gauge, c.tw_entries, after);
            }
            let counters = Counters {
                netns: ns,
                interval_ms: self.interval_ms,
                is_final: last,
                retrans_segs: c.retrans_segs,
                syn_retrans: c.syn_retrans,
                synack_retrans: c.synack_retrans,
                time_wait: tw,
                tw_entries: c.tw_entries,
                connect_failures: c.connect_failures,
                connect_eaddrnotavail: c.connect_eaddrnotavail,
                bind_eaddrinuse: c.bind_eaddrinuse,
                retrans_failed: c.retrans_failed,
                connect_failures_by_dst: failed.remove(&ns).unwrap_or_default(),
                connect_ends_by_dst: ends.remove(&ns).unwrap_or_default(),
                connect_refused: c.connect_refused,
                connect_refused_by_dst: refused.remove(&ns).unwrap_or_default(),
                xdp: if ns == self.own_netns {
                    xdp.clone()
                } else {
                    Vec::new()
                },
            };
            if emit {
                out.push(Body::Counters(counters.clone()));
            }
            // Detectors see every namespace every tick, changed or not: a rate fault must be
            // able to clear when its counters stop moving.
            inputs.push(Input::Counters(counters));
        }
        inputs.extend(sampled);
        if let Some(inf) = &mut self.inferred {
            inf.retain(|ns| current.contains_key(&ns));
            if let Some((source, lost, total)) = inf.poll() {
                out.push(Body::Loss(Loss {
                    source,
                    lost,
                    total,
                }));
            }
        }
        self.last.retain(|ns, _| current.contains_key(ns));
        let keep: HashSet<u32> = active.iter().copied().collect();
        self.index.retain(&keep);
        Tick {
            events: out,
            inputs,
        }
    }

    /// Every namespace's counters, summed over CPUs: one batch lookup for the whole map (two
    /// syscalls per namespace with an iteration), or an iteration where batches fail.
    fn ns_counters(&self) -> HashMap<u32, NsCounters> {
        use aya::maps::IterableMap;
        const SIZE: usize = std::mem::size_of::<NsCounters>();
        let mut out = HashMap::new();
        if let Some(cpus) = self.cpus {
            let read =
                crate::probes::batch::lookup_all::<u32>(self.ns.map(), SIZE * cpus, |k, v| {
                    let mut total = NsCounters::default();
                    for c in v.chunks_exact(SIZE) {
                        // SAFETY: the kernel wrote one NsCounters (plain data, a multiple of 8
                        // bytes) per possible CPU.
                        let x =
                            unsafe { std::ptr::read_unaligned(c.as_ptr() as *const NsCounters) };
                        add_ns(&mut total, &x);
                    }
                    out.insert(k, total);
                });
            match read {
                Ok(()) => return out,
                Err(e) => {
                    tracing::debug!(error = %e, "batch read of NS_COUNTERS failed; iterating");
                    out.clear();
                }
            }
        }
        out.extend(
            self.ns
                .iter()
                .filter_map(Result::ok)
                .map(|(k, v)| (k, sum(&v, add_ns))),
        );
        out
    }

    fn time_wait(&mut self, ns: u32) -> Option<u64> {
        let path = if ns == self.own_netns {
            None
        } else {
            Some(self.index.path(ns)?)
        };
        match netns::count_time_wait(path.as_deref()) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!(netns = ns, error = %e, "TIME_WAIT gauge unavailable");
                None
            }
        }
    }

    /// Connect failures (or refusals) per destination, top [`TOP_N`] per namespace: the map is
    /// read once per tick, whatever the number of namespaces.
    fn dsts_by_ns(&self, map: &CounterMap<AddrKey>) -> HashMap<u32, Vec<DstCount>> {
        let mut by: HashMap<u32, Vec<(AddrKey, u64)>> = HashMap::new();
        for (k, c) in read_all(map) {
            by.entry(k.netns).or_default().push((k, c));
        }
        by.into_iter()
            .map(|(ns, v)| {
                let top = top(v, |k: AddrKey, count| DstCount {
                    addr: decode::addr(k.family, &k.addr)
                        .map_or_else(String::new, |a| a.to_string()),
                    port: k.port,
                    count,
                });
                (ns, top)
            })
            .collect()
    }
}

#[path = "counters_gone.rs"]
mod gone;
#[path = "counters_loss.rs"]
mod loss;
#[path = "counters_xdp.rs"]
mod xdp;
