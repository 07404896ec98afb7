//! XDP on the interfaces named on the command line: packets, bytes and SYNs per interface,
//! SYNs per (source address, destination port) and per destination port. IPv6 SYNs behind
//! extension headers (hop-by-hop, routing, destination options, the first fragment, AH; at
//! most [`MAX_EXT_HEADERS`]) count like the others. Every SYN is counted, then checked
//! against the limits remedies installed (`limits.rs`): a SYN over its limit is `XDP_DROP`,
//! everything else `XDP_PASS`.
//!
//! Cost, cheapest case first (`cargo xtask bench xdp` measures it): a packet that is not a TCP
//! SYN parses at most the Ethernet, VLAN and IP headers and adds to its interface's slot of a
//! per-CPU array (`XDP_IFACE_LO`, indexed by ifindex; the verifier inlines the lookup), with no
//! hash lookup and no helper call. A SYN adds one per-CPU LRU hash update (per source and
//! port), its port's slot of a per-CPU array (`XDP_SYN_PORT_LO`, inlined like the interface's;
//! the LRU hash `XDP_SYN_PORT` only for a port whose slot another port holds), and the limit
//! lookups only while a limit is installed (`LIMITS_ON`). A UDP packet on an interface whose
//! DNS answers the program counts (`dns::DNS_AT_XDP`, an inlined array read) goes on to the
//! DNS answer parse of `dns.rs`, which leaves after the UDP header unless it is from port 53.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use guardian_common::{
    xdp_port_slot, XdpIfaceStats, XdpPortKey, XdpSrcKey, AF_INET, AF_INET6, XDP_IFACE_SLOTS,
    XDP_PORT_STEAL,
};

use guardian_common::limits::{LimitSrcKey, INS_SYN_PORT, INS_SYN_SRC};

use crate::limits::syn_allowed;
use crate::maps::{
    count_insert, count_loss, lru_add, lru_inc, XDP_IFACE, XDP_IFACE_LO, XDP_SYN_PORT,
    XDP_SYN_PORT_LO, XDP_SYN_SRC,
};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;
/// IPv6 extension headers followed before giving up (a bounded loop for the verifier; a SYN
/// behind more is not counted, and an attacker who sends one gains nothing a plain SYN
/// would not give him: it is not limited, but it is not counted as a good source either).
const MAX_EXT_HEADERS: usize = 6;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_DEST: u8 = 60;

#[xdp]
pub fn guardian_xdp(ctx: XdpContext) -> u32 {
    if try_xdp(&ctx) {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// Bounds-checked pointer to `len` bytes at `off` from the start of the packet.
#[inline(always)]
fn at(ctx: &XdpContext, off: usize, len: usize) -> Option<*const u8> {
    let start = ctx.data();
    if start + off + len > ctx.data_end() {
        return None;
    }
    Some((start + off) as *const u8)
}

#[inline(always)]
fn be16(p: *const u8) -> u16 {
    // SAFETY: callers checked the bounds with `at`.
    unsafe { u16::from_be_bytes([*p, *p.add(1)]) }
}

/// Counts the packet; returns whether it passes.
#[inline(always)]
fn try_xdp(ctx: &XdpContext) -> bool {
    let ifindex = ctx.ingress_ifindex() as u32;
    let len = (ctx.data_end() - ctx.data()) as u64;
    let kind = classify(ctx);
    let syn = match kind {
        Some(Kind::Syn(src, port)) => Some((src, port)),
        _ => None,
    };
    count_iface(ifindex, len, syn.is_some() as u64);
    let Some((src, port)) = syn else {
        if let Some(Kind::Udp { l3, proto, sport }) = kind {
            if sport == crate::dns::DNS_PORT && crate::dns::at_xdp(ifindex) {
                crate::dns::count_xdp(ctx, ifindex, l3, proto);
            }
        }
        return true;
    };
    if lru_inc(
        &XDP_SYN_SRC,
        &XdpSrcKey {
            ifindex,
            family: src.family,
            port,
            addr: src.addr,
        },
    ) {
        count_insert(INS_SYN_SRC);
    }
    count_port(ifindex, port);
    syn_allowed(&src, port)
}

/// Adds a SYN to (interface, port): in its slot of `XDP_SYN_PORT_LO` when the slot is free or
/// already the key's on this CPU; else, when the slot's holder has at most
/// `XDP_PORT_STEAL` SYNs (a port scan's), the key takes the slot and the holder's count moves
/// to the LRU hash `XDP_SYN_PORT`; else in the hash. The slot is written before the hash, and
/// userspace reads the hash before the slots, so a count being moved is never read twice (it
/// may be missed for one read).
#[inline(always)]
fn count_port(ifindex: u32, port: u16) {
    let key = XdpPortKey {
        ifindex,
        port,
        _pad: 0,
    };
    let mut to_hash = (key, 1);
    if let Some(s) = XDP_SYN_PORT_LO.get_ptr_mut(xdp_port_slot(ifindex, port)) {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe {
            let held = (*s).count;
            if held != 0 && (*s).key.ifindex == ifindex && (*s).key.port == port {
                (*s).count = held + 1;
                return;
            }
            if held <= XDP_PORT_STEAL {
                let old = (*s).key;
                (*s).key = key;
                (*s).count = 1;
                if held == 0 {
                    return;
                }
                to_hash = (old, held);
            }
        }
    }
    if lru_add(&XDP_SYN_PORT, &to_hash.0, to_hash.1) {
        count_insert(INS_SYN_PORT);
    }
}

/// Adds the packet to its interface's totals.
#[inline(always)]
fn count_iface(ifindex: u32, len: u64, syn: u64) {
    let slot = if ifindex < XDP_IFACE_SLOTS {
        XDP_IFACE_LO.get_ptr_mut(ifindex)
    } else {
        XDP_IFACE.get_ptr_mut(&ifindex)
    };
    if let Some(s) = slot {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += len;
            (*s).syn += syn;
        }
        return;
    }
    // Only a hash entry can be missing: the interface's first packet on this CPU.
    let s = XdpIfaceStats {
        packets: 1,
        bytes: len,
        syn,
    };
    if XDP_IFACE.insert(&ifindex, &s, 0).is_err() {
        count_loss(guardian_common::LOSS_MAP_FULL);
    }
}

/// What the program does something with besides the interface's totals.
enum Kind {
    /// A TCP SYN (without ACK): its source and destination port.
    Syn(LimitSrcKey, u16),
    /// UDP (IPv4, or IPv6 without extension headers): the IP header's offset, the Ethernet
    /// type before it and the source port, for the DNS answer count.
    Udp { l3: usize, proto: u16, sport: u16 },
}

/// The packet's [`Kind`], or `None` for anything else. Reads only the headers; the common
/// packet leaves after the IP header's protocol byte or the TCP flags.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Option<Kind> {
    let mut off = ETH_HLEN;
    let mut proto = be16(at(ctx, 12, 2)?);
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = be16(at(ctx, 16, 2)?);
        off += 4;
    }
    let mut src = LimitSrcKey::default();
    let l4 = match proto {
        ETH_P_IP => {
            let ip = at(ctx, off, 20)?;
            // SAFETY: 20 bytes checked above.
            let (vihl, p) = unsafe { (*ip, *ip.add(9)) };
            if vihl >> 4 != 4 {
                return None;
            }
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if ihl < 20 {
                return None;
            }
            let l4 = off + ihl;
            if p == IPPROTO_UDP {
                return udp(ctx, off, proto, l4);
            }
            if p != IPPROTO_TCP {
                return None;
            }
            // The flags first: most TCP segments are not SYNs.
            if !is_syn(ctx, l4)? {
                return None;
            }
            src.family = AF_INET;
            src.addr[..4].copy_from_slice(unsafe { &*(ip.add(12) as *const [u8; 4]) });
            l4
        }
        ETH_P_IPV6 => {
            let ip = at(ctx, off, 40)?;
            let next = unsafe { *ip.add(6) };
            if next == IPPROTO_UDP {
                return udp(ctx, off, proto, off + 40);
            }
            let l4 = ipv6_l4(ctx, off + 40, next)?;
            if !is_syn(ctx, l4)? {
                return None;
            }
            src.family = AF_INET6;
            src.addr = unsafe { *(ip.add(8) as *const [u8; 16]) };
            l4
        }
        _ => return None,
    };
    let tcp = at(ctx, l4, 4)?;
    Some(Kind::Syn(src, be16(unsafe { tcp.add(2) })))
}

#[inline(always)]
fn udp(ctx: &XdpContext, l3: usize, proto: u16, l4: usize) -> Option<Kind> {
    Some(Kind::Udp {
        l3,
        proto,
        sport: be16(at(ctx, l4, 2)?),
    })
}

/// The offset of the TCP header of an IPv6 packet whose first next-header value is `next`
/// at `off`, following at most [`MAX_EXT_HEADERS`] extension headers; `None` for another
/// protocol, a later fragment, or a chain too long.
#[inline(always)]
fn ipv6_l4(ctx: &XdpContext, mut off: usize, mut next: u8) -> Option<usize> {
    for _ in 0..MAX_EXT_HEADERS {
        if next == IPPROTO_TCP {
            return Some(off);
        }
        let h = at(ctx, off, 4)?;
        // SAFETY: 4 bytes checked above.
        let (nh, hlen) = unsafe { (*h, *h.add(1) as usize) };
        off += match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => (hlen + 1) * 8,
            NEXTHDR_AUTH => (hlen + 2) * 4,
            // Only the first fragment (offset 0) carries the TCP header.
            NEXTHDR_FRAGMENT if be16(unsafe { h.add(2) }) & 0xfff8 == 0 => 8,
            _ => return None,
        };
        next = nh;
    }
    (next == IPPROTO_TCP).then_some(off)
}

/// Whether the TCP header at `l4` has SYN set and ACK clear; `None` when it is truncated.
#[inline(always)]
fn is_syn(ctx: &XdpContext, l4: usize) -> Option<bool> {
    let tcp = at(ctx, l4, 14)?;
    // SAFETY: 14 bytes checked above.
    let flags = unsafe { *tcp.add(13) };
    Some(flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN)
}
