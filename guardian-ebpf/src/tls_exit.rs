//! Thread exits (`sched:sched_process_exit`, which the kernel runs in every exiting thread;
//! attached with the OpenSSL uprobes): the entries of the per-thread TLS maps that only the
//! thread itself would remove, at a return or its next call.
//!
//! A thread that dies inside `SSL_do_handshake` (a client killed while its server does not
//! answer, a worker killed mid-handshake) never returns from it. Its `HS_CALLS` entry stayed,
//! and the gate that counts the map's entries stayed above zero for the daemon's life: every
//! socket send of every process on the host then went past `tls_sock_send`'s early exit to a
//! hash lookup (three such threads took the socket tracepoints from 687 to 1 141 ns per
//! plaintext nginx request here, docs/benchmarks.md), and once 16 384 had died the map was
//! full and no handshake was followed at all. The same for `TLS_PENDING` (a status whose
//! send never came) and `H2_CALLS` (a thread's last HTTP/2 write, which nothing else removes).
//!
//! One array read per thread exit while the three maps are empty.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};

use crate::gate::{self, H2_WRITING, HANDSHAKES, PENDING};

#[tracepoint]
pub fn tls_thread_exit(_ctx: TracePointContext) -> u32 {
    if !gate::any(HANDSHAKES) && !gate::any(PENDING) && !gate::any(H2_WRITING) {
        return 0;
    }
    // The exiting thread is the current task.
    let id = bpf_get_current_pid_tgid();
    crate::tls_hs::thread_gone(id);
    crate::tls::thread_gone(id);
    crate::tls_h2::thread_gone(id);
    0
}
