//! Helpers for the XDP limit remedies' end-to-end tests: reading guardian's BPF maps through
//! the XDP program attached to an interface (bpftool), concurrent connects, heal-time stats.
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::flows::runs;
use crate::netns::Netns;

/// `GT_RUNS` runs of `scenario` (it returns the ms from `opened` to `verified`); prints
/// `heal <remedy>: median X ms, worst Y ms over N runs`.
pub fn heal_times(remedy: &str, mut scenario: impl FnMut(usize) -> f64) {
    let n = runs();
    let mut v: Vec<f64> = (1..=n)
        .map(|i| {
            let ms = scenario(i);
            eprintln!("heal {remedy}: run {i} = {ms:.1} ms");
            ms
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "heal {remedy}: median {:.1} ms, worst {:.1} ms over {n} runs",
        v[v.len() / 2],
        v[v.len() - 1]
    );
}

/// The entries of guardian's map `name` (bpftool JSON), found through the XDP program on
/// `iface` in `ns`.
pub fn map_entries(ns: &Netns, iface: &str, name: &str) -> Vec<Value> {
    map_with(ns, iface, name).1
}

/// `bpftool map show` of guardian's map `name` and its entries, found through the XDP program
/// on `iface` in `ns`.
pub fn map_with(ns: &Netns, iface: &str, name: &str) -> (Value, Vec<Value>) {
    let link: Value = serde_json::from_str(&ns.run(&["ip", "-j", "-d", "link", "show", iface]))
        .expect("ip -j link");
    let prog = link[0]["xdp"]["prog"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no XDP program on {iface}: {link}"));
    let bpftool = |args: &[&str]| -> Value {
        let out = std::process::Command::new("bpftool")
            .arg("-j")
            .args(args)
            .output()
            .expect("bpftool");
        assert!(out.status.success(), "bpftool {args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("bpftool JSON")
    };
    let info = bpftool(&["prog", "show", "id", &prog.to_string()]);
    for id in info["map_ids"].as_array().expect("map_ids") {
        let id = id.to_string();
        let show = bpftool(&["map", "show", "id", &id]);
        if show["name"] == name {
            let entries = bpftool(&["map", "dump", "id", &id])
                .as_array()
                .cloned()
                .unwrap_or_default();
            return (show, entries);
        }
    }
    panic!("program {prog} on {iface} has no map {name}: {info}");
}

/// A little-endian u64 at byte `off` of a bpftool entry's value (raw hex bytes or BTF-formatted).
pub fn value_u64(entry: &Value, field: &str, off: usize) -> u64 {
    if let Some(v) = entry["formatted"]["value"][field].as_u64() {
        return v;
    }
    let bytes: Vec<u8> = entry["value"]
        .as_array()
        .unwrap_or_else(|| panic!("entry without value: {entry}"))
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
}

/// `n` connects at once from the calling namespace thread; returns how many connected.
pub fn concurrent_connects(dst: SocketAddr, n: usize, timeout: Duration) -> usize {
    let hs: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(move || TcpStream::connect_timeout(&dst, timeout).is_ok()))
        .collect();
    hs.into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&ok| ok)
        .count()
}
