//! `mtu_blackhole`: client → router → server, the router's far link has MTU 1280 and the lab's
//! eBPF program drops the router's ICMP "fragmentation needed" on its way to the client. A 2 MiB
//! transfer stalls on full-size segments; guardian locks the route's MTU to 1280
//! (`route_mtu`), the transfer completes. Ends with the transfer complete.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::common::{Bulk, Discard};
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::inject::{Direction, Injector};
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "mtu_blackhole",
    remedy: Some("route_mtu"),
    about: "MTU 1280 behind a router whose ICMP frag-needed is dropped (eBPF); healed by route_mtu",
    detect_timeout: Duration::from_secs(10),
    heal_timeout: Duration::from_secs(15),
    clear_timeout: Duration::from_secs(10),
    build,
};

struct Mtu {
    c: Netns,
    r: Netns,
    _s: Netns,
    v1: Veth,
    server: Discard,
    icmp: Option<Injector>,
    bulk: Option<Bulk>,
    completed: bool,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("mb-c")?;
    let r = Netns::new("mb-r")?;
    let s = Netns::new("mb-s")?;
    let v1 = pair(&c, &r, 175)?;
    let v2 = pair(&r, &s, 176)?;
    r.sysctl("net.ipv4.ip_forward", "1")?;
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.176.0/24",
        "via",
        &v1.b_addr.to_string(),
    ])?;
    s.run(&[
        "ip",
        "route",
        "add",
        "10.77.175.0/24",
        "via",
        &v2.a_addr.to_string(),
    ])?;
    r.run(&["ip", "link", "set", &v2.a_if, "mtu", "1280"])?;
    let server = Discard::start(&s, SocketAddr::from((v2.b_addr, 5175)))?;
    Ok(Box::new(Mtu {
        c,
        r,
        _s: s,
        v1,
        server,
        icmp: None,
        bulk: None,
        completed: false,
    }))
}

impl Scenario for Mtu {
    fn daemon_ns(&self) -> &Netns {
        &self.c
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.mtu_blackhole]\nclear_after_ms = 500\n[remedies.route_mtu]\nmtu_ipv4 = 1280\n\
                 [safety]\neffect_timeout_ms = 4000\n"
                    .into(),
            ),
            args: vec!["--interval-ms".into(), "200".into(), "--verify-timeout-ms".into(), "500".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let iface = self.v1.b_if.clone();
        self.icmp = Some(
            self.r
                .within(move || Injector::icmp_drop(&iface, Direction::Egress))??,
        );
        let t = SystemTime::now();
        self.bulk = Some(Bulk::start(
            &self.c,
            self.server.addr(),
            Some(2 << 20),
            Duration::from_secs(25),
        )?);
        Ok(t)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        if let Some(mut b) = self.bulk.take() {
            self.completed = b.wait(Duration::from_secs(10));
        }
        self.icmp = None;
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        ensure(self.completed, || {
            "the bulk transfer did not complete".into()
        })
    }
}
