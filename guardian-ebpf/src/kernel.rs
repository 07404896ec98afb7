//! Reading kernel memory at offsets that userspace derived from BTF.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_SK_STORAGE_GET_F_CREATE,
    helpers::generated as gen,
    helpers::{bpf_get_current_task, bpf_probe_read_kernel, bpf_sk_storage_get},
    programs::TracePointContext,
    EbpfContext, Global,
};
use guardian_common::Offsets;

/// A read-only global (the offsets userspace writes before loading), by reference: a program
/// then loads only the fields it uses, where `Global::load` copies the whole struct with one
/// volatile load per field (34 for `HttpOffsets`) on every call. A plain read of the static
/// would be folded to its initializer by the compiler; `black_box` hides the address from the
/// optimizer instead. The verifier still sees loads from a frozen read-only map at constant
/// offsets, so each field stays a known constant to it (`field` relies on that).
#[inline(always)]
pub fn global<T>(g: &'static Global<T>) -> &'static T {
    // SAFETY: `Global<T>` is `repr(transparent)` over an initialised `MaybeUninit<T>`.
    unsafe { &*core::hint::black_box(g as *const Global<T> as *const T) }
}

/// A tracepoint field at an offset parsed from tracefs; None where this kernel lacks it.
///
/// The offsets live in read-only globals (`.rodata`, frozen before the programs load), so the
/// verifier knows `off` as a constant and keeps one branch below. A field of 2, 4 or 8 bytes
/// at an offset of its own alignment in the first 64 bytes of the record (every field of the
/// TCP and socket tracepoints guardian reads but the IPv6 addresses, and the syscall
/// tracepoints' arguments and `ret`) is a direct load from the record, which the verifier
/// accepts only with the offset in the instruction. Anything else is a probe read, a helper
/// call: measured here with the kernel's BPF statistics, two of them made
/// `sock:inet_sock_set_state`'s most common path (a transition nobody counts) cost 381 ns per
/// run against 100 ns or so with direct loads, on every TCP state change of the host.
#[inline(always)]
pub unsafe fn field<T>(ctx: &TracePointContext, off: u16) -> Option<T> {
    if off == Offsets::ABSENT {
        return None;
    }
    let p = ctx.as_ptr() as *const u8;
    // One load instruction per constant offset, written out: plain (even volatile) loads in
    // a chain of `if off == N` are merged by LLVM into one load at a computed `p + off`,
    // which the verifier refuses on a context pointer.
    macro_rules! direct {
        ($size:literal, $int:ty, $c:literal: $($o:literal)*) => {
            if core::mem::size_of::<T>() == $size {
                $(
                    if off == $o {
                        let v: u64;
                        // SAFETY: an aligned load from the tracepoint's record, at an offset
                        // the verifier checks against the record's bounds.
                        unsafe {
                            core::arch::asm!(
                                concat!("{0} = *(", $c, " *)({1} + ", stringify!($o), ")"),
                                out(reg) v,
                                in(reg) p,
                                options(readonly, nostack, preserves_flags),
                            );
                            return Some(core::mem::transmute_copy::<$int, T>(&(v as $int)));
                        }
                    }
                )*
            }
        };
    }
    direct!(8, u64, "u64": 8 16 24 32 40 48 56);
    direct!(4, u32, "u32": 8 12 16 20 24 28 32 36 40 44 48 52 56 60);
    direct!(2, u16, "u16": 8 10 12 14 16 18 20 22 24 26 28 30 32 34 36 38 40 42 44 46 48 50 52 54 56 58 60 62);
    unsafe { ctx.read_at::<T>(off as usize).ok() }
}

#[inline(always)]
pub unsafe fn read<T>(base: *const u8, off: u16) -> Option<T> {
    if off == Offsets::ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

/// Reads the `T` at `base + off` into `*dst`, in place; `dst` is zeroed when the read fails
/// and left as it is when the offset is absent. For arrays such as addresses: one returned
/// by value is split by LLVM into a value per byte, which the verifier's stack then holds in
/// an 8-byte slot each when registers run out (`tls_hs_exit` held 296 bytes of them, and
/// 6.1 refused it: ends.rs).
#[inline(always)]
pub unsafe fn read_into<T>(dst: *mut T, base: *const u8, off: u16) {
    if off == Offsets::ABSENT {
        return;
    }
    // SAFETY: the caller's `dst` holds a `T`; kernel memory through a probe read.
    unsafe {
        gen::bpf_probe_read_kernel(
            dst as *mut c_void,
            core::mem::size_of::<T>() as u32,
            base.add(off as usize) as *const c_void,
        );
    }
}

/// Two 8-byte fields of one structure at `a` and `b`: one probe read when they are next to
/// each other (in either order), else two. Each probe read is a helper call, about 20 ns here.
#[inline(always)]
pub unsafe fn read_pair(base: *const u8, a: u16, b: u16) -> Option<(u64, u64)> {
    unsafe {
        if a != Offsets::ABSENT && b as u32 == a as u32 + 8 {
            let [x, y] = read::<[u64; 2]>(base, a)?;
            return Some((x, y));
        }
        if b != Offsets::ABSENT && a as u32 == b as u32 + 8 {
            let [y, x] = read::<[u64; 2]>(base, b)?;
            return Some((x, y));
        }
        Some((read(base, a)?, read(base, b)?))
    }
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

/// The entry of socket `sk` in the socket storage map `map` (a `#[btf_map] SkStorage<T>`),
/// created (zeroed) with `create`; None when the kernel has none to give.
///
/// # Safety
/// `map` must be the address of an `SkStorage<T>` map definition (what `SkStorage` passes
/// itself; its own getter takes only a sock_addr context), and `sk` a socket the verifier
/// accepts for the program type. The entry is this socket's, valid for the program's run.
#[inline(always)]
pub unsafe fn sk_storage<T>(
    map: *const c_void,
    sk: *mut c_void,
    create: bool,
) -> Option<&'static mut T> {
    let flags = if create {
        BPF_SK_STORAGE_GET_F_CREATE as u64
    } else {
        0
    };
    let p = unsafe { bpf_sk_storage_get(map as *mut c_void, sk, core::ptr::null_mut(), flags) }
        as *mut T;
    // SAFETY: a non-null storage pointer of the map's value type.
    (!p.is_null()).then(|| unsafe { &mut *p })
}
