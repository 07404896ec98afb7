//! Event path under overload: a bind(2) storm in a namespace (every call fails with
//! EADDRINUSE, and each failure is one ring buffer record) from one thread per core, far
//! faster than the daemon can decode and write events. Shows the losses the daemon reports
//! (`loss` events by source), whether its `counters` events keep their schedule (inter-arrival
//! against `--interval-ms`; the baseline is the same measurement before the storm), and its
//! memory before and after (RSS, peak RSS).
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use guardian_tests::{in_netns, parse_ts, run_in_netns, Netns};
use serde_json::{json, Value};

use super::daemon::{rss_kib, status_kib, Guardian};
use super::report::{Measured, Table};
use super::stats::{median, percentile};
use super::Ctx;

const PORT: u16 = 20203;
const INTERVAL_MS: u64 = 200;
const MAX_BINDS_PER_THREAD: u64 = 5_000_000;

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let ns = Netns::new("bench-storm");
    let storm = Duration::from_secs(if ctx.quick { 2 } else { 4 });
    let calm = Duration::from_secs(if ctx.quick { 2 } else { 4 });
    let interval = INTERVAL_MS.to_string();
    let mut g = Guardian::start(&ctx.guardian, &ns, &["--interval-ms", &interval])?;
    let pid = g.pid();
    let listener = run_in_netns(&ns, || {
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT))
    })
    .context("binding the storm's listener")?;
    // Calm phase: a trickle of conflicts (10/s) keeps counters events coming, on schedule.
    let calm_start = SystemTime::now();
    let trickle = in_netns(&ns, move || {
        storm_thread(calm, Some(Duration::from_millis(100)))
    });
    let calm_binds = trickle.join().unwrap_or(0);
    let rss_before = rss_kib(pid)?;
    let storm_start = SystemTime::now();
    let t0 = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| in_netns(&ns, move || storm_thread(storm, None)))
        .collect();
    let attempts: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let storm_secs = t0.elapsed().as_secs_f64();
    let storm_end = SystemTime::now();
    let rss_after = rss_kib(pid)?;
    // Let the consumer drain what is left, then stop (the final counters hold the totals).
    std::thread::sleep(Duration::from_secs(2));
    let rss_drained = rss_kib(pid)?;
    let hwm = status_kib(pid, "VmHWM:")?;
    drop(listener);
    g.stop()?;

    let netns = ns.inode();
    let counters: Vec<Value> = g
        .lines_with("\"type\":\"counters\"")?
        .into_iter()
        .filter(|e| e["netns"].as_u64() == Some(netns))
        .collect();
    let kernel_total = counters
        .iter()
        .find(|e| e["final"] == true)
        .and_then(|e| e["bind_eaddrinuse"].as_u64())
        .unwrap_or(0);
    let gaps = |from: SystemTime, to: SystemTime| -> Vec<f64> {
        let ts: Vec<SystemTime> = counters
            .iter()
            .filter(|e| e["final"] != true)
            .filter_map(|e| parse_ts(e["ts"].as_str()?))
            .filter(|t| *t >= from && *t <= to)
            .collect();
        ts.windows(2)
            .filter_map(|w| w[1].duration_since(w[0]).ok())
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect()
    };
    let calm_gaps = gaps(calm_start, storm_start);
    let storm_gaps = gaps(storm_start, storm_end + Duration::from_millis(INTERVAL_MS));
    let observations = g.count_lines("\"type\":\"observation\"")?;
    let mut lost: Vec<(String, u64)> = Vec::new();
    for e in g.lines_with("\"type\":\"loss\"")? {
        let (Some(src), Some(n)) = (e["source"].as_str(), e["lost"].as_u64()) else {
            continue;
        };
        match lost.iter_mut().find(|(s, _)| s == src) {
            Some((_, t)) => *t += n,
            None => lost.push((src.to_string(), n)),
        }
    }
    let ringbuf_lost = lost
        .iter()
        .find(|(s, _)| s == "ringbuf")
        .map_or(0, |(_, n)| *n);

    let mut t1 = Table::new(
        &format!(
            "bind(2) storm: 2 threads × {:.0} s, every call fails with EADDRINUSE",
            storm.as_secs_f64()
        ),
        &["", "count"],
    );
    t1.row(&[
        "bind attempts during the storm".to_string(),
        format!("{}", attempts),
    ]);
    t1.row(&[
        "conflicts the kernel programs counted (final counters)".to_string(),
        kernel_total.to_string(),
    ]);
    t1.row(&[
        "observation events written".to_string(),
        observations.to_string(),
    ]);
    for (src, n) in &lost {
        t1.row(&[format!("reported lost, source `{src}`"), n.to_string()]);
    }
    if lost.is_empty() {
        t1.row(&[
            "reported lost".to_string(),
            "0 (no loss events)".to_string(),
        ]);
    }
    t1.row(&[
        "observations + ring buffer losses − kernel count".to_string(),
        format!(
            "{}",
            observations as i64 + ringbuf_lost as i64 - kernel_total as i64
        ),
    ]);
    let mut t2 = Table::new(
        &format!("counters events of the storm's namespace, --interval-ms {INTERVAL_MS}: inter-arrival (ms)"),
        &["phase", "events", "median", "p99", "max"],
    );
    for (label, xs) in [("calm (baseline)", &calm_gaps), ("storm", &storm_gaps)] {
        let max = xs.iter().copied().fold(f64::NAN, f64::max);
        t2.row(&[
            label.to_string(),
            (xs.len() + 1).to_string(),
            format!("{:.0}", median(xs)),
            format!("{:.0}", percentile(xs, 99.0)),
            format!("{max:.0}"),
        ]);
    }
    let mut t3 = Table::new("daemon memory (/proc/PID/status)", &["when", "RSS"]);
    t3.row(&[
        "before the storm".to_string(),
        format!("{:.1} MiB", rss_before as f64 / 1024.0),
    ]);
    t3.row(&[
        "end of the storm".to_string(),
        format!("{:.1} MiB", rss_after as f64 / 1024.0),
    ]);
    t3.row(&[
        "2 s later".to_string(),
        format!("{:.1} MiB", rss_drained as f64 / 1024.0),
    ]);
    t3.row(&[
        "peak (VmHWM)".to_string(),
        format!("{:.1} MiB", hwm as f64 / 1024.0),
    ]);
    let p99 = percentile(&storm_gaps, 99.0);
    Ok(Measured {
        tables: vec![t1, t2, t3],
        headline: vec![(
            "Event storm: records lost (reported) / counters p99 inter-arrival vs interval"
                .into(),
            format!(
                "{} of {} ({:.0}%) / {p99:.0} ms vs {INTERVAL_MS} ms",
                ringbuf_lost,
                kernel_total,
                ringbuf_lost as f64 / kernel_total.max(1) as f64 * 100.0
            ),
        )],
        notes: vec![format!(
            "The storm made {:.0} k conflicting binds/s; the loss counts come from the daemon's own \
             `loss` events, the kernel count from its final `counters` event.",
            attempts as f64 / storm_secs / 1e3
        )],
        raw: json!({"attempts": attempts, "calm_binds": calm_binds, "kernel_total": kernel_total, "observations": observations,
            "lost": lost, "calm_gaps_ms": calm_gaps, "storm_gaps_ms": storm_gaps,
            "rss_kib": [rss_before, rss_after, rss_drained], "hwm_kib": hwm}),
        ..Default::default()
    })
}

/// Calls bind(2) on one unbound socket to the listener's address until `dur` passes (or
/// MAX_BINDS_PER_THREAD); each call fails with EADDRINUSE. `pace` sleeps between calls.
fn storm_thread(dur: Duration, pace: Option<Duration>) -> u64 {
    let Ok(sock) = socket() else {
        return 0;
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: PORT.to_be(),
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

fn socket() -> Result<std::os::fd::OwnedFd, ()> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2); the fd is owned by the returned OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}
