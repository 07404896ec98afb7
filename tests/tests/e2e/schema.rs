//! The event schema itself: it compiles, accepts the documented examples and the shapes the
//! daemon's serializer produces, and rejects what the contract forbids. Needs no root.
use guardian_tests::{validate_event, validate_lines, workspace_root};
use serde_json::{json, Value};

/// Every one-line event in docs/events.md's ```json blocks.
fn doc_examples() -> Vec<String> {
    let path = workspace_root().join("docs/events.md");
    let text = std::fs::read_to_string(&path).expect("read docs/events.md");
    let mut in_json = false;
    let mut out = Vec::new();
    for line in text.lines() {
        match line.trim() {
            "```json" => in_json = true,
            "```" => in_json = false,
            l if in_json && l.starts_with("{\"schema\"") => out.push(l.to_owned()),
            _ => {}
        }
    }
    out
}

#[test]
fn docs_have_a_valid_example_for_every_type() {
    let lines = doc_examples();
    validate_lines(&lines).unwrap();
    let types: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for t in [
        "lifecycle",
        "counters",
        "observation",
        "fault",
        "remedy",
        "loss",
    ] {
        assert!(
            types.iter().any(|x| x == t),
            "docs/events.md has no example of {t}"
        );
    }
}

fn base(t: &str) -> Value {
    json!({"schema":1,"ts":"2026-11-22T08:20:07.123456789Z","host":"h","type":t})
}

fn with(mut v: Value, fields: Value) -> Value {
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn counters() -> Value {
    with(
        base("counters"),
        json!({"netns":5,"interval_ms":1000,"final":false,"retrans_segs":0,"syn_retrans":0,
               "synack_retrans":0,"time_wait":null,"tw_entries":0,"connect_failures":0,
               "connect_eaddrnotavail":0,"bind_eaddrinuse":0,"retrans_failed":0}),
    )
}

fn remedy() -> Value {
    with(
        base("remedy"),
        json!({"netns":1,"remedy":"route_restore","fault":"route_lost","result":"planned",
               "mode":"observe","incident":"01J","subject":{"route":"10.250.5.0/24"},
               "change":{"before":null,"after":{"via":"10.77.5.2"}},"rollback_id":null,
               "elapsed_ms":0.25,
               "message":"route_restore planned for route lost on 10.250.5.0/24"}),
    )
}

fn lifecycle() -> Value {
    with(
        base("lifecycle"),
        json!({"phase":"started","netns":4026531840u64,"version":"0.1.0","mode":"observe"}),
    )
}

#[test]
fn accepts_minimal_and_optional_shapes() {
    for ok in [
        counters(),
        with(counters(), json!({"time_wait": 3, "final": true})),
        remedy(),
        with(
            remedy(),
            json!({"rollback_id":"01K","result":"rolled_back","reason":"verify timed out"}),
        ),
        lifecycle(),
        with(lifecycle(), json!({"detail": [1, "x"]})),
        with(base("loss"), json!({"source":"ringbuf","lost":0,"total":0})),
        with(
            base("observation"),
            json!({"netns":1,"kind":"connect_addrnotavail","error":"EADDRNOTAVAIL","pid":1,"tid":1,"comm":""}),
        ),
        with(
            base("observation"),
            json!({"netns":1,"kind":"bind_conflict","error":"EADDRINUSE","pid":1,"tid":1,
                   "comm":"gt-binder","family":"ipv6","addr":"fd00::1","port":0}),
        ),
        with(
            base("fault"),
            json!({"netns":1,"fault":"syn_flood","layer":4,"severity":"critical","state":"opened",
                   "incident":"01J","subject":{"port":443},"evidence":null,
                   "message":"syn flood on port 443: 9000 SYNs in 1000 ms"}),
        ),
        with(
            base("fault"),
            json!({"netns":1,"fault":"route_lost","layer":3,"severity":"info","state":"opened",
                   "incident":"01J","subject":{"route":"10.9.0.0/24"},
                   "evidence":{"by":{"portid":812,"pid":812,"comm":"bird"},
                               "by_text":"pid 812 (bird)","protocol":"bird",
                               "owner":"control_plane"},
                   "message":"route lost on 10.9.0.0/24: 10.9.0.0/24 (bird) is missing"}),
        ),
    ] {
        validate_event(&ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn rejects_contract_violations() {
    let cases: Vec<(&str, Value)> = vec![
        ("schema 2", with(counters(), json!({"schema": 2}))),
        ("unknown type", base("heartbeat")),
        (
            "µs timestamp",
            with(counters(), json!({"ts":"2026-11-22T08:20:07.123456Z"})),
        ),
        (
            "offset timestamp",
            with(
                counters(),
                json!({"ts":"2026-11-22T08:20:07.123456789+00:00"}),
            ),
        ),
        ("empty host", with(counters(), json!({"host": ""}))),
        ("extra field", with(counters(), json!({"extra": 1}))),
        ("missing time_wait", {
            let mut c = counters();
            c.as_object_mut().unwrap().remove("time_wait");
            c
        }),
        (
            "negative counter",
            with(counters(), json!({"retrans_segs": -1})),
        ),
        (
            "float counter",
            with(counters(), json!({"retrans_segs": 1.5})),
        ),
        ("empty xdp array", with(counters(), json!({"xdp": []}))),
        (
            "bad address",
            with(
                counters(),
                json!({"connect_failures_by_dst":[{"addr":"host","port":1,"count":1}]}),
            ),
        ),
        (
            "port > 65535",
            with(
                counters(),
                json!({"connect_failures_by_dst":[{"addr":"10.0.0.1","port":70000,"count":1}]}),
            ),
        ),
        (
            "unknown phase",
            with(lifecycle(), json!({"phase":"reloading"})),
        ),
        ("unknown mode", with(lifecycle(), json!({"mode":"auto"}))),
        (
            "who without its port id",
            with(
                base("fault"),
                json!({"netns":1,"fault":"route_lost","layer":3,"severity":"info",
                       "state":"opened","incident":"01J","subject":{},"message":"route lost",
                       "evidence":{"by":{"pid":812}}}),
            ),
        ),
        ("netns as a string", with(lifecycle(), json!({"netns":"1"}))),
        (
            "unknown result",
            with(remedy(), json!({"result":"exploded"})),
        ),
        ("remedy without its message", {
            let mut r = remedy();
            r.as_object_mut().unwrap().remove("message");
            r
        }),
        (
            "a message of two lines",
            with(remedy(), json!({"message":"planned\nsecond line"})),
        ),
        ("empty message", with(remedy(), json!({"message":""}))),
        ("missing rollback_id", {
            let mut r = remedy();
            r.as_object_mut().unwrap().remove("rollback_id");
            r
        }),
        (
            "change without after",
            with(remedy(), json!({"change":{"before":1}})),
        ),
        (
            "subject extra key",
            with(remedy(), json!({"subject":{"host":"x"}})),
        ),
        (
            "remedy name not snake_case",
            with(remedy(), json!({"remedy":"Route-Restore"})),
        ),
        (
            "unknown kind",
            with(
                base("observation"),
                json!({"netns":1,"kind":"bind_fail","error":"EADDRINUSE","pid":1,"tid":1,"comm":"x"}),
            ),
        ),
        (
            "comm too long",
            with(
                base("observation"),
                json!({"netns":1,"kind":"bind_conflict","error":"EADDRINUSE","pid":1,"tid":1,"comm":"0123456789abcdef"}),
            ),
        ),
        (
            "unknown severity",
            with(
                base("fault"),
                json!({"netns":1,"fault":"link_down","layer":2,"severity":"fatal","state":"opened","incident":"i","subject":{},"evidence":{}}),
            ),
        ),
        (
            "unknown state",
            with(
                base("fault"),
                json!({"netns":1,"fault":"link_down","layer":2,"severity":"info","state":"closed","incident":"i","subject":{},"evidence":{}}),
            ),
        ),
        (
            "fault not in the catalogue",
            with(
                base("fault"),
                json!({"netns":1,"fault":"link_dwon","layer":2,"severity":"info","state":"opened","incident":"i","subject":{},"evidence":{}}),
            ),
        ),
        (
            "missing evidence",
            with(
                base("fault"),
                json!({"netns":1,"fault":"link_down","layer":2,"severity":"info","state":"opened","incident":"i","subject":{}}),
            ),
        ),
        (
            "loss without total",
            with(base("loss"), json!({"source":"ringbuf","lost":1})),
        ),
    ];
    for (what, v) in cases {
        assert!(validate_event(&v).is_err(), "accepted ({what}): {v}");
    }
    let err = validate_lines(&["{not json"]).unwrap_err();
    assert!(err.contains("not JSON"), "{err}");
}
