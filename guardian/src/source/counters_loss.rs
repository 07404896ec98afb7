//! The loss half of the counters tick: ring-buffer and full-map drops from the `LOSS` map,
//! the kernel's recursion misses, and LRU evictions from the XDP maps (`evicted:<map>`).
use guardian_common::{LOSS_H2_DESYNC, LOSS_MAP_FULL, LOSS_RINGBUF};

use super::{sum, Collector};
use crate::model::LossSource;
use crate::output::{Body, Loss};

impl Collector {
    pub(super) fn losses(&mut self) -> Vec<Body> {
        let mut out = Vec::new();
        for (slot, source) in [
            (LOSS_RINGBUF, LossSource::Ringbuf),
            (LOSS_MAP_FULL, LossSource::MapFull),
            (LOSS_H2_DESYNC, LossSource::H2Desync),
        ] {
            let total = self
                .loss
                .get(&slot, 0)
                .map(|v| sum(&v, |a, b| *a += *b))
                .unwrap_or(0);
            let prev = &mut self.lost[slot as usize];
            if total > *prev {
                out.push(Body::Loss(Loss {
                    source,
                    lost: total - *prev,
                    total,
                }));
                *prev = total;
            }
        }
        for (source, lost, total) in self.misses.poll() {
            out.push(Body::Loss(Loss {
                source,
                lost,
                total,
            }));
        }
        out
    }

    /// LRU evictions since the last report of the map in `slot` that holds `entries` now, as a
    /// `loss` event with source `evicted:<map>`.
    pub(super) fn evictions(&mut self, slot: u32, map: &str, entries: usize, out: &mut Vec<Body>) {
        let inserts = self
            .inserts
            .get(&slot, 0)
            .map(|v| sum(&v, |a, b| *a += *b))
            .unwrap_or(0);
        let total = evicted_total(inserts, entries as u64, self.evicted[slot as usize]);
        let prev = std::mem::replace(&mut self.evicted[slot as usize], total);
        if total > prev {
            out.push(Body::Loss(Loss {
                source: LossSource::Evicted(map.to_string()),
                lost: total - prev,
                total,
            }));
        }
    }
}

/// Evictions so far: inserts minus the entries left, never less than reported before (an
/// entry count read while inserts race can only understate them).
fn evicted_total(inserts: u64, entries: u64, before: u64) -> u64 {
    inserts.saturating_sub(entries).max(before)
}

#[cfg(test)]
mod tests {
    #[test]
    fn evictions_are_inserts_minus_entries_and_never_go_back() {
        assert_eq!(super::evicted_total(10, 10, 0), 0, "nothing evicted yet");
        assert_eq!(super::evicted_total(70_000, 65_536, 0), 4_464);
        assert_eq!(
            super::evicted_total(70_000, 65_537, 4_464),
            4_464,
            "racing insert"
        );
    }
}
