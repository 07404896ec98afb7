//! One scenario per fault of the catalogue: the topology it builds, the daemon's config, how it
//! injects the fault (and stops injecting), and the state the namespace must end in.
//!
//! A scenario value lives for one run: building it creates its namespaces, dropping it removes
//! them (and detaches its injectors).
use std::time::{Duration, SystemTime};

use super::daemon::DaemonPlan;
use super::topology::Netns;
use super::LabError;

mod accept_backlog_overflow;
mod bandwidth_saturation;
mod close_wait_leak;
mod common;
mod connect_timeout_cascade;
mod connection_flood;
mod connection_refused;
mod dns_failure;
mod dns_spoofing_suspected;
mod ephemeral_port_exhaustion;
mod http_5xx;
mod http_latency;
mod http_server;
mod link_down;
mod link_flapping;
mod mtu_blackhole;
mod port_conflict;
mod reset_storm;
mod retransmit_storm;
mod route_lost;
mod syn_flood;
mod time_wait_exhaustion;
mod tls_cert_expiry;
mod tls_handshake_failure;
mod tls_server;
mod zero_window_stall;

/// What the lab needs to know about a scenario before building it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The fault's stable name (and the scenario's).
    pub fault: &'static str,
    /// The remedy whose `verified` heals it; `None`: detection only (observe-only faults).
    pub remedy: Option<&'static str>,
    /// One line for `--list` and the docs.
    pub about: &'static str,
    /// From injection to `opened`.
    pub detect_timeout: Duration,
    /// From `opened` to the remedy's `verified`.
    pub heal_timeout: Duration,
    /// From the end of the injection to `cleared`.
    pub clear_timeout: Duration,
    pub build: fn() -> Result<Box<dyn Scenario>, LabError>,
}

pub trait Scenario {
    /// The namespace the daemon runs in.
    fn daemon_ns(&self) -> &Netns;
    /// The daemon's config and extra arguments (it always runs in enforce mode).
    fn plan(&self) -> DaemonPlan;
    /// Starts the fault. Returns the instant its trigger condition first holds: the injection
    /// itself for event faults, later for rate faults (as the e2e tests compute it).
    fn inject(&mut self) -> Result<SystemTime, LabError>;
    /// Stops injecting (the fault should then clear).
    fn stop(&mut self) -> Result<(), LabError>;
    /// Checks the state the namespace ends in, after the daemon stopped.
    fn check_end(&mut self) -> Result<(), LabError>;
}

/// Every scenario, in the catalogue's order.
pub const ALL: &[Spec] = &[
    link_down::SPEC,
    link_flapping::SPEC,
    route_lost::SPEC,
    mtu_blackhole::SPEC,
    port_conflict::SPEC,
    time_wait_exhaustion::SPEC,
    ephemeral_port_exhaustion::SPEC,
    retransmit_storm::SPEC,
    connect_timeout_cascade::SPEC,
    syn_flood::SPEC,
    accept_backlog_overflow::SPEC,
    connection_flood::SPEC,
    bandwidth_saturation::SPEC,
    dns_failure::SPEC,
    connection_refused::SPEC,
    http_5xx::SPEC_5XX,
    http_5xx::SPEC_429,
    http_latency::SPEC,
    reset_storm::SPEC,
    close_wait_leak::SPEC,
    zero_window_stall::SPEC,
    dns_spoofing_suspected::SPEC,
    tls_handshake_failure::SPEC,
    tls_cert_expiry::SPEC,
];

pub fn find(name: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.fault == name)
}

/// A check of the end state: `Ok` or one sentence.
pub fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<(), LabError> {
    if ok {
        Ok(())
    } else {
        Err(LabError::EndState(msg()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for s in ALL {
            assert_eq!(ALL.iter().filter(|t| t.fault == s.fault).count(), 1);
            assert!(find(s.fault).is_some());
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn every_fault_of_the_catalogue_has_a_scenario() {
        // Every fault of the registry (guardian/src/faults/mod.rs) has exactly one scenario; the
        // lab keeps its own presentation order.
        let mut faults: Vec<&str> = guardian::faults::FaultId::ALL
            .iter()
            .map(|f| f.as_str())
            .collect();
        let mut names: Vec<&str> = ALL.iter().map(|s| s.fault).collect();
        faults.sort_unstable();
        names.sort_unstable();
        assert_eq!(names, faults, "one scenario per fault of the catalogue");
    }
}
