//! The registry: ids, names and the `[detect]` tables agree.
use super::*;

#[test]
fn ids_serialize_as_their_names_and_parse_back() {
    for f in FaultId::ALL {
        let s = serde_json::to_string(f).unwrap();
        assert_eq!(s, format!("\"{}\"", f.as_str()));
        assert_eq!(f.as_str().parse::<FaultId>(), Ok(*f));
        assert_eq!(f.to_string(), f.as_str());
    }
    assert_eq!(FaultId::ALL.len(), 24);
    assert!("nope".parse::<FaultId>().is_err());
}

#[test]
fn every_fault_has_one_detector_in_catalogue_order() {
    let names: Vec<FaultId> = all(&DetectConfig::default(), &Baseline::default())
        .iter()
        .map(|d| d.name())
        .collect();
    assert_eq!(names, FaultId::ALL);
}

#[test]
fn detect_tables_are_the_faults_with_thresholds() {
    let v = serde_json::to_value(DetectConfig::default()).unwrap();
    let tables: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want: Vec<&str> = FaultId::ALL
        .iter()
        .map(|f| f.as_str())
        .filter(|f| !["link_down", "route_lost"].contains(f))
        .collect();
    want.sort_unstable();
    assert_eq!(tables, want);
    let e = toml::from_str::<DetectConfig>("[link_down]\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `link_down`"), "{e}");
}

#[test]
fn changed_names_only_the_tables_that_differ() {
    let a = DetectConfig::default();
    assert!(a.changed(&a).is_empty());
    let mut b = a.clone();
    b.syn_flood.syn_per_sec += 1.0;
    b.link_flapping.transitions += 1;
    assert_eq!(a.changed(&b), [FaultId::LinkFlapping, FaultId::SynFlood]);
}

/// The schema's `fault_name` enum lines, four names a line as written by hand before.
fn fault_name_lines() -> String {
    let names: Vec<String> = FaultId::ALL
        .iter()
        .map(|f| format!("\"{}\"", f.as_str()))
        .collect();
    names
        .chunks(4)
        .map(|c| format!("        {}", c.join(", ")))
        .collect::<Vec<_>>()
        .join(",\n")
}

#[test]
fn the_event_schema_lists_exactly_the_catalogue() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schema/events.schema.json");
    let text = std::fs::read_to_string(&path).expect("read docs/schema/events.schema.json");
    if std::env::var_os("GUARDIAN_BLESS").is_some() {
        // Rewrites the enum in place: from its `[` after `"fault_name"` to the matching `]`.
        let def = text.find("\"fault_name\": {").expect("$defs.fault_name");
        let open = def + text[def..].find("\"enum\": [").expect("fault_name.enum") + 9;
        let close = open + text[open..].find(']').expect("end of fault_name.enum");
        let blessed = format!(
            "{}\n{}\n      {}",
            &text[..open],
            fault_name_lines(),
            &text[close..]
        );
        std::fs::write(&path, blessed).expect("write docs/schema/events.schema.json");
        return;
    }
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed: Vec<&str> = schema["$defs"]["fault_name"]["enum"]
        .as_array()
        .expect("docs/schema/events.schema.json: $defs.fault_name.enum")
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    let ids: Vec<&str> = FaultId::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(
        listed, ids,
        "docs/schema/events.schema.json's fault_name must list FaultId::ALL, in its order; \
         regenerate it with `GUARDIAN_BLESS=1 cargo test -p guardian --lib faults::`"
    );
}

#[test]
fn hysteresis_keys_are_flat_keys_of_each_table_and_typos_are_refused() {
    let c: DetectConfig = toml::from_str("[syn_flood]\nhold_ms = 7\nsyn_per_sec = 9.0\n").unwrap();
    assert_eq!(c.syn_flood.hysteresis.hold_ms, 7);
    assert_eq!(c.syn_flood.syn_per_sec, 9.0);
    let d = DetectConfig::default();
    assert_eq!(
        c.syn_flood.hysteresis.clear_after_ms,
        d.syn_flood.hysteresis.clear_after_ms
    );
    let e = toml::from_str::<DetectConfig>("[syn_flood]\nhold_sm = 7\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `hold_sm`"), "{e}");
    // Written back as flat keys (the record header), and read back the same.
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["syn_flood"]["hold_ms"], 7);
    assert!(v["syn_flood"].get("hysteresis").is_none(), "{v}");
    let back: DetectConfig = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}
