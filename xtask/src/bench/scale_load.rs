//! The load of the `scale` benchmark: N namespaces made by the benchmark, each holding S TCP
//! sockets on its loopback (S/2 connections, both ends, plus a listener), and a trickle of new
//! connections (one per namespace every [`TRICKLE_EVERY`], the client closing first, so each
//! leaves a TIME_WAIT socket behind), bounded in time and count. The sockets are held by helper
//! processes (`bench-helper scale-hold`, a few thousand namespaces' worth of descriptors each)
//! whose threads enter the namespaces (a socket stays in the namespace it was made in); the
//! trickle runs here. Everything is closed, and the namespaces deleted, when the [`Load`] is
//! dropped.
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use guardian_tests::Netns;

/// Each namespace makes one new connection this often.
pub const TRICKLE_EVERY: Duration = Duration::from_secs(2);

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

/// Namespaces per holder process: each holds (S + 1) descriptors per namespace, under the
/// usual 20 000-descriptor limit.
const FDS_PER_HOLDER: usize = 15_000;

pub struct Load {
    holders: Vec<Child>,
    stop: Arc<AtomicBool>,
    trickle: Option<JoinHandle<()>>,
    made: Arc<AtomicU64>,
    // Dropped last (fields drop in order): the namespaces.
    _ns: Vec<Netns>,
}

/// `bench-helper scale-hold`: opens S/2 loopback connections and a listener in each namespace
/// (from a thread that enters it), prints `ready`, and holds them until stdin closes.
pub fn hold_until_stdin_closes(netns: &[PathBuf], sockets: usize, max_secs: u64) -> Result<()> {
    raise_nofile();
    let mut held = Vec::new();
    for p in netns {
        let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
        let pairs = sockets / 2;
        let h = std::thread::spawn(move || -> std::io::Result<_> {
            set_ns(&f)?;
            let l = TcpListener::bind("127.0.0.1:0")?;
            let addr = l.local_addr()?;
            let mut v = Vec::with_capacity(pairs * 2);
            for _ in 0..pairs {
                v.push(TcpStream::connect(addr)?);
                v.push(l.accept()?.0);
            }
            Ok((l, v))
        });
        let socks = h
            .join()
            .map_err(|_| anyhow!("holder thread panicked"))?
            .with_context(|| format!("opening {sockets} sockets in {}", p.display()))?;
        held.push(socks);
    }
    println!("ready");
    std::io::stdout().flush()?;
    // Hold until the parent closes our stdin (or dies), bounded in time.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(max_secs));
    drop(held);
    Ok(())
}

impl Load {
    /// `n` namespaces of `sockets` sockets each (held by helper processes of `xtask`); the
    /// trickle starts at once and stops after `max` (or when the load is dropped).
    pub fn start(xtask: &Path, tag: &str, n: usize, sockets: usize, max: Duration) -> Result<Load> {
        raise_nofile();
        let ns: Vec<Netns> = (0..n).map(|_| Netns::new(tag)).collect();
        let mut load = Load {
            holders: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            trickle: None,
            made: Arc::new(AtomicU64::new(0)),
            _ns: Vec::new(),
        };
        let per = (FDS_PER_HOLDER / (sockets + 2)).max(1);
        for chunk in ns.chunks(per) {
            let mut cmd = Command::new(xtask);
            cmd.args(["bench-helper", "scale-hold", "--sockets"])
                .arg(sockets.to_string())
                .arg("--max-secs")
                .arg((max.as_secs() + 60).to_string());
            for n in chunk {
                cmd.arg("--netns").arg(n.path());
            }
            let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            let mut line = String::new();
            let out = child.stdout.take().context("holder stdout")?;
            BufReader::new(out).read_line(&mut line)?;
            load.holders.push(child);
            if line.trim() != "ready" {
                bail!("a socket holder failed (see above)");
            }
        }
        let mut targets = Vec::with_capacity(n);
        for x in &ns {
            let f = File::open(x.path()).context("opening a namespace file")?;
            let g = File::open(x.path())?;
            let l = std::thread::spawn(move || -> std::io::Result<TcpListener> {
                set_ns(&g)?;
                TcpListener::bind("127.0.0.1:0")
            })
            .join()
            .map_err(|_| anyhow!("listener thread panicked"))??;
            let addr = l.local_addr()?;
            targets.push((f, l, addr));
        }
        load._ns = ns;
        let (stop2, made2) = (load.stop.clone(), load.made.clone());
        load.trickle = Some(
            std::thread::Builder::new()
                .name("bench-scale-trickle".into())
                .spawn(move || trickle(targets, &stop2, &made2, max))?,
        );
        Ok(load)
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
        // The trickle's namespace files and listeners go first, then the holders' sockets
        // (closing their stdin ends them; killed if they do not), then the namespaces.
        self.end_trickle();
        for mut c in self.holders.drain(..) {
            drop(c.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
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
            if set_ns(f).is_err() {
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

fn set_ns(f: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns(2) on a namespace file this function borrows.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
