//! Remedy configuration: a mode per remedy and one table per remedy that has parameters
//! (`[remedies.<name>]` in the config file).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one remedy may do. The global mode (`--mode`) is the master switch: in global
/// observe mode nothing is applied whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RemedyMode {
    /// Apply when the global mode is enforce.
    #[default]
    Enforce,
    /// Plan and report only, even in global enforce mode.
    Observe,
    /// Not on any ladder.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RemedyConfig {
    /// Per-remedy mode, e.g. `modes = { socket_destroy = "off", sysctl = "observe" }`.
    /// Remedies not named follow the global mode.
    pub modes: BTreeMap<String, RemedyMode>,
    /// `[remedies.sockopt_failfast]`: handshake budget and lifetime of fail-fast policies.
    pub sockopt_failfast: super::sockopt_failfast::Config,
    /// `[remedies.route_failover]`: backup gateways per prefix.
    pub route_failover: super::route_failover::Config,
    /// `[remedies.route_dampen]`: hold times.
    pub route_dampen: super::route_dampen::Config,
    /// `[remedies.route_mtu]`: locked MTUs and prefix lengths.
    pub route_mtu: super::route_mtu::Config,
    /// `[remedies.route_cc]`: the algorithm and fallback destinations.
    pub route_cc: super::route_cc::Config,
    /// `[remedies.sysctl]`: the value each sysctl is moved to.
    pub sysctl: super::sysctl::Config,
    /// `[remedies.socket_destroy]`: the ports whose orphaned sockets may be destroyed.
    pub socket_destroy: super::socket_destroy::Config,
    /// `[remedies.xdp_source_limit]`: rate, burst and TTL of per-source SYN limits.
    pub xdp_source_limit: super::xdp_source_limit::Config,
    /// `[remedies.xdp_port_limit]`: rate, burst and TTL of per-port SYN limits.
    pub xdp_port_limit: super::xdp_port_limit::Config,
}

impl RemedyConfig {
    pub fn mode_of(&self, remedy: &str) -> RemedyMode {
        self.modes.get(remedy).copied().unwrap_or_default()
    }
}
