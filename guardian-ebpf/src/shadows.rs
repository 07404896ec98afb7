//! Connection-level shadows: TCP resets sent and received, counted per (netns, service port,
//! direction) in `RST_PORT` (`reset_storm`). Resets are rare events: one map update each.
//! And sockets entering and leaving CLOSE_WAIT per (netns, local port) (`close_wait_leak`).
use aya_ebpf::{
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
    Global,
};
use guardian_common::shadows::{
    CwSock, RstKey, ShadowOffsets, CW_ENTERED, CW_LEFT, RST_RECEIVED, RST_SENT,
};

use crate::{
    kernel::{field, global, read, sock_netns},
    maps::{shared_inc, OFFSETS},
};

/// Offsets of the reset tracepoints' fields, written by the loader.
#[unsafe(no_mangle)]
pub static SHADOW_OFFSETS: Global<ShadowOffsets> = Global::new(ShadowOffsets::NONE);

/// RSTs per (netns, service port, direction, side).
#[map]
pub static RST_PORT: LruHashMap<RstKey, u64> = LruHashMap::with_max_entries(8192, 0);

/// `tcp:tcp_send_reset`: a reset this host sent (an abort on close, a keep-alive timeout, a
/// segment for a port nothing listens on...).
#[tracepoint]
pub fn tcp_send_rst(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_send(&ctx) };
    0
}

unsafe fn try_send(ctx: &TracePointContext) -> Option<()> {
    let s = global(&SHADOW_OFFSETS);
    let o = global(&OFFSETS);
    unsafe {
        let sockaddr =
            s.srst_saddr != ShadowOffsets::ABSENT && s.srst_daddr != ShadowOffsets::ABSENT;
        let (local, remote) = if sockaddr {
            // struct sockaddr_in{,6}: sin_port, big endian, after the 2-byte family.
            let l: u16 = field(ctx, s.srst_saddr + 2)?;
            let r: u16 = field(ctx, s.srst_daddr + 2)?;
            (u16::from_be(l), u16::from_be(r))
        } else {
            (field(ctx, s.srst_sport)?, field(ctx, s.srst_dport)?)
        };
        let sk: *const u8 = field(ctx, s.srst_skaddr)?;
        let netns = if !sk.is_null() {
            sock_netns(&o, sk)
        } else {
            // No socket: the namespace of the device the offending segment came in on.
            let skb: *const u8 = field(ctx, s.srst_skbaddr)?;
            if skb.is_null() {
                return None;
            }
            let dev: *const u8 = read(skb, s.skb_dev)?;
            if dev.is_null() {
                return None;
            }
            let net: *const u8 = read(dev, s.dev_nd_net)?;
            read(net, o.net_inum)?
        };
        count(netns, local, remote, RST_SENT);
    }
    Some(())
}

/// `tcp:tcp_receive_reset`: a reset this host's socket received (`tcp_reset()`).
#[tracepoint]
pub fn tcp_recv_rst(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_recv(&ctx) };
    0
}

unsafe fn try_recv(ctx: &TracePointContext) -> Option<()> {
    let s = global(&SHADOW_OFFSETS);
    let o = global(&OFFSETS);
    unsafe {
        let sk: *const u8 = field(ctx, s.rrst_skaddr)?;
        let local: u16 = field(ctx, s.rrst_sport)?;
        let remote: u16 = field(ctx, s.rrst_dport)?;
        count(sock_netns(&o, sk), local, remote, RST_RECEIVED);
    }
    Some(())
}

#[inline(always)]
fn count(netns: u32, local: u16, remote: u16, dir: u8) {
    // The service is the lower port: ephemeral ports sit above the listeners' on almost every
    // host (a remote port of 0, unknown, leaves the local one).
    let is_remote = remote != 0 && remote < local;
    let key = RstKey {
        netns,
        port: if is_remote { remote } else { local },
        dir,
        remote: is_remote as u8,
    };
    shared_inc(&RST_PORT, &key);
}

/// Sockets that entered (`CW_ENTERED`) and left (`CW_LEFT`) CLOSE_WAIT per (netns, local
/// port): the peer closed, and the application has (left) or has not yet closed its end.
#[map]
pub static CW_PORT: LruHashMap<RstKey, u64> = LruHashMap::with_max_entries(8192, 0);

/// The sockets in CLOSE_WAIT, by `struct sock *`, with their inode: read by userspace only
/// when a port's count is about to open `close_wait_leak`. LRU: a huge leak keeps the newest.
#[map]
pub static CW_SOCKS: LruHashMap<u64, CwSock> = LruHashMap::with_max_entries(16384, 0);

const TCP_CLOSE_WAIT: i32 = 8;
const IPPROTO_TCP: u16 = 6;

/// `sock:inet_sock_set_state`: transitions into and out of CLOSE_WAIT. Every other transition
/// returns after reading two fields.
#[tracepoint]
pub fn tcp_close_wait(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_close_wait(&ctx) };
    0
}

unsafe fn try_close_wait(ctx: &TracePointContext) -> Option<()> {
    let o = global(&OFFSETS);
    unsafe {
        let old: i32 = field(ctx, o.st_oldstate)?;
        let new: i32 = field(ctx, o.st_newstate)?;
        if old != TCP_CLOSE_WAIT && new != TCP_CLOSE_WAIT {
            return Some(());
        }
        let proto: u16 = field(ctx, o.st_protocol)?;
        if proto != IPPROTO_TCP {
            return Some(());
        }
        let sk: *const u8 = field(ctx, o.st_skaddr)?;
        let netns = sock_netns(&o, sk);
        let port: u16 = field(ctx, o.st_sport)?;
        let entered = new == TCP_CLOSE_WAIT;
        let key = RstKey {
            netns,
            port,
            dir: if entered { CW_ENTERED } else { CW_LEFT },
            remote: 0,
        };
        shared_inc(&CW_PORT, &key);
        if !entered {
            let _ = CW_SOCKS.remove(&(sk as u64));
            return Some(());
        }
        let s = global(&SHADOW_OFFSETS);
        let mut ino = 0u64;
        if let Some(sock) = read::<*const u8>(sk, s.sk_socket) {
            if !sock.is_null() && s.socket_inode != ShadowOffsets::ABSENT {
                ino = read(sock.add(s.socket_inode as usize), s.i_ino).unwrap_or(0);
            }
        }
        let v = CwSock {
            netns,
            port,
            _pad: 0,
            ino,
        };
        let _ = CW_SOCKS.insert(&(sk as u64), &v, 0);
    }
    Some(())
}
