//! A bind(2) storm: every call fails with EADDRINUSE, and each failure is one ring-buffer
//! record for guardian, so a few threads produce records far faster than any consumer can
//! write them. Used by the ring-buffer overload test and the `overload` benchmark.
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net::{in_netns, run_in_netns};
use crate::netns::Netns;

/// Upper bound on calls per thread, whatever the duration.
pub const MAX_BINDS_PER_THREAD: u64 = 5_000_000;

/// Binds 127.0.0.1:`port` in `ns` (held while the storm runs; drop it after).
pub fn listener(ns: &Netns, port: u16) -> std::io::Result<TcpListener> {
    run_in_netns(ns, move || {
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    })
}

/// Starts `threads` storm threads in `ns` for `dur`; each returns how many binds it made.
/// `pace` sleeps between calls (a trickle rather than a storm).
pub fn start(
    ns: &Netns,
    port: u16,
    threads: usize,
    dur: Duration,
    pace: Option<Duration>,
) -> Vec<JoinHandle<u64>> {
    (0..threads)
        .map(|_| in_netns(ns, move || storm_thread(port, dur, pace)))
        .collect()
}

/// Joins the threads of [`start`]: total binds made.
pub fn join(threads: Vec<JoinHandle<u64>>) -> u64 {
    threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
}

/// Calls bind(2) on one unbound socket to 127.0.0.1:`port` until `dur` passes (or
/// MAX_BINDS_PER_THREAD); with a listener there, each call fails with EADDRINUSE.
fn storm_thread(port: u16, dur: Duration, pace: Option<Duration>) -> u64 {
    // SAFETY: socket(2); the fd is owned by the OwnedFd below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return 0;
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    let mut n = 0;
    while n < MAX_BINDS_PER_THREAD && start.elapsed() < dur {
        // SAFETY: a valid sockaddr_in of the size given, on our own socket.
        unsafe {
            libc::bind(
                sock.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        n += 1;
        if let Some(p) = pace {
            std::thread::sleep(p);
        }
    }
    n
}
