//! SYN limits enforced by the XDP program: token buckets per source address and per
//! destination port, written by userspace remedies (`xdp_source_limit`, `xdp_port_limit`),
//! and the "good sources" that recently completed a passive handshake.
//!
//! Times are boot-time nanoseconds (`bpf_ktime_get_boot_ns`, `CLOCK_BOOTTIME`).

/// A source address (IPv4 in the first 4 bytes of `addr`, or IPv6), and for a source limit
/// the destination port it applies to (0: every port). Good sources and the protected-source
/// trie (`PROTECTED_SRC`, with `port` 0) use the address alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LimitSrcKey {
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Host byte order; 0: any port.
    pub port: u16,
    pub addr: [u8; 16],
}

/// Bits of a [`LimitSrcKey`] before the address, for the protected-source LPM trie: an
/// address prefix of length `n` is a trie prefix of `LPM_ADDR_OFFSET_BITS + n`.
pub const LPM_ADDR_OFFSET_BITS: u32 = 32;

/// Slots of the `XDP_INSERTS` per-CPU array: new keys created in the maps that traffic from
/// outside fills. Compared with the entries userspace reads back, they give the LRU evictions.
pub const INS_SYN_SRC: u32 = 0;
pub const INS_SYN_PORT: u32 = 1;
pub const INS_GOOD_SRC: u32 = 2;
pub const INS_SLOTS: u32 = 3;

/// A destination port (host byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LimitPortKey {
    pub port: u16,
    pub _pad: u16,
}

/// One token = one SYN, in nano-tokens so that refills at any rate are exact integers.
pub const TOKEN: u64 = 1_000_000_000;

/// A source that completed a passive handshake this recently bypasses port limits.
pub const GOOD_SOURCE_NS: u64 = 300 * 1_000_000_000;

/// A token bucket with an expiry. The XDP program refills and takes tokens in place; userspace
/// replaces the whole entry to install or renew it.
///
/// Concurrency: `tokens` and `last_ns` are updated with plain loads and stores from every
/// CPU. Two CPUs handling SYNs of the same key at the same instant may both take the same
/// token or refill the same interval twice; the error is at most one SYN per CPU per race,
/// which a rate limiter can afford (a spin lock per SYN would cost more than it saves).
/// `dropped` and `passed` are incremented atomically and are exact.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// Sustained SYNs per second.
    pub rate_pps: u64,
    /// Bucket size in SYNs (what may pass at once after a quiet period).
    pub burst: u64,
    /// Current fill, in nano-tokens ([`TOKEN`] per SYN).
    pub tokens: u64,
    /// When the bucket was last refilled; 0: never (the first SYN finds it full).
    pub last_ns: u64,
    /// The entry is ignored (and removed by the XDP program) from this time on.
    pub expires_ns: u64,
    /// SYNs dropped by this bucket.
    pub dropped: u64,
    /// SYNs this bucket let through.
    pub passed: u64,
}

impl TokenBucket {
    /// A bucket that expires at `expires_ns`; full at its first SYN (`last_ns` 0).
    pub fn new(rate_pps: u64, burst: u64, expires_ns: u64) -> Self {
        TokenBucket {
            rate_pps,
            burst,
            tokens: 0,
            last_ns: 0,
            expires_ns,
            dropped: 0,
            passed: 0,
        }
    }

    pub fn expired(&self, now_ns: u64) -> bool {
        now_ns >= self.expires_ns
    }

    /// Refills for the time since the last refill and takes one token if there is one.
    /// Returns whether the SYN may pass. Does not touch the counters.
    ///
    /// No checked or saturating arithmetic (the BPF backend cannot lower the overflow
    /// intrinsics): rate, burst and the refill interval are clamped so that nothing overflows
    /// (10 s · 2^30/s + 2^32 · 10^9 < 2^64).
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64) -> bool {
        let rate = if self.rate_pps > MAX_RATE {
            MAX_RATE
        } else {
            self.rate_pps
        };
        let burst = if self.burst > MAX_BURST {
            MAX_BURST
        } else {
            self.burst
        };
        let cap = burst * TOKEN;
        let mut tokens = if self.tokens > cap { cap } else { self.tokens };
        if self.last_ns == 0 {
            tokens = cap;
        } else if now_ns > self.last_ns {
            let mut elapsed = now_ns - self.last_ns;
            if elapsed > MAX_REFILL_NS {
                elapsed = MAX_REFILL_NS;
            }
            tokens += elapsed * rate;
            if tokens > cap {
                tokens = cap;
            }
        }
        if now_ns > self.last_ns {
            self.last_ns = now_ns;
        }
        let pass = tokens >= TOKEN;
        if pass {
            tokens -= TOKEN;
        }
        self.tokens = tokens;
        pass
    }
}

/// Largest rate honoured (SYNs per second).
pub const MAX_RATE: u64 = 1 << 30;
/// Largest burst honoured (SYNs).
pub const MAX_BURST: u64 = 1 << 32;
/// Longest interval refilled at once (a full bucket takes less at any useful rate).
pub const MAX_REFILL_NS: u64 = 10 * TOKEN;

const _: () = assert!(core::mem::size_of::<LimitSrcKey>() == 20);
const _: () = assert!(core::mem::size_of::<LimitPortKey>() == 4);
const _: () = assert!(core::mem::size_of::<TokenBucket>() == 56);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), integer fields only, explicit padding.
    unsafe impl aya::Pod for super::LimitSrcKey {}
    unsafe impl aya::Pod for super::LimitPortKey {}
    unsafe impl aya::Pod for super::TokenBucket {}
}
