//! TLS on the socket tracepoints (Linux 6.3+): `sock:sock_recv_length` and
//! `sock:sock_send_length`, which the kernel runs at the end of every receive and send on a
//! socket (`sock_recvmsg_nosec`, `sock_sendmsg_nosec`) with the socket and the result, taken
//! as BTF tracepoints. Where they run (`guardian run --http` on a kernel that has them, with
//! the packet programs reading plaintext), they stand in for the syscall hook (`sys_exit.rs`)
//! that TLS needs otherwise. That hook puts every syscall of every task on the kernel's slow
//! exit path: its `syscall_exit_work` and program entry were about 63 % of its cost, which no
//! change to the program can remove (docs/benchmarks.md). These fire only for socket I/O, and
//! no syscall pays for them: nginx and wrk over TLS made 6.0 socket sends and receives per
//! request against 14.0 syscall exits.
//!
//! They do for TLS what the syscall hook does, with the socket itself as the connection's
//! handle (`sockfd::Handle`: no walk from a descriptor):
//! - a receive: inside a handshake, how it ended and the socket (tls_hs.rs); outside one, in
//!   a process that uses OpenSSL (`gate::uses_tls`), the start of a request (tls.rs);
//! - a send: inside a handshake, the socket; inside an `SSL_write` that passed a status, the
//!   response (tls.rs, `on_write`); after an HTTP/2 write, its result (tls_h2.rs).
//!
//! They see no buffer: the plaintext TLS alerts the syscall hook reads in writes are counted
//! from the packets instead (tls_alert.rs, `on_segment`).
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};

use crate::gate::{self, H2_WRITING, HANDSHAKES, PENDING};
use crate::sockfd::Handle;

/// `MSG_PEEK`: a receive that leaves the data queued (it is received again).
const MSG_PEEK: i32 = 2;

/// `sock_recv_length(struct sock *sk, int ret, int flags)`.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn tls_sock_recv(ctx: BtfTracePointContext) -> i32 {
    let ret: i32 = ctx.arg(1);
    let hs = gate::any(HANDSHAKES);
    // Nothing received and no handshake under way anywhere: a failed receive (EAGAIN, most
    // often) leaves after one array read.
    if ret <= 0 && !hs {
        return 0;
    }
    let flags: i32 = ctx.arg(2);
    if flags & MSG_PEEK != 0 {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    if !gate::uses_tls((id >> 32) as u32) {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    // Inside a handshake: how the receive ended is how a failed return is judged.
    if hs && crate::tls_hs::note_read_ret(id, i64::from(ret)) {
        crate::tls_hs::note_fd(id, sk);
        return 0;
    }
    if ret > 0 {
        crate::tls::note_read(sk);
    }
    0
}

/// `sock_send_length(struct sock *sk, int ret, int flags)`.
#[btf_tracepoint(function = "sock_send_length")]
pub fn tls_sock_send(ctx: BtfTracePointContext) -> i32 {
    // No handshake, no status waiting for its send and no HTTP/2 write under way anywhere:
    // three array reads, and the send is none of this hook's business.
    let (hs, pending, h2) = (
        gate::any(HANDSHAKES),
        gate::any(PENDING),
        gate::any(H2_WRITING),
    );
    if !hs && !pending && !h2 {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    let sk: u64 = ctx.arg(0);
    if hs {
        // Inside a handshake (a client's ClientHello is a send): the connection's socket.
        crate::tls_hs::note_fd(id, sk);
    }
    if pending {
        crate::tls::on_write(id, Handle::Sock(sk));
    }
    if h2 {
        let ret: i32 = ctx.arg(1);
        crate::tls_h2::after_write(id, sk, i64::from(ret));
    }
    0
}
