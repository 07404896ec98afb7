//! The control protocol, version 1 (docs/control.md): one JSON request per line, one JSON
//! response per line (`events`: an ok line, then event lines until the client hangs up).
//!
//! Requests are decoded from bytes here, so every malformed request becomes one error
//! sentence for the client, never a panic in the daemon.
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The protocol version this guardian speaks.
pub const VERSION: u64 = 1;
/// The longest request line accepted, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

pub use crate::engine::api::ModeChange;

/// Server-side filters of the `events` stream; empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventFilter {
    /// Event types (`fault`, `remedy`, `counters`, ...).
    pub types: Vec<String>,
    /// Fault names (matches fault and remedy events).
    pub faults: Vec<String>,
    /// Only fault events of this severity or worse.
    pub min_severity: Option<String>,
}

/// Severities, worst first (the order of docs/events.md).
pub const SEVERITIES: [&str; 5] = ["critical", "error", "warning", "notice", "info"];

impl EventFilter {
    /// Whether an event line passes the filter.
    pub fn matches(&self, ev: &Value) -> bool {
        let field = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
        if !self.types.is_empty() && !self.types.iter().any(|t| t == field("type")) {
            return false;
        }
        if !self.faults.is_empty() && !self.faults.iter().any(|f| f == field("fault")) {
            return false;
        }
        if let Some(min) = &self.min_severity {
            let rank = |s: &str| SEVERITIES.iter().position(|x| *x == s);
            match (rank(field("severity")), rank(min)) {
                (Some(have), Some(want)) if have <= want => {}
                _ => return false,
            }
        }
        true
    }
}

/// One request (the `cmd` field picks the variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    // Empty struct variants (not unit variants): serde refuses unknown fields only there.
    Status {},
    History {
        #[serde(default)]
        limit: Option<usize>,
        /// Only entries newer than this many seconds.
        #[serde(default)]
        since_s: Option<u64>,
    },
    Stats {},
    Mode {
        mode: ModeChange,
    },
    Heal {
        fault: String,
        subject: String,
    },
    Rollback {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        all: bool,
    },
    Events(EventFilter),
    /// `guardian baseline show|accept [PREFIX]`: the protected routes; `accept` adopts the
    /// kernel's table (for one prefix, or all) as the routes to protect.
    Baseline {
        #[serde(default)]
        accept: bool,
        #[serde(default)]
        prefix: Option<String>,
    },
}

const COMMANDS: &str = "status, history, stats, mode, heal, rollback, events, baseline";

/// Decodes one request line (without or with its newline). The error is one line: parts of
/// the request it quotes (an unknown field's name, say) have their control characters escaped,
/// so a client cannot put line breaks into the daemon's log or answer (found by the
/// `control_request` fuzz target), and it is cut at `MAX_ERROR` characters.
pub fn decode(line: &[u8]) -> Result<Request, String> {
    decode_inner(line).map_err(|e| one_line(&e))
}

const MAX_ERROR: usize = 300;

fn one_line(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() >= MAX_ERROR {
            out.push('…');
            break;
        }
    }
    out
}

fn decode_inner(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request larger than {MAX_REQUEST} bytes"));
    }
    let v: Value =
        serde_json::from_slice(line).map_err(|e| format!("the request is not valid JSON ({e})"))?;
    let Value::Object(mut obj) = v else {
        return Err("the request must be a JSON object".into());
    };
    match obj.remove("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(other) => {
            return Err(format!(
                "unsupported protocol version {other} (this guardian speaks {VERSION})"
            ))
        }
        None => {
            return Err(format!(
                "the request has no \"v\" field (expected {VERSION})"
            ))
        }
    }
    let cmd = match obj.get("cmd") {
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err("\"cmd\" must be a string".into()),
        None => return Err(format!("the request has no \"cmd\" (one of {COMMANDS})")),
    };
    if !COMMANDS.split(", ").any(|c| c == cmd) {
        return Err(format!(
            "unknown command {cmd:?} (expected one of {COMMANDS})"
        ));
    }
    let req: Request = serde_json::from_value(Value::Object(obj))
        .map_err(|e| format!("bad arguments for {cmd}: {e}"))?;
    if let Request::Rollback { id, all } = &req {
        if id.is_some() == *all {
            return Err("rollback needs either \"id\" or \"all\": true".into());
        }
    }
    if let Request::Events(filter) = &req {
        if let Some(s) = &filter.min_severity {
            if !SEVERITIES.contains(&s.as_str()) {
                return Err(format!(
                    "unknown severity {s:?} (expected one of {SEVERITIES:?})"
                ));
            }
        }
    }
    Ok(req)
}

/// Encodes a request as one line (with the newline).
pub fn encode(req: &Request) -> String {
    let mut v = serde_json::to_value(req).unwrap_or_default();
    if let Value::Object(o) = &mut v {
        o.insert("v".into(), json!(VERSION));
    }
    format!("{v}\n")
}

/// `{"v":1,"ok":true, ...fields}` as one line.
pub fn ok(fields: Value) -> String {
    let rest = match &fields {
        Value::Object(o) if !o.is_empty() => {
            let s = fields.to_string();
            format!(",{}", &s[1..s.len() - 1])
        }
        _ => String::new(),
    };
    format!("{{\"v\":{VERSION},\"ok\":true{rest}}}\n")
}

/// `{"v":1,"ok":false,"error":"..."}` as one line.
pub fn error(sentence: &str) -> String {
    format!(
        "{{\"v\":{VERSION},\"ok\":false,\"error\":{}}}\n",
        json!(sentence)
    )
}

/// The line telling an `events` client it fell behind and `n` lines were dropped for it.
pub fn missed(n: u64) -> String {
    format!("{{\"v\":{VERSION},\"missed\":{n}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_requests_decode() {
        assert_eq!(decode(br#"{"v":1,"cmd":"status"}"#), Ok(Request::Status {}));
        assert_eq!(
            decode(b"{\"v\":1,\"cmd\":\"stats\"}\n"),
            Ok(Request::Stats {})
        );
        assert_eq!(
            decode(br#"{"cmd":"history","v":1,"limit":5,"since_s":60}"#),
            Ok(Request::History {
                limit: Some(5),
                since_s: Some(60)
            })
        );
        assert_eq!(
            decode(br#"{"v":1,"cmd":"mode","mode":"pause"}"#),
            Ok(Request::Mode {
                mode: ModeChange::Pause
            })
        );
        assert_eq!(
            decode(br#"{"v":1,"cmd":"heal","fault":"link_down","subject":"eth0"}"#),
            Ok(Request::Heal {
                fault: "link_down".into(),
                subject: "eth0".into()
            })
        );
        assert_eq!(
            decode(br#"{"v":1,"cmd":"baseline","accept":true,"prefix":"10.9.0.0/24"}"#),
            Ok(Request::Baseline {
                accept: true,
                prefix: Some("10.9.0.0/24".into())
            })
        );
        assert_eq!(
            decode(br#"{"v":1,"cmd":"baseline"}"#),
            Ok(Request::Baseline {
                accept: false,
                prefix: None
            })
        );
        assert_eq!(
            decode(br#"{"v":1,"cmd":"rollback","all":true}"#),
            Ok(Request::Rollback {
                id: None,
                all: true
            })
        );
        let ev = decode(br#"{"v":1,"cmd":"events","types":["fault"],"min_severity":"error"}"#);
        let Ok(Request::Events(filter)) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(filter.types, ["fault"]);
        assert_eq!(filter.min_severity.as_deref(), Some("error"));
    }

    #[test]
    fn encode_round_trips() {
        for r in [
            Request::Status {},
            Request::Rollback {
                id: Some("x-0001".into()),
                all: false,
            },
            Request::Events(EventFilter {
                faults: vec!["syn_flood".into()],
                ..Default::default()
            }),
        ] {
            let line = encode(&r);
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert_eq!(decode(line.as_bytes()), Ok(r));
        }
    }

    #[test]
    fn bad_requests_are_one_sentence() {
        let cases: &[(&[u8], &str)] = &[
            (b"status", "the request is not valid JSON"),
            (b"[1,2]", "the request must be a JSON object"),
            (br#"{"cmd":"status"}"#, "the request has no \"v\" field"),
            (
                br#"{"v":2,"cmd":"status"}"#,
                "unsupported protocol version 2",
            ),
            (br#"{"v":1}"#, "the request has no \"cmd\""),
            (br#"{"v":1,"cmd":7}"#, "\"cmd\" must be a string"),
            (br#"{"v":1,"cmd":"reboot"}"#, "unknown command \"reboot\""),
            (
                br#"{"v":1,"cmd":"mode","mode":"chaos"}"#,
                "bad arguments for mode",
            ),
            (
                br#"{"v":1,"cmd":"heal","fault":"x"}"#,
                "bad arguments for heal",
            ),
            (
                br#"{"v":1,"cmd":"status","extra":1}"#,
                "bad arguments for status",
            ),
            (br#"{"v":1,"cmd":"rollback"}"#, "rollback needs either"),
            (
                br#"{"v":1,"cmd":"rollback","id":"a","all":true}"#,
                "rollback needs either",
            ),
            (
                br#"{"v":1,"cmd":"events","min_severity":"loud"}"#,
                "unknown severity \"loud\"",
            ),
            (b"\xff\xfe", "the request is not valid JSON"),
        ];
        for (bytes, want) in cases {
            let e = decode(bytes).unwrap_err();
            assert!(
                e.starts_with(want),
                "{:?}: {e}",
                String::from_utf8_lossy(bytes)
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn oversized_requests_are_refused_before_parsing() {
        let mut big = br#"{"v":1,"cmd":"heal","fault":"link_down","subject":""#.to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST));
        big.extend(br#""}"#);
        assert_eq!(
            decode(&big).unwrap_err(),
            format!("request larger than {MAX_REQUEST} bytes")
        );
    }

    #[test]
    fn response_lines() {
        assert_eq!(ok(json!({"a": 1})), "{\"v\":1,\"ok\":true,\"a\":1}\n");
        assert_eq!(
            error("no such thing"),
            "{\"v\":1,\"ok\":false,\"error\":\"no such thing\"}\n"
        );
        assert_eq!(missed(3), "{\"v\":1,\"missed\":3}\n");
    }

    #[test]
    fn filters() {
        let fault = json!({"type":"fault","fault":"link_down","severity":"error"});
        let remedy = json!({"type":"remedy","fault":"link_down"});
        let counters = json!({"type":"counters"});
        let all = EventFilter::default();
        assert!(all.matches(&fault) && all.matches(&counters));
        let types = EventFilter {
            types: vec!["fault".into(), "remedy".into()],
            ..Default::default()
        };
        assert!(types.matches(&fault) && types.matches(&remedy) && !types.matches(&counters));
        let f = EventFilter {
            faults: vec!["syn_flood".into()],
            ..Default::default()
        };
        assert!(!f.matches(&fault));
        let sev = |s: &str| EventFilter {
            min_severity: Some(s.into()),
            ..Default::default()
        };
        assert!(sev("warning").matches(&fault));
        assert!(sev("error").matches(&fault));
        assert!(!sev("critical").matches(&fault));
        assert!(!sev("info").matches(&counters));
    }

    #[test]
    fn errors_quoting_the_request_stay_on_one_line() {
        let e = decode(b"{\"v\":1,\"cmd\":\"events\",\"e\\nx\\u0007y\":1}").unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("e\\nx"), "{e:?}");
        let long = format!("{{\"v\":1,\"cmd\":\"events\",\"{}\":1}}", "x".repeat(5000));
        assert!(decode(long.as_bytes()).unwrap_err().chars().count() <= MAX_ERROR + 1);
    }
}
