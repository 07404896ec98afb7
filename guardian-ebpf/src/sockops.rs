//! `sockopt_failfast`: a sock_ops program (attached to the cgroup v2 root) that makes new
//! connects to a destination with a live policy in `FAILFAST` fail fast instead of hanging in
//! SYN_SENT for ~127 s.
//!
//! - `BPF_SOCK_OPS_TCP_CONNECT_CB` (an active connect, before the first SYN leaves): look up
//!   (netns cookie, family, port, address). An expired policy is deleted; a live one lowers
//!   `TCP_SYNCNT` and `TCP_USER_TIMEOUT` through `bpf_setsockopt` (both are sock_ops-legal:
//!   since Linux 6.0 `bpf_setsockopt(SOL_TCP)` goes through `do_tcp_setsockopt` for them), never
//!   raises them, and counts a hit. When it lowered the user timeout it saves the old value by
//!   socket cookie and sets `BPF_SOCK_OPS_STATE_CB_FLAG` on that socket only.
//! - `BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB` (always called): the handshake is over; a socket found
//!   in `FAILFAST_SAVED` gets its previous user timeout back, so an established connection is
//!   not held to the handshake's short timeout.
//! - `BPF_SOCK_OPS_STATE_CB` (only on sockets we marked): on CLOSE, forget the saved value.
use core::ptr::read_volatile;

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG,
        BPF_SOCK_OPS_TCP_CONNECT_CB, BPF_TCP_CLOSE,
    },
    helpers::{
        bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_getsockopt, bpf_ktime_get_ns,
        bpf_setsockopt,
    },
    macros::{map, sock_ops},
    maps::{HashMap, LruHashMap},
    programs::SockOpsContext,
};
use guardian_common::{
    failfast::{FailfastKey, FailfastPolicy, FailfastSaved},
    AF_INET, AF_INET6,
};

const SOL_TCP: i32 = 6;
const TCP_SYNCNT: i32 = 7;
const TCP_USER_TIMEOUT: i32 = 18;

/// Fail-fast policies, written by userspace (`sockopt_failfast` remedy).
#[map]
pub static FAILFAST: HashMap<FailfastKey, FailfastPolicy> = HashMap::with_max_entries(1024, 0);

/// Sockets whose user timeout the program lowered: socket cookie -> value to restore.
#[map]
pub static FAILFAST_SAVED: LruHashMap<u64, FailfastSaved> = LruHashMap::with_max_entries(16384, 0);

#[sock_ops]
pub fn guardian_failfast(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB => unsafe { on_connect(&ctx) },
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => unsafe { on_established(&ctx) },
        BPF_SOCK_OPS_STATE_CB => {
            if ctx.arg(1) == BPF_TCP_CLOSE {
                let cookie = unsafe { bpf_get_socket_cookie(ctx.ops.cast()) };
                let _ = FAILFAST_SAVED.remove(&cookie);
            }
        }
        _ => {}
    }
    1
}

fn key(ctx: &SockOpsContext) -> Option<FailfastKey> {
    // Every context field is read up front, each with its own load at a constant offset: the
    // verifier refuses a load through a ctx pointer the compiler moved (`ctx + off` in a
    // register), which is what branch-dependent reads turn into.
    let ops = ctx.ops;
    // SAFETY: `ops` is the program's context; these are plain loads of its fields.
    let (family, rp, ip4, ip6) = unsafe {
        (
            read_volatile(&(*ops).family),
            read_volatile(&(*ops).remote_port),
            read_volatile(&(*ops).remote_ip4),
            [
                read_volatile(&(*ops).remote_ip6[0]),
                read_volatile(&(*ops).remote_ip6[1]),
                read_volatile(&(*ops).remote_ip6[2]),
                read_volatile(&(*ops).remote_ip6[3]),
            ],
        )
    };
    let mut k = FailfastKey {
        netns_cookie: unsafe { bpf_get_netns_cookie(ops.cast()) },
        ..Default::default()
    };
    // `remote_port` is the big-endian port, shifted into the upper half on little-endian
    // kernels (sock_ops_convert_ctx_access); accept it in either half.
    let be = if rp > 0xffff {
        (rp >> 16) as u16
    } else {
        rp as u16
    };
    k.port = u16::from_be(be);
    match family as u16 {
        AF_INET => {
            k.family = AF_INET;
            k.addr[..4].copy_from_slice(&ip4.to_ne_bytes());
        }
        AF_INET6 => {
            k.family = AF_INET6;
            for (i, w) in ip6.iter().enumerate() {
                k.addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
        }
        _ => return None,
    }
    Some(k)
}

unsafe fn getopt(ctx: &SockOpsContext, opt: i32) -> Option<i32> {
    let mut v: i32 = 0;
    let r = unsafe { bpf_getsockopt(ctx.ops.cast(), SOL_TCP, opt, (&mut v as *mut i32).cast(), 4) };
    (r == 0).then_some(v)
}

unsafe fn setopt(ctx: &SockOpsContext, opt: i32, val: i32) -> bool {
    let mut v = val;
    unsafe { bpf_setsockopt(ctx.ops.cast(), SOL_TCP, opt, (&mut v as *mut i32).cast(), 4) == 0 }
}

unsafe fn on_connect(ctx: &SockOpsContext) {
    let Some(k) = key(ctx) else { return };
    let Some(p) = FAILFAST.get_ptr_mut(&k) else {
        return;
    };
    // SAFETY: a map value pointer; counters are approximate under concurrent connects.
    let pol = unsafe { &mut *p };
    if pol.expires_ns != 0 && unsafe { bpf_ktime_get_ns() } >= pol.expires_ns {
        let _ = FAILFAST.remove(&k);
        return;
    }
    let mut errors = 0u64;
    if pol.syn_count > 0 {
        match unsafe { getopt(ctx, TCP_SYNCNT) } {
            Some(cur) if cur <= pol.syn_count as i32 => {}
            _ => {
                if !unsafe { setopt(ctx, TCP_SYNCNT, pol.syn_count as i32) } {
                    errors += 1;
                }
            }
        }
    }
    if pol.user_timeout_ms > 0 {
        let cur = unsafe { getopt(ctx, TCP_USER_TIMEOUT) };
        match cur {
            Some(c) if c > 0 && c <= pol.user_timeout_ms as i32 => {}
            Some(c) => {
                if unsafe { setopt(ctx, TCP_USER_TIMEOUT, pol.user_timeout_ms as i32) } {
                    let cookie = unsafe { bpf_get_socket_cookie(ctx.ops.cast()) };
                    let saved = FailfastSaved {
                        user_timeout_ms: c as u32,
                        _pad: 0,
                    };
                    if FAILFAST_SAVED.insert(&cookie, &saved, 0).is_err() {
                        errors += 1;
                    }
                    let flags = ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG;
                    if ctx.set_cb_flags(flags as i32).is_err() {
                        errors += 1;
                    }
                } else {
                    errors += 1;
                }
            }
            None => errors += 1,
        }
    }
    pol.hits += 1;
    pol.errors += errors;
}

unsafe fn on_established(ctx: &SockOpsContext) {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.ops.cast()) };
    let Some(saved) = (unsafe { FAILFAST_SAVED.get(&cookie) }) else {
        return;
    };
    let old = saved.user_timeout_ms as i32;
    let _ = unsafe { setopt(ctx, TCP_USER_TIMEOUT, old) };
    let _ = FAILFAST_SAVED.remove(&cookie);
}
