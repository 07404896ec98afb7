//! The detectors' input side: [`Input`], the feed that carries it and the recorder.
//!
//! The detectors themselves, their ids, configs and shared plumbing are the fault
//! catalogue, [`crate::faults`]; the names below are re-exported from there so that
//! `crate::detect::{Finding, Detector, ...}` keep working.
pub mod feed;
pub mod input;
pub mod record;

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

#[cfg(test)]
pub(crate) use crate::faults::observe_net;
pub use crate::faults::{
    all, incidents, observe_all, tracker, window, Baseline, DetectConfig, Detector, FaultId,
    Finding,
};
pub use input::Input;
pub use link_down::LinkDown;
pub use route_lost::RouteLost;
