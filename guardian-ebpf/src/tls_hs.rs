//! TLS handshake outcomes through OpenSSL, per (namespace, process, role, listener, peer):
//! uprobes on `SSL_do_handshake`, `SSL_accept` and `SSL_connect` (entry and return) of every
//! `libssl.so.3` that userspace found (the same attachment as `tls.rs`).
//!
//! - A return of 1 is a completed handshake (`ok`).
//! - A return <= 0 is judged by what the last read(2) inside the call returned
//!   (`guardian_common::tls::judge`, noted by `http.rs`'s `sys_exit_read`): data, then a
//!   failure, is a protocol failure (an alert, a rejected certificate); end of stream or an
//!   error is an abort (the peer closed); `EAGAIN` is a non-blocking handshake that goes on
//!   (not counted). That is what `SSL_get_error` would say, without a uprobe on a function
//!   that keep-alive servers call once per request. Inspektor Gadget hooks the same functions
//!   but drops these returns; they are the signal here.
//! - The socket is the fd of the last read(2)/write(2) made inside the handshake (noted by
//!   `http.rs`'s syscall tracepoints): `SSL_get_fd` is a function, not memory BPF can read.
//! - The role comes from `SSL_set_accept_state`/`SSL_accept` (server) and
//!   `SSL_set_connect_state`/`SSL_connect` (client), remembered per (tgid, `SSL *`).
use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::bpf_get_current_pid_tgid,
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext},
};
use guardian_common::{
    http::TlsKey,
    tls::{judge, HsCall, HsKey, HsStats, NO_READ, ROLE_CLIENT, ROLE_SERVER},
};

use crate::ends::{ends, Ends};
use crate::gate::{self, HANDSHAKES};
use crate::kernel::{current_netns, global};
use crate::maps::{shared_add, OFFSETS};
use crate::sockfd::Handle;

/// Handshake calls in progress, by pid_tgid.
#[map]
static HS_CALLS: HashMap<u64, HsCall> = HashMap::with_max_entries(16384, 0);

/// The role of each connection (`ROLE_SERVER`/`ROLE_CLIENT`).
#[map]
static HS_ROLE: LruHashMap<TlsKey, u8> = LruHashMap::with_max_entries(65536, 0);

/// Outcomes per (netns, process, role, listener, peer). LRU: keys of processes long gone make
/// room.
#[map]
pub static TLS_HANDSHAKES: LruHashMap<HsKey, HsStats> = LruHashMap::with_max_entries(16384, 0);

/// Called from `http.rs` at sys_enter_read/recvfrom/write/... (and from `tls_sock.rs` with
/// the socket): the fd OpenSSL uses. Returns the handshake's `SSL *` (0: none).
#[inline(always)]
pub fn note_fd(id: u64, fd: u64) -> u64 {
    if fd < 3 || !gate::any(HANDSHAKES) {
        return 0;
    }
    let Some(p) = HS_CALLS.get_ptr_mut(&id) else {
        return 0;
    };
    // SAFETY: this thread's own entry; no other program writes it meanwhile.
    unsafe {
        (*p).fd = fd;
        (*p).ssl
    }
}

/// Called from `http.rs` at the exit of a read(2)/recvfrom(2): what it returned. Returns
/// whether the thread is inside a handshake call (one lookup for both).
#[inline(always)]
pub fn note_read_ret(id: u64, ret: i64) -> bool {
    if !gate::any(HANDSHAKES) {
        return false;
    }
    let Some(p) = HS_CALLS.get_ptr_mut(&id) else {
        return false;
    };
    // SAFETY: this thread's own entry; no other program writes it meanwhile.
    unsafe { (*p).last_read = ret };
    true
}

/// Whether the current thread is inside a handshake call.
#[inline(always)]
pub fn in_handshake(id: u64) -> bool {
    gate::any(HANDSHAKES) && unsafe { HS_CALLS.get(&id).is_some() }
}

/// Whether connection `ssl` of the current process is a client's (its `SSL_connect` or
/// `SSL_set_connect_state` was seen).
#[inline(always)]
pub fn is_client(id: u64, ssl: u64) -> bool {
    matches!(
        unsafe { HS_ROLE.get(&tls_key(ssl, id)) },
        Some(&ROLE_CLIENT)
    )
}

#[inline(always)]
fn tls_key(ssl: u64, id: u64) -> TlsKey {
    TlsKey {
        ssl,
        tgid: (id >> 32) as u32,
        _pad: 0,
    }
}

#[inline(always)]
fn set_role(ctx: &ProbeContext, role: u8) {
    if let Some(ssl) = ctx.arg::<u64>(0) {
        let _ = HS_ROLE.insert(
            &tls_key(ssl, bpf_get_current_pid_tgid()),
            &role,
            BPF_ANY as u64,
        );
    }
}

#[inline(always)]
fn enter(ctx: &ProbeContext) {
    let Some(ssl) = ctx.arg::<u64>(0) else {
        return;
    };
    let id = bpf_get_current_pid_tgid();
    crate::gate::mark_tls((id >> 32) as u32);
    let call = HsCall {
        ssl,
        fd: u64::MAX,
        depth: 1,
        _pad: 0,
        last_read: NO_READ,
    };
    if let Some(p) = HS_CALLS.get_ptr_mut(&id) {
        // SAFETY: this thread's own entry. A nested call (SSL_accept -> SSL_do_handshake) is
        // on the same `SSL *`; another one means a return was never seen (the thread died
        // inside a handshake and its id was reused): start over, in place (still counted).
        unsafe {
            if (*p).ssl == ssl {
                (*p).depth += 1;
            } else {
                *p = call;
            }
        }
        return;
    }
    if HS_CALLS.insert(&id, &call, BPF_NOEXIST as u64).is_ok() {
        gate::inc(HANDSHAKES);
    }
}

#[uprobe]
pub fn tls_hs_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx);
    0
}

#[uprobe]
pub fn tls_accept_enter(ctx: ProbeContext) -> u32 {
    set_role(&ctx, ROLE_SERVER);
    enter(&ctx);
    0
}

#[uprobe]
pub fn tls_connect_enter(ctx: ProbeContext) -> u32 {
    set_role(&ctx, ROLE_CLIENT);
    enter(&ctx);
    0
}

#[uprobe]
pub fn tls_set_accept(ctx: ProbeContext) -> u32 {
    set_role(&ctx, ROLE_SERVER);
    0
}

#[uprobe]
pub fn tls_set_connect(ctx: ProbeContext) -> u32 {
    set_role(&ctx, ROLE_CLIENT);
    0
}

/// The key of a handshake of `call` by the current task.
#[inline(always)]
fn hs_key(call: &HsCall, id: u64) -> HsKey {
    let role = unsafe { HS_ROLE.get(&tls_key(call.ssl, id)).copied() }.unwrap_or(0);
    let mut k = HsKey {
        netns: current_netns(&global(&OFFSETS)),
        tgid: (id >> 32) as u32,
        role,
        ..Default::default()
    };
    if call.fd == u64::MAX {
        return k;
    }
    let out = Ends {
        family: &mut k.family,
        port: &mut k.port,
        addr: &mut k.addr,
        peer: &mut k.peer,
    };
    let _ = ends(Handle::stored(call.fd), |_| role, out);
    k
}

/// One value per key that the CPUs share (handshakes are rare next to the reads and writes
/// around them: `maps::shared_inc`).
#[inline(always)]
fn add(k: &HsKey, ok: u64, failed: u64, aborted: u64) {
    let s = HsStats {
        ok,
        failed,
        aborted,
    };
    if let Some(p) = TLS_HANDSHAKES.get_ptr_mut(k) {
        add_to(p, &s);
        return;
    }
    // Another CPU's insert of the same key may win: then add to it.
    if TLS_HANDSHAKES.insert(k, &s, BPF_NOEXIST as u64).is_err() {
        if let Some(p) = TLS_HANDSHAKES.get_ptr_mut(k) {
            add_to(p, &s);
        }
    }
}

#[inline(always)]
fn add_to(p: *mut HsStats, s: &HsStats) {
    // SAFETY: the entry's value, valid while the program runs.
    unsafe {
        if s.ok != 0 {
            shared_add(&raw mut (*p).ok, s.ok);
        }
        if s.failed != 0 {
            shared_add(&raw mut (*p).failed, s.failed);
        }
        if s.aborted != 0 {
            shared_add(&raw mut (*p).aborted, s.aborted);
        }
    }
}

/// Thread `id` has exited (tls_exit.rs): a handshake call it was inside will not return.
#[inline(always)]
pub fn thread_gone(id: u64) {
    if gate::any(HANDSHAKES) && HS_CALLS.remove(&id).is_ok() {
        gate::dec(HANDSHAKES);
    }
}

/// The return of the three handshake functions.
#[uretprobe]
pub fn tls_hs_exit(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(p) = HS_CALLS.get_ptr_mut(&id) else {
        return 0;
    };
    // SAFETY: this thread's own entry.
    let call = unsafe {
        if (*p).depth > 1 {
            (*p).depth -= 1;
            return 0;
        }
        *p
    };
    if HS_CALLS.remove(&id).is_ok() {
        gate::dec(HANDSHAKES);
    }
    let (ok, failed, aborted) = if ctx.ret::<i32>() == 1 {
        // A new connection: what an earlier one on the same fd number, or with the same
        // `SSL *`, left goes.
        crate::tls::forget(id, Handle::stored(call.fd));
        crate::tls_h2::forget(id, call.ssl);
        gate::inc(gate::HANDSHAKES_DONE);
        (1, 0, 0)
    } else {
        match judge(call.last_read) {
            1 => (0, 1, 0),
            2 => (0, 0, 1),
            _ => return 0,
        }
    };
    // One key and one add for the three outcomes: each of three call sites was inlined with
    // its own copy of the key's walk (37 KB of instructions; 4.4 KB with ends.rs's keys
    // filled in place).
    add(&hs_key(&call, id), ok, failed, aborted);
    0
}
