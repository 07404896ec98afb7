//! `close_wait_leak`: a server in the server's namespace accepts 40 connections and never
//! closes them; the client closes each at once, so the server's sockets pile up in
//! CLOSE_WAIT. guardian, in the server's namespace, reports the port and the process holding
//! them (detection only: the sockets are the application's). Stopping the injection closes
//! them, and the fault clears.
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "close_wait_leak",
    remedy: None,
    about: "a server never closes 40 connections its clients closed; reported with the process",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build,
};

const PORT: u16 = 5194;
const N: usize = 40;

struct Leak {
    c: Netns,
    s: Netns,
    v: Veth,
    /// The server's accepted sockets, held open until `stop`.
    held: Vec<TcpStream>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("cw-c")?;
    let s = Netns::new("cw-s")?;
    let v = pair(&c, &s, 246)?;
    Ok(Box::new(Leak {
        c,
        s,
        v,
        held: Vec::new(),
    }))
}

impl Scenario for Leak {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.close_wait_leak]\nmin_sockets = 20\nwindow_ms = 5000\nclear_after_ms = 1000\n"
                    .into(),
            ),
            args: vec!["--interval-ms".into(), "200".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let addr = SocketAddr::from((self.v.b_addr, PORT));
        let listener = self
            .s
            .within(move || TcpListener::bind(addr))?
            .map_err(|e| LabError::Other(format!("bind {addr}: {e}")))?;
        let accept = std::thread::spawn(move || {
            (0..N)
                .filter_map(|_| listener.accept().ok().map(|(s, _)| s))
                .collect::<Vec<_>>()
        });
        let closed = self.c.within(move || {
            (0..N)
                .filter(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
                .count()
        })?;
        ensure(closed == N, || {
            format!("{closed} of {N} connects to {addr}")
        })?;
        self.held = accept
            .join()
            .map_err(|_| LabError::Other("the accepting thread panicked".into()))?;
        ensure(self.held.len() == N, || {
            format!("{} accepted", self.held.len())
        })?;
        Ok(SystemTime::now())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.held.clear();
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let out = self
            .s
            .run(&["ss", "-Htan", "state", "close-wait"])
            .unwrap_or_default();
        ensure(out.trim().is_empty(), || {
            format!("sockets left in CLOSE_WAIT: {out}")
        })
    }
}
