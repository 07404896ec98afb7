//! guardian-lab's fault injectors: small tcx/XDP programs that `guardian-lab` attaches to the
//! veths of namespaces it created. Built by guardian-lab/build.rs: the daemon neither loads nor
//! carries this object.
//!
//! - `glab_loss` (tcx): drops IPv4/IPv6 packets with the probability in `LOSS[0]`
//!   (out of `u32::MAX`), decided by `bpf_get_prandom_u32`; ARP and the rest pass.
//! - `glab_icmp_drop` (tcx): drops ICMP "fragmentation needed" and ICMPv6 "packet too big",
//!   the path MTU signal whose loss makes a PMTU blackhole.
//! - `glab_delay` (tcx egress): earliest departure time `now + DELAY[0]` ns in `skb->tstamp`;
//!   an `fq` qdisc on the device holds the packet until then.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    macros::{classifier, map},
    maps::Array,
    programs::TcContext,
};

/// `LOSS[0]`: drop probability scaled to `u32::MAX` (0 = none, `u32::MAX` = all).
#[map]
static LOSS: Array<u32> = Array::with_max_entries(1, 0);

/// `DELAY[0]`: added delay in nanoseconds.
#[map]
static DELAY: Array<u64> = Array::with_max_entries(1, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMPV6_PKT_TOOBIG: u8 = 2;

#[inline(always)]
fn ethertype(ctx: &TcContext) -> Option<u16> {
    ctx.load::<u16>(12).ok().map(u16::from_be)
}

#[classifier]
pub fn glab_loss(ctx: TcContext) -> i32 {
    let Some(p) = LOSS.get(0).copied() else {
        return TC_ACT_UNSPEC;
    };
    if p == 0 || !matches!(ethertype(&ctx), Some(ETH_P_IP | ETH_P_IPV6)) {
        return TC_ACT_UNSPEC;
    }
    // SAFETY: a helper without arguments.
    let r = unsafe { bpf_get_prandom_u32() };
    if r < p {
        TC_ACT_SHOT
    } else {
        TC_ACT_UNSPEC
    }
}

#[classifier]
pub fn glab_icmp_drop(ctx: TcContext) -> i32 {
    if is_pmtu_signal(&ctx).unwrap_or(false) {
        TC_ACT_SHOT
    } else {
        TC_ACT_UNSPEC
    }
}

#[inline(always)]
fn is_pmtu_signal(ctx: &TcContext) -> Option<bool> {
    match ethertype(ctx)? {
        ETH_P_IP => {
            let vihl: u8 = ctx.load(ETH_HLEN).ok()?;
            if ctx.load::<u8>(ETH_HLEN + 9).ok()? != IPPROTO_ICMP {
                return Some(false);
            }
            let l4 = ETH_HLEN + ((vihl & 0x0f) as usize) * 4;
            let ty: u8 = ctx.load(l4).ok()?;
            let code: u8 = ctx.load(l4 + 1).ok()?;
            Some(ty == ICMP_DEST_UNREACH && code == ICMP_FRAG_NEEDED)
        }
        ETH_P_IPV6 => {
            // No extension headers before ICMPv6 in the lab's traffic.
            if ctx.load::<u8>(ETH_HLEN + 6).ok()? != IPPROTO_ICMPV6 {
                return Some(false);
            }
            Some(ctx.load::<u8>(ETH_HLEN + 40).ok()? == ICMPV6_PKT_TOOBIG)
        }
        _ => Some(false),
    }
}

#[classifier]
pub fn glab_delay(ctx: TcContext) -> i32 {
    let Some(d) = DELAY.get(0).copied() else {
        return TC_ACT_UNSPEC;
    };
    if d != 0 {
        // SAFETY: a helper without arguments; the context pointer is the kernel's skb.
        unsafe {
            let at = bpf_ktime_get_ns() + d;
            let skb = ctx.skb.skb;
            if (*skb).tstamp < at {
                (*skb).tstamp = at;
            }
        }
    }
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
