//! No-op programs: the baselines `cargo xtask bench xdp` compares `guardian_xdp` and the tcx
//! DNS programs with, and the ones `cargo xtask bench http` holds on the syscall hook of
//! `--http` and on every socket's packets (what each hook costs with nothing in it).
//!
//! It lives in guardian's object only so that the benchmark measures both programs built by
//! the same toolchain with the same flags. The daemon never loads it: aya puts a program in
//! the kernel only when `Program::load` is called on it by name, and guardian loads its
//! programs by name (`probes::load`).
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn xdp_noop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// A no-op tc program (`TCX_NEXT`): the baseline for the tcx DNS programs, alone
/// (BPF_PROG_TEST_RUN) and on a veth (what any tcx program costs a packet).
#[aya_ebpf::macros::classifier]
pub fn tc_noop(_ctx: aya_ebpf::programs::TcContext) -> i32 {
    aya_ebpf::bindings::TC_ACT_UNSPEC
}

/// A no-op BTF tracepoint program: `cargo xtask bench http` attaches it to the raw `sys_exit`
/// tracepoint, as guardian attaches `http_sys_exit` (`sys_exit.rs`).
#[aya_ebpf::macros::btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_noop(_ctx: aya_ebpf::programs::BtfTracePointContext) -> i32 {
    0
}

/// A no-op cgroup socket-buffer program (pass): `cargo xtask bench http` attaches it to the
/// root cgroup's ingress and egress, where it runs for every packet of every socket on the
/// host. What counting HTTP at the packet level with the socket at hand (instead of at the
/// syscalls) would pay before it parses anything.
#[aya_ebpf::macros::cgroup_skb]
pub fn cgroup_skb_noop(_ctx: aya_ebpf::programs::SkBuffContext) -> i32 {
    1
}
