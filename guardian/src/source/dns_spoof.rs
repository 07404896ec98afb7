//! DNS answers that matched no outstanding query, per (interface, source), from the tcx DNS
//! programs' `DNS_UNMATCHED` map (cumulative since attach; the daemon's own namespace, as
//! `dns`). Read as one small per-CPU map per tick.
use guardian_common::dns::DnsKey;

use super::decode;
use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::model::shadows::{DnsSpoofSample, UnmatchedAnswers};
use crate::probes::batch::PerCpuSums;
use crate::probes::{ProbeError, Probes};

/// The kernel map's name.
pub const MAP: &str = "DNS_UNMATCHED";

pub struct DnsSpoofSampler {
    map: PerCpuSums<DnsKey>,
}

impl DnsSpoofSampler {
    pub fn new(probes: &mut Probes) -> Result<Self, ProbeError> {
        Ok(Self {
            map: PerCpuSums::new(MAP, probes.take_map(MAP)?)?,
        })
    }
}

/// One entry per source, in a stable order (sources whose address cannot be decoded dropped).
pub fn sources(entries: Vec<(DnsKey, u64)>) -> Vec<UnmatchedAnswers> {
    let mut v: Vec<UnmatchedAnswers> = entries
        .into_iter()
        .filter_map(|(k, count)| {
            Some(UnmatchedAnswers {
                addr: decode::addr(k.family, &k.addr)?.to_string(),
                ifindex: k.ifindex,
                count,
            })
        })
        .collect();
    v.sort_by(|a, b| (&a.addr, a.ifindex).cmp(&(&b.addr, b.ifindex)));
    v
}

impl Sampler for DnsSpoofSampler {
    fn name(&self) -> &'static str {
        "dns_spoof"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let entries = self.map.read().unwrap_or_else(|e| {
            tracing::warn!(map = MAP, error = %e, "reading the unmatched DNS answers failed");
            Vec::new()
        });
        vec![Input::DnsSpoof(DnsSpoofSample {
            netns: ctx.own_netns,
            sources: sources(entries),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_orders_the_sources() {
        let k = |a: u8, ifindex| DnsKey {
            family: guardian_common::AF_INET,
            _pad: 0,
            ifindex,
            addr: [10, 0, 0, a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let s = sources(vec![(k(9, 2), 3), (k(2, 2), 10)]);
        assert_eq!(s[0].addr, "10.0.0.2");
        assert_eq!((s[0].count, s[1].count), (10, 3));
        let bad = DnsKey::default();
        assert!(sources(vec![(bad, 1)]).is_empty());
    }
}
