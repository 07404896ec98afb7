//! HTTP/2 responses over TLS through OpenSSL: the `SSL_write` uprobe (`tls.rs`) hands here
//! every write that is not an HTTP/1.x status line. A server's HTTP/2 connection starts its
//! writes with a SETTINGS frame (its preface); from that write on, the connection's frames are
//! followed from write to write (`H2_CONNS`: where the next frame header starts), and the
//! `:status` of each HEADERS frame (`guardian_common::h2::status`) is one response.
//!
//! Until the connection's service is known, the statuses of a write go, packed, where an
//! HTTP/1.x status goes: `TLS_PENDING`, for the write(2) that OpenSSL makes inside
//! `SSL_write` to name the socket (`tls.rs`), which then keeps the service in the
//! connection's entry (`learned`); from then on they are counted here. No latency: streams
//! are multiplexed, and the request start `tls.rs` keeps is per connection.
//!
//! A write that OpenSSL could not send (the socket's buffer full: EAGAIN) is made again by the
//! server with the same bytes, maybe followed by more, and must not be walked twice: the
//! syscall hook (`sys_exit.rs`) marks the connection when the thread's write(2) on its socket
//! fails so (`after_write`), and the next `SSL_write` on it is taken as that retry, walked
//! from where the failed call ended (`h2::to_walk`). Only the `sys_exit` program sees a
//! write's result (x86-64, Linux 5.11+): where the per-syscall tracepoints stand in for it,
//! HTTP/2 is not followed (`TLS_H2_ON`), and the `attached` event says so.
//!
//! Bounded: at most `MAX_FRAMES` frame headers per write (two probe reads each, and two more
//! per HEADERS frame). A write with more, a frame header split across three writes, or bytes
//! where a frame header should be that are not one (`h2::plausible`) lose the connection's
//! place: it is dropped and counted as an `h2_desync` loss. A connection whose preface was
//! written before guardian attached is never followed.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_probe_read_user, generated::bpf_probe_read_user as probe_read_user},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
};
use guardian_common::{
    h2::{
        block_offset, frame, is_server_preface, join_head, pending_push, plausible, status,
        to_walk, H2Call, H2Conn, H2Key, Tally, FRAME_HEADER, HEADERS, MAX_FRAMES,
    },
    http::HttpKey,
    LOSS_H2_DESYNC,
};

use crate::gate::{self, H2_FOLLOWED, H2_WRITING};
use crate::http_stats::count_tally;
use crate::maps::count_loss;

/// Slot 0 is 1 when HTTP/2 is followed: userspace sets it once the `sys_exit` program is
/// attached, the one hook that sees a write's result and so tells a retry from a new write.
/// On the per-syscall tracepoints it stays 0 (a retry would be walked twice).
#[map]
pub static TLS_H2_ON: Array<u32> = Array::with_max_entries(1, 0);

/// Whether HTTP/2 connections are followed.
#[inline(always)]
pub fn enabled() -> bool {
    matches!(TLS_H2_ON.get(0), Some(&v) if v != 0)
}

/// Where each followed connection's next frame header starts, by (process, `SSL *`).
#[map]
static H2_CONNS: LruHashMap<H2Key, H2Conn> = LruHashMap::with_max_entries(65536, 0);

/// The followed connection each thread last wrote on (`SSL_write`), by pid_tgid. No probe
/// sees `SSL_write` return: an entry goes when its thread exits (tls_exit.rs). LRU as well,
/// should that program be refused, so that the threads of a host that starts and ends many
/// of them over months do not fill it, after which the retries of new threads' writes would
/// no longer be told apart.
#[map]
static H2_CALLS: LruHashMap<u64, H2Call> = LruHashMap::with_max_entries(16384, 0);

const EAGAIN: i64 = -11;

/// The exit of a write(2)-family call of `fd` by thread `id` that returned `ret` (called by
/// `sys_exit.rs` while any thread has written on a followed connection): the first write
/// after an `SSL_write` names its socket; a write on that socket that failed with EAGAIN
/// makes the next `SSL_write` on the connection a retry.
#[inline(always)]
pub fn after_write(id: u64, fd: u64, ret: i64) {
    let Some(call) = H2_CALLS.get_ptr_mut(&id) else {
        return;
    };
    // SAFETY: this thread's own entry.
    let call = unsafe { &mut *call };
    if call.fd == u64::MAX {
        call.fd = fd;
    }
    if call.fd == fd && ret == EAGAIN {
        if let Some(c) = H2_CONNS.get_ptr_mut(&call.key) {
            // SAFETY: the connection's entry; only the thread writing on it writes it.
            unsafe { (*c).again = 1 };
        }
    }
}

/// Thread `id` has exited (tls_exit.rs): its last write's entry goes, and with it the
/// gate's count (an entry the LRU evicted was not counted down, and is not here either).
#[inline(always)]
pub fn thread_gone(id: u64) {
    if gate::any(H2_WRITING) && H2_CALLS.remove(&id).is_ok() {
        gate::dec(H2_WRITING);
    }
}

/// Records that thread `id` is in an `SSL_write` on connection `key`.
#[inline(always)]
fn writing(id: u64, key: &H2Key) {
    let call = H2Call {
        key: *key,
        fd: u64::MAX,
    };
    if let Some(p) = H2_CALLS.get_ptr_mut(&id) {
        // SAFETY: this thread's own entry.
        unsafe { *p = call };
    } else if H2_CALLS.insert(&id, &call, BPF_NOEXIST as u64).is_ok() {
        gate::inc(H2_WRITING);
    }
}

/// The final status (>= 200) of a HEADERS frame with `flags` whose payload starts at `p`, when
/// the block's first field lies within the write (`end`): a block cut by the write's end is
/// not read past it (the buffer holds stale bytes there).
#[inline(always)]
fn headers_status(p: u64, flags: u8, end: u64) -> Option<u16> {
    let off = block_offset(flags) as u64;
    if p + off + 6 > end {
        return None;
    }
    // SAFETY: user memory through a probe read.
    let b = unsafe { bpf_probe_read_user((p + off) as *const [u8; 6]) }.ok()?;
    status(&b).filter(|c| *c >= 200)
}

/// A write of `num` bytes at `buf` on connection `ssl` of process `id` (`tgid << 32 | pid`),
/// whose first 16 bytes are `head`. The statuses it carries are counted when the connection's
/// service is known, else returned packed (0: none).
#[inline(always)]
pub fn on_write(id: u64, ssl: u64, buf: u64, num: u64, head: &[u8; 16]) -> u64 {
    on_bytes(id, ssl, buf, num, head, true)
}

/// [`on_write`] for a batch of records read at its first send (tls_record.rs): each batch
/// is read once, so there is no retry to tell apart and no write to follow to its socket.
#[inline(always)]
pub fn on_batch(id: u64, ssl: u64, buf: u64, num: u64, head: &[u8; 16]) -> u64 {
    on_bytes(id, ssl, buf, num, head, false)
}

#[inline(always)]
fn on_bytes(id: u64, ssl: u64, buf: u64, num: u64, head: &[u8; 16], call: bool) -> u64 {
    // The statuses go to a per-CPU slot, not the stack: the verifier follows every value a
    // stack counter takes through the walk's loop as a state of its own, and a map value's
    // contents it does not.
    let Some(t) = H2_FOUND.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot; the kernel runs one uprobe or kprobe program at a time on a CPU
    // (`bpf_prog_active`: a run that would nest is skipped), so no other run uses it meanwhile.
    let t = unsafe { &mut *t };
    *t = Found::default();
    if let Some(k) = walk(id, ssl, buf, num, head, t, call) {
        if t.tally.any() {
            count_tally(&k, &t.tally);
        }
    }
    t.pending
}

/// The statuses a walk found: counted in `tally` for a connection whose service is known,
/// else packed in `pending`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Found {
    tally: Tally,
    known: u32,
    pending: u64,
}

impl Found {
    #[inline(always)]
    fn add(&mut self, code: u16) {
        if self.known != 0 {
            self.tally.add(code);
        } else {
            self.pending = pending_push(self.pending, code);
        }
    }
}

#[map]
static H2_FOUND: PerCpuArray<Found> = PerCpuArray::with_max_entries(1, 0);

/// Walks the write; the connection's service when it is known (its statuses are then in
/// `t.tally`). `call`: an `SSL_write`'s, whose retries and socket the syscall hook follows.
#[inline(always)]
fn walk(
    id: u64,
    ssl: u64,
    buf: u64,
    num: u64,
    head: &[u8; 16],
    t: &mut Found,
    call: bool,
) -> Option<HttpKey> {
    let key = h2_key(id, ssl);
    // No HTTP/2 connection followed anywhere (a host that serves none): no lookup for the
    // writes that are not a preface (clients' requests, HTTP/1.x bodies).
    let known = if gate::any(H2_FOLLOWED) {
        H2_CONNS.get_ptr_mut(&key)
    } else {
        None
    };
    let st = match known {
        Some(p) => p,
        None => {
            let h = [
                head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7], head[8],
            ];
            if !is_server_preface(&h) {
                return None;
            }
            if H2_CONNS
                .insert(&key, &H2Conn::default(), BPF_NOEXIST as u64)
                .is_ok()
            {
                gate::inc(H2_FOLLOWED);
            }
            H2_CONNS.get_ptr_mut(&key)?
        }
    };
    if call {
        writing(id, &key);
    }
    // SAFETY: this connection's entry; only the thread writing on it runs this.
    let mut c = unsafe { *st };
    t.known = c.known;
    let svc = (c.known != 0).then_some(c.svc);
    // A retry: only the bytes the failed call did not have. A batch of the record layer is
    // read once, at its first send, and is never one (`again` may be stale from before the
    // switch).
    let (from, num_new) = to_walk(call && c.again != 0, c.walked, num);
    c.again = 0;
    c.walked = num;
    let (buf, num) = (buf + from, num_new);
    if num == 0 {
        // SAFETY: as above.
        unsafe { *st = c };
        return svc;
    }
    let mut o = c.skip;
    if c.part > 0 {
        // The last write ended inside a frame header: its rest starts this write.
        let need = FRAME_HEADER - u64::from(c.part);
        let (Ok(rest), true) = (
            unsafe { bpf_probe_read_user(buf as *const [u8; 9]) },
            num >= need,
        ) else {
            desync(&key);
            return svc;
        };
        let Some(f) = frame(&join_head(&c.head, &rest, c.part)).filter(|f| f.kind <= 9) else {
            desync(&key);
            return svc;
        };
        if f.kind == HEADERS {
            if let Some(code) = headers_status(buf + need, f.flags, buf + num) {
                t.add(code);
            }
        }
        o = need + u64::from(f.len);
    }
    let mut walked = 0;
    while walked < MAX_FRAMES && o + FRAME_HEADER <= num {
        let Some(f) = (unsafe { bpf_probe_read_user((buf + o) as *const [u8; 9]) })
            .ok()
            .filter(plausible)
            .and_then(|h| frame(&h))
        else {
            desync(&key);
            return svc;
        };
        if f.kind == HEADERS {
            if let Some(code) = headers_status(buf + o + FRAME_HEADER, f.flags, buf + num) {
                t.add(code);
            }
        }
        o += FRAME_HEADER + u64::from(f.len);
        walked += 1;
    }
    if o + FRAME_HEADER <= num {
        // More frames than the walk reads.
        desync(&key);
        return svc;
    }
    c.part = 0;
    c.skip = 0;
    if o < num {
        // This write ends inside a frame header: keep what of its first 5 bytes came.
        let part = num - o;
        let n = if part > 5 { 5 } else { part as u32 };
        c.head = [0; 5];
        // SAFETY: `n` (1..=5) bytes into the 5-byte array.
        let r = unsafe { probe_read_user(c.head.as_mut_ptr() as *mut _, n, (buf + o) as *const _) };
        if r != 0 {
            desync(&key);
            return svc;
        }
        c.part = part as u32;
    } else {
        c.skip = o - num;
    }
    // SAFETY: as above.
    unsafe { *st = c };
    svc
}

/// Called by `tls.rs` when the write(2) after an `SSL_write` of thread `id` named the socket
/// of the connection the thread is writing on: its service `k`, kept for the connection's
/// later writes.
#[inline(always)]
pub fn learned(id: u64, k: &HttpKey) {
    // SAFETY: a copy-free read of this thread's own entry.
    if let Some(call) = unsafe { H2_CALLS.get(&id) } {
        keep(&call.key, k);
    }
}

/// The service `k` of connection `ssl` of the current process, found at a send (tls_record.rs),
/// kept for its later batches.
#[inline(always)]
pub fn learn(id: u64, ssl: u64, k: &HttpKey) {
    keep(&h2_key(id, ssl), k);
}

#[inline(always)]
fn keep(key: &H2Key, k: &HttpKey) {
    if let Some(c) = H2_CONNS.get_ptr_mut(key) {
        // SAFETY: the connection's entry; only the thread writing on it writes it.
        unsafe {
            (*c).svc = *k;
            (*c).known = 1;
        }
    }
}

/// A handshake of connection `ssl` of process `id` completed (tls_hs.rs): a new connection.
/// An earlier one whose `SSL` object had the same address (malloc hands it out again as soon
/// as it is freed) must not pass it its service or its place in the frames.
#[inline(always)]
pub fn forget(id: u64, ssl: u64) {
    if !gate::any(H2_FOLLOWED) {
        return;
    }
    unfollow(&h2_key(id, ssl));
}

/// Removes connection `key`'s entry, counted down when there was one.
#[inline(always)]
fn unfollow(key: &H2Key) {
    if H2_CONNS.remove(key).is_ok() {
        gate::dec(H2_FOLLOWED);
    }
}

/// The key of connection `ssl` of the process of `id` (`tgid << 32 | pid`).
#[inline(always)]
fn h2_key(id: u64, ssl: u64) -> H2Key {
    H2Key {
        ssl,
        tgid: (id >> 32) as u32,
        _pad: 0,
    }
}

/// The connection's place is lost: it is no longer followed.
#[inline(always)]
fn desync(key: &H2Key) {
    unfollow(key);
    count_loss(LOSS_H2_DESYNC);
}
