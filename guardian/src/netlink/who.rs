//! Who made a link or route change: the netlink port id a notification carries (`nlmsg_pid`:
//! 0 for the kernel, otherwise the port of the socket whose request caused it), resolved to a
//! process through the namespace's netlink socket table (NETLINK_SOCK_DIAG: port id → socket
//! inode) and `/proc/*/fd` (inode → pid, comm).
//!
//! Written by hand: `netlink-packet-sock-diag` decodes inet and unix sockets only, and the
//! request and its reply are two fixed C structs (`linux/netlink_diag.h`).
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The sender of a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Who {
    /// The notification's netlink port id (`nlmsg_pid`); 0: the kernel itself.
    pub portid: u32,
    /// The process whose socket has that port id. When the socket was gone (a short-lived
    /// `ip` exits before the notification is read), a positive port id is reported as the pid:
    /// the kernel binds a process's first netlink socket to its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The process's name (`/proc/PID/comm`), when it was still there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The sending socket was gone when guardian looked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exited: bool,
    /// The change is guardian's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guardian: bool,
    /// Why the kernel made the change, when guardian knows it (`link down`); for a process,
    /// what it did that made the change (`removed address 10.0.0.5/24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl Who {
    /// The kernel, for this reason.
    pub fn kernel(cause: &str) -> Who {
        Who {
            cause: Some(cause.to_string()),
            ..Who::default()
        }
    }

    /// An unresolved sender (what a notification alone says).
    pub fn port(portid: u32) -> Who {
        Who {
            portid,
            ..Who::default()
        }
    }

    /// The kernel made the change (not a request of a process).
    pub fn is_kernel(&self) -> bool {
        self.portid == 0
    }

    /// A process other than guardian asked for the change: a deliberate change.
    pub fn is_process(&self) -> bool {
        !self.is_kernel() && !self.guardian
    }
}

impl fmt::Display for Who {
    /// `the kernel`, `the kernel (link down)`, `pid 812 (bird)`, `pid 4242 (exited)`,
    /// `netlink port 2147483000 (exited)`, `guardian (pid 77)`,
    /// `pid 4242 (ip), which removed address 10.0.0.5/24`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_kernel() {
            f.write_str("the kernel")?;
            if let Some(c) = &self.cause {
                write!(f, " ({c})")?;
            }
            return Ok(());
        }
        if self.guardian {
            return write!(f, "guardian (pid {})", self.pid.unwrap_or(0));
        }
        match (self.pid, &self.comm) {
            (Some(pid), Some(comm)) => write!(f, "pid {pid} ({comm})"),
            (Some(pid), None) if self.exited => write!(f, "pid {pid} (exited)"),
            (Some(pid), None) => write!(f, "pid {pid}"),
            (None, _) if self.exited => write!(f, "netlink port {} (exited)", self.portid),
            (None, _) => write!(f, "netlink port {}", self.portid),
        }?;
        // What the process did that made the change (`removed address 10.0.0.5/24`).
        match &self.cause {
            Some(c) => write!(f, ", which {c}"),
            None => Ok(()),
        }
    }
}

/// `by` as words for a link change. A link notification's port id is 0 whoever asked: the
/// kernel sends RTM_NEWLINK for `ip link set DEV down` from its own context (measured on 6.18:
/// `"by":{"portid":0}` for the test's `ip link set`). So port 0 names the kernel only for what
/// the kernel does by itself (carrier lost, the link still administratively up); an
/// administrative down or a removal with port 0 was asked by someone the notification does
/// not name, and saying "the kernel" would blame the wrong party.
pub fn link_text(by: &Who, admin_up: bool, removed: bool) -> String {
    if by.is_kernel() && (!admin_up || removed) {
        "a process the kernel's link notification does not name".to_string()
    } else {
        by.to_string()
    }
}

const NETLINK_SOCK_DIAG: isize = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NETLINK_ROUTE: u8 = 0;
/// How long a resolved port id is trusted without a new look at the socket table.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// `struct nlmsghdr` + `struct netlink_diag_req` for a dump of the namespace's NETLINK_ROUTE
/// sockets.
fn diag_request() -> Vec<u8> {
    let mut b = Vec::with_capacity(36);
    b.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len: header 16 + request 20
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // seq
    b.extend_from_slice(&0u32.to_ne_bytes()); // pid
    b.push(libc::AF_NETLINK as u8); // sdiag_family
    b.push(NETLINK_ROUTE); // sdiag_protocol
    b.extend_from_slice(&[0, 0]); // pad
    b.extend_from_slice(&0u32.to_ne_bytes()); // ndiag_ino
    b.extend_from_slice(&0u32.to_ne_bytes()); // ndiag_show
    b.extend_from_slice(&[0u8; 8]); // ndiag_cookie
    b
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Parses one datagram of replies into (port id, inode) pairs; `done` when it held
/// NLMSG_DONE or an error.
fn parse_replies(buf: &[u8], out: &mut Vec<(u32, u32)>) -> bool {
    let mut off = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, off), u16_at(buf, off + 4)) {
        let len = len as usize;
        if len < 16 || off + len > buf.len() {
            return true;
        }
        match kind {
            NLMSG_DONE | NLMSG_ERROR => return true,
            SOCK_DIAG_BY_FAMILY => {
                // netlink_diag_msg: family, type, protocol, state (u8 each), portid,
                // dst_portid, dst_group, ino (u32 each)
                let m = &buf[off + 16..off + len];
                if let (Some(portid), Some(ino)) = (u32_at(m, 4), u32_at(m, 16)) {
                    out.push((portid, ino));
                }
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    false
}

/// The NETLINK_ROUTE sockets of the current namespace: (port id, inode).
fn route_sockets() -> std::io::Result<Vec<(u32, u32)>> {
    let mut s = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    s.bind_auto()?;
    s.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    // A bounded wait: the engine must never block on this table.
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: a valid socket and a timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    s.send(&diag_request(), 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for _ in 0..1024 {
        let n = s.recv(&mut &mut buf[..], 0)?;
        if n == 0 || parse_replies(&buf[..n], &mut out) {
            break;
        }
    }
    Ok(out)
}

fn holds(pid: u32, inode: u32) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
    })
}

/// The process holding this socket inode: the port id's pid first (the usual case), then a
/// scan of `/proc`.
fn holder(portid: u32, inode: u32) -> Option<u32> {
    let guess = i32::try_from(portid).ok().filter(|p| *p > 0);
    if let Some(p) = guess {
        if holds(p as u32, inode) {
            return Some(p as u32);
        }
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| holds(*pid, inode))
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// Resolves port ids to processes, with a short cache (a control plane sends bursts).
#[derive(Debug, Default)]
pub struct Resolver {
    cache: HashMap<u32, (Instant, Who)>,
}

impl Resolver {
    /// Fills `pid`, `comm`, `exited` and `guardian` of a sender; the kernel is left as is.
    pub fn resolve(&mut self, who: &mut Who) {
        if who.is_kernel() || who.pid.is_some() || who.exited {
            return;
        }
        let now = Instant::now();
        if let Some((at, w)) = self.cache.get(&who.portid) {
            if now.duration_since(*at) < CACHE_FOR {
                *who = Who {
                    cause: who.cause.take(),
                    ..w.clone()
                };
                return;
            }
        }
        let inode = match route_sockets() {
            Ok(socks) => socks.iter().find(|(p, _)| *p == who.portid).map(|s| s.1),
            Err(e) => {
                tracing::debug!("cannot read the netlink socket table: {e}");
                None
            }
        };
        match inode.and_then(|i| holder(who.portid, i)) {
            Some(pid) => {
                who.pid = Some(pid);
                who.comm = comm(pid);
                who.guardian = pid == std::process::id();
                self.cache
                    .retain(|_, (at, _)| now.duration_since(*at) < CACHE_FOR);
                self.cache.insert(who.portid, (now, who.clone()));
            }
            None => {
                who.exited = true;
                who.pid = i32::try_from(who.portid)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(|p| p as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_prints_as_a_sentence_part() {
        assert_eq!(Who::port(0).to_string(), "the kernel");
        assert_eq!(
            Who::kernel("link down").to_string(),
            "the kernel (link down)"
        );
        let bird = Who {
            portid: 812,
            pid: Some(812),
            comm: Some("bird".into()),
            ..Who::default()
        };
        assert_eq!(bird.to_string(), "pid 812 (bird)");
        assert!(bird.is_process());
        let ip = Who {
            portid: 4242,
            pid: Some(4242),
            exited: true,
            ..Who::default()
        };
        assert_eq!(ip.to_string(), "pid 4242 (exited)");
        let rover = Who {
            portid: 0x9000_0001,
            exited: true,
            ..Who::default()
        };
        assert_eq!(rover.to_string(), "netlink port 2415919105 (exited)");
        let me = Who {
            portid: 77,
            pid: Some(77),
            guardian: true,
            ..Who::default()
        };
        assert_eq!(me.to_string(), "guardian (pid 77)");
        assert!(!me.is_process() && !me.is_kernel());
        let v = serde_json::to_value(&ip).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"portid": 4242, "pid": 4242, "exited": true})
        );
        assert_eq!(serde_json::from_value::<Who>(v).unwrap(), ip);
    }

    #[test]
    fn replies_parse_into_ports_and_inodes() {
        let mut buf = Vec::new();
        for (portid, ino) in [(812u32, 5555u32), (0, 1)] {
            buf.extend_from_slice(&(16u32 + 24).to_ne_bytes());
            buf.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
            buf.extend_from_slice(&[0u8; 10]);
            buf.extend_from_slice(&[16, 3, 0, 7]);
            buf.extend_from_slice(&portid.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&ino.to_ne_bytes());
            buf.extend_from_slice(&[0u8; 4]);
        }
        let mut out = Vec::new();
        assert!(!parse_replies(&buf, &mut out));
        assert_eq!(out, [(812, 5555), (0, 1)]);
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0u8; 14]);
        assert!(parse_replies(&done, &mut out));
        assert_eq!(diag_request().len(), 36);
    }

    #[test]
    fn a_live_socket_resolves_to_this_process() {
        // Our own netlink socket: the sock_diag table and /proc agree it is ours.
        let mut s = netlink_sys::Socket::new(0).unwrap();
        let addr = s.bind_auto().unwrap();
        let mut who = Who::port(addr.port_number());
        let mut r = Resolver::default();
        r.resolve(&mut who);
        if route_sockets().is_err() {
            return; // no NETLINK_SOCK_DIAG here (kernel without netlink_diag)
        }
        assert_eq!(who.pid, Some(std::process::id()), "{who:?}");
        assert!(who.guardian && !who.exited);
        // and a port nobody holds is "exited"
        let mut gone = Who::port(0x7fff_fff0);
        r.resolve(&mut gone);
        assert!(gone.exited);
        assert_eq!(gone.pid, Some(0x7fff_fff0));
    }

    #[test]
    fn a_link_set_down_is_not_blamed_on_the_kernel() {
        let zero = Who::port(0);
        assert_eq!(
            link_text(&zero, false, false),
            "a process the kernel's link notification does not name"
        );
        assert_eq!(
            link_text(&zero, true, true),
            "a process the kernel's link notification does not name"
        );
        // Carrier lost with the link administratively up: the kernel's own doing.
        assert_eq!(link_text(&zero, true, false), "the kernel");
        let ip = Who {
            portid: 4242,
            pid: Some(4242),
            comm: Some("ip".into()),
            ..Who::default()
        };
        assert_eq!(link_text(&ip, false, false), "pid 4242 (ip)");
    }
}
