//! The HTTP/1.1 server and client of the `http_*` scenarios: the server answers every request
//! with the status it is told (a real status line written with `send(2)`, what guardian's
//! syscall tracepoints parse); the client sends a bounded burst over one keep-alive connection.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::topology::Netns;
use crate::LabError;

/// Answers each request with `status`, after `delay_ms`; stops with its guard.
pub struct StatusServer {
    stop: Arc<AtomicBool>,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
}

impl StatusServer {
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<StatusServer, LabError> {
        let listener = ns
            .within(move || TcpListener::bind(addr))?
            .map_err(|e| LabError::Other(format!("bind {addr} in {}: {e}", ns.name())))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::Other(format!("listener: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (stop2, status2, delay2) = (stop.clone(), status.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let (status, delay) = (status2.clone(), delay2.clone());
                        std::thread::spawn(move || serve(c, &status, &delay));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(StatusServer {
            stop,
            status,
            delay_ms,
        })
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection: a response per request (a request ends with an empty line; no bodies).
fn serve(mut c: TcpStream, status: &AtomicU16, delay_ms: &AtomicU64) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    while let Ok(n @ 1..) = c.read(&mut buf) {
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            let delay = delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            let code = status.load(Ordering::SeqCst);
            let reply = format!("HTTP/1.1 {code} lab\r\nContent-Length: 0\r\n\r\n");
            if c.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Sends `n` requests over one connection from `ns`, each waiting for its response; returns
/// the status codes received.
pub fn burst(ns: &Netns, dst: SocketAddr, n: usize) -> Result<Vec<u16>, LabError> {
    let got = ns.within(move || -> std::io::Result<Vec<u16>> {
        let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut codes = Vec::with_capacity(n);
        let mut buf = [0u8; 512];
        for _ in 0..n {
            c.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")?;
            let len = c.read(&mut buf)?;
            let line = String::from_utf8_lossy(&buf[..len]);
            codes.push(line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0));
        }
        Ok(codes)
    })?;
    got.map_err(|e| LabError::Other(format!("HTTP client to {dst}: {e}")))
}
