//! `bench-helper blast`: sends one frame over and over out of an interface with an AF_PACKET
//! socket and sendmmsg(2), 64 frames a call, until `max_packets` or `max` time. This kernel
//! has no pktgen (CONFIG_NET_PKTGEN is not set), so this is the packet generator of the XDP
//! benchmark. Hand-written on libc: it is a single syscall loop, no crate does less.
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const BATCH: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
pub struct Blast {
    pub sent: u64,
    pub secs: f64,
}

fn last_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

pub fn blast(iface: &str, frame: &[u8], max_packets: u64, max: Duration) -> Result<Blast> {
    let name = std::ffi::CString::new(iface).context("interface name")?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface {iface} in this namespace");
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(last_error("socket(AF_PACKET)"));
    }
    let result = (|| {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: sll is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(last_error("bind(AF_PACKET)"));
        }
        let mut iov = libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        // SAFETY: mmsghdr is plain data; every header points at the one iovec above.
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
            .map(|_| {
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = &mut iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < max_packets && start.elapsed() < max {
            // SAFETY: msgs holds BATCH valid headers pointing at live buffers.
            let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                // A full device queue: try again (counted by the receiver's drop counters).
                if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN)) {
                    continue;
                }
                bail!("sendmmsg: {e}");
            }
            sent += n as u64;
        }
        Ok(Blast {
            sent,
            secs: start.elapsed().as_secs_f64(),
        })
    })();
    // SAFETY: our own fd, closed once.
    unsafe { libc::close(fd) };
    result
}
