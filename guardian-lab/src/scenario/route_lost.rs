//! `route_lost`: a route in the daemon's baseline (10.77.198.0/24 via the peer) is lost to a
//! link bounce (the kernel flushes the link's IPv4 routes on down); `route_restore` puts it
//! back. (An `ip route del` is an operator's decision, which guardian reports and leaves.) Ends with the route table exactly as before the fault.
use std::time::{Duration, SystemTime};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, wait, Netns};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "route_lost",
    remedy: Some("route_restore"),
    about: "a link bounce flushes a baseline route; healed by route_restore",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(5),
    build,
};

const PREFIX: &str = "10.77.198.0/24";

struct RouteLost {
    a: Netns,
    iface: String,
    _b: Netns,
    before: String,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("rl-a")?;
    let b = Netns::new("rl-b")?;
    let v = pair(&a, &b, 171)?;
    a.run(&["ip", "route", "add", PREFIX, "via", &v.b_addr.to_string()])?;
    let before = a.routes()?;
    Ok(Box::new(RouteLost {
        a,
        iface: v.a_if.clone(),
        _b: b,
        before,
    }))
}

impl Scenario for RouteLost {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan::default()
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let t = SystemTime::now();
        self.a
            .run(&["ip", "link", "set", "dev", &self.iface, "down"])?;
        self.a
            .run(&["ip", "link", "set", "dev", &self.iface, "up"])?;
        Ok(t)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let a = &self.a;
        let before = self.before.clone();
        ensure(
            wait(Duration::from_secs(2), || {
                a.routes().is_ok_and(|r| r == before)
            }),
            || format!("the routes differ from before the fault: {:?}", a.routes()),
        )
    }
}
