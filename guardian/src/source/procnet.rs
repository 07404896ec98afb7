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

/// The sysctls a sample carries, in the order of [`SysctlFiles`]' slots.
const SYSCTLS: [&str; 4] = [
    "/proc/sys/net/ipv4/tcp_max_tw_buckets",
    "/proc/sys/net/ipv4/ip_local_port_range",
    "/proc/sys/net/ipv4/tcp_tw_reuse",
    "/proc/sys/net/core/somaxconn",
];

/// One namespace's sysctl files, kept open from one tick to the next. Looking a `/proc/sys`
/// path up costs time proportional to the number of namespaces on the host (every namespace
/// has its own dentries on the same dcache chains), so reading four of them per namespace and
/// tick is quadratic; `pread` on an open file walks nothing. An open sysctl file does not keep
/// its namespace alive: once the namespace is deleted, reads fail (ENOENT) and the file is
/// dropped.
#[derive(Debug, Default)]
pub struct SysctlFiles {
    files: [Option<std::fs::File>; 4],
}

impl SysctlFiles {
    /// Open descriptors held.
    pub fn open(&self) -> usize {
        self.files.iter().flatten().count()
    }

    fn read(&mut self, i: usize, keep: bool) -> Option<String> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 64];
        if let Some(f) = &self.files[i] {
            match f.read_at(&mut buf, 0) {
                Ok(n) => return String::from_utf8(buf[..n].to_vec()).ok(),
                Err(_) => self.files[i] = None,
            }
        }
        let f = std::fs::File::open(SYSCTLS[i]).ok()?;
        let n = f.read_at(&mut buf, 0).ok()?;
        if keep {
            self.files[i] = Some(f);
        }
        String::from_utf8(buf[..n].to_vec()).ok()
    }
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
const TCP_EXT: [&str; 7] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPTimeWaitOverflow",
    "TCPReqQFullDrop",
    "SyncookiesSent",
    "TCPReqQFullDoCookies",
    "TCPRetransFail",
];

impl Reader {
    fn read(&mut self, path: &str) -> bool {
        self.buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .is_ok()
    }

    /// The MIB counters and sysctls of the calling thread's namespace into `s`. The sysctl
    /// files are `files` (that namespace's), kept open for the next tick when `keep`.
    pub fn mib(&mut self, s: &mut MibSample, files: &mut SysctlFiles, keep: bool) {
        let mut tcp = [0u64; 2];
        if self.read("/proc/thread-self/net/snmp") {
            values(&self.buf, "Tcp", &TCP, &mut tcp);
        }
        let mut ext = [0u64; 7];
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
            s.req_q_full_do_cookies,
            s.tcp_retrans_fail,
        ] = ext;
        let mut v: [Option<String>; 4] = Default::default();
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = files.read(i, keep);
        }
        let num = |x: &Option<String>| x.as_deref().and_then(|t| t.trim().parse().ok());
        s.tcp_max_tw_buckets = num(&v[0]);
        s.port_range = v[1].as_deref().and_then(parse_port_range);
        s.tcp_tw_reuse = num(&v[2]);
        s.somaxconn = num(&v[3]);
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
        let mut files = SysctlFiles::default();
        r.mib(&mut s, &mut files, true);
        assert_eq!(files.open(), 4);
        let mut again = MibSample::default();
        r.mib(&mut again, &mut files, true);
        assert_eq!(
            again.port_range, s.port_range,
            "read again through the open files"
        );
        assert!(s.port_range.is_some());
        assert!(s.tcp_max_tw_buckets.is_some());
        assert!(r.sockstat().is_some());
    }
}
