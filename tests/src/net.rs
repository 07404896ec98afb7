//! Real sockets inside a test's namespaces: [`in_netns`] runs a closure on a thread that has
//! joined the namespace; the helpers below open connections from such a thread.
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::util::poll;

/// Runs `f` on a new thread that first joins `ns`'s network namespace (`setns(CLONE_NEWNET)`).
/// Sockets it opens, and threads it spawns, live in that namespace.
pub fn in_netns<T, F>(ns: &Netns, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    in_netns_named(ns, &format!("gt-{}", short(ns.name())), f)
}

/// Like [`in_netns`] with a thread name (it becomes the thread's `comm`, at most 15 bytes).
pub fn in_netns_named<T, F>(ns: &Netns, thread_name: &str, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let entry = ns.testbed().entry().unwrap_or_else(|e| panic!("{e}"));
    std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            entry.enter().unwrap_or_else(|e| panic!("{e}"));
            f()
        })
        .expect("spawn thread")
}

/// Runs `f` inside `ns` and waits for it; a panic inside is re-raised here.
pub fn run_in_netns<T, F>(ns: &Netns, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match in_netns(ns, f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn short(name: &str) -> &str {
    // Thread names are cut to 15 bytes by the kernel anyway; keep the start readable.
    let n = name.strip_prefix("gt-").unwrap_or(name);
    &n[..n.len().min(12)]
}

/// A listener inside a namespace that accepts every connection and reads and discards until
/// EOF, then closes (so the client, which closes first, ends in TIME_WAIT).
pub struct DiscardServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    /// A second handle to the listening socket, to wake the acceptor with `shutdown`.
    waker: TcpListener,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    finished: AtomicU64,
    bytes: AtomicU64,
}

impl DiscardServer {
    /// Binds `addr` inside `ns` (panics if that fails) and starts accepting.
    pub fn start(ns: &Netns, addr: SocketAddr) -> DiscardServer {
        let listener = run_in_netns(ns, move || {
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
        });
        let waker = listener.try_clone().expect("dup listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let acceptor = in_netns_named(ns, "gt-accept", move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                stats2.accepted.fetch_add(1, Ordering::SeqCst);
                let stats3 = stats2.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                stats3.bytes.fetch_add(n as u64, Ordering::SeqCst);
                            }
                            Err(e) if e.kind() == ErrorKind::Interrupted => {}
                            Err(_) => break,
                        }
                    }
                    drop(conn);
                    stats3.finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        DiscardServer {
            addr,
            stop,
            stats,
            waker,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections that reached EOF and were closed by the server.
    pub fn finished(&self) -> u64 {
        self.stats.finished.load(Ordering::SeqCst)
    }

    /// Bytes read so far, over all connections.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes.load(Ordering::SeqCst)
    }

    /// Waits until `n` connections have been read to EOF and closed; false on timeout.
    pub fn wait_finished(&self, n: u64, timeout: Duration) -> bool {
        poll(timeout, Duration::from_millis(10), || {
            (self.finished() >= n).then_some(())
        })
        .is_some()
    }

    /// Stops accepting and closes the listener (connections being read go on to EOF).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // On Linux, shutdown() of a listening socket makes a blocked accept() return EINVAL.
        // SAFETY: the fd is owned by `self.waker`, open for the duration of the call.
        unsafe { libc::shutdown(self.waker.as_raw_fd(), libc::SHUT_RDWR) };
        let _ = acceptor.join();
    }
}

impl Drop for DiscardServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What [`bulk_send`] achieved.
#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    /// Bytes written to the socket.
    pub sent: u64,
    /// All `bytes` were written and the peer closed after reading them (so all were acked).
    pub complete: bool,
    pub elapsed: Duration,
}

/// Connects to `addr` (call it from an [`in_netns`] thread) and writes `bytes` bytes, then
/// closes its side and waits for the peer's close. Stops early, with `complete: false`, when
/// `timeout` passes. Errors only if the connection cannot be made.
pub fn bulk_send(addr: SocketAddr, bytes: u64, timeout: Duration) -> std::io::Result<Bulk> {
    bulk_send_paced(addr, bytes, timeout, None)
}

/// [`bulk_send`] with the kernel pacing the socket at `rate` bytes per second
/// (`SO_MAX_PACING_RATE`), as a link slower than a veth would. Unpaced, a sender on a veth is
/// limited only by the CPU, and its bursts overrun the receiving end of a veth that has an
/// XDP program: measured on a 2-core machine, 124–237 of 43 600 segments retransmitted per
/// 60 MB unpaced, 0 at 200 MB/s.
pub fn bulk_send_paced(
    addr: SocketAddr,
    bytes: u64,
    timeout: Duration,
    rate: Option<u64>,
) -> std::io::Result<Bulk> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(10)))?;
    if let Some(rate) = rate {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid socket and a u64 option value of its size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MAX_PACING_RATE,
                (&rate as *const u64).cast(),
                std::mem::size_of::<u64>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let chunk = vec![0x5au8; 128 * 1024];
    let mut sent = 0u64;
    let mut complete = true;
    while sent < bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            complete = false;
            break;
        }
        s.set_write_timeout(Some(left))?;
        let n = chunk.len().min((bytes - sent) as usize);
        match s.write(&chunk[..n]) {
            Ok(0) => {
                complete = false;
                break;
            }
            Ok(w) => sent += w as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    if complete {
        // The server closes after reading EOF: its FIN says every byte arrived.
        let left = deadline.saturating_duration_since(Instant::now());
        complete = !left.is_zero()
            && s.set_read_timeout(Some(left)).is_ok()
            && matches!(s.read(&mut [0u8; 1]), Ok(0));
    }
    Ok(Bulk {
        sent,
        complete,
        elapsed: start.elapsed(),
    })
}

/// Makes `n` short connections to `addr` one after another (call it from an [`in_netns`]
/// thread); the client closes each one first, right after the handshake. Returns how many
/// connected.
pub fn connect_n(addr: SocketAddr, n: usize, timeout: Duration) -> usize {
    (0..n)
        .filter(|_| TcpStream::connect_timeout(&addr, timeout).map(drop).is_ok())
        .count()
}

/// Makes `n` connection attempts to `addr`, where nothing listens; returns how many were
/// refused (answered with a RST).
pub fn connect_refused_n(addr: SocketAddr, n: usize, timeout: Duration) -> usize {
    (0..n)
        .filter(|_| {
            matches!(
                TcpStream::connect_timeout(&addr, timeout),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused
            )
        })
        .count()
}

/// Refused connects to 127.0.0.1:9 inside `ns` every few ms until the returned guard drops
/// (at most 120 s): the per-namespace counters change every tick, so counters events flow
/// whatever else the machine does.
pub struct Churn(Arc<AtomicBool>, Option<JoinHandle<()>>);

pub fn churn(ns: &Netns) -> Churn {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = in_netns(ns, move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
            connect_refused_n(
                "127.0.0.1:9".parse().unwrap(),
                1,
                Duration::from_millis(100),
            );
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    Churn(stop, Some(h))
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}
