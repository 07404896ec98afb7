//! The load of the `scale` benchmark: N namespaces made by the benchmark, each holding S TCP
//! sockets on its loopback (S/2 connections, both ends, plus a listener), and a trickle of new
//! connections (one per namespace every [`TRICKLE_EVERY`], the client closing first, so each
//! leaves a TIME_WAIT socket behind), bounded in time and count. Sockets are made from threads
//! of this process that enter the namespaces (a socket stays in the namespace it was made in);
//! everything is closed, and the namespaces deleted, when the [`Load`] is dropped.
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use guardian_tests::Netns;

/// Each namespace makes one new connection this often.
pub const TRICKLE_EVERY: Duration = Duration::from_secs(2);

/// One namespace with its sockets.
struct Held {
    ns: Netns,
    listener: TcpListener,
    _conns: Vec<TcpStream>,
}

pub struct Load {
    _held: Vec<Held>,
    stop: Arc<AtomicBool>,
    trickle: Option<JoinHandle<()>>,
    made: Arc<AtomicU64>,
}

/// Raises the open-file limit to its hard maximum (each socket is a descriptor).
pub fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            let want = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: (1 << 20).max(r.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                r.rlim_cur = r.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            }
        }
    }
}

/// Opens S/2 loopback connections and a listener inside `ns`.
fn hold(ns: Netns, sockets: usize) -> Result<Held> {
    let pairs = sockets / 2;
    let (listener, conns) = ns
        .testbed()
        .within("bench-scale-hold", move || -> std::io::Result<_> {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let addr = l.local_addr()?;
            let mut v = Vec::with_capacity(pairs * 2);
            for _ in 0..pairs {
                v.push(TcpStream::connect(addr)?);
                v.push(l.accept()?.0);
            }
            Ok((l, v))
        })
        .map_err(|e| anyhow!("{e}"))?
        .with_context(|| format!("opening {sockets} sockets in {}", ns.name()))?;
    Ok(Held {
        ns,
        listener,
        _conns: conns,
    })
}

impl Load {
    /// `n` namespaces of `sockets` sockets each; the trickle starts at once and stops after
    /// `max` (or when the load is dropped).
    pub fn start(tag: &str, n: usize, sockets: usize, max: Duration) -> Result<Load> {
        raise_nofile();
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(hold(Netns::new(tag), sockets)?);
        }
        let mut targets = Vec::with_capacity(n);
        for h in &held {
            let f = File::open(h.ns.path()).context("opening a namespace file")?;
            targets.push((f, h.listener.try_clone()?, h.listener.local_addr()?));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicU64::new(0));
        let (stop2, made2) = (stop.clone(), made.clone());
        let trickle = std::thread::Builder::new()
            .name("bench-scale-trickle".into())
            .spawn(move || trickle(targets, &stop2, &made2, max))?;
        Ok(Load {
            _held: held,
            stop,
            trickle: Some(trickle),
            made,
        })
    }

    /// Connections the trickle made so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    fn end_trickle(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.trickle.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // The trickle's namespace files and listener copies go first, then the sockets and the
        // namespaces (deleted by the guards).
        self.end_trickle();
    }
}

/// One connection per namespace every [`TRICKLE_EVERY`], spread evenly, until `stop` or
/// `max`. The thread enters each namespace to connect (the client socket must be made there)
/// and accepts on its copy of the listener; the client closes first.
fn trickle(
    targets: Vec<(File, TcpListener, SocketAddr)>,
    stop: &AtomicBool,
    made: &AtomicU64,
    max: Duration,
) {
    if targets.is_empty() {
        return;
    }
    let start = Instant::now();
    let step = TRICKLE_EVERY / targets.len() as u32;
    let limit = (max.as_secs_f64() / TRICKLE_EVERY.as_secs_f64()).ceil() as u64 + 1;
    let mut next = start;
    for _ in 0..limit {
        for (f, l, addr) in &targets {
            if stop.load(Ordering::Relaxed) || start.elapsed() >= max {
                return;
            }
            next += step;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if nix_setns(f).is_err() {
                continue;
            }
            if let Ok(c) = TcpStream::connect_timeout(addr, Duration::from_secs(1)) {
                if let Ok((a, _)) = l.accept() {
                    drop(c);
                    drop(a);
                    made.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn nix_setns(f: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns(2) on a namespace file this function borrows.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
