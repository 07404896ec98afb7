//! Scale: the daemon's CPU and memory as the node grows. The real `guardian run` (default 1 s
//! tick) in the root namespace while N namespaces made by the benchmark each hold S sockets
//! and make a new connection every 2 s ([`scale_load`](super::scale_load)): N ∈ {1, 50, 100,
//! 250, 500} with S = 100, and S = 10 000 in one namespace. Per point: CPU % of one core
//! (utime+stime over the window) and VmRSS at its end, the ratio to N = 1, and a text chart.
//! `--churn` adds a namespace created and deleted every second for 60 s
//! ([`churn`](super::churn)). `--quick`: N ∈ {1, 50, 100} and shorter windows.
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::daemon::{cpu_seconds, rss_kib, Guardian};
use super::report::{Measured, Table};
use super::scale_load::{Load, TRICKLE_EVERY};
use super::Ctx;

/// One measured point.
#[derive(Debug, Clone)]
pub struct Point {
    pub namespaces: usize,
    pub sockets: usize,
    pub cpu_pct: f64,
    pub rss_mib: f64,
    pub trickled: u64,
}

/// The daemon in the namespace of this process (the root one), observe mode.
pub fn start_daemon(ctx: &Ctx) -> Result<Guardian> {
    Guardian::start_at(&ctx.guardian, Path::new("/proc/self/ns/net"), &[])
}

/// Starts the load, then the daemon; waits until every namespace has made a connection (so
/// the daemon has seen activity in each), then measures over `window`.
fn point(ctx: &Ctx, n: usize, s: usize, warm: Duration, window: Duration) -> Result<Point> {
    eprintln!("    {n} namespace(s) × {s} sockets: setting up");
    let total = warm + window + TRICKLE_EVERY * 2 + Duration::from_secs(5);
    let load = Load::start(&ctx.xtask, "bsc", n, s, total)?;
    let mut g = start_daemon(ctx)?;
    let pid = g.pid();
    std::thread::sleep(TRICKLE_EVERY + warm);
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(window);
    let (c1, wall, rss) = (cpu_seconds(pid)?, t0.elapsed().as_secs_f64(), rss_kib(pid)?);
    g.stop()?;
    let p = Point {
        namespaces: n,
        sockets: s,
        cpu_pct: (c1 - c0) / wall * 100.0,
        rss_mib: rss as f64 / 1024.0,
        trickled: load.made(),
    };
    drop(load);
    eprintln!(
        "    {n} × {s}: {:.2}% of one core, {:.1} MiB RSS ({} trickled connections)",
        p.cpu_pct, p.rss_mib, p.trickled
    );
    Ok(p)
}

/// A bar of `#` for `v` on a scale where `max` is [`BAR`] characters.
fn bar(v: f64, max: f64) -> String {
    const BAR: f64 = 40.0;
    let n = if max > 0.0 {
        (v / max * BAR).round()
    } else {
        0.0
    };
    "#".repeat(n.clamp(0.0, BAR) as usize)
}

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let (ns_points, warm, window): (&[usize], _, _) = if ctx.quick {
        (
            &[1, 50, 100],
            Duration::from_secs(2),
            Duration::from_secs(6),
        )
    } else {
        (
            &[1, 50, 100, 250, 500],
            Duration::from_secs(3),
            Duration::from_secs(20),
        )
    };
    // BENCH_SCALE_POINTS=500 (a comma list): only those N (for profiling one point by hand;
    // the goals of the points left out are not judged).
    let chosen: Option<Vec<usize>> = std::env::var("BENCH_SCALE_POINTS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let ns_points: Vec<usize> = match chosen {
        Some(c) if !c.is_empty() => c,
        _ => ns_points.to_vec(),
    };
    let mut points = Vec::new();
    for &n in &ns_points {
        points.push(point(ctx, n, 100, warm, window)?);
    }
    let many = point(ctx, 1, 10_000, warm, window)?;
    let base = points[0].clone();
    let mut t = Table::new(
        &format!(
            "guardian run in the root namespace (1 s tick), N namespaces of S sockets each, one \
             new connection per namespace every {} s; CPU over {} s (utime+stime), VmRSS at its end",
            TRICKLE_EVERY.as_secs(),
            window.as_secs()
        ),
        &[
            "namespaces",
            "sockets each",
            "CPU (% of one core)",
            "ratio to N = 1",
            "RSS",
            "chart (CPU)",
        ],
    );
    let max = points
        .iter()
        .chain([&many])
        .map(|p| p.cpu_pct)
        .fold(0.0, f64::max);
    for p in points.iter().chain([&many]) {
        t.row(&[
            p.namespaces.to_string(),
            p.sockets.to_string(),
            format!("{:.2}%", p.cpu_pct),
            format!("{:.2}×", p.cpu_pct / base.cpu_pct.max(0.01)),
            format!("{:.1} MiB", p.rss_mib),
            format!("`{}`", bar(p.cpu_pct, max)),
        ]);
    }
    let at = |n: usize| points.iter().find(|p| p.namespaces == n);
    let mut goals = Vec::new();
    if let Some(p) = at(100) {
        goals.push((
            format!("≤ 1 % of one core at 100 namespaces ({:.2}%)", p.cpu_pct),
            p.cpu_pct <= 1.0,
        ));
    }
    if let Some(p) = at(500) {
        goals.push((
            format!("≤ 2 % of one core at 500 namespaces ({:.2}%)", p.cpu_pct),
            p.cpu_pct <= 2.0,
        ));
        goals.push((
            format!("RSS ≤ 48 MiB at 500 namespaces ({:.1} MiB)", p.rss_mib),
            p.rss_mib <= 48.0,
        ));
    }
    // "Within noise": a tenth of a percent of a core, the resolution of a 20 s window at
    // 100 Hz clock ticks (2 ticks) with room for the trickle's jitter.
    goals.push((
        format!(
            "10 000 sockets in one namespace cost no more than 100 within noise ({:.2}% vs {:.2}%, \
             noise 0.1 point)",
            many.cpu_pct, base.cpu_pct
        ),
        many.cpu_pct <= base.cpu_pct + 0.1,
    ));
    let mut m = Measured {
        tables: vec![t],
        headline: vec![(
            "Cost as the node grows, CPU % of one core at N namespaces × 100 sockets (scale)"
                .to_string(),
            points
                .iter()
                .map(|p| format!("{}: {:.2}%", p.namespaces, p.cpu_pct))
                .collect::<Vec<_>>()
                .join(", ")
                + &format!("; 10 000 sockets: {:.2}%", many.cpu_pct),
        )],
        goals,
        raw: json!({
            "points": points.iter().chain([&many]).map(|p| json!({
                "namespaces": p.namespaces, "sockets": p.sockets, "cpu_pct": p.cpu_pct,
                "rss_mib": p.rss_mib, "trickled": p.trickled})).collect::<Vec<_>>(),
        }),
        ..Default::default()
    };
    if ctx.churn {
        super::churn::run(ctx, &mut m)?;
    }
    Ok(m)
}
