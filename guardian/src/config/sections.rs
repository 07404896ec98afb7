//! The operator-surface sections of the config file: `[sinks]`, `[log]`, `[metrics]`,
//! `[interfaces]`, `[control]` and `[daemon]`. The engine's own sections (`[detect]`,
//! `[remedies]`, `[safety]`) live beside their code.
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::Mode;
pub use crate::output::Sinks;

/// `[log]`: the daemon's own diagnostics (tracing), always on stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A tracing filter: `info`, `debug`, `guardian::engine=debug,info`. `GUARDIAN_LOG`
    /// overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Human,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per record.
    #[default]
    Human,
    /// One JSON object per record.
    Json,
}

/// `[metrics]`: Prometheus text exposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    /// `address:port`; a loopback address unless `allow_remote`.
    pub listen: String,
    /// Allow a non-loopback `listen` address (the endpoint has no authentication).
    pub allow_remote: bool,
    /// Which namespaces' traffic the per-destination counters count: `all` (the host and its
    /// containers and pods, the default) or `own` (the daemon's namespace only).
    pub destinations: DstScope,
}

/// `[metrics] destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DstScope {
    #[default]
    All,
    Own,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            allow_remote: false,
            destinations: DstScope::All,
        }
    }
}

impl Metrics {
    /// The parsed `listen` address (valid after [`super::Config::validate`]).
    pub fn addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "metrics.listen: {:?} is not an address:port like 127.0.0.1:9464 or [::1]:9464",
                self.listen
            )
        })?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "metrics.listen: {addr} is not a loopback address; expected 127.0.0.1 or ::1, or set metrics.allow_remote = true to expose it"
            ));
        }
        Ok(addr)
    }
}

/// `[interfaces]`: the interfaces guardian manages. `--xdp` and `--keep-up` add to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Interfaces {
    /// Attach the XDP counters (and SYN limits) here.
    pub xdp: Vec<String>,
    /// Keep these up: a link_down on one is healed with link_up.
    pub keep_up: Vec<String>,
    /// Attach the tcx DNS programs (`dns_failure`, `dns_spoofing_suspected`) here. Unset: on
    /// the `xdp` interfaces; `[]`: nowhere (DNS packets are then not looked at, and no tcx
    /// program runs on any packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
}

impl Interfaces {
    /// The interfaces that get the DNS programs: `dns` when set, else `xdp`.
    pub fn dns_ifaces(&self) -> &[String] {
        self.dns.as_deref().unwrap_or(&self.xdp)
    }
}

/// `[control]`: the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Control {
    pub socket: PathBuf,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: "/run/guardian/guardian.sock".into(),
        }
    }
}

/// `[daemon]`: what `guardian run` flags also set (a flag wins over the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Daemon {
    /// Where the write-ahead journal lives.
    pub state_dir: PathBuf,
    /// Milliseconds between counters events (10 ms – 1 h).
    pub interval_ms: u64,
    /// `observe` (the default) or `enforce`.
    pub mode: Mode,
    /// Milliseconds a remedy has to verify before it is rolled back (1 ms – 10 min).
    pub verify_timeout_ms: u64,
    /// Host name written in every event (default: the system's).
    pub host: Option<String>,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            state_dir: "/var/lib/guardian".into(),
            interval_ms: 1000,
            mode: Mode::Observe,
            verify_timeout_ms: 2000,
            host: None,
        }
    }
}

/// Whether `name` can be a Linux interface name (the kernel's `dev_valid_name`): 1–15
/// bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn valid_iface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel() {
        for ok in ["eth0", "veth-a.10", "a", "fifteen_chars_x"] {
            assert!(valid_iface_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "eth0:1", "a/b", "a b", "sixteen_chars_xx"] {
            assert!(!valid_iface_name(bad), "{bad}");
        }
    }
}
