//! HTTP/1.x status per service from the syscalls (server side), as Coroot's node agent reads
//! them: no kprobes, no payload copies beyond 16 bytes. The hook is one program on every
//! syscall's exit (`sys_exit.rs`, x86-64), else the syscall tracepoints below. It is attached
//! for TLS (below) where the socket tracepoints cannot stand in for it (`tls_sock.rs`: Linux
//! 6.3+, with the packet programs), and reads plaintext only where the packet programs
//! (`http_skb.rs`, the first choice: they cost no syscall anything) were refused
//! (`HTTP_PLAIN_AT_SYSCALLS`).
//!
//! - A read(2)/recvfrom(2) whose data starts with an HTTP method marks a request start on
//!   (tgid, fd): `HTTP_INFLIGHT` holds its time (the latest one: with pipelining, the latency
//!   of the earlier requests on a connection is measured from the last request read).
//! - A write(2)/sendto(2)/writev(2)/sendmsg(2) on an fd with a request in flight reads the
//!   first 16 bytes of the buffer (first iovec); an `HTTP/1.x NNN` status line >= 200 is
//!   one response: counted per (netns, tgid, local socket address) by class and code, with
//!   its latency; the in-flight time is cleared (once per response; the entry stays with the
//!   connection). 1xx interim responses and writes that are not status lines (bodies) leave
//!   it.
//!
//! - The same writes count plaintext TLS alert records (`tls_alert.rs`), and the reads and
//!   writes carry the TLS responses' timing and socket (`tls.rs`) and the
//!   handshakes' socket and last read (`tls_hs.rs`).
//!
//! The local address comes from the socket behind the fd (`sockfd.rs`), kept per connection
//! where `sys_exit.rs` runs. Attached only when enabled (`guardian run --http`): with them
//! detached nothing here runs.
use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, tracepoint},
    maps::{Array, HashMap, LruHashMap},
    programs::TracePointContext,
    Global,
};
use guardian_common::http::{
    is_request_start, parse_status, seen_bucket, HttpConn, HttpKey, HttpOffsets, ReadArgs,
    SEEN_BUCKETS,
};

use crate::http_stats::count;
use crate::kernel::{current_netns, field, global, sock_netns};
use crate::maps::OFFSETS;
use crate::sockfd::{local_of_sock, Handle};
use crate::tls_alert::Buf;

#[unsafe(no_mangle)]
pub static HTTP_OFFSETS: Global<HttpOffsets> = Global::new(HttpOffsets::NONE);

/// read(2)/recvfrom(2) arguments between enter and exit, keyed by pid_tgid.
#[map]
pub static HTTP_READS: HashMap<u64, ReadArgs> = HashMap::with_max_entries(16384, 0);

/// Per (tgid << 32 | fd): the request in flight and, where `sys_exit.rs` runs, the service.
#[map]
static HTTP_INFLIGHT: LruHashMap<u64, HttpConn> = LruHashMap::with_max_entries(65536, 0);

/// A request started on connection `key` at `now` (ktime ns). The entry stays with
/// the connection between requests (start 0: none in flight): a store, where an LRU insert
/// and delete per request would each take the map's locks.
#[inline(always)]
fn start_request(key: &u64, now: u64) {
    match HTTP_INFLIGHT.get_ptr_mut(key) {
        // SAFETY: an entry of this map; a racing writer stores a time too.
        Some(p) => unsafe { (*p).start = now },
        None => {
            let c = HttpConn {
                start: now,
                ..Default::default()
            };
            let _ = HTTP_INFLIGHT.insert(key, &c, BPF_ANY as u64);
        }
    }
}

/// Set (never cleared) in the bucket of every (tgid, fd) on which a request start was read
/// (`seen_bucket`): a write or a close on a (tgid, fd) whose bucket is 0 cannot have an entry
/// in `HTTP_INFLIGHT`, and skips its hash lookup for an array read the verifier inlines. Every
/// write of every process that never read a request (clients, and writes to files and pipes)
/// takes that path. A full bucket only costs the lookup, never a missed response.
#[map]
static HTTP_SEEN: Array<u32> = Array::with_max_entries(SEEN_BUCKETS, 0);

/// Whether `key` may have an entry in `HTTP_INFLIGHT`.
#[inline(always)]
fn seen(key: u64) -> bool {
    matches!(HTTP_SEEN.get(seen_bucket(key)), Some(&v) if v != 0)
}

/// Slot 0 is 1 when plaintext HTTP is read here, 0 when the packet programs (`http_skb.rs`)
/// read it and this hook is attached only for TLS: then a plaintext request or response is
/// left to them. Written by userspace after the attach.
#[map]
pub static HTTP_PLAIN_AT_SYSCALLS: Array<u32> = Array::with_max_entries(1, 0);

#[inline(always)]
fn plain_at_syscalls() -> bool {
    matches!(HTTP_PLAIN_AT_SYSCALLS.get(0), Some(&v) if v != 0)
}

#[inline(always)]
fn save_read(ctx: &TracePointContext, fd_off: u16, buf_off: u16) {
    let (Some(fd), Some(buf)) = (unsafe { field::<u64>(ctx, fd_off) }, unsafe {
        field::<u64>(ctx, buf_off)
    }) else {
        return;
    };
    // 0..2: stdio, never a server's connection.
    if fd < 3 {
        return;
    }
    let id = bpf_get_current_pid_tgid();
    // Inside a handshake: the connection's socket (tls_hs.rs).
    crate::tls_hs::note_fd(id, fd);
    let _ = HTTP_READS.insert(id, ReadArgs { fd, buf }, BPF_ANY as u64);
}

#[tracepoint]
pub fn http_read_enter(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    save_read(&ctx, o.read_fd, o.read_buf);
    0
}

#[tracepoint]
pub fn http_recvfrom_enter(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    save_read(&ctx, o.recvfrom_fd, o.recvfrom_buf);
    0
}

/// sys_exit_read and sys_exit_recvfrom.
#[tracepoint]
pub fn http_read_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(args) = (unsafe { HTTP_READS.get(id).copied() }) else {
        return 0;
    };
    let _ = HTTP_READS.remove(id);
    let o = global(&HTTP_OFFSETS);
    let ret: i64 = match unsafe { field(&ctx, o.exit_ret) } {
        Some(r) => r,
        None => return 0,
    };
    // Inside a handshake: how the read ended is how a failed return is judged (tls_hs.rs).
    let in_hs = crate::tls_hs::note_read_ret(id, ret);
    on_read(id, args.fd, args.buf, ret, in_hs);
    0
}

/// The exit of a read(2)/recvfrom(2) that returned `ret`, where the fd and the buffer are
/// still in the registers the syscall was entered with (x86-64: `di`, `si`; only `ax` is
/// replaced by the return value): `args` reads them, and is called only when needed. No
/// enter→exit handoff, and a read that returns less than 5 bytes costs a look at whether any
/// handshake is in progress (`gate.rs`: an array read; the thread's hash lookup only while one
/// is) and nothing else. `id` is the task's `tgid << 32 | pid`. Called by `sys_exit.rs`.
#[inline(always)]
pub(crate) fn after_read(id: u64, ret: i64, args: impl FnOnce() -> Option<(u64, u64)>) {
    // A short read while no handshake is under way anywhere (`gate.rs`): done, before any
    // map lookup. Most reads of most processes end here.
    if ret < 5 && !crate::gate::any(crate::gate::HANDSHAKES) {
        return;
    }
    let in_hs = crate::tls_hs::in_handshake(id);
    if ret < 5 && !in_hs {
        return;
    }
    let Some((fd, buf)) = args() else {
        return;
    };
    // 0..2: stdio, never a server's connection.
    if fd < 3 {
        return;
    }
    if in_hs {
        crate::tls_hs::note_fd(id, fd);
        crate::tls_hs::note_read_ret(id, ret);
    }
    on_read(id, fd, buf, ret, in_hs);
}

/// A read of `fd` into `buf` returned `ret`: a request start (plaintext), or a TLS record.
#[inline(always)]
fn on_read(id: u64, fd: u64, buf: u64, ret: i64, in_hs: bool) {
    if ret < 5 {
        return;
    }
    // Plaintext is the packet programs' (or off): only a TLS record matters here, and only in
    // a process that uses OpenSSL (`gate::TLS_TGIDS`). Others' buffers are not read.
    if !plain_at_syscalls() && !crate::gate::uses_tls((id >> 32) as u32) {
        return;
    }
    if ret < 8 {
        // Too short for a request line; maybe the 5-byte header of a TLS record (tls.rs).
        if let Ok(h) = unsafe { bpf_probe_read_user(buf as *const [u8; 5]) } {
            crate::tls::note_record(id, fd, &h, ret, in_hs);
        }
        return;
    }
    let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const [u8; 8]) }) else {
        return;
    };
    if is_request_start(&head) {
        if !plain_at_syscalls() {
            return;
        }
        let key = (id & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff);
        let now = unsafe { bpf_ktime_get_ns() };
        if let Some(b) = HTTP_SEEN.get_ptr_mut(seen_bucket(key)) {
            // SAFETY: a u32 of an array; any writer stores the same 1.
            unsafe {
                if *b == 0 {
                    *b = 1;
                }
            }
        }
        start_request(&key, now);
        return;
    }
    let h = [head[0], head[1], head[2], head[3], head[4]];
    crate::tls::note_record(id, fd, &h, ret, in_hs);
}

/// The write side where `sys_exit.rs` is not attached: the enter tracepoints, whose records
/// hold the arguments (direct loads, `kernel::field`).
#[tracepoint]
pub fn http_write(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let f = |off| unsafe { field::<u64>(&ctx, off) };
    if let (Some(fd), Some(buf), Some(len)) = (f(o.write_fd), f(o.write_buf), f(o.write_count)) {
        on_write(
            bpf_get_current_pid_tgid(),
            fd,
            Buf::Plain { buf, len },
            false,
        );
    }
    0
}

#[tracepoint]
pub fn http_sendto(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let f = |off| unsafe { field::<u64>(&ctx, off) };
    if let (Some(fd), Some(buf), Some(len)) = (f(o.sendto_fd), f(o.sendto_buf), f(o.sendto_len)) {
        on_write(
            bpf_get_current_pid_tgid(),
            fd,
            Buf::Plain { buf, len },
            false,
        );
    }
    0
}

#[tracepoint]
pub fn http_writev(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let f = |off| unsafe { field::<u64>(&ctx, off) };
    if let (Some(fd), Some(vec), Some(vlen)) = (f(o.writev_fd), f(o.writev_vec), f(o.writev_vlen)) {
        on_write(
            bpf_get_current_pid_tgid(),
            fd,
            Buf::Iovec { vec, vlen },
            false,
        );
    }
    0
}

#[tracepoint]
pub fn http_sendmsg(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let f = |off| unsafe { field::<u64>(&ctx, off) };
    if let (Some(fd), Some(msg)) = (f(o.sendmsg_fd), f(o.sendmsg_msg)) {
        on_write(bpf_get_current_pid_tgid(), fd, Buf::Msghdr { msg }, false);
    }
    0
}

/// A write(2)/sendto(2)/writev(2)/sendmsg(2) of `b` on `fd` by the current task (`id`: its
/// `tgid << 32 | pid`): a TLS alert, the encrypted half of an `SSL_write`, or a plaintext
/// response's status line. `cache`: the connection's service may be kept in its entry,
/// because the caller (`sys_exit.rs`) drops the entry when the fd is closed or replaced; the
/// syscall tracepoints do not, and walk to the socket at every response.
#[inline(always)]
pub(crate) fn on_write(id: u64, fd: u64, b: Buf, cache: bool) {
    // Inside a handshake (a client's ClientHello is a write): the connection's socket.
    crate::tls_hs::note_fd(id, fd);
    // A 7-byte write may be a plaintext TLS alert (tls_alert.rs): then it is not a response.
    if crate::tls_alert::on_write(fd, b) {
        return;
    }
    // Inside an `SSL_write` that passed a status line: the encrypted response (tls.rs).
    if crate::tls::on_write(id, fd) {
        return;
    }
    if !plain_at_syscalls() {
        return;
    }
    let key = (id & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff);
    // The cheap checks first: no request ever read on a (tgid, fd) of this bucket, or no
    // request in flight on this fd (no entry, or 0): nothing to do.
    if !seen(key) {
        return;
    }
    let Some(inflight) = HTTP_INFLIGHT.get_ptr_mut(&key) else {
        return;
    };
    // SAFETY: an entry of this map; only this connection's thread writes it.
    let start = unsafe { (*inflight).start };
    if start == 0 {
        return;
    }
    // The first buffer: the argument itself, or the base of the first iovec (user ABI
    // layouts, not kernel ones: `iov_base` at 0 of `struct iovec`, `msg_iov` at 16 of
    // `struct user_msghdr`).
    let buf = unsafe {
        match b {
            Buf::Plain { buf, .. } => buf,
            Buf::Iovec { vec, .. } => match bpf_probe_read_user(vec as *const u64) {
                Ok(base) => base,
                Err(_) => return,
            },
            Buf::Msghdr { msg } => match bpf_probe_read_user((msg + 16) as *const u64) {
                Ok(iov) => match bpf_probe_read_user(iov as *const u64) {
                    Ok(base) => base,
                    Err(_) => return,
                },
                Err(_) => return,
            },
        }
    };
    let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const [u8; 16]) }) else {
        return;
    };
    let Some(code) = parse_status(&head) else {
        return;
    };
    if code < 200 {
        return;
    }
    let lat = unsafe { bpf_ktime_get_ns() }.saturating_sub(start);
    // SAFETY: as above.
    let c = unsafe { &mut *inflight };
    c.start = 0;
    if cache && c.known != 0 {
        count(&c.svc, code, lat);
        return;
    }
    let (k, found) = service(id, Handle::Fd(fd));
    // Kept only when the walk found the socket: a miss is tried again at the next response.
    if cache && found {
        c.svc = k;
        c.known = 1;
    }
    count(&k, code, lat);
}

/// Drops what `HTTP_INFLIGHT` keeps for `fd` of the current process: called by `sys_exit.rs`
/// when the fd is closed, or made a new connection by accept(2) or a copy by dup2(2), so that
/// a later connection on the same number starts afresh. `HTTP_SEEN`, then a lookup first:
/// most fds closed on a machine never carried a request, and a lookup takes no lock where a
/// delete takes the bucket's.
#[inline(always)]
pub(crate) fn forget_fd(id: u64, fd: u64) {
    let key = (id & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff);
    if seen(key) && unsafe { HTTP_INFLIGHT.get(&key) }.is_some() {
        let _ = HTTP_INFLIGHT.remove(&key);
    }
}

/// One response with status `code` on socket `fd` of the current task, to a request that
/// started at `start` (ktime ns): counted for its service.
#[inline(always)]
pub(crate) fn respond(id: u64, h: Handle, code: u16, start: u64) {
    let now = unsafe { bpf_ktime_get_ns() };
    count(&service(id, h).0, code, now.saturating_sub(start));
}

/// The service of socket `h` of the current task (process `id`), and whether the socket was
/// found.
#[inline(always)]
pub(crate) fn service(id: u64, h: Handle) -> (HttpKey, bool) {
    let mut k = HttpKey {
        tgid: (id >> 32) as u32,
        ..Default::default()
    };
    // The socket's namespace (two reads from the socket the walk found anyway), else the
    // task's (four).
    let o = global(&OFFSETS);
    match h.sock() {
        Some(sk) => {
            k.netns = unsafe { sock_netns(&o, sk) };
            local_of_sock(sk, &mut k);
            (k, true)
        }
        None => {
            k.netns = current_netns(&o);
            (k, false)
        }
    }
}
