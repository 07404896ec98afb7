//! One program for the HTTP side of every syscall (`guardian run --http`, x86-64): a BTF
//! tracepoint (`tp_btf`) on the raw `sys_exit` tracepoint, which runs at the exit of every
//! syscall of every task and acts on read(2), recvfrom(2), write(2), sendto(2), writev(2)
//! and sendmsg(2) (`http.rs`). Not attached where the socket tracepoints carry TLS
//! (`tls_sock.rs`) and the packet programs plaintext.
//!
//! Why not the per-syscall tracepoints (`syscalls:sys_enter_write`...), which the kernel runs
//! only for the syscalls they name: those are perf events. For each hit the kernel fills a
//! record with the syscall's arguments in a per-CPU buffer and calls the program through perf;
//! a raw tracepoint calls the program directly with the `struct pt_regs *` the syscall was
//! entered with, which a BTF tracepoint reads with plain loads (the verifier knows its type;
//! no helper call). Measured here (`cargo xtask bench http`, "where it goes"): the no-op
//! programs' floor and guardian's own run time per request both went down; the exits of
//! the other syscalls pay a program entry and one compare.
//!
//! The writes are taken at their exit: the buffer is the caller's and still holds what was
//! written (the task is inside the syscall until now). The arguments are the registers the
//! syscall was entered with: only `ax` is replaced by the return value.
//!
//! Seeing every syscall also lets a connection keep its service (listener address and port,
//! namespace) from its first response on (`http.rs`: `HttpConn`), which saves the walk from
//! the fd to the socket, about twelve kernel reads, on every later response: close(2),
//! accept(2)/accept4(2) and dup2(2)/dup3(2) drop the entry of the fd they end or replace, so
//! that a new connection on a reused fd number never inherits the old one's service. The one
//! gap: a number freed without them (close-on-exec, close_range(2)) and then reused by other
//! than accept(2) (a descriptor passed over a Unix socket, say) keeps the old entry, and its
//! responses count for the old connection's service.
use aya_ebpf::{
    helpers::bpf_get_current_task_btf, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use guardian_common::http::nr;

use crate::http::{after_read, forget_fd, on_write, HTTP_OFFSETS};
use crate::kernel::global;
use crate::tls_alert::Buf;

#[btf_tracepoint(function = "sys_exit")]
pub fn http_sys_exit(ctx: BtfTracePointContext) -> i32 {
    let o = global(&HTTP_OFFSETS);
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    // SAFETY: `regs` is the BTF-typed `struct pt_regs *` of the tracepoint; the offsets are
    // BTF's, constants to the verifier, which turns the loads into checked kernel loads.
    let reg = |off: u16| unsafe { *(regs.add(off as usize) as *const u64) };
    let n = reg(o.regs_nr);
    if !matches!(
        n,
        nr::READ
            | nr::RECVFROM
            | nr::WRITE
            | nr::SENDTO
            | nr::WRITEV
            | nr::SENDMSG
            | nr::CLOSE
            | nr::ACCEPT
            | nr::ACCEPT4
            | nr::DUP2
            | nr::DUP3
    ) {
        return 0;
    }
    // One helper call for the task, then plain loads: whether the syscall is a 32-bit one,
    // and the ids `bpf_get_current_pid_tgid` would return (`tgid << 32 | pid`) for one more
    // call.
    // SAFETY: the trusted BTF pointer to the current task; BTF offsets, which the verifier
    // checks as it does the registers'.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let field = |off: u16| unsafe { *(task.add(off as usize) as *const u32) };
    if field(o.task_status) & nr::TS_COMPAT != 0 {
        return 0;
    }
    let id = (u64::from(field(o.task_tgid)) << 32) | u64::from(field(o.task_pid));
    match n {
        nr::READ | nr::RECVFROM => {
            after_read(id, ret, || Some((reg(o.regs_arg0), reg(o.regs_arg1))))
        }
        // The fd is closed: its connection is over.
        nr::CLOSE if ret == 0 => forget_fd(id, reg(o.regs_arg0)),
        // A new connection, or a copy of another fd, now has the number `ret`.
        nr::ACCEPT | nr::ACCEPT4 | nr::DUP2 | nr::DUP3 if ret >= 0 => forget_fd(id, ret as u64),
        nr::CLOSE | nr::ACCEPT | nr::ACCEPT4 | nr::DUP2 | nr::DUP3 => {}
        _ => {
            let (fd, p, len) = (reg(o.regs_arg0), reg(o.regs_arg1), reg(o.regs_arg2));
            let b = match n {
                nr::WRITEV => Buf::Iovec { vec: p, vlen: len },
                nr::SENDMSG => Buf::Msghdr { msg: p },
                _ => Buf::Plain { buf: p, len },
            };
            on_write(id, fd, b, true);
            if crate::gate::any(crate::gate::H2_WRITING) {
                crate::tls_h2::after_write(id, fd, ret);
            }
        }
    }
    0
}
