//! Traffic the scenarios need, run on threads inside their namespaces: a discard server, a
//! bulk sender that stops on request (both bounded in time), and a listener that never accepts
//! with a chosen backlog.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::topology::Netns;
use crate::LabError;

/// A listener that reads and discards every connection; stops with its guard.
pub struct Discard {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Discard {
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Discard, LabError> {
        let listener = ns
            .within(move || TcpListener::bind(addr))?
            .map_err(|e| LabError::Other(format!("bind {addr} in {}: {e}", ns.name())))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::Other(format!("listener: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 256 * 1024];
                            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Discard { stop, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A listener bound to `addr` in `ns` that nobody accepts from, with `listen(2)` backlog
/// `backlog` (the kernel caps it at the namespace's `somaxconn` at the time of the call).
pub fn idle_listener(ns: &Netns, addr: SocketAddr, backlog: i32) -> Result<TcpListener, LabError> {
    let l = ns
        .within(move || TcpListener::bind(addr))?
        .map_err(|e| LabError::Other(format!("bind {addr} in {}: {e}", ns.name())))?;
    relisten(&l, backlog)?;
    Ok(l)
}

/// `listen(2)` again on a listening socket: the accept queue limit becomes
/// `min(backlog, somaxconn)` with the namespace's current `somaxconn`.
pub fn relisten(l: &TcpListener, backlog: i32) -> Result<(), LabError> {
    socket2::SockRef::from(l)
        .listen(backlog)
        .map_err(|e| LabError::Other(format!("listen(2): {e}")))
}

/// A sender writing to `dst` from a thread in `ns` until stopped (or `limit` passes).
pub struct Bulk {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<bool, crate::topology::TopoError>>>,
}

impl Bulk {
    /// Connects (after a small first write) and keeps writing. `total`: stop after that many
    /// bytes (the result says whether they all went out).
    pub fn start(
        ns: &Netns,
        dst: SocketAddr,
        total: Option<usize>,
        limit: Duration,
    ) -> Result<Bulk, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = ns.spawn_within(move || {
            let start = Instant::now();
            let Ok(mut s) = TcpStream::connect_timeout(&dst, Duration::from_secs(3)) else {
                return false;
            };
            let _ = s.write_all(&[1u8; 100]);
            let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
            let buf = vec![0x5au8; 64 * 1024];
            let mut sent = 0usize;
            while !stop2.load(Ordering::SeqCst) && start.elapsed() < limit {
                if total.is_some_and(|t| sent >= t) {
                    return true;
                }
                match s.write(&buf) {
                    Ok(n) => sent += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => return false,
                }
            }
            total.is_none()
        })?;
        Ok(Bulk {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops writing; whether the sender got all its bytes out (or ran until stopped).
    pub fn stop(&mut self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .and_then(Result::ok)
            .unwrap_or(false)
    }

    /// Waits up to `timeout` for a sender with a byte total to finish.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.handle.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop()
    }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
