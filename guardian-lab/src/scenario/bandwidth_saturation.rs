//! `bandwidth_saturation` (detection only: the remedy is a report): a bulk transfer over a veth
//! whose capacity is configured at 50 Mbit/s, far below what it carries. Ends when the transfer
//! stops and the fault clears.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::common::{Bulk, Discard};
use super::{Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

/// The detector's hold, shortened from 10 s (same semantics: above the threshold that long).
const HOLD_MS: u64 = 1000;

pub const SPEC: Spec = Spec {
    fault: "bandwidth_saturation",
    remedy: None,
    about: "a bulk transfer over a veth configured at 50 Mbit/s (detection only)",
    detect_timeout: Duration::from_secs(8),
    heal_timeout: Duration::ZERO,
    clear_timeout: Duration::from_secs(8),
    build,
};

struct Bandwidth {
    a: Netns,
    _b: Netns,
    v: Veth,
    server: Discard,
    bulk: Option<Bulk>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("bw-a")?;
    let b = Netns::new("bw-b")?;
    let v = pair(&a, &b, 183)?;
    let server = Discard::start(&b, SocketAddr::from((v.b_addr, 5183)))?;
    Ok(Box::new(Bandwidth {
        a,
        _b: b,
        v,
        server,
        bulk: None,
    }))
}

impl Scenario for Bandwidth {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.bandwidth_saturation]\nhold_ms = {HOLD_MS}\nclear_after_ms = 500\n\
                 capacity_mbps = {{ {} = 50.0 }}\n",
                self.v.a_if
            )),
            args: vec![
                "--interval-ms".into(),
                "200".into(),
                "--xdp".into(),
                self.v.a_if.clone(),
            ],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let t = SystemTime::now();
        self.bulk = Some(Bulk::start(
            &self.a,
            self.server.addr(),
            None,
            Duration::from_secs(20),
        )?);
        // Far above capacity from the first sample on: the condition holds for the hold.
        Ok(t + Duration::from_millis(HOLD_MS))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        if let Some(mut b) = self.bulk.take() {
            b.stop();
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        Ok(())
    }
}
