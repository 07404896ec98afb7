//! Helpers for the socket-group fault scenarios (tests/tests/e2e/faults_sockets.rs): repeated runs
//! with latency statistics, detector configuration files, and raw sockets the standard library
//! does not make (a listener with a chosen backlog).
use std::io::Write as _;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::events::{is_fault, str_field};

/// How many times each scenario runs: `$GT_RUNS`, default 1.
pub fn gt_runs() -> usize {
    std::env::var("GT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Detection latencies of one fault over the runs of a scenario.
#[derive(Debug)]
pub struct Latencies {
    name: String,
    ms: Vec<f64>,
}

impl Latencies {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ms: Vec::new(),
        }
    }

    /// Records run `i`'s latency (from `from` to the event's `ts`), prints it, and asserts it is
    /// within `bound_ms`. Returns the latency.
    pub fn record(&mut self, i: usize, from: SystemTime, ev: &Value, bound_ms: f64) -> f64 {
        let ms = crate::millis_between(from, crate::event_time(ev));
        eprintln!("latency {}: run {} = {ms:.1} ms", self.name, i + 1);
        self.ms.push(ms);
        assert!(
            ms <= bound_ms,
            "{}: detection latency {ms:.1} ms exceeds the bound of {bound_ms} ms: {ev}",
            self.name
        );
        ms
    }

    /// Prints `latency NAME: median X ms, worst Y ms over N runs`.
    pub fn report(&self) {
        if self.ms.is_empty() {
            return;
        }
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        eprintln!(
            "latency {}: median {median:.1} ms, worst {:.1} ms over {} runs",
            self.name,
            v[v.len() - 1],
            v.len()
        );
    }
}

/// A `fault` event of `fault` in `state` for namespace `netns`.
pub fn is_fault_in(e: &Value, fault: &str, state: &str, netns: u64) -> bool {
    is_fault(e, fault, state) && e.get("netns").and_then(Value::as_u64) == Some(netns)
}

/// The same incident: a `fault` event with this incident id in `state`.
pub fn is_incident(e: &Value, incident: &str, state: &str) -> bool {
    crate::is_type(e, "fault")
        && str_field(e, "incident") == Some(incident)
        && str_field(e, "state") == Some(state)
}

/// Writes a `--detect-config` file into `dir` and returns its path.
pub fn detect_config(dir: &Path, toml: &str) -> PathBuf {
    let p = dir.join("detect.toml");
    let mut f = std::fs::File::create(&p).expect("create detect config");
    f.write_all(toml.as_bytes()).expect("write detect config");
    p
}

/// A TCP listener on `addr` with an explicit `backlog` (call it from an [`crate::in_netns`]
/// thread). It never accepts: connections pile up in its accept queue.
pub fn listen_backlog(addr: SocketAddrV4, backlog: i32) -> OwnedFd {
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr is fully initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of_val(&one) as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sa) as libc::socklen_t,
        );
        assert!(r == 0, "bind {addr}: {}", std::io::Error::last_os_error());
        let r = libc::listen(fd, backlog);
        assert!(r == 0, "listen: {}", std::io::Error::last_os_error());
        owned
    }
}

/// The socket inode of a descriptor of this process (`socket:[N]`), as INET_DIAG reports it.
pub fn socket_inode(fd: RawFd) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("readlink fd");
    let s = link.to_string_lossy();
    s.strip_prefix("socket:[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("fd {fd} is not a socket: {s}"))
}

/// A TCP stream from namespace `ns`, connected and holding its data until [`Held::go`]: a test
/// injects loss after the handshake and before any data. Runs [`stream_until`] on a thread.
pub struct Held {
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sender: std::thread::JoinHandle<u64>,
}

impl Held {
    /// Connects to `dst` (within 5 s, or panics); writes for at most `max` once let go.
    pub fn connect(ns: &crate::Netns, dst: SocketAddr, max: Duration) -> Self {
        let [connected, go, stop] = [(); 3].map(|_| Arc::new(AtomicBool::new(false)));
        let (c2, g2, s2) = (connected.clone(), go.clone(), stop.clone());
        let sender = crate::in_netns(ns, move || stream_until(dst, c2, g2, s2, max));
        let up = crate::poll(Duration::from_secs(5), Duration::from_millis(1), || {
            connected.load(Ordering::SeqCst).then_some(())
        });
        assert!(up.is_some(), "could not connect to {dst}");
        Self { go, stop, sender }
    }

    /// Starts the writes.
    pub fn go(&self) {
        self.go.store(true, Ordering::SeqCst);
    }

    /// Ends the writes; the bytes written.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.sender.join().expect("sender")
    }
}

/// Connects to `addr` (call it from an [`crate::in_netns`] thread), sets `connected`, waits for
/// `go`, then writes until `stop` is set or `max` passes; returns the bytes written. Connection
/// errors end it early. Lets a test inject loss after the handshake and before any data.
pub fn stream_until(
    addr: SocketAddr,
    connected: Arc<AtomicBool>,
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    max: Duration,
) -> u64 {
    let deadline = Instant::now() + max;
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return 0;
    };
    connected.store(true, Ordering::SeqCst);
    while !go.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut sent = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match std::io::Write::write(&mut s, &chunk) {
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    sent
}
