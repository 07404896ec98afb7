//! HTTP/1.x status per service from the syscall tracepoints (server side, plaintext), as
//! Coroot's node agent does: no kprobes, no payload copies beyond 16 bytes.
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
//! - The same write tracepoints count plaintext TLS alert records (`tls_alert.rs`), and the
//!   read and write ones carry the TLS responses' timing and socket (`tls.rs`) and the
//!   handshakes' socket and last read (`tls_hs.rs`).
//!
//! The local address comes from the socket behind the fd (`sockfd.rs`). Attached only when
//! enabled (`guardian run --http`): with them detached nothing here runs.
use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_ktime_get_ns, bpf_probe_read_user,
        bpf_task_pt_regs,
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray},
    programs::TracePointContext,
    Global,
};
use guardian_common::http::{
    is_request_start, lat_bucket, parse_status, HttpKey, HttpOffsets, HttpStats, ReadArgs,
};

use crate::kernel::{current_netns, field, global, read_pair, sock_netns};
use crate::maps::OFFSETS;
use crate::sockfd::{local_of_sock, sock_of_fd};
use crate::tls_alert::Buf;

#[unsafe(no_mangle)]
pub static HTTP_OFFSETS: Global<HttpOffsets> = Global::new(HttpOffsets::NONE);

/// read(2)/recvfrom(2) arguments between enter and exit, keyed by pid_tgid.
#[map]
pub static HTTP_READS: HashMap<u64, ReadArgs> = HashMap::with_max_entries(16384, 0);

/// Request start time (ktime ns) per (tgid << 32 | fd); 0 between requests.
#[map]
pub static HTTP_INFLIGHT: LruHashMap<u64, u64> = LruHashMap::with_max_entries(65536, 0);

/// Responses per service. LRU: services of processes long gone make room.
#[map]
pub static HTTP_STATS: LruPerCpuHashMap<HttpKey, HttpStats> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// A zeroed `HttpStats` to fill before inserting a new service.
#[map]
static HTTP_SCRATCH: PerCpuArray<HttpStats> = PerCpuArray::with_max_entries(1, 0);

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

/// sys_exit_read and sys_exit_recvfrom without the enter programs, where the kernel has
/// `bpf_task_pt_regs` (5.15): the fd and the buffer are still in the registers the syscall
/// was entered with (x86-64: `di`, `si`; only `ax` is replaced by the return value), so no
/// enter→exit handoff is needed, and a read that returns less than 5 bytes costs a look at
/// whether any handshake is in progress (`gate.rs`: an array read; the thread id and its
/// hash lookup only while one is) and nothing else. One program run and three hash operations less per
/// read, on every process of the machine.
#[tracepoint]
pub fn http_read_regs(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let Some(ret) = (unsafe { field::<i64>(&ctx, o.exit_ret) }) else {
        return 0;
    };
    // A short read while no handshake is under way anywhere (`gate.rs`): done, before any
    // helper call. Most reads of most processes end here.
    if ret < 5 && !crate::gate::any(crate::gate::HANDSHAKES) {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    let in_hs = crate::tls_hs::in_handshake(id);
    if ret < 5 && !in_hs {
        return 0;
    }
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    // One read: x86-64 saves `si` just before `di`.
    let Some((fd, buf)) = (unsafe { read_pair(regs, o.regs_arg0, o.regs_arg1) }) else {
        return 0;
    };
    // 0..2: stdio, never a server's connection.
    if fd < 3 {
        return 0;
    }
    if in_hs {
        crate::tls_hs::note_fd(id, fd);
        crate::tls_hs::note_read_ret(id, ret);
    }
    on_read(id, fd, buf, ret, in_hs);
    0
}

/// A read of `fd` into `buf` returned `ret`: a request start (plaintext), or a TLS record.
#[inline(always)]
fn on_read(id: u64, fd: u64, buf: u64, ret: i64, in_hs: bool) {
    if ret < 5 {
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
        let key = (id & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff);
        let now = unsafe { bpf_ktime_get_ns() };
        // The entry stays with the connection between requests (0: none in flight): a store
        // where an LRU insert and delete per request would each take the map's locks.
        match HTTP_INFLIGHT.get_ptr_mut(&key) {
            // SAFETY: a u64 of this map; only this connection's thread writes it.
            Some(p) => unsafe { *p = now },
            None => {
                let _ = HTTP_INFLIGHT.insert(key, now, BPF_ANY as u64);
            }
        }
        return;
    }
    let h = [head[0], head[1], head[2], head[3], head[4]];
    crate::tls::note_record(id, fd, &h, ret, in_hs);
}

#[tracepoint]
pub fn http_write(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let alert = Buf::Plain {
        buf_off: o.write_buf,
        len_off: o.write_count,
    };
    on_write(&ctx, o.write_fd, o.write_buf, Indirection::None, alert);
    0
}

#[tracepoint]
pub fn http_sendto(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let alert = Buf::Plain {
        buf_off: o.sendto_buf,
        len_off: o.sendto_len,
    };
    on_write(&ctx, o.sendto_fd, o.sendto_buf, Indirection::None, alert);
    0
}

#[tracepoint]
pub fn http_writev(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let alert = Buf::Iovec {
        vec_off: o.writev_vec,
        vlen_off: o.writev_vlen,
    };
    on_write(&ctx, o.writev_fd, o.writev_vec, Indirection::Iovec, alert);
    0
}

#[tracepoint]
pub fn http_sendmsg(ctx: TracePointContext) -> u32 {
    let o = global(&HTTP_OFFSETS);
    let alert = Buf::Msghdr {
        msg_off: o.sendmsg_msg,
    };
    on_write(
        &ctx,
        o.sendmsg_fd,
        o.sendmsg_msg,
        Indirection::Msghdr,
        alert,
    );
    0
}

/// How the syscall's buffer argument reaches the bytes (user ABI layouts, not kernel ones).
#[derive(Clone, Copy)]
enum Indirection {
    /// The argument is the buffer.
    None,
    /// `struct iovec *`: `iov_base` at 0.
    Iovec,
    /// `struct user_msghdr *`: `msg_iov` at 16, then an iovec.
    Msghdr,
}

#[inline(always)]
fn on_write(ctx: &TracePointContext, fd_off: u16, buf_off: u16, ind: Indirection, alert: Buf) {
    let Some(fd) = (unsafe { field::<u64>(ctx, fd_off) }) else {
        return;
    };
    let id = bpf_get_current_pid_tgid();
    // Inside a handshake (a client's ClientHello is a write): the connection's socket.
    crate::tls_hs::note_fd(id, fd);
    // A 7-byte write may be a plaintext TLS alert (tls_alert.rs): then it is not a response.
    if crate::tls_alert::on_write(ctx, fd, alert) {
        return;
    }
    // Inside an `SSL_write` that passed a status line: the encrypted response (tls.rs).
    if crate::tls::on_write(id, fd) {
        return;
    }
    let key = (id & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff);
    // The cheap check first: no request in flight on this fd (no entry, or 0), nothing to do.
    let Some(inflight) = HTTP_INFLIGHT.get_ptr_mut(&key) else {
        return;
    };
    // SAFETY: a u64 of this map; only this connection's thread writes it.
    let start = unsafe { *inflight };
    if start == 0 {
        return;
    }
    let Some(mut buf) = (unsafe { field::<u64>(ctx, buf_off) }) else {
        return;
    };
    unsafe {
        if let Indirection::Msghdr = ind {
            match bpf_probe_read_user((buf + 16) as *const u64) {
                Ok(iov) => buf = iov,
                Err(_) => return,
            }
        }
        if !matches!(ind, Indirection::None) {
            match bpf_probe_read_user(buf as *const u64) {
                Ok(base) => buf = base,
                Err(_) => return,
            }
        }
    }
    let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const [u8; 16]) }) else {
        return;
    };
    let Some(code) = parse_status(&head) else {
        return;
    };
    if code < 200 {
        return;
    }
    // SAFETY: as above.
    unsafe { *inflight = 0 };
    respond(id, fd, code, start);
}

/// One response with status `code` on socket `fd` of the current task, to a request that
/// started at `start` (ktime ns): counted for its service.
#[inline(always)]
pub(crate) fn respond(id: u64, fd: u64, code: u16, start: u64) {
    let now = unsafe { bpf_ktime_get_ns() };
    let mut k = HttpKey {
        tgid: (id >> 32) as u32,
        ..Default::default()
    };
    // The socket's namespace (two reads from the socket the walk found anyway), else the
    // task's (four).
    let o = global(&OFFSETS);
    match sock_of_fd(fd) {
        Some(sk) => {
            k.netns = unsafe { sock_netns(&o, sk) };
            local_of_sock(sk, &mut k);
        }
        None => k.netns = current_netns(&o),
    }
    count(&k, code, now.saturating_sub(start));
}

#[inline(always)]
pub(crate) fn count(k: &HttpKey, code: u16, lat_ns: u64) {
    let add = |s: &mut HttpStats| {
        match code / 100 {
            2 => s.s2xx += 1,
            3 => s.s3xx += 1,
            4 => {
                s.s4xx += 1;
                if code == 429 {
                    s.s429 += 1;
                }
            }
            5 => {
                s.s5xx += 1;
                match code {
                    500 => s.s500 += 1,
                    502 => s.s502 += 1,
                    503 => s.s503 += 1,
                    504 => s.s504 += 1,
                    _ => {}
                }
            }
            _ => return,
        }
        s.lat_sum_ns += lat_ns;
        let b = lat_bucket(lat_ns);
        if let Some(c) = s.lat.get_mut(b) {
            *c += 1;
        }
    };
    if let Some(p) = HTTP_STATS.get_ptr_mut(k) {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe { add(&mut *p) };
        return;
    }
    // The first response of a service: built in a per-CPU scratch slot, the value is too big
    // for the 512-byte BPF stack next to the callers' locals.
    let Some(s) = HTTP_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        core::ptr::write_bytes(s, 0, 1);
        add(&mut *s);
        let _ = HTTP_STATS.insert(k, &*s, BPF_ANY as u64);
    }
}
