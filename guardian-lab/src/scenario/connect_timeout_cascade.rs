//! `connect_timeout_cascade`: the server's namespace drops everything arriving on its link
//! (the lab's eBPF loss at probability 1) and the client abandons 25 connects left in SYN_SENT
//! after 300 ms. guardian (running in the server's namespace, acting in the client's) installs
//! a `sockopt_failfast` policy for the dead destination. Ends with the loss gone and the server
//! reachable again.
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use socket2::{Domain, SockAddr, Socket, Type};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::inject::{Direction, Injector};
use crate::topology::{pair, wait, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "connect_timeout_cascade",
    remedy: Some("sockopt_failfast"),
    about: "100 % ingress loss (eBPF) at the server, 25 connects abandoned in SYN_SENT; healed by sockopt_failfast",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(10),
    build,
};

const GOOD: u16 = 5180;
const BAD: u16 = 5181;

struct Cascade {
    c: Netns,
    s: Netns,
    v: Veth,
    _server: Discard,
    loss: Option<Injector>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("ct-c")?;
    let s = Netns::new("ct-s")?;
    let v = pair(&c, &s, 180)?;
    let server = Discard::start(&s, SocketAddr::from((v.b_addr, GOOD)))?;
    Ok(Box::new(Cascade {
        c,
        s,
        v,
        _server: server,
        loss: None,
    }))
}

fn connect(ns: &Netns, dst: SocketAddr) -> Result<bool, LabError> {
    Ok(ns.within(move || TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok())?)
}

/// A nonblocking connect left in progress (SYN_SENT); closed when dropped.
fn syn_sent(dst: std::net::SocketAddrV4) -> Option<Socket> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.set_nonblocking(true).ok()?;
    // EINPROGRESS: the SYN is out and the socket waits for an answer that never comes.
    let _ = s.connect(&SockAddr::from(dst));
    Some(s)
}

impl Scenario for Cascade {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.connect_timeout_cascade]\nwindow_ms = 2000\nclear_after_ms = 1000\n\
                 [safety]\nnamespaces = [\"{}\"]\n[remedies.sockopt_failfast]\nttl_ms = 3000\n",
                self.c.name()
            )),
            args: vec!["--interval-ms".into(), "200".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // The client's namespace must be known to the daemon before the failures (its first
        // sample is a baseline): one good connect, then a moment for a sample.
        let good = SocketAddr::from((self.v.b_addr, GOOD));
        ensure(connect(&self.c, good)?, || {
            "the server is unreachable before the fault".into()
        })?;
        std::thread::sleep(Duration::from_millis(600));
        let iface = self.v.b_if.clone();
        self.loss = Some(
            self.s
                .within(move || Injector::loss(&iface, Direction::Ingress, 1.0))??,
        );
        let dst = std::net::SocketAddrV4::new(self.v.b_addr, BAD);
        let closed = self.c.within(move || {
            let sockets: Vec<Socket> = (0..25).filter_map(|_| syn_sent(dst)).collect();
            std::thread::sleep(Duration::from_millis(300));
            drop(sockets);
            SystemTime::now()
        })?;
        // The failures are counted as the sockets close.
        Ok(closed)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.loss = None;
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let good = SocketAddr::from((self.v.b_addr, GOOD));
        let c = &self.c;
        ensure(
            wait(Duration::from_secs(3), || connect(c, good).unwrap_or(false)),
            || format!("{good} is unreachable at the end"),
        )
    }
}
