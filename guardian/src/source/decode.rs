//! Decoding kernel records into events. Pure functions over bytes, tested on byte arrays.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use guardian_common::{SyscallEvent, AF_INET, AF_INET6, EV_BIND_CONFLICT, EV_CONNECT_ADDRNOTAVAIL};

use crate::model::{ObsKind, Observation};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring buffer record of {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("unknown ring buffer record kind {0}")]
    Kind(u32),
}

/// Reads a `SyscallEvent` from a ring buffer record (which may be unaligned).
pub fn syscall_event(bytes: &[u8]) -> Result<SyscallEvent, DecodeError> {
    let want = std::mem::size_of::<SyscallEvent>();
    if bytes.len() < want {
        return Err(DecodeError::Size(bytes.len(), want));
    }
    // SAFETY: length checked; SyscallEvent is repr(C) plain integers, any bit pattern is valid.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const SyscallEvent) })
}

pub fn addr(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
        _ => None,
    }
}

pub fn family_name(family: u16) -> Option<&'static str> {
    match family {
        AF_INET => Some("ipv4"),
        AF_INET6 => Some("ipv6"),
        _ => None,
    }
}

/// The task name, up to the first NUL.
pub fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// An address as text, as `IpAddr`'s `Display` writes it. IPv4 by hand: the formatter's
/// machinery costs more than the rest of decoding a record (`cargo xtask bench decode`).
pub fn addr_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, b) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if b >= 100 {
            s.push((b'0' + b / 100) as char);
        }
        if b >= 10 {
            s.push((b'0' + b / 10 % 10) as char);
        }
        s.push((b'0' + b % 10) as char);
    }
    s
}

pub fn observation(ev: &SyscallEvent) -> Result<Observation, DecodeError> {
    let kind = match ev.kind {
        EV_BIND_CONFLICT => ObsKind::BindConflict,
        EV_CONNECT_ADDRNOTAVAIL => ObsKind::ConnectAddrnotavail,
        k => return Err(DecodeError::Kind(k)),
    };
    let ip = addr(ev.family, &ev.addr);
    Ok(Observation {
        netns: ev.netns,
        kind,
        error: kind.error().into(),
        pid: ev.tgid,
        tid: ev.pid,
        comm: comm(&ev.comm),
        family: family_name(ev.family).map(str::to_string),
        addr: ip.map(addr_text),
        port: ip.map(|_| ev.port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record exactly as the kernel lays it out (little endian), built byte by byte.
    fn record() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_le_bytes()); // kind = bind conflict
        b.extend_from_slice(&4026531840u32.to_le_bytes()); // netns
        b.extend_from_slice(&4242u32.to_le_bytes()); // tgid
        b.extend_from_slice(&4243u32.to_le_bytes()); // pid (thread)
        b.extend_from_slice(&(-98i32).to_le_bytes()); // ret
        b.extend_from_slice(&2u16.to_le_bytes()); // AF_INET
        b.extend_from_slice(&8080u16.to_le_bytes()); // port, host order
        b.extend_from_slice(&[10, 77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(b"gt-binder\0\0\0\0\0\0\0");
        b.extend_from_slice(&123u64.to_le_bytes());
        b
    }

    #[test]
    fn decodes_bind_conflict_record() {
        let bytes = record();
        assert_eq!(bytes.len(), std::mem::size_of::<SyscallEvent>());
        let ev = syscall_event(&bytes).unwrap();
        let o = observation(&ev).unwrap();
        assert_eq!(o.kind, crate::model::ObsKind::BindConflict);
        assert_eq!(o.error, "EADDRINUSE");
        assert_eq!((o.pid, o.tid), (4242, 4243));
        assert_eq!(o.comm, "gt-binder");
        assert_eq!(o.addr.as_deref(), Some("10.77.0.1"));
        assert_eq!(o.port, Some(8080));
        assert_eq!(o.family.as_deref(), Some("ipv4"));
        assert_eq!(o.netns, 4026531840);
    }

    #[test]
    fn decodes_ipv6_and_unaligned_input() {
        let mut bytes = record();
        bytes[20..22].copy_from_slice(&10u16.to_le_bytes());
        bytes[24..40].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        let o = observation(&syscall_event(&shifted[1..]).unwrap()).unwrap();
        assert_eq!(o.addr.as_deref(), Some("2001:db8::7"));
        assert_eq!(o.family.as_deref(), Some("ipv6"));
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let bytes = record();
        assert_eq!(
            syscall_event(&bytes[..10]),
            Err(DecodeError::Size(10, bytes.len()))
        );
        let mut bad = bytes.clone();
        bad[0] = 77;
        assert_eq!(
            observation(&syscall_event(&bad).unwrap()),
            Err(DecodeError::Kind(77))
        );
    }

    #[test]
    fn connect_failure_names_its_destination() {
        // As `sock_state` writes it: the destination the connect found no free port for.
        let mut bytes = record();
        bytes[0] = 2;
        bytes[16..20].copy_from_slice(&(-99i32).to_le_bytes());
        bytes[22..24].copy_from_slice(&5201u16.to_le_bytes());
        let o = observation(&syscall_event(&bytes).unwrap()).unwrap();
        assert_eq!(o.kind, crate::model::ObsKind::ConnectAddrnotavail);
        assert_eq!(o.error, "EADDRNOTAVAIL");
        assert_eq!((o.addr.as_deref(), o.port), (Some("10.77.0.1"), Some(5201)));
    }

    #[test]
    fn connect_failure_without_address() {
        let mut bytes = record();
        bytes[0] = 2;
        bytes[20..22].copy_from_slice(&0u16.to_le_bytes());
        let o = observation(&syscall_event(&bytes).unwrap()).unwrap();
        assert_eq!(o.kind, crate::model::ObsKind::ConnectAddrnotavail);
        assert_eq!(o.addr, None);
        assert_eq!(o.port, None);
    }

    #[test]
    fn ipv4_text_is_display_for_every_octet_width() {
        for a in [
            [0, 0, 0, 0],
            [10, 77, 0, 1],
            [255, 255, 255, 255],
            [1, 20, 100, 199],
            [9, 99, 109, 250],
        ] {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            assert_eq!(addr_text(ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(addr_text(v6), "2001:db8::7");
    }

    #[test]
    fn comm_without_nul_uses_all_bytes() {
        assert_eq!(comm(b"0123456789abcdef"), "0123456789abcdef");
    }
}
