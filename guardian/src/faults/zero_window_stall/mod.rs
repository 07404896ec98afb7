//! `zero_window_stall` (layer 4): flows of one local port whose peer has advertised a zero
//! window for at least `stall_ms` while this host still has data to send: slow clients, or a
//! reader on the other end that stopped reading. Open while at least `min_flows` flows of the
//! port stay stalled that long; clears once they resume (or close). Report only: the stalled
//! sockets belong to an application that still holds them, and the stall is the peer's; a
//! layer 2 to 4 action (destroying the sockets) would cut off a client that may still read.
//!
//! Input: `Input::ZeroWindow` (the sockets under the persist timer per (netns, local port),
//! dumped only when the namespace's `TcpExtTCPWinProbe` moved or a stall was under way; see
//! `source::zero_window`).
use std::time::Instant;

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::ZeroWindowStall;

/// Flows listed in the evidence.
pub const LISTED: usize = 5;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// How long a flow must have been stalled (since it last sent data).
        pub stall_ms: u64,
        /// Stalled flows of one port that open the fault.
        pub min_flows: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stall_ms: 5_000,
            min_flows: 1,
            hysteresis: Hysteresis::new(0, 5_000, 30_000),
        }
    }
}

pub struct ZeroWindowStall {
    cfg: Config,
    tracker: Tracker,
}

impl ZeroWindowStall {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 4,
                severity: Severity::Warning,
            },
            cfg.hysteresis,
        );
        Self { cfg, tracker }
    }
}

pub fn key(netns: u32, port: u16) -> String {
    format!("{netns}/zero_window:{port}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> ZeroWindowStall {
    ZeroWindowStall::new(cfg.clone())
}

impl Detector for ZeroWindowStall {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::ZeroWindow(z) = input else {
            return Vec::new();
        };
        let mut holding = Vec::new();
        for p in &z.ports {
            // The flows come longest stalled first.
            let stalled: Vec<_> = p
                .flows
                .iter()
                .filter(|f| f.stalled_ms >= self.cfg.stall_ms)
                .collect();
            if (stalled.len() as u64) < self.cfg.min_flows || stalled.is_empty() {
                continue;
            }
            holding.push(Holding {
                key: key(z.netns, p.port),
                netns: Some(z.netns),
                subject: Subject {
                    port: Some(p.port),
                    ..Default::default()
                },
                evidence: super::Evidence::ZeroWindowStall(Evidence {
                    stalled_flows: stalled.len() as u64,
                    longest_ms: stalled[0].stalled_ms,
                    queued_bytes: stalled.iter().map(|f| f.queued).sum(),
                    stall_ms: self.cfg.stall_ms,
                    min_flows: self.cfg.min_flows,
                    flows: stalled.iter().take(LISTED).map(|&f| f.clone()).collect(),
                    owners: p.owners.clone(),
                }),
            });
        }
        self.tracker.evaluate_netns(now, z.netns, holding)
    }
}

#[cfg(test)]
mod tests;
