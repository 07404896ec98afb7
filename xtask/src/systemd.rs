//! `cargo xtask systemd`: guardian's .deb under a real systemd (PID 1 of a booted Debian
//! container, `systemd-nspawn --boot` in a network namespace this command creates), checked
//! through `nsenter -t <container init> -a systemctl ...`: Type=notify reaches READY,
//! `guardian doctor` passes and `systemctl reload` works under the shipped (hardened) unit,
//! the watchdog restarts a SIGSTOPped daemon, and the journal has no ANSI escapes. Too slow for
//! `cargo xtask test` (a boot plus a watchdog timeout), so it is its own command.
//!
//! The root is a copy of `cargo xtask package`'s debootstrap minbase root with systemd and dbus
//! installed by apt inside it (cached as `target/debootstrap/bookworm-systemd`); each run boots
//! a throwaway copy of that, and a guard powers the container off, deletes the namespace and
//! removes the copy even when a check fails.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{cmd, package, run, setup};

#[derive(Debug, clap::Args)]
pub struct SystemdArgs {
    /// Install this guardian binary (in the .deb) instead of building the release one
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
}

/// What guardian needs from the container (its CapabilityBoundingSet; nspawn's default set
/// lacks CAP_BPF and CAP_PERFMON).
const CAPS: &str =
    "CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN,CAP_SYS_ADMIN,CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH";

pub fn systemd(args: SystemdArgs) -> Result<ExitCode> {
    let total = Instant::now();
    setup::setup()?;
    let bin = match args.bin {
        Some(b) => std::fs::canonicalize(&b).with_context(|| format!("{}", b.display()))?,
        None => run::build_guardian()?,
    };
    let deb = package::build_deb(&bin, &package::out_dir()?)?;
    let base = systemd_root()?;
    let mut c = Container::boot(&base, &deb)?;
    let result = checks(&mut c);
    drop(c);
    result?;
    eprintln!("ok: systemd checks ({} in all)", cmd::secs(total.elapsed()));
    Ok(ExitCode::SUCCESS)
}

/// The minbase root plus systemd as init, made once (apt in the root, about 20 s).
fn systemd_root() -> Result<PathBuf> {
    let minbase = package::debian_root()?;
    let dir = minbase
        .parent()
        .context("the debootstrap root has no parent")?;
    let root = dir.join("bookworm-systemd");
    let done = dir.join("bookworm-systemd.done");
    if done.exists() {
        return Ok(root);
    }
    let tmp = dir.join("bookworm-systemd.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&root);
    cmd::run(cmd::new("cp", ["-a"]).arg(&minbase).arg(&tmp))?;
    cmd::run(
        nspawn(&tmp)
            .args(["--pipe", "-E", "DEBIAN_FRONTEND=noninteractive", "--", "sh", "-c"])
            .arg("apt-get update -q && apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus && apt-get clean"),
    )?;
    std::fs::rename(&tmp, &root)?;
    std::fs::write(&done, "")?;
    Ok(root)
}

fn nspawn(root: &Path) -> Command {
    let mut c = cmd::new(
        "systemd-nspawn",
        ["-q", "--register=no", "--keep-unit", "-D"],
    );
    c.arg(root);
    c
}

/// A booted copy of the root; dropping it powers the container off (SIGTERM to nspawn, then
/// SIGKILL), deletes the network namespace and removes the copy.
struct Container {
    root: PathBuf,
    netns: String,
    nspawn: Option<Child>,
    leader: u32,
}

impl Container {
    fn boot(base: &Path, deb: &Path) -> Result<Container> {
        let id = std::process::id();
        let mut c = Container {
            root: cmd::target_dir()?.join(format!("systemd/root-{id}")),
            netns: format!("gsd-{id}"),
            nspawn: None,
            leader: 0,
        };
        let t = Instant::now();
        std::fs::create_dir_all(c.root.parent().unwrap())?;
        cmd::run(
            cmd::new("cp", ["-a", "--reflink=auto"])
                .arg(base)
                .arg(&c.root),
        )?;
        std::fs::copy(deb, c.root.join("root/guardian.deb"))?;
        // apt, as an operator would: it fetches the dependencies (procps for ExecReload's kill).
        cmd::run(nspawn(&c.root).args(["--pipe", "-E", "DEBIAN_FRONTEND=noninteractive", "--"]).args([
            "sh",
            "-c",
            "apt-get install -y -q --no-install-recommends /root/guardian.deb && apt-get clean",
        ]))?;
        // `guardian doctor` as a oneshot under exactly the packaged unit's sandbox.
        let unit = std::fs::read_to_string(c.root.join("lib/systemd/system/guardian.service"))?;
        std::fs::write(
            c.root.join("etc/systemd/system/guardian-doctor.service"),
            sandboxed(&unit, "/usr/sbin/guardian doctor", "doctor"),
        )?;
        // The sysctl remedy's write (the current value written back) under the same sandbox.
        std::fs::write(
            c.root.join("etc/systemd/system/guardian-sysctl.service"),
            sandboxed(&unit, SYSCTL_WRITE, "sysctl"),
        )?;
        cmd::run(&mut cmd::new("ip", ["netns", "add", &c.netns]))?;
        cmd::run(&mut cmd::new(
            "ip",
            ["-n", &c.netns, "link", "set", "lo", "up"],
        ))?;
        let log = std::fs::File::create(c.root.with_extension("console.log"))?;
        let child = nspawn(&c.root)
            .arg("--boot")
            .arg(format!("--network-namespace-path=/run/netns/{}", c.netns))
            .arg(format!("--capability={CAPS}"))
            // nspawn's own seccomp filter refuses these to PID 1 and so to every service
            // (commands entered with nsenter escape it, services do not).
            .arg("--system-call-filter=bpf perf_event_open")
            .args(["--bind=/sys/fs/bpf", "--bind=/sys/kernel/tracing"])
            .args(["--bind-ro=/sys/kernel/btf", "--console=read-only"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting systemd-nspawn")?;
        let pid = child.id();
        c.nspawn = Some(child);
        c.leader = wait_for(Duration::from_secs(30), || {
            let p = format!("/proc/{pid}/task/{pid}/children");
            // nspawn's first child forks the container's init and exits: wait for systemd.
            Ok(std::fs::read_to_string(p)?
                .split_whitespace()
                .filter_map(|s| s.parse::<u32>().ok())
                .find(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                }))
        })
        .context("the container's init never started")?;
        let state = wait_for(Duration::from_secs(60), || {
            let s = c.sh(&["systemctl", "is-system-running", "--wait"])?;
            let s = s.trim();
            Ok((s == "running" || s == "degraded").then(|| s.to_owned()))
        })
        .context("the container's systemd never finished booting")?;
        eprintln!(
            "ok: booted ({}, {}): {}",
            cmd::secs(t.elapsed()),
            state,
            c.root.display()
        );
        Ok(c)
    }

    /// Runs a command inside the container (all its namespaces); stdout, whatever the status.
    fn sh(&self, args: &[&str]) -> Result<String> {
        let mut c = cmd::new("nsenter", ["-t", &self.leader.to_string(), "-a", "--"]);
        cmd::stdout_any(c.args(args))
    }

    /// Like `sh`, but fails on a non-zero status.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let mut c = cmd::new("nsenter", ["-t", &self.leader.to_string(), "-a", "--"]);
        cmd::stdout(c.args(args))
    }

    fn show(&self, unit: &str, prop: &str) -> Result<String> {
        Ok(self
            .sh(&["systemctl", "show", "--value", "-p", prop, unit])?
            .trim()
            .to_owned())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            // SIGTERM makes nspawn power the container off (SIGRTMIN+3 to its init).
            let _ = cmd::new("kill", ["-TERM", &child.id().to_string()]).status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if Path::new("/run/netns").join(&self.netns).exists() {
            let _ = cmd::new("ip", ["netns", "del", &self.netns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_file(self.root.with_extension("console.log"));
    }
}

const SYSCTL_WRITE: &str = "/bin/sh -c 'f=/proc/sys/net/ipv4/tcp_tw_reuse; v=$(cat $f) && echo $v > $f && echo wrote $v to $f'";

/// The packaged unit as a oneshot running `exec` (same sandbox, capabilities and filters).
fn sandboxed(unit: &str, exec: &str, name: &str) -> String {
    let mut out = String::new();
    for line in unit.lines() {
        let key = line.split('=').next().unwrap_or("");
        match key {
            "Type" => out.push_str("Type=oneshot\n"),
            "ExecStart" => out.push_str(&format!("ExecStart={exec}\n")),
            "ExecReload"
            | "WatchdogSec"
            | "Restart"
            | "RestartSec"
            | "NotifyAccess"
            | "RuntimeDirectoryPreserve" => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.replace(
        "RuntimeDirectory=guardian",
        &format!("RuntimeDirectory=guardian-{name}"),
    )
}

/// Polls `f` every 200 ms until it returns `Some` or `limit` passes.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let t = Instant::now();
    loop {
        if let Ok(Some(v)) = f() {
            return Ok(v);
        }
        if t.elapsed() > limit {
            bail!("timed out after {}", cmd::secs(limit));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

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

fn checks(c: &mut Container) -> Result<()> {
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
        match log.lines().find(|l| l.starts_with("wrote ")) {
            Some(l) if result == "success" => Ok(l.to_owned()),
            _ => bail!("Result={result}; journal:\n{log}"),
        }
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
        c.ok(&["kill", "-STOP", &pid])?;
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
