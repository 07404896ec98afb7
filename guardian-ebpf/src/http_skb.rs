//! HTTP/1.x status per service from the packets (`guardian run --http`, plaintext): two
//! cgroup socket-buffer programs on the cgroup v2 root, which the kernel runs for every packet
//! a socket of the host sends or receives, with the socket at hand.
//!
//! Why packets and not the syscalls (`http.rs`): a program on the syscalls has to sit on every
//! syscall's exit, of every task, file I/O included; here only network packets enter, and a
//! packet with no payload (an ACK) leaves after two header loads, before any helper call.
//! Measured with `cargo xtask bench http` (docs/benchmarks.md): a no-op program on this hook
//! cost an nginx keep-alive request +270 ns against +713 ns on the syscall hook (+1 092
//! against +1 827 on a noisier day).
//!
//! - First, the local port: only a port on which a TCP listener received a segment since
//!   the attach, or held by a listener at the attach (`HTTP_PORTS`, marked by the listener's
//!   SYNs on ingress, and by userspace) goes further. A
//!   client's segments (an ephemeral port), and every segment of a host that serves nothing,
//!   leave after one array read: no payload is looked at.
//! - Ingress: a segment whose payload starts with an HTTP method starts a request on its
//!   socket (`HTTP_SOCKS`: the time, the latest one, as `http.rs` does).
//! - Egress: a segment whose payload starts with an `HTTP/1.x NNN` status line >= 200, on a
//!   socket with a request in flight, is one response: counted per service as `http.rs`
//!   counts it (`http_stats::count`, the same map), and the request marked answered (a
//!   retransmission of the same segment finds it so).
//!
//! - Egress, where the socket tracepoints carry TLS (`tls_alert.rs`, `TLS_ALERT_SKB`): a
//!   segment of any port whose payload is one 7-byte TLS alert record is counted as the
//!   syscall hook would count its write (a compare of the length first: most segments are
//!   longer).
//!
//! The service (namespace, local address and port, process) is resolved at a connection's
//! first response and kept in its entry. The process is the task that sends the response:
//! trusted only when that task is in the socket's namespace (a segment the kernel sends later,
//! from a timer or another task's softirq, runs in whatever task the CPU was in); otherwise the
//! response counts with process 0 and the next one tries again.
//!
//! Limits (docs/faults/http_5xx): userspace marks the ports of the listeners that exist at the
//! attach (guardian/src/probes/http_skb.rs), so a connection accepted before it is seen unless
//! its listener was gone by then; not seen either are a request or status line that does not
//! start a segment (after a partial write of an earlier message), IPv6 extension headers, and
//! TCP Fast Open data in a SYN.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::__sk_buff,
    btf_maps::SkStorage,
    helpers::{
        bpf_get_current_task, bpf_ktime_get_ns, bpf_sk_fullsock, bpf_skb_load_bytes,
        bpf_skc_to_tcp_sock,
    },
    macros::{btf_map, cgroup_skb, map},
    maps::Array,
    programs::SkBuffContext,
};
use guardian_common::{
    http::{is_request_start, parse_status, HttpKey},
    tls::ALERT_RECORD_LEN,
};

use crate::http::HTTP_OFFSETS;
use crate::http_stats::count;
use crate::kernel::{current_netns, global, read, sk_storage, sock_netns};
use crate::maps::OFFSETS;
use crate::tls_alert::ALERT_SEGMENT_MAX;

/// Per socket: the request in flight and, once resolved, the service. Socket-local storage,
/// not a hash keyed by the socket's cookie: the kernel hangs the entry off the socket, frees
/// it with the socket, and has no size to outgrow, where an LRU map of connections held 7 MB
/// whether used or not and evicted live entries on a busy host. It costs the same CPU per
/// request as the hash did (docs/benchmarks.md: "Per-socket storage").
///
/// Three cache lines, each written by one side only. A request's segment is received on the
/// CPU of the softirq that delivers it (the client's CPU over a veth or loopback; the queue's
/// CPU on a NIC), and the response leaves from the server's: when the request time and the
/// "answered" mark shared one line, it moved between the two CPUs twice per request, and
/// that one load was a third of these programs' samples (`http-share`'s profile, nginx and
/// wrk on two CPUs; a seventh with both on one). Now:
/// - `svc` and `known` share the kernel's first line of the entry (its map pointer, which
///   every lookup reads): written once, at the connection's first response, then only read;
/// - `start` is the ingress program's: the time of the latest request;
/// - `answered` is the egress program's: the `start` it last counted a response for, so that
///   a retransmitted status line, or one with no request since, counts nothing.
///
/// The padding keeps 64 bytes between the three whatever the entry's alignment; 144 bytes,
/// one 256-byte allocation with the kernel's header, as the 40 bytes before took 128.
#[repr(C)]
pub struct HttpSock {
    svc: HttpKey,
    known: u32,
    _shared: [u8; 32],
    start: u64,
    _ingress: [u8; 64],
    answered: u64,
}
const _: () = assert!(core::mem::size_of::<HttpSock>() == 144);
const _: () = assert!(core::mem::offset_of!(HttpSock, start) == 64);
const _: () = assert!(core::mem::offset_of!(HttpSock, answered) == 136);

/// A BTF-defined map: the kernel wants the value's type for socket storage.
#[btf_map]
static HTTP_SOCKS: SkStorage<HttpSock> = SkStorage::new();

/// The entry of the segment's socket; created (zeroed) with `create`. None for a segment with
/// no full socket (a request or time-wait socket), which carries no HTTP.
#[inline(always)]
fn conn(skb: *const __sk_buff, create: bool) -> Option<&'static mut HttpSock> {
    // SAFETY: the context's socket, checked for null, then made a full socket by the helper.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    let full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        return None;
    }
    // SAFETY: this map's definition, and the context's full socket.
    unsafe {
        sk_storage(
            core::ptr::addr_of!(HTTP_SOCKS) as *const c_void,
            full as *mut c_void,
            create,
        )
    }
}

/// One bit per local port (all namespaces) on which a TCP listener received a segment since
/// the attach, never cleared: a port that stops serving only costs its segments the look at
/// their payload. Set without an atomic (5.10 has no BPF atomic or): two CPUs marking two
/// ports of one word at once may lose one bit, which the port's next SYN sets again.
#[map]
static HTTP_PORTS: Array<u64> = Array::with_max_entries(1024, 0);

const TCP_LISTEN: u32 = 10;

/// Whether the segment's local port is marked. With `mark` (ingress), a segment to a listening
/// socket (a SYN, a handshake's last ACK) marks it.
#[inline(always)]
fn serves(skb: *const __sk_buff, mark: bool) -> bool {
    // SAFETY: context fields; `sk` is checked for null before its state is read.
    let port = unsafe { (*skb).local_port };
    let Some(w) = HTTP_PORTS.get_ptr_mut((port >> 6) & 1023) else {
        return false;
    };
    let bit = 1u64 << (port & 63);
    // SAFETY: a u64 of this array.
    if unsafe { *w } & bit != 0 {
        return true;
    }
    if mark {
        let sk = unsafe { (*skb).__bindgen_anon_2.sk };
        if !sk.is_null() && unsafe { (*sk).state } == TCP_LISTEN {
            unsafe { *w |= bit };
        }
    }
    false
}

const ETH_P_IP_BE: u32 = 0x0800u16.to_be() as u32;
const ETH_P_IPV6_BE: u32 = 0x86ddu16.to_be() as u32;
const IPPROTO_TCP: u8 = 6;

#[cgroup_skb]
pub fn http_ingress(ctx: SkBuffContext) -> i32 {
    let _ = try_ingress(&ctx);
    1
}

#[cgroup_skb]
pub fn http_egress(ctx: SkBuffContext) -> i32 {
    let _ = try_egress(&ctx);
    1
}

/// The offset of a TCP segment's payload, when it has one. The IP and TCP headers are in the
/// linear part of the buffer on both hooks (the stack built or pulled them), so they are read
/// directly, with the bounds checks the verifier wants and no helper call.
#[inline(always)]
fn payload(skb: *const __sk_buff) -> Option<u32> {
    // SAFETY: the context's fields, rewritten by the verifier into the kernel's sk_buff.
    let (data, end, proto, len) = unsafe {
        (
            (*skb).data as usize,
            (*skb).data_end as usize,
            (*skb).protocol,
            (*skb).len,
        )
    };
    let l4 = if proto == ETH_P_IP_BE {
        if data + 20 > end {
            return None;
        }
        // SAFETY: within [data, data + 20), checked above.
        let (vihl, p) = unsafe { (*(data as *const u8), *((data + 9) as *const u8)) };
        if p != IPPROTO_TCP {
            return None;
        }
        ((vihl & 0x0f) as usize) * 4
    } else if proto == ETH_P_IPV6_BE {
        if data + 40 > end {
            return None;
        }
        // SAFETY: as above.
        if unsafe { *((data + 6) as *const u8) } != IPPROTO_TCP {
            return None;
        }
        40
    } else {
        return None;
    };
    if data + l4 + 13 > end {
        return None;
    }
    // SAFETY: within the bounds checked just above.
    let doff = unsafe { (*((data + l4 + 12) as *const u8) >> 4) as usize } * 4;
    let off = (l4 + doff) as u32;
    (len > off).then_some(off)
}

/// `N` bytes of the payload at `off` (which may sit in the buffer's pages: a helper call).
/// The buffer is not zeroed first: the helper fills all of it or fails (the verifier allows
/// it uninitialised stack), and zeroing 16 bytes was a call to a `memset` subprogram on every
/// response.
#[inline(always)]
fn head<const N: usize>(skb: *const __sk_buff, off: u32) -> Option<[u8; N]> {
    let mut b = core::mem::MaybeUninit::<[u8; N]>::uninit();
    // SAFETY: a constant length into a stack buffer of that length.
    let r = unsafe { bpf_skb_load_bytes(skb as *const _, off, b.as_mut_ptr() as *mut _, N as u32) };
    // SAFETY: on success the helper wrote all N bytes.
    (r == 0).then(|| unsafe { b.assume_init() })
}

fn try_ingress(ctx: &SkBuffContext) -> Option<()> {
    let skb = ctx.skb.skb as *const __sk_buff;
    if !serves(skb, true) {
        return None;
    }
    let off = payload(skb)?;
    if !is_request_start(&head::<8>(skb, off)?) {
        return None;
    }
    // The latest request's time, as `http.rs` keeps it; the entry stays with the socket.
    conn(skb, true)?.start = unsafe { bpf_ktime_get_ns() };
    Some(())
}

fn try_egress(ctx: &SkBuffContext) -> Option<()> {
    let skb = ctx.skb.skb as *const __sk_buff;
    // A segment short enough to be a lone TLS alert record, where alerts are counted here (one
    // compare of the length for the others): any port, as clients write alerts too.
    if unsafe { (*skb).len } <= ALERT_SEGMENT_MAX && crate::tls_alert::at_packets() {
        alert(skb);
    }
    if !serves(skb, false) {
        return None;
    }
    let off = payload(skb)?;
    let code = parse_status(&head::<16>(skb, off)?)?;
    if code < 200 {
        return None;
    }
    let c = conn(skb, false)?;
    // Read once: the ingress program may write it on another CPU meanwhile.
    // SAFETY: an aligned u64 of this socket's entry.
    let start = unsafe { core::ptr::read_volatile(&c.start) };
    if start == 0 || start == c.answered {
        return None;
    }
    c.answered = start;
    let lat = departure(skb).saturating_sub(start);
    if c.known == 0 {
        let trusted = service(skb, &mut c.svc)?;
        c.known = trusted as u32;
    }
    count(&c.svc, code, lat);
    Some(())
}

/// A segment whose payload is exactly one alert record's length: handed to `tls_alert.rs`.
#[inline(always)]
fn alert(skb: *const __sk_buff) -> Option<()> {
    let off = payload(skb)?;
    if unsafe { (*skb).len } != off + ALERT_RECORD_LEN as u32 {
        return None;
    }
    let bytes = head::<7>(skb, off)?;
    // SAFETY: the context's socket, checked for null; then a BTF pointer to it.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    let tp = unsafe { bpf_skc_to_tcp_sock(sk as *mut _) } as *const u8;
    if tp.is_null() {
        return None;
    }
    crate::tls_alert::on_segment(tp, &bytes);
    Some(())
}

/// The segment's time, on the clock of `bpf_ktime_get_ns` (CLOCK_MONOTONIC): TCP stamps
/// every segment it sends with its departure time (`tcp_wstamp_ns`, refreshed from that clock
/// as the segment is built), which the context's `tstamp` reads with a plain load. That saves
/// one of a request's two clock reads, helper calls that together took an eighth of these
/// programs' CPU samples (docs/benchmarks.md, `http-share`). A paced flow's segment may be
/// stamped a little later than now: the time it leaves, which is when the client can have it.
/// TCP has stamped segments so since Linux 4.20 (EDT); one without the stamp (0) reads the
/// clock.
#[inline(always)]
fn departure(skb: *const __sk_buff) -> u64 {
    // SAFETY: a context field, rewritten by the verifier into the kernel's sk_buff.
    match unsafe { (*skb).tstamp } {
        0 => unsafe { bpf_ktime_get_ns() },
        t => t,
    }
}

/// Fills `k` with the service of the segment's socket; whether its process is the sending
/// task's (see the module's comment).
#[inline(always)]
fn service(skb: *const __sk_buff, k: &mut HttpKey) -> Option<bool> {
    // SAFETY: context fields (the socket's addresses, filled in by the verifier's rewrite).
    let (family, port, sk) =
        unsafe { ((*skb).family, (*skb).local_port, (*skb).__bindgen_anon_2.sk) };
    if sk.is_null() {
        return None;
    }
    // A BTF pointer to the socket (the context's own may not be offset or read from).
    let tp = unsafe { bpf_skc_to_tcp_sock(sk as *mut _) } as *const u8;
    if tp.is_null() {
        return None;
    }
    let o = global(&OFFSETS);
    k.family = family as u16;
    k.port = port as u16;
    k.addr = [0; 16];
    if family == guardian_common::AF_INET as u32 {
        k.addr[..4].copy_from_slice(&unsafe { (*skb).local_ip4 }.to_ne_bytes());
    } else {
        for (i, w) in unsafe { (*skb).local_ip6 }.iter().enumerate() {
            k.addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
    }
    k.netns = unsafe { sock_netns(&o, tp) };
    let trusted = k.netns != 0 && current_netns(&o) == k.netns;
    k.tgid = if trusted {
        let task = unsafe { bpf_get_current_task() } as *const u8;
        unsafe { read::<u32>(task, global(&HTTP_OFFSETS).task_tgid) }.unwrap_or(0)
    } else {
        0
    };
    Some(trusted && k.tgid != 0)
}
