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

mod checks;

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
    let result = checks::checks(&mut c);
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
        // apt, as an operator would (it would fetch missing dependencies from the mirror).
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
        // The sysctl remedy's write (the current value written back) under the same sandbox,
        // in the service's network namespace and in a new one (as after setns).
        std::fs::write(
            c.root.join("usr/local/lib/guardian-sysctl-check"),
            SYSCTL_CHECK,
        )?;
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

const SYSCTL_WRITE: &str = "/bin/sh /usr/local/lib/guardian-sysctl-check";
const SYSCTL_CHECK: &str = r#"set -e
w='f=/proc/sys/net/ipv4/tcp_tw_reuse; v=$(cat $f); echo $v > $f; echo "wrote $v to $f in $(readlink /proc/self/ns/net)"'
sh -c "$w"
unshare -n sh -c "$w"
"#;

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
