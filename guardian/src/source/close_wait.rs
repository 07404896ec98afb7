//! CLOSE_WAIT sockets per (netns, local port) from the `CW_PORT` counts (entered minus left),
//! one `Input::CloseWait` per namespace. The processes holding them are looked up only for a
//! port whose count reached [`LOOKUP_AT`] and moved: its socket inodes from `CW_SOCKS` (or,
//! for sockets still in the accept queue when they entered CLOSE_WAIT, from the namespace's
//! `/proc/PID/net/tcp`), then a scan of `/proc/*/fd`. The cost stays flat while nothing leaks.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aya::maps::{HashMap as BpfHashMap, MapData};
use guardian_common::shadows::{CwSock, RstKey, CW_ENTERED};

use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::model::shadows::{CloseWaitSample, PortCloseWait, SocketOwner};
use crate::probes::batch::CounterMap;
use crate::probes::{shadows, ProbeError, Probes};

/// A port with this many CLOSE_WAIT sockets gets its processes looked up (below every
/// sensible `close_wait_leak.min_sockets`).
pub const LOOKUP_AT: u64 = 8;
/// At most one lookup per port this often while its count moves.
const LOOKUP_EVERY: Duration = Duration::from_secs(2);

pub struct CloseWaitSampler {
    counts: CounterMap<RstKey>,
    socks: BpfHashMap<MapData, u64, CwSock>,
    /// Per (netns, port): the count and time of the last lookup, and what it found.
    looked: HashMap<(u32, u16), (u64, Instant, Vec<SocketOwner>)>,
}

impl CloseWaitSampler {
    /// Takes the maps from the loaded probes; None when the programs are not attached.
    pub fn new(probes: &mut Probes) -> Result<Option<Self>, ProbeError> {
        if !probes.shadows_attached() {
            return Ok(None);
        }
        let socks = BpfHashMap::try_from(probes.take_map(shadows::CW_SOCKS)?)
            .map_err(|_| ProbeError::MissingMap(shadows::CW_SOCKS))?;
        Ok(Some(Self {
            counts: CounterMap::new(shadows::CW_MAP, probes.take_map(shadows::CW_MAP)?)?,
            socks,
            looked: HashMap::new(),
        }))
    }

    fn owners(&mut self, netns: u32, port: u16, count: u64, now: Instant) -> Vec<SocketOwner> {
        if count < LOOKUP_AT {
            self.looked.remove(&(netns, port));
            return Vec::new();
        }
        if let Some((c, t, o)) = self.looked.get(&(netns, port)) {
            // Looked up again when the count moved or some sockets had no owner yet (still
            // in the accept queue), at most every LOOKUP_EVERY.
            let named: u64 = o.iter().map(|o| o.sockets).sum();
            if (*c == count && named >= count) || now.duration_since(*t) < LOOKUP_EVERY {
                return o.clone();
            }
        }
        let mut inodes: Vec<u64> = self
            .socks
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, s)| s.netns == netns && s.port == port && s.ino != 0)
            .map(|(_, s)| s.ino)
            .collect();
        if (inodes.len() as u64) < count {
            // Sockets that entered CLOSE_WAIT still in the accept queue had no inode yet
            // (the application accepted them later): the namespace's own table has it.
            inodes.extend(table_inodes(netns, port));
            inodes.sort_unstable();
            inodes.dedup();
        }
        let found = holders(&inodes);
        self.looked
            .insert((netns, port), (count, now, found.clone()));
        found
    }
}

/// The gauge per (netns, port): entered minus left (sockets already in CLOSE_WAIT at attach
/// are not known, hence saturating).
pub fn gauges(entries: Vec<(RstKey, u64)>) -> BTreeMap<(u32, u16), u64> {
    let mut io: BTreeMap<(u32, u16), (u64, u64)> = BTreeMap::new();
    for (k, v) in entries {
        let e = io.entry((k.netns, k.port)).or_default();
        if k.dir == CW_ENTERED {
            e.0 += v;
        } else {
            e.1 += v;
        }
    }
    io.into_iter()
        .map(|(k, (i, o))| (k, i.saturating_sub(o)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The processes holding `inodes` (socket inodes), by a scan of `/proc/*/fd`, most sockets
/// first. Hand-written (30 lines) rather than calling the remedies' scanner: sources sit
/// below remedies in the floors and must not import them.
pub fn holders(inodes: &[u64]) -> Vec<SocketOwner> {
    let mut out: Vec<SocketOwner> = Vec::new();
    if inodes.is_empty() {
        return out;
    }
    let wanted: std::collections::HashSet<u64> = inodes.iter().copied().collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let held = fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|l| socket_inode(&l.to_string_lossy()))
            .filter(|i| wanted.contains(i))
            .count() as u64;
        if held > 0 {
            let comm = std::fs::read_to_string(p.path().join("comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_default();
            out.push(SocketOwner {
                pid,
                comm,
                sockets: held,
            });
        }
    }
    out.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.pid.cmp(&b.pid)));
    out
}

/// The inodes of the CLOSE_WAIT sockets of `port` in namespace `netns`, from
/// `/proc/PID/net/tcp{,6}` of a process in it (state `08`). Reads the namespace's whole TCP
/// table: only when a port is about to open the fault, at most every [`LOOKUP_EVERY`].
pub fn table_inodes(netns: u32, port: u16) -> Vec<u64> {
    let want = format!("net:[{netns}]");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pid = procs.flatten().find(|p| {
        p.file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok())
            && std::fs::read_link(p.path().join("ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
    });
    let Some(pid) = pid else {
        return Vec::new();
    };
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(pid.path().join("net").join(f)).ok())
        .flat_map(|t| close_wait_inodes(&t, port))
        .collect()
}

/// The inodes of `port`'s CLOSE_WAIT sockets in a `/proc/net/tcp` table.
pub fn close_wait_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let local = c.get(1)?.rsplit(':').next()?;
            (c.get(3) == Some(&"08") && u16::from_str_radix(local, 16).ok()? == port)
                .then(|| c.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

impl Sampler for CloseWaitSampler {
    fn name(&self) -> &'static str {
        "close_wait"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let entries = self.counts.read().unwrap_or_else(|e| {
            tracing::warn!(map = shadows::CW_MAP, error = %e, "reading the CLOSE_WAIT map failed");
            Vec::new()
        });
        let now = Instant::now();
        let mut by: BTreeMap<u32, Vec<PortCloseWait>> =
            ctx.active.iter().map(|&n| (n, Vec::new())).collect();
        for ((netns, port), count) in gauges(entries) {
            let owners = self.owners(netns, port, count, now);
            by.entry(netns).or_default().push(PortCloseWait {
                port,
                count,
                owners,
            });
        }
        self.looked.retain(|k, _| {
            by.get(&k.0)
                .is_some_and(|v| v.iter().any(|p| p.port == k.1))
        });
        by.into_iter()
            .map(|(netns, ports)| Input::CloseWait(CloseWaitSample { netns, ports }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_common::shadows::CW_LEFT;

    #[test]
    fn the_gauge_is_entered_minus_left_per_port() {
        let k = |netns, port, dir| RstKey {
            netns,
            port,
            dir,
            remote: 0,
        };
        let g = gauges(vec![
            (k(1, 80, CW_ENTERED), 40),
            (k(1, 80, CW_LEFT), 5),
            (k(1, 81, CW_ENTERED), 3),
            (k(1, 81, CW_LEFT), 3),
            (k(2, 80, CW_LEFT), 2),
        ]);
        assert_eq!(g.into_iter().collect::<Vec<_>>(), vec![((1, 80), 35)]);
    }

    #[test]
    fn reads_close_wait_inodes_of_a_port_from_the_tcp_table() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 020F4D0A:176C 010F4D0A:A1B2 08 00000000:00000001 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 0 10 -1
   1: 020F4D0A:176C 010F4D0A:A1B3 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 20 4 0 10 -1
   2: 020F4D0A:176D 010F4D0A:A1B4 08 00000000:00000000 00:00000000 00000000     0        0 4244 1 0000000000000000 20 4 0 10 -1
";
        assert_eq!(close_wait_inodes(t, 0x176C), vec![4242]);
        assert!(close_wait_inodes(t, 80).is_empty());
    }

    #[test]
    fn finds_the_process_that_holds_a_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap();
        let ino = socket_inode(&link.to_string_lossy()).unwrap();
        let h = holders(&[ino]);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0].pid, std::process::id());
        assert_eq!(h[0].sockets, 1);
        assert!(holders(&[]).is_empty());
    }
}
