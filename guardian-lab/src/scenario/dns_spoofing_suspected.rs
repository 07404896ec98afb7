//! `dns_spoofing_suspected`: a host on the link sends 10 DNS answers (from port 53, with
//! transaction ids nobody asked for) to the daemon's namespace: forged answers racing for a
//! cache. guardian, watching the interface with its tcx DNS programs, reports the source
//! (detection only: the answers claim to come from the resolver).
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "dns_spoofing_suspected",
    remedy: None,
    about: "10 DNS answers nobody asked for, from port 53; reported per source",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::ZERO,
    clear_timeout: Duration::from_secs(10),
    build,
};

const N: u16 = 10;

struct Spoof {
    a: Netns,
    b: Netns,
    v: Veth,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("ds-a")?;
    let b = Netns::new("ds-b")?;
    let v = pair(&a, &b, 245)?;
    Ok(Box::new(Spoof { a, b, v }))
}

/// An answer (QR = 1, NOERROR, one question, no records) with transaction id `id`.
pub fn answer(id: u16) -> Vec<u8> {
    let mut r = id.to_be_bytes().to_vec();
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]);
    r.extend_from_slice(b"\x03lab\x07example\x00\x00\x01\x00\x01");
    r
}

impl Scenario for Spoof {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.dns_spoofing_suspected]\nwindow_ms = 3000\nclear_after_ms = 500\n".into(),
            ),
            args: vec![
                "--interval-ms".into(),
                "200".into(),
                "--xdp".into(),
                self.v.a_if.clone(),
            ],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let from = SocketAddr::from((self.v.b_addr, 53));
        let to = SocketAddr::from((self.v.a_addr, 40_053));
        let sent = self.b.within(move || {
            let Ok(s) = UdpSocket::bind(from) else {
                return 0;
            };
            (0..N)
                .filter(|i| s.send_to(&answer(0x5a00 + i), to).is_ok())
                .count()
        })?;
        ensure(sent == N as usize, || format!("{sent} of {N} answers sent"))?;
        Ok(SystemTime::now())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        Ok(())
    }
}
