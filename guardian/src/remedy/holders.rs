//! Who holds a TCP port: the sockets bound to it (INET_DIAG, every state, in the fault's
//! namespace) and the processes that have those sockets open.
//!
//! Socket → process is a scan of `/proc/PID/fd/*` for links reading `socket:[INODE]` (what
//! `ss -p` and `fuser` do). Done by hand rather than with the `procfs` crate: it is one
//! `read_dir` and one `readlink` per descriptor, and the crate would bring a large dependency
//! for it. Socket inodes are global (sockfs), so one scan covers every network namespace; it
//! sees the processes of the daemon's PID namespace. A socket with inode 0 has no file at all
//! (TIME_WAIT, an orphaned FIN_WAIT/CLOSING/LAST_ACK socket, a connection still in a
//! listener's accept queue): no process can own it.
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6},
    inet::{InetResponseHeader, StateFlags},
};
use serde::{Deserialize, Serialize};

use crate::netns;

/// One TCP socket, exactly enough to find it again (SOCK_DESTROY looks it up by its 4-tuple,
/// interface and cookie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRef {
    /// The namespace it lives in (None: the daemon's).
    pub netns: Option<u32>,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub ifindex: u32,
    /// The kernel's socket cookie: unique for the socket's lifetime, never reused.
    pub cookie: u64,
    /// `fin-wait-2`, `time-wait`, `listen`, ... (as `ss` names them).
    pub state: String,
    pub uid: u32,
    /// Socket inode; 0 when no file refers to the socket.
    pub inode: u32,
}

impl SocketRef {
    pub fn from_diag(netns: Option<u32>, h: &InetResponseHeader) -> Self {
        let id = &h.socket_id;
        SocketRef {
            netns,
            src: id.source_address,
            sport: id.source_port,
            dst: id.destination_address,
            dport: id.destination_port,
            ifindex: id.interface_id,
            cookie: u64::from_ne_bytes(id.cookie),
            state: state_name(h.state).to_string(),
            uid: h.uid,
            inode: h.inode,
        }
    }

    pub fn is_listener(&self) -> bool {
        self.state == "listen"
    }
}

impl fmt::Display for SocketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} src {}:{} dst {}:{} cookie {}",
            self.state, self.src, self.sport, self.dst, self.dport, self.cookie
        )
    }
}

/// TCP state names as `ss` prints them.
pub fn state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        4 => "fin-wait-1",
        5 => "fin-wait-2",
        6 => "time-wait",
        7 => "close",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        12 => "new-syn-recv",
        _ => "unknown",
    }
}

/// A process that has a socket open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
    /// Real uid of the process.
    pub uid: Option<u32>,
    /// The systemd unit its cgroup belongs to (`nginx.service`), if any.
    pub unit: Option<String>,
}

/// Every TCP socket (IPv4 and IPv6, every state) whose local port is `port`, in the namespace
/// entered through `ns` (None: the caller's); `netns` is recorded in each.
pub fn tcp_sockets(
    ns: Option<&Path>,
    netns: Option<u32>,
    port: u16,
) -> std::io::Result<Vec<SocketRef>> {
    netns::within(ns, move || {
        let socket = netns::diag_socket()?;
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            netns::dump_tcp(&socket, family, StateFlags::all(), |h| {
                if h.socket_id.source_port == port {
                    out.push(SocketRef::from_diag(netns, h));
                }
            })?;
        }
        Ok(out)
    })
}

/// The local ports of every listening TCP socket (IPv4 and IPv6) in the namespace entered
/// through `ns` (None: the caller's), sorted, without repeats.
pub fn listening_ports(ns: Option<&Path>) -> std::io::Result<Vec<u16>> {
    netns::within(ns, move || {
        let socket = netns::diag_socket()?;
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            netns::dump_tcp(&socket, family, StateFlags::LISTEN, |h| {
                out.push(h.socket_id.source_port);
            })?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    })
}

/// The path that enters namespace `netns` from the live system (None: the caller's own).
pub fn live_path(netns: Option<u32>) -> std::io::Result<Option<PathBuf>> {
    match netns {
        None => Ok(None),
        Some(n) if netns::current().ok() == Some(n) => Ok(None),
        Some(n) => netns::Index::new().path(n).map(Some).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("network namespace {n} no longer exists"),
            )
        }),
    }
}

/// The processes holding each of `inodes` open, by a scan of `/proc/*/fd`. Inodes nobody
/// holds are absent from the map.
pub fn owners(inodes: &[u32]) -> HashMap<u32, Vec<Owner>> {
    let mut out: HashMap<u32, Vec<Owner>> = HashMap::new();
    let wanted: Vec<u32> = inodes.iter().copied().filter(|&i| i != 0).collect();
    if wanted.is_empty() {
        return out;
    }
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
        let mut held: Vec<u32> = fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|l| socket_inode(&l.to_string_lossy()))
            .filter(|i| wanted.contains(i))
            .collect();
        held.sort_unstable();
        held.dedup();
        if held.is_empty() {
            continue;
        }
        let owner = process(pid, &p.path());
        for i in held {
            out.entry(i).or_default().push(owner.clone());
        }
    }
    out
}

fn process(pid: u32, dir: &Path) -> Owner {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    Owner {
        pid,
        comm: read("comm")
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default(),
        uid: read("status").and_then(|s| real_uid(&s)),
        unit: read("cgroup").and_then(|c| unit_of(&c)),
    }
}

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &str) -> Option<u32> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The real uid from `/proc/PID/status` (`Uid:\treal\teffective\t...`).
pub fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The systemd unit of a `/proc/PID/cgroup` (the innermost `.service`, `.scope` or `.socket`
/// component of the unified hierarchy's path, else of the first path that has one).
pub fn unit_of(cgroup: &str) -> Option<String> {
    let unit = |path: &str| {
        path.rsplit('/')
            .find(|c| c.ends_with(".service") || c.ends_with(".scope") || c.ends_with(".socket"))
            .map(str::to_string)
    };
    let paths: Vec<&str> = cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    let v2 = cgroup.lines().find_map(|l| l.strip_prefix("0::"));
    v2.and_then(unit)
        .or_else(|| paths.into_iter().find_map(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(real_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(1000));
        assert_eq!(
            unit_of("0::/system.slice/nginx.service\n").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of("0::/user.slice/user-0.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_of("12:pids:/system.slice/sshd.service\n1:name=systemd:/x\n").as_deref(),
            Some("sshd.service")
        );
        assert_eq!(unit_of("0::/\n"), None);
        assert_eq!(state_name(5), "fin-wait-2");
    }

    #[test]
    fn the_scan_finds_our_own_socket() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap();
        let ino = socket_inode(&link.to_string_lossy()).unwrap();
        let found = owners(&[ino, 0]);
        let me = &found[&ino];
        assert!(me.iter().any(|o| o.pid == std::process::id()), "{me:?}");
        assert_eq!(found.len(), 1);
    }
}
