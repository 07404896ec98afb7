//! Remedy configuration: a mode per remedy and one table per remedy that has parameters
//! (`[remedies.<name>]` in the config file).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::faults::ranges::{invalid, range, Invalid};

/// What one remedy may do. The global mode (`--mode`) is the master switch: in global
/// observe mode nothing is applied whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RemedyMode {
    /// Apply when the global mode is enforce.
    #[default]
    Enforce,
    /// Plan and report only, even in global enforce mode.
    Observe,
    /// Not on any ladder.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RemedyConfig {
    /// Per-remedy mode, e.g. `modes = { socket_destroy = "off", sysctl = "observe" }`.
    /// Remedies not named follow the global mode.
    pub modes: BTreeMap<String, RemedyMode>,
    /// `[remedies.sockopt_failfast]`: handshake budget and lifetime of fail-fast policies.
    pub sockopt_failfast: super::sockopt_failfast::Config,
    /// `[remedies.route_failover]`: backup gateways per prefix.
    pub route_failover: super::route_failover::Config,
    /// `[remedies.route_dampen]`: hold times.
    pub route_dampen: super::route_dampen::Config,
    /// `[remedies.route_mtu]`: locked MTUs and prefix lengths.
    pub route_mtu: super::route_mtu::Config,
    /// `[remedies.route_cc]`: the algorithm and fallback destinations.
    pub route_cc: super::route_cc::Config,
    /// `[remedies.sysctl]`: the value each sysctl is moved to.
    pub sysctl: super::sysctl::Config,
    /// `[remedies.socket_destroy]`: the ports whose orphaned sockets may be destroyed.
    pub socket_destroy: super::socket_destroy::Config,
    /// `[remedies.xdp_source_limit]`: rate, burst and TTL of per-source SYN limits.
    pub xdp_source_limit: super::xdp_source_limit::Config,
    /// `[remedies.xdp_port_limit]`: rate, burst and TTL of per-port SYN limits.
    pub xdp_port_limit: super::xdp_port_limit::Config,
}

impl RemedyConfig {
    pub fn mode_of(&self, remedy: &str) -> RemedyMode {
        self.modes.get(remedy).copied().unwrap_or_default()
    }
}

/// The longest TTL or hold a remedy may have: one week, in ms.
const MAX_MS: u64 = 7 * 24 * 3600 * 1000;

impl RemedyConfig {
    /// Range-checks every `[remedies.<name>]` table (`remedies.<name>.<key>`); the modes are
    /// checked by `config::validate`.
    pub fn validate(&self) -> Result<(), Invalid> {
        let f = &self.sockopt_failfast;
        range(
            "remedies.sockopt_failfast.syn_count",
            f.syn_count.into(),
            0,
            127,
            "",
        )?;
        let key = "remedies.sockopt_failfast.user_timeout_ms";
        range(key, f.user_timeout_ms.into(), 0, 600_000, "ms")?;
        range(
            "remedies.sockopt_failfast.ttl_ms",
            f.ttl_ms,
            1,
            MAX_MS,
            "ms",
        )?;
        let key = "remedies.sockopt_failfast.min_timeouts";
        range(key, f.min_timeouts, 1, 1_000_000, "connects")?;
        let key = "remedies.sockopt_failfast.min_uids";
        range(key, f.min_uids.into(), 1, 1024, "uids")?;
        let key = "remedies.route_failover.metric_offset";
        range(
            key,
            self.route_failover.metric_offset.into(),
            1,
            u32::MAX.into(),
            "",
        )?;
        let key = "remedies.route_failover.max_ms";
        range(key, self.route_failover.max_ms, 1, MAX_MS, "ms")?;
        let d = &self.route_dampen;
        range("remedies.route_dampen.hold_ms", d.hold_ms, 1, MAX_MS, "ms")?;
        let key = "remedies.route_dampen.max_hold_ms";
        range(
            key,
            d.max_hold_ms,
            d.hold_ms,
            MAX_MS,
            "ms (at least hold_ms)",
        )?;
        let m = &self.route_mtu;
        range(
            "remedies.route_mtu.mtu_ipv4",
            m.mtu_ipv4.into(),
            68,
            65535,
            "bytes",
        )?;
        range(
            "remedies.route_mtu.mtu_ipv6",
            m.mtu_ipv6.into(),
            1280,
            65535,
            "bytes",
        )?;
        let key = "remedies.route_mtu.prefix_len_ipv4";
        range(key, m.prefix_len_ipv4.into(), 1, 32, "bits")?;
        let key = "remedies.route_mtu.prefix_len_ipv6";
        range(key, m.prefix_len_ipv6.into(), 1, 128, "bits")?;
        range("remedies.route_mtu.ttl_ms", m.ttl_ms, 0, MAX_MS, "ms")?;
        // The default is always accepted: hosts without `bbr` get route_cc's skip reason
        // instead of a daemon that refuses its own defaults.
        if self.route_cc.algo != super::route_cc::Config::default().algo {
            cc_algo(&self.route_cc.algo, available_cc().as_deref())?;
        }
        self.validate_sysctl()?;
        let s = &self.socket_destroy;
        for p in &s.allow_ports {
            range(
                "remedies.socket_destroy.allow_ports",
                (*p).into(),
                1,
                65535,
                "",
            )?;
        }
        let key = "remedies.socket_destroy.max_sockets";
        range(key, s.max_sockets as u64, 1, 1_000_000, "sockets")?;
        let x = &self.xdp_source_limit;
        limit("xdp_source_limit", x.rate_pps, x.burst, x.ttl_ms)?;
        share("remedies.xdp_source_limit.min_share", x.min_share)?;
        let key = "remedies.xdp_source_limit.max_sources";
        range(key, x.max_sources as u64, 1, 1024, "sources")?;
        let x = &self.xdp_port_limit;
        limit("xdp_port_limit", x.rate_pps, x.burst, x.ttl_ms)?;
        share(
            "remedies.xdp_port_limit.concentrated_share",
            x.concentrated_share,
        )
    }

    fn validate_sysctl(&self) -> Result<(), Invalid> {
        let s = &self.sysctl;
        range(
            "remedies.sysctl.tcp_tw_reuse",
            s.tcp_tw_reuse.into(),
            0,
            2,
            "",
        )?;
        range(
            "remedies.sysctl.tcp_syncookies",
            s.tcp_syncookies.into(),
            0,
            2,
            "",
        )?;
        range(
            "remedies.sysctl.tcp_mtu_probing",
            s.tcp_mtu_probing.into(),
            0,
            2,
            "",
        )?;
        let int_max = i32::MAX as u64;
        range(
            "remedies.sysctl.somaxconn",
            s.somaxconn.into(),
            1,
            int_max,
            "",
        )?;
        let key = "remedies.sysctl.tcp_max_syn_backlog";
        range(key, s.tcp_max_syn_backlog.into(), 1, int_max, "")?;
        let [lo, hi] = s.ip_local_port_range;
        if lo == 0 || lo >= hi {
            return Err(invalid(
                "remedies.sysctl.ip_local_port_range",
                format!("[{lo}, {hi}] is out of range; expected [low, high] with 1 <= low < high <= 65535"),
            ));
        }
        Ok(())
    }
}

fn limit(remedy: &str, rate_pps: u64, burst: u64, ttl_ms: u64) -> Result<(), Invalid> {
    let key = |k: &str| format!("remedies.{remedy}.{k}");
    range(&key("rate_pps"), rate_pps, 1, u32::MAX.into(), "SYNs/s")?;
    range(&key("burst"), burst, 1, u32::MAX.into(), "SYNs")?;
    // 0 is accepted as before: the entry expires at once, never verifies and is rolled back
    // (end-to-end test heal_xdp::a_limit_that_cannot_verify_is_rolled_back relies on it).
    range(&key("ttl_ms"), ttl_ms, 0, MAX_MS, "ms")
}

fn share(key: &str, v: f64) -> Result<(), Invalid> {
    if v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{v} is out of range; expected a fraction greater than 0 and at most 1"),
        ))
    }
}

/// The kernel's `tcp_available_congestion_control`, plus the `tcp_<name>` modules it could
/// load on demand; `None` when that file is unreadable.
fn available_cc() -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control");
    let mut names: Vec<String> = text.ok()?.split_whitespace().map(String::from).collect();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = format!("/lib/modules/{}/kernel/net/ipv4", release.trim());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_prefix("tcp_").and_then(|f| f.split_once(".ko")) {
            if !names.contains(&name.0.to_string()) {
                names.push(name.0.to_string());
            }
        }
    }
    Some(names)
}

/// `algo` is one of `available` (when known), else at least a valid name (1 to 15 bytes of
/// `a-z`, `0-9`, `_`).
pub(crate) fn cc_algo(algo: &str, available: Option<&[String]>) -> Result<(), Invalid> {
    let key = "remedies.route_cc.algo";
    match available {
        Some(names) if !names.iter().any(|n| n == algo) => Err(invalid(
            key,
            format!(
                "{algo:?} is not a congestion control algorithm of this kernel; expected one of {}",
                names.join(", ")
            ),
        )),
        None if algo.is_empty()
            || algo.len() > 15
            || !algo
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Err(invalid(
                key,
                format!("{algo:?} is not a congestion control name; expected 1 to 15 bytes of a-z, 0-9 or _"),
            ))
        }
        _ => Ok(()),
    }
}
