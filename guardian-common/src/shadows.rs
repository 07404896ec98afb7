//! Types for the connection-level shadows (`reset_storm`): TCP resets counted per (netns,
//! service port, direction) by the `tcp:tcp_send_reset` / `tcp:tcp_receive_reset` programs,
//! and CLOSE_WAIT sockets per (netns, local port) (`close_wait_leak`).

/// RSTs per (netns, service port, direction, side). The service port is the lower of the
/// connection's two ports (the listener's, not the ephemeral one); `remote` says whether it
/// is the peer's port (a client reset by, or resetting, the service it called).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RstKey {
    pub netns: u32,
    /// Host byte order.
    pub port: u16,
    /// [`RST_SENT`] or [`RST_RECEIVED`].
    pub dir: u8,
    /// 1 when `port` is the peer's port, 0 when it is the local one.
    pub remote: u8,
}
const _: () = assert!(core::mem::size_of::<RstKey>() == 8);

pub const RST_SENT: u8 = 0;
pub const RST_RECEIVED: u8 = 1;

/// Offsets the reset programs need, from tracefs and BTF at load time. [`ShadowOffsets::ABSENT`]
/// marks a field this kernel lacks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShadowOffsets {
    /// `tcp:tcp_send_reset.skaddr` (NULL for a reset to a segment no socket owns, 6.10+).
    pub srst_skaddr: u16,
    /// `tcp:tcp_send_reset.skbaddr`.
    pub srst_skbaddr: u16,
    /// Since 6.10: `saddr`/`daddr` are `struct sockaddr_in{,6}` (the port, big endian, two
    /// bytes in). ABSENT before.
    pub srst_saddr: u16,
    pub srst_daddr: u16,
    /// Before 6.10: `sport`/`dport` in host byte order. ABSENT since.
    pub srst_sport: u16,
    pub srst_dport: u16,
    /// `tcp:tcp_receive_reset` skaddr, sport, dport (host byte order).
    pub rrst_skaddr: u16,
    pub rrst_sport: u16,
    pub rrst_dport: u16,
    /// `struct sk_buff.dev` and `struct net_device.nd_net.net`: the namespace of a reset sent
    /// for a segment no socket owns.
    pub skb_dev: u16,
    pub dev_nd_net: u16,
    /// `struct sock.sk_socket`, `struct socket_alloc.vfs_inode` minus `.socket`, and
    /// `struct inode.i_ino`: the inode of a socket entering CLOSE_WAIT (`close_wait_leak`).
    pub sk_socket: u16,
    pub socket_inode: u16,
    pub i_ino: u16,
    pub _pad: [u16; 2],
}
const _: () = assert!(core::mem::size_of::<ShadowOffsets>() == 32);

impl ShadowOffsets {
    pub const ABSENT: u16 = u16::MAX;
    /// Nothing known: the programs count nothing.
    pub const NONE: ShadowOffsets = ShadowOffsets {
        srst_skaddr: Self::ABSENT,
        srst_skbaddr: Self::ABSENT,
        srst_saddr: Self::ABSENT,
        srst_daddr: Self::ABSENT,
        srst_sport: Self::ABSENT,
        srst_dport: Self::ABSENT,
        rrst_skaddr: Self::ABSENT,
        rrst_sport: Self::ABSENT,
        rrst_dport: Self::ABSENT,
        skb_dev: Self::ABSENT,
        dev_nd_net: Self::ABSENT,
        sk_socket: Self::ABSENT,
        socket_inode: Self::ABSENT,
        i_ino: Self::ABSENT,
        _pad: [0; 2],
    };
}

/// `close_wait_leak`: sockets that entered and left CLOSE_WAIT per (netns, local port), in a
/// map keyed by [`RstKey`] with `dir` one of these (`remote` 0).
pub const CW_ENTERED: u8 = 0;
pub const CW_LEFT: u8 = 1;

/// One socket in CLOSE_WAIT (keyed by its `struct sock *`): where, and its inode, so that
/// userspace finds the process that holds it when the fault is about to open.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CwSock {
    pub netns: u32,
    pub port: u16,
    pub _pad: u16,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<CwSock>() == 16);

/// `dns_spoofing_suspected`: an outstanding DNS query, by (interface, resolver, client port,
/// transaction id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DnsQueryKey {
    pub ifindex: u32,
    pub family: u16,
    /// The client's UDP port, host byte order.
    pub port: u16,
    pub id: u16,
    pub _pad: [u16; 3],
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<DnsQueryKey>() == 32);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C) plain integers, explicit padding.
    unsafe impl aya::Pod for super::RstKey {}
    unsafe impl aya::Pod for super::ShadowOffsets {}
    unsafe impl aya::Pod for super::CwSock {}
    unsafe impl aya::Pod for super::DnsQueryKey {}
}
