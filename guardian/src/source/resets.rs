//! TCP resets per (netns, service port, direction) from the reset programs' map (`RST_PORT`),
//! cumulative since attach; one `Input::Resets` per namespace that had any. Absent when the
//! reset tracepoints could not be attached.
use std::collections::BTreeMap;

use guardian_common::shadows::{RstKey, RST_SENT};

use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::model::shadows::{PortResets, ResetSample, RstDirection};
use crate::probes::batch::CounterMap;
use crate::probes::{shadows::MAP, ProbeError, Probes};

pub struct ResetSampler {
    map: CounterMap<RstKey>,
}

impl ResetSampler {
    /// Takes the map from the loaded probes; None when the reset programs are not attached.
    pub fn new(probes: &mut Probes) -> Result<Option<Self>, ProbeError> {
        if !probes.shadows_attached() {
            return Ok(None);
        }
        Ok(Some(Self {
            map: CounterMap::new(MAP, probes.take_map(MAP)?)?,
        }))
    }
}

/// Groups the map's entries per namespace, in a stable order. The `active` namespaces without
/// resets get an empty sample: the detector then knows them, and their first resets count as
/// growth from zero instead of being taken as a baseline.
pub fn group(entries: Vec<(RstKey, u64)>, active: &[u32]) -> Vec<ResetSample> {
    let mut by: BTreeMap<u32, Vec<PortResets>> = active.iter().map(|&n| (n, Vec::new())).collect();
    for (k, count) in entries {
        by.entry(k.netns).or_default().push(PortResets {
            port: k.port,
            direction: match k.dir {
                RST_SENT => RstDirection::Sent,
                _ => RstDirection::Received,
            },
            remote: k.remote != 0,
            count,
        });
    }
    by.into_iter()
        .map(|(netns, mut ports)| {
            ports.sort_by_key(|p| (p.port, p.direction, p.remote));
            ResetSample { netns, ports }
        })
        .collect()
}

impl Sampler for ResetSampler {
    fn name(&self) -> &'static str {
        "resets"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let entries = self.map.read().unwrap_or_else(|e| {
            tracing::warn!(map = MAP, error = %e, "reading the reset map failed");
            Vec::new()
        });
        group(entries, ctx.active)
            .into_iter()
            .map(Input::Resets)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_common::shadows::RST_RECEIVED;

    #[test]
    fn groups_per_namespace_and_names_the_direction() {
        let k = |netns, port, dir, remote| RstKey {
            netns,
            port,
            dir,
            remote,
        };
        let s = group(
            vec![
                (k(2, 80, RST_RECEIVED, 1), 3),
                (k(1, 5999, RST_SENT, 0), 30),
                (k(2, 80, RST_SENT, 0), 1),
            ],
            &[1, 3],
        );
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[2].netns, s[2].ports.len()),
            (3, 0),
            "an active namespace, no resets"
        );
        assert_eq!(s[0].netns, 1);
        assert_eq!(s[0].ports[0].direction, RstDirection::Sent);
        assert_eq!(s[0].ports[0].count, 30);
        assert_eq!(s[1].ports.len(), 2);
        assert_eq!(s[1].ports[0].direction, RstDirection::Sent);
        assert!(s[1].ports[1].remote);
        assert_eq!(s[1].ports[1].direction, RstDirection::Received);
    }
}
