//! Per-namespace MIB counters, sysctls and socket-table aggregates.
//!
//! On every tick, for every active namespace, one short-lived thread enters the namespace
//! (`netns::within`) and, from there, reads:
//! - `/proc/thread-self/net/snmp` and `/proc/thread-self/net/netstat` (the namespace's TCP MIB:
//!   `TcpOutSegs`, `TcpRetransSegs`, `TcpExtListenOverflows`, `TcpExtListenDrops`, …);
//! - the namespace's sysctls under `/proc/sys/net` (per-netns for the reading thread):
//!   `tcp_max_tw_buckets`, `ip_local_port_range`, `tcp_tw_reuse`, `net.core.somaxconn`;
//! - one INET_DIAG dump of the TCP socket table per address family, aggregated into the
//!   TIME_WAIT gauge, TIME_WAIT and ephemeral-port usage per destination, and the listeners with
//!   their accept queues.
//!
//! The cost per tick is bounded: one dump per family, aggregated in memory, and only the top
//! [`TOP_N`] destinations (and at most [`MAX_LISTENERS`] listeners) go into the sample.
use std::collections::HashMap;
use std::path::Path;

use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6},
    inet::StateFlags,
};

use super::sampler::{Sampler, TickContext};
pub use super::sockagg::{SocketAgg, MAX_LISTENERS, TOP_N};
use crate::input::Input;
use crate::netns;

use crate::model::sample::{MibSample, PortRange};

pub struct MibSampler;

impl MibSampler {
    pub fn new() -> Self {
        Self
    }
}

impl Default for MibSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for MibSampler {
    fn name(&self) -> &'static str {
        "mib"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let mut out = Vec::new();
        for &ns in ctx.active {
            let path = if ns == ctx.own_netns {
                None
            } else {
                match ctx.index.path(ns) {
                    Some(p) => Some(p),
                    None => continue, // gone, or no path to enter it
                }
            };
            match netns::within(path.as_deref(), move || Ok(read(ns))) {
                Ok(s) => out.push(Input::Mib(s)),
                Err(e) => tracing::debug!(netns = ns, error = %e, "MIB sample unavailable"),
            }
        }
        out
    }
}

/// Reads everything from inside the namespace (the calling thread's).
fn read(netns: u32) -> MibSample {
    let mut mib = HashMap::new();
    for f in [
        "/proc/thread-self/net/snmp",
        "/proc/thread-self/net/netstat",
    ] {
        if let Ok(text) = std::fs::read_to_string(f) {
            mib.extend(parse_mib(&text));
        }
    }
    let get = |k: &str| mib.get(k).copied().unwrap_or(0);
    let sysctl = |k: &str| read_sysctl(Path::new("/proc/sys/net").join(k).as_path());
    let port_range = sysctl("ipv4/ip_local_port_range").and_then(|s| parse_port_range(&s));
    let mut s = MibSample {
        netns,
        tcp_out_segs: get("TcpOutSegs"),
        tcp_retrans_segs: get("TcpRetransSegs"),
        listen_overflows: get("TcpExtListenOverflows"),
        listen_drops: get("TcpExtListenDrops"),
        tw_overflow: get("TcpExtTCPTimeWaitOverflow"),
        req_q_full_drop: get("TcpExtTCPReqQFullDrop"),
        syncookies_sent: get("TcpExtSyncookiesSent"),
        tcp_retrans_fail: get("TcpExtTCPRetransFail"),
        tcp_max_tw_buckets: sysctl("ipv4/tcp_max_tw_buckets").and_then(|v| v.parse().ok()),
        port_range,
        tcp_tw_reuse: sysctl("ipv4/tcp_tw_reuse").and_then(|v| v.parse().ok()),
        somaxconn: sysctl("core/somaxconn").and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    let mut agg = SocketAgg::new(port_range);
    let dumped = netns::diag_socket().and_then(|sock| {
        for family in [AF_INET, AF_INET6] {
            netns::dump_tcp(&sock, family, StateFlags::all(), |h| agg.add(h))?;
        }
        Ok(())
    });
    agg.finish(&mut s);
    if let Err(e) = dumped {
        tracing::debug!(netns, error = %e, "INET_DIAG dump failed");
        s.time_wait = None;
    }
    s
}

fn read_sysctl(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// `/proc/net/snmp` and `/proc/net/netstat`: pairs of lines `Prefix: names…` / `Prefix: values…`,
/// turned into nstat's names (`TcpOutSegs`, `TcpExtListenOverflows`). Negative values (e.g.
/// `TcpMaxConn` -1) are left out.
pub fn parse_mib(text: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((p1, names)), Some((p2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if p1 != p2 {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<u64>() {
                out.insert(format!("{p1}{n}"), v);
            }
        }
    }
    out
}

/// `ip_local_port_range`: two numbers separated by whitespace.
pub fn parse_port_range(s: &str) -> Option<PortRange> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some(PortRange { lo, hi }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample::Listener;

    #[test]
    fn parses_snmp_and_netstat() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm MaxConn OutSegs RetransSegs\nTcp: 1 -1 1234 56\n";
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\n\
                       IpExt: InOctets\nIpExt: 100\n";
        let m = parse_mib(snmp);
        assert_eq!(m["TcpOutSegs"], 1234);
        assert_eq!(m["TcpRetransSegs"], 56);
        assert!(!m.contains_key("TcpMaxConn"));
        assert_eq!(m["IpDefaultTTL"], 64);
        let n = parse_mib(netstat);
        assert_eq!(n["TcpExtListenOverflows"], 7);
        assert_eq!(n["TcpExtListenDrops"], 9);
        assert_eq!(n["IpExtInOctets"], 100);
    }

    #[test]
    fn parses_the_port_range() {
        assert_eq!(
            parse_port_range("32768\t60999\n"),
            Some(PortRange {
                lo: 32768,
                hi: 60999
            })
        );
        assert_eq!(parse_port_range("40000 40009").unwrap().size(), 10);
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range("x"), None);
    }

    #[test]
    fn a_sample_round_trips_through_json() {
        let s = MibSample {
            netns: 7,
            tcp_out_segs: 10,
            port_range: Some(PortRange { lo: 1, hi: 2 }),
            listeners: vec![Listener {
                addr: "::".into(),
                port: 1,
                queued: 0,
                backlog: 1,
                uid: 0,
                inode: 3,
            }],
            ..Default::default()
        };
        let v = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<MibSample>(&v).unwrap(), s);
    }

    /// The sampler reads the daemon's own namespace (no privileges needed for that).
    #[test]
    fn reads_the_own_namespace() {
        let s = read(1);
        assert!(s.port_range.is_some());
        assert!(s.tcp_max_tw_buckets.is_some());
    }
}
