//! Network namespaces: identify them by inode, find a path to enter them ([`Index`]), run code
//! inside one ([`within`] on a short-lived thread, [`Worker`] on a long-lived one), and walk a
//! namespace's TCP socket table with INET_DIAG ([`dump_tcp`]; [`dump_tcp_ext`] with
//! attributes such as `tcp_info`); [`count_time_wait`] is the exact TIME_WAIT count that
//! `ss -tan state time-wait` shows.
//!
//! `sock:inet_sock_set_state` never reports TIME_WAIT (the full socket goes to CLOSE and a
//! timewait socket takes its place), so the gauge is read from the kernel's socket tables.
mod index;
mod worker;

pub use index::Index;
pub use worker::{Entered, Worker};

use std::{fs::File, os::unix::fs::MetadataExt, path::Path};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, InetResponse, InetResponseHeader, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

/// Inode number of a namespace file (`/proc/self/ns/net`, `/run/netns/NAME`).
pub fn inode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.ino() as u32)
}

/// The daemon's own network namespace.
pub fn current() -> std::io::Result<u32> {
    inode(Path::new("/proc/self/ns/net"))
}

/// Runs `f` on a short-lived thread that has entered the namespace at `ns` (or stays in the
/// caller's namespace when `ns` is None), and returns its result. The daemon's own threads never
/// change namespace; everything namespace-scoped that `f` opens or reads (netlink sockets,
/// `/proc/thread-self/net/*`, `/proc/sys/net/*`) is the entered namespace's.
pub fn within<T, F>(ns: Option<&Path>, f: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let ns = ns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        if let Some(p) = ns {
            let f = File::open(&p)?;
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
        }
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// Counts TIME_WAIT TCP sockets (IPv4 and IPv6) in the namespace entered through `ns`, or in
/// the caller's namespace when `ns` is None. Entering happens on a short-lived thread so the
/// daemon's own threads never change namespace.
pub fn count_time_wait(ns: Option<&Path>) -> std::io::Result<u64> {
    within(ns, || {
        let socket = diag_socket()?;
        let mut count = 0;
        for family in [AF_INET, AF_INET6] {
            dump_tcp(&socket, family, StateFlags::TIME_WAIT, |_| count += 1)?;
        }
        Ok(count)
    })
}

/// Receive buffer of one INET_DIAG dump: the kernel fills up to about 32 KiB per message batch.
const RX_BUF: usize = 64 * 1024;

/// A NETLINK_SOCK_DIAG socket in the calling thread's namespace.
pub fn diag_socket() -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// One INET_DIAG dump of the TCP sockets of `family` in `states`: `each` is called with the
/// header of every socket (addresses, ports, state, queues, uid, inode).
pub fn dump_tcp(
    socket: &Socket,
    family: u8,
    states: StateFlags,
    each: impl FnMut(&InetResponseHeader),
) -> std::io::Result<()> {
    dump_tcp_with(socket, family, states, &mut Vec::new(), each)
}

/// [`dump_tcp`] with a receive buffer the caller keeps from one dump to the next (a sampler
/// that dumps every tick reuses it instead of allocating 256 KiB each time).
pub fn dump_tcp_with(
    socket: &Socket,
    family: u8,
    states: StateFlags,
    rx: &mut Vec<u8>,
    mut each: impl FnMut(&InetResponseHeader),
) -> std::io::Result<()> {
    dump_tcp_ext(socket, family, states, ExtensionFlags::empty(), rx, |r| {
        each(&r.header)
    })
}

/// [`dump_tcp_with`] asking for the attributes `extensions` (e.g. `INFO`, `struct tcp_info`):
/// `each` is called with every socket's whole answer, header and attributes.
pub fn dump_tcp_ext(
    socket: &Socket,
    family: u8,
    states: StateFlags,
    extensions: ExtensionFlags,
    rx: &mut Vec<u8>,
    mut each: impl FnMut(&InetResponse),
) -> std::io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions,
            states,
            socket_id,
        })
        .into(),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    if rx.len() < RX_BUF {
        rx.resize(RX_BUF, 0);
    }
    loop {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&rx[off..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => each(&r),
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(std::io::Error::other(format!("INET_DIAG: {e}")));
                }
                _ => {}
            }
            let len = msg.header.length as usize;
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}
