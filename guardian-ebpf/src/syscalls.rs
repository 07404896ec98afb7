//! Syscall tracepoints: bind(2) failing with EADDRINUSE, where the kernel refuses the cgroup
//! programs of `binds.rs` (they cost nothing outside bind(2); these put every syscall on the
//! tracing slow path). connect(2) failing with EADDRNOTAVAIL is seen by `sock_state`.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use guardian_common::{BindArgs, SyscallEvent, AF_INET, AF_INET6, EV_BIND_CONFLICT};

use crate::{
    kernel::current_netns,
    kernel::{field, global},
    maps::{ns_add, ringbuf_lost, BIND_ARGS, EVENTS, OFFSETS},
};

const EADDRINUSE: i64 = 98;

#[tracepoint]
pub fn bind_enter(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_bind_enter(&ctx) };
    0
}

unsafe fn try_bind_enter(ctx: &TracePointContext) -> Option<()> {
    let o = global(&OFFSETS);
    unsafe {
        let uaddr: *const u8 = field(ctx, o.bind_umyaddr)?;
        let family: u16 = bpf_probe_read_user(uaddr as *const u16).ok()?;
        let mut args = BindArgs {
            family,
            ..Default::default()
        };
        if family == AF_INET || family == AF_INET6 {
            // sin_port / sin6_port: network byte order at offset 2.
            let port: u16 = bpf_probe_read_user(uaddr.add(2) as *const u16).ok()?;
            args.port = u16::from_be(port);
            if family == AF_INET {
                let a: [u8; 4] = bpf_probe_read_user(uaddr.add(4) as *const [u8; 4]).ok()?;
                args.addr[..4].copy_from_slice(&a);
            } else {
                args.addr = bpf_probe_read_user(uaddr.add(8) as *const [u8; 16]).ok()?;
            }
        } else {
            // Not an inet bind: nothing to remember.
            return Some(());
        }
        BIND_ARGS.insert(bpf_get_current_pid_tgid(), args, 0).ok()?;
    }
    Some(())
}

#[tracepoint]
pub fn bind_exit(ctx: TracePointContext) -> u32 {
    let _ = unsafe { try_bind_exit(&ctx) };
    0
}

unsafe fn try_bind_exit(ctx: &TracePointContext) -> Option<()> {
    let o = global(&OFFSETS);
    let id = bpf_get_current_pid_tgid();
    let args = unsafe { BIND_ARGS.get(id).copied() }?;
    let _ = BIND_ARGS.remove(id);
    let ret: i64 = unsafe { field(ctx, o.exit_ret)? };
    if ret != -EADDRINUSE {
        return Some(());
    }
    let netns = current_netns(&o);
    ns_add(netns, |c| c.bind_eaddrinuse += 1);
    emit(
        netns,
        id,
        EV_BIND_CONFLICT,
        ret as i32,
        args.family,
        args.port,
        args.addr,
    );
    Some(())
}

/// Writes a `SyscallEvent` of the current task.
#[inline(always)]
pub fn emit(netns: u32, id: u64, kind: u32, ret: i32, family: u16, port: u16, addr: [u8; 16]) {
    let Some(mut entry) = EVENTS.reserve::<SyscallEvent>(0) else {
        ringbuf_lost();
        return;
    };
    entry.write(SyscallEvent {
        kind,
        netns,
        tgid: (id >> 32) as u32,
        pid: id as u32,
        ret,
        family,
        port,
        addr,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    });
    entry.submit(0);
}
