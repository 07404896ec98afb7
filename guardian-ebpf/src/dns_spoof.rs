//! `dns_spoofing_suspected`: DNS answers that match no outstanding query. Called by the DNS
//! programs (dns.rs: tcx, and XDP for answers) for every DNS packet they count: a query
//! (egress) is remembered by (interface, resolver, client port, transaction id); an answer
//! (ingress) consumes its query, or, matching none (a source that was not asked, or an id
//! nobody used), is counted per (interface, source) in `DNS_UNMATCHED`.
use aya_ebpf::{macros::map, maps::LruHashMap};
use guardian_common::{dns::DnsKey, shadows::DnsQueryKey};

use crate::maps::shared_inc;

/// Outstanding queries (value: unused). LRU: a query never answered ages out.
#[map]
pub static DNS_PENDING: LruHashMap<DnsQueryKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Answers that matched no outstanding query, per (interface, source).
#[map]
pub static DNS_UNMATCHED: LruHashMap<DnsKey, u64> = LruHashMap::with_max_entries(1024, 0);

/// `key`: the resolver (destination of a query, source of an answer); `id`: the DNS
/// transaction id; `port`: the client's port.
#[inline(always)]
pub fn track(key: &DnsKey, id: u16, port: u16, ingress: bool) {
    let q = DnsQueryKey {
        ifindex: key.ifindex,
        family: key.family,
        port,
        id,
        _pad: [0; 3],
        addr: key.addr,
    };
    if !ingress {
        let _ = DNS_PENDING.insert(&q, &1, 0);
    } else if unsafe { DNS_PENDING.get(&q) }.is_some() {
        let _ = DNS_PENDING.remove(&q);
    } else {
        shared_inc(&DNS_UNMATCHED, key);
    }
}
