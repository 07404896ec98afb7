//! Footprint: the daemon's resident memory and CPU use while idle, read from /proc after it has
//! been attached for 60 s (15 s with `--quick`). Baseline: the same process right after
//! attaching, so the ratio shows how much it grows while idle.
use std::time::{Duration, Instant};

use anyhow::Result;
use guardian_tests::{pair, Netns};
use serde_json::json;

use super::daemon::{cpu_seconds, rss_kib, Guardian};
use super::report::{Measured, Table};
use super::Ctx;

const SUBNET: u8 = 205;

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let a = Netns::new("bench-fp-a");
    let b = Netns::new("bench-fp-b");
    let v = pair(&a, &b, SUBNET);
    let idle = Duration::from_secs(if ctx.quick { 15 } else { 60 });
    let g = Guardian::start(&ctx.guardian, &b, &["--xdp", &v.b_if])?;
    let pid = g.pid();
    let (rss0, cpu0, t0) = (rss_kib(pid)?, cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(idle);
    let (rss1, cpu1, wall) = (rss_kib(pid)?, cpu_seconds(pid)?, t0.elapsed().as_secs_f64());
    let mut g = g;
    g.stop()?;
    let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
    let mut t = Table::new(
        &format!(
            "guardian run --xdp IFACE, idle for {:.0} s after attaching (/proc/PID/status \
             VmRSS, /proc/PID/stat utime+stime)",
            idle.as_secs_f64()
        ),
        &[
            "",
            "right after attaching",
            &format!("after {:.0} s", wall),
            "ratio",
        ],
    );
    t.row(&[
        "RSS".to_string(),
        format!("{:.1} MiB", rss0 as f64 / 1024.0),
        format!("{:.1} MiB", rss1 as f64 / 1024.0),
        format!("{:.2}×", rss1 as f64 / rss0.max(1) as f64),
    ]);
    t.row(&[
        "CPU time".to_string(),
        format!("{cpu0:.2} s (loading)"),
        format!("+{:.2} s", cpu1 - cpu0),
        format!("{cpu_pct:.2}% of one core"),
    ]);
    Ok(Measured {
        tables: vec![t],
        headline: vec![(
            format!("Idle footprint after {:.0} s", idle.as_secs_f64()),
            format!("{:.1} MiB RSS, {cpu_pct:.2}% CPU", rss1 as f64 / 1024.0),
        )],
        raw: json!({"rss_kib_attached": rss0, "rss_kib_idle": rss1, "cpu_s_attached": cpu0,
            "cpu_s_idle": cpu1, "wall_s": wall}),
        ..Default::default()
    })
}
