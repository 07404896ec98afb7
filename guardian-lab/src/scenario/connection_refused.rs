//! `connection_refused`: the client makes 30 connects to a port nothing listens on in the
//! server's namespace; each is answered with a RST (no SYN retransmit, no timeout). guardian
//! reports the dead service (detection only: there is no layer 2–4 action that starts a
//! service) and must not mistake the refusals for a timeout cascade.
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "connection_refused",
    remedy: None,
    about: "30 connects refused (RST) by a port nothing listens on; reported, not a timeout",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build,
};

const GOOD: u16 = 5190;
const CLOSED: u16 = 5191;

struct Refused {
    c: Netns,
    s: Netns,
    v: Veth,
    _server: Discard,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("cr-c")?;
    let s = Netns::new("cr-s")?;
    let v = pair(&c, &s, 190)?;
    let server = Discard::start(&s, SocketAddr::from((v.b_addr, GOOD)))?;
    Ok(Box::new(Refused {
        c,
        s,
        v,
        _server: server,
    }))
}

fn connect(ns: &Netns, dst: SocketAddr) -> Result<bool, LabError> {
    Ok(ns.within(move || TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok())?)
}

impl Scenario for Refused {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.connection_refused]\nwindow_ms = 5000\nclear_after_ms = 1000\n".into(),
            ),
            args: vec!["--interval-ms".into(), "200".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // The client's namespace must be known to the daemon before the refusals (its first
        // sample is a baseline): one good connect, then a moment for a sample.
        let good = SocketAddr::from((self.v.b_addr, GOOD));
        ensure(connect(&self.c, good)?, || {
            "the server is unreachable before the fault".into()
        })?;
        std::thread::sleep(Duration::from_millis(600));
        let closed = SocketAddr::from((self.v.b_addr, CLOSED));
        let refused = self.c.within(move || {
            (0..30)
                .filter(|_| {
                    matches!(
                        TcpStream::connect_timeout(&closed, Duration::from_secs(1)),
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
                    )
                })
                .count()
        })?;
        ensure(refused == 30, || {
            format!("{refused} of 30 connects to {closed} were refused")
        })?;
        Ok(SystemTime::now())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let good = SocketAddr::from((self.v.b_addr, GOOD));
        ensure(connect(&self.c, good)?, || {
            format!("{good} is unreachable at the end")
        })
    }
}
