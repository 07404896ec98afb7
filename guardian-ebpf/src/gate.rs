//! What lets the syscall hook, which runs for every read and write of every process, skip
//! work: which processes use OpenSSL (`TLS_TGIDS`, at the end), and how many entries the
//! per-thread TLS maps hold, so that it skips a hash lookup in a map that is empty: the
//! usual case when no handshake (`HS_CALLS`) or `SSL_write` (`TLS_PENDING`) is under way
//! anywhere, and always on a host that serves only plaintext. An array read is inlined by the
//! verifier (no helper call, no hashing); a hash lookup is neither.
//!
//! A count goes up only when an insert made a new entry and down only when a delete removed
//! one. A thread that dies inside a call leaves an entry that no return removes: the
//! thread-exit program removes it (tls_exit.rs). An entry left anyway (that program refused)
//! keeps its map looked up, which is the cost without the gate, never a missed entry.
use aya_ebpf::{macros::map, maps::Array};
use core::intrinsics::{atomic_xadd, AtomicOrdering};
use guardian_common::http::{tls_tgid_slot, TLS_TGID_SLOTS};

/// `HS_CALLS` (tls_hs.rs).
pub const HANDSHAKES: u32 = 0;
/// `TLS_PENDING` (tls.rs).
pub const PENDING: u32 = 1;
/// `H2_CALLS` (tls_h2.rs).
pub const H2_WRITING: u32 = 2;
/// `H2_CONNS` (tls_h2.rs): the HTTP/2 connections followed. An entry the LRU evicts is not
/// counted down, so the count only errs high.
pub const H2_FOLLOWED: u32 = 3;
/// Not a map's count: the TLS handshakes completed since the attach (tls_hs.rs), a
/// generation that tells a connection from an earlier socket at the same address
/// (tls_sock.rs, `PLAIN_SK`). Only goes up.
pub const HANDSHAKES_DONE: u32 = 4;

#[map]
static TLS_LIVE: Array<u64> = Array::with_max_entries(5, 0);

/// The count in `slot` (0 when the slot cannot be read).
#[inline(always)]
pub fn count(slot: u32) -> u64 {
    TLS_LIVE.get(slot).copied().unwrap_or(0)
}

/// Whether the map counted in `slot` may hold an entry.
#[inline(always)]
pub fn any(slot: u32) -> bool {
    matches!(TLS_LIVE.get(slot), Some(&n) if n != 0)
}

/// One entry more in the map counted in `slot`.
#[inline(always)]
pub fn inc(slot: u32) {
    add(slot, 1);
}

/// One entry less.
#[inline(always)]
pub fn dec(slot: u32) {
    add(slot, u64::MAX);
}

#[inline(always)]
fn add(slot: u32, d: u64) {
    if let Some(p) = TLS_LIVE.get_ptr_mut(slot) {
        // SAFETY: an array slot; the add is atomic (its result unused: BPF's atomic add).
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, d) };
    }
}

/// Processes that use OpenSSL: 1 in the slot of each one whose thread entered `SSL_write` or a
/// handshake function (tls.rs, tls_hs.rs), or that userspace found mapping a libssl
/// (guardian/src/probes/uprobe.rs), never cleared. Only their reads can start a TLS request, so
/// the syscall hook reads no other process's buffers when plaintext is left to the packet
/// programs (http.rs, `on_read`): most reads of most processes on a host, saved a look into
/// user memory each. Bytes, not bits: every writer stores the same 1 (5.10 has no atomic or).
#[map]
static TLS_TGIDS: Array<u8> = Array::with_max_entries(TLS_TGID_SLOTS, 0);

/// Marks process `tgid` as one that uses OpenSSL.
#[inline(always)]
pub fn mark_tls(tgid: u32) {
    if let Some(p) = TLS_TGIDS.get_ptr_mut(tls_tgid_slot(tgid)) {
        // SAFETY: a byte of this array; any writer stores the same 1.
        unsafe {
            if *p == 0 {
                *p = 1;
            }
        }
    }
}

/// Whether process `tgid` may use OpenSSL.
#[inline(always)]
pub fn uses_tls(tgid: u32) -> bool {
    matches!(TLS_TGIDS.get(tls_tgid_slot(tgid)), Some(&v) if v != 0)
}
