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
    macros::{btf_map, btf_tracepoint, map},
    maps::PerCpuArray,
    programs::BtfTracePointContext,
};
use guardian_common::{
    h2::pending_len,
    http::{parse_status, HttpKey},
    tls_record::RecordLayout,
};

use crate::gate::{self, H2_WRITING, HANDSHAKES, PENDING};
use crate::http::service;
use crate::http_stats::count;
use crate::kernel::sk_storage;
use crate::sockfd::Handle;
use crate::tls_record;

/// Per socket of a process that uses OpenSSL: the request in flight (ktime ns, 0 between
/// requests), once resolved (`known`) the service, the connection's `SSL *` (0: not seen
/// yet), whether its next send continues a batch of records (tls_record.rs), whether it
/// gave its calibration sample (one per connection: the words around one `SSL` object hold
/// the same values from sample to sample, so only other connections tell them apart), and
/// whether it is a client's.
#[repr(C)]
pub struct TlsSock {
    start: u64,
    ssl: u64,
    svc: HttpKey,
    known: u32,
    cont: u32,
    sampled: u32,
    /// A client's connection (its handshake said so): its sends carry requests, not read.
    client: u32,
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
        keep_ssl(id, sk, crate::tls_hs::note_fd(id, sk));
        return 0;
    }
    // Data outside a handshake starts a request, unless one is in flight. The bytes are not
    // at hand, so the record's type is not checked: after the handshake every record a
    // server receives is application data as far as its header says (TLS 1.3 wraps alerts
    // and key updates in that type too), and a TLS 1.2 close_notify starts a request that no
    // response ends, which counts nothing.
    //
    // Once the record layer is read, only a connection whose handshake was seen (or whose
    // `SSL *` the uprobe gave before the switch) is ever counted, and it has its entry: a
    // socket without one is not made one (a plaintext connection of a server that also
    // serves TLS). A client's connection carries no response to time.
    if ret > 0 {
        let create = !matches!(tls_record::layout(), Some(l) if l.on != 0);
        let Some(e) = entry(sk, create) else {
            set_plain(sk);
            return 0;
        };
        set_plain(if e.ssl == 0 || e.client != 0 { sk } else { 0 });
        if e.start == 0 && e.client == 0 {
            e.start = unsafe { bpf_ktime_get_ns() };
        }
    }
    0
}

/// The last socket this CPU received data on, in a process that uses OpenSSL, whose sends
/// carry no response guardian reads: a web server's plaintext connection (no `SSL *`), or a
/// client's TLS connection. Its sends are passed over without a storage lookup (a request and
/// its response run on one CPU, one after the other).
///
/// With the number of handshakes completed when it was set (`gate::HANDSHAKES_DONE`): a slot
/// goes stale when its socket is freed and a new connection gets the same address (the
/// socket allocator hands freed addresses out again at once). An HTTP/2 server sends its
/// preface right after the handshake, before any receive outside it that would set the slot
/// again: taken for plaintext, the connection was never followed (5 of 10 curl connections
/// to nginx, one request each, with clients' sockets in the slot and no generation). Any
/// handshake completed since the slot was set makes it stale.
#[map]
static PLAIN_SK: PerCpuArray<Plain> = PerCpuArray::with_max_entries(1, 0);

/// A `PLAIN_SK` slot: the socket, and `gate::HANDSHAKES_DONE` when it was set.
#[repr(C)]
#[derive(Clone, Copy)]
struct Plain {
    sk: u64,
    handshakes: u64,
}

#[inline(always)]
fn set_plain(sk: u64) {
    if let Some(p) = PLAIN_SK.get_ptr_mut(0) {
        // SAFETY: this CPU's slot.
        unsafe {
            *p = Plain {
                sk,
                handshakes: gate::count(gate::HANDSHAKES_DONE),
            }
        };
    }
}

#[inline(always)]
fn is_plain(sk: u64) -> bool {
    let done = gate::count(gate::HANDSHAKES_DONE);
    matches!(PLAIN_SK.get(0), Some(p) if p.sk == sk && p.handshakes == done)
}

/// `sock_send_length(struct sock *sk, int ret, int flags)`.
#[btf_tracepoint(function = "sock_send_length")]
pub fn tls_sock_send(ctx: BtfTracePointContext) -> i32 {
    // No handshake, no status waiting for its send, no HTTP/2 write under way anywhere and
    // the record layer not read: four array reads, and the send is none of this hook's
    // business. With the record layer read, a plaintext connection's send or a client's
    // leaves after one compare more, before any helper call.
    let layout = match tls_record::layout() {
        Some(l) if l.on != 0 || l.calibrate != 0 => Some(l),
        _ => None,
    };
    // A write's result matters only to the `SSL_write` uprobe's walks (a retry after EAGAIN,
    // tls_h2.rs). Once the record layer is read, no uprobe refreshes a thread's `H2_CALLS`
    // entry: the one it has is its last write before the switch, whose `SSL *` and socket
    // addresses a later connection may have again. Taken for that connection's, an EAGAIN
    // made its next batch a "retry", skipped unwalked, and lost its place in the frames (the
    // `h2_desync` of `tls_record`: 7 of 26 runs under CPU load). Nor do those entries keep
    // every send off the early exit below.
    let record = matches!(layout, Some(l) if l.on != 0);
    let (hs, pending, h2) = (
        gate::any(HANDSHAKES),
        gate::any(PENDING),
        !record && gate::any(H2_WRITING),
    );
    let sk: u64 = ctx.arg(0);
    if !hs && !pending && !h2 {
        match layout {
            Some(l) if l.on != 0 && !is_plain(sk) => {}
            _ => return 0,
        }
    }
    let id = bpf_get_current_pid_tgid();
    let ret: i32 = ctx.arg(1);
    // Inside a handshake (a client's ClientHello is a send): the connection's socket.
    let in_hs = hs && {
        let ssl = crate::tls_hs::note_fd(id, sk);
        keep_ssl(id, sk, ssl);
        ssl != 0
    };
    let took = pending && on_send(id, sk, i64::from(ret), layout);
    if h2 {
        crate::tls_h2::after_write(id, sk, i64::from(ret));
    }
    match layout {
        // Plaintext connections and processes that use no OpenSSL leave here. A send the
        // uprobe's status already went with (the switch came between the two) only keeps the
        // connection's place (`took`).
        Some(l) if l.on != 0 && (in_hs || !is_plain(sk)) && gate::uses_tls((id >> 32) as u32) => {
            let how = u32::from(in_hs) | (u32::from(took) << 1);
            on_batch_send(id, sk, i64::from(ret), l, how)
        }
        _ => {}
    }
    0
}

/// Keeps a connection's `SSL *` (0: none known) in its socket's entry, and its role.
#[inline(always)]
fn keep_ssl(id: u64, sk: u64, ssl: u64) {
    if ssl == 0 {
        return;
    }
    if let Some(e) = entry(sk, true) {
        e.ssl = ssl;
        e.client = u32::from(crate::tls_hs::is_client(id, ssl));
    }
}

/// The service of the connection of entry `e` (resolved once, then kept), and whether the
/// walk found it.
#[inline(always)]
fn svc_of(id: u64, sk: u64, e: &mut TlsSock) -> bool {
    if e.known != 0 {
        return true;
    }
    let (k, found) = service(id, Handle::Sock(sk));
    e.svc = k;
    e.known = u32::from(found);
    found
}

/// One HTTP/1.x response with status `code` on the connection of entry `e`, timed from its
/// request's start when one was seen.
#[inline(always)]
fn respond_on(id: u64, sk: u64, e: &mut TlsSock, code: u16) {
    svc_of(id, sk, e);
    let start = core::mem::replace(&mut e.start, 0);
    if start != 0 {
        let now = unsafe { bpf_ktime_get_ns() };
        count(&e.svc, code, now.saturating_sub(start));
    }
}

/// A send on socket `sk` by thread `id` that returned `ret`: when the thread's `SSL_write`
/// left a status, this send carries it: one response for the connection's service, or the
/// HTTP/2 statuses of the write. While the record layer is calibrated, the send is a sample
/// of it. Returns whether a status was waiting.
#[inline(always)]
fn on_send(id: u64, sk: u64, ret: i64, layout: Option<&RecordLayout>) -> bool {
    let Some(p) = crate::tls::take_pending(id) else {
        return false;
    };
    let Some(e) = entry(sk, true) else {
        return true;
    };
    e.ssl = p.ssl;
    if let Some(l) = layout {
        if l.calibrate != 0 && e.sampled == 0 {
            e.sampled = 1;
            tls_record::calibrate(p.ssl, p.buf, p.num, ret);
        }
    }
    if p.code == 0 {
        // Left for the calibration only.
        return true;
    }
    if pending_len(p.code) > 0 {
        // HTTP/2: statuses by the dozen, no latency (streams are multiplexed).
        let found = svc_of(id, sk, e);
        crate::tls::count_h2(id, &e.svc, found, p.code);
        return true;
    }
    respond_on(id, sk, e, p.code as u16);
    true
}

/// A send on socket `sk` with the record layer read (no `SSL_write` uprobe): the batch it
/// starts, if any, is a response's status line, or an HTTP/2 connection's frames.
/// `in_hs`: the thread is in a handshake call, where OpenSSL sends each flight from a
/// buffering BIO rather than from `wbuf[0]`: no batch of the record layer, and the next send
/// after it starts one. `took`: the send carried a status the uprobe left. (`how`: bit 0
/// `in_hs`, bit 1 `took`: a BPF call takes five arguments.)
// A call, not inlined: the sends that leave early (plaintext, no TLS process) keep a short
// program.
#[inline(never)]
fn on_batch_send(id: u64, sk: u64, ret: i64, l: &RecordLayout, how: u32) {
    let (in_hs, took) = (how & 1 != 0, how & 2 != 0);
    // A connection has its entry from its handshake or its first request on.
    let Some(e) = entry(sk, false) else {
        return;
    };
    if in_hs {
        e.cont = 0;
        return;
    }
    if e.ssl == 0 || e.client != 0 {
        return;
    }
    let Some((buf, head)) = tls_record::batch(l, e.ssl, &mut e.cont, ret, !took) else {
        return;
    };
    match parse_status(&head) {
        Some(c) if c >= 200 => respond_on(id, sk, e, c),
        Some(_) => {}
        None if crate::tls_h2::enabled() => {
            let Some(tot) = tls_record::word(e.ssl, l.tot) else {
                return;
            };
            let packed = crate::tls_h2::on_batch(id, e.ssl, buf, tot, &head);
            if pending_len(packed) > 0 {
                let found = svc_of(id, sk, e);
                if found {
                    crate::tls_h2::learn(id, e.ssl, &e.svc);
                }
                crate::tls::count_packed(&e.svc, packed);
            }
        }
        None => {}
    }
}
