//! The XDP half of the counters tick: per-interface totals and the SYN counts per source and
//! per port, top [`TOP_N`] each, for the daemon's own namespace.
use std::collections::HashMap;

use guardian_common::{
    limits::{INS_GOOD_SRC, INS_SYN_PORT, INS_SYN_SRC},
    XdpIfaceStats, XdpPortKey, XdpSrcKey, XDP_IFACE_SLOTS,
};

use super::{read_all, sum, top, Collector};
use crate::model::{AddrCount, DstCount, PortCount, XdpIface};
use crate::output::Body;
use crate::source::decode;

fn add_xdp(a: &mut XdpIfaceStats, b: &XdpIfaceStats) {
    a.packets += b.packets;
    a.bytes += b.bytes;
    a.syn += b.syn;
}

impl Collector {
    pub(super) fn xdp(&mut self, out: &mut Vec<Body>, heartbeat: bool) -> Vec<XdpIface> {
        if self.xdp_ifaces.is_empty() {
            return Vec::new();
        }
        let srcs = read_all(&self.syn_src);
        let ports = read_all(&self.syn_port);
        // The entries are read before the inserts: an insert in between counts as an entry,
        // never as an eviction.
        self.evictions(INS_SYN_SRC, "XDP_SYN_SRC", srcs.len(), out);
        self.evictions(INS_SYN_PORT, "XDP_SYN_PORT", ports.len(), out);
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
