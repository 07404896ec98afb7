//! A change guardian made and still watches ([`Active`]), the attempt it came from
//! ([`Attempt`]), what it waits for ([`Waiting`]) and the rungs tried per incident ([`Tries`]).
use std::collections::HashSet;
use std::time::Instant;

use serde_json::Value;

use crate::faults::Finding;
use crate::model::Subject;
use crate::remedy::{Action, Effect, RemedyId, Verify};

/// What is reported about an attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub fault: String,
    /// The detector's key of the fault's subject.
    pub key: String,
    pub netns: Option<u32>,
    pub incident: String,
    pub opened_at: Instant,
    pub remedy: String,
    pub subject: Subject,
    pub before: Value,
    pub after: Value,
}

impl Attempt {
    /// An attempt of `remedy` on a finding, before anything is planned.
    pub fn of(f: &Finding, incident: &str, opened_at: Instant, remedy: RemedyId) -> Attempt {
        Attempt {
            fault: f.fault.to_string(),
            key: f.key.clone(),
            netns: f.netns,
            incident: incident.to_string(),
            opened_at,
            remedy: remedy.to_string(),
            subject: f.subject.clone(),
            before: Value::Null,
            after: Value::Null,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Waiting {
    None,
    /// For the change's [`Effect`] until `deadline`.
    Effect {
        deadline: Instant,
        counter_last: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct Active {
    /// The journal id (`rollback_id`).
    pub id: String,
    pub at: Attempt,
    pub apply: Action,
    pub inverse: Action,
    pub verify: Verify,
    pub effect: Effect,
    /// When a temporary mitigation is reverted.
    pub expires: Option<Instant>,
    pub expires_at_ms: Option<u64>,
    pub until_clear: bool,
    pub waiting: Waiting,
}

impl Active {
    pub(super) fn deadline(&self) -> Option<Instant> {
        let effect = match self.waiting {
            Waiting::Effect { deadline, .. } => Some(deadline),
            Waiting::None => None,
        };
        match (effect, self.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Per incident: which rungs were tried, whether a change is in flight, the last finding.
#[derive(Debug, Default)]
pub struct Tries {
    pub tried: HashSet<RemedyId>,
    pub busy: bool,
    pub last: Option<Finding>,
}
