//! The daemon's kernel maps as the kernel holds them, read (and edited) with bpftool: the
//! tests' view of the real programs' own state.
use std::process::Command;

use serde_json::Value;

/// `bpftool -j ARGS`, parsed.
pub fn bpftool(args: &[&str]) -> Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The id of the map `name` (as the kernel keeps it: at most 15 bytes) among the descriptors
/// of process `pid`.
pub fn daemon_map(pid: u32, name: &str) -> u32 {
    let ids: Vec<u64> = crate::links::fdinfos(pid)
        .unwrap()
        .iter()
        .filter_map(|info| crate::links::field(info, "map_id")?.parse().ok())
        .collect();
    let maps = bpftool(&["map", "show"]);
    maps.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name && m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .and_then(|m| m["id"].as_u64())
        .unwrap_or_else(|| panic!("no {name} map among process {pid}'s descriptors")) as u32
}

/// (key bytes, value bytes) of every entry of a map that is not per-CPU.
pub fn entries(map: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    bpftool(&["map", "dump", "id", &map.to_string()])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
        .collect()
}

/// The key bytes of every entry (any map type).
pub fn keys(map: u32) -> Vec<Vec<u8>> {
    bpftool(&["map", "dump", "id", &map.to_string()])
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| bytes(&e["key"]))
        .collect()
}

/// Deletes the entry `key` (its bytes) from `map`.
pub fn delete_entry(map: u32, key: &[u8]) {
    let id = map.to_string();
    let hex: Vec<String> = key.iter().map(|b| format!("0x{b:02x}")).collect();
    let mut args = vec!["map", "delete", "id", &id, "key"];
    args.extend(hex.iter().map(String::as_str));
    bpftool(&args); // no output to parse: `Null`
}

/// Every CPU's value bytes of the entry `key` of a per-CPU map, in CPU order.
pub fn per_cpu(map: u32, key: &[u8]) -> Vec<Vec<u8>> {
    let id = map.to_string();
    let hex: Vec<String> = key.iter().map(|b| format!("0x{b:02x}")).collect();
    let mut args = vec!["map", "lookup", "id", &id, "key"];
    args.extend(hex.iter().map(String::as_str));
    let v = bpftool(&args);
    v["values"]
        .as_array()
        .unwrap_or_else(|| panic!("not a per-CPU entry: {v}"))
        .iter()
        .map(|c| bytes(&c["value"]))
        .collect()
}

/// bpftool's `["0x0a", ...]` as bytes.
fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}
