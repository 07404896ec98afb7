//! The XDP half of the counters tick: per-interface totals and the SYN counts per source and
//! per port, top [`TOP_N`] each, for the daemon's own namespace.
use std::collections::HashMap;

use guardian_common::{
    limits::{INS_GOOD_SRC, INS_SYN_PORT, INS_SYN_SRC},
    XdpIfaceStats, XdpPortKey, XdpPortSlot, XdpSrcKey, XDP_IFACE_SLOTS,
};

use super::{read_all, sum, top, Collector};
use crate::model::{AddrCount, DstCount, PortCount, XdpIface};
use crate::output::Body;
use crate::source::decode;

/// SYNs per (interface, port): the slots' counts on every CPU plus the hash's (a key can be
/// in its slot on one CPU and in the hash on another).
fn merge_ports(
    slots: impl IntoIterator<Item = XdpPortSlot>,
    hashed: Vec<(XdpPortKey, u64)>,
) -> Vec<(XdpPortKey, u64)> {
    let mut m: HashMap<XdpPortKey, u64> = HashMap::new();
    let taken = slots.into_iter().filter(|s| s.count > 0);
    for (k, c) in taken.map(|s| (s.key, s.count)).chain(hashed) {
        *m.entry(k).or_default() += c;
    }
    m.into_iter().collect()
}

fn add_xdp(a: &mut XdpIfaceStats, b: &XdpIfaceStats) {
    a.packets += b.packets;
    a.bytes += b.bytes;
    a.syn += b.syn;
}

impl Collector {
    fn port_counts(&self, hashed: Vec<(XdpPortKey, u64)>) -> Vec<(XdpPortKey, u64)> {
        let mut slots = Vec::new();
        if let Err(e) = self.syn_port_lo.read(|s| slots.push(s)) {
            tracing::warn!(map = self.syn_port_lo.name(), error = %e, "reading a counter map failed");
        }
        merge_ports(slots, hashed)
    }

    pub(super) fn xdp(&mut self, out: &mut Vec<Body>, heartbeat: bool) -> Vec<XdpIface> {
        if self.xdp_ifaces.is_empty() {
            return Vec::new();
        }
        let srcs = read_all(&self.syn_src);
        let hashed = read_all(&self.syn_port);
        // The entries are read before the inserts: an insert in between counts as an entry,
        // never as an eviction. Only the hash inserts are counted (a slot is never evicted).
        self.evictions(INS_SYN_SRC, "XDP_SYN_SRC", srcs.len(), out);
        self.evictions(INS_SYN_PORT, "XDP_SYN_PORT", hashed.len(), out);
        // The hash before the slots: a count the XDP program moves from a slot to the hash in
        // between is then missed by this read, never read twice (see `count_port` there).
        let ports = self.port_counts(hashed);
        if heartbeat {
            // A plain hash walk (no batch read for it): once per heartbeat.
            let good = self.good_src.keys().filter(Result::is_ok).count();
            self.evictions(INS_GOOD_SRC, "GOOD_SRC", good, out);
        }
        self.xdp_ifaces
            .iter()
            .map(|(name, ifindex)| {
                let s = match *ifindex < XDP_IFACE_SLOTS {
                    true => self.xdp_iface_lo.get(ifindex, 0),
                    false => self.xdp_iface.get(ifindex, 0),
                }
                .map(|v| sum(&v, add_xdp))
                .unwrap_or_default();
                let mut per_addr: HashMap<XdpSrcKey, u64> = HashMap::new();
                let mut by_src_port = Vec::new();
                for (k, c) in srcs.iter().filter(|(k, _)| k.ifindex == *ifindex) {
                    *per_addr.entry(XdpSrcKey { port: 0, ..*k }).or_default() += c;
                    by_src_port.push((*k, *c));
                }
                let by_src = per_addr.into_iter().collect();
                let by_port = ports
                    .iter()
                    .filter(|(k, _)| k.ifindex == *ifindex)
                    .map(|(k, c)| (*k, *c))
                    .collect();
                XdpIface {
                    iface: name.clone(),
                    ifindex: *ifindex,
                    packets: s.packets,
                    bytes: s.bytes,
                    syn_rx: s.syn,
                    syn_by_source: top(by_src, |k: XdpSrcKey, count| AddrCount {
                        addr: decode::addr(k.family, &k.addr)
                            .map_or_else(String::new, |a| a.to_string()),
                        count,
                    }),
                    syn_by_port: top(by_port, |k: XdpPortKey, count| PortCount {
                        port: k.port,
                        count,
                    }),
                    syn_by_source_port: top(by_src_port, |k: XdpSrcKey, count| DstCount {
                        addr: decode::addr(k.family, &k.addr)
                            .map_or_else(String::new, |a| a.to_string()),
                        port: k.port,
                        count,
                    }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use guardian_common::{xdp_port_slot, XDP_PORT_SLOTS};

    use super::*;

    fn key(ifindex: u32, port: u16) -> XdpPortKey {
        XdpPortKey {
            ifindex,
            port,
            _pad: 0,
        }
    }

    fn slot(ifindex: u32, port: u16, count: u64) -> XdpPortSlot {
        XdpPortSlot {
            key: key(ifindex, port),
            count,
        }
    }

    #[test]
    fn a_port_counted_in_slots_on_some_cpus_and_in_the_hash_on_others_adds_up() {
        // CPU 0 holds 443's slot, CPU 1 gave it to 80 first: 443 went to the hash there.
        let slots = [slot(3, 443, 7), slot(3, 80, 2), XdpPortSlot::default()];
        let hashed = vec![(key(3, 443), 5), (key(4, 443), 1)];
        let mut got = merge_ports(slots, hashed);
        got.sort_by_key(|(k, _)| (k.ifindex, k.port));
        assert_eq!(
            got,
            vec![(key(3, 80), 2), (key(3, 443), 12), (key(4, 443), 1)]
        );
    }

    #[test]
    fn free_slots_count_nothing() {
        assert!(merge_ports([XdpPortSlot::default(); 4], Vec::new()).is_empty());
    }

    #[test]
    fn the_slot_is_in_range_and_spreads_a_ports_neighbours() {
        let mut per = vec![0u32; XDP_PORT_SLOTS as usize];
        for port in 0..=u16::MAX {
            let s = xdp_port_slot(7, port);
            assert!(s < XDP_PORT_SLOTS);
            per[s as usize] += 1;
        }
        let mean = 65_536 / XDP_PORT_SLOTS;
        assert!(per.iter().all(|&n| n > mean / 2 && n < mean * 2), "{per:?}");
        // The usual services of one host land in slots of their own.
        let common = [
            22, 25, 53, 80, 443, 3306, 5432, 6379, 6443, 8080, 8443, 9090,
        ];
        let mut seen: Vec<u32> = common.iter().map(|&p| xdp_port_slot(2, p)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), common.len());
        // Ports in a row too.
        let row: std::collections::HashSet<u32> =
            (8000..8016).map(|p| xdp_port_slot(2, p)).collect();
        assert_eq!(row.len(), 16);
    }
}
