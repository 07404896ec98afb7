//! The programs' one-slot switches: arrays whose slot 0 userspace sets once at the attach to
//! turn a path on or off (`TLS_H2_ON`, `TLS_ALERT_SKB`, `HTTP_PLAIN_AT_SYSCALLS`).
use aya::{maps::Array, Ebpf};

/// Sets slot 0 of the one-slot array `name` to `on`.
pub fn set(ebpf: &mut Ebpf, name: &str, on: bool) -> Result<(), String> {
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| format!("map {name} is missing from the eBPF object"))?;
    let mut a: Array<_, u32> = Array::try_from(map).map_err(|e| e.to_string())?;
    a.set(0, u32::from(on), 0).map_err(|e| e.to_string())
}
