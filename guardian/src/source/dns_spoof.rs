//! DNS answers that matched no outstanding query, per (interface, source), from the tcx DNS
//! programs' `DNS_UNMATCHED` map (cumulative since attach; the daemon's own namespace, as
//! `dns`). Read as one small per-CPU map per tick.
//!
//! The map is created empty when the programs load, before `attached`: answers counted before
//! the first tick are growth since then, not a starting point. So the first tick sends the
//! empty state of attach before the first reading; otherwise a burst that arrives before the
//! first tick (the lab injects right after `attached`) would be taken as the detector's
//! baseline and never seen.
use guardian_common::dns::DnsKey;

use super::decode;
use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::model::shadows::{DnsSpoofSample, UnmatchedAnswers};
use crate::probes::batch::CounterMap;
use crate::probes::{ProbeError, Probes};

/// The kernel map's name.
pub const MAP: &str = "DNS_UNMATCHED";

pub struct DnsSpoofSampler {
    map: CounterMap<DnsKey>,
    /// True until the first tick has sent the empty state of attach.
    first: bool,
}

impl DnsSpoofSampler {
    pub fn new(probes: &mut Probes) -> Result<Self, ProbeError> {
        Ok(Self {
            map: CounterMap::new(MAP, probes.take_map(MAP)?)?,
            first: true,
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
        samples(
            ctx.own_netns,
            sources(entries),
            std::mem::take(&mut self.first),
        )
    }
}

/// The inputs of one tick: the reading, preceded on the `first` tick by an empty sample (the
/// map at attach), so that what was counted before the first tick counts as growth.
fn samples(netns: u32, sources: Vec<UnmatchedAnswers>, first: bool) -> Vec<Input> {
    let attach = first.then(|| {
        Input::DnsSpoof(DnsSpoofSample {
            netns,
            sources: Vec::new(),
        })
    });
    attach
        .into_iter()
        .chain([Input::DnsSpoof(DnsSpoofSample { netns, sources })])
        .collect()
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

    /// Answers counted before the first tick open the fault at that tick (they are growth
    /// since attach), through the real detector.
    #[test]
    fn answers_before_the_first_tick_count() {
        use crate::faults::dns_spoofing_suspected::{Config, DnsSpoofingSuspected};
        use crate::faults::Detector;
        let forged = || {
            vec![UnmatchedAnswers {
                addr: "10.0.0.53".into(),
                ifindex: 2,
                count: 10,
            }]
        };
        let run = |inputs: Vec<Input>| {
            let mut d = DnsSpoofingSuspected::new(Config::default());
            let now = std::time::Instant::now();
            inputs
                .iter()
                .flat_map(|i| d.observe(i, now))
                .collect::<Vec<_>>()
        };
        let first = samples(7, forged(), true);
        assert_eq!(first.len(), 2);
        let f = run(first);
        assert_eq!(f.len(), 1, "opened on the first tick");
        assert_eq!(f[0].evidence.json()["unmatched"], 10);
        // Later ticks send the reading alone (a rebuilt detector takes it as its baseline).
        let later = samples(7, forged(), false);
        assert_eq!(later.len(), 1);
        assert!(run(later).is_empty());
    }
}
