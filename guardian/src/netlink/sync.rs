//! Synchronous rtnetlink requests, for the few places that need one answer outside the async
//! runtime's netlink tasks (program loading, a sampler on a tick). Written by hand (not with
//! `rtnetlink`): one request, its replies, done.
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Sends one request and collects its replies: a single message for a plain request, every
/// message up to `NLMSG_DONE` for a dump (`NLM_F_DUMP`), or up to the ack (`NLM_F_ACK`).
/// Errors are the kernel's errno as text.
pub fn request(
    payload: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, String> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| e.to_string())?;
    socket.bind_auto().map_err(|e| e.to_string())?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| e.to_string())?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, payload.into());
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| e.to_string())?;
    let multi = flags & (NLM_F_ACK | NLM_F_DUMP) != 0;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 64 * 1024];
    loop {
        let n = socket
            .recv(&mut &mut rx[..], 0)
            .map_err(|e| e.to_string())?;
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..n])
                .map_err(|e| e.to_string())?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => {
                    out.push(m);
                    if !multi {
                        return Ok(out);
                    }
                }
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(code) => {
                            Err(std::io::Error::from_raw_os_error(-code.get()).to_string())
                        }
                    };
                }
                NetlinkPayload::Done(_) => return Ok(out),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}
