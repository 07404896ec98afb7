//! The incidents the engine keeps for its API: the open ones (with their last finding, for
//! `heal` and the health score), the recently closed (for `history`), and the control-side
//! state that goes with them (the event tally, a manual heal in progress, the lock taken at
//! runtime, the last published gauges).
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::api::{subject_label, IncidentView, Tally};
use crate::faults::incidents::IncidentKey;
use crate::faults::Finding;
use crate::health::Health;
use crate::output::rfc3339;

/// Closed incidents kept for `history`.
const RECENT_INCIDENTS: usize = 256;

/// What [`State::gauges`] remembers.
pub type Published = (Health, usize, Vec<(&'static str, crate::model::Severity)>);

/// An open incident as the control side sees it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub view: IncidentView,
    pub finding: Finding,
    /// When it opened (for the heal-time histogram).
    pub opened: Instant,
}

/// The engine's control-side state.
pub struct State {
    pub tally: Tally,
    pub open: BTreeMap<IncidentKey, Tracked>,
    pub recent: VecDeque<IncidentView>,
    /// A manual `heal` is being carried out: pause and per-remedy observe modes do not apply.
    pub manual: bool,
    /// The state directory's lock, taken at runtime when an observing daemon is asked to
    /// change something (mode enforce, heal).
    pub lock: Option<crate::journal::Lock>,
    /// The last published gauges: health, active mitigations, open (fault, severity).
    pub gauges: Option<Published>,
}

impl State {
    pub fn new(tally: Tally) -> State {
        State {
            tally,
            open: BTreeMap::new(),
            recent: VecDeque::new(),
            manual: false,
            lock: None,
            gauges: None,
        }
    }

    /// Keeps the open incidents (and the recently closed) for status, heal and history.
    /// `netns`: the daemon's, for findings that name none.
    pub fn track(&mut self, f: &Finding, incident: &str, netns: u32) {
        use crate::model::FaultState;
        let key: IncidentKey = (f.fault, f.key.clone());
        let now = rfc3339(chrono::Utc::now());
        match f.state {
            FaultState::Cleared => {
                if let Some(mut t) = self.open.remove(&key) {
                    crate::health::gauges::healed(
                        f.fault.as_str(),
                        t.opened.elapsed().as_secs_f64(),
                    );
                    t.view.cleared = Some(now);
                    self.recent.push_front(t.view);
                    self.recent.truncate(RECENT_INCIDENTS);
                }
            }
            _ => {
                let view = IncidentView {
                    incident: incident.to_string(),
                    fault: f.fault.to_string(),
                    layer: f.layer,
                    severity: severity_name(f),
                    subject: subject_label(&f.subject, &f.key),
                    netns: f.netns.unwrap_or(netns),
                    since: now,
                    cleared: None,
                };
                let t = self.open.entry(key).or_insert(Tracked {
                    view,
                    finding: f.clone(),
                    opened: Instant::now(),
                });
                t.finding = f.clone();
                t.view.severity = severity_name(f);
            }
        }
    }

    /// The health score: open incidents by layer and severity, and recent losses.
    pub fn health(&self, now: Instant) -> Health {
        crate::health::score(
            self.open
                .values()
                .map(|t| (t.finding.layer, t.finding.severity)),
            self.tally.recent_losses(now),
        )
    }
}

fn severity_name(f: &Finding) -> String {
    serde_json::to_value(f.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
