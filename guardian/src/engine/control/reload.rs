//! SIGHUP: new thresholds, remedies and safety rules without detaching anything.
//!
//! What carries over and what resets:
//! - detectors whose `[detect.<fault>]` table did not change keep their state (windows,
//!   hysteresis, open faults); `link_down` and `route_lost` have no thresholds and are never
//!   rebuilt;
//! - a detector whose table changed is rebuilt with the new values: its open incidents are
//!   closed with a `cleared` fault event (`evidence.reason` says why) and open again under a
//!   new incident if the fault is still there by the new thresholds;
//! - remedies are rebuilt when `[remedies]` changed (they keep no state; the ladder's success
//!   counts, budgets and active mitigations are the engine's and stay);
//! - `[safety]` applies from the next plan on.
//!
//! Not reloaded: `--record` (the record file keeps the thresholds it started with) and the
//! `sockopt_failfast` cgroup attachment (fixed when the probes load).
use std::time::Instant;

use serde_json::{json, Value};

use crate::engine::api::Reload;
use crate::engine::core::Engine;
use crate::faults::incidents::fault_body;
use crate::faults::Evidence;
use crate::faults::{self, Baseline, FaultId};
use crate::model::FaultState;

/// The faults whose `[detect.<fault>]` table differs (paired by the fault registry), by
/// name, as the reload answer lists them.
pub(super) fn changed_tables(
    old: &faults::DetectConfig,
    new: &faults::DetectConfig,
) -> Vec<FaultId> {
    let mut changed = old.changed(new);
    changed.sort_unstable();
    changed
}

impl Engine {
    pub(super) fn reload(&mut self, new: Reload) -> Value {
        let changed = changed_tables(&self.cfg.detect, &new.detect);
        if !changed.is_empty() {
            let base = Baseline {
                keep_up: self.cfg.keep_up.clone(),
                links: self.links.values().cloned().collect(),
                routes: self.baseline.clone(),
            };
            let fresh = faults::all(&new.detect, &base);
            for d in fresh {
                if !changed.contains(&d.name()) {
                    continue;
                }
                if let Some(slot) = self.detectors.iter_mut().find(|o| o.name() == d.name()) {
                    *slot = d;
                }
            }
            self.close_reconfigured(&changed);
        }
        self.cfg.detect = new.detect;
        let remedies = self.cfg.remedies != new.remedies;
        if remedies {
            self.remedies = crate::remedy::all(&new.remedies, &self.cfg.keep_up);
            self.cfg.remedies = new.remedies;
        }
        let safety = self.cfg.safety != new.safety;
        self.cfg.safety = new.safety;
        tracing::info!(detectors = %crate::logging::json(&changed), remedies, safety, "configuration reloaded");
        json!({"detectors": changed, "remedies": remedies, "safety": safety})
    }

    /// Closes the open incidents of rebuilt detectors (a fresh detector knows nothing of them).
    fn close_reconfigured(&mut self, changed: &[FaultId]) {
        let now = Instant::now();
        let keys: Vec<_> = self
            .ctl
            .open
            .keys()
            .filter(|(f, _)| changed.contains(f))
            .cloned()
            .collect();
        for key in keys {
            let Some(t) = self.ctl.open.get(&key) else {
                continue;
            };
            let mut f = t.finding.clone();
            f.state = FaultState::Cleared;
            f.evidence = Evidence::closed("its detector was reconfigured by a reload");
            if let Some(id) = self.incidents.track(&f, now) {
                self.emitter.emit(fault_body(&f, &id, self.cfg.netns));
                self.ctl.track(&f, &id, self.cfg.netns);
            }
            self.tries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_tables_are_named() {
        let a = faults::DetectConfig::default();
        assert!(changed_tables(&a, &a).is_empty());
        let mut b = a.clone();
        b.syn_flood.syn_per_sec += 1.0;
        b.dns_failure = a.dns_failure.clone();
        assert_eq!(changed_tables(&a, &b), [FaultId::SynFlood]);
    }
}
