//! Helpers for the `sockopt_failfast` scenarios: connects left in SYN_SENT, TCP socket
//! options, and the daemon's FAILFAST map read with bpftool.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

pub use crate::bpf_maps::{bpftool, daemon_map, entries};
use crate::flows::nft;
use crate::net::in_netns;
use crate::netns::{pair, Netns};

/// `per_uid` connects to `dst` by each of `uids` that the network times out (`dst` must drop
/// the SYNs): `TCP_USER_TIMEOUT` 1200 ms, so each ends with ETIMEDOUT ~1.2 s after its SYN,
/// after one SYN retransmission, the way `sockopt_failfast` wants its evidence. A uid other
/// than 0 runs on its own thread with that thread's credentials only (raw `setresuid`: the test
/// process keeps root; the thread, like any unprivileged user, has no capabilities). Returns
/// when every connect ended; panics unless all timed out.
pub fn timeout_connects(c: &Netns, dst: SocketAddr, uids: &[u32], per_uid: usize) -> SystemTime {
    let uids = uids.to_vec();
    in_netns(c, move || {
        let threads: Vec<_> = uids
            .into_iter()
            .map(|uid| {
                std::thread::spawn(move || {
                    if uid != 0 {
                        // SAFETY: changes this thread's credentials only.
                        let r = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
                        assert_eq!(r, 0, "setresuid {uid}");
                    }
                    let fds: Vec<i32> = (0..per_uid)
                        .map(|_| {
                            syn_sent_with(dst, |fd| set_tcp_opt(fd, libc::TCP_USER_TIMEOUT, 1200))
                        })
                        .collect();
                    fds.into_iter()
                        .map(|fd| {
                            let e = wait_connect(fd, Duration::from_secs(5));
                            unsafe { libc::close(fd) };
                            e
                        })
                        .collect::<Vec<i32>>()
                })
            })
            .collect();
        for t in threads {
            let errs = t.join().unwrap();
            assert!(
                errs.iter().all(|&e| e == libc::ETIMEDOUT),
                "every connect must time out: {errs:?}"
            );
        }
        SystemTime::now()
    })
    .join()
    .unwrap()
}

/// Waits up to `limit` for a nonblocking connect to end; its `SO_ERROR` (0: connected,
/// -1: still pending at `limit`).
pub fn wait_connect(fd: i32, limit: Duration) -> i32 {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll and getsockopt on a descriptor the caller owns.
    unsafe {
        if libc::poll(&mut p, 1, limit.as_millis() as i32) == 0 {
            return -1;
        }
        let (mut err, mut len) = (0i32, 4u32);
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut i32).cast(),
            &mut len,
        );
        err
    }
}

pub fn set_tcp_opt(fd: i32, opt: i32, v: i32) {
    // SAFETY: setsockopt from a local int.
    let r = unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, opt, (&v as *const i32).cast(), 4) };
    assert_eq!(r, 0, "setsockopt {opt}");
}

/// A nonblocking socket whose connect to `dst` is in progress.
pub fn syn_sent(dst: SocketAddr) -> i32 {
    syn_sent_with(dst, |_| {})
}

/// [`syn_sent`], with `setup` run on the socket before the connect.
pub fn syn_sent_with(dst: SocketAddr, setup: impl Fn(i32)) -> i32 {
    let SocketAddr::V4(a) = dst else {
        panic!("IPv4 only")
    };
    // SAFETY: plain socket calls on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        setup(fd);
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

/// The daemon's FAILFAST map id.
pub fn failfast_map(pid: u32) -> u32 {
    daemon_map(pid, "FAILFAST")
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

pub fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// A blocking socket with SO_REUSEADDR bound to `src`, connecting to `dst`: the errno.
pub fn reuse_connect(src: SocketAddrV4, dst: SocketAddrV4) -> (i32, i32) {
    let (s, d) = (sockaddr(src), sockaddr(dst));
    let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: plain socket calls on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let one: i32 = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const i32).cast(),
            4,
        );
        assert_eq!(
            libc::bind(fd, (&s as *const libc::sockaddr_in).cast(), len),
            0
        );
        let r = libc::connect(fd, (&d as *const libc::sockaddr_in).cast(), len);
        let e = if r == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        };
        (fd, e)
    }
}

/// C -- R -- D: a client, a router, a database. Routes both ways through R.
pub struct Routed {
    pub c: Netns,
    pub r: Netns,
    pub d: Netns,
    pub db: Ipv4Addr,
}

pub fn routed(tag: &str, s1: u8, s2: u8) -> Routed {
    let c = Netns::new(&format!("{tag}-c"));
    let r = Netns::new(&format!("{tag}-r"));
    let d = Netns::new(&format!("{tag}-d"));
    let v1 = pair(&c, &r, s1);
    let v2 = pair(&r, &d, s2);
    r.sysctl("net.ipv4.ip_forward", "1");
    c.run(&[
        "ip",
        "route",
        "add",
        &format!("10.77.{s2}.0/24"),
        "via",
        &v1.b_addr.to_string(),
    ]);
    d.run(&[
        "ip",
        "route",
        "add",
        &format!("10.77.{s1}.0/24"),
        "via",
        &v2.a_addr.to_string(),
    ]);
    Routed {
        c,
        r,
        d,
        db: v2.b_addr,
    }
}

/// Drops SYNs to `port` in `ns` (table `name`).
pub fn drop_syns(ns: &Netns, name: &str, port: u16) {
    nft(
        ns,
        &format!(
            "table inet {name} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  tcp dport {port} tcp flags & (syn | ack) == syn drop\n }}\n}}\n"
        ),
    );
}

/// Root's connect to `dst` (nonblocking, waited up to 9 s): (SO_ERROR, ms, TCP_SYNCNT right
/// after the SYN left, i.e. after sock_ops ran).
pub fn root_connect(dst: SocketAddr) -> (i32, u128, i32) {
    let t0 = Instant::now();
    let fd = syn_sent_with(dst, |_| {});
    let syncnt = tcp_opt(fd, libc::TCP_SYNCNT);
    let err = wait_connect(fd, Duration::from_secs(9));
    unsafe { libc::close(fd) };
    (err, t0.elapsed().as_millis(), syncnt)
}
