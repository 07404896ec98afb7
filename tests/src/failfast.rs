//! Helpers for the `sockopt_failfast` scenarios: connects left in SYN_SENT, TCP socket
//! options, and the daemon's FAILFAST map read with bpftool.
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::net::in_netns;
use crate::netns::Netns;

/// 25 connects to `dst` abandoned in SYN_SENT after 300 ms (failures the kernel counts).
pub fn abandon_connects(c: &Netns, dst: SocketAddr) -> SystemTime {
    in_netns(c, move || {
        let fds: Vec<i32> = (0..25).map(|_| syn_sent(dst)).collect();
        std::thread::sleep(Duration::from_millis(300));
        for fd in fds {
            unsafe { libc::close(fd) };
        }
        SystemTime::now()
    })
    .join()
    .unwrap()
}

/// A nonblocking socket whose connect to `dst` is in progress.
pub fn syn_sent(dst: SocketAddr) -> i32 {
    let SocketAddr::V4(a) = dst else {
        panic!("IPv4 only")
    };
    // SAFETY: plain socket calls on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&sa) as u32,
        );
        let e = std::io::Error::last_os_error();
        assert!(
            r < 0 && e.raw_os_error() == Some(libc::EINPROGRESS),
            "connect: {e}"
        );
        fd
    }
}

pub fn tcp_opt(fd: i32, opt: i32) -> i32 {
    let mut v: i32 = -1;
    let mut len = 4u32;
    // SAFETY: getsockopt into a local int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt {opt}");
    v
}

/// The daemon's FAILFAST map id, found through its file descriptors.
pub fn failfast_map(pid: u32) -> u32 {
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let info = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        if field("map_type:").as_deref() == Some("1")
            && field("key_size:").as_deref() == Some("32")
            && field("value_size:").as_deref() == Some("32")
        {
            let id: u32 = field("map_id:").unwrap().parse().unwrap();
            let show = bpftool(&["map", "show", "id", &id.to_string()]);
            if show["name"] == "FAILFAST" {
                return id;
            }
        }
    }
    panic!("no FAILFAST map among the daemon's descriptors");
}

pub fn bpftool(args: &[&str]) -> Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (key bytes, value bytes) of every policy.
pub fn entries(map: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = |v: &Value| -> Vec<u8> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
            .collect()
    };
    bpftool(&["map", "dump", "id", &map.to_string()])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
        .collect()
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// The netns cookie of the calling thread's namespace.
pub fn own_cookie() -> u64 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut v: u64 = 0;
    let mut len = 8u32;
    // SAFETY: getsockopt into a local u64.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut v as *mut u64).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    v
}
