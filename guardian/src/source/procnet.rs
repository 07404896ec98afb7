//! What the MIB sampler reads from inside a namespace at a cost independent of how many sockets
//! the node has: the TCP MIB (`/proc/thread-self/net/snmp`, `netstat`), the socket counts of
//! `sockstat` / `sockstat6`, and the namespace's sysctls. Buffers are kept from one namespace
//! to the next; only the counters detectors use are parsed (no map of every counter).
use std::io::Read;
use std::path::Path;

use crate::model::sample::{MibSample, PortRange};

/// `sockstat` and `sockstat6` of one namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockStat {
    /// `TCP: inuse`: IPv4 TCP sockets hashed in this namespace (listeners included).
    pub inuse4: u64,
    /// `TCP6: inuse`.
    pub inuse6: u64,
    /// `TCP: tw`: timewait sockets of this namespace (see [`tw_per_netns`]).
    pub tw: u64,
}

/// Reusable buffers for reading procfs text.
#[derive(Default)]
pub struct Reader {
    buf: String,
    /// The INET_DIAG receive buffer.
    pub rx: Vec<u8>,
}

/// Counters wanted from `snmp` (`Tcp:` lines) and `netstat` (`TcpExt:` lines), in the order of
/// the fields they fill.
const TCP: [&str; 2] = ["OutSegs", "RetransSegs"];
const TCP_EXT: [&str; 5] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPTimeWaitOverflow",
    "TCPReqQFullDrop",
    "SyncookiesSent",
];

impl Reader {
    fn read(&mut self, path: &str) -> bool {
        self.buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .is_ok()
    }

    /// The MIB counters and sysctls of the calling thread's namespace into `s`.
    pub fn mib(&mut self, s: &mut MibSample) {
        let mut tcp = [0u64; 2];
        if self.read("/proc/thread-self/net/snmp") {
            values(&self.buf, "Tcp", &TCP, &mut tcp);
        }
        let mut ext = [0u64; 5];
        if self.read("/proc/thread-self/net/netstat") {
            values(&self.buf, "TcpExt", &TCP_EXT, &mut ext);
        }
        [s.tcp_out_segs, s.tcp_retrans_segs] = tcp;
        [
            s.listen_overflows,
            s.listen_drops,
            s.tw_overflow,
            s.req_q_full_drop,
            s.syncookies_sent,
        ] = ext;
        s.tcp_max_tw_buckets = self.sysctl("ipv4/tcp_max_tw_buckets");
        s.port_range = self
            .sysctl_text("ipv4/ip_local_port_range")
            .and_then(parse_port_range);
        s.tcp_tw_reuse = self.sysctl("ipv4/tcp_tw_reuse");
        s.somaxconn = self.sysctl("core/somaxconn");
    }

    /// `sockstat` and `sockstat6`; None when `sockstat` cannot be read.
    pub fn sockstat(&mut self) -> Option<SockStat> {
        let mut s = SockStat::default();
        if !self.read("/proc/thread-self/net/sockstat") {
            return None;
        }
        let (inuse, tw) = parse_sockstat(&self.buf, "TCP:")?;
        s.inuse4 = inuse;
        s.tw = tw.unwrap_or(0);
        if self.read("/proc/thread-self/net/sockstat6") {
            s.inuse6 = parse_sockstat(&self.buf, "TCP6:").map_or(0, |x| x.0);
        }
        Some(s)
    }

    fn sysctl_text(&mut self, key: &str) -> Option<&str> {
        let mut path = String::with_capacity(48);
        path.push_str("/proc/sys/net/");
        path.push_str(key);
        self.read(&path).then(|| self.buf.trim())
    }

    fn sysctl(&mut self, key: &str) -> Option<u64> {
        self.sysctl_text(key).and_then(|v| v.parse().ok())
    }
}

/// The values of `names` on the `prefix:` line pair of an `snmp`/`netstat` file (a line of
/// names followed by a line of values) into `out`; names not found leave their slot alone, and
/// negative values (`MaxConn -1`) read as 0.
pub fn values(text: &str, prefix: &str, names: &[&str], out: &mut [u64]) {
    let mut lines = text.lines();
    while let (Some(head), Some(vals)) = (lines.next(), lines.next()) {
        let (Some((p1, head)), Some((p2, vals))) = (head.split_once(':'), vals.split_once(':'))
        else {
            continue;
        };
        if p1 != prefix || p2 != prefix {
            continue;
        }
        for (n, v) in head.split_whitespace().zip(vals.split_whitespace()) {
            if let Some(i) = names.iter().position(|x| *x == n) {
                out[i] = v.parse().unwrap_or(0);
            }
        }
        return;
    }
}

/// `inuse` and `tw` of the line starting with `prefix` (`TCP: inuse 5 orphan 0 tw 2 ...`).
pub fn parse_sockstat(text: &str, prefix: &str) -> Option<(u64, Option<u64>)> {
    let line = text.lines().find_map(|l| l.strip_prefix(prefix))?;
    let mut it = line.split_whitespace();
    let (mut inuse, mut tw) = (None, None);
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match k {
            "inuse" => inuse = v.parse().ok(),
            "tw" => tw = v.parse().ok(),
            _ => {}
        }
    }
    Some((inuse?, tw))
}

/// `ip_local_port_range`: two numbers separated by whitespace.
pub fn parse_port_range(s: &str) -> Option<PortRange> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some(PortRange { lo, hi }),
        _ => None,
    }
}

/// Whether `sockstat`'s `tw` counts the reading namespace's timewait sockets. Linux 4.11 moved
/// `tcp_death_row` (and its count) into `struct netns_ipv4`; before, every namespace showed
/// the host's total. 5.17 turned the count into `tw_refcount - 1`, same meaning. `release` is
/// `uname -r`.
pub fn tw_per_netns(release: &str) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (4, 11)
}

/// [`tw_per_netns`] for the running kernel.
pub fn kernel_tw_per_netns() -> bool {
    std::fs::read_to_string(Path::new("/proc/sys/kernel/osrelease"))
        .map(|r| tw_per_netns(r.trim()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_wanted_counters() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm MaxConn OutSegs RetransSegs\nTcp: 1 -1 1234 56\n";
        let mut tcp = [0; 2];
        values(snmp, "Tcp", &TCP, &mut tcp);
        assert_eq!(tcp, [1234, 56]);
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 3 7 9\n\
                       IpExt: InOctets\nIpExt: 100\n";
        let mut ext = [0; 5];
        values(netstat, "TcpExt", &TCP_EXT, &mut ext);
        assert_eq!(ext, [7, 9, 0, 0, 3]);
        let mut none = [5; 2];
        values(netstat, "Tcp", &TCP, &mut none);
        assert_eq!(none, [5, 5], "no Tcp: lines, nothing set");
    }

    #[test]
    fn parses_sockstat() {
        let v4 =
            "sockets: used 211\nTCP: inuse 9 orphan 0 tw 19 alloc 47 mem 22\nUDP: inuse 2 mem 0\n";
        assert_eq!(parse_sockstat(v4, "TCP:"), Some((9, Some(19))));
        let v6 = "TCP6: inuse 3\nUDP6: inuse 1\n";
        assert_eq!(parse_sockstat(v6, "TCP6:"), Some((3, None)));
        assert_eq!(parse_sockstat("UDP: inuse 2\n", "TCP:"), None);
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
    fn timewait_is_per_namespace_from_4_11() {
        assert!(!tw_per_netns("4.9.0-19-amd64"));
        assert!(!tw_per_netns("3.10.0-1160.el7.x86_64"));
        assert!(tw_per_netns("4.11.0"));
        assert!(tw_per_netns("4.19.0-27-amd64"));
        assert!(tw_per_netns("6.1.0-30-amd64"));
        assert!(tw_per_netns("6.18.0"));
        assert!(!tw_per_netns("garbage"));
    }

    /// The daemon's own namespace (no privileges needed).
    #[test]
    fn reads_the_own_namespace() {
        let mut r = Reader::default();
        let mut s = MibSample::default();
        r.mib(&mut s);
        assert!(s.port_range.is_some());
        assert!(s.tcp_max_tw_buckets.is_some());
        assert!(r.sockstat().is_some());
    }
}
