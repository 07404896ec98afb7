//! `ephemeral_port_exhaustion`: the client's `ip_local_port_range` is narrowed to 10 ports, 10
//! connections hold them, and a new connect every 100 ms fails with EADDRNOTAVAIL. guardian
//! widens the range and enables `tcp_tw_reuse` (`sysctl`). Ends with the range widened and
//! connects succeeding.
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use super::common::Discard;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns};
use crate::LabError;

/// The detector's hold, shortened from 3 s (same semantics: ≥ 1 failure/s for the hold).
const HOLD_MS: u64 = 1000;

pub const SPEC: Spec = Spec {
    fault: "ephemeral_port_exhaustion",
    remedy: Some("sysctl"),
    about: "a 10-port ip_local_port_range, all held, a connect every 100 ms fails; healed by sysctl (wider range, tw_reuse)",
    detect_timeout: Duration::from_secs(8),
    heal_timeout: Duration::from_secs(10),
    clear_timeout: Duration::from_secs(10),
    build,
};

struct Eph {
    a: Netns,
    _b: Netns,
    server: Discard,
    stop: Arc<AtomicBool>,
    client: Option<std::thread::JoinHandle<Result<u32, crate::topology::TopoError>>>,
    ok: u32,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("ep-a")?;
    let b = Netns::new("ep-b")?;
    let v = pair(&a, &b, 181)?;
    let server = Discard::start(&b, SocketAddr::from((v.b_addr, 5181)))?;
    a.sysctl("net.ipv4.ip_local_port_range", "40000 40009")?;
    a.sysctl("net.ipv4.tcp_tw_reuse", "0")?;
    Ok(Box::new(Eph {
        a,
        _b: b,
        server,
        stop: Arc::new(AtomicBool::new(false)),
        client: None,
        ok: 0,
    }))
}

impl Scenario for Eph {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.ephemeral_port_exhaustion]\nhold_ms = {HOLD_MS}\nclear_after_ms = 1000\n"
            )),
            args: vec!["--interval-ms".into(), "250".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let (dst, stop) = (self.server.addr(), self.stop.clone());
        let (tx, rx) = mpsc::channel();
        self.client = Some(self.a.spawn_within(move || {
            let held: Vec<TcpStream> = (0..10)
                .filter_map(|_| TcpStream::connect_timeout(&dst, Duration::from_secs(2)).ok())
                .collect();
            let mut ok = 0;
            let end = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                match TcpStream::connect_timeout(&dst, Duration::from_secs(1)) {
                    Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                        let _ = tx.send(SystemTime::now());
                    }
                    Ok(_) => ok += 1,
                    Err(_) => {}
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(held);
            ok
        })?);
        let first = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| LabError::Other("no connect failed with EADDRNOTAVAIL".into()))?;
        Ok(first + Duration::from_millis(HOLD_MS))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.client.take() {
            self.ok = h.join().ok().and_then(Result::ok).unwrap_or(0);
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let range = self
            .a
            .run(&["sysctl", "-n", "net.ipv4.ip_local_port_range"])?;
        ensure(
            range.split_whitespace().collect::<Vec<_>>() != ["40000", "40009"],
            || "ip_local_port_range was not widened".into(),
        )?;
        ensure(self.ok > 0, || {
            "no connect succeeded after the widening".into()
        })
    }
}
