//! DNS over UDP on the interfaces named by `--xdp` (or `[interfaces] dns`): queries per
//! resolver on egress (destination port 53, QR = 0), at tcx, and responses per resolver by
//! rcode class on ingress (source port 53, QR = 1): at tcx, or, on an interface that has
//! guardian's XDP program and an ifindex below `XDP_IFACE_SLOTS`, in that XDP program
//! ([`DNS_AT_XDP`]), so that the interface's received packets pay no tcx hook at all. IPv4 and
//! IPv6 (no extension headers before UDP; fragments skipped).
//!
//! Minimal per-packet work: a packet is first checked by [`maybe_dns`], which reads the
//! Ethernet type, the IP protocol and the UDP port straight from the packet's linear data (one
//! bounds check each, no helper call, no map): anything that is not UDP from/to port 53 leaves
//! there. Only a packet that passes (or whose headers are not in the linear data) takes the
//! full parse through `bpf_skb_load_bytes`, and only a DNS packet updates a map (one per-CPU
//! map update, plus `dns_spoof`'s query/answer matching). Always `TCX_NEXT` (observation only:
//! the next program in the chain, or the default action, decides).
use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    macros::{classifier, map},
    maps::{Array, LruPerCpuHashMap},
    programs::{TcContext, XdpContext},
};
use guardian_common::{
    dns::{DnsKey, DnsStats, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL},
    AF_INET, AF_INET6, XDP_IFACE_SLOTS,
};

use crate::maps::count_loss;

/// Totals per (interface, resolver). LRU: a resolver not seen for long may be evicted; the
/// sampler treats a vanished entry as gone.
#[map]
pub static DNS_RESOLVERS: LruPerCpuHashMap<DnsKey, DnsStats> =
    LruPerCpuHashMap::with_max_entries(1024, 0);

/// Non-zero at an ifindex whose DNS answers the XDP program counts (set by userspace before it
/// attaches only the egress tcx program there).
#[map]
pub static DNS_AT_XDP: Array<u32> = Array::with_max_entries(XDP_IFACE_SLOTS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_UDP: u8 = 17;
pub const DNS_PORT: u16 = 53;
const UDP_HLEN: usize = 8;

#[classifier]
pub fn guardian_dns_egress(ctx: TcContext) -> i32 {
    if maybe_dns(&ctx, false) {
        let _ = count_tc(&ctx, false);
    }
    TC_ACT_UNSPEC
}

#[classifier]
pub fn guardian_dns_ingress(ctx: TcContext) -> i32 {
    if maybe_dns(&ctx, true) {
        let _ = count_tc(&ctx, true);
    }
    TC_ACT_UNSPEC
}

/// Reads from a packet: `bpf_skb_load_bytes` at tc (it also reads paged data), direct packet
/// access at XDP (the frame is linear).
pub trait Packet {
    fn load<T: Copy>(&self, off: usize) -> Option<T>;
}

impl Packet for TcContext {
    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        TcContext::load(self, off).ok()
    }
}

/// An XDP frame read with bounds-checked direct packet access.
pub struct XdpPacket<'a>(pub &'a XdpContext);

impl Packet for XdpPacket<'_> {
    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        let start = self.0.data();
        if start + off + core::mem::size_of::<T>() > self.0.data_end() {
            return None;
        }
        // SAFETY: the bytes are within the frame (checked above); T is plain data.
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
    }
}

/// Whether the XDP program counts `ifindex`'s DNS answers (an inlined array read).
#[inline(always)]
pub fn at_xdp(ifindex: u32) -> bool {
    DNS_AT_XDP.get(ifindex).is_some_and(|on| *on != 0)
}

/// A DNS answer arriving at XDP on `ifindex`: `l3` is the IP header's offset (after any VLAN
/// tag) and `proto` the Ethernet type before it.
#[inline(always)]
pub fn count_xdp(ctx: &XdpContext, ifindex: u32, l3: usize, proto: u16) {
    let _ = count(&XdpPacket(ctx), ifindex, true, l3, proto);
}

/// Bounds-checked pointer to `len` bytes at `off` in the packet's linear data; `None` when
/// they are not all there (past the end of the packet, or in its paged part).
#[inline(always)]
fn at(ctx: &TcContext, off: usize, len: usize) -> Option<*const u8> {
    let start = ctx.data();
    if start + off + len > ctx.data_end() {
        return None;
    }
    Some((start + off) as *const u8)
}

#[inline(always)]
fn be16_at(p: *const u8) -> u16 {
    // SAFETY: callers checked the bounds with `at`.
    unsafe { u16::from_be_bytes([*p, *p.add(1)]) }
}

/// The port filter that every packet goes through: false when the packet is certainly not
/// DNS over UDP with port 53 on the resolver's side (the destination of a query leaving,
/// the source of an answer arriving), read from the linear data with direct packet access.
/// True when it may be, including when the headers are not in the linear data: [`count`]
/// then decides with `bpf_skb_load_bytes`, which also reads paged data.
#[inline(always)]
fn maybe_dns(ctx: &TcContext, ingress: bool) -> bool {
    let Some(eth) = at(ctx, 12, 2) else {
        return true;
    };
    let l4 = match be16_at(eth) {
        ETH_P_IP => {
            let Some(ip) = at(ctx, ETH_HLEN, 20) else {
                return true;
            };
            // SAFETY: 20 bytes checked above.
            let (vihl, proto) = unsafe { (*ip, *ip.add(9)) };
            if proto != IPPROTO_UDP {
                return false;
            }
            ETH_HLEN + ((vihl & 0x0f) as usize) * 4
        }
        ETH_P_IPV6 => {
            let Some(ip) = at(ctx, ETH_HLEN, 40) else {
                return true;
            };
            // SAFETY: 40 bytes checked above.
            if unsafe { *ip.add(6) } != IPPROTO_UDP {
                return false;
            }
            ETH_HLEN + 40
        }
        _ => return false,
    };
    match at(ctx, l4, 4) {
        Some(udp) => be16_at(unsafe { udp.add(if ingress { 0 } else { 2 }) }) == DNS_PORT,
        None => true,
    }
}

#[inline(always)]
fn count_tc(ctx: &TcContext, ingress: bool) -> Option<()> {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let eth: [u8; 2] = ctx.load(12).ok()?;
    count(ctx, ifindex, ingress, ETH_HLEN, u16::from_be_bytes(eth))
}

#[inline(always)]
fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Counts a DNS query (egress) or answer (ingress) whose IP header is at `l3`, after the
/// Ethernet type `proto`; anything else is left alone. The packet is read in two copies (the IP
/// header, then the UDP header with the DNS id and flags) and parsed on the stack: at tc two
/// helper calls, at XDP two bounds checks whose pointers the verifier can follow.
#[inline(always)]
fn count(ctx: &impl Packet, ifindex: u32, ingress: bool, l3: usize, proto: u16) -> Option<()> {
    let mut key = DnsKey {
        ifindex,
        ..Default::default()
    };
    // The resolver is the destination of a query (egress) and the source of a response.
    let l4 = match proto {
        ETH_P_IP => {
            let ip: [u8; 20] = ctx.load(l3)?;
            let vihl = ip[0];
            if vihl >> 4 != 4 || ip[9] != IPPROTO_UDP {
                return None;
            }
            // Not a later fragment (offset != 0): it has no UDP header.
            if be16(&ip, 6) & 0x1fff != 0 {
                return None;
            }
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if ihl < 20 {
                return None;
            }
            key.family = AF_INET;
            key.addr[..4].copy_from_slice(if ingress { &ip[12..16] } else { &ip[16..20] });
            l3 + ihl
        }
        ETH_P_IPV6 => {
            let ip: [u8; 40] = ctx.load(l3)?;
            if ip[6] != IPPROTO_UDP {
                return None;
            }
            key.family = AF_INET6;
            key.addr
                .copy_from_slice(if ingress { &ip[8..24] } else { &ip[24..40] });
            l3 + 40
        }
        _ => return None,
    };
    // UDP header (ports at 0 and 2), then the DNS header: id, then flags (QR is the top bit,
    // RCODE the low 4 bits).
    let h: [u8; UDP_HLEN + 4] = ctx.load(l4)?;
    let (src, dst) = (be16(&h, 0), be16(&h, 2));
    if (if ingress { src } else { dst }) != DNS_PORT {
        return None;
    }
    let flags = be16(&h, UDP_HLEN + 2);
    let qr = flags >> 15 == 1;
    if qr != ingress {
        return None; // a response leaving or a query arriving: we are the server, not a client
    }
    let rcode = (flags & 0x0f) as u8;
    // The client's port: the source of a query, the destination of its answer.
    let client = if ingress { dst } else { src };
    crate::dns_spoof::track(&key, be16(&h, UDP_HLEN), client, ingress);
    add(&key, |s| {
        if !ingress {
            s.queries += 1;
        } else {
            match rcode {
                RCODE_NOERROR => s.noerror += 1,
                RCODE_NXDOMAIN => s.nxdomain += 1,
                RCODE_SERVFAIL => s.servfail += 1,
                RCODE_REFUSED => s.refused += 1,
                _ => s.other += 1,
            }
        }
    });
    Some(())
}

#[inline(always)]
fn add(key: &DnsKey, f: impl Fn(&mut DnsStats)) {
    if let Some(p) = DNS_RESOLVERS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe { f(&mut *p) };
        return;
    }
    let mut s = DnsStats::default();
    f(&mut s);
    if DNS_RESOLVERS
        .insert(key, &s, aya_ebpf::bindings::BPF_NOEXIST as u64)
        .is_err()
    {
        match DNS_RESOLVERS.get_ptr_mut(key) {
            Some(p) => unsafe { f(&mut *p) },
            None => count_loss(guardian_common::LOSS_MAP_FULL),
        }
    }
}
