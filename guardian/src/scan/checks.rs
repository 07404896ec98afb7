//! Judging the scanned facts: every line ok, warn or bad, with the threshold that decided.
//! Pure, so every threshold is a unit test.
use serde::{Deserialize, Serialize};

use super::collect::Facts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Bad,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `interfaces`, `routes`, `listeners`, `ports`, `sysctls`.
    pub section: &'static str,
    pub name: String,
    pub value: String,
    pub level: Level,
    /// What decided the level.
    pub threshold: String,
}

fn check(
    section: &'static str,
    name: String,
    value: String,
    level: Level,
    threshold: &str,
) -> Check {
    Check {
        section,
        name,
        value,
        level,
        threshold: threshold.into(),
    }
}

/// `warn` from `w`, `bad` from `b` (fractions).
fn by_fraction(x: f64, w: f64, b: f64) -> Level {
    if x >= b {
        Level::Bad
    } else if x >= w {
        Level::Warn
    } else {
        Level::Ok
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

pub fn evaluate(f: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    interfaces(f, &mut out);
    routes(f, &mut out);
    listeners(f, &mut out);
    ports(f, &mut out);
    sysctls(f, &mut out);
    out
}

fn interfaces(f: &Facts, out: &mut Vec<Check>) {
    for l in f.links.iter().filter(|l| l.name != "lo") {
        let (level, state) = match (l.admin_up, l.oper_up) {
            (true, true) => (Level::Ok, "up, carrier"),
            (true, false) => (Level::Bad, "up, NO carrier"),
            (false, _) => (Level::Warn, "administratively down"),
        };
        out.push(check(
            "interfaces",
            l.name.clone(),
            format!("{state}, mtu {}", l.mtu),
            level,
            "bad: up without carrier; warn: down",
        ));
        if let Some(s) = f.stats.get(&l.name) {
            let errors = s.rx_errors + s.tx_errors;
            let dropped = s.rx_dropped + s.tx_dropped;
            let packets = (s.rx_packets + s.tx_packets).max(1) as f64;
            // A handful of drops (IPv6 autoconfiguration on a fresh link) is not a problem.
            let level = if errors > 0 || (dropped >= 100 && dropped as f64 / packets >= 0.01) {
                Level::Warn
            } else {
                Level::Ok
            };
            out.push(check(
                "interfaces",
                format!("{} errors/drops", l.name),
                format!(
                    "rx {}/{} tx {}/{} (errors/dropped)",
                    s.rx_errors, s.rx_dropped, s.tx_errors, s.tx_dropped
                ),
                level,
                "warn: any error, or at least 100 drops and >= 1% of packets",
            ));
        }
    }
}

fn routes(f: &Facts, out: &mut Vec<Check>) {
    let name_of = |i: Option<u32>| {
        i.and_then(|i| f.links.iter().find(|l| l.ifindex == i))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    let defaults: Vec<String> = f
        .routes
        .iter()
        .filter(|r| r.is_default())
        .map(|r| match r.gateway {
            Some(g) => format!("via {g} dev {}", name_of(r.oif)),
            None => format!("dev {}", name_of(r.oif)),
        })
        .collect();
    out.push(if defaults.is_empty() {
        check(
            "routes",
            "default route".into(),
            "none".into(),
            Level::Bad,
            "bad: no default route",
        )
    } else {
        check(
            "routes",
            "default route".into(),
            defaults.join("; "),
            Level::Ok,
            "bad: no default route",
        )
    });
    for r in &f.routes {
        let Some(link) = r.oif.and_then(|i| f.links.iter().find(|l| l.ifindex == i)) else {
            continue;
        };
        if !link.is_up() {
            out.push(check(
                "routes",
                format!("route {}/{}", r.dst, r.prefix_len),
                format!("next hop interface {} is down", link.name),
                Level::Bad,
                "bad: next hop interface down",
            ));
        }
    }
    out.push(check(
        "routes",
        "main table".into(),
        format!("{} unicast routes", f.routes.len()),
        Level::Ok,
        "informational",
    ));
}

fn listeners(f: &Facts, out: &mut Vec<Check>) {
    for l in &f.listeners {
        let fill = l.queued as f64 / l.backlog.max(1) as f64;
        out.push(check(
            "listeners",
            format!("{}:{}", l.addr, l.port),
            format!("accept queue {}/{} ({})", l.queued, l.backlog, pct(fill)),
            by_fraction(fill, 0.5, 0.9),
            "warn: >= 50% full; bad: >= 90%",
        ));
    }
}

/// TIME_WAIT over this share of `tcp_max_tw_buckets` is worth a look.
const TW_WARN: f64 = 0.5;

fn ports(f: &Facts, out: &mut Vec<Check>) {
    // Bad where the detector opens `time_wait_exhaustion`: one number, the detector's default.
    let tw_bad = crate::faults::time_wait_exhaustion::Config::default().bucket_ratio;
    let buckets: f64 = f
        .sysctls
        .get("net.ipv4.tcp_max_tw_buckets")
        .and_then(|v| v.parse().ok())
        .unwrap_or(262_144.0);
    out.push(check(
        "ports",
        "TIME_WAIT".into(),
        format!(
            "{} sockets ({} of tcp_max_tw_buckets {buckets})",
            f.time_wait,
            pct(f.time_wait as f64 / buckets.max(1.0))
        ),
        by_fraction(f.time_wait as f64 / buckets.max(1.0), TW_WARN, tw_bad),
        &format!(
            "warn: >= {}% of net.ipv4.tcp_max_tw_buckets; bad: >= {}% (time_wait_exhaustion opens there)",
            TW_WARN * 100.0,
            tw_bad * 100.0
        ),
    ));
    let (lo, hi) = f.ephemeral_range;
    let size = (hi.saturating_sub(lo) as f64 + 1.0).max(1.0);
    out.push(check(
        "ports",
        "ephemeral range".into(),
        format!(
            "{lo}-{hi}: {} local ports in use ({})",
            f.ephemeral_in_use,
            pct(f.ephemeral_in_use as f64 / size)
        ),
        by_fraction(f.ephemeral_in_use as f64 / size, 0.5, 0.8),
        "warn: >= 50% of the range in use; bad: >= 80%",
    ));
    // Exhaustion is per remote (a local port can be reused towards another destination).
    let mut top: Vec<(&String, &u64)> = f.ports_per_remote.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (remote, n) in top.into_iter().take(5) {
        out.push(check(
            "ports",
            format!("to {remote}"),
            format!("{n} local ports ({} of the range)", pct(*n as f64 / size)),
            by_fraction(*n as f64 / size, 0.5, 0.8),
            "warn: >= 50% of the range towards one remote; bad: >= 80%",
        ));
    }
}

fn sysctls(f: &Facts, out: &mut Vec<Check>) {
    for (k, v) in &f.sysctls {
        let n: Option<i64> = v.parse().ok();
        let (level, threshold) = match k.as_str() {
            "net.ipv4.tcp_syncookies" => (
                if n == Some(0) { Level::Warn } else { Level::Ok },
                "warn: 0 (no SYN flood protection)",
            ),
            "net.core.somaxconn" => (
                if n.is_some_and(|n| n < 1024) {
                    Level::Warn
                } else {
                    Level::Ok
                },
                "warn: < 1024",
            ),
            "net.ipv4.tcp_max_syn_backlog" => (
                if n.is_some_and(|n| n < 256) {
                    Level::Warn
                } else {
                    Level::Ok
                },
                "warn: < 256",
            ),
            "net.ipv4.ip_local_port_range" => {
                let (lo, hi) = f.ephemeral_range;
                (
                    if hi.saturating_sub(lo) < 10_000 {
                        Level::Warn
                    } else {
                        Level::Ok
                    },
                    "warn: fewer than 10000 ports",
                )
            }
            "net.ipv4.tcp_fin_timeout" => (
                if n.is_some_and(|n| n > 60) {
                    Level::Warn
                } else {
                    Level::Ok
                },
                "warn: > 60 s",
            ),
            _ => (Level::Ok, "informational"),
        };
        out.push(check("sysctls", k.clone(), v.clone(), level, threshold));
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
