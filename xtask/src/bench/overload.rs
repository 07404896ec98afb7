//! Event path under overload: a bind(2) storm in a namespace (every call fails with
//! EADDRINUSE, and each failure is one ring buffer record) from one thread per core, far
//! faster than the daemon can decode and write events. Shows the losses the daemon reports
//! (`loss` events by source), whether its `counters` events keep their schedule (inter-arrival
//! against `--interval-ms`; the baseline is the same measurement before the storm), and its
//! memory before and after (RSS, peak RSS).
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use guardian_tests::{parse_ts, storm, Netns};
use serde_json::{json, Value};

use super::daemon::{rss_kib, status_kib, Guardian};
use super::report::{Measured, Table};
use super::stats::{median, percentile};
use super::Ctx;

const PORT: u16 = 20203;
const INTERVAL_MS: u64 = 200;
/// The memory bound the daemon promises under any storm: the writer queue sheds observations
/// beyond 32k lines (about 10 MiB), the rest is the ring buffers and allocator slack.
const MAX_GROWTH_MIB: u64 = 64;

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let ns = Netns::new("bench-storm");
    let storm_dur = Duration::from_secs(if ctx.quick { 2 } else { 4 });
    let calm = Duration::from_secs(if ctx.quick { 2 } else { 4 });
    let interval = INTERVAL_MS.to_string();
    let mut g = Guardian::start(&ctx.guardian, &ns, &["--interval-ms", &interval])?;
    let pid = g.pid();
    let listener = storm::listener(&ns, PORT).context("binding the storm's listener")?;
    // Calm phase: a trickle of conflicts (10/s) keeps counters events coming, on schedule.
    let calm_start = SystemTime::now();
    let calm_binds = storm::join(storm::start(
        &ns,
        PORT,
        1,
        calm,
        Some(Duration::from_millis(100)),
    ));
    let rss_before = rss_kib(pid)?;
    // The peak before the storm is the start-up's (BTF parsing, program loading); the storm's
    // own peak is sampled every 100 ms until the backlog is drained.
    let hwm_before = status_kib(pid, "VmHWM:")?;
    let watch = guardian_tests::pressure::Watch::start(pid);
    let storm_start = SystemTime::now();
    let t0 = Instant::now();
    let attempts = storm::join(storm::start(&ns, PORT, 2, storm_dur, None));
    let storm_secs = t0.elapsed().as_secs_f64();
    let storm_end = SystemTime::now();
    let rss_after = rss_kib(pid)?;
    // Let the consumer drain what is left, then stop (the final counters hold the totals).
    std::thread::sleep(Duration::from_secs(2));
    let rss_drained = rss_kib(pid)?;
    let usage = watch.stop();
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
    let lost_in = |src: &str| lost.iter().find(|(s, _)| s == src).map_or(0, |(_, n)| *n);
    // Records the kernel could not hand over, and observation lines the writer queue shed
    // (or the per-key limit held back; the bench daemons run without it).
    let ringbuf_lost = lost_in("ringbuf");
    let queue_lost = lost_in("queue") + lost_in("throttle");
    let unaccounted = kernel_total as i64 - (observations + ringbuf_lost + queue_lost) as i64;

    let mut t1 = Table::new(
        &format!(
            "bind(2) storm: 2 threads × {:.0} s, every call fails with EADDRINUSE",
            storm_dur.as_secs_f64()
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
        "kernel count − (observations + losses: ring buffer, queue, throttle)".to_string(),
        unaccounted.to_string(),
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
        "peak during the storm and the drain (sampled every 100 ms)".to_string(),
        format!("{:.1} MiB", usage.rss_peak as f64 / 1024.0),
    ]);
    t3.row(&[
        "peak since start (VmHWM): before the storm / after".to_string(),
        format!(
            "{:.1} / {:.1} MiB",
            hwm_before as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
    ]);
    let p99 = percentile(&storm_gaps, 99.0);
    let growth_mib = (usage.rss_peak.saturating_sub(rss_before)) as f64 / 1024.0;
    let shed = ringbuf_lost + queue_lost;
    Ok(Measured {
        tables: vec![t1, t2, t3],
        headline: vec![(
            "Event storm: lost (reported) / counters p99 inter-arrival / peak RSS growth".into(),
            format!(
                "{shed} of {kernel_total} ({:.0}%) / {p99:.0} ms vs {INTERVAL_MS} ms / +{growth_mib:.1} MiB",
                shed as f64 / kernel_total.max(1) as f64 * 100.0
            ),
        )],
        goals: vec![
            (
                "every conflict written or reported lost (difference 0)".into(),
                unaccounted == 0,
            ),
            (
                format!("peak RSS growth ≤ {MAX_GROWTH_MIB} MiB (measured {growth_mib:.1})"),
                growth_mib <= MAX_GROWTH_MIB as f64,
            ),
            (
                format!("counters p99 inter-arrival < 2 × {INTERVAL_MS} ms"),
                p99 < 2.0 * INTERVAL_MS as f64,
            ),
        ],
        notes: vec![format!(
            "The storm made {:.0} k conflicting binds/s; the loss counts come from the daemon's own \
             `loss` events, the kernel count from its final `counters` event.",
            attempts as f64 / storm_secs / 1e3
        )],
        raw: json!({"attempts": attempts, "calm_binds": calm_binds, "kernel_total": kernel_total, "observations": observations,
            "lost": lost, "calm_gaps_ms": calm_gaps, "storm_gaps_ms": storm_gaps,
            "rss_kib": [rss_before, rss_after, rss_drained], "rss_peak_kib": usage.rss_peak,
            "hwm_kib": [hwm_before, hwm], "daemon_cpu_pct": usage.cpu_pct}),
    })
}
