//! `time_wait_exhaustion`: the client's `ip_local_port_range` has 200 ports and 110 short
//! connections (the client closes first) to one server leave 110 TIME_WAIT sockets toward it,
//! more than half the range. guardian widens the range and enables `tcp_tw_reuse` (`sysctl`).
//! Ends with the range widened.
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "time_wait_exhaustion",
    remedy: Some("sysctl"),
    about: "110 TIME_WAIT sockets toward one server in a 200-port range; healed by sysctl (wider range, tw_reuse)",
    detect_timeout: Duration::from_secs(8),
    heal_timeout: Duration::from_secs(10),
    clear_timeout: Duration::from_secs(10),
    build,
};

struct TimeWait {
    a: Netns,
    _b: Netns,
    server: Discard,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("tw-a")?;
    let b = Netns::new("tw-b")?;
    let v = pair(&a, &b, 186)?;
    let server = Discard::start(&b, SocketAddr::from((v.b_addr, 5186)))?;
    a.sysctl("net.ipv4.ip_local_port_range", "40000 40199")?;
    a.sysctl("net.ipv4.tcp_tw_reuse", "0")?;
    Ok(Box::new(TimeWait { a, _b: b, server }))
}

impl Scenario for TimeWait {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some("[detect.time_wait_exhaustion]\nclear_after_ms = 1000\n".into()),
            args: vec!["--interval-ms".into(), "250".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let dst = self.server.addr();
        let (n, crossed) = self.a.within(move || {
            let mut crossed = None;
            let mut n = 0;
            for _ in 0..110 {
                if TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok() {
                    n += 1;
                }
                // More than half of the 200 ports: the 101st TIME_WAIT.
                if n == 101 && crossed.is_none() {
                    crossed = Some(SystemTime::now());
                }
            }
            (n, crossed)
        })?;
        crossed.ok_or_else(|| LabError::Other(format!("only {n} of 110 connects succeeded")))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let range = self
            .a
            .run(&["sysctl", "-n", "net.ipv4.ip_local_port_range"])?;
        ensure(
            range.split_whitespace().collect::<Vec<_>>() != ["40000", "40199"],
            || "ip_local_port_range was not widened".into(),
        )
    }
}
