//! What the MIB sampler reads of a namespace at a cost independent of how many sockets the node
//! has: the TCP MIB (`/proc/thread-self/net/snmp`, `netstat`), the socket counts of
//! `sockstat` / `sockstat6`, and the namespace's sysctls, through files opened once inside it
//! ([`NetFiles`]). Buffers are kept from one namespace to the next; only the counters detectors
//! use are parsed (no map of every counter).
use std::path::Path;

use super::mibtext::Columns;
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

/// What a sample reads, in the order of [`NetFiles`]' slots: the namespace's `/proc/net`
/// files, then its sysctls ([`SYSCTL_SLOT`] on).
const FILES: [&str; 8] = [
    "/proc/thread-self/net/snmp",
    "/proc/thread-self/net/netstat",
    "/proc/thread-self/net/sockstat",
    "/proc/thread-self/net/sockstat6",
    "/proc/sys/net/ipv4/tcp_max_tw_buckets",
    "/proc/sys/net/ipv4/ip_local_port_range",
    "/proc/sys/net/ipv4/tcp_tw_reuse",
    "/proc/sys/net/core/somaxconn",
];
const SYSCTL_SLOT: usize = 4;
/// Descriptors one namespace's [`NetFiles`] hold when all are open.
pub const NET_FILES: usize = FILES.len();

/// One namespace's procfs files, opened once from inside it and read with `pread` at offset 0
/// on every tick, from any thread: a `/proc/net` file is bound to the namespace it was opened
/// in (its seq_file regenerates from the start on a read at offset 0), and so is a sysctl file.
/// Opening costs a path walk that grows with the number of namespaces on the host (every
/// namespace has its own dentries on the same dcache chains) and needs the reading thread to
/// be in the namespace (`setns`); reading an open file needs neither.
///
/// An open `/proc/net` file holds a reference on its namespace: the owner closes the files as
/// soon as no path leads to the namespace any more (within a tick of its deletion).
#[derive(Debug, Default)]
pub struct NetFiles {
    files: [Option<std::fs::File>; FILES.len()],
    opened: bool,
}

impl NetFiles {
    /// Opens the files of the calling thread's namespace; a file that cannot be opened (no
    /// IPv6: no `sockstat6`) stays absent and reads as missing. Out of descriptors, the result
    /// does not count as open (tried again on the next tick).
    pub fn open_here() -> Self {
        let mut full = false;
        let files = FILES.map(|p| {
            std::fs::File::open(p)
                .map_err(|e| full |= matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
                .ok()
        });
        Self {
            files,
            opened: !full,
        }
    }

    /// Whether [`open_here`](Self::open_here) made these (some files may still be absent).
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// Open descriptors held.
    pub fn open(&self) -> usize {
        self.files.iter().flatten().count()
    }

    /// The whole file in `slot` into `buf`, its length; None when it is absent or the read
    /// fails. Sysctls are read with a small buffer (the kernel allocates one of the size asked
    /// for), `/proc/net` files with one they fit in.
    fn read(&self, slot: usize, buf: &mut Vec<u8>) -> Option<usize> {
        use std::os::unix::fs::FileExt;
        let f = self.files[slot].as_ref()?;
        let mut len = if slot >= SYSCTL_SLOT { 64 } else { 8192 };
        loop {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            // A seq_file returns all it generated in one read when the buffer is larger.
            match f.read_at(&mut buf[..len], 0) {
                Ok(n) if n < len => return Some(n),
                Ok(_) if len < 1 << 20 => len *= 2,
                _ => return None,
            }
        }
    }
}

/// Reusable buffers for reading procfs text, and the files of the namespace being read.
#[derive(Default)]
pub struct Reader {
    /// The last file read (parsed in place, as bytes).
    raw: Vec<u8>,
    /// Where the wanted counters are in `snmp`'s `Tcp:` and `netstat`'s `TcpExt:` lines.
    tcp: Columns,
    ext: Columns,
    /// The INET_DIAG receive buffer.
    pub rx: Vec<u8>,
    /// The namespace's files while it is read (swapped in and out by [`with`](Self::with)).
    files: NetFiles,
}

/// Counters wanted from `snmp` (`Tcp:` lines) and `netstat` (`TcpExt:` lines), in the order of
/// the fields they fill.
const TCP: [&str; 2] = ["OutSegs", "RetransSegs"];
const TCP_EXT: [&str; 8] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPTimeWaitOverflow",
    "TCPReqQFullDrop",
    "SyncookiesSent",
    "TCPReqQFullDoCookies",
    "TCPRetransFail",
    "TCPWinProbe",
];

impl Reader {
    /// Runs `f` with `files` as the files to read (see [`mib`](Self::mib)).
    pub fn with<T>(&mut self, files: &mut NetFiles, f: impl FnOnce(&mut Self) -> T) -> T {
        std::mem::swap(&mut self.files, files);
        let r = f(self);
        std::mem::swap(&mut self.files, files);
        r
    }

    /// The file at `path` (one of [`FILES`]), read into `self.raw`; None when it is absent or
    /// cannot be read.
    fn read(&mut self, path: &str) -> Option<&[u8]> {
        let slot = FILES.iter().position(|p| *p == path)?;
        let n = self.files.read(slot, &mut self.raw)?;
        Some(&self.raw[..n])
    }

    /// The file at `path` as text (sysctls, `sockstat`: a few bytes).
    fn text(&mut self, path: &str) -> Option<&str> {
        std::str::from_utf8(self.read(path)?).ok()
    }

    /// The MIB counters and sysctls of the namespace whose files are in use (see
    /// [`with`](Self::with)) into `s`.
    pub fn mib(&mut self, s: &mut MibSample) {
        let mut tcp = [0u64; 2];
        let mut cols = std::mem::take(&mut self.tcp);
        if let Some(t) = self.read("/proc/thread-self/net/snmp") {
            cols.values(t, "Tcp", &TCP, &mut tcp);
        }
        self.tcp = cols;
        let mut ext = [0u64; 8];
        let mut cols = std::mem::take(&mut self.ext);
        if let Some(t) = self.read("/proc/thread-self/net/netstat") {
            cols.values(t, "TcpExt", &TCP_EXT, &mut ext);
        }
        self.ext = cols;
        [s.tcp_out_segs, s.tcp_retrans_segs] = tcp;
        [
            s.listen_overflows,
            s.listen_drops,
            s.tw_overflow,
            s.req_q_full_drop,
            s.syncookies_sent,
            s.req_q_full_do_cookies,
            s.tcp_retrans_fail,
            s.tcp_win_probe,
        ] = ext;
        let num = |r: &mut Self, i: usize| r.text(FILES[SYSCTL_SLOT + i])?.trim().parse().ok();
        s.tcp_max_tw_buckets = num(self, 0);
        s.port_range = self.text(FILES[SYSCTL_SLOT + 1]).and_then(parse_port_range);
        s.tcp_tw_reuse = num(self, 2);
        s.somaxconn = num(self, 3);
    }

    /// `sockstat` and `sockstat6`; None when `sockstat` cannot be read.
    pub fn sockstat(&mut self) -> Option<SockStat> {
        let mut s = SockStat::default();
        let (inuse, tw) = parse_sockstat(self.text("/proc/thread-self/net/sockstat")?, "TCP:")?;
        s.inuse4 = inuse;
        s.tw = tw.unwrap_or(0);
        if let Some(t) = self.text("/proc/thread-self/net/sockstat6") {
            s.inuse6 = parse_sockstat(t, "TCP6:").map_or(0, |x| x.0);
        }
        Some(s)
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
        let mut files = NetFiles::open_here();
        assert!(files.open() >= 7, "sockstat6 may be absent without IPv6");
        r.with(&mut files, |r| r.mib(&mut s));
        let mut again = MibSample::default();
        r.with(&mut files, |r| r.mib(&mut again));
        assert_eq!(
            again.port_range, s.port_range,
            "read again through the open files"
        );
        assert!(s.port_range.is_some());
        assert!(s.tcp_max_tw_buckets.is_some());
        assert!(s.tcp_out_segs <= again.tcp_out_segs);
        assert!(r.with(&mut files, |r| r.sockstat()).is_some());
        assert!(
            Reader::default().sockstat().is_none(),
            "no files, nothing read"
        );
    }
}
