//! Plaintext TLS alerts written by local processes, whatever their TLS stack (GnuTLS, Go,
//! rustls, a static OpenSSL...): alerts sent before the keys are set (handshake failures) are
//! cleartext records, `15 03 0x 00 02 <level> <description>`, and stacks write each one on its
//! own (7 bytes). Called from `http.rs`'s write side (`sys_exit.rs` or the syscall
//! tracepoints).
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
    bindings::BPF_NOEXIST, helpers::bpf_probe_read_user, macros::map, maps::PerCpuHashMap,
};
use guardian_common::{
    http::parse_tls_alert,
    tls::{alert_role, AlertKey, ALERT_RECORD_LEN},
    LOSS_MAP_FULL,
};

use crate::ends::ends;
use crate::http::HTTP_OFFSETS;
use crate::kernel::{current_netns, global, read};
use crate::maps::{count_loss, OFFSETS};

/// Alerts per key (per-CPU; userspace sums the CPUs).
#[map]
pub static TLS_ALERTS: PerCpuHashMap<AlertKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

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
    // The writer's role comes from its socket (`alert_role`).
    let backlog = |sk| unsafe { read::<u32>(sk, global(&HTTP_OFFSETS).sk_max_ack_backlog) };
    if let Some((role, e)) = ends(fd, |sk| alert_role(backlog(sk).unwrap_or(0))) {
        k.role = role;
        k.family = e.family;
        k.port = e.port;
        k.addr = e.addr;
        k.peer = e.peer;
    }
    k
}

#[inline(always)]
fn count(k: &AlertKey) {
    if let Some(p) = TLS_ALERTS.get_ptr_mut(k) {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe { *p += 1 };
        return;
    }
    if TLS_ALERTS.insert(k, 1u64, BPF_NOEXIST as u64).is_err() {
        // Another CPU's insert of the same key won: per-CPU values, ours is still 0. Else the
        // map is full.
        match TLS_ALERTS.get_ptr_mut(k) {
            Some(p) => unsafe { *p += 1 },
            None => count_loss(LOSS_MAP_FULL),
        }
    }
}
