//! Whether a nexthop object exists (`ip nexthop show id N`), asked before a route that uses
//! it is added back. Hand-written: netlink-packet-route 0.34 has no RTM_*NEXTHOP messages, and
//! one fixed-size request with a yes/no answer does not need them.
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const RTM_NEWNEXTHOP: u16 = 104;
const RTM_GETNEXTHOP: u16 = 106;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NHA_ID: u16 = 1;
const NLMSG_HDRLEN: usize = 16;

/// The RTM_GETNEXTHOP request for one id: nlmsghdr, struct nhmsg (8 bytes, unspec family),
/// NHA_ID.
pub fn request(id: u32) -> Vec<u8> {
    let len = NLMSG_HDRLEN + 8 + 8;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&RTM_GETNEXTHOP.to_ne_bytes());
    b.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    b.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel assigns
    b.extend_from_slice(&[0u8; 8]); // nhmsg
    b.extend_from_slice(&8u16.to_ne_bytes());
    b.extend_from_slice(&NHA_ID.to_ne_bytes());
    b.extend_from_slice(&id.to_ne_bytes());
    b
}

/// Reads the kernel's answer: the object (it exists), or an error (ENOENT: it does not).
pub fn answer(reply: &[u8]) -> Result<bool, String> {
    if reply.len() < NLMSG_HDRLEN {
        return Err("short netlink reply".into());
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    match kind {
        RTM_NEWNEXTHOP => Ok(true),
        NLMSG_ERROR if reply.len() >= NLMSG_HDRLEN + 4 => {
            let code = i32::from_ne_bytes(reply[16..20].try_into().expect("4 bytes"));
            match -code {
                0 => Ok(true),
                libc::ENOENT => Ok(false),
                e => Err(std::io::Error::from_raw_os_error(e).to_string()),
            }
        }
        other => Err(format!("unexpected netlink message type {other}")),
    }
}

/// Whether nexthop object `id` exists in the current network namespace.
pub fn exists(id: u32) -> Result<bool, String> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| e.to_string())?;
    socket.bind_auto().map_err(|e| e.to_string())?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| e.to_string())?;
    socket.send(&request(id), 0).map_err(|e| e.to_string())?;
    let mut rx = vec![0u8; 8192];
    let n = socket
        .recv(&mut &mut rx[..], 0)
        .map_err(|e| e.to_string())?;
    answer(&rx[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16, extra: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + extra.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&[0u8; 10]);
        b.extend_from_slice(extra);
        b
    }

    #[test]
    fn request_and_answers() {
        let r = request(10);
        assert_eq!(r.len(), 32);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), RTM_GETNEXTHOP);
        assert_eq!(u32::from_ne_bytes(r[28..32].try_into().unwrap()), 10);
        assert_eq!(answer(&header(RTM_NEWNEXTHOP, &[0; 8])), Ok(true));
        let enoent = (-libc::ENOENT).to_ne_bytes();
        assert_eq!(answer(&header(NLMSG_ERROR, &enoent)), Ok(false));
        let eperm = (-libc::EPERM).to_ne_bytes();
        assert!(answer(&header(NLMSG_ERROR, &eperm)).is_err());
        assert!(answer(&[0; 4]).is_err());
    }
}
