//! `sockopt_failfast`: the sock_ops policy map shared by `guardian-ebpf/src/sockops.rs` and
//! `guardian/src/probes/sockops.rs`.
//!
//! Key: (network namespace cookie, family, destination port, destination address). The
//! namespace is identified by its **netns cookie**, the 64-bit id `bpf_get_netns_cookie()`
//! returns in a sock_ops program; userspace learns the cookie of a namespace (it knows the
//! namespace's inode) with `getsockopt(SO_NETNS_COOKIE)` on a socket opened inside it. A policy
//! therefore only touches connects made in the namespace where the fault was seen.

/// Destination of a fail-fast policy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FailfastKey {
    /// `bpf_get_netns_cookie()` of the connecting socket's namespace.
    pub netns_cookie: u64,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Destination port, host byte order (never 0 in a policy).
    pub port: u16,
    pub _pad: u32,
    /// IPv4 in the first four bytes (network order), the rest zero; IPv6 as 16 bytes.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<FailfastKey>() == 32);

/// What a new connect to a policy's destination gets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailfastPolicy {
    /// `TCP_SYNCNT` (SYN retransmissions); 0 leaves it alone. Only ever lowered.
    pub syn_count: u32,
    /// `TCP_USER_TIMEOUT` in ms for the handshake; 0 leaves it alone. Only ever lowered, and
    /// restored to the socket's previous value once the connection is established.
    pub user_timeout_ms: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) after which the policy no longer applies and the
    /// program deletes it; 0 = no expiry.
    pub expires_ns: u64,
    /// Connects the policy was applied to (written by the program).
    pub hits: u64,
    /// `bpf_setsockopt`/`bpf_getsockopt` calls that failed (written by the program).
    pub errors: u64,
}
const _: () = assert!(core::mem::size_of::<FailfastPolicy>() == 32);

/// A socket whose `TCP_USER_TIMEOUT` the program lowered, keyed by socket cookie: the value to
/// restore once the handshake is over.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailfastSaved {
    pub user_timeout_ms: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<FailfastSaved>() == 8);

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::FailfastKey {}
    unsafe impl aya::Pod for super::FailfastPolicy {}
    unsafe impl aya::Pod for super::FailfastSaved {}
}
