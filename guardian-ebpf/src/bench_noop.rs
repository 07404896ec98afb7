//! No-op programs: the baselines `cargo xtask bench xdp` compares `guardian_xdp` and the tcx
//! DNS programs with, and the one `cargo xtask bench http` holds on the syscall hook of
//! `--http` (what that hook costs with nothing in it).
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
