//! Types for the flow signals (handshakes per port, connections per source, retransmit patterns
//! per flow). Shared byte for byte by the eBPF programs and the daemon.

/// Completed passive handshakes (SYN_RECV -> ESTABLISHED) per (netns, local port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortKey {
    pub netns: u32,
    /// Host byte order.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<PortKey>() == 8);

/// One TCP flow as seen by its sender: (netns, destination address, destination port,
/// source port). IPv4 addresses in the first four bytes of `daddr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub netns: u32,
    pub family: u16,
    /// Host byte order.
    pub dport: u16,
    /// Host byte order.
    pub sport: u16,
    pub _pad: u16,
    pub daddr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 28);

/// Retransmit pattern of one flow. Updated under the socket lock (a flow's retransmits are
/// serialized), so the map holding it is shared, not per-CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowRtx {
    /// Retransmitted skbs of at least the flow's MSS (`skb->len >= tcp_sock.mss_cache`).
    pub full: u64,
    /// Retransmitted skbs shorter than the MSS.
    pub small: u64,
    /// Full-size retransmits sent by the retransmission timer (`icsk_retransmits >= 1`).
    pub rto_full: u64,
    /// Small retransmits sent by the retransmission timer.
    pub rto_small: u64,
    /// `bpf_ktime_get_ns` of the last retransmit.
    pub last_ns: u64,
    /// `tcp_sock.mss_cache` at the last retransmit.
    pub mss: u32,
    /// `skb->len` of the last retransmit.
    pub len: u32,
    /// Consecutive timer retransmits of full-size segments without progress: the socket's
    /// `icsk_retransmits` at the last full-size timer retransmit, 0 once a small segment needed
    /// the timer or a retransmit happened outside the timer (progress was made).
    pub full_streak: u32,
    /// `icsk_backoff` at the last retransmit.
    pub backoff: u32,
}
const _: () = assert!(core::mem::size_of::<FlowRtx>() == 56);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C) plain integers with explicit padding.
    unsafe impl aya::Pod for super::PortKey {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowRtx {}
}
