//! `retransmit_storm`: a bulk transfer from the client to a server over the primary link; the
//! lab's eBPF loss program drops 10 % of what arrives on the server's primary end. guardian
//! moves the route to the backup gateway (`route_failover`, permanent for this fault: no link
//! came back to return to) and the storm clears. Ends with the prefix routed via the backup
//! and every other route as before.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::common::{Bulk, Discard};
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::inject::{Direction, Injector};
use crate::topology::{pair, wait, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "retransmit_storm",
    remedy: Some("route_failover"),
    about: "10 % ingress loss (eBPF) on the primary link under a bulk transfer; healed by route_failover to the backup gateway",
    detect_timeout: Duration::from_secs(10),
    heal_timeout: Duration::from_secs(15),
    clear_timeout: Duration::from_secs(15),
    build,
};

const DST: &str = "10.77.174.1";
const PORT: u16 = 5174;

struct Storm {
    c: Netns,
    s: Netns,
    p: Veth,
    b: Veth,
    before: String,
    _server: Discard,
    loss: Option<Injector>,
    bulk: Option<Bulk>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("rs-c")?;
    let s = Netns::new("rs-s")?;
    let p = pair(&c, &s, 172)?;
    let b = pair(&c, &s, 173)?;
    s.run(&["ip", "addr", "add", &format!("{DST}/32"), "dev", "lo"])?;
    s.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    s.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.174.0/24",
        "via",
        &p.b_addr.to_string(),
    ])?;
    let server = Discard::start(
        &s,
        SocketAddr::new(
            DST.parse()
                .map_err(|_| LabError::Other("bad address".into()))?,
            PORT,
        ),
    )?;
    let before = c.routes()?;
    Ok(Box::new(Storm {
        c,
        s,
        p,
        b,
        before,
        _server: server,
        loss: None,
        bulk: None,
    }))
}

impl Scenario for Storm {
    fn daemon_ns(&self) -> &Netns {
        &self.c
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.retransmit_storm]\nwindow_ms = 2000\nmin_segs = 300\n\
                 [remedies.route_failover]\nbackups = [{{ prefix = \"10.77.174.0/24\", via = \"{}\" }}]\n\
                 [safety]\neffect_timeout_ms = 5000\n",
                self.b.b_addr
            )),
            args: vec!["--interval-ms".into(), "200".into(), "--verify-timeout-ms".into(), "500".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let iface = self.p.b_if.clone();
        self.loss = Some(
            self.s
                .within(move || Injector::loss(&iface, Direction::Ingress, 0.10))??,
        );
        let t = SystemTime::now();
        self.bulk = Some(Bulk::start(
            &self.c,
            SocketAddr::new(
                DST.parse()
                    .map_err(|_| LabError::Other("bad address".into()))?,
                PORT,
            ),
            None,
            Duration::from_secs(30),
        )?);
        Ok(t)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.loss = None;
        if let Some(mut b) = self.bulk.take() {
            b.stop();
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let (c, b) = (&self.c, self.b.b_addr);
        let from = format!("via {} dev {}", self.p.b_addr, self.p.a_if);
        let to = format!("via {b} dev {}", self.b.a_if);
        let expect = self.before.replace(&from, &to);
        ensure(
            wait(Duration::from_secs(5), || {
                c.routes().is_ok_and(|r| r == expect)
            }),
            || {
                format!(
                    "expected the prefix via the backup {b}, the rest as before: {:?}",
                    c.routes()
                )
            },
        )
    }
}
