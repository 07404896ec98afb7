//! The Prometheus endpoint: scraped from inside the daemon's namespace on 127.0.0.1:9464 (the
//! default), parsed strictly, and a fault injected on a veth shows up in
//! `guardian_events_total`.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use guardian_tests::*;
use serde_json::Value;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the Prometheus text format (0.0.4) strictly: every line is a comment, a `# HELP`,
/// a `# TYPE` before the family's samples, or `name{k="v",...} value`; every sample's family
/// has a TYPE. Panics with the offending line.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.splitn(3, ' ');
            let (kw, name) = (w.next().unwrap(), w.next().unwrap_or(""));
            assert!(valid_name(name), "bad metric name in {line:?}");
            if kw == "TYPE" {
                let t = w.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line:?}"
                );
                types.insert(name.to_owned(), t.to_owned());
            } else {
                assert_eq!(kw, "HELP", "{line:?}");
            }
            continue;
        }
        let (name, labels, value) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("unclosed {{ in {line:?}"));
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close], line),
                    line[close + 1..].trim(),
                )
            }
            None => {
                let (n, v) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("no value in {line:?}"));
                (n, BTreeMap::new(), v.trim())
            }
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        assert!(
            types.contains_key(name),
            "sample before its # TYPE: {line:?}"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.push((name.to_owned(), labels, value));
    }
    out
}

fn parse_labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(valid_name(&key), "bad label name {key:?} in {line:?}");
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value not quoted in {line:?}"
        );
        let mut val = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(c @ ('\\' | '"')) => val.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some('"') => break,
                Some(c) => val.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        }
        out.insert(key, val);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected {c:?} after a label in {line:?}"),
        }
    }
    out
}

/// `GET /metrics` on 127.0.0.1:9464 from a thread inside `ns`; (status line, body).
fn scrape(ns: &Netns, path: &'static str) -> (String, String) {
    run_in_netns(ns, move || {
        let mut s = TcpStream::connect("127.0.0.1:9464").expect("connect to the metrics port");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").expect("a header block");
        (
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        )
    })
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

#[test]
fn a_link_down_shows_up_in_a_strictly_parsed_scrape() {
    require_root();
    let a = Netns::new("met-a");
    let b = Netns::new("met-b");
    let v = pair(&a, &b, 160);
    let mut d = Daemon::start(&a, &["--keep-up", &v.a_if, "--interval-ms", "200"]);
    d.wait_attached();

    let (status, body) = scrape(&a, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let before = parse(&body);
    assert_eq!(
        value(
            &before,
            "guardian_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{body}"
    );
    let lifecycle = value(&before, "guardian_events_total", &[("type", "lifecycle")]);
    assert_eq!(lifecycle, Some(2.0), "started + attached counted: {body}");
    assert_eq!(
        value(
            &before,
            "guardian_events_total",
            &[("type", "fault"), ("fault", "link_down")]
        ),
        Some(0.0),
        "no link_down yet, but the series exists at 0 from the start: {body}"
    );
    assert_eq!(scrape(&a, "/nope").0, "HTTP/1.1 404 Not Found");

    let n = d.count();
    a.link_set(&v.a_if, false);
    let fault = d
        .wait_for_after(
            n,
            |e: &Value| is_fault(e, "link_down", "opened"),
            Duration::from_secs(10),
        )
        .1;
    let severity = str_field(&fault, "severity").unwrap().to_owned();
    d.wait_for_after(
        n,
        |e: &Value| is_remedy(e, "link_up", "planned"),
        Duration::from_secs(10),
    );
    // The counter is incremented when the event is emitted, before it reaches the file.
    let (_, body) = scrape(&a, "/metrics");
    let after = parse(&body);
    let faults = value(
        &after,
        "guardian_events_total",
        &[
            ("type", "fault"),
            ("fault", "link_down"),
            ("severity", &severity),
        ],
    );
    assert_eq!(faults, Some(1.0), "{body}");
    // Exactly what was emitted: started and attached, one planned link_up.
    assert_eq!(
        value(&after, "guardian_events_total", &[("type", "lifecycle")]),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        value(
            &after,
            "guardian_remedies_total",
            &[
                ("remedy", "link_up"),
                ("mode", "observe"),
                ("result", "planned")
            ]
        ),
        Some(1.0),
        "{body}"
    );
    let events = d.finish();
    let emitted_faults = events
        .iter()
        .filter(|e| is_fault(e, "link_down", "opened"))
        .count();
    assert_eq!(emitted_faults, 1);
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    for bad in [
        "x 1",                          // no TYPE
        "# TYPE x counter\nx{a=\"1} 1", // unterminated label
        "# TYPE x counter\nx{a=1} 1",   // unquoted
        "# TYPE x counter\nx one",      // not a number
        "# TYPE 1x counter\n",          // bad name
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
    let ok = parse("# HELP x h\n# TYPE x counter\nx{a=\"q\\\"\",b=\"\"} 2\n");
    assert_eq!(ok[0].1["a"], "q\"");
}
