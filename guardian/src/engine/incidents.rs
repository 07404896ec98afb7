//! The incidents the engine keeps for its API: the open ones (with their last finding, for
//! `heal` and the health score), the recently closed (for `history`), and the control-side
//! state that goes with them (the event tally, a manual heal in progress, the lock taken at
//! runtime, the last published gauges).
use std::collections::{BTreeMap, VecDeque};

use super::api::{IncidentView, Tally};
use crate::detect::incidents::IncidentKey;
use crate::detect::Finding;
use crate::health::Health;

/// Closed incidents kept for `history`.
pub(super) const RECENT_INCIDENTS: usize = 256;

/// An open incident as the control side sees it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub view: IncidentView,
    pub finding: Finding,
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
    pub gauges: Option<(Health, usize)>,
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
}
