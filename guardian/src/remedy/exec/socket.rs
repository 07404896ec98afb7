//! Sockets: [`Action::DestroySocket`](crate::remedy::Action::DestroySocket) (irreversible: its
//! inverse is `Nothing`) and [`Verify::SocketGone`](crate::remedy::Verify::SocketGone). No
//! precondition: the plan names the socket by cookie, and a socket already gone is fine.
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagDestroy, SockDiagMessage,
};

use crate::remedy::error::RemedyError;
use crate::remedy::holders::{self, SocketRef};
use crate::remedy::kernel::Kernel;

/// [`Action::DestroySocket`]: SOCK_DESTROY of exactly this socket (4-tuple, interface and
/// cookie), from a thread in its namespace. A socket already gone (ENOENT) is not an error.
pub async fn destroy(k: &mut Kernel, s: &SocketRef) -> Result<(), RemedyError> {
    let ns = k.netns_path(s.netns)?;
    let s2 = s.clone();
    let r = crate::netns::within(ns.as_deref(), move || send_destroy(request(&s2)));
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(RemedyError::Unavailable(
            "the kernel cannot destroy sockets (no CONFIG_INET_DIAG_DESTROY)".into(),
        )),
        Err(e) => Err(RemedyError::io(format!("destroying {s}"), e)),
    }
}

/// [`Verify::SocketGone`]: no socket of the port carries the cookie any more.
pub async fn gone(k: &mut Kernel, s: &SocketRef) -> Result<bool, RemedyError> {
    let ns = k.netns_path(s.netns)?;
    let now = holders::tcp_sockets(ns.as_deref(), s.netns, s.sport)
        .map_err(|e| RemedyError::io(format!("listing the sockets of port {}", s.sport), e))?;
    Ok(!now.iter().any(|o| o.cookie == s.cookie))
}

fn request(s: &SocketRef) -> InetRequest {
    let family = if s.src.is_ipv4() { AF_INET } else { AF_INET6 };
    InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id: SocketId {
            source_port: s.sport,
            destination_port: s.dport,
            source_address: s.src,
            destination_address: s.dst,
            interface_id: s.ifindex,
            cookie: s.cookie.to_ne_bytes(),
        },
    }
}

/// Sends one SOCK_DESTROY in the calling thread's namespace and waits for the kernel's answer.
fn send_destroy(req: InetRequest) -> std::io::Result<()> {
    let socket = crate::netns::diag_socket()?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(SockDiagDestroy::new(SockDiagMessage::InetRequest(req))),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut rx = vec![0u8; 8192];
    let n = socket.recv(&mut &mut rx[..], 0)?;
    let msg = NetlinkMessage::<SockDiagDestroy>::deserialize(&rx[..n])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    match msg.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(c) => Err(std::io::Error::from_raw_os_error(-c.get())),
        },
        other => Err(std::io::Error::other(format!(
            "unexpected answer to SOCK_DESTROY: {other:?}"
        ))),
    }
}

/// Whether SOCK_DESTROY works here: destroying a socket that cannot exist (0.0.0.0:0) answers
/// ENOENT when the kernel supports it.
pub(in crate::remedy) fn supported() -> Result<(), String> {
    let none = SocketRef {
        netns: None,
        src: [0, 0, 0, 0].into(),
        sport: 0,
        dst: [0, 0, 0, 0].into(),
        dport: 0,
        ifindex: 0,
        cookie: u64::MAX,
        state: String::new(),
        uid: 0,
        inode: 0,
    };
    match send_destroy(request(&none)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            Err("the kernel cannot destroy sockets (built without CONFIG_INET_DIAG_DESTROY)".into())
        }
        Err(e) => Err(format!("SOCK_DESTROY is not usable: {e}")),
    }
}
