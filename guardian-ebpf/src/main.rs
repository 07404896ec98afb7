//! guardian's kernel programs. Aggregate in the kernel, hand userspace only what it needs.
//!
//! - `tcp.rs`: retransmitted segments, SYN/SYN-ACK retransmits, TCP state transitions.
//! - `binds.rs`: bind(2) EADDRINUSE from cgroup programs (`syscalls.rs`: the tracepoint
//!   fallback, and the record both write).
//! - `sockops.rs`: `sockopt_failfast` policies applied to new connects (sock_ops).
//! - `xdp.rs`: packets, bytes and SYNs per interface, source and destination port.
//! - `limits.rs`: SYN token buckets per source and per port, applied by `xdp.rs`.
//! - `http_skb.rs`: HTTP/1.x responses by status per service, from every socket's packets
//!   (cgroup_skb); `http_stats.rs`: the map they count into.
//! - `http.rs`: the same from the syscalls, for TLS and where the packet programs are refused.
//! - `tls.rs`: the same over TLS, from one uprobe on OpenSSL's `SSL_write` per response;
//!   `tls_sock.rs`: the socket tracepoints it uses on Linux 6.3+, where `tls_record.rs` then
//!   reads the statuses from OpenSSL's record layer with no uprobe on `SSL_write` at all.
//! - `shadows.rs`: TCP resets sent and received per service port (`reset_storm`).
//! - `tls_hs.rs`: TLS handshake outcomes per (listener, peer), from uprobes on OpenSSL.
//! - `gate.rs`: entry counts that let the syscall tracepoints skip empty TLS maps.
//! - `sockfd.rs`: the socket behind a descriptor, and its local address.
//! - `tls_alert.rs`: plaintext TLS alerts written per (listener, peer), any TLS stack.
//! - `tls_exit.rs`: the per-thread TLS entries of threads that exited inside a call.
//!
//! Every kernel structure or tracepoint offset comes from userspace at load time (`OFFSETS`),
//! derived from BTF and tracefs: nothing here is specific to one kernel version.
#![no_std]
#![no_main]
// `atomic_xadd`: the BPF target has no atomic types with read-modify-write methods, but the
// backend lowers an add whose result is unused to BPF's atomic add (limits.rs).
#![feature(core_intrinsics)]
// `asm!` on BPF: one load instruction per constant tracepoint offset (kernel.rs `field`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

mod bench_noop;
mod binds;
mod dns;
mod dns_spoof;
mod ends;
mod gate;
mod http;
mod http_skb;
mod http_stats;
mod kernel;
mod limits;
mod maps;
mod shadows;
mod sockfd;
mod sockops;
mod sys_exit;
mod syscalls;
mod tcp;
mod tls;
mod tls_alert;
mod tls_exit;
mod tls_h2;
mod tls_hs;
mod tls_record;
mod tls_sock;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
