//! The `sockopt_failfast` sock_ops program: attached to the cgroup v2 root with a bpf_link
//! (cgroup links are multi-attach: other tools' sock_ops programs keep running), and its
//! policy map.
//!
//! The link belongs to guardian's file descriptor: it goes away when guardian exits, even on
//! SIGKILL, and with it every policy. If there is no cgroup v2 (or attaching fails) the daemon
//! runs without it and the `sockopt_failfast` remedy skips, saying why ([`unavailable`]).
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::{
    maps::{HashMap, Map, MapData, MapError},
    programs::{links::CgroupAttachMode, sock_ops::SockOpsLinkId, SockOps},
    Ebpf,
};
use guardian_common::failfast::{FailfastKey, FailfastPolicy};

/// The clock policies expire on, re-exported where the policies are.
pub use super::clock::monotonic_ns;

pub const PROGRAM: &str = "guardian_failfast";
pub const MAP: &str = "FAILFAST";

#[derive(Debug, thiserror::Error)]
pub enum SockopsError {
    #[error("no cgroup v2 mount found (looked at /proc/self/mountinfo); sock_ops programs attach to a cgroup v2")]
    NoCgroup2,
    #[error("opening the cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("program {PROGRAM} is missing from the eBPF object")]
    Missing,
    #[error("loading or attaching {PROGRAM} (sock_ops) to {path}: {source}")]
    Attach {
        path: PathBuf,
        #[source]
        source: aya::programs::ProgramError,
    },
}

pub struct Attachment {
    pub cgroup: PathBuf,
    link: SockOpsLinkId,
}

/// Why the sock_ops program is not attached in this process: None when it is, or when this
/// process never tried (unit tests, `guardian rollback`).
static STATUS: Mutex<Option<String>> = Mutex::new(None);

/// Records the outcome of attaching, for [`unavailable`].
pub fn set_status(r: Result<(), String>) {
    *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = r.err();
}

/// Why the sock_ops program is not available in this process, if it is not.
pub fn unavailable() -> Option<String> {
    STATUS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The cgroup v2 mount: `/sys/fs/cgroup` when it is one, else the first cgroup2 mount
/// (`/sys/fs/cgroup/unified` on hybrid systems).
pub fn find_cgroup2() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgroup2_in(&info)
}

fn cgroup2_in(mountinfo: &str) -> Option<PathBuf> {
    // `36 35 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw`: mount point is field 5,
    // the filesystem type follows the ` - ` separator.
    let mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            if post.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            pre.split_whitespace().nth(4).map(PathBuf::from)
        })
        .collect();
    let root = Path::new("/sys/fs/cgroup");
    mounts
        .iter()
        .find(|p| *p == root)
        .or_else(|| mounts.first())
        .cloned()
}

/// Loads the program and attaches it to `cgroup` (None: the cgroup v2 mount).
pub fn attach(ebpf: &mut Ebpf, cgroup: Option<&Path>) -> Result<Attachment, SockopsError> {
    let path = match cgroup {
        Some(p) => p.to_path_buf(),
        None => find_cgroup2().ok_or(SockopsError::NoCgroup2)?,
    };
    let err = |source| SockopsError::Attach {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(|source| SockopsError::Cgroup {
        path: path.clone(),
        source,
    })?;
    let prog: &mut SockOps = ebpf
        .program_mut(PROGRAM)
        .ok_or(SockopsError::Missing)?
        .try_into()
        .map_err(err)?;
    prog.load().map_err(err)?;
    // A cgroup bpf_link takes no attach flags (the kernel refuses any with EINVAL) and is
    // always multi-attach: other programs on the cgroup keep running beside it.
    let link = prog.attach(&file, CgroupAttachMode::Single).map_err(err)?;
    Ok(Attachment { cgroup: path, link })
}

pub fn detach(ebpf: &mut Ebpf, a: Attachment) -> Result<(), aya::programs::ProgramError> {
    let prog: &mut SockOps = ebpf
        .program_mut(PROGRAM)
        .ok_or(aya::programs::ProgramError::NotLoaded)?
        .try_into()?;
    prog.detach(a.link)
}

/// The cookie `bpf_get_netns_cookie()` returns for sockets of the namespace at `ns` (None: the
/// caller's), read with `getsockopt(SO_NETNS_COOKIE)` on a socket opened inside it.
pub fn netns_cookie(ns: Option<&Path>) -> std::io::Result<u64> {
    crate::netns::within(ns, || {
        // SAFETY: plain socket/getsockopt/close on a descriptor we own.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut v: u64 = 0;
            let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
            let r = libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_NETNS_COOKIE,
                (&mut v as *mut u64).cast(),
                &mut len,
            );
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            if r != 0 {
                return Err(e);
            }
            Ok(v)
        }
    })
}

/// The map key of a destination in a namespace.
pub fn key(netns_cookie: u64, addr: IpAddr, port: u16) -> FailfastKey {
    let (family, addr) = super::addr::family_addr(addr);
    FailfastKey {
        netns_cookie,
        port,
        family,
        addr,
        ..Default::default()
    }
}

/// The policy map.
pub struct FailfastMap {
    map: HashMap<MapData, FailfastKey, FailfastPolicy>,
}

impl FailfastMap {
    pub fn new(map: Map) -> Result<Self, MapError> {
        Ok(FailfastMap {
            map: HashMap::try_from(map)?,
        })
    }

    pub fn insert(&mut self, k: &FailfastKey, p: &FailfastPolicy) -> Result<(), MapError> {
        self.map.insert(k, p, 0)
    }

    /// Removes a policy; Ok(false) when there was none.
    pub fn remove(&mut self, k: &FailfastKey) -> Result<bool, MapError> {
        match self.map.remove(k) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub fn get(&self, k: &FailfastKey) -> Result<Option<FailfastPolicy>, MapError> {
        match self.map.get(k, 0) {
            Ok(p) => Ok(Some(p)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn len(&self) -> usize {
        self.map.keys().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_common::{AF_INET, AF_INET6};

    #[test]
    fn finds_the_cgroup2_mount() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                      32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "31 30 0:27 / /mnt/other rw - cgroup2 cgroup2 rw\n\
                       30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_in(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            cgroup2_in("30 25 0:26 / /sys/fs/cgroup rw - tmpfs x rw\n"),
            None
        );
    }

    #[test]
    fn keys_put_ipv4_first_and_keep_the_port_in_host_order() {
        let k = key(7, "10.77.110.2".parse().unwrap(), 5110);
        assert_eq!(k.family, AF_INET);
        assert_eq!(k.port, 5110);
        assert_eq!(&k.addr[..4], &[10, 77, 110, 2]);
        assert!(k.addr[4..].iter().all(|&b| b == 0));
        let k6 = key(7, "fd00::2".parse().unwrap(), 80);
        assert_eq!(k6.family, AF_INET6);
        assert_eq!(k6.addr[0], 0xfd);
        assert_eq!(k6.addr[15], 2);
    }

    #[test]
    fn own_netns_cookie_is_readable() {
        // Any process may read its own namespace's cookie (Linux >= 5.14).
        let a = netns_cookie(None).unwrap();
        assert_eq!(a, netns_cookie(None).unwrap());
        assert!(monotonic_ns() > 0);
    }
}
