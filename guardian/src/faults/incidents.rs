//! Incident bookkeeping shared by the engine and `guardian replay`: an `opened` finding starts
//! an incident with a new id, `updated` and `cleared` findings report under it.
use std::collections::HashMap;
use std::time::Instant;

use super::{FaultId, Finding};
use crate::model::FaultState;
use crate::output::{Body, Fault};

/// An open incident: the fault's name and the finding's key.
pub type IncidentKey = (FaultId, String);

#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub opened_at: Instant,
}

/// Where incident ids come from: the clock (live), or a counter (replay: byte-for-byte
/// deterministic output).
#[derive(Debug)]
pub enum Ids {
    Clock,
    Sequence(u64),
}

#[derive(Debug)]
pub struct Incidents {
    open: HashMap<IncidentKey, Incident>,
    ids: Ids,
}

impl Incidents {
    pub fn new(ids: Ids) -> Self {
        Self {
            open: HashMap::new(),
            ids,
        }
    }

    fn next_id(&mut self) -> String {
        match &mut self.ids {
            Ids::Clock => crate::journal::new_id(),
            Ids::Sequence(n) => {
                *n += 1;
                format!("inc-{n:06}")
            }
        }
    }

    /// Records the finding and returns the incident id to report it under, or None when it
    /// must not be reported (an update or clear of a fault that was never opened).
    pub fn track(&mut self, f: &Finding, now: Instant) -> Option<String> {
        let key: IncidentKey = (f.fault, f.key.clone());
        match f.state {
            FaultState::Opened => {
                let id = self.next_id();
                self.open.insert(
                    key,
                    Incident {
                        id: id.clone(),
                        opened_at: now,
                    },
                );
                Some(id)
            }
            FaultState::Updated => self.open.get(&key).map(|i| i.id.clone()),
            FaultState::Cleared => self.open.remove(&key).map(|i| i.id),
        }
    }

    pub fn get(&self, key: &IncidentKey) -> Option<&Incident> {
        self.open.get(key)
    }

    pub fn get_mut(&mut self, key: &IncidentKey) -> Option<&mut Incident> {
        self.open.get_mut(key)
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

/// The `fault` event for a finding; `netns` is used when the finding names none.
pub fn fault_body(f: &Finding, incident: &str, netns: u32) -> Body {
    Body::Fault(Fault {
        netns: f.netns.unwrap_or(netns),
        fault: f.fault.as_str(),
        layer: f.layer,
        severity: f.severity,
        state: f.state,
        message: f.evidence.message(f.fault, f.state, &f.subject),
        incident: incident.to_string(),
        subject: f.subject.clone(),
        evidence: f.evidence.json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Severity, Subject};

    fn f(state: FaultState, key: &str) -> Finding {
        Finding {
            fault: crate::faults::FaultId::SynFlood,
            layer: 4,
            severity: Severity::Error,
            state,
            subject: Subject::default(),
            evidence: crate::faults::Evidence::closed("test"),
            key: key.into(),
            netns: None,
        }
    }

    #[test]
    fn lifecycle_shares_one_id_and_unknown_updates_are_dropped() {
        let mut inc = Incidents::new(Ids::Sequence(0));
        let now = Instant::now();
        assert_eq!(inc.track(&f(FaultState::Updated, "a"), now), None);
        assert_eq!(
            inc.track(&f(FaultState::Opened, "a"), now).as_deref(),
            Some("inc-000001")
        );
        assert_eq!(
            inc.track(&f(FaultState::Opened, "b"), now).as_deref(),
            Some("inc-000002")
        );
        assert_eq!(
            inc.track(&f(FaultState::Updated, "a"), now).as_deref(),
            Some("inc-000001")
        );
        assert_eq!(
            inc.track(&f(FaultState::Cleared, "a"), now).as_deref(),
            Some("inc-000001")
        );
        assert_eq!(inc.track(&f(FaultState::Cleared, "a"), now), None);
        assert_eq!(inc.open_count(), 1);
    }
}
