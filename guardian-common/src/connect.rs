//! How failed connects ended, per (netns, destination, uid): `sockopt_failfast` only trusts
//! connects that the network timed out (ETIMEDOUT after SYN retransmissions) from more than
//! one uid, never connects the application closed itself (`guardian-ebpf/src/tcp.rs` counts
//! them in `CONNECT_END`, `guardian/src/source/connect_ends.rs` reads them).

/// The socket closed with ETIMEDOUT: its SYN retransmissions ran out (or `TCP_USER_TIMEOUT`).
pub const END_TIMEOUT: u32 = 1;
/// The application closed (or disconnected) the socket while in SYN_SENT: `sk_err` was 0.
pub const END_ABANDONED: u32 = 2;
/// Another error ended the connect (an ICMP error: host/net unreachable, TTL exceeded...).
pub const END_ERROR: u32 = 3;
/// This kernel's BTF lacks `sock.sk_err`: the end cannot be told.
pub const END_UNKNOWN: u32 = 0;
/// `uid` when this kernel's BTF lacks `sock.sk_uid`.
pub const UID_UNKNOWN: u32 = u32::MAX;

/// A failed connect that was not refused, by how it ended and whose socket it was.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnEndKey {
    pub netns: u32,
    pub family: u16,
    /// Destination port, host byte order.
    pub port: u16,
    /// `sk_uid` of the socket (the owner, also when a timer closed it).
    pub uid: u32,
    /// `END_*`.
    pub reason: u32,
    /// IPv4 in the first four bytes, the rest zero; IPv6 as 16 bytes.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<ConnEndKey>() == 32);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C) integers and a byte array, no implicit padding.
    unsafe impl aya::Pod for super::ConnEndKey {}
}
