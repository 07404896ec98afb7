//! The checks `cargo xtask systemd` runs against the booted container, each timed.
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{wait_for, Container};
use crate::cmd;

fn step(name: &str, f: impl FnOnce() -> Result<String>) -> Result<()> {
    let t = Instant::now();
    let detail = f().with_context(|| format!("check `{name}` failed"))?;
    eprintln!("ok: {name} ({}): {detail}", cmd::secs(t.elapsed()));
    Ok(())
}

/// The daemon's resident set (the container's systemd may have no memory controller, so
/// MemoryCurrent can be unset).
fn rss(c: &Container) -> Result<String> {
    let pid = c.show("guardian.service", "MainPID")?;
    let status = c.sh(&["cat", &format!("/proc/{pid}/status")])?;
    Ok(status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "VmRSS: unknown".into()))
}

pub(super) fn checks(c: &mut Container) -> Result<()> {
    const U: &str = "guardian.service";
    step("start: Type=notify reaches READY", || {
        let r = c.sh(&["systemctl", "start", U]);
        let active = c.show(U, "ActiveState")?;
        if r.is_err() || active != "active" {
            let log = c.sh(&["journalctl", "-u", U, "--no-pager", "-n", "40"])?;
            bail!("ActiveState={active}; journal:\n{log}");
        }
        Ok(format!(
            "active, StatusText={:?}, {} (MemoryMax={})",
            c.show(U, "StatusText")?,
            rss(c)?,
            c.show(U, "MemoryMax")?
        ))
    })?;
    step("attached (journal)", || {
        wait_for(Duration::from_secs(10), || {
            let log = c.sh(&["journalctl", "-u", U, "--no-pager", "-o", "cat"])?;
            Ok(log
                .lines()
                .find(|l| l.contains(r#""phase":"attached""#))
                .map(str::to_owned))
        })
        .and_then(|l| {
            let sockops = r#"{"feature":"sock_ops","reason":"attached","state":"available"}"#;
            if !l.contains(sockops) || !l.contains(r#""tracepoints":[{"#) {
                bail!("attached without sock_ops or tracepoints: {l}");
            }
            Ok("sock_ops (read-only cgroupfs) and the tracepoints attached".into())
        })
    })?;
    step("systemd-analyze security (the loaded unit)", || {
        let out = c.sh(&["systemd-analyze", "security", "--no-pager", U])?;
        let line = out
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .with_context(|| format!("no overall exposure level in:\n{out}"))?;
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("cannot read the score in {line:?}"))?;
        if score > 3.0 {
            bail!("{line} (more than 3.0)");
        }
        Ok(line.trim().to_owned())
    })?;
    step("guardian doctor under the unit's sandbox", || {
        let d = "guardian-doctor.service";
        c.sh(&["systemctl", "start", d])?;
        let result = c.show(d, "Result")?;
        let log = c.sh(&["journalctl", "-u", d, "--no-pager", "-o", "cat"])?;
        if result != "success" {
            bail!("Result={result}; journal:\n{log}");
        }
        Ok(format!("Result=success, {} lines", log.lines().count()))
    })?;
    step("net sysctl write under the unit's sandbox", || {
        let d = "guardian-sysctl.service";
        c.sh(&["systemctl", "start", d])?;
        let result = c.show(d, "Result")?;
        let log = c.sh(&["journalctl", "-u", d, "--no-pager", "-o", "cat"])?;
        let wrote: Vec<&str> = log.lines().filter(|l| l.starts_with("wrote ")).collect();
        let ns: std::collections::BTreeSet<&str> =
            wrote.iter().filter_map(|l| l.rsplit(' ').next()).collect();
        if result != "success" || wrote.len() != 2 || ns.len() != 2 {
            bail!("Result={result}; journal:\n{log}");
        }
        Ok(wrote.join("; "))
    })?;
    step("systemctl reload", || {
        let pid = c.show(U, "MainPID")?;
        let before = c.sh(&["journalctl", "-u", U, "--no-pager", "-o", "cat"])?;
        if let Err(e) = c.ok(&["systemctl", "reload", U]) {
            let log = c.sh(&["journalctl", "-u", U, "--no-pager", "-n", "20"])?;
            bail!("{e:#}\njournal:\n{log}");
        }
        let line = wait_for(Duration::from_secs(20), || {
            let log = c.sh(&["journalctl", "-u", U, "--no-pager", "-o", "cat"])?;
            let new = log.get(before.len().min(log.len())..).unwrap_or("");
            Ok(new
                .lines()
                .find(|l| l.contains("reload"))
                .map(str::to_owned))
        })?;
        wait_for(Duration::from_secs(20), || {
            Ok((c.show(U, "ActiveState")? == "active").then_some(()))
        })?;
        let after = c.show(U, "MainPID")?;
        if after != pid {
            bail!("the reload restarted the daemon (MainPID {pid} -> {after})");
        }
        Ok(format!("active, same MainPID {pid}; log: {line}"))
    })?;
    step("watchdog restarts a SIGSTOPped daemon", || {
        let pid = c.show(U, "MainPID")?;
        let restarts: u32 = c.show(U, "NRestarts")?.parse()?;
        let wd = c.show(U, "WatchdogUSec")?;
        c.ok(&["sh", "-c", &format!("kill -STOP {pid}")])?;
        let t = Instant::now();
        let new = wait_for(Duration::from_secs(180), || {
            let n: u32 = c.show(U, "NRestarts")?.parse()?;
            let p = c.show(U, "MainPID")?;
            let active = c.show(U, "ActiveState")? == "active";
            Ok((n > restarts && p != pid && p != "0" && active).then_some((n, p)))
        })?;
        Ok(format!(
            "WatchdogSec={wd}: MainPID {pid} -> {}, NRestarts {restarts} -> {}, active again after {}",
            new.1,
            new.0,
            cmd::secs(t.elapsed())
        ))
    })?;
    step("journal has no ANSI escapes", || {
        let log = c.sh(&["journalctl", "-u", U, "--no-pager", "-o", "cat"])?;
        if log.lines().count() < 3 {
            bail!("only {} journal lines", log.lines().count());
        }
        if let Some(l) = log.lines().find(|l| l.contains('\x1b')) {
            bail!("an ANSI escape in the journal: {l:?}");
        }
        Ok(format!("{} lines, none with \\x1b", log.lines().count()))
    })?;
    Ok(())
}
