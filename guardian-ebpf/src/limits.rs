//! SYN limits for `guardian_xdp`: a token bucket per source address (`LIMIT_SRC`) and per
//! destination port (`LIMIT_PORT`), installed by userspace remedies with an expiry. Only TCP
//! SYNs without ACK reach this code.
//!
//! A port limit is meant for spoofed floods, so sources that recently completed a passive
//! handshake (`GOOD_SRC`, fed by the `sock_state` tracepoint, see `tcp.rs`) bypass it: a
//! spoofed source never completes one, a returning client has. A source limit applies to
//! every SYN of that source.
//!
//! An expired entry is ignored and removed here on its next SYN. (If userspace renews the
//! entry between this program's read and its delete, the renewal is lost; the remedy's
//! verification, which reads the entry back, reports it.) Bucket concurrency: see
//! `guardian_common::limits::TokenBucket`.
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_boot_ns,
    macros::map,
    maps::{lpm_trie::Key, Array, LpmTrie, LruHashMap},
};
use guardian_common::limits::{
    LimitPortKey, LimitSrcKey, TokenBucket, GOOD_SOURCE_NS, INS_GOOD_SRC, LPM_ADDR_OFFSET_BITS,
};

use crate::maps::count_insert;

/// Slot 0 nonzero: a limit may be installed. Userspace sets it before it installs a limit and
/// clears it when both limit maps are empty (`guardian/src/probes/limits.rs`), so that while no
/// remedy holds a limit a SYN costs one array read here (inlined by the verifier) instead of
/// two hash lookups.
#[map]
pub static LIMITS_ON: Array<u32> = Array::with_max_entries(1, 0);

/// Source limits. Bounded; LRU so that a full map evicts the oldest limit instead of
/// refusing a new one (userspace verifies each insert).
#[map]
pub static LIMIT_SRC: LruHashMap<LimitSrcKey, TokenBucket> = LruHashMap::with_max_entries(4096, 0);

/// Destination port limits.
#[map]
pub static LIMIT_PORT: LruHashMap<LimitPortKey, TokenBucket> =
    LruHashMap::with_max_entries(1024, 0);

/// Protected sources (`safety.protected_sources`: gateways, resolvers, local addresses,
/// operator prefixes), kept in sync by userspace: no limit applies to them. Keys are
/// [`LimitSrcKey`]s with port 0; an address prefix of length n is a trie prefix of
/// `LPM_ADDR_OFFSET_BITS + n`.
#[map]
pub static PROTECTED_SRC: LpmTrie<LimitSrcKey, u8> = LpmTrie::with_max_entries(1024, 0);

/// Sources that completed a passive handshake, with the boot time (ns) they last did.
#[map]
pub static GOOD_SRC: LruHashMap<LimitSrcKey, u64> = LruHashMap::with_max_entries(65536, 0);

/// Whether a SYN from `src` (port 0) to `port` passes the limits: protected sources always
/// do; then the source's limit on this port, its limit on every port, the port's limit.
#[inline(always)]
pub fn syn_allowed(src: &LimitSrcKey, port: u16) -> bool {
    if !matches!(LIMITS_ON.get(0), Some(&on) if on != 0) {
        return true;
    }
    if PROTECTED_SRC
        .get(Key::new(LPM_ADDR_OFFSET_BITS + 128, *src))
        .is_some()
    {
        return true;
    }
    // One map lookup at a time: the verifier rejects arithmetic on two nullable map pointers,
    // which is what the compiler makes of "both absent".
    let on_port = LimitSrcKey { port, ..*src };
    if let Some(b) = LIMIT_SRC.get_ptr_mut(&on_port) {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        if !admit(&LIMIT_SRC, &on_port, b, now) {
            return false;
        }
    }
    if let Some(b) = LIMIT_SRC.get_ptr_mut(src) {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        if !admit(&LIMIT_SRC, src, b, now) {
            return false;
        }
    }
    let pk = LimitPortKey { port, _pad: 0 };
    if let Some(b) = LIMIT_PORT.get_ptr_mut(&pk) {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        if !good(src, now) {
            return admit(&LIMIT_PORT, &pk, b, now);
        }
    }
    true
}

/// Records that `src` completed a passive handshake.
#[inline(always)]
pub fn mark_good(src: &LimitSrcKey) {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(t) = GOOD_SRC.get_ptr_mut(src) {
        // SAFETY: map value; racing writers store nearly the same time.
        unsafe { *t = now };
        return;
    }
    if GOOD_SRC.insert(src, &now, BPF_NOEXIST as u64).is_ok() {
        count_insert(INS_GOOD_SRC);
    }
}

#[inline(always)]
fn good(src: &LimitSrcKey, now: u64) -> bool {
    match GOOD_SRC.get_ptr(src) {
        // SAFETY: map value; a racing update stores a newer time, either is fine.
        Some(t) => now.saturating_sub(unsafe { *t }) < GOOD_SOURCE_NS,
        None => false,
    }
}

#[inline(always)]
fn admit<K>(map: &LruHashMap<K, TokenBucket>, key: &K, b: *mut TokenBucket, now: u64) -> bool {
    // SAFETY: `b` points into `map`'s value for `key`; see the module doc on concurrency.
    unsafe {
        if (*b).expired(now) {
            let _ = map.remove(key);
            return true;
        }
        let pass = (*b).take(now);
        let counter = if pass {
            &raw mut (*b).passed
        } else {
            &raw mut (*b).dropped
        };
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, 1);
        pass
    }
}
