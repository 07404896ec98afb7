//! DNS per resolver from the tcx programs' map (`DNS_RESOLVERS`): queries sent and responses by
//! rcode class, cumulative since the daemon attached. The tcx programs run on the interfaces of
//! the daemon's own namespace, so every sample is about that namespace.
use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuHashMap};
use guardian_common::dns::{DnsKey, DnsStats};

use super::decode;
use super::sampler::{Sampler, TickContext};
use crate::input::Input;

/// The kernel map's name.
pub const MAP: &str = "DNS_RESOLVERS";

use crate::model::sample::{DnsSample, ResolverCounts};

pub struct DnsSampler {
    map: PerCpuHashMap<MapData, DnsKey, DnsStats>,
}

impl DnsSampler {
    /// Takes the maps this sampler reads from the loaded probes.
    pub fn new(probes: &mut crate::probes::Probes) -> Result<Self, crate::probes::ProbeError> {
        let map = PerCpuHashMap::try_from(probes.take_map(MAP)?)
            .map_err(|_| crate::probes::ProbeError::MissingMap(MAP))?;
        Ok(Self { map })
    }
}

/// Sums the per-CPU values of one key into counts.
pub fn counts(key: &DnsKey, per_cpu: impl IntoIterator<Item = DnsStats>) -> Option<ResolverCounts> {
    let addr = decode::addr(key.family, &key.addr)?;
    let mut c = ResolverCounts {
        addr: addr.to_string(),
        ifindex: key.ifindex,
        ..Default::default()
    };
    for s in per_cpu {
        c.queries += s.queries;
        c.noerror += s.noerror;
        c.nxdomain += s.nxdomain;
        c.servfail += s.servfail;
        c.refused += s.refused;
        c.other += s.other;
    }
    Some(c)
}

impl Sampler for DnsSampler {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let mut by: BTreeMap<(String, u32), ResolverCounts> = BTreeMap::new();
        for (k, v) in self.map.iter().filter_map(Result::ok) {
            if let Some(mut c) = counts(&k, v.iter().copied()) {
                c.iface = nix::net::if_::if_indextoname(k.ifindex)
                    .ok()
                    .and_then(|s| s.into_string().ok());
                by.insert((c.addr.clone(), c.ifindex), c);
            }
        }
        vec![Input::Dns(DnsSample {
            netns: ctx.own_netns,
            resolvers: by.into_values().collect(),
        })]
    }
}
