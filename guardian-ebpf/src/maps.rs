//! Maps shared by the programs, and the counting helpers they use.
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    Global,
};
use guardian_common::{
    connect::ConnEndKey,
    flows::{FlowKey, FlowRtx, PortKey},
    limits::INS_SLOTS,
    AddrKey, BindArgs, NsCounters, Offsets, SyscallEvent, XdpIfaceStats, XdpPortKey, XdpPortSlot,
    XdpSrcKey, LOSS_MAP_FULL, LOSS_RINGBUF, LOSS_SLOTS, XDP_IFACE_SLOTS, XDP_PORT_SLOTS,
};

/// Field offsets, written by the loader before the programs are verified.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<Offsets> = Global::new(Offsets {
    rtx_skbaddr: Offsets::ABSENT,
    rtx_skaddr: Offsets::ABSENT,
    rtx_state: Offsets::ABSENT,
    rtx_err: Offsets::ABSENT,
    synack_skaddr: Offsets::ABSENT,
    st_skaddr: Offsets::ABSENT,
    st_oldstate: Offsets::ABSENT,
    st_newstate: Offsets::ABSENT,
    st_dport: Offsets::ABSENT,
    st_family: Offsets::ABSENT,
    st_protocol: Offsets::ABSENT,
    st_daddr: Offsets::ABSENT,
    st_daddr_v6: Offsets::ABSENT,
    bind_umyaddr: Offsets::ABSENT,
    bind_addrlen: Offsets::ABSENT,
    exit_ret: Offsets::ABSENT,
    sock_net: Offsets::ABSENT,
    net_inum: Offsets::ABSENT,
    task_nsproxy: Offsets::ABSENT,
    nsproxy_net_ns: Offsets::ABSENT,
    skb_gso_segs: Offsets::ABSENT,
    skb_tcp_flags: Offsets::ABSENT,
    st_sport: Offsets::ABSENT,
    rtx_sport: Offsets::ABSENT,
    rtx_dport: Offsets::ABSENT,
    rtx_family: Offsets::ABSENT,
    rtx_daddr: Offsets::ABSENT,
    rtx_daddr_v6: Offsets::ABSENT,
    skb_len: Offsets::ABSENT,
    tcp_mss_cache: Offsets::ABSENT,
    icsk_retransmits: Offsets::ABSENT,
    icsk_backoff: Offsets::ABSENT,
    sk_err: Offsets::ABSENT,
    sk_uid: Offsets::ABSENT,
    tcp_segs_out: Offsets::ABSENT,
});

/// Per network namespace counters. Not LRU: an evicted namespace would silently lose counts;
/// a full map is counted as a loss instead.
#[map]
pub static NS_COUNTERS: PerCpuHashMap<u32, NsCounters> = PerCpuHashMap::with_max_entries(4096, 0);

/// Failed connects (SYN_SENT -> CLOSE) that were not refused (timed out, unreachable) per
/// (netns, destination address, port).
#[map]
pub static CONNECT_FAIL_DST: LruHashMap<AddrKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// How the failed connects that were not refused ended (timeout, abandoned by the
/// application, other error), per (netns, destination, port, socket uid): the evidence
/// `sockopt_failfast` requires.
#[map]
pub static CONNECT_END: LruHashMap<ConnEndKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Refused connects (SYN_SENT -> CLOSE with ECONNREFUSED) per (netns, destination, port).
#[map]
pub static CONNECT_REFUSED_DST: LruHashMap<AddrKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Completed passive handshakes (SYN_RECV -> ESTABLISHED) per (netns, local port).
#[map]
pub static HS_PORT: LruHashMap<PortKey, u64> = LruHashMap::with_max_entries(8192, 0);

/// Completed passive handshakes per (netns, peer address); `port` is 0.
#[map]
pub static HS_PEER: LruHashMap<AddrKey, u64> = LruHashMap::with_max_entries(65536, 0);

/// Retransmit pattern per flow (`FlowKey`). Shared: a flow's retransmits are serialized by its
/// socket lock. The entry is removed when the socket closes.
#[map]
pub static FLOW_RTX: LruHashMap<FlowKey, FlowRtx> = LruHashMap::with_max_entries(16384, 0);

/// bind(2) arguments between sys_enter_bind and sys_exit_bind, keyed by pid_tgid.
#[map]
pub static BIND_ARGS: HashMap<u64, BindArgs> = HashMap::with_max_entries(8192, 0);

/// A bind attempt that can fail only on a taken port, between the cgroup `bind4`/`bind6` hook
/// and `post_bind4`/`post_bind6` (which removes it), keyed by socket cookie: the record to
/// write if it failed (`binds.rs`). LRU: a socket that fails and is never closed nor bound
/// again cannot fill it.
#[map]
pub static BIND_PENDING: LruHashMap<u64, SyscallEvent> = LruHashMap::with_max_entries(4096, 0);

/// Per-interface totals for `ifindex < XDP_IFACE_SLOTS`, indexed by ifindex: the common case,
/// an array access the verifier inlines instead of a hash lookup on every packet.
#[map]
pub static XDP_IFACE_LO: PerCpuArray<XdpIfaceStats> =
    PerCpuArray::with_max_entries(XDP_IFACE_SLOTS, 0);

/// Per-interface totals for the rare `ifindex >= XDP_IFACE_SLOTS`.
#[map]
pub static XDP_IFACE: PerCpuHashMap<u32, XdpIfaceStats> = PerCpuHashMap::with_max_entries(256, 0);

#[map]
pub static XDP_SYN_SRC: LruPerCpuHashMap<XdpSrcKey, u64> =
    LruPerCpuHashMap::with_max_entries(65536, 0);

/// SYNs per (interface, port) whose slot of `XDP_SYN_PORT_LO` another key holds on that CPU.
#[map]
pub static XDP_SYN_PORT: LruPerCpuHashMap<XdpPortKey, u64> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// SYNs per (interface, port), in the slot `xdp_port_slot` gives the key (see
/// `XDP_PORT_SLOTS`): an array access the verifier inlines, where a hash update is a helper
/// call, a hash of the key and a bucket walk under the LRU's locks.
#[map]
pub static XDP_SYN_PORT_LO: PerCpuArray<XdpPortSlot> =
    PerCpuArray::with_max_entries(XDP_PORT_SLOTS, 0);

/// Individual events for userspace (`guardian_common::SyscallEvent`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Everything the kernel side had to drop, by cause (`LOSS_*`).
#[map]
pub static LOSS: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_SLOTS, 0);

#[inline(always)]
pub fn count_loss(slot: u32) {
    if let Some(p) = LOSS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, programs don't preempt each other on one CPU for this map.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub fn ringbuf_lost() {
    count_loss(LOSS_RINGBUF);
}

/// Adds to the counters of `netns`, creating its entry on first use.
#[inline(always)]
pub fn ns_add(netns: u32, f: impl Fn(&mut NsCounters)) {
    if let Some(p) = NS_COUNTERS.get_ptr_mut(netns) {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe { f(&mut *p) };
        return;
    }
    let mut c = NsCounters::default();
    f(&mut c);
    if NS_COUNTERS.insert(netns, c, BPF_NOEXIST as u64).is_err() {
        // Raced with another CPU creating the entry, or the map is full.
        match NS_COUNTERS.get_ptr_mut(netns) {
            Some(p) => unsafe { f(&mut *p) },
            None => count_loss(LOSS_MAP_FULL),
        }
    }
}

/// New keys created in the maps that traffic from outside fills (`INS_*` slots): userspace
/// compares them with the entries it reads back to count LRU evictions.
#[map]
pub static XDP_INSERTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(INS_SLOTS, 0);

#[inline(always)]
pub fn count_insert(slot: u32) {
    if let Some(p) = XDP_INSERTS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *p += 1 };
    }
}

/// Adds one to a u64 counter that the CPUs share, keyed by `key` in an LRU map, atomically.
///
/// For the counts of events that are rare next to the packets and syscalls around them:
/// failed connects, completed passive handshakes, resets, CLOSE_WAIT transitions, unmatched
/// DNS answers. A per-CPU value costs every entry 8 bytes per possible CPU, allocated for
/// every entry when the map is made (the map is preallocated): `HS_PEER`'s 65,536 entries
/// alone would hold 32 MiB on a 64-CPU host, and the percpu allocations were the largest
/// share of the daemon's start in `perf`. What a shared value costs instead, a cache line
/// passed between CPUs that count the same key at once, is paid per connection or reset, not
/// per packet. The per-packet counters (XDP) stay per-CPU (`lru_inc`).
#[inline(always)]
pub fn shared_inc<K>(map: &LruHashMap<K, u64>, key: &K) {
    if let Some(p) = map.get_ptr_mut(key) {
        shared_add(p, 1);
        return;
    }
    // Another CPU may insert the key between the lookup and the insert: then add to its.
    if map.insert(key, 1, BPF_NOEXIST as u64).is_err() {
        if let Some(p) = map.get_ptr_mut(key) {
            shared_add(p, 1);
        }
    }
}

/// Adds `n` to a map value's u64 that the CPUs share.
#[inline(always)]
pub fn shared_add(p: *mut u64, n: u64) {
    // SAFETY: a map value's field, valid while the program runs; the add is atomic (its
    // result unused: BPF's atomic add, which every kernel the daemon runs on has).
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, n) };
}

/// Increments a per-CPU u64 counter keyed by `key` in an LRU map; true when it created the
/// key (an insert that may have evicted another).
#[inline(always)]
pub fn lru_inc<K>(map: &LruPerCpuHashMap<K, u64>, key: &K) -> bool {
    lru_add(map, key, 1)
}

/// Adds `n` to a per-CPU u64 counter keyed by `key` in an LRU map; true when it created the
/// key.
#[inline(always)]
pub fn lru_add<K>(map: &LruPerCpuHashMap<K, u64>, key: &K, n: u64) -> bool {
    if let Some(p) = map.get_ptr_mut(key) {
        unsafe { *p += n };
        return false;
    }
    if map.insert(key, n, BPF_NOEXIST as u64).is_err() {
        if let Some(p) = map.get_ptr_mut(key) {
            unsafe { *p += n };
        }
        return false;
    }
    true
}
