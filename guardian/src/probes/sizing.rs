//! The maps of features the daemon was not asked for are created with one entry.
//!
//! Every map of the object is created at load, attached or not, and hash and LRU maps are
//! preallocated: a per-CPU one costs `max_entries × value × CPUs`, one allocation per entry.
//! Without `--http`, `--xdp` or a DNS interface a daemon held 81.3 MiB of maps on this 2-CPU
//! host (`bytes_memlock`), 52 MiB of them for programs it never attached; now 29.2 MiB
//! (tests/tests/e2e/map_sizing.rs prints both). The per-CPU allocations were the largest
//! share of its start in `perf`. Only maps that nothing but the feature's own programs and
//! readers touch are listed: a map an always-attached program or a remedy writes keeps its
//! size.

/// Written by the HTTP and TLS programs (`--http`): syscall hooks, socket tracepoints,
/// packet programs and OpenSSL uprobes; read by source/http.rs and source/tls.rs.
pub const HTTP_MAPS: &[&str] = &[
    "H2_CALLS",
    "H2_CONNS",
    "HS_CALLS",
    "HS_ROLE",
    "HTTP_INFLIGHT",
    "HTTP_READS",
    "HTTP_SEEN",
    "HTTP_STATS",
    "TLS_ALERTS",
    "TLS_HANDSHAKES",
    "TLS_INFLIGHT",
    "TLS_PENDING",
    "TLS_TGIDS",
];

/// Written by the XDP program only (`--xdp`); read by source/counters_xdp.rs.
pub const XDP_MAPS: &[&str] = &["XDP_IFACE", "XDP_SYN_PORT", "XDP_SYN_SRC"];

/// Written by the DNS programs only (tcx, or at XDP on an interface that has both); read by
/// source/dns.rs and source/dns_spoof.rs.
pub const DNS_MAPS: &[&str] = &["DNS_PENDING", "DNS_RESOLVERS", "DNS_UNMATCHED"];

/// Which features the daemon was asked for (`--http`, an `--xdp` interface, a DNS interface).
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub http: bool,
    pub xdp: bool,
    pub dns: bool,
}

/// The maps to create with one entry (the fewest a map may have).
pub fn unused(asked: Asked) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !asked.http {
        out.extend_from_slice(HTTP_MAPS);
    }
    if !asked.xdp {
        out.extend_from_slice(XDP_MAPS);
    }
    if !asked.dns {
        out.extend_from_slice(DNS_MAPS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSection, ObjectSymbol};

    fn opts(http: bool, xdp: &[&str], dns: &[&str]) -> Asked {
        Asked {
            http,
            xdp: !xdp.is_empty(),
            dns: !dns.is_empty(),
        }
    }

    #[test]
    fn a_feature_asked_for_keeps_its_maps() {
        let none = unused(opts(false, &[], &[]));
        assert_eq!(
            none.len(),
            HTTP_MAPS.len() + XDP_MAPS.len() + DNS_MAPS.len()
        );
        let all = unused(opts(true, &["eth0"], &["eth0"]));
        assert!(all.is_empty(), "{all:?}");
        let xdp_only = unused(opts(false, &["eth0"], &[]));
        assert!(xdp_only.iter().all(|m| !XDP_MAPS.contains(m)));
        assert!(DNS_MAPS.iter().all(|m| xdp_only.contains(m)));
        assert!(HTTP_MAPS.iter().all(|m| xdp_only.contains(m)));
        let http_only = unused(opts(true, &[], &[]));
        assert!(http_only.iter().all(|m| !HTTP_MAPS.contains(m)));
    }

    /// aya ignores a `map_max_entries` for a name the object does not have: a renamed map
    /// would silently keep its full size. Each name must be a map of the embedded object.
    #[test]
    fn every_listed_map_is_a_map_of_the_object() {
        if super::super::EBPF_OBJECT.is_empty() {
            eprintln!("built with AYA_BUILD_SKIP: no object to check the names against");
            return;
        }
        let file = object::File::parse(super::super::EBPF_OBJECT).expect("the eBPF object");
        let maps: Vec<String> = file
            .symbols()
            .filter(|s| {
                s.section_index()
                    .and_then(|i| file.section_by_index(i).ok())
                    .and_then(|sec| sec.name().ok().map(|n| n == "maps" || n == ".maps"))
                    .unwrap_or(false)
            })
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .collect();
        for name in HTTP_MAPS.iter().chain(XDP_MAPS).chain(DNS_MAPS) {
            assert!(
                maps.iter().any(|m| m == name),
                "{name} is not a map of guardian-ebpf: {maps:?}"
            );
        }
    }
}
