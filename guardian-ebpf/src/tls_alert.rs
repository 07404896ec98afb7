//! Plaintext TLS alerts written by local processes, whatever their TLS stack (GnuTLS, Go,
//! rustls, a static OpenSSL...): alerts sent before the keys are set (handshake failures) are
//! cleartext records, `15 03 0x 00 02 <level> <description>`, and stacks write each one on its
//! own (7 bytes). Called from `http.rs`'s write side (`sys_exit.rs` or the syscall
//! tracepoints), or, where the socket tracepoints stand in for those (`tls_sock.rs`), from
//! the packets each socket sends (`http_skb.rs`: a segment of 127 bytes or less, whose payload
//! is 7 bytes).
//!
//! Cost for the other writes: write(2) and sendto(2) compare the length argument with 7, no
//! read; writev(2) compares `vlen` with 1 then reads one iovec; sendmsg(2) reads `msg_iov` and
//! `msg_iovlen` (one read), then the iovec when there is exactly one. Only a 7-byte buffer is
//! read and parsed (`parse_tls_alert`); only an alert resolves its socket.
//!
//! Counts per (netns, writer's role, listener, peer, level, description) in a per-CPU hash
//! map that is not LRU: a key is never evicted silently; a full map counts a `map_full` loss.
//! Userspace deletes the entries of gone namespaces and those idle for minutes
//! (guardian/src/source/tls_prune.rs), so the map holds only what is live.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_probe_read_user,
    macros::map,
    maps::{Array, HashMap},
};
use guardian_common::{
    http::parse_tls_alert,
    tls::{alert_role, AlertKey, ALERT_RECORD_LEN},
    LOSS_MAP_FULL,
};

use crate::ends::{ends, ends_of_sock, Ends};
use crate::http::HTTP_OFFSETS;
use crate::kernel::{current_netns, global, read, sock_netns};
use crate::maps::{count_loss, shared_add, OFFSETS};
use crate::sockfd::Handle;

/// Alerts per key: one value the CPUs share (alerts are rare: `maps::shared_inc`).
#[map]
pub static TLS_ALERTS: HashMap<AlertKey, u64> = HashMap::with_max_entries(16384, 0);

/// Where a write's bytes are: the syscall's arguments, as values (from the tracepoint
/// record or from the registers the syscall was entered with).
#[derive(Clone, Copy)]
pub enum Buf {
    /// write(2), sendto(2): the buffer and its length.
    Plain { buf: u64, len: u64 },
    /// writev(2): the `struct iovec *` and `vlen`.
    Iovec { vec: u64, vlen: u64 },
    /// sendmsg(2): the `struct user_msghdr *`.
    Msghdr { msg: u64 },
}

/// The user address of a 7-byte single-buffer write, or None (the common case, decided by
/// one compare for write/sendto).
#[inline(always)]
fn alert_buf(b: Buf) -> Option<u64> {
    // SAFETY: user memory through probe reads.
    unsafe {
        match b {
            Buf::Plain { buf, len } => (len == ALERT_RECORD_LEN).then_some(buf),
            Buf::Iovec { vec, vlen } => {
                if vlen != 1 {
                    return None;
                }
                single_iovec(vec)
            }
            Buf::Msghdr { msg } => {
                // `msg_iov` at 16, `msg_iovlen` at 24 (user ABI).
                let [iov, iovlen] = bpf_probe_read_user((msg + 16) as *const [u64; 2]).ok()?;
                if iovlen != 1 {
                    return None;
                }
                single_iovec(iov)
            }
        }
    }
}

/// The base of an iovec whose length is 7.
#[inline(always)]
unsafe fn single_iovec(iov: u64) -> Option<u64> {
    let [base, len] = unsafe { bpf_probe_read_user(iov as *const [u64; 2]) }.ok()?;
    (len == ALERT_RECORD_LEN).then_some(base)
}

/// The alert check of one write on `fd`; true when it was a TLS alert (then it is nothing
/// else: the HTTP status check can be skipped).
#[inline(always)]
pub fn on_write(fd: u64, b: Buf) -> bool {
    let Some(buf) = alert_buf(b) else {
        return false;
    };
    let Ok(bytes) = (unsafe { bpf_probe_read_user(buf as *const [u8; 7]) }) else {
        return false;
    };
    let Some((level, desc)) = parse_tls_alert(&bytes) else {
        return false;
    };
    let k = alert_key(fd, level, desc);
    count(&k);
    true
}

/// The key of an alert written on socket `fd` of the current task.
#[inline(always)]
fn alert_key(fd: u64, level: u8, desc: u8) -> AlertKey {
    let mut k = AlertKey {
        netns: current_netns(&global(&OFFSETS)),
        level,
        desc,
        ..Default::default()
    };
    k.role = ends(Handle::Fd(fd), writer_role, out(&mut k)).unwrap_or(0);
    k
}

/// The writer's role comes from its socket (`alert_role`).
#[inline(always)]
fn writer_role(sk: *const u8) -> u8 {
    let backlog = unsafe { read::<u32>(sk, global(&HTTP_OFFSETS).sk_max_ack_backlog) };
    alert_role(backlog.unwrap_or(0))
}

/// Where the ends go in `k` (ends.rs: in place).
#[inline(always)]
fn out(k: &mut AlertKey) -> Ends<'_> {
    Ends {
        family: &mut k.family,
        port: &mut k.port,
        addr: &mut k.addr,
        peer: &mut k.peer,
    }
}

/// Slot 0 is 1 when alerts are counted from the packets a socket sends (`http_skb.rs`'s
/// egress program calls `on_segment`): set by userspace where the socket tracepoints
/// (`tls_sock.rs`) stand in for the syscall hook, so that no write reaches `on_write`. It
/// stays 0 elsewhere, so that no alert is counted twice.
#[map]
pub static TLS_ALERT_SKB: Array<u32> = Array::with_max_entries(1, 0);

/// The longest segment whose payload can be one alert record: IPv4 and TCP headers with the
/// most options each (IPv6 extension headers are not followed), and 7 bytes.
pub const ALERT_SEGMENT_MAX: u32 = 60 + 60 + ALERT_RECORD_LEN as u32;

/// Whether alerts are counted from the packets.
#[inline(always)]
pub fn at_packets() -> bool {
    matches!(TLS_ALERT_SKB.get(0), Some(&v) if v != 0)
}

/// A segment sent by socket `sk` (a BTF pointer) whose payload is exactly `bytes`: counted when
/// it is an alert, keyed as `on_write` keys one, with the socket's namespace (the sending
/// task is not always the writer: a retransmission runs from a timer). A retransmitted alert
/// counts twice; stacks send one right before they close, so that is rare.
#[inline(always)]
pub fn on_segment(sk: *const u8, bytes: &[u8; 7]) {
    let Some((level, desc)) = parse_tls_alert(bytes) else {
        return;
    };
    let mut k = AlertKey {
        netns: unsafe { sock_netns(&global(&OFFSETS), sk) },
        level,
        desc,
        ..Default::default()
    };
    k.role = ends_of_sock(sk, writer_role, out(&mut k)).unwrap_or(0);
    count(&k);
}

#[inline(always)]
fn count(k: &AlertKey) {
    if let Some(p) = TLS_ALERTS.get_ptr_mut(k) {
        shared_add(p, 1);
        return;
    }
    if TLS_ALERTS.insert(k, 1u64, BPF_NOEXIST as u64).is_err() {
        // Another CPU's insert of the same key won: add to it. Else the map is full.
        match TLS_ALERTS.get_ptr_mut(k) {
            Some(p) => shared_add(p, 1),
            None => count_loss(LOSS_MAP_FULL),
        }
    }
}
