//! Namespaces that come and go: a deleted one's counters are dropped from the kernel map, and
//! a new one that the kernel gave a deleted one's inode number is found at once, and its owner
//! looked up again.
use std::collections::HashMap;

use guardian_common::NsCounters;

use super::Collector;

/// A namespace no path has led to for this long is taken as deleted.
const GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl Collector {
    /// The owner cache to tell when a namespace number is gone or renewed.
    pub fn tell_owners(&mut self, owners: std::sync::Arc<crate::owner::Owners>) {
        self.owners = Some(owners);
    }

    /// A namespace no path led to whose counters moved since the last tick is a new namespace
    /// under a reused inode number: it is looked for again at once, so that its samplers start
    /// now instead of after the index's absence delay, and it is not taken as gone.
    pub(super) fn revive_reused(&mut self, current: &HashMap<u32, NsCounters>) {
        for (ns, c) in current {
            let moved = self.last.get(ns).is_some_and(|p| p.0 != *c);
            if moved && self.index.absent_for(*ns).is_some() {
                tracing::debug!(
                    netns = ns,
                    "counters moved under an absent inode: looking again"
                );
                self.index.revive(*ns);
                // Its owner too: a new pod under the old one's number.
                if let Some(o) = &self.owners {
                    o.forget(*ns);
                }
            }
        }
    }

    /// Namespaces that no path has led to for [`GONE_AFTER`] are gone: their counters are
    /// deleted from the kernel map (which would otherwise fill up as namespaces come and go)
    /// and they are neither sampled nor reported any more. Returns them, for the detectors
    /// (`Input::NetnsGone`: their open faults clear).
    pub(super) fn forget_gone(&mut self, current: &mut HashMap<u32, NsCounters>) -> Vec<u32> {
        let own = self.own_netns;
        let index = &self.index;
        let gone: Vec<u32> = current
            .keys()
            .copied()
            .filter(|&ns| ns != own && index.absent_for(ns).is_some_and(|d| d >= GONE_AFTER))
            .collect();
        for &ns in &gone {
            current.remove(&ns);
            self.last.remove(&ns);
            if let Err(e) = self.ns.remove(&ns) {
                tracing::debug!(netns = ns, error = %e, "removing a gone namespace's counters");
            }
            if let Some(o) = &self.owners {
                o.forget(ns);
            }
            tracing::debug!(netns = ns, "namespace gone; its counters are forgotten");
        }
        gone
    }
}
