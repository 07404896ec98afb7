//! Churn (`cargo xtask bench scale --churn`): namespaces that come and go. With the daemon in
//! the root namespace, one namespace per second is created, makes a connection (so the daemon
//! sees activity in it and starts sampling it), and is deleted a second later, for 60 s (20 s
//! with `--quick`). Reported: the daemon's RSS, open descriptors and threads before and after,
//! and whether it still reports (so still samples) any of the deleted namespaces once they
//! have been gone for [`SETTLE`].
use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Result;
use guardian_tests::Netns;
use serde_json::json;

use super::daemon::{rss_kib, status_kib};
use super::report::{Measured, Table};
use super::scale::start_daemon;
use super::Ctx;

/// How long after the last deletion the daemon has to have forgotten the deleted namespaces
/// (it takes a namespace as gone after 5 s without a path to it).
const SETTLE: Duration = Duration::from_secs(10);

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One connection, client closing first, inside `ns`.
fn touch(ns: &Netns) {
    let _ = ns
        .testbed()
        .within("bench-churn", || -> std::io::Result<()> {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let c = TcpStream::connect(l.local_addr()?)?;
            let (a, _) = l.accept()?;
            drop(c);
            drop(a);
            Ok(())
        });
}

pub fn run(ctx: &Ctx, m: &mut Measured) -> Result<()> {
    let span = Duration::from_secs(if ctx.quick { 20 } else { 60 });
    eprintln!(
        "    churn: one namespace per second for {} s",
        span.as_secs()
    );
    let mut g = start_daemon(ctx)?;
    let pid = g.pid();
    std::thread::sleep(Duration::from_secs(3));
    let before = (rss_kib(pid)?, fds(pid), status_kib(pid, "Threads:")?);
    let start = Instant::now();
    let mut alive: Option<Netns> = None;
    let mut gone = HashSet::new();
    let mut made = 0;
    while start.elapsed() < span {
        let t = Instant::now();
        let ns = Netns::new("bch");
        touch(&ns);
        made += 1;
        if let Some(old) = alive.replace(ns) {
            gone.insert(old.inode());
        }
        if let Some(wait) = Duration::from_secs(1).checked_sub(t.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    if let Some(last) = alive.take() {
        gone.insert(last.inode());
    }
    let deleted_at = std::time::SystemTime::now();
    std::thread::sleep(SETTLE);
    let after = (rss_kib(pid)?, fds(pid), status_kib(pid, "Threads:")?);
    // Counters events about deleted namespaces, written after they had been gone for SETTLE.
    let since = deleted_at + SETTLE;
    std::thread::sleep(Duration::from_secs(3));
    let stale = g
        .lines_with("\"type\":\"counters\"")?
        .iter()
        .filter(|e| e["netns"].as_u64().is_some_and(|n| gone.contains(&n)))
        .filter(|e| {
            e["ts"]
                .as_str()
                .and_then(guardian_tests::parse_ts)
                .is_some_and(|t| t >= since)
        })
        .count();
    g.stop()?;
    let mut t = Table::new(
        &format!(
            "guardian run in the root namespace while one namespace per second is created, \
             makes a connection and is deleted a second later, for {} s ({made} namespaces); \
             \"after\" is {} s after the last deletion",
            span.as_secs(),
            SETTLE.as_secs()
        ),
        &["", "before", "after", "change"],
    );
    let mib = |k: u64| k as f64 / 1024.0;
    t.row(&[
        "RSS".to_string(),
        format!("{:.1} MiB", mib(before.0)),
        format!("{:.1} MiB", mib(after.0)),
        format!("{:+.1} MiB", mib(after.0) - mib(before.0)),
    ]);
    t.row(&[
        "open descriptors".to_string(),
        before.1.to_string(),
        after.1.to_string(),
        format!("{:+}", after.1 as i64 - before.1 as i64),
    ]);
    t.row(&[
        "threads".to_string(),
        before.2.to_string(),
        after.2.to_string(),
        format!("{:+}", after.2 as i64 - before.2 as i64),
    ]);
    t.row(&[
        "counters events for deleted namespaces".to_string(),
        "-".to_string(),
        stale.to_string(),
        String::new(),
    ]);
    m.tables.push(t);
    m.goals.push((
        format!("churn: no descriptor leak ({} → {})", before.1, after.1),
        after.1 <= before.1,
    ));
    m.goals.push((
        format!(
            "churn: no memory leak, RSS growth ≤ 1 MiB ({:+.1} MiB)",
            mib(after.0) - mib(before.0)
        ),
        after.0 <= before.0 + 1024,
    ));
    m.goals.push((
        format!("churn: deleted namespaces no longer sampled ({stale} counters events)"),
        stale == 0,
    ));
    m.raw["churn"] = json!({"made": made, "before": {"rss_kib": before.0, "fds": before.1,
        "threads": before.2}, "after": {"rss_kib": after.0, "fds": after.1, "threads": after.2},
        "stale_counters": stale});
    Ok(())
}
