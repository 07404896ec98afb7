//! What the daemon looks like while a test leans on it: its memory and CPU, and how fast it
//! answers `status` on its control socket. Used by the flood and storm tests.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`); None when unreadable.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resident set size in KiB; 0 when unreadable (the process is gone).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap_or(0)
}

/// user + system CPU time of a process so far, in seconds (`/proc/PID/stat`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    let ticks = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((ticks(14)? + ticks(15)?) as f64 / hz)
}

/// One `status` request on the control socket; Ok when the daemon answered `ok`.
pub fn status_once(socket: &Path) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    if v["ok"] == true {
        Ok(())
    } else {
        Err(std::io::Error::other(line))
    }
}

/// Asks `status` every `every` until stopped.
pub struct StatusPoller {
    done: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<Duration>, usize)>,
}

/// What a [`StatusPoller`] saw: answer times, sorted, and failed requests.
#[derive(Debug)]
pub struct Answers {
    pub took: Vec<Duration>,
    pub failed: usize,
}

impl Answers {
    pub fn p99(&self) -> Duration {
        self.took
            .get(self.took.len() * 99 / 100)
            .copied()
            .unwrap_or(Duration::MAX)
    }

    pub fn max(&self) -> Duration {
        self.took.last().copied().unwrap_or(Duration::MAX)
    }
}

impl StatusPoller {
    pub fn start(socket: PathBuf, every: Duration) -> StatusPoller {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let mut took = Vec::new();
            let mut failed = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match status_once(&socket) {
                    Ok(()) => took.push(t.elapsed()),
                    Err(_) => failed += 1,
                }
                std::thread::sleep(every);
            }
            (took, failed)
        });
        StatusPoller { done, thread }
    }

    pub fn stop(self) -> Answers {
        self.done.store(true, Ordering::Relaxed);
        let (mut took, failed) = self.thread.join().unwrap_or_default();
        took.sort();
        Answers { took, failed }
    }
}

/// Samples a process's RSS every 100 ms and its CPU time until stopped.
pub struct Watch {
    done: Arc<AtomicBool>,
    thread: JoinHandle<Usage>,
}

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// RSS when the watch started, KiB.
    pub rss_start: u64,
    /// Highest RSS sampled, KiB.
    pub rss_peak: u64,
    /// CPU time over wall time, percent of one core.
    pub cpu_pct: f64,
}

impl Watch {
    pub fn start(pid: u32) -> Watch {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let rss_start = rss_kib(pid);
        let thread = std::thread::spawn(move || {
            let c0 = cpu_seconds(pid).unwrap_or(0.0);
            let t0 = Instant::now();
            let mut peak = rss_start;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak = peak.max(rss_kib(pid));
            let cpu = cpu_seconds(pid).unwrap_or(c0) - c0;
            Usage {
                rss_start,
                rss_peak: peak,
                cpu_pct: cpu / t0.elapsed().as_secs_f64() * 100.0,
            }
        });
        Watch { done, thread }
    }

    pub fn stop(self) -> Usage {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("watch thread")
    }
}
