//! A no-op XDP program: the baseline `cargo xtask bench xdp` compares `guardian_xdp` with.
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
