//! `connect_timeout_cascade`: the server's namespace drops everything arriving on its link
//! (the lab's eBPF loss at probability 1) and 26 connects time out (`TCP_USER_TIMEOUT` 1.2 s,
//! one SYN retransmission each), 13 by root and 13 by user nobody: `sockopt_failfast` only
//! trusts timeouts the network caused, from more than one uid. guardian (running in the server's namespace, acting in the client's) installs
//! a `sockopt_failfast` policy for the dead destination. Ends with the loss gone and the server
//! reachable again.
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
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
    about: "100 % ingress loss (eBPF) at the server, 26 connects by two uids time out; healed by sockopt_failfast",
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

/// Connects to `dst` as `uid` (this thread's credentials only) that time out after 1.2 s
/// (`TCP_USER_TIMEOUT`): how many ended with ETIMEDOUT.
fn timeouts_as(uid: u32, dst: std::net::SocketAddrV4, n: usize) -> usize {
    if uid != 0 {
        // SAFETY: a raw setresuid changes only this thread's credentials.
        if unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) } != 0 {
            return 0;
        }
    }
    let sockets: Vec<Socket> = (0..n)
        .filter_map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            let ms: libc::c_int = 1200;
            // SAFETY: setsockopt from a local int on a socket we own.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_USER_TIMEOUT,
                    (&ms as *const libc::c_int).cast(),
                    4,
                )
            };
            // EINPROGRESS: the SYN is out and the socket waits for an answer that never comes.
            let _ = s.connect(&SockAddr::from(dst));
            Some(s)
        })
        .collect();
    sockets
        .iter()
        .filter(|s| {
            let mut p = libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: poll on a descriptor we own.
            unsafe { libc::poll(&mut p, 1, 5000) };
            s.take_error().ok().flatten().and_then(|e| e.raw_os_error()) == Some(libc::ETIMEDOUT)
        })
        .count()
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
        let (timed_out, closed) = self.c.within(move || {
            let nobody = std::thread::spawn(move || timeouts_as(65534, dst, 13));
            let root = timeouts_as(0, dst, 13);
            (root + nobody.join().unwrap_or(0), SystemTime::now())
        })?;
        ensure(timed_out == 26, || {
            format!("{timed_out} of 26 connects timed out")
        })?;
        // The failures are counted as the sockets time out.
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
