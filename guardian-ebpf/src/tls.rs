//! HTTP/1.x status per service over TLS through OpenSSL, with one uprobe hit per response: the
//! entry of `SSL_write`/`SSL_write_ex` of every `libssl.so.3` that userspace found. Its buffer
//! holds the plaintext, so the status line is parsed there (as `http.rs` does). A write that
//! is not an HTTP/1.x status line may be an HTTP/2 connection's frames (`tls_h2.rs`), whose
//! statuses take the same way to the socket, packed.
//!
//! Everything else comes from a hook on the socket I/O, because each uprobe hit is a
//! breakpoint trap (and a single-step over the displaced instruction) that costs more than a
//! keep-alive request's own work on some machines (docs/benchmarks.md). That hook is the
//! socket tracepoints (`tls_sock.rs`: Linux 6.3+, where the packet programs read plaintext),
//! which the kernel runs only for socket sends and receives; else the syscall hook `http.rs`
//! holds, which runs for every syscall of every task:
//! - the request start: a receive that returns data (on the syscall hook: a TLS
//!   application-data record) on the connection, outside a handshake, when none is in flight
//!   there (the latency of a request runs from its first record);
//! - the socket: the send OpenSSL makes inside `SSL_write` on the same thread (`on_write`,
//!   or `tls_sock.rs`'s `on_send`), which takes the status left in `TLS_PENDING`.
//!
//! On the socket tracepoints, once userspace has found OpenSSL's record layer in the `SSL`
//! objects, the statuses are read at the sends instead (`tls_record.rs`), this probe is
//! detached, and until then its hits do nothing.
//!
//! A connection's request start is kept in its socket's own storage on the socket tracepoints
//! (`tls_sock.rs`, with its service), and in `TLS_INFLIGHT` by (tgid, fd) on the syscall
//! hook, where a connection's completed handshake drops what a previous connection on the
//! same fd number left in flight (`tls_hs.rs` calls `forget`).
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{HashMap, LruHashMap},
    programs::ProbeContext,
};
use guardian_common::{
    h2::{pending_code, pending_len, PENDING_MAX},
    http::{is_tls_app_data, parse_status, HttpKey},
};

use crate::gate::{self, PENDING};
use crate::http::{respond, service};
use crate::http_stats::count_status;
use crate::sockfd::Handle;

/// A status line passed to `SSL_write`, waiting for the write(2) that carries it, by pid_tgid.
#[map]
static TLS_PENDING: HashMap<u64, Pending> = HashMap::with_max_entries(16384, 0);

/// What an `SSL_write` left for its send: an HTTP/1.x code, the HTTP/2 statuses of the
/// write, packed (`guardian_common::h2`), or 0 (a calibration sample only); and the call's
/// arguments, which the send keeps for the connection (`ssl`) and samples while the record
/// layer is calibrated (tls_record.rs).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    pub code: u64,
    pub ssl: u64,
    pub buf: u64,
    pub num: u64,
}

/// Request start time (ktime ns) per TLS connection on the syscall hook, by (tgid << 32 |
/// fd); 0 between requests. (On the socket tracepoints it is in the socket's own storage:
/// `tls_sock.rs`.)
#[map]
static TLS_INFLIGHT: LruHashMap<u64, u64> = LruHashMap::with_max_entries(65536, 0);

/// The key of a connection on the syscall hook: (tgid << 32 | fd).
#[inline(always)]
fn conn(id: u64, fd: u64) -> u64 {
    (id & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff)
}

/// Called from `http.rs` at the exit of a read(2)/recvfrom(2) that returned `n` bytes starting
/// with `head` (`in_handshake`: inside a handshake call on this thread): an application-data
/// record outside a handshake starts a request on the fd, unless one is in flight already.
#[inline(always)]
pub fn note_record(id: u64, fd: u64, head: &[u8; 5], n: i64, in_handshake: bool) {
    if in_handshake || !is_tls_app_data(head, n) {
        return;
    }
    let key = conn(id, fd);
    // An entry stays with the connection (0: nothing in flight): an LRU insert and delete per
    // request would each take the map's locks, a lookup and a store take none.
    match TLS_INFLIGHT.get_ptr_mut(&key) {
        // SAFETY: a u64 of this map; only this connection's thread writes it.
        Some(p) => unsafe {
            if *p == 0 {
                *p = bpf_ktime_get_ns();
            }
        },
        None => {
            let now = unsafe { bpf_ktime_get_ns() };
            let _ = TLS_INFLIGHT.insert(&key, &now, BPF_NOEXIST as u64);
        }
    }
}

/// Called by `tls_hs.rs` when a handshake on socket `h` completes: a new connection. What an
/// earlier connection on the same fd number left goes; a socket's own storage (the socket
/// tracepoints) is new with the socket.
#[inline(always)]
pub fn forget(id: u64, h: Handle) {
    if let Handle::Fd(fd) = h {
        let _ = TLS_INFLIGHT.remove(&conn(id, fd));
    }
}

/// What this thread's `SSL_write` left, taken: an HTTP/1.x code, or HTTP/2 statuses packed
/// (`pending_len` > 0), with the call's arguments.
#[inline(always)]
pub fn take_pending(id: u64) -> Option<Pending> {
    if !gate::any(PENDING) {
        return None;
    }
    let p = unsafe { TLS_PENDING.get(&id).copied() }?;
    if TLS_PENDING.remove(&id).is_ok() {
        gate::dec(PENDING);
    }
    Some(p)
}

/// Thread `id` has exited (tls_exit.rs): a status its `SSL_write` left has no send to go
/// with.
#[inline(always)]
pub fn thread_gone(id: u64) {
    if gate::any(PENDING) && TLS_PENDING.remove(&id).is_ok() {
        gate::dec(PENDING);
    }
}

/// Counts the HTTP/2 statuses packed in `code` for service `k`, which the walk to the socket
/// found or not (`found`): then it is kept for the connection's later writes (tls_h2.rs).
#[inline(always)]
pub fn count_h2(id: u64, k: &HttpKey, found: bool, code: u64) {
    if found {
        crate::tls_h2::learned(id, k);
    }
    count_packed(k, code);
}

/// Counts the HTTP/2 statuses packed in `code` for service `k`.
#[inline(always)]
pub fn count_packed(k: &HttpKey, code: u64) {
    let n = pending_len(code);
    for i in 0..PENDING_MAX {
        if i < n {
            count_status(k, pending_code(code, i));
        }
    }
}

/// Called from `http.rs` at every write(2)-family call on `fd`: when this thread's `SSL_write`
/// left a status, this call carries it. Returns whether it did (then the write is encrypted,
/// not a plaintext response). (`tls_sock.rs` does the same on the socket tracepoints.)
#[inline(always)]
pub fn on_write(id: u64, fd: u64) -> bool {
    let Some(Pending { code, .. }) = take_pending(id) else {
        return false;
    };
    if code == 0 {
        // A calibration sample's (the socket tracepoints only): nothing to count.
        return true;
    }
    if pending_len(code) > 0 {
        // HTTP/2: one walk to the socket for all of them, no latency.
        let (k, found) = service(id, Handle::Fd(fd));
        count_h2(id, &k, found, code);
        return true;
    }
    let Some(p) = TLS_INFLIGHT.get_ptr_mut(&conn(id, fd)) else {
        return true;
    };
    // SAFETY: a u64 of this map; only this connection's thread writes it.
    let start = unsafe { core::mem::replace(&mut *p, 0) };
    if start != 0 {
        respond(id, Handle::Fd(fd), code as u16, start);
    }
    true
}

/// `SSL_write` and `SSL_write_ex` (same first three arguments; the length is an `int` for
/// one and a `size_t` for the other, so only its low 32 bits are read).
#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    // The record layer is read at the sends (tls_record.rs): until userspace detaches this
    // probe, its hits do nothing, so that no response is counted twice. While it is
    // calibrated, every write leaves its arguments for its send (code 0: nothing to count),
    // so that each connection gives its sample, those whose HTTP/2 statuses are counted here
    // included.
    let (on, calibrating) = match crate::tls_record::layout() {
        Some(l) => (l.on != 0, l.calibrate != 0),
        None => (false, false),
    };
    if on {
        return 0;
    }
    let (Some(ssl), Some(buf), Some(num)) =
        (ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u64>(2))
    else {
        return 0;
    };
    let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const [u8; 16]) }) else {
        return 0;
    };
    let id = bpf_get_current_pid_tgid();
    crate::gate::mark_tls((id >> 32) as u32);
    let code = match parse_status(&head) {
        Some(c) if c >= 200 => u64::from(c),
        Some(_) => 0,
        // Not HTTP/1.x: maybe an HTTP/2 connection's frames.
        None if crate::tls_h2::enabled() => {
            crate::tls_h2::on_write(id, ssl, buf, num & 0x7fff_ffff, &head)
        }
        None => 0,
    };
    if code == 0 && !calibrating {
        return 0;
    }
    let pending = Pending {
        code,
        ssl,
        buf,
        num: num & 0x7fff_ffff,
    };
    if let Some(p) = TLS_PENDING.get_ptr_mut(&id) {
        // SAFETY: this thread's own entry (an earlier status whose write never came).
        unsafe { *p = pending };
    } else if TLS_PENDING
        .insert(&id, &pending, BPF_NOEXIST as u64)
        .is_ok()
    {
        gate::inc(PENDING);
    }
    0
}
