//! bind(2) failing because the port is taken, seen without syscall tracepoints.
//!
//! Any `syscalls:` tracepoint, even one for a syscall nobody makes, puts every syscall of every
//! task on the kernel's slow path (`SYSCALL_WORK_SYSCALL_TRACEPOINT`). On a busy server that
//! costs more than everything else guardian runs (docs/benchmarks.md). So binds are watched by
//! cgroup programs on the cgroup v2 root instead, which run only inside bind(2):
//!
//! - `bind4`/`bind6` run before the kernel takes the port. An attempt whose failure can only
//!   mean EADDRINUSE is remembered per socket (its cookie) with the binder's ids: a socket
//!   already holds the address and port (a TCP listener or a bound UDP socket, found by the
//!   kernel's own socket lookup), or the address is the wildcard and the port is neither 0 nor
//!   privileged (after this hook a wildcard bind can fail only on a taken port). A specific
//!   address with no such holder and an unprivileged port is remembered too, marked for the
//!   daemon to check that the address is local (else the failure was EADDRNOTAVAIL).
//! - `post_bind4`/`post_bind6` run once the port is the socket's: the attempt succeeded.
//! - What is still remembered when the same socket binds again, or when it is released, failed:
//!   then, and only then, the `bind_conflict` record is written, with the binder's ids.
//!
//! So a failed bind is reported when its socket binds again or closes, which is at once for
//! the usual servers (they exit or retry); the syscall-tracepoint path (`syscalls.rs`) is the
//! fallback on kernels that refuse these programs. Neither hook sees bind's return value: a
//! wildcard bind that another cgroup program refuses (EPERM, systemd's `SocketBindDeny=`) is
//! taken for a conflict (port_conflict's doc.md).
use aya_ebpf::{
    bindings::{bpf_sock, bpf_sock_addr, bpf_sock_tuple},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_socket_cookie, bpf_ktime_get_ns,
        bpf_sk_lookup_tcp, bpf_sk_lookup_udp, bpf_sk_release,
    },
    macros::{cgroup_sock, cgroup_sock_addr},
    programs::{SockAddrContext, SockContext},
    EbpfContext,
};
use core::ptr::read_volatile;

use guardian_common::{SyscallEvent, AF_INET, AF_INET6, EV_BIND_CONFLICT};

use crate::{
    kernel::{current_netns, global},
    maps::{ns_add, ringbuf_lost, BIND_PENDING, EVENTS, OFFSETS},
};

const EADDRINUSE: i32 = 98;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
/// `BPF_F_CURRENT_NETNS`: look the socket up in the binding socket's own namespace.
const CURRENT_NETNS: u64 = u64::MAX;
/// Ports below this need CAP_NET_BIND_SERVICE (the default of
/// `net.ipv4.ip_unprivileged_port_start`): a failed wildcard bind there may be EACCES.
const PRIVILEGED: u16 = 1024;

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    unsafe { attempt(&ctx, AF_INET) };
    1
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    unsafe { attempt(&ctx, AF_INET6) };
    1
}

#[cgroup_sock(post_bind4)]
pub fn bound4(ctx: SockContext) -> i32 {
    bound(&ctx);
    1
}

#[cgroup_sock(post_bind6)]
pub fn bound6(ctx: SockContext) -> i32 {
    bound(&ctx);
    1
}

#[cgroup_sock(sock_release)]
pub fn bind_release(ctx: SockContext) -> i32 {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    failed(cookie);
    1
}

fn bound(ctx: &SockContext) {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let _ = BIND_PENDING.remove(&cookie);
}

/// The remembered attempt of socket `cookie`, if any, failed: report it.
#[inline(always)]
fn failed(cookie: u64) {
    let Some(ev) = (unsafe { BIND_PENDING.get(&cookie).copied() }) else {
        return;
    };
    let _ = BIND_PENDING.remove(&cookie);
    if ev.ret != 0 {
        ns_add(ev.netns, |c| c.bind_eaddrinuse += 1);
    }
    match EVENTS.reserve::<SyscallEvent>(0) {
        Some(mut entry) => {
            entry.write(ev);
            entry.submit(0);
        }
        None => ringbuf_lost(),
    }
}

unsafe fn attempt(ctx: &SockAddrContext, family: u16) {
    let a: &bpf_sock_addr = unsafe { &*ctx.sock_addr };
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // A second bind on the same socket: its earlier attempt (if remembered) failed.
    failed(cookie);
    let port = u16::from_be(a.user_port as u16);
    if port == 0 {
        // The kernel picks the port: nothing to conflict with (its exhaustion is not a port
        // conflict), and with IP_BIND_ADDRESS_NO_PORT no post_bind follows a success.
        return;
    }
    let sk: *mut bpf_sock = unsafe { a.__bindgen_anon_1.sk };
    if unsafe { (*sk).src_port } != 0 {
        // Already bound: this bind fails with EINVAL, not on the port.
        return;
    }
    let mut addr = [0u8; 16];
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    // One load per context field at a constant offset: the verifier refuses a load through a
    // context pointer moved by an offset, which copying the array as a whole compiles to.
    let size = if family == AF_INET {
        let ip = unsafe { read_volatile(&a.user_ip4) };
        addr[..4].copy_from_slice(&ip.to_ne_bytes());
        tuple.__bindgen_anon_1.ipv4.daddr = ip;
        tuple.__bindgen_anon_1.ipv4.dport = a.user_port as u16;
        12
    } else {
        let ip = unsafe {
            [
                read_volatile(&a.user_ip6[0]),
                read_volatile(&a.user_ip6[1]),
                read_volatile(&a.user_ip6[2]),
                read_volatile(&a.user_ip6[3]),
            ]
        };
        for (i, w) in ip.iter().enumerate() {
            addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        tuple.__bindgen_anon_1.ipv6.daddr = ip;
        tuple.__bindgen_anon_1.ipv6.dport = a.user_port as u16;
        36
    };
    let wildcard = addr == [0u8; 16];
    let held = unsafe { holder(ctx, &mut tuple, size, a.type_) };
    if !held && port < PRIVILEGED {
        // It may fail for want of CAP_NET_BIND_SERVICE: not a conflict anyone can name.
        return;
    }
    // A specific address with no listener or bound UDP socket on it: the port may be held by
    // a socket in another state (an orphan in FIN_WAIT2, TIME_WAIT, a client), or the address
    // may not be this host's (EADDRNOTAVAIL). ret 0 asks the daemon to check the address is
    // local before it reports the failure (source/bind_check.rs); the kernel does not count it.
    let certain = held || wildcard;
    let o = global(&OFFSETS);
    let id = bpf_get_current_pid_tgid();
    let ev = SyscallEvent {
        kind: EV_BIND_CONFLICT,
        netns: current_netns(&o),
        tgid: (id >> 32) as u32,
        pid: id as u32,
        ret: if certain { -EADDRINUSE } else { 0 },
        family,
        port,
        addr,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    };
    let _ = BIND_PENDING.insert(&cookie, &ev, 0);
}

/// Whether a socket of the same type already receives on the address and port: a TCP listener
/// (or, for the wildcard, one on the wildcard) or a bound UDP socket.
#[inline(always)]
unsafe fn holder(ctx: &SockAddrContext, tuple: &mut bpf_sock_tuple, size: u32, ty: u32) -> bool {
    let sk = unsafe {
        match ty {
            SOCK_STREAM => bpf_sk_lookup_tcp(ctx.as_ptr(), tuple, size, CURRENT_NETNS, 0),
            SOCK_DGRAM => bpf_sk_lookup_udp(ctx.as_ptr(), tuple, size, CURRENT_NETNS, 0),
            _ => return false,
        }
    };
    if sk.is_null() {
        return false;
    }
    unsafe { bpf_sk_release(sk.cast()) };
    true
}
