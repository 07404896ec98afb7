//! Detectors: one file per fault, each a pure state machine over [`Input`]s.
//!
//! A detector does no I/O and reads no clock: it gets an input and an explicit `now`, and
//! returns findings. That makes every trigger and hysteresis a table in a unit test, and lets
//! a recorded stream be replayed offline (`guardian replay`). Rate and level faults share the
//! hysteresis of [`tracker`]; incident ids come from [`incidents`].
pub mod feed;
pub mod incidents;
pub mod input;
pub mod record;
pub mod tracker;
pub mod window;

pub mod accept_backlog_overflow;
pub mod bandwidth_saturation;
pub mod connect_timeout_cascade;
pub mod connection_flood;
pub mod dns_failure;
pub mod ephemeral_port_exhaustion;
pub mod link_down;
pub mod link_flapping;
pub mod mtu_blackhole;
pub mod port_conflict;
pub mod retransmit_storm;
pub mod route_lost;
pub mod syn_flood;
pub mod time_wait_exhaustion;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::netlink::{LinkState, RouteSpec};
use crate::output::{FaultState, Severity, Subject};

pub use input::Input;
pub use link_down::LinkDown;
pub use route_lost::RouteLost;

/// Something a detector noticed: a fault opened, updated or cleared on one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Stable fault name, e.g. `link_down`.
    pub fault: &'static str,
    /// OSI layer (2-4).
    pub layer: u8,
    pub severity: Severity,
    pub state: FaultState,
    pub subject: Subject,
    /// What the detector saw: the numbers that crossed the threshold. Remedies read their
    /// parameters from here.
    pub evidence: Value,
    /// Stable key of the subject within this fault (e.g. `link:3`), used to tie an opened
    /// finding to its updates and its clear.
    pub key: String,
    /// The namespace the fault is in, when it is not the daemon's own.
    pub netns: Option<u32>,
}

pub trait Detector {
    /// The stable fault name this detector reports, e.g. `link_down`.
    fn name(&self) -> &'static str;
    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding>;
}

/// Thresholds, windows and hysteresis of every detector; the defaults are the fault
/// catalogue's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    pub link_flapping: link_flapping::Config,
    pub mtu_blackhole: mtu_blackhole::Config,
    pub port_conflict: port_conflict::Config,
    pub time_wait_exhaustion: time_wait_exhaustion::Config,
    pub ephemeral_port_exhaustion: ephemeral_port_exhaustion::Config,
    pub retransmit_storm: retransmit_storm::Config,
    pub connect_timeout_cascade: connect_timeout_cascade::Config,
    pub syn_flood: syn_flood::Config,
    pub accept_backlog_overflow: accept_backlog_overflow::Config,
    pub connection_flood: connection_flood::Config,
    pub bandwidth_saturation: bandwidth_saturation::Config,
    pub dns_failure: dns_failure::Config,
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

/// Every detector, configured.
pub fn all(cfg: &DetectConfig, base: &Baseline) -> Vec<Box<dyn Detector + Send + Sync>> {
    vec![
        Box::new(LinkDown::new(base.keep_up.iter().cloned(), &base.links)),
        Box::new(RouteLost::new(base.routes.clone(), &base.links)),
        Box::new(link_flapping::LinkFlapping::new(
            cfg.link_flapping.clone(),
            &base.links,
        )),
        Box::new(mtu_blackhole::MtuBlackhole::new(cfg.mtu_blackhole.clone())),
        Box::new(port_conflict::PortConflict::new(cfg.port_conflict.clone())),
        Box::new(time_wait_exhaustion::TimeWaitExhaustion::new(
            cfg.time_wait_exhaustion.clone(),
        )),
        Box::new(ephemeral_port_exhaustion::EphemeralPortExhaustion::new(
            cfg.ephemeral_port_exhaustion.clone(),
        )),
        Box::new(retransmit_storm::RetransmitStorm::new(
            cfg.retransmit_storm.clone(),
        )),
        Box::new(connect_timeout_cascade::ConnectTimeoutCascade::new(
            cfg.connect_timeout_cascade.clone(),
        )),
        Box::new(syn_flood::SynFlood::new(cfg.syn_flood.clone())),
        Box::new(accept_backlog_overflow::AcceptBacklogOverflow::new(
            cfg.accept_backlog_overflow.clone(),
        )),
        Box::new(connection_flood::ConnectionFlood::new(
            cfg.connection_flood.clone(),
        )),
        Box::new(bandwidth_saturation::BandwidthSaturation::new(
            cfg.bandwidth_saturation.clone(),
        )),
        Box::new(dns_failure::DnsFailure::new(cfg.dns_failure.clone())),
    ]
}

/// Runs one input through every detector. Findings come out in a stable order (by fault,
/// key and state) whatever order a detector's internal maps iterate in, so that replay is
/// deterministic.
pub fn observe_all(
    detectors: &mut [Box<dyn Detector + Send + Sync>],
    input: &Input,
    now: Instant,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = detectors
        .iter_mut()
        .flat_map(|d| d.observe(input, now))
        .collect();
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
