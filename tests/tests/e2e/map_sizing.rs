//! The kernel memory of features not asked for: their maps are created with one entry, and get
//! their full size when the feature is asked for. Read with bpftool from the maps the daemon's
//! own descriptors hold.
use std::collections::BTreeMap;

use guardian_tests::bpf_maps::bpftool;
use guardian_tests::links::{fdinfos, field};
use guardian_tests::*;

const SUBNET: u8 = 176;

/// The maps only `--http`, an `--xdp` interface or a DNS interface writes (the DNS interfaces
/// default to the XDP ones), as the kernel names them. Written out again rather than taken from
/// guardian/src/probes/sizing.rs: this is what must hold whatever that list says.
const HTTP: &[&str] = &[
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
const XDP_DNS: &[&str] = &[
    "XDP_IFACE",
    "XDP_SYN_PORT",
    "XDP_SYN_SRC",
    "DNS_PENDING",
    "DNS_RESOLVERS",
    "DNS_UNMATCHED",
];

/// The counters of events rare next to the packets around them (failed connects, completed
/// handshakes, resets, CLOSE_WAIT transitions, unmatched DNS answers, TLS handshakes and
/// alerts): one value per entry that the CPUs share, so that their memory does not grow with
/// the CPUs. (name, map type, value bytes.)
const SHARED: &[(&str, &str, u64)] = &[
    ("CONNECT_FAIL_DS", "lru_hash", 8),
    ("CONNECT_END", "lru_hash", 8),
    ("CONNECT_REFUSED", "lru_hash", 8),
    ("HS_PORT", "lru_hash", 8),
    ("HS_PEER", "lru_hash", 8),
    ("RST_PORT", "lru_hash", 8),
    ("CW_PORT", "lru_hash", 8),
    ("DNS_UNMATCHED", "lru_hash", 8),
    ("TLS_HANDSHAKES", "lru_hash", 24),
    ("TLS_ALERTS", "hash", 8),
];

/// name → (max_entries, bytes_memlock) of the maps process `pid` holds.
fn held_maps(pid: u32) -> BTreeMap<String, (u64, u64)> {
    held(pid)
        .into_iter()
        .filter_map(|(name, m)| {
            Some((
                name,
                (
                    m["max_entries"].as_u64()?,
                    m["bytes_memlock"].as_u64().unwrap_or(0),
                ),
            ))
        })
        .collect()
}

/// name → bpftool's description of the maps process `pid` holds.
fn held(pid: u32) -> BTreeMap<String, serde_json::Value> {
    let ids: Vec<u64> = fdinfos(pid)
        .unwrap()
        .iter()
        .filter(|info| field(info, "link_id").is_none() && field(info, "prog_id").is_none())
        .filter_map(|info| field(info, "map_id")?.parse().ok())
        .collect();
    bpftool(&["map", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|m| Some((m["name"].as_str()?.to_owned(), m.clone())))
        .collect()
}

fn mib(maps: &BTreeMap<String, (u64, u64)>) -> f64 {
    maps.values().map(|(_, b)| *b as f64).sum::<f64>() / (1u64 << 20) as f64
}

#[test]
fn maps_of_features_not_asked_for_hold_one_entry() {
    require_root();
    let a = Netns::new("msize-a");
    let b = Netns::new("msize-b");
    let v = pair(&a, &b, SUBNET);

    let mut d = Daemon::start(&a, &[]);
    d.wait_attached();
    let bare = held_maps(d.pid().expect("running"));
    d.finish();

    let mut d = Daemon::start(&a, &["--http", "--xdp", &v.a_if]);
    d.wait_attached();
    let full = held_maps(d.pid().expect("running"));
    d.finish();

    eprintln!(
        "maps: {:.1} MiB without --http and --xdp ({} maps), {:.1} MiB with both ({} maps)",
        mib(&bare),
        bare.len(),
        mib(&full),
        full.len()
    );
    for name in HTTP.iter().chain(XDP_DNS) {
        let (small, _) = bare
            .get(*name)
            .unwrap_or_else(|| panic!("no {name} among the daemon's maps: {bare:?}"));
        let (asked, _) = full
            .get(*name)
            .unwrap_or_else(|| panic!("no {name} among the daemon's maps: {full:?}"));
        eprintln!("{name}: {small} entries, {asked} when asked for");
        assert_eq!(*small, 1, "{name} without its feature");
        assert!(*asked > 1, "{name} with its feature: {asked} entries");
    }
    // The maps every daemon uses keep their size.
    for (name, (n, _)) in &bare {
        if !HTTP.contains(&name.as_str()) && !XDP_DNS.contains(&name.as_str()) {
            assert_eq!(
                Some(n),
                full.get(name).map(|(m, _)| m),
                "{name} changed size with --http --xdp"
            );
        }
    }
    assert!(mib(&bare) < mib(&full));
}

#[test]
fn counters_of_rare_events_are_shared_by_the_cpus() {
    require_root();
    let a = Netns::new("msize-c");
    let mut d = Daemon::start(&a, &[]);
    d.wait_attached();
    let maps = held(d.pid().expect("running"));
    d.finish();
    for (name, kind, value) in SHARED {
        let m = maps
            .get(*name)
            .unwrap_or_else(|| panic!("no {name} among the daemon's maps: {maps:?}"));
        eprintln!(
            "{name}: {} of {} bytes, {} entries",
            m["type"], m["bytes_value"], m["max_entries"]
        );
        assert_eq!(m["type"], *kind, "{name}: {m}");
        assert_eq!(m["bytes_value"], *value, "{name}: {m}");
    }
}
