//! Types shared by guardian's eBPF programs and its userspace daemon.
//!
//! Everything here is `#[repr(C)]`, uses only fixed-size integer fields (no `bool`, no `Option`),
//! and has its size pinned by a compile-time assertion so that both sides agree byte for byte.
#![no_std]

pub mod connect;
pub mod dns;
pub mod failfast;
pub mod flows;
pub mod h2;
pub mod http;
pub mod limits;
pub mod shadows;
pub mod tls;
pub mod tls_record;

/// Offsets the eBPF programs need, derived at load time by userspace from tracefs `format` files
/// and from kernel BTF. Nothing kernel-version-specific is compiled into the programs.
///
/// An offset of [`Offsets::ABSENT`] means "this field does not exist on this kernel".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    // tcp:tcp_retransmit_skb
    pub rtx_skbaddr: u16,
    pub rtx_skaddr: u16,
    pub rtx_state: u16,
    /// `err` exists only since Linux 6.17; ABSENT before.
    pub rtx_err: u16,
    // tcp:tcp_retransmit_synack
    pub synack_skaddr: u16,
    // sock:inet_sock_set_state
    pub st_skaddr: u16,
    pub st_oldstate: u16,
    pub st_newstate: u16,
    pub st_dport: u16,
    pub st_family: u16,
    pub st_protocol: u16,
    pub st_daddr: u16,
    pub st_daddr_v6: u16,
    // syscalls:sys_enter_bind / sys_exit_bind / sys_exit_connect
    pub bind_umyaddr: u16,
    pub bind_addrlen: u16,
    pub exit_ret: u16,
    // Kernel structures (BTF).
    /// `struct sock_common.skc_net.net`: the socket's `struct net *`.
    pub sock_net: u16,
    /// `struct net.ns.inum`: the namespace's inode number.
    pub net_inum: u16,
    /// `struct task_struct.nsproxy`.
    pub task_nsproxy: u16,
    /// `struct nsproxy.net_ns`.
    pub nsproxy_net_ns: u16,
    /// `struct sk_buff.cb` + `struct tcp_skb_cb.tcp_gso_segs` (what `tcp_skb_pcount` reads).
    pub skb_gso_segs: u16,
    /// `struct sk_buff.cb` + `struct tcp_skb_cb.tcp_flags`.
    pub skb_tcp_flags: u16,
    // Flow signals (guardian_common::flows).
    /// `sock:inet_sock_set_state.sport`.
    pub st_sport: u16,
    /// `tcp:tcp_retransmit_skb` sport, dport, family, daddr, daddr_v6.
    pub rtx_sport: u16,
    pub rtx_dport: u16,
    pub rtx_family: u16,
    pub rtx_daddr: u16,
    pub rtx_daddr_v6: u16,
    /// `struct sk_buff.len`.
    pub skb_len: u16,
    /// `struct tcp_sock.mss_cache` (u32).
    pub tcp_mss_cache: u16,
    /// `struct inet_connection_sock.icsk_retransmits` (u8).
    pub icsk_retransmits: u16,
    /// `struct inet_connection_sock.icsk_backoff` (u8).
    pub icsk_backoff: u16,
    /// `struct sock.sk_err` (int): ECONNREFUSED after a RST to a SYN. ABSENT when this
    /// kernel's BTF lacks it (every failed connect then counts as a failure).
    pub sk_err: u16,
    /// `struct sock.sk_uid` (`kuid_t`, its `val` first): the uid that owns the socket, kept
    /// when a timer closes it. ABSENT when this kernel's BTF lacks it (uid then unknown).
    pub sk_uid: u16,
    /// `struct tcp_sock.segs_out` (u32): 0 when a connect fails before its SYN left (no free
    /// 4-tuple: EADDRNOTAVAIL, also for a socket bound to its port). ABSENT when this kernel's
    /// BTF lacks it (then only a connect left without a source port counts).
    pub tcp_segs_out: u16,
}

impl Offsets {
    pub const ABSENT: u16 = u16::MAX;
}
const _: () = assert!(core::mem::size_of::<Offsets>() == 70);

/// Per network namespace counters (per-CPU hash map keyed by the netns inode number).
/// Userspace sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsCounters {
    /// Retransmitted TCP segments (sum of `tcp_skb_pcount` of successful retransmissions).
    pub retrans_segs: u64,
    /// Retransmissions of a SYN (socket in SYN_SENT).
    pub syn_retrans: u64,
    /// `tcp_retransmit_synack` hits.
    pub synack_retrans: u64,
    /// SYN_SENT -> CLOSE transitions after a SYN left (source port set): connects that
    /// were refused, timed out or were unreachable.
    pub connect_failures: u64,
    /// Transitions that hand the connection to a TIME_WAIT socket (FIN_WAIT2/CLOSING -> CLOSE).
    pub tw_entries: u64,
    /// bind(2) returning -EADDRINUSE.
    pub bind_eaddrinuse: u64,
    /// connect(2) returning -EADDRNOTAVAIL.
    pub connect_eaddrnotavail: u64,
    /// `tcp_retransmit_skb` hits that returned before the retransmission was accounted
    /// (-EBUSY, -EINVAL, -ENOMEM, -EHOSTUNREACH, -EAGAIN): not retransmissions.
    pub retrans_failed: u64,
    /// Of `connect_failures`, those refused: the socket closed with ECONNREFUSED (a RST to
    /// the SYN, or ICMP port unreachable).
    pub connect_refused: u64,
}
const _: () = assert!(core::mem::size_of::<NsCounters>() == 72);

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// A destination (or source) address with port, IPv4 stored in the first four bytes of `addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub netns: u32,
    pub family: u16,
    /// Host byte order; 0 where the key has no port.
    pub port: u16,
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<AddrKey>() == 24);

/// XDP: SYNs per (interface, source address, destination port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XdpSrcKey {
    pub ifindex: u32,
    pub family: u16,
    /// Destination port (host byte order): SYNs are counted per (source, port).
    pub port: u16,
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<XdpSrcKey>() == 24);

/// XDP: SYNs per (interface, destination port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XdpPortKey {
    pub ifindex: u32,
    /// Host byte order.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<XdpPortKey>() == 8);

/// XDP: slots of the per-CPU array (`XDP_SYN_PORT_LO`) that counts SYNs per (interface, port)
/// without a hash lookup. A key takes the slot [`xdp_port_slot`] gives it on a CPU where the
/// slot is free, or held by a key with at most [`XDP_PORT_STEAL`] SYNs (whose count then moves
/// to the LRU hash `XDP_SYN_PORT`), and keeps it; a key whose slot a busier key holds on that
/// CPU is counted in the hash. A host's SYNs go to a few ports, so nearly every SYN is counted
/// in its slot, and a port scan's ports do not keep the slots from them. A power of two.
pub const XDP_PORT_SLOTS: u32 = 256;

/// XDP: a slot's holder with at most this many SYNs gives the slot up to another key (a
/// scanner sends one SYN to a closed port, two with a retransmission).
pub const XDP_PORT_STEAL: u64 = 2;

/// XDP: one slot of `XDP_SYN_PORT_LO`; free while `count` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpPortSlot {
    pub key: XdpPortKey,
    pub count: u64,
}
const _: () = assert!(core::mem::size_of::<XdpPortSlot>() == 16);

/// XDP: the slot of `XDP_SYN_PORT_LO` for (interface, port): a multiplicative hash of both,
/// its top bits (ports in a row land in different slots).
#[inline(always)]
pub fn xdp_port_slot(ifindex: u32, port: u16) -> u32 {
    ((ifindex << 16) ^ port as u32).wrapping_mul(0x9E37_79B1)
        >> (32 - XDP_PORT_SLOTS.trailing_zeros())
}
const _: () = assert!(XDP_PORT_SLOTS.is_power_of_two());

/// XDP: interfaces with an ifindex below this are counted in a per-CPU array indexed by
/// ifindex (`XDP_IFACE_LO`), the others in a per-CPU hash (`XDP_IFACE`).
pub const XDP_IFACE_SLOTS: u32 = 256;

/// XDP: per-interface totals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpIfaceStats {
    pub packets: u64,
    pub bytes: u64,
    pub syn: u64,
}
const _: () = assert!(core::mem::size_of::<XdpIfaceStats>() == 24);

/// Arguments of an in-flight bind(2), saved at sys_enter_bind, keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BindArgs {
    pub family: u16,
    pub port: u16,
    pub _pad: u32,
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<BindArgs>() == 24);

/// Kinds of individual ring buffer records.
pub const EV_BIND_CONFLICT: u32 = 1;
pub const EV_CONNECT_ADDRNOTAVAIL: u32 = 2;

/// A ring buffer record: a syscall that failed in an interesting way.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallEvent {
    pub kind: u32,
    pub netns: u32,
    pub tgid: u32,
    pub pid: u32,
    /// Negative errno the syscall returned.
    pub ret: i32,
    pub family: u16,
    /// Host byte order.
    pub port: u16,
    pub addr: [u8; 16],
    pub comm: [u8; 16],
    pub ktime_ns: u64,
}
const _: () = assert!(core::mem::size_of::<SyscallEvent>() == 64);

/// Slots of the per-CPU loss counter array.
/// A ring buffer reservation failed: an individual event was dropped.
pub const LOSS_RINGBUF: u32 = 0;
/// A counter map was full: a count was dropped.
pub const LOSS_MAP_FULL: u32 = 1;
/// An HTTP/2 connection's frames could not be followed through an `SSL_write` (more frames
/// than the walk reads, or a header split across three writes): the connection's later
/// responses are not counted.
pub const LOSS_H2_DESYNC: u32 = 2;
pub const LOSS_SLOTS: u32 = 3;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C) plain integers/arrays with no padding holes that matter
    // to the kernel (padding fields are explicit).
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::NsCounters {}
    unsafe impl aya::Pod for super::AddrKey {}
    unsafe impl aya::Pod for super::XdpSrcKey {}
    unsafe impl aya::Pod for super::XdpPortKey {}
    unsafe impl aya::Pod for super::XdpPortSlot {}
    unsafe impl aya::Pod for super::XdpIfaceStats {}
    unsafe impl aya::Pod for super::BindArgs {}
    unsafe impl aya::Pod for super::SyscallEvent {}
}
