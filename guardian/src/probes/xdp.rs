//! XDP attachment: refuses to clobber another tool's program, removes guardian's own program
//! left behind by a killed run (a netlink attachment outlives its process; a bpf_link does not),
//! then attaches through a bpf_link so that a crash can never leave it behind again.
use aya::{
    programs::{xdp::XdpLinkId, Xdp, XdpMode},
    Ebpf,
};
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage, LinkXdp, XdpAttached},
    RouteNetlinkMessage,
};

use crate::netlink::sync::request;

/// The XDP program's name in the kernel (what `bpftool prog` shows).
pub const PROGRAM: &str = "guardian_xdp";

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("interface {0} named by --xdp does not exist in this network namespace")]
    NoSuchInterface(String),
    #[error("interface {iface} already runs another XDP program ({name}, id {id}); guardian does not replace it")]
    Foreign {
        iface: String,
        name: String,
        id: u32,
    },
    #[error("interface {0} runs guardian's XDP program through a live link: is another guardian running?")]
    InUse(String),
    #[error("netlink query of interface {iface}: {reason}")]
    Netlink { iface: String, reason: String },
    #[error("attaching XDP to {iface}: {source}")]
    Attach {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
}

pub struct Attachment {
    pub iface: String,
    pub ifindex: u32,
    pub link: XdpLinkId,
    /// True when a stale guardian program from an earlier run was removed first.
    pub replaced_stale: bool,
    /// True when the program counts this interface's DNS answers (`DNS_AT_XDP`).
    pub dns: bool,
    /// The mode the kernel attached it in, as it reports it after the attach: `driver`,
    /// `generic` (no XDP in the driver, or the driver refused) or `offload`.
    pub mode: &'static str,
}

pub fn attach(ebpf: &mut Ebpf, iface: &str) -> Result<Attachment, XdpError> {
    let ifindex = nix::net::if_::if_nametoindex(iface)
        .map_err(|_| XdpError::NoSuchInterface(iface.to_string()))?;
    let mut replaced_stale = false;
    if let Some((id, mode)) = attached_program(ifindex, iface)? {
        let name = program_name(id).unwrap_or_else(|| "?".into());
        if name != PROGRAM {
            return Err(XdpError::Foreign {
                iface: iface.to_string(),
                name,
                id,
            });
        }
        // Ours, from a run that was killed. A live bpf_link refuses the netlink detach (EBUSY).
        detach_netlink(ifindex, iface, mode).map_err(|_| XdpError::InUse(iface.to_string()))?;
        tracing::warn!(iface, prog_id = id, "removed a stale guardian XDP program");
        replaced_stale = true;
    }
    let err = |source| XdpError::Attach {
        iface: iface.to_string(),
        source,
    };
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| XdpError::Netlink {
            iface: iface.to_string(),
            reason: "the eBPF object has no XDP program".into(),
        })?
        .try_into()
        .map_err(err)?;
    if prog.fd().is_err() {
        prog.load().map_err(err)?;
    }
    // The kernel picks the driver's mode when the driver has XDP at all, and does not fall
    // back when the driver then refuses (virtio_net with the host's GRO/checksum offloads:
    // EOPNOTSUPP): the generic mode works on any interface, at the stack's cost.
    let link = match prog.attach_to_if_index(ifindex, XdpMode::default()) {
        Err(e) if refused_by_driver(&e) => {
            tracing::warn!(iface, error = %e, "the driver refuses XDP: attaching in generic (skb) mode");
            prog.attach_to_if_index(ifindex, XdpMode::Skb)
        }
        r => r,
    }
    .map_err(err)?;
    let mode = match attached_program(ifindex, iface)? {
        Some((_, m)) => mode_name(m),
        None => "unknown",
    };
    Ok(Attachment {
        iface: iface.to_string(),
        ifindex,
        link,
        replaced_stale,
        dns: false,
        mode,
    })
}

/// The name of an `XDP_FLAGS_*_MODE`.
fn mode_name(flags: u32) -> &'static str {
    match flags {
        XDP_FLAGS_DRV_MODE => "driver",
        XDP_FLAGS_SKB_MODE => "generic",
        XDP_FLAGS_HW_MODE => "offload",
        _ => "unknown",
    }
}

/// Whether an attach failed because the driver does not do XDP in this configuration
/// (EOPNOTSUPP), where the generic mode still can.
fn refused_by_driver(e: &aya::programs::ProgramError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = src {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            return io.raw_os_error() == Some(libc::EOPNOTSUPP);
        }
        src = x.source();
    }
    false
}

/// Has the XDP program on `a` count the interface's DNS answers (`DNS_AT_XDP`), so that the
/// ingress DNS program need not be attached there: a tcx hook costs every received packet its
/// entry, even with a program that returns at once. False where the array has no slot for the
/// ifindex or the map cannot be written (the caller attaches the tcx program instead).
pub fn count_dns(ebpf: &mut Ebpf, a: &mut Attachment) -> bool {
    if a.ifindex >= guardian_common::XDP_IFACE_SLOTS {
        return false;
    }
    let set = ebpf
        .map_mut("DNS_AT_XDP")
        .ok_or(aya::maps::MapError::InvalidName {
            name: "DNS_AT_XDP".into(),
        })
        .and_then(aya::maps::Array::<_, u32>::try_from)
        .and_then(|mut m| m.set(a.ifindex, 1, 0));
    if let Err(e) = &set {
        tracing::warn!(iface = a.iface, error = %e, "DNS answers stay with the tcx program");
    }
    a.dns = set.is_ok();
    a.dns
}

pub fn detach(ebpf: &mut Ebpf, a: Attachment) -> Result<(), aya::programs::ProgramError> {
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or(aya::programs::ProgramError::NotLoaded)?
        .try_into()?;
    prog.detach(a.link)
}

fn program_name(id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_string))
}

/// The XDP program attached to `ifindex`, with the mode flags it was attached in.
pub fn attached_program(ifindex: u32, iface: &str) -> Result<Option<(u32, u32)>, XdpError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let replies = request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST).map_err(|reason| {
        XdpError::Netlink {
            iface: iface.to_string(),
            reason,
        }
    })?;
    for reply in replies {
        let RouteNetlinkMessage::NewLink(link) = reply else {
            continue;
        };
        for attr in link.attributes {
            let LinkAttribute::Xdp(xdp) = attr else {
                continue;
            };
            let mut mode = 0;
            let mut id = None;
            for x in xdp {
                match x {
                    LinkXdp::Attached(XdpAttached::SocketBuffer) => mode = XDP_FLAGS_SKB_MODE,
                    LinkXdp::Attached(XdpAttached::Driver) => mode = XDP_FLAGS_DRV_MODE,
                    LinkXdp::Attached(XdpAttached::Hardware) => mode = XDP_FLAGS_HW_MODE,
                    LinkXdp::ProgId(p) if p != 0 => id = Some(p),
                    _ => {}
                }
            }
            return Ok(id.map(|id| (id, mode)));
        }
    }
    Ok(None)
}

fn detach_netlink(ifindex: u32, iface: &str, mode: u32) -> Result<(), XdpError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(vec![
        LinkXdp::Fd(-1),
        LinkXdp::Flags(mode),
    ]));
    request(RouteNetlinkMessage::SetLink(msg), NLM_F_REQUEST | NLM_F_ACK)
        .map(|_| ())
        .map_err(|reason| XdpError::Netlink {
            iface: iface.to_string(),
            reason,
        })
}

#[cfg(test)]
mod fallback_tests {
    use super::refused_by_driver;
    use aya::programs::ProgramError;
    use aya::sys::SyscallError;

    fn failed(errno: i32) -> ProgramError {
        ProgramError::SyscallError(SyscallError {
            call: "bpf_link_create",
            io_error: std::io::Error::from_raw_os_error(errno),
        })
    }

    #[test]
    fn only_a_driver_refusal_falls_back_to_generic_mode() {
        assert!(refused_by_driver(&failed(libc::EOPNOTSUPP)));
        assert!(!refused_by_driver(&failed(libc::EBUSY)));
        assert!(!refused_by_driver(&failed(libc::EPERM)));
        assert!(!refused_by_driver(&ProgramError::NotLoaded));
    }
}
