//! A link set up or down from inside the namespace with one `SIOCSIFFLAGS`, timed at the call.
//!
//! Written by hand (a dozen lines of `ioctl`) rather than through `ip`: `nsenter` plus `ip` are
//! two execs, a few ms on a host and ~150 ms in a TCG VM, and a latency bound measured from
//! before the command would charge them to the daemon.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::SystemTime;

use nix::libc;

use crate::{Error, NetNs, Result};

impl NetNs {
    /// Sets `iface` administratively up or down from a thread inside the namespace; returns the
    /// time read just before the call that changes it (the kernel's link notification follows
    /// that call).
    pub fn link_set_timed(&self, iface: &str, up: bool) -> Result<SystemTime> {
        let name = iface.to_owned();
        self.within("gt-link-set", move || set_flags(&name, up))?
            .map_err(|source| Error::Io {
                what: format!(
                    "setting {iface} {} in {}",
                    if up { "up" } else { "down" },
                    self.name()
                ),
                source,
            })
    }
}

fn set_flags(iface: &str, up: bool) -> io::Result<SystemTime> {
    let bytes = iface.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{iface:?} is not an interface name"),
        ));
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads a NUL-terminated name from `req` and writes its flags member.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let up_bit = libc::IFF_UP as libc::c_short;
    req.ifr_ifru.ifru_flags = if up { flags | up_bit } else { flags & !up_bit };
    let at = SystemTime::now();
    // SAFETY: SIOCSIFFLAGS reads the name and the flags member of `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(at)
}
