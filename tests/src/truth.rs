//! Ground truth from the kernel, read with the usual tools inside a namespace: nstat, ss, ip.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::util::poll;

/// The namespace's SNMP/netstat MIB counters, absolute (`nstat -asz`: ignore and never write the
/// history file, include zeros), e.g. `TcpRetransSegs`, `TcpExtTCPSynRetrans`.
pub fn nstat(ns: &Netns) -> HashMap<String, u64> {
    // A private history path: nstat neither reads nor writes the user's, and its abstract
    // socket name (derived from the path) cannot reach an nstat daemon elsewhere.
    let hist = std::env::temp_dir().join(format!("gt-nstat-{}-{}", ns.name(), std::process::id()));
    let out = ns
        .command("nstat")
        .args(["-a", "-s", "-z"])
        .env("NSTAT_HISTORY", &hist)
        .output()
        .expect("spawn nstat");
    let _ = std::fs::remove_file(&hist);
    assert!(
        out.status.success(),
        "nstat in {} failed: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_nstat(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `nstat` output: `#kernel` then `Name value rate` lines.
pub fn parse_nstat(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// One counter from [`nstat`]; panics if the kernel does not report it.
pub fn nstat_get(ns: &Netns, name: &str) -> u64 {
    *nstat(ns)
        .get(name)
        .unwrap_or_else(|| panic!("nstat in {} has no {name}", ns.name()))
}

/// TCP sockets in TIME_WAIT in the namespace (`ss -Htan state time-wait | wc -l`).
pub fn ss_time_wait(ns: &Netns) -> usize {
    ns.run(&["ss", "-H", "-t", "-a", "-n", "state", "time-wait"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// TCP sockets that are neither listening nor in TIME_WAIT (`ss -Htan`, state column).
pub fn ss_busy(ns: &Netns) -> Vec<String> {
    ns.run(&["ss", "-H", "-t", "-a", "-n"])
        .lines()
        .filter(|l| {
            let state = l.split_whitespace().next().unwrap_or("");
            !state.is_empty() && state != "LISTEN" && state != "TIME-WAIT"
        })
        .map(str::to_owned)
        .collect()
}

/// Waits until no TCP connection is open or closing in the namespace (all done or in
/// TIME_WAIT), so that no retransmission can still happen. False on timeout.
pub fn wait_tcp_quiet(ns: &Netns, timeout: Duration) -> bool {
    poll(timeout, Duration::from_millis(50), || {
        ss_busy(ns).is_empty().then_some(())
    })
    .is_some()
}

/// `ip -j link show dev IFACE`, the single object.
pub fn link(ns: &Netns, iface: &str) -> Value {
    let out = ns.run(&["ip", "-j", "link", "show", "dev", iface]);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ip -j link show {iface}: {e}: {out}"));
    v.get(0)
        .cloned()
        .unwrap_or_else(|| panic!("ip -j link show {iface}: empty: {out}"))
}

/// Whether the link's flags include `UP` (administratively up).
pub fn admin_up(ns: &Netns, iface: &str) -> bool {
    link(ns, iface)["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

/// Whether the link is administratively and operationally up.
pub fn oper_up(ns: &Netns, iface: &str) -> bool {
    let l = link(ns, iface);
    l["operstate"] == "UP"
        && l["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

/// `ip route show PREFIX` in the namespace (empty when there is no such route).
pub fn route_show(ns: &Netns, prefix: &str) -> String {
    ns.run(&["ip", "route", "show", prefix]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nstat_output() {
        let m = parse_nstat(
            "#kernel\nIpInReceives                    14590              0.0\n\
             TcpRetransSegs                  7                  0.0\nTcpExtTCPSynRetrans 0 0.0\n",
        );
        assert_eq!(m["IpInReceives"], 14590);
        assert_eq!(m["TcpRetransSegs"], 7);
        assert_eq!(m["TcpExtTCPSynRetrans"], 0);
        assert_eq!(m.len(), 3);
    }
}
