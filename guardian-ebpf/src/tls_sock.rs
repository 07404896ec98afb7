//! TLS on the socket tracepoints (Linux 6.3+): `sock:sock_recv_length` and
//! `sock:sock_send_length`, which the kernel runs at the end of every receive and send on a
//! socket (`sock_recvmsg_nosec`, `sock_sendmsg_nosec`) with the socket and the result, taken
//! as BTF tracepoints. Where they run (`guardian run --http` on a kernel that has them, with
//! the packet programs reading plaintext), they stand in for the syscall hook (`sys_exit.rs`)
//! that TLS needs otherwise. That hook puts every syscall of every task on the kernel's slow
//! exit path: its `syscall_exit_work` and program entry were about 63 % of its cost, which no
//! change to the program can remove (docs/benchmarks.md). These fire only for socket I/O, and
//! no syscall pays for them: nginx and wrk over TLS made 6.0 socket sends and receives per
//! request against 14.0 syscall exits.
//!
//! They do for TLS what the syscall hook does, with the socket itself as the connection's
//! handle (`sockfd::Handle`: no walk from a descriptor):
//! - a receive: inside a handshake, how it ended and the socket (tls_hs.rs); outside one, in
//!   a process that uses OpenSSL (`gate::uses_tls`), the start of a request (tls.rs);
//! - a send: inside a handshake, the socket; inside an `SSL_write` that passed a status, the
//!   response (`on_send`, with the status tls.rs left); after an HTTP/2 write, its result
//!   (tls_h2.rs).
//!
//! A connection's request start and service are in its socket's own storage (`TlsSock`):
//! no hash to take a lock in or to outgrow, freed with the socket, and so nothing for a later
//! connection to inherit. Receives and sends of a server's connection run on its thread, so
//! the entry's line stays on one CPU. The service is resolved at the first response and kept,
//! so later responses read nothing from the socket.
//!
//! They see no buffer: the plaintext TLS alerts the syscall hook reads in writes are counted
//! from the packets instead (tls_alert.rs, `on_segment`).
use core::ffi::c_void;

use aya_ebpf::{
    btf_maps::SkStorage,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use guardian_common::{h2::pending_len, http::HttpKey};

use crate::gate::{self, H2_WRITING, HANDSHAKES, PENDING};
use crate::http::service;
use crate::http_stats::count;
use crate::kernel::sk_storage;
use crate::sockfd::Handle;

/// Per socket of a process that uses OpenSSL: the request in flight (ktime ns, 0 between
/// requests) and, once resolved (`known`), the service.
#[repr(C)]
pub struct TlsSock {
    start: u64,
    svc: HttpKey,
    known: u32,
}

/// A BTF-defined map: the kernel wants the value's type for socket storage.
#[btf_map]
static TLS_SOCKS: SkStorage<TlsSock> = SkStorage::new();

/// The entry of socket `sk` (the tracepoint's BTF pointer); created (zeroed) with `create`.
#[inline(always)]
fn entry(sk: u64, create: bool) -> Option<&'static mut TlsSock> {
    // SAFETY: this map's definition, and the tracepoint's socket.
    unsafe {
        sk_storage(
            core::ptr::addr_of!(TLS_SOCKS) as *const c_void,
            sk as *mut c_void,
            create,
        )
    }
}

/// `MSG_PEEK`: a receive that leaves the data queued (it is received again).
const MSG_PEEK: i32 = 2;

/// `sock_recv_length(struct sock *sk, int ret, int flags)`.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn tls_sock_recv(ctx: BtfTracePointContext) -> i32 {
    let ret: i32 = ctx.arg(1);
    let hs = gate::any(HANDSHAKES);
    // Nothing received and no handshake under way anywhere: a failed receive (EAGAIN, most
    // often) leaves after one array read.
    if ret <= 0 && !hs {
        return 0;
    }
    let flags: i32 = ctx.arg(2);
    if flags & MSG_PEEK != 0 {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    if !gate::uses_tls((id >> 32) as u32) {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    // Inside a handshake: how the receive ended is how a failed return is judged.
    if hs && crate::tls_hs::note_read_ret(id, i64::from(ret)) {
        crate::tls_hs::note_fd(id, sk);
        return 0;
    }
    // Data outside a handshake starts a request, unless one is in flight. The bytes are not
    // at hand, so the record's type is not checked: after the handshake every record a
    // server receives is application data as far as its header says (TLS 1.3 wraps alerts
    // and key updates in that type too), and a TLS 1.2 close_notify starts a request that no
    // response ends, which counts nothing.
    if ret > 0 {
        if let Some(e) = entry(sk, true) {
            if e.start == 0 {
                e.start = unsafe { bpf_ktime_get_ns() };
            }
        }
    }
    0
}

/// `sock_send_length(struct sock *sk, int ret, int flags)`.
#[btf_tracepoint(function = "sock_send_length")]
pub fn tls_sock_send(ctx: BtfTracePointContext) -> i32 {
    // No handshake, no status waiting for its send and no HTTP/2 write under way anywhere:
    // three array reads, and the send is none of this hook's business.
    let (hs, pending, h2) = (
        gate::any(HANDSHAKES),
        gate::any(PENDING),
        gate::any(H2_WRITING),
    );
    if !hs && !pending && !h2 {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    let sk: u64 = ctx.arg(0);
    if hs {
        // Inside a handshake (a client's ClientHello is a send): the connection's socket.
        crate::tls_hs::note_fd(id, sk);
    }
    if pending {
        on_send(id, sk);
    }
    if h2 {
        let ret: i32 = ctx.arg(1);
        crate::tls_h2::after_write(id, sk, i64::from(ret));
    }
    0
}

/// A send on socket `sk` by thread `id`: when the thread's `SSL_write` left a status, this
/// send carries it: one response for the connection's service, or the HTTP/2 statuses of
/// the write.
#[inline(always)]
fn on_send(id: u64, sk: u64) {
    let Some(code) = crate::tls::take_pending(id) else {
        return;
    };
    let Some(e) = entry(sk, true) else {
        return;
    };
    let found = if e.known == 0 {
        let (k, found) = service(id, Handle::Sock(sk));
        e.svc = k;
        e.known = u32::from(found);
        found
    } else {
        true
    };
    if pending_len(code) > 0 {
        // HTTP/2: statuses by the dozen, no latency (streams are multiplexed).
        crate::tls::count_h2(id, &e.svc, found, code);
        return;
    }
    let start = core::mem::replace(&mut e.start, 0);
    if start != 0 {
        let now = unsafe { bpf_ktime_get_ns() };
        count(&e.svc, code as u16, now.saturating_sub(start));
    }
}
