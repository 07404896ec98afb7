//! Predicates and accessors for events (`serde_json::Value`s of the NDJSON stream).
use serde_json::Value;

/// `type == t`.
pub fn is_type(e: &Value, t: &str) -> bool {
    e.get("type").and_then(Value::as_str) == Some(t)
}

/// A `lifecycle` event of the given phase.
pub fn is_lifecycle(e: &Value, phase: &str) -> bool {
    is_type(e, "lifecycle") && str_field(e, "phase") == Some(phase)
}

/// A `counters` event for the namespace with inode `netns`.
pub fn is_counters(e: &Value, netns: u64) -> bool {
    is_type(e, "counters") && e.get("netns").and_then(Value::as_u64) == Some(netns)
}

/// The `final: true` counters event for `netns`, if any (the last one if several).
pub fn final_counters(events: &[Value], netns: u64) -> Option<&Value> {
    events
        .iter()
        .rev()
        .find(|e| is_counters(e, netns) && e.get("final").and_then(Value::as_bool) == Some(true))
}

/// A `fault` event of `fault` in `state`.
pub fn is_fault(e: &Value, fault: &str, state: &str) -> bool {
    is_type(e, "fault")
        && str_field(e, "fault") == Some(fault)
        && str_field(e, "state") == Some(state)
}

/// A `remedy` event of `remedy` with `result`.
pub fn is_remedy(e: &Value, remedy: &str, result: &str) -> bool {
    is_type(e, "remedy")
        && str_field(e, "remedy") == Some(remedy)
        && str_field(e, "result") == Some(result)
}

/// `subject.<key>` as a string.
pub fn subject_str<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get("subject")?.get(key)?.as_str()
}

pub fn str_field<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get(key)?.as_str()
}

/// An unsigned integer field; panics (showing the event) if it is missing or not one.
pub fn u64_field(e: &Value, key: &str) -> u64 {
    e.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("event has no unsigned integer `{key}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn predicates() {
        let c1 = json!({"type":"counters","netns":7,"final":false,"retrans_segs":1});
        let c2 = json!({"type":"counters","netns":7,"final":true,"retrans_segs":2});
        let c3 = json!({"type":"counters","netns":8,"final":true,"retrans_segs":3});
        let l = json!({"type":"lifecycle","phase":"attached"});
        let evs = vec![l.clone(), c1, c2, c3];
        assert!(is_lifecycle(&l, "attached") && !is_lifecycle(&l, "started"));
        assert_eq!(
            u64_field(final_counters(&evs, 7).unwrap(), "retrans_segs"),
            2
        );
        assert!(final_counters(&evs, 9).is_none());
        let r =
            json!({"type":"remedy","remedy":"link_up","result":"verified","subject":{"iface":"x"}});
        assert!(is_remedy(&r, "link_up", "verified") && !is_remedy(&r, "link_up", "applied"));
        assert_eq!(subject_str(&r, "iface"), Some("x"));
    }
}
