//! `http_latency`: a server in its namespace answers a client's keep-alive bursts at once
//! while guardian (`--http`) learns its baseline, then 300 ms late. guardian reports the
//! service's p95 over its baseline (detection only: no layer 2–4 action makes an application
//! answer faster). Ends with the server answering at once again.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::http_server::{burst, StatusServer};
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "http_latency",
    remedy: None,
    about:
        "a server answers 300 ms late after a fast start (syscall tracepoints, --http); reported",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build,
};

const PORT: u16 = 5194;
const DELAY_MS: u64 = 300;

struct Latency {
    c: Netns,
    s: Netns,
    v: Veth,
    server: StatusServer,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("hl-c")?;
    let s = Netns::new("hl-s")?;
    let v = pair(&c, &s, 193)?;
    let server = StatusServer::start(&s, SocketAddr::from((v.b_addr, PORT)))?;
    Ok(Box::new(Latency { c, s, v, server }))
}

impl Latency {
    fn dst(&self) -> SocketAddr {
        SocketAddr::from((self.v.b_addr, PORT))
    }
}

impl Scenario for Latency {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.http_latency]\nwindow_ms = 1000\nmin_requests = 5\nbaseline_windows = 2\n\
                 clear_after_ms = 1000\n"
                    .into(),
            ),
            args: vec!["--interval-ms".into(), "200".into(), "--http".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // Fast answers for 3 s (bounded): the daemon learns two 1 s windows of them.
        let start = Instant::now();
        for _ in 0..100 {
            if start.elapsed() >= Duration::from_secs(3) {
                break;
            }
            let ok = burst(&self.c, self.dst(), 10)?;
            ensure(ok.iter().all(|&c| c == 200), || {
                format!("the server answered {ok:?} before the fault")
            })?;
            std::thread::sleep(Duration::from_millis(100));
        }
        self.server.delay_ms.store(DELAY_MS, Ordering::SeqCst);
        let at = SystemTime::now();
        // 300 ms per request: 6 slow requests in about 2 s.
        let got = burst(&self.c, self.dst(), 6)?;
        ensure(got.iter().all(|&c| c == 200), || {
            format!("the slow server answered {got:?}")
        })?;
        Ok(at)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.server.delay_ms.store(0, Ordering::SeqCst);
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let t = Instant::now();
        let got = burst(&self.c, self.dst(), 3)?;
        ensure(
            got.iter().all(|&c| c == 200) && t.elapsed() < Duration::from_millis(DELAY_MS),
            || format!("the server answers {got:?} in {:?} at the end", t.elapsed()),
        )
    }
}
