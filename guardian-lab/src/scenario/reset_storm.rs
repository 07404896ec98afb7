//! `reset_storm`: the client makes 30 connects to a port nothing listens on in the
//! server's namespace; the server's kernel answers each SYN with a RST. guardian, in the
//! server's namespace, reports a storm of resets sent on that port (detection only: a reset
//! ends a connection for good; no layer 2–4 action undoes it).
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "reset_storm",
    remedy: None,
    about: "30 RSTs sent by a port nothing listens on; reported per port and direction",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build,
};

const GOOD: u16 = 5192;
const CLOSED: u16 = 5193;

struct Resets {
    c: Netns,
    s: Netns,
    v: Veth,
    _server: Discard,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("rs-c")?;
    let s = Netns::new("rs-s")?;
    let v = pair(&c, &s, 248)?;
    let server = Discard::start(&s, SocketAddr::from((v.b_addr, GOOD)))?;
    Ok(Box::new(Resets {
        c,
        s,
        v,
        _server: server,
    }))
}

fn connect(ns: &Netns, dst: SocketAddr) -> Result<bool, LabError> {
    Ok(ns.within(move || TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok())?)
}

impl Scenario for Resets {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some("[detect.reset_storm]\nwindow_ms = 5000\nclear_after_ms = 1000\n".into()),
            args: vec!["--interval-ms".into(), "200".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // The server must answer first: one good connect.
        let good = SocketAddr::from((self.v.b_addr, GOOD));
        ensure(connect(&self.c, good)?, || {
            "the server is unreachable before the fault".into()
        })?;
        // And one reset on another port, so that the server's namespace has been sampled.
        let warm = SocketAddr::from((self.v.b_addr, CLOSED + 1));
        ensure(!connect(&self.c, warm)?, || format!("{warm} accepted"))?;
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
