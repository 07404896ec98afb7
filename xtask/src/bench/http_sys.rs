//! The `http` benchmark's non-HTTP side and its attribution: the syscall hook of
//! `guardian run --http` is system-wide (every syscall of every process runs it), so
//! two loops that make many small syscalls and no HTTP are timed in each configuration, and
//! the kernel's own per-program statistics (`BPF_ENABLE_STATS`: run count and run time of each
//! program) say which of the daemon's programs the time goes to.
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// CPU seconds (user + system) of the calling thread (`RUSAGE_THREAD`) or of the whole process.
fn rusage_cpu(who: libc::c_int) -> f64 {
    // SAFETY: a zeroed rusage is valid for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `n` × (read 1 byte of /dev/zero, write it to /dev/null), through descriptors ≥ 3 as a
/// program's files are; ns of this thread's CPU per read + write pair.
pub fn file_rw(n: u64) -> Result<f64> {
    let mut zero = File::open("/dev/zero").context("/dev/zero")?;
    let mut null = File::options()
        .write(true)
        .open("/dev/null")
        .context("/dev/null")?;
    let mut b = [0u8; 1];
    let t0 = rusage_cpu(libc::RUSAGE_THREAD);
    for _ in 0..n {
        zero.read_exact(&mut b)?;
        null.write_all(&b)?;
    }
    Ok((rusage_cpu(libc::RUSAGE_THREAD) - t0) / n as f64 * 1e9)
}

/// `n` round trips of 64 bytes over a TCP connection on 127.0.0.1 (an echo thread in this
/// process): per round trip two send(2)/recv(2) pairs on sockets that carry no HTTP. ns of the
/// process's CPU per round trip (both threads; nothing else runs in it meanwhile).
pub fn tcp_pingpong(n: u64) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut b = [0u8; 64];
        for _ in 0..n {
            s.read_exact(&mut b)?;
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut b = [7u8; 64];
    let t0 = rusage_cpu(libc::RUSAGE_SELF);
    for _ in 0..n {
        c.write_all(&b)?;
        c.read_exact(&mut b)?;
    }
    let cpu = rusage_cpu(libc::RUSAGE_SELF) - t0;
    match echo.join() {
        Ok(r) => r.context("echo thread")?,
        Err(_) => bail!("echo thread panicked"),
    }
    Ok(cpu / n as f64 * 1e9)
}

/// `n` HTTP/1.1 requests and responses over one keep-alive TCP connection on 127.0.0.1, made
/// as nginx and wrk make them, by one thread that plays both ends: the client send(2)s a
/// request, the server recv(2)s it and writev(2)s the status line and headers and the body,
/// the client recv(2)s the response. Loopback delivers each send before it returns, so no
/// call blocks and no thread is woken: a cross-CPU wake-up costs tens of µs on a VM and would
/// hide the programs' hundreds of ns. ns of this thread's CPU per request: what the HTTP
/// programs add to the four syscalls of one request, without nginx's and wrk's own work.
pub fn http_pingpong(n: u64) -> Result<f64> {
    const REQ: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n";
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut c = TcpStream::connect(listener.local_addr()?)?;
    let (mut s, _) = listener.accept()?;
    for t in [&c, &s] {
        t.set_nodelay(true)?;
        t.set_read_timeout(Some(Duration::from_secs(5)))?;
    }
    let mut req = [0u8; REQ.len()];
    let mut resp = [0u8; HEAD.len() + 2];
    let t0 = rusage_cpu(libc::RUSAGE_THREAD);
    for _ in 0..n {
        c.write_all(REQ)?;
        s.read_exact(&mut req)?;
        let iov = [std::io::IoSlice::new(HEAD), std::io::IoSlice::new(b"ok")];
        if s.write_vectored(&iov)? != resp.len() {
            bail!("short writev");
        }
        c.read_exact(&mut resp)?;
    }
    Ok((rusage_cpu(libc::RUSAGE_THREAD) - t0) / n as f64 * 1e9)
}

/// Kernel statistics of BPF programs, on while this lives (`BPF_ENABLE_STATS`, the same
/// switch as `sysctl kernel.bpf_stats_enabled=1`, released when the descriptor closes).
pub struct Stats(#[allow(dead_code)] OwnedFd);

impl Stats {
    pub fn enable() -> Result<Stats> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(Stats)
            .context("BPF_ENABLE_STATS")
    }
}

/// (run count, run time ns) per program (by name) of one process.
pub type Snapshot = BTreeMap<String, (u64, u64)>;

/// The groups programs are summed in: `--http`'s kinds, and the rest. The socket
/// tracepoints are named `tls_sock_*` but are no uprobes: counted apart, so that uprobe hits
/// are not theirs.
pub const GROUPS: [&str; 5] = [
    "syscall hook (http_sys_exit)",
    "libssl uprobes (tls_*)",
    "guardian run's other programs",
    "packet programs (http_ingress, http_egress)",
    "socket tracepoints (tls_sock_*)",
];

/// The group a program of guardian's belongs to, by its name.
pub fn group(name: &str) -> &'static str {
    if name == "http_ingress" || name == "http_egress" {
        GROUPS[3]
    } else if name.starts_with("http_") {
        GROUPS[0]
    } else if name.starts_with("tls_sock_") {
        GROUPS[4]
    } else if name.starts_with("tls_") {
        GROUPS[1]
    } else {
        GROUPS[2]
    }
}

/// The ids of the BPF programs process `pid` holds (`prog_id:` in /proc/PID/fdinfo).
fn prog_ids(pid: u32) -> Result<BTreeSet<u32>> {
    let mut ids = BTreeSet::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for e in std::fs::read_dir(&dir).with_context(|| dir.clone())? {
        let Ok(text) = std::fs::read_to_string(e?.path()) else {
            continue;
        };
        for l in text.lines() {
            if let Some(v) = l.strip_prefix("prog_id:") {
                if let Ok(id) = v.trim().parse() {
                    ids.insert(id);
                }
            }
        }
    }
    Ok(ids)
}

/// Run counts and times of the programs of process `pid`, by name.
pub fn snapshot(pid: u32) -> Result<Snapshot> {
    let ids = prog_ids(pid)?;
    let mut out = Snapshot::new();
    for info in aya::programs::loaded_programs() {
        let Ok(info) = info else { continue };
        if !ids.contains(&info.id()) {
            continue;
        }
        let name = info.name_as_str().unwrap_or("?").to_owned();
        let e = out.entry(name).or_default();
        e.0 += info.run_count();
        e.1 += info.run_time().as_nanos() as u64;
    }
    Ok(out)
}

/// Run counts and times summed per group.
pub fn by_group(d: &Snapshot) -> BTreeMap<&'static str, (u64, u64)> {
    let mut out = BTreeMap::new();
    for (name, (n, t)) in d {
        let e: &mut (u64, u64) = out.entry(group(name)).or_default();
        e.0 += n;
        e.1 += t;
    }
    out
}

/// `after − before`, per program.
pub fn delta(before: &Snapshot, after: &Snapshot) -> Snapshot {
    after
        .iter()
        .map(|(g, (n, t))| {
            let (n0, t0) = before.get(g).copied().unwrap_or_default();
            (g.clone(), (n.saturating_sub(n0), t.saturating_sub(t0)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_grouped_by_name() {
        assert_eq!(group("http_sys_exit"), "syscall hook (http_sys_exit)");
        assert_eq!(group("http_read_exit"), "syscall hook (http_sys_exit)");
        assert_eq!(group("tls_hs_exit"), "libssl uprobes (tls_*)");
        assert_eq!(group("tls_sock_send"), "socket tracepoints (tls_sock_*)");
        assert_eq!(group("sock_state"), "guardian run's other programs");
        for p in ["http_ingress", "http_egress"] {
            assert_eq!(group(p), "packet programs (http_ingress, http_egress)");
        }
    }

    fn snap(v: &[(&str, (u64, u64))]) -> Snapshot {
        v.iter().map(|(k, x)| (k.to_string(), *x)).collect()
    }

    #[test]
    fn deltas_are_per_program_and_sum_per_group() {
        let b = snap(&[("a", (1, 10)), ("b", (5, 50))]);
        let a = snap(&[("a", (4, 40)), ("b", (5, 50)), ("c", (1, 1))]);
        let d = delta(&b, &a);
        assert_eq!(d["a"], (3, 30));
        assert_eq!(d["b"], (0, 0));
        assert_eq!(d["c"], (1, 1));
        let g = by_group(&snap(&[
            ("http_a", (1, 2)),
            ("http_b", (3, 4)),
            ("x", (5, 6)),
            ("http_egress", (7, 8)),
        ]));
        assert_eq!(g[GROUPS[0]], (4, 6));
        assert_eq!(g[GROUPS[2]], (5, 6));
        assert_eq!(g[GROUPS[3]], (7, 8));
        assert!(!g.contains_key(GROUPS[1]));
    }

    #[test]
    fn the_loops_run_and_cost_something() {
        assert!(file_rw(1000).unwrap() >= 0.0);
        assert!(tcp_pingpong(100).unwrap() >= 0.0);
        assert!(http_pingpong(100).unwrap() >= 0.0);
    }
}
