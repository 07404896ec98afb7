//! A two-instruction XDP program (`return XDP_PASS`) loaded with the raw bpf(2) syscall and
//! attached through netlink (`ip link set ... xdp pinned`), the way an older run or another
//! tool leaves one behind: a netlink attachment outlives the process that made it.
use std::{ffi::CString, os::fd::RawFd};

use serde_json::Value;

use crate::{netns::Netns, truth};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TYPE_XDP: u32 = 6;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a zero-initialised union bpf_attr of sufficient size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads `r0 = XDP_PASS; exit` named `name` (≤ 15 bytes) and returns its fd.
pub fn load_pass(name: &str) -> RawFd {
    load_trivial(BPF_PROG_TYPE_XDP, 2, name)
}

/// Loads `r0 = ret; exit` of program type `prog_type` named `name` and returns its fd.
pub fn load_trivial(prog_type: u32, ret: u8, name: &str) -> RawFd {
    assert!(name.len() < 16);
    // BPF_ALU64|BPF_MOV|BPF_K r0 = ret; BPF_JMP|BPF_EXIT.
    let insns: [u8; 16] = [0xb7, 0, 0, 0, ret, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = CString::new("GPL").unwrap();
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..48 + name.len()].copy_from_slice(name.as_bytes());
    bpf(BPF_PROG_LOAD, &mut attr).expect("BPF_PROG_LOAD of a trivial XDP program") as RawFd
}

fn pin(fd: RawFd, path: &str) -> std::io::Result<()> {
    let cpin = CString::new(path).unwrap();
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(cpin.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

/// Another tool's program on `iface`: a `TC_ACT_OK` classifier named `name` on the clsact
/// ingress hook (`tc filter ... bpf direct-action`), which guardian must never touch. Returns
/// its program id.
pub fn attach_tc_ingress(ns: &Netns, iface: &str, name: &str) -> u64 {
    const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
    let fd = load_trivial(BPF_PROG_TYPE_SCHED_CLS, 0, name);
    let path = format!("/sys/fs/bpf/gt-{}-{name}", std::process::id());
    let pinned = pin(fd, &path);
    // SAFETY: our own fd from BPF_PROG_LOAD.
    unsafe { libc::close(fd) };
    pinned.expect("BPF_OBJ_PIN (is bpffs mounted at /sys/fs/bpf?)");
    let _ = ns.output(&["tc", "qdisc", "add", "dev", iface, "clsact"]);
    let out = ns.output(&[
        "tc",
        "filter",
        "add",
        "dev",
        iface,
        "ingress",
        "bpf",
        "direct-action",
        "object-pinned",
        &path,
    ]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "tc filter add {iface}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filters: Value =
        serde_json::from_str(&ns.run(&["tc", "-j", "filter", "show", "dev", iface, "ingress"]))
            .expect("tc -j filter show");
    filters
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|f| f.pointer("/options/prog/id").and_then(Value::as_u64))
        .expect("the classifier's program id")
}

/// Attaches a fresh `name` program to `iface` in `ns` through netlink (`mode`: `xdp`,
/// `xdpgeneric` or `xdpdrv`) and returns its program id. Nothing of the test keeps it alive:
/// the pin is removed and the fd closed afterwards.
pub fn attach_via_netlink(ns: &Netns, iface: &str, name: &str, mode: &str) -> u64 {
    let fd = load_pass(name);
    let pin_path = format!("/sys/fs/bpf/gt-{}-{name}", std::process::id());
    let pinned = pin(fd, &pin_path);
    let pin = pin_path;
    let attached = pinned
        .as_ref()
        .ok()
        .map(|()| ns.output(&["ip", "link", "set", "dev", iface, mode, "pinned", &pin]));
    let _ = std::fs::remove_file(&pin);
    // SAFETY: our own fd from BPF_PROG_LOAD.
    unsafe { libc::close(fd) };
    if let Err(e) = pinned {
        panic!("BPF_OBJ_PIN (is bpffs mounted at /sys/fs/bpf?): {e}");
    }
    let out = attached.expect("attached after a successful pin");
    assert!(
        out.status.success(),
        "ip link set {iface} {mode} pinned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prog_id(ns, iface).expect("an XDP program attached after ip link set")
}

/// The id of the XDP program attached to `iface`, from `ip -j link show`.
pub fn prog_id(ns: &Netns, iface: &str) -> Option<u64> {
    let link = truth::link(ns, iface);
    let xdp = link.get("xdp")?;
    let direct = xdp.pointer("/prog/id").and_then(Value::as_u64);
    direct.or_else(|| {
        xdp.get("attached")?
            .as_array()?
            .iter()
            .find_map(|a| a.pointer("/prog/id").and_then(Value::as_u64))
    })
}
