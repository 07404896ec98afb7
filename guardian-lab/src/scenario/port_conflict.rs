//! `port_conflict`: a listener holds a port and a second bind to it fails with EADDRINUSE;
//! guardian names the holder (`report_holder`, which changes nothing). Ends with the holder
//! still listening (nothing was killed).
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, SystemTime};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "port_conflict",
    remedy: Some("report_holder"),
    about: "a second bind(2) to a port a listener holds fails with EADDRINUSE; report_holder names the holder",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(5),
    build,
};

struct Conflict {
    a: Netns,
    _b: Netns,
    v: Veth,
    holder: Option<TcpListener>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("pc-a")?;
    let b = Netns::new("pc-b")?;
    let v = pair(&a, &b, 182)?;
    Ok(Box::new(Conflict {
        a,
        _b: b,
        v,
        holder: None,
    }))
}

impl Scenario for Conflict {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some("[detect.port_conflict]\nclear_after_ms = 1000\n".into()),
            args: vec!["--interval-ms".into(), "250".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let addr = SocketAddr::from((self.v.a_addr, 5182));
        let holder = self
            .a
            .within(move || TcpListener::bind(addr))?
            .map_err(|e| LabError::Other(format!("bind {addr}: {e}")))?;
        self.holder = Some(holder);
        let t = SystemTime::now();
        let errno = self
            .a
            .within(move || TcpListener::bind(addr).err().and_then(|e| e.raw_os_error()))?;
        ensure(errno == Some(libc::EADDRINUSE), || {
            format!("the second bind did not fail with EADDRINUSE ({errno:?})")
        })?;
        Ok(t)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let ss = self.a.run(&["ss", "-Htln", "sport", "= :5182"])?;
        ensure(self.holder.is_some() && ss.contains("5182"), || {
            "the holder no longer listens".into()
        })
    }
}
