//! TCP tracepoints: retransmitted segments, SYN and SYN-ACK retransmits, state transitions.
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use guardian_common::{
    connect::{ConnEndKey, END_ABANDONED, END_ERROR, END_TIMEOUT, END_UNKNOWN, UID_UNKNOWN},
    flows::{FlowKey, FlowRtx, PortKey},
    AddrKey, Offsets, AF_INET, AF_INET6, EV_CONNECT_ADDRNOTAVAIL,
};

use guardian_common::limits::LimitSrcKey;

use crate::{
    kernel::{field, global},
    kernel::{read, sock_netns},
    limits::mark_good,
    maps::{
        ns_add, shared_inc, CONNECT_END, CONNECT_FAIL_DST, CONNECT_REFUSED_DST, FLOW_RTX, HS_PEER,
        HS_PORT, OFFSETS,
    },
};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_FIN_WAIT2: i32 = 5;
const TCP_CLOSE: i32 = 7;
const TCP_CLOSING: i32 = 11;
const IPPROTO_TCP: u16 = 6;
const TCPHDR_SYN: u16 = 0x02;
// Early exits of __tcp_retransmit_skb, before the retransmission is accounted.
const EBUSY: i32 = -16;
const EINVAL: i32 = -22;
const ENOMEM: i32 = -12;
const EHOSTUNREACH: i32 = -113;
const EAGAIN: i32 = -11;
/// `sk_err` after a RST in SYN_SENT (tcp_reset) or an ICMP port unreachable: a positive errno.
const ECONNREFUSED: i32 = 111;
/// `sk_err` after the SYN retransmissions (or `TCP_USER_TIMEOUT`) ran out: tcp_write_err().
const ETIMEDOUT: i32 = 110;

/// `tcp:tcp_retransmit_skb`. Counts segments the way the kernel's `TcpRetransSegs` does:
/// `tcp_skb_pcount(skb)` of every retransmission the kernel accounted.
///
/// Since 6.17 the tracepoint fires at the end of `__tcp_retransmit_skb` with `err`. The early
/// exits (-EBUSY, -EINVAL, -ENOMEM, -EHOSTUNREACH, -EAGAIN) return before the MIB update and
/// are not retransmissions; an error from `tcp_transmit_skb()` itself (e.g. -ENOBUFS when the
/// device dropped it) comes after the update, so those segments count. Before 6.17 the
/// tracepoint fired only on success and has no `err` field (read as 0).
#[tracepoint]
pub fn tcp_retransmit(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_tcp_retransmit(&ctx) };
    0
}

unsafe fn try_tcp_retransmit(ctx: &TracePointContext) -> Option<()> {
    let o = global(&OFFSETS);
    unsafe {
        let sk: *const u8 = field(ctx, o.rtx_skaddr)?;
        let skb: *const u8 = field(ctx, o.rtx_skbaddr)?;
        let err: i32 = field(ctx, o.rtx_err).unwrap_or(0);
        let netns = sock_netns(&o, sk);
        if matches!(err, EBUSY | EINVAL | ENOMEM | EHOSTUNREACH | EAGAIN) {
            ns_add(netns, |c| c.retrans_failed += 1);
            return Some(());
        }
        let segs: u16 = read(skb, o.skb_gso_segs)?;
        let flags: u16 = read(skb, o.skb_tcp_flags).unwrap_or(0);
        let syn = (flags & TCPHDR_SYN) != 0;
        ns_add(netns, |c| {
            c.retrans_segs += segs as u64;
            if syn {
                c.syn_retrans += 1;
            }
        });
        if !syn {
            flow_retransmit(ctx, &o, netns, sk, skb);
        }
    }
    Some(())
}

/// The retransmit pattern of one flow, for `mtu_blackhole`: full-size vs small segments, and
/// whether the retransmission timer sent them (`icsk_retransmits` counts the timer's
/// consecutive retransmits without progress; the kernel increments it before retransmitting).
#[inline(always)]
unsafe fn flow_retransmit(
    ctx: &TracePointContext,
    o: &Offsets,
    netns: u32,
    sk: *const u8,
    skb: *const u8,
) -> Option<()> {
    unsafe {
        let state: i32 = field(ctx, o.rtx_state)?;
        if state == TCP_SYN_SENT || state == TCP_SYN_RECV {
            return None;
        }
        let key = flow_key(
            netns,
            field(ctx, o.rtx_family)?,
            field(ctx, o.rtx_sport)?,
            field(ctx, o.rtx_dport)?,
            ctx,
            o.rtx_daddr,
            o.rtx_daddr_v6,
        )?;
        let len: u32 = read(skb, o.skb_len)?;
        let mss: u32 = read(sk, o.tcp_mss_cache)?;
        let rtx: u8 = read(sk, o.icsk_retransmits).unwrap_or(0);
        let backoff: u8 = read(sk, o.icsk_backoff).unwrap_or(0);
        let full = mss > 0 && len >= mss;
        let timer = rtx >= 1;
        let now = bpf_ktime_get_ns();
        let update = |r: &mut FlowRtx| {
            if full {
                r.full += 1;
            } else {
                r.small += 1;
            }
            if timer && full {
                r.rto_full += 1;
                r.full_streak = rtx as u32;
            } else {
                if timer {
                    r.rto_small += 1;
                }
                r.full_streak = 0;
            }
            r.last_ns = now;
            r.mss = mss;
            r.len = len;
            r.backoff = backoff as u32;
        };
        if let Some(p) = FLOW_RTX.get_ptr_mut(&key) {
            update(&mut *p);
        } else {
            let mut r = FlowRtx::default();
            update(&mut r);
            let _ = FLOW_RTX.insert(&key, &r, 0);
        }
    }
    Some(())
}

#[inline(always)]
unsafe fn flow_key(
    netns: u32,
    family: u16,
    sport: u16,
    dport: u16,
    ctx: &TracePointContext,
    off_v4: u16,
    off_v6: u16,
) -> Option<FlowKey> {
    let mut key = FlowKey {
        netns,
        family,
        dport,
        sport,
        _pad: 0,
        daddr: [0; 16],
    };
    unsafe {
        if family == AF_INET {
            let a: [u8; 4] = field(ctx, off_v4)?;
            key.daddr[..4].copy_from_slice(&a);
        } else if family == AF_INET6 {
            key.daddr = field(ctx, off_v6)?;
        } else {
            return None;
        }
    }
    Some(key)
}

/// `tcp:tcp_retransmit_synack`: fires only for SYN-ACKs that were sent, each one segment
/// (the kernel adds 1 to both `TcpRetransSegs` and `TcpExtTCPSynRetrans`).
#[tracepoint]
pub fn tcp_synack(ctx: TracePointContext) -> u32 {
    let o = global(&OFFSETS);
    if let Some(sk) = unsafe { field::<*const u8>(&ctx, o.synack_skaddr) } {
        let netns = unsafe { sock_netns(&o, sk) };
        ns_add(netns, |c| {
            c.synack_retrans += 1;
            c.retrans_segs += 1;
        });
    }
    0
}

/// connect(2) found no free local port: counted and reported as EADDRNOTAVAIL, with the
/// destination.
#[inline(always)]
unsafe fn no_local_port(ctx: &TracePointContext, o: &Offsets, netns: u32) -> Option<()> {
    const EADDRNOTAVAIL: i32 = 99;
    ns_add(netns, |c| c.connect_eaddrnotavail += 1);
    let family: u16 = unsafe { field(ctx, o.st_family)? };
    let mut addr = [0u8; 16];
    if family == AF_INET {
        let a: [u8; 4] = unsafe { field(ctx, o.st_daddr)? };
        addr[..4].copy_from_slice(&a);
    } else if family == AF_INET6 {
        addr = unsafe { field(ctx, o.st_daddr_v6)? };
    }
    crate::syscalls::emit(
        netns,
        bpf_get_current_pid_tgid(),
        EV_CONNECT_ADDRNOTAVAIL,
        -EADDRNOTAVAIL,
        family,
        unsafe { field(ctx, o.st_dport)? },
        addr,
    );
    Some(())
}

/// `sock:inet_sock_set_state`: failed connects per destination (refused apart), connects that
/// found no free local port (EADDRNOTAVAIL), hand-offs to TIME_WAIT,
/// completed passive handshakes per local port and per peer, and the end of a flow (its
/// retransmit pattern is forgotten).
#[tracepoint]
pub fn sock_state(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_sock_state(&ctx) };
    0
}

unsafe fn try_sock_state(ctx: &TracePointContext) -> Option<()> {
    let o = global(&OFFSETS);
    unsafe {
        let proto: u16 = field(ctx, o.st_protocol)?;
        if proto != IPPROTO_TCP {
            return Some(());
        }
        let old: i32 = field(ctx, o.st_oldstate)?;
        let new: i32 = field(ctx, o.st_newstate)?;
        if old == TCP_SYN_RECV && new == TCP_ESTABLISHED {
            let sk: *const u8 = field(ctx, o.st_skaddr)?;
            return handshake_completed(ctx, &o, sock_netns(&o, sk));
        }
        if new != TCP_CLOSE {
            return Some(());
        }
        let sk: *const u8 = field(ctx, o.st_skaddr)?;
        let netns = sock_netns(&o, sk);
        if old != TCP_SYN_SENT {
            if let Some(key) = flow_key(
                netns,
                field(ctx, o.st_family)?,
                field(ctx, o.st_sport)?,
                field(ctx, o.st_dport)?,
                ctx,
                o.st_daddr,
                o.st_daddr_v6,
            ) {
                let _ = FLOW_RTX.remove(&key);
            }
        }
        match old {
            TCP_SYN_SENT => {
                // tcp_v4/v6_connect() enters SYN_SENT before inet_hash_connect() finds a free
                // 4-tuple; when there is none (EADDRNOTAVAIL) the socket goes back to CLOSE
                // before any SYN left: with source port 0, or with the port it was bound to
                // and no segment sent. Not a failed connect to the peer: no local port was
                // free for this destination. This runs in the connecting task, inside its
                // connect(2).
                let sport: u16 = field(ctx, o.st_sport)?;
                if sport == 0 || read::<u32>(sk, o.tcp_segs_out) == Some(0) {
                    return no_local_port(ctx, &o, netns);
                }
                // tcp_reset() sets sk_err before tcp_done() moves the socket to CLOSE; a
                // timeout leaves ETIMEDOUT (or the last ICMP error) there instead.
                // A plain integer (-1: unknown) rather than an Option kept across calls: the
                // verifier refuses the spill of an Option's undefined payload.
                let err: i32 = read::<i32>(sk, o.sk_err).unwrap_or(-1);
                let refused = err == ECONNREFUSED;
                ns_add(netns, |c| {
                    c.connect_failures += 1;
                    if refused {
                        c.connect_refused += 1;
                    }
                });
                let family: u16 = field(ctx, o.st_family)?;
                let mut key = AddrKey {
                    netns,
                    family,
                    port: field(ctx, o.st_dport)?,
                    addr: [0; 16],
                };
                if family == AF_INET {
                    let a: [u8; 4] = field(ctx, o.st_daddr)?;
                    key.addr[..4].copy_from_slice(&a);
                } else if family == AF_INET6 {
                    key.addr = field(ctx, o.st_daddr_v6)?;
                }
                if refused {
                    shared_inc(&CONNECT_REFUSED_DST, &key);
                } else {
                    shared_inc(&CONNECT_FAIL_DST, &key);
                    // How it ended and whose socket it was: an application that closes its
                    // own connects (sk_err 0) is not evidence that the network drops SYNs.
                    // sk_uid is the owner's, also when the retransmit timer closes it.
                    let end = ConnEndKey {
                        netns,
                        family,
                        port: key.port,
                        uid: read::<u32>(sk, o.sk_uid).unwrap_or(UID_UNKNOWN),
                        reason: match err {
                            -1 => END_UNKNOWN,
                            0 => END_ABANDONED,
                            ETIMEDOUT => END_TIMEOUT,
                            _ => END_ERROR,
                        },
                        addr: key.addr,
                    };
                    shared_inc(&CONNECT_END, &end);
                }
            }
            // A full socket leaves FIN_WAIT2/CLOSING for CLOSE when tcp_time_wait() hands the
            // connection to a timewait socket (and also on a reset in those states): an
            // indicator of TIME_WAIT entries. The exact gauge is taken with INET_DIAG.
            TCP_FIN_WAIT2 | TCP_CLOSING => ns_add(netns, |c| c.tw_entries += 1),
            _ => {}
        }
    }
    Some(())
}

/// A passive open completed (SYN_RECV -> ESTABLISHED on the child socket): counted per local
/// port (the listener's) and per peer address, and the peer is marked a good source.
#[inline(always)]
unsafe fn handshake_completed(ctx: &TracePointContext, o: &Offsets, netns: u32) -> Option<()> {
    unsafe {
        let port = PortKey {
            netns,
            port: field(ctx, o.st_sport)?,
            _pad: 0,
        };
        shared_inc(&HS_PORT, &port);
        let family: u16 = field(ctx, o.st_family)?;
        let mut peer = AddrKey {
            netns,
            family,
            port: 0,
            addr: [0; 16],
        };
        if family == AF_INET {
            let a: [u8; 4] = field(ctx, o.st_daddr)?;
            peer.addr[..4].copy_from_slice(&a);
        } else if family == AF_INET6 {
            peer.addr = field(ctx, o.st_daddr_v6)?;
        } else {
            return None;
        }
        shared_inc(&HS_PEER, &peer);
        // The peer is a real client: XDP port limits let it through (limits.rs). Not per
        // namespace: the XDP program cannot tell which namespace a SYN is for.
        mark_good(&LimitSrcKey {
            family,
            port: 0,
            addr: peer.addr,
        });
    }
    Some(())
}
