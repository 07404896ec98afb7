//! `dns_failure` (detection only: observe-only fault): a resolver namespace answers every query
//! with SERVFAIL; the client sends a query every 50 ms. Ends when the queries stop and the
//! fault clears.
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

/// Queries in the window before it is judged, and the pace of the client.
const MIN_QUERIES: u32 = 10;
const PACE: Duration = Duration::from_millis(50);

pub const SPEC: Spec = Spec {
    fault: "dns_failure",
    remedy: None,
    about: "a resolver answering SERVFAIL to a query every 50 ms (detection only)",
    detect_timeout: Duration::from_secs(6),
    heal_timeout: Duration::ZERO,
    clear_timeout: Duration::from_secs(10),
    build,
};

struct Dns {
    a: Netns,
    b: Netns,
    v: Veth,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<(), crate::topology::TopoError>>>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("dn-a")?;
    let b = Netns::new("dn-b")?;
    let v = pair(&a, &b, 187)?;
    Ok(Box::new(Dns {
        a,
        b,
        v,
        stop: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
    }))
}

/// A query for `lab.example` (type A, class IN, recursion desired).
fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x03lab\x07example\x00\x00\x01\x00\x01");
    q
}

impl Scenario for Dns {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.dns_failure]\nwindow_ms = 3000\nmin_queries = {MIN_QUERIES}\nclear_after_ms = 500\n"
            )),
            args: vec!["--interval-ms".into(), "200".into(), "--xdp".into(), self.v.a_if.clone()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let server = SocketAddr::from((self.v.b_addr, 53));
        let sock = self
            .b
            .within(move || UdpSocket::bind(server))?
            .map_err(|e| LabError::Other(format!("bind {server}: {e}")))?;
        let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
        let stop = self.stop.clone();
        // The resolver: SERVFAIL to every query.
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 || buf[2] & 0x80 != 0 {
                    continue;
                }
                let mut r = buf[..n].to_vec();
                r[2] = 0x80 | (buf[2] & 0x79);
                r[3] = 0x80 | 2;
                r[6..12].fill(0);
                let _ = sock.send_to(&r, from);
            }
            Ok(())
        }));
        let stop = self.stop.clone();
        let t = SystemTime::now();
        self.threads.push(self.a.spawn_within(move || {
            let Ok(c) = UdpSocket::bind("0.0.0.0:0") else {
                return;
            };
            let _ = c.set_read_timeout(Some(Duration::from_millis(5)));
            let start = Instant::now();
            for id in 0..600u16 {
                if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(20) {
                    break;
                }
                let _ = c.send_to(&query(id), server);
                let mut buf = [0u8; 512];
                let _ = c.recv_from(&mut buf);
                if let Some(w) =
                    (start + PACE * (u32::from(id) + 1)).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(w);
                }
            }
        })?);
        // Judged once the window holds MIN_QUERIES queries (all failed).
        Ok(t + PACE * (MIN_QUERIES - 1))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        Ok(())
    }
}
