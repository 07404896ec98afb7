//! The daemon's half of a failed bind the kernel could not classify (guardian-ebpf/src/binds.rs,
//! `ret` 0): a bind to a specific address on an unprivileged port, where no listener or bound
//! UDP socket held the address. It failed either because a socket in another state holds the
//! port (an orphan in FIN_WAIT2 after a server's restart, TIME_WAIT, a client), which is a port
//! conflict, or because the address is not this namespace's (EADDRNOTAVAIL: a VIP not yet
//! moved here), which is not. The kernel's own rule tells them apart: a socket bound to the
//! address and port 0 in that namespace (a probe: UDP, closed at once) fails with
//! EADDRNOTAVAIL exactly when the address is not local (or `ip_nonlocal_bind` would have let
//! the first bind through). The probe runs on a short-lived thread inside that namespace
//! (`netns::within`), which the ring buffer consumer waits for: a fraction of a millisecond, at
//! most once a second per (namespace, address).
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guardian_common::SyscallEvent;

use super::decode;

/// How long an answer is reused: a bind retried in a loop asks once per second, not per call.
const TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct BindCheck {
    /// (netns, address) → (local, when it was asked).
    cache: HashMap<(u32, IpAddr), (bool, Instant)>,
}

impl BindCheck {
    /// Whether the failed bind `ev` was a port conflict: its address is local in its namespace.
    /// When the namespace cannot be entered any more (its last process exited and nothing
    /// pins it), the failure is reported: a conflict is the likelier cause on a port ≥ 1024.
    pub fn is_conflict(&mut self, ev: &SyscallEvent, now: Instant) -> bool {
        let Some(ip) = decode::addr(ev.family, &ev.addr) else {
            return false;
        };
        if let Some((local, at)) = self.cache.get(&(ev.netns, ip)) {
            if now.duration_since(*at) < TTL {
                return *local;
            }
        }
        let local = match namespace_of(ev) {
            Some(ns) => crate::netns::within(Some(&ns), move || Ok(is_local(ip))).unwrap_or(true),
            None => true,
        };
        if self.cache.len() > 4096 {
            self.cache
                .retain(|_, (_, at)| now.duration_since(*at) < TTL);
        }
        self.cache.insert((ev.netns, ip), (local, now));
        local
    }
}

/// The address is one a socket may bind in the calling thread's namespace.
fn is_local(ip: IpAddr) -> bool {
    match UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
    }
}

/// A path to the namespace of `ev`: the binder's (`/proc/TGID/ns/net`, if it is still that
/// namespace), the daemon's own, or a named one (`/run/netns/*`) with the same inode.
fn namespace_of(ev: &SyscallEvent) -> Option<PathBuf> {
    let same = |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.ino() as u32 == ev.netns);
    let binder = PathBuf::from(format!("/proc/{}/ns/net", ev.tgid));
    let daemon = PathBuf::from("/proc/self/ns/net");
    if let Some(p) = [binder, daemon].into_iter().find(same) {
        return Some(p);
    }
    std::fs::read_dir("/run/netns")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_of_this_namespace_is_local_and_a_foreign_one_is_not() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        // TEST-NET-3: never assigned to a test machine's interfaces.
        assert!(!is_local("203.0.113.77".parse().unwrap()));
    }

    #[test]
    fn the_answer_is_reused_within_a_second() {
        let mut c = BindCheck::default();
        let ev = SyscallEvent {
            netns: 7,
            tgid: u32::MAX,
            family: guardian_common::AF_INET,
            addr: [203, 0, 113, 77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        let t = Instant::now();
        // No such process nor named namespace: reported.
        assert!(c.is_conflict(&ev, t));
        c.cache
            .insert((7, "203.0.113.77".parse().unwrap()), (false, t));
        assert!(!c.is_conflict(&ev, t + Duration::from_millis(500)));
        assert!(c.is_conflict(&ev, t + Duration::from_secs(2)));
    }
}
