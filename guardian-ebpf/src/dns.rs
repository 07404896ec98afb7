//! DNS over UDP at tcx, on the interfaces named by `--xdp`: queries per resolver on egress
//! (destination port 53, QR = 0) and responses per resolver by rcode class on ingress (source
//! port 53, QR = 1). IPv4 and IPv6 (no extension headers before UDP; fragments skipped).
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
    maps::LruPerCpuHashMap,
    programs::TcContext,
};
use guardian_common::{
    dns::{DnsKey, DnsStats, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL},
    AF_INET, AF_INET6,
};

use crate::maps::count_loss;

/// Totals per (interface, resolver). LRU: a resolver not seen for long may be evicted; the
/// sampler treats a vanished entry as gone.
#[map]
pub static DNS_RESOLVERS: LruPerCpuHashMap<DnsKey, DnsStats> =
    LruPerCpuHashMap::with_max_entries(1024, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
const UDP_HLEN: usize = 8;

#[classifier]
pub fn guardian_dns_egress(ctx: TcContext) -> i32 {
    if maybe_dns(&ctx, false) {
        let _ = count(&ctx, false);
    }
    TC_ACT_UNSPEC
}

#[classifier]
pub fn guardian_dns_ingress(ctx: TcContext) -> i32 {
    if maybe_dns(&ctx, true) {
        let _ = count(&ctx, true);
    }
    TC_ACT_UNSPEC
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
fn be16(ctx: &TcContext, off: usize) -> Option<u16> {
    ctx.load::<u16>(off).ok().map(u16::from_be)
}

#[inline(always)]
fn count(ctx: &TcContext, ingress: bool) -> Option<()> {
    let proto = be16(ctx, 12)?;
    let mut key = DnsKey {
        ifindex: unsafe { (*ctx.skb.skb).ifindex },
        ..Default::default()
    };
    // The resolver is the destination of a query (egress) and the source of a response.
    let l4 = match proto {
        ETH_P_IP => {
            let vihl: u8 = ctx.load(ETH_HLEN).ok()?;
            if vihl >> 4 != 4 || ctx.load::<u8>(ETH_HLEN + 9).ok()? != IPPROTO_UDP {
                return None;
            }
            // Not a later fragment (offset != 0): it has no UDP header.
            if be16(ctx, ETH_HLEN + 6)? & 0x1fff != 0 {
                return None;
            }
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if ihl < 20 {
                return None;
            }
            key.family = AF_INET;
            let a: [u8; 4] = ctx.load(ETH_HLEN + if ingress { 12 } else { 16 }).ok()?;
            key.addr[..4].copy_from_slice(&a);
            ETH_HLEN + ihl
        }
        ETH_P_IPV6 => {
            if ctx.load::<u8>(ETH_HLEN + 6).ok()? != IPPROTO_UDP {
                return None;
            }
            key.family = AF_INET6;
            key.addr = ctx.load(ETH_HLEN + if ingress { 8 } else { 24 }).ok()?;
            ETH_HLEN + 40
        }
        _ => return None,
    };
    let port = be16(ctx, l4 + if ingress { 0 } else { 2 })?;
    if port != DNS_PORT {
        return None;
    }
    // DNS header: id (2 bytes), then flags: QR is the top bit, RCODE the low 4 bits.
    let flags = be16(ctx, l4 + UDP_HLEN + 2)?;
    let qr = flags >> 15 == 1;
    if qr != ingress {
        return None; // a response leaving or a query arriving: we are the server, not a client
    }
    let rcode = (flags & 0x0f) as u8;
    crate::dns_spoof::track(ctx, &key, l4, ingress);
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
