//! The detector contract: a pure state machine over [`Input`]s that returns [`Finding`]s.
//!
//! A detector does no I/O and reads no clock: it gets an input and an explicit `now`, and
//! returns findings. That makes every trigger and hysteresis a table in a unit test, and lets
//! a recorded stream be replayed offline (`guardian replay`). Rate and level faults share the
//! hysteresis of [`super::tracker`]; incident ids come from [`super::incidents`].
use std::time::Instant;

use super::{Evidence, FaultId};
use crate::input::Input;
use crate::model::{FaultState, Severity, Subject};
use crate::netlink::{LinkState, RouteSpec};
use serde::{Deserialize, Serialize};

/// Something a detector noticed: a fault opened, updated or cleared on one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Stable fault id, e.g. `link_down`.
    pub fault: FaultId,
    /// OSI layer (2-4).
    pub layer: u8,
    pub severity: Severity,
    pub state: FaultState,
    pub subject: Subject,
    /// What the detector saw: the numbers that crossed the threshold. Remedies read their
    /// parameters from here.
    pub evidence: Evidence,
    /// Stable key of the subject within this fault (e.g. `link:3`), used to tie an opened
    /// finding to its updates and its clear.
    pub key: String,
    /// The namespace the fault is in, when it is not the daemon's own.
    pub netns: Option<u32>,
}

pub trait Detector {
    /// The fault this detector reports.
    fn name(&self) -> FaultId;
    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding>;
    /// The trackers that hold its subjects' open/cleared state, for what every detector does
    /// alike ([`observe_all`] on [`Input::NetnsGone`]). Empty for a detector of the daemon's
    /// own namespace only.
    fn trackers(&mut self) -> Vec<&mut dyn ForgetNetns>;
}

/// What holds subjects per namespace (`tracker::Tracker`): forgets a deleted namespace's,
/// with a `cleared` finding for each one that was open.
pub trait ForgetNetns {
    fn forget_netns(&mut self, netns: u32) -> Vec<Finding>;
}

/// What the event-driven detectors need to know at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Interfaces marked keep-up (`--keep-up`): `link_down` watches these.
    pub keep_up: Vec<String>,
    /// Links at start.
    pub links: Vec<LinkState>,
    /// Protected routes at start.
    pub routes: Vec<RouteSpec>,
}

/// Runs one input through every detector. Findings come out in a stable order (by fault
/// name, key and state) whatever order a detector's internal maps iterate in, so that replay
/// is deterministic.
pub fn observe_all(
    detectors: &mut [Box<dyn Detector + Send + Sync>],
    input: &Input,
    now: Instant,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = match input {
        // A deleted namespace: every fault open in it clears, and nothing of it is kept.
        Input::NetnsGone(netns) => detectors
            .iter_mut()
            .flat_map(|d| d.trackers())
            .flat_map(|t| t.forget_netns(*netns))
            .collect(),
        _ => detectors
            .iter_mut()
            .flat_map(|d| d.observe(input, now))
            .collect(),
    };
    out.sort_by(|a, b| (a.fault, &a.key, a.state as u8).cmp(&(b.fault, &b.key, b.state as u8)));
    out
}

/// Feeds one netlink event to a detector (tests of the event-driven detectors).
#[cfg(test)]
pub(crate) fn observe_net(
    d: &mut dyn Detector,
    ev: &crate::netlink::NetEvent,
    now: Instant,
) -> Vec<Finding> {
    d.observe(&Input::Net(ev.clone()), now)
}
