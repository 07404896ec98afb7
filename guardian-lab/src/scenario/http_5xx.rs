//! `http_5xx` and `http_429`: a server in its namespace answers a client's keep-alive burst
//! of 40 requests with 503 (or 429). guardian (`--http`) parses the status lines the server
//! writes and reports the service (detection only: no layer 2–4 action fixes an application's
//! answers). Ends with the server answering 200.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::http_server::{burst, StatusServer};
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC_5XX: Spec = Spec {
    fault: "http_5xx",
    remedy: None,
    about: "a server answers 40 requests with 503 (syscall tracepoints, --http); reported",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build: build_5xx,
};

pub const SPEC_429: Spec = Spec {
    fault: "http_429",
    remedy: None,
    about: "a server answers 40 requests with 429 (syscall tracepoints, --http); reported",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build: build_429,
};

const PORT: u16 = 5192;

struct Http {
    fault: &'static str,
    code: u16,
    c: Netns,
    s: Netns,
    v: Veth,
    server: StatusServer,
}

fn build_5xx() -> Result<Box<dyn Scenario>, LabError> {
    build("http_5xx", 503, "h5-c", "h5-s", 191)
}

fn build_429() -> Result<Box<dyn Scenario>, LabError> {
    build("http_429", 429, "h4-c", "h4-s", 192)
}

fn build(
    fault: &'static str,
    code: u16,
    c: &str,
    s: &str,
    subnet: u8,
) -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new(c)?;
    let s = Netns::new(s)?;
    let v = pair(&c, &s, subnet)?;
    let server = StatusServer::start(&s, SocketAddr::from((v.b_addr, PORT)))?;
    Ok(Box::new(Http {
        fault,
        code,
        c,
        s,
        v,
        server,
    }))
}

impl Http {
    fn dst(&self) -> SocketAddr {
        SocketAddr::from((self.v.b_addr, PORT))
    }
}

impl Scenario for Http {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.{}]\nwindow_ms = 2000\nclear_after_ms = 1000\n",
                self.fault
            )),
            args: vec!["--interval-ms".into(), "200".into(), "--http".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // A few good answers first, and a moment for the daemon to sample the service.
        let ok = burst(&self.c, self.dst(), 3)?;
        ensure(ok.iter().all(|&c| c == 200), || {
            format!("the server answered {ok:?} before the fault")
        })?;
        std::thread::sleep(Duration::from_millis(600));
        self.server
            .status
            .store(self.code, std::sync::atomic::Ordering::SeqCst);
        let got = burst(&self.c, self.dst(), 40)?;
        let code = self.code;
        ensure(got.iter().all(|&c| c == code), || {
            format!("the server answered {got:?}, not {code}")
        })?;
        Ok(SystemTime::now())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.server
            .status
            .store(200, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let got = burst(&self.c, self.dst(), 3)?;
        ensure(got.iter().all(|&c| c == 200), || {
            format!("the server answers {got:?} at the end")
        })
    }
}
