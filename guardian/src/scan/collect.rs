//! Reads what `guardian scan` judges, from the caller's network namespace: links and routes
//! (rtnetlink, the daemon's own `netlink` module), per-interface errors and drops
//! (`/proc/net/dev`, which follows the namespace, unlike `/sys/class/net` which follows the
//! sysfs mount), TCP sockets (INET_DIAG through `netns::dump_tcp`), sysctls (`sysctl::read`).
use std::collections::BTreeMap;
use std::net::IpAddr;

use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6};
use netlink_packet_sock_diag::inet::StateFlags;
use serde::{Deserialize, Serialize};

pub use crate::model::sample::Listener;
use crate::netlink::{LinkState, Netlink, RouteSpec};

/// sysctls read (besides the six guardian may change, `crate::sysctl::ALLOWED`).
pub const READ_ONLY_SYSCTLS: &[&str] = &[
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_max_tw_buckets",
    "net.core.netdev_max_backlog",
    "net.ipv4.ip_forward",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IfaceStats {
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// Everything scanned, before any judgement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub links: Vec<LinkState>,
    pub stats: BTreeMap<String, IfaceStats>,
    pub routes: Vec<RouteSpec>,
    pub listeners: Vec<Listener>,
    pub time_wait: u64,
    /// TCP sockets (not listening) per state name.
    pub states: BTreeMap<String, u64>,
    /// Local ports of the ephemeral range in use, per remote `addr:port`.
    pub ports_per_remote: BTreeMap<String, u64>,
    /// Distinct local ports of the ephemeral range in use.
    pub ephemeral_in_use: u64,
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral_range: (u16, u16),
    pub sysctls: BTreeMap<String, String>,
}

/// `/proc/net/dev` → per-interface counters.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, IfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() >= 12).then(|| {
                (
                    name.trim().to_string(),
                    IfaceStats {
                        rx_packets: f[1],
                        rx_errors: f[2],
                        rx_dropped: f[3],
                        tx_packets: f[9],
                        tx_errors: f[10],
                        tx_dropped: f[11],
                    },
                )
            })
        })
        .collect()
}

fn state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        _ => "other",
    }
}

/// Reads every fact of the caller's namespace.
pub async fn collect() -> anyhow::Result<Facts> {
    use anyhow::Context as _;
    let nl = Netlink::connect().context("opening a netlink socket")?;
    let links = nl.dump_links().await.context("dumping links")?;
    let routes = nl
        .dump_routes()
        .await
        .context("dumping routes")?
        .into_iter()
        .filter(RouteSpec::is_main_unicast)
        .collect();
    let stats = std::fs::read_to_string("/proc/net/dev")
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default();
    let mut sysctls = BTreeMap::new();
    for k in crate::sysctl::ALLOWED.iter().chain(READ_ONLY_SYSCTLS) {
        if let Ok(v) = crate::sysctl::read(None, k) {
            sysctls.insert(k.to_string(), v);
        }
    }
    let ephemeral_range = sysctls
        .get("net.ipv4.ip_local_port_range")
        .and_then(|v| {
            let mut it = v.split_whitespace().filter_map(|x| x.parse().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((32768, 60999));
    let mut f = Facts {
        links,
        stats,
        routes,
        ephemeral_range,
        sysctls,
        ..Default::default()
    };
    sockets(&mut f).context("reading the TCP socket table (INET_DIAG)")?;
    Ok(f)
}

fn sockets(f: &mut Facts) -> std::io::Result<()> {
    let socket = crate::netns::diag_socket()?;
    let (lo, hi) = f.ephemeral_range;
    let mut local = std::collections::BTreeSet::new();
    for family in [AF_INET, AF_INET6] {
        crate::netns::dump_tcp(&socket, family, StateFlags::all(), |h| {
            let id = &h.socket_id;
            let state = state_name(h.state);
            match state {
                "listen" => f.listeners.push(Listener {
                    addr: id.source_address.to_string(),
                    port: id.source_port,
                    queued: h.recv_queue,
                    backlog: h.send_queue,
                    uid: h.uid,
                    inode: h.inode,
                }),
                _ => {
                    *f.states.entry(state.into()).or_default() += 1;
                    if state == "time_wait" {
                        f.time_wait += 1;
                    }
                    if (lo..=hi).contains(&id.source_port) {
                        local.insert(id.source_port);
                        let remote = match id.destination_address {
                            IpAddr::V6(a) => format!("[{a}]:{}", id.destination_port),
                            a => format!("{a}:{}", id.destination_port),
                        };
                        *f.ports_per_remote.entry(remote).or_default() += 1;
                    }
                }
            }
        })?;
    }
    f.ephemeral_in_use = local.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
eth0: 5000     50    3    4    0     0          0         0     6000      60    5    6    0     0       0          0\n";
        let s = parse_net_dev(t);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s["eth0"],
            IfaceStats {
                rx_packets: 50,
                rx_errors: 3,
                rx_dropped: 4,
                tx_packets: 60,
                tx_errors: 5,
                tx_dropped: 6
            }
        );
    }
}
