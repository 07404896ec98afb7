//! `connection_flood`: one client namespace connects ~400 times a second to a server; guardian
//! (in the server's namespace, XDP on its veths) limits that source's SYNs at XDP
//! (`xdp_source_limit`, verified once the source's rate falls under the limit). Ends with
//! another client connecting normally. The flood completes its handshakes, and by default
//! guardian never limits a peer that does (a load balancer looks the same: docs/security.md),
//! so the scenario makes the documented choice of dropping `handshaking` from
//! `safety.protected_sources`.
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

/// The trigger (per source per second) and the flood's rate.
const LIMIT: f64 = 100.0;
const RATE: f64 = 400.0;

pub const SPEC: Spec = Spec {
    fault: "connection_flood",
    remedy: Some("xdp_source_limit"),
    about: "~400 connects/s from one source; healed by xdp_source_limit (SYN token bucket at XDP)",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(10),
    clear_timeout: Duration::from_secs(8),
    build,
};

struct Flood {
    a: Netns,
    c: Netns,
    s: Netns,
    va: Veth,
    vc: Veth,
    _server: Discard,
    stop: Arc<AtomicBool>,
    flood: Option<std::thread::JoinHandle<Result<(), crate::topology::TopoError>>>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("cf-a")?;
    let c = Netns::new("cf-c")?;
    let s = Netns::new("cf-s")?;
    let va = pair(&a, &s, 184)?;
    let vc = pair(&c, &s, 185)?;
    let server = Discard::start(&s, SocketAddr::from(([0, 0, 0, 0], 5184)))?;
    Ok(Box::new(Flood {
        a,
        c,
        s,
        va,
        vc,
        _server: server,
        stop: Arc::new(AtomicBool::new(false)),
        flood: None,
    }))
}

impl Scenario for Flood {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.connection_flood]\nper_source_per_sec = {LIMIT:.1}\nwindow_ms = 1000\nclear_after_ms = 1000\n\
                 [remedies]\nmodes = {{ sysctl = \"off\" }}\n\
                 [safety]\nprotected_sources = [\"gateways\", \"resolvers\", \"local\"]\n\
                 [remedies.xdp_source_limit]\nrate_pps = 2\nburst = 2\nttl_ms = 6000\n"
            )),
            args: vec![
                "--interval-ms".into(), "200".into(),
                "--xdp".into(), self.va.b_if.clone(),
                "--xdp".into(), self.vc.b_if.clone(),
            ],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let dst = SocketAddr::from((self.va.b_addr, 5184));
        let stop = self.stop.clone();
        let t = SystemTime::now();
        self.flood = Some(self.a.spawn_within(move || {
            let start = Instant::now();
            let step = Duration::from_secs_f64(1.0 / RATE);
            for i in 0..4000u32 {
                if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(10) {
                    break;
                }
                if let Some(w) = (start + step * i).checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let _ = TcpStream::connect_timeout(&dst, Duration::from_millis(200));
            }
        })?);
        // The window holds more than LIMIT connects once LIMIT / RATE seconds have passed.
        Ok(t + Duration::from_secs_f64(LIMIT / RATE))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.flood.take() {
            let _ = h.join();
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let other = SocketAddr::from((self.vc.b_addr, 5184));
        let ok = self.c.within(move || {
            (0..3).all(|_| TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_ok())
        })?;
        ensure(ok, || "another client cannot connect at the end".into())
    }
}
