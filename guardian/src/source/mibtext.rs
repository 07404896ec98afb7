//! Parsing the counters detectors use out of `snmp` / `netstat` text, read as bytes straight
//! from the read buffer (no copy, no UTF-8 pass, no allocation per tick).
//!
//! A kernel prints the same header line (`TcpExt: SyncookiesSent SyncookiesRecv ...`) for
//! every namespace and every read, so the columns of the wanted counters are looked up once
//! and kept with a copy of the header; a later read whose header is byte for byte the same
//! reuses them (one `memcmp`) and parses only those columns of the value line. A different
//! header (another kernel's file, in tests; a module adding counters) is looked up again.

/// The wanted columns of one `prefix:` header line: (column, slot in the output), by column.
#[derive(Debug, Default, Clone)]
pub struct Columns {
    header: Vec<u8>,
    wanted: Vec<(usize, usize)>,
}

impl Columns {
    /// The values of `names` on the `prefix:` line pair of an `snmp`/`netstat` file (a line
    /// of names followed by a line of values) into `out`; names not found leave their slot
    /// alone, and values that are not unsigned numbers (`MaxConn -1`) read as 0. Lines are
    /// taken in pairs from the top, as the kernel prints them. `names` must be the same on
    /// every call with this `Columns`.
    pub fn values(&mut self, text: &[u8], prefix: &str, names: &[&str], out: &mut [u64]) {
        let mut rest = text;
        while let (Some(head), Some(vals)) = (line(&mut rest), line(&mut rest)) {
            let (Some(head), Some(vals)) = (after(head, prefix), after(vals, prefix)) else {
                continue;
            };
            if head != self.header.as_slice() {
                self.learn(head, names);
            }
            let mut want = self.wanted.iter().peekable();
            for (col, v) in fields(vals).enumerate() {
                let Some(&&(c, slot)) = want.peek() else {
                    break;
                };
                if c == col {
                    out[slot] = number(v);
                    want.next();
                }
            }
            return;
        }
    }

    fn learn(&mut self, head: &[u8], names: &[&str]) {
        self.header.clear();
        self.header.extend_from_slice(head);
        self.wanted.clear();
        for (col, name) in fields(head).enumerate() {
            // A name printed twice: the later column wins, as it did when every value was
            // stored in turn; a name asked for twice fills its first slot only.
            if let Some(slot) = names.iter().position(|n| n.as_bytes() == name) {
                self.wanted.retain(|&(_, s)| s != slot);
                self.wanted.push((col, slot));
            }
        }
    }
}

/// The next line of `rest` (without its `\n`), which moves past it; None at the end.
fn line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let (l, r) = match memchr::memchr(b'\n', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (*rest, &rest[rest.len()..]),
    };
    *rest = r;
    Some(l)
}

/// The rest of `line` after `prefix:`, if it starts with it.
fn after<'a>(line: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    line.strip_prefix(prefix.as_bytes())?.strip_prefix(b":")
}

/// Whitespace-separated fields.
fn fields(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

/// An unsigned decimal; anything else (a sign, garbage, an overflow) is 0.
fn number(s: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return 0;
        }
        let Some(m) = n
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(b - b'0')))
        else {
            return 0;
        };
        n = m;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: [&str; 2] = ["OutSegs", "RetransSegs"];
    const EXT: [&str; 3] = ["ListenOverflows", "ListenDrops", "SyncookiesSent"];

    /// What the parser did before the cache: every pair split and compared by name.
    fn reference(text: &str, prefix: &str, names: &[&str], out: &mut [u64]) {
        let mut lines = text.lines();
        while let (Some(head), Some(vals)) = (lines.next(), lines.next()) {
            let (Some((p1, head)), Some((p2, vals))) = (head.split_once(':'), vals.split_once(':'))
            else {
                continue;
            };
            if p1 != prefix || p2 != prefix {
                continue;
            }
            for (n, v) in head
                .split_ascii_whitespace()
                .zip(vals.split_ascii_whitespace())
            {
                if let Some(i) = names.iter().position(|x| *x == n) {
                    out[i] = v.parse().unwrap_or(0);
                }
            }
            return;
        }
    }

    fn both(text: &str, prefix: &str, names: &[&str], cols: &mut Columns) -> Vec<u64> {
        let mut a = vec![7; names.len()];
        let mut b = vec![7; names.len()];
        cols.values(text.as_bytes(), prefix, names, &mut a);
        reference(text, prefix, names, &mut b);
        assert_eq!(a, b, "{prefix} of {text:?}");
        a
    }

    #[test]
    fn parses_only_the_wanted_counters() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm MaxConn OutSegs RetransSegs\nTcp: 1 -1 1234 56\n";
        let mut c = Columns::default();
        assert_eq!(both(snmp, "Tcp", &TCP, &mut c), [1234, 56]);
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 3 7 9\n\
                       IpExt: InOctets\nIpExt: 100\n";
        let mut c = Columns::default();
        assert_eq!(both(netstat, "TcpExt", &EXT, &mut c), [7, 9, 3]);
        let mut c = Columns::default();
        assert_eq!(
            both(netstat, "Tcp", &TCP, &mut c),
            [7, 7],
            "no Tcp: lines, nothing set"
        );
        assert_eq!(
            both(netstat, "IpExt", &["InOctets"], &mut Columns::default()),
            [100]
        );
    }

    #[test]
    fn the_cached_columns_follow_the_header() {
        let mut c = Columns::default();
        let a = "Tcp: OutSegs RetransSegs\nTcp: 10 2\n";
        assert_eq!(both(a, "Tcp", &TCP, &mut c), [10, 2]);
        // Same header, new values: the cached columns.
        let a2 = "Tcp: OutSegs RetransSegs\nTcp: 11 3\n";
        assert_eq!(both(a2, "Tcp", &TCP, &mut c), [11, 3]);
        // Columns moved (another header): looked up again.
        let b = "Tcp: RetransSegs X OutSegs\nTcp: 5 0 99\n";
        assert_eq!(both(b, "Tcp", &TCP, &mut c), [99, 5]);
        // A counter gone from the header: its slot is left alone.
        let d = "Tcp: OutSegs\nTcp: 12\n";
        assert_eq!(both(d, "Tcp", &TCP, &mut c), [12, 7]);
        assert_eq!(both(a2, "Tcp", &TCP, &mut c), [11, 3]);
    }

    #[test]
    fn odd_values_read_as_zero_and_short_lines_stop() {
        let mut c = Columns::default();
        // A negative, garbage, an overflow; a value line shorter than its header.
        let t = "Tcp: MaxConn OutSegs RetransSegs\nTcp: -1 x1 99999999999999999999999\n";
        assert_eq!(
            both(t, "Tcp", &["MaxConn", "OutSegs", "RetransSegs"], &mut c),
            [0, 0, 0]
        );
        let short = "Tcp: OutSegs RetransSegs\nTcp: 4\n";
        assert_eq!(both(short, "Tcp", &TCP, &mut Columns::default()), [4, 7]);
        // Tabs and repeated spaces separate fields too; no trailing newline.
        let ws = "Tcp:\tOutSegs  RetransSegs\nTcp: 8\t\t9";
        assert_eq!(both(ws, "Tcp", &TCP, &mut Columns::default()), [8, 9]);
        // A name printed twice (the later column wins) and asked for twice (first slot).
        let dup = "Tcp: OutSegs OutSegs RetransSegs\nTcp: 1 2 3\n";
        assert_eq!(
            both(
                dup,
                "Tcp",
                &["OutSegs", "RetransSegs", "OutSegs"],
                &mut Columns::default()
            ),
            [2, 3, 7]
        );
    }

    #[test]
    fn lines_pair_from_the_top_and_prefixes_match_whole() {
        // `TcpExt:` is not `Tcp:`; a pair whose two lines differ is skipped.
        let t =
            "TcpExt: OutSegs\nTcpExt: 1\nTcp: OutSegs\nIp: 2\nTcp: OutSegs RetransSegs\nTcp: 5 6\n";
        assert_eq!(both(t, "Tcp", &TCP, &mut Columns::default()), [5, 6]);
        // Misaligned by one line: no pair matches, nothing set (as before).
        let m = "junk\nTcp: OutSegs RetransSegs\nTcp: 5 6\n";
        assert_eq!(both(m, "Tcp", &TCP, &mut Columns::default()), [7, 7]);
    }

    /// The running kernel's files, through both parsers.
    #[test]
    fn the_kernels_files_parse_as_before() {
        let snmp = std::fs::read_to_string("/proc/net/snmp").expect("snmp");
        let netstat = std::fs::read_to_string("/proc/net/netstat").expect("netstat");
        let mut c = Columns::default();
        for _ in 0..2 {
            let v = both(&snmp, "Tcp", &TCP, &mut c);
            assert_ne!(v, [7, 7], "the kernel prints OutSegs and RetransSegs");
        }
        let ext = [
            "ListenOverflows",
            "TCPWinProbe",
            "TCPRetransFail",
            "NoSuchCounter",
        ];
        let mut c = Columns::default();
        let v = both(&netstat, "TcpExt", &ext, &mut c);
        assert_eq!(v[3], 7);
    }
}
