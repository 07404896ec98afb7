//! Reading kernel memory at offsets that userspace derived from BTF.
use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    programs::TracePointContext,
};
use guardian_common::Offsets;

/// A tracepoint field at an offset parsed from tracefs; None where this kernel lacks it.
#[inline(always)]
pub unsafe fn field<T>(ctx: &TracePointContext, off: u16) -> Option<T> {
    if off == Offsets::ABSENT {
        return None;
    }
    unsafe { ctx.read_at::<T>(off as usize).ok() }
}

#[inline(always)]
pub unsafe fn read<T>(base: *const u8, off: u16) -> Option<T> {
    if off == Offsets::ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

/// Network namespace inode of a `struct sock *` (`sock_net(sk)->ns.inum`).
#[inline(always)]
pub unsafe fn sock_netns(o: &Offsets, sk: *const u8) -> u32 {
    unsafe {
        let net: *const u8 = match read(sk, o.sock_net) {
            Some(n) => n,
            None => return 0,
        };
        read(net, o.net_inum).unwrap_or(0)
    }
}

/// Network namespace inode of the current task (`current->nsproxy->net_ns->ns.inum`).
#[inline(always)]
pub fn current_netns(o: &Offsets) -> u32 {
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let nsproxy: *const u8 = match read::<*const u8>(task, o.task_nsproxy) {
            Some(p) if !p.is_null() => p,
            _ => return 0,
        };
        let net: *const u8 = match read::<*const u8>(nsproxy, o.nsproxy_net_ns) {
            Some(p) if !p.is_null() => p,
            _ => return 0,
        };
        read(net, o.net_inum).unwrap_or(0)
    }
}
