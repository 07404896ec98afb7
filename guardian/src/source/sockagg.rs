//! Aggregation of INET_DIAG socket-table dumps into a [`MibSample`]'s socket fields: the
//! TIME_WAIT gauge, TIME_WAIT and ephemeral ports per destination (top [`TOP_N`]), and the
//! listeners with their accept queues (fullest first, at most [`MAX_LISTENERS`]). The sampler
//! dumps only the states it needs on a tick (listeners alone, most ticks).
use std::collections::HashMap;
use std::net::IpAddr;

use netlink_packet_sock_diag::inet::InetResponseHeader;

use crate::model::sample::{DstSockets, Listener, MibSample, PortRange};

/// Destinations kept per list in a sample.
pub const TOP_N: usize = 20;
/// Listeners kept in a sample (fullest accept queue first).
pub const MAX_LISTENERS: usize = 256;

/// TCP states as the kernel numbers them (include/net/tcp_states.h).
const TCP_TIME_WAIT: u8 = 6;
const TCP_LISTEN: u8 = 10;

/// Aggregates one socket-table dump.
pub struct SocketAgg {
    range: Option<PortRange>,
    time_wait: u64,
    sockets: u64,
    tw_by_dst: HashMap<(IpAddr, u16), u64>,
    eph_by_dst: HashMap<(IpAddr, u16), u64>,
    listeners: Vec<Listener>,
}

impl SocketAgg {
    pub fn new(range: Option<PortRange>) -> Self {
        Self {
            range,
            time_wait: 0,
            sockets: 0,
            tw_by_dst: HashMap::new(),
            eph_by_dst: HashMap::new(),
            listeners: Vec::new(),
        }
    }

    pub fn add(&mut self, h: &InetResponseHeader) {
        let id = &h.socket_id;
        self.add_socket(
            h.state,
            id.source_address,
            id.source_port,
            id.destination_address,
            id.destination_port,
            (h.recv_queue, h.send_queue, h.uid, h.inode),
        );
    }

    /// `queues`: (rqueue, wqueue, uid, inode) as INET_DIAG reports them.
    pub fn add_socket(
        &mut self,
        state: u8,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        queues: (u32, u32, u32, u32),
    ) {
        self.sockets += 1;
        if state == TCP_LISTEN {
            let (queued, backlog, uid, inode) = queues;
            self.listeners.push(Listener {
                addr: src.to_string(),
                port: sport,
                queued,
                backlog,
                uid,
                inode,
            });
            return;
        }
        let in_range = self.range.is_none_or(|r| r.contains(sport));
        if state == TCP_TIME_WAIT {
            self.time_wait += 1;
            if in_range {
                *self.tw_by_dst.entry((dst, dport)).or_default() += 1;
            }
        }
        if in_range {
            *self.eph_by_dst.entry((dst, dport)).or_default() += 1;
        }
    }

    /// Sets the sample's TIME_WAIT gauge and per-destination TIME_WAIT from what was added
    /// (a dump that included TIME_WAIT), and the ephemeral use per destination when `ephemeral`
    /// (a dump of every state but LISTEN).
    pub fn breakdown(&mut self, s: &mut MibSample, ephemeral: bool) {
        s.time_wait = Some(self.time_wait);
        s.time_wait_by_dst = top(std::mem::take(&mut self.tw_by_dst));
        if ephemeral {
            s.ephemeral_by_dst = top(std::mem::take(&mut self.eph_by_dst));
        }
    }

    /// The listeners added, fullest accept queue first (compared without division), then by
    /// port; at most [`MAX_LISTENERS`].
    pub fn take_listeners(&mut self) -> Vec<Listener> {
        let mut l = std::mem::take(&mut self.listeners);
        l.sort_by(|a, b| {
            let fa = a.queued as u64 * (b.backlog.max(1) as u64);
            let fb = b.queued as u64 * (a.backlog.max(1) as u64);
            fb.cmp(&fa).then(a.port.cmp(&b.port))
        });
        l.truncate(MAX_LISTENERS);
        l
    }

    /// Sockets added (every state).
    pub fn sockets(&self) -> u64 {
        self.sockets
    }

    /// Everything at once, as one dump of every state gives it.
    pub fn finish(mut self, s: &mut MibSample) {
        self.breakdown(s, true);
        s.sockets = self.sockets;
        s.listeners = self.take_listeners();
    }
}

fn top(m: HashMap<(IpAddr, u16), u64>) -> Vec<DstSockets> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(TOP_N)
        .map(|((addr, port), count)| DstSockets {
            addr: addr.to_string(),
            port,
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_a_socket_table() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut a = SocketAgg::new(Some(PortRange {
            lo: 40000,
            hi: 40099,
        }));
        let (me, srv, other) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        for p in 0..30 {
            a.add_socket(TCP_TIME_WAIT, me, 40000 + p, srv, 80, (0, 0, 0, 0));
        }
        // Out of the range: not a port taken from it (a server's own TIME_WAIT, say).
        a.add_socket(TCP_TIME_WAIT, me, 80, other, 50000, (0, 0, 0, 0));
        for p in 0..5 {
            a.add_socket(1, me, 40050 + p, other, 443, (0, 0, 0, 0));
        }
        a.add_socket(
            TCP_LISTEN,
            ip("0.0.0.0"),
            80,
            ip("0.0.0.0"),
            0,
            (0, 128, 0, 11),
        );
        a.add_socket(TCP_LISTEN, me, 81, ip("0.0.0.0"), 0, (2, 1, 1000, 12));
        let mut s = MibSample::default();
        a.finish(&mut s);
        assert_eq!(s.time_wait, Some(31));
        assert_eq!(s.sockets, 38);
        assert_eq!(
            s.time_wait_by_dst,
            vec![DstSockets {
                addr: "10.0.0.2".into(),
                port: 80,
                count: 30
            }]
        );
        assert_eq!(s.ephemeral_by_dst.len(), 2);
        assert_eq!(s.ephemeral_by_dst[0].count, 30);
        assert_eq!(s.ephemeral_by_dst[1].port, 443);
        assert_eq!(s.listeners[0].port, 81, "the full one first");
        assert!(s.listeners[0].full());
        assert!(!s.listeners[1].full());
        assert_eq!(s.listeners[0].inode, 12);
    }
}
