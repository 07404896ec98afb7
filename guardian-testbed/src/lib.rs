//! The namespace harness shared by `guardian-lab` and the end-to-end tests (guardian-tests):
//! named network namespaces deleted with their guard, veth pairs between them, commands and
//! threads run inside them. Modelled on aya's integration-test `NetNsGuard`.
//!
//! Namespaces are made with `ip netns add` (a *named* namespace, the bind mount under
//! /run/netns that `nsenter --net=` needs; rtnetlink offers that only by forking inside an async
//! runtime). Commands run inside through `nsenter --net=/run/netns/NAME`, never `ip netns exec`,
//! which remounts /sys and hides bpffs, tracefs and the cgroup mounts from a daemon run there.
//!
//! [`tls`] makes certificates (a CA and leaves with chosen dates) with the openssl CLI.
//!
//! Every call returns a [`Result`]; the end-to-end tests wrap it in a facade that panics, the lab
//! reports the error and goes on with the next run.
mod link;
mod netns;
pub mod tls;
mod veth;

pub use netns::{existing, is_orphan, sweep, sweep_orphans, Entry, NetNs};
pub use veth::{pair, Veth};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running {cmd}: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd} failed ({status}): {stderr}{stdout}")]
    Failed {
        cmd: String,
        status: std::process::ExitStatus,
        stderr: String,
        stdout: String,
    },
    #[error("joining namespace {ns}: {source}")]
    Setns {
        ns: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `c` (stdin closed); its stdout, or [`Error::Failed`] with its stderr and stdout.
pub(crate) fn run_cmd(mut c: Command, what: String) -> Result<String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            cmd: what.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Failed {
            cmd: what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        })
    }
}

/// Runs `ip ARGS` in the caller's (the host's) namespace.
pub fn host_ip(args: &[&str]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(args);
    run_cmd(c, format!("ip {}", args.join(" ")))
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn wait(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a line of `ip -o link show` says the link is operationally up: `state UP` and the
/// `UP` flag (an administratively down link can keep `LOWER_UP`).
pub fn link_line_oper_up(line: &str) -> bool {
    let flags_up = line
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"));
    flags_up
        && line
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w == ["state", "UP"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oper_up_needs_the_state_and_the_flag() {
        let up = "7: gt1a@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT";
        let down =
            "7: gt1a@if6: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN mode DEFAULT";
        let lower = "7: gt1a@if6: <BROADCAST,MULTICAST,LOWER_UP> mtu 1500 state UNKNOWN";
        let no_flag = "7: gt1a@if6: <BROADCAST,MULTICAST,LOWER_UP> mtu 1500 state UP";
        assert!(link_line_oper_up(up));
        assert!(!link_line_oper_up(down));
        assert!(!link_line_oper_up(lower));
        assert!(!link_line_oper_up(no_flag));
    }

    #[test]
    fn wait_times_out_and_succeeds() {
        assert!(wait(Duration::from_millis(50), || true));
        assert!(!wait(Duration::from_millis(30), || false));
    }
}
