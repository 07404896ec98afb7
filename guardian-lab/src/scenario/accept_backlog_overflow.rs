//! `accept_backlog_overflow`: a listener asks for a backlog of 4096 but the namespace's
//! `somaxconn` = 4 caps it; nobody accepts, and a client connects every 50 ms holding each
//! connection. guardian raises `somaxconn` (`sysctl`); like an application that watches the
//! limit, the scenario calls `listen(2)` again once it reads the new value, the overflows stop
//! and the change is verified. Ends with `somaxconn` raised (the change is permanent), the
//! listener re-listened, and a client connecting.
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::common::{idle_listener, relisten};
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, TopoError, Veth};
use crate::LabError;

const HOLD_MS: u64 = 1000;
const PORT: u16 = 5189;
const BACKLOG: i32 = 4096;
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

pub const SPEC: Spec = Spec {
    fault: "accept_backlog_overflow",
    remedy: Some("sysctl"),
    about: "somaxconn 4 caps a never-accepting listener, a connect every 50 ms; healed by sysctl (somaxconn, then the listener re-listens)",
    detect_timeout: Duration::from_secs(6),
    heal_timeout: Duration::from_secs(10),
    clear_timeout: Duration::from_secs(8),
    build,
};

struct Backlog {
    a: Netns,
    b: Netns,
    v: Veth,
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    client: Option<JoinHandle<Result<(), TopoError>>>,
    watcher: Option<JoinHandle<Result<Result<bool, LabError>, TopoError>>>,
    relistened: Result<bool, String>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("ab-a")?;
    let b = Netns::new("ab-b")?;
    let v = pair(&a, &b, 189)?;
    b.sysctl("net.core.somaxconn", "4")?;
    let listener = idle_listener(&b, SocketAddr::from((v.b_addr, PORT)), BACKLOG)?;
    Ok(Box::new(Backlog {
        a,
        b,
        v,
        listener: Arc::new(listener),
        stop: Arc::new(AtomicBool::new(false)),
        client: None,
        watcher: None,
        relistened: Ok(false),
    }))
}

/// `somaxconn` as read by a thread inside the namespace (net sysctls are per namespace).
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string(SOMAXCONN).ok()?.trim().parse().ok()
}

impl Scenario for Backlog {
    fn daemon_ns(&self) -> &Netns {
        &self.b
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.accept_backlog_overflow]\nhold_ms = {HOLD_MS}\nclear_after_ms = 1000\n"
            )),
            args: vec!["--interval-ms".into(), "250".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // The application's side: listen(2) again once somaxconn is above the old cap.
        let (l, stop) = (self.listener.clone(), self.stop.clone());
        self.watcher = Some(self.b.spawn_within(move || {
            let end = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                if somaxconn().is_some_and(|n| n > 4) {
                    return relisten(&l, BACKLOG).map(|()| true);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(false)
        })?);
        let dst = SocketAddr::from((self.v.b_addr, PORT));
        let stop = self.stop.clone();
        let (tx, rx) = mpsc::channel();
        self.client = Some(self.a.spawn_within(move || {
            let mut held = Vec::new();
            let end = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                let t = SystemTime::now();
                // A full accept queue drops the SYN (`ListenOverflows`): the connect times out.
                match TcpStream::connect_timeout(&dst, Duration::from_millis(100)) {
                    Ok(s) => held.push(s),
                    Err(_) => {
                        let _ = tx.send(t);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })?);
        let first = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| LabError::Other("no connect overflowed the accept queue".into()))?;
        Ok(first + Duration::from_millis(HOLD_MS))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.client.take() {
            let _ = h.join();
        }
        if let Some(h) = self.watcher.take() {
            self.relistened = match h.join() {
                Ok(Ok(Ok(done))) => Ok(done),
                Ok(Ok(Err(e))) => Err(e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the listener's thread panicked".into()),
            };
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let n = self.b.run(&["cat", SOMAXCONN])?;
        ensure(n.trim() != "4", || "somaxconn was not raised".into())?;
        match &self.relistened {
            Ok(true) => {}
            Ok(false) => return Err(LabError::EndState("the listener never re-listened".into())),
            Err(e) => return Err(LabError::EndState(format!("re-listening failed: {e}"))),
        }
        let dst = SocketAddr::from((self.v.b_addr, PORT));
        let ok = self
            .a
            .within(move || TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok())?;
        ensure(ok, || "a client cannot connect at the end".into())
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
