//! HTTP/1.x status per service over TLS through OpenSSL: uprobes on `SSL_read`/`SSL_read_ex`
//! (entry and return) and `SSL_write`/`SSL_write_ex` (entry) of every `libssl.so.3` that
//! userspace found. The plaintext is in the buffers these functions take, so the parse is the
//! one of `http.rs`: a request start on (tgid, `SSL *`) at the return of a read, a status line
//! at the entry of a write.
//!
//! The socket of an `SSL *` is the fd of the read(2) OpenSSL makes inside `SSL_read` (seen by
//! `http.rs`'s `sys_enter_read`, which fills `TLS_CALLS[pid_tgid].fd`); remembered per
//! connection in `TLS_FD`, since a read served from OpenSSL's buffer makes no syscall.
use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext},
};
use guardian_common::http::{is_request_start, parse_status, HttpKey, TlsCall, TlsKey};

use crate::http::{count, local_addr};
use crate::kernel::current_netns;
use crate::maps::OFFSETS;

/// `SSL_read*` calls in progress, by pid_tgid.
#[map]
pub static TLS_CALLS: HashMap<u64, TlsCall> = HashMap::with_max_entries(16384, 0);

/// The socket fd of each TLS connection seen reading.
#[map]
pub static TLS_FD: LruHashMap<TlsKey, u64> = LruHashMap::with_max_entries(65536, 0);

/// Request start time (ktime ns) per TLS connection.
#[map]
pub static TLS_INFLIGHT: LruHashMap<TlsKey, u64> = LruHashMap::with_max_entries(65536, 0);

/// Called from `http.rs` at sys_enter_read/recvfrom: the fd OpenSSL reads from.
#[inline(always)]
pub fn note_read_fd(id: u64, fd: u64) {
    if let Some(p) = TLS_CALLS.get_ptr_mut(&id) {
        // SAFETY: this thread's own entry; no other program writes it meanwhile.
        unsafe { (*p).fd = fd };
    }
}

#[inline(always)]
fn key(ssl: u64, id: u64) -> TlsKey {
    TlsKey {
        ssl,
        tgid: (id >> 32) as u32,
        _pad: 0,
    }
}

#[inline(always)]
fn read_enter(ctx: &ProbeContext, ex: bool) {
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let readbytes = if ex {
        ctx.arg::<u64>(3).unwrap_or(0)
    } else {
        0
    };
    let call = TlsCall {
        ssl,
        buf,
        fd: u64::MAX,
        readbytes,
    };
    let _ = TLS_CALLS.insert(&bpf_get_current_pid_tgid(), &call, BPF_ANY as u64);
}

#[uprobe]
pub fn tls_read_enter(ctx: ProbeContext) -> u32 {
    read_enter(&ctx, false);
    0
}

#[uprobe]
pub fn tls_read_ex_enter(ctx: ProbeContext) -> u32 {
    read_enter(&ctx, true);
    0
}

#[uretprobe]
pub fn tls_read_exit(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(call) = (unsafe { TLS_CALLS.get(&id).copied() }) else {
        return 0;
    };
    let _ = TLS_CALLS.remove(&id);
    let k = key(call.ssl, id);
    if call.fd != u64::MAX {
        let _ = TLS_FD.insert(&k, &call.fd, BPF_ANY as u64);
    }
    let ret: i64 = ctx.ret::<i32>() as i64;
    // SSL_read returns the bytes read; SSL_read_ex returns 1 and stores them.
    let n = if call.readbytes != 0 {
        if ret != 1 {
            return 0;
        }
        match unsafe { bpf_probe_read_user(call.readbytes as *const u64) } {
            Ok(n) => n as i64,
            Err(_) => return 0,
        }
    } else {
        ret
    };
    if n < 8 {
        return 0;
    }
    let Ok(head) = (unsafe { bpf_probe_read_user(call.buf as *const [u8; 8]) }) else {
        return 0;
    };
    if is_request_start(&head) {
        let now = unsafe { bpf_ktime_get_ns() };
        let _ = TLS_INFLIGHT.insert(&k, &now, BPF_ANY as u64);
    }
    0
}

/// `SSL_write` and `SSL_write_ex` (same first two arguments).
#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return 0;
    };
    let id = bpf_get_current_pid_tgid();
    let k = key(ssl, id);
    let Some(start) = (unsafe { TLS_INFLIGHT.get(&k).copied() }) else {
        return 0;
    };
    let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const [u8; 16]) }) else {
        return 0;
    };
    let Some(code) = parse_status(&head) else {
        return 0;
    };
    if code < 200 {
        return 0;
    }
    let _ = TLS_INFLIGHT.remove(&k);
    let now = unsafe { bpf_ktime_get_ns() };
    let mut hk = HttpKey {
        netns: current_netns(&OFFSETS.load()),
        tgid: (id >> 32) as u32,
        ..Default::default()
    };
    if let Some(fd) = unsafe { TLS_FD.get(&k).copied() } {
        local_addr(fd, &mut hk);
    }
    count(&hk, code, now.saturating_sub(start));
    0
}
