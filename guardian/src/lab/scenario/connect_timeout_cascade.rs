//! `connect_timeout_cascade`: the server's namespace drops everything arriving on its link
//! (the lab's eBPF loss at probability 1) and the client abandons 25 connects left in SYN_SENT
//! after 300 ms. guardian (running in the server's namespace, acting in the client's) installs
//! a `sockopt_failfast` policy for the dead destination. Ends with the loss gone and the server
//! reachable again.
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::lab::daemon::DaemonPlan;
use crate::lab::inject::{Direction, Injector};
use crate::lab::topology::{pair, wait, Netns, Veth};
use crate::lab::LabError;

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

/// A nonblocking connect left in progress (SYN_SENT); the descriptor is the caller's.
fn syn_sent(dst: std::net::SocketAddrV4) -> Option<i32> {
    // SAFETY: plain socket calls on a descriptor this function creates and returns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return None;
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: dst.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&sa) as u32,
        );
        Some(fd)
    }
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
            let fds: Vec<i32> = (0..25).filter_map(|_| syn_sent(dst)).collect();
            std::thread::sleep(Duration::from_millis(300));
            for fd in fds {
                // SAFETY: closing descriptors this thread opened.
                unsafe { libc::close(fd) };
            }
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
