//! What the tally reads of an event line: a few top-level fields, parsed in place. Building a
//! whole `serde_json::Value` for every line (a map and a string per field, every number and
//! nested list) cost more than writing the line did, for a few hundred `counters` events a
//! tick on a node with hundreds of namespaces; this walks the line once, skips what it does
//! not need and borrows the strings it keeps. It reads the same as `Value::get(k)` followed by
//! `as_str` (`""` otherwise) or `as_u64` (`0` otherwise), later duplicates winning.
use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields of an event the tally counts by.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// `type`.
    pub kind: Cow<'a, str>,
    pub fault: Cow<'a, str>,
    pub state: Cow<'a, str>,
    pub remedy: Cow<'a, str>,
    pub result: Cow<'a, str>,
    pub source: Cow<'a, str>,
    pub lost: u64,
}

impl Head<'_> {
    /// The same fields out of a parsed event.
    pub fn of_value(v: &serde_json::Value) -> Head<'_> {
        let s = |k: &str| Cow::Borrowed(v.get(k).and_then(serde_json::Value::as_str).unwrap_or(""));
        Head {
            kind: s("type"),
            fault: s("fault"),
            state: s("state"),
            remedy: s("remedy"),
            result: s("result"),
            source: s("source"),
            lost: v
                .get("lost")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
        }
    }
}

/// A top-level field's name: one of those kept, or another.
enum Field {
    Kind,
    Fault,
    State,
    Remedy,
    Result,
    Source,
    Lost,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
                Ok(match s {
                    "type" => Field::Kind,
                    "fault" => Field::Fault,
                    "state" => Field::State,
                    "remedy" => Field::Remedy,
                    "result" => Field::Result,
                    "source" => Field::Source,
                    "lost" => Field::Lost,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, kept only if it is a string (`as_str`) or an unsigned integer (`as_u64`).
enum Any<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    Else,
}

impl<'a> Any<'a> {
    fn into_str(self) -> Cow<'a, str> {
        match self {
            Any::Str(s) => s,
            _ => Cow::Borrowed(""),
        }
    }

    fn into_u64(self) -> u64 {
        match self {
            Any::U64(n) => n,
            _ => 0,
        }
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(s)))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Any<'de>, E> {
        Ok(Any::U64(n))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Any<'de>, E> {
        Ok(u64::try_from(n).map_or(Any::Else, Any::U64))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Any<'de>, E> {
        Ok(Any::Else)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any<'de>, E> {
        Ok(Any::Else)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Any<'de>, E> {
        Ok(Any::Else)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Any<'de>, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Any::Else)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Any<'de>, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Any::Else)
    }
}

impl<'de> Deserialize<'de> for Any<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

impl<'de> Deserialize<'de> for Head<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Head<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Head<'de>, A::Error> {
                let mut h = Head::default();
                while let Some(k) = a.next_key::<Field>()? {
                    match k {
                        Field::Kind => h.kind = a.next_value::<Any>()?.into_str(),
                        Field::Fault => h.fault = a.next_value::<Any>()?.into_str(),
                        Field::State => h.state = a.next_value::<Any>()?.into_str(),
                        Field::Remedy => h.remedy = a.next_value::<Any>()?.into_str(),
                        Field::Result => h.result = a.next_value::<Any>()?.into_str(),
                        Field::Source => h.source = a.next_value::<Any>()?.into_str(),
                        Field::Lost => h.lost = a.next_value::<Any>()?.into_u64(),
                        Field::Other => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed in place, the same as through a `Value`.
    fn same(line: &str) -> Head<'_> {
        let h: Head = serde_json::from_str(line).expect("parses");
        let v: serde_json::Value = serde_json::from_str(line).expect("a value");
        assert_eq!(h, Head::of_value(&v), "{line}");
        h
    }

    #[test]
    fn reads_the_fields_as_a_value_would() {
        let h = same(r#"{"type":"fault","fault":"link_down","state":"opened","x":[1,{"a":2}]}"#);
        assert_eq!(
            (&*h.kind, &*h.fault, &*h.state),
            ("fault", "link_down", "opened")
        );
        assert!(matches!(h.kind, Cow::Borrowed(_)), "no escape: borrowed");
        let h = same(r#"{"type":"loss","source":"ringbuf","lost":7,"total":7}"#);
        assert_eq!((&*h.source, h.lost), ("ringbuf", 7));
        same(
            r#"{"type":"remedy","remedy":"link_up","result":"verified","evidence":{"state":{"x":1}}}"#,
        );
        // A counters event: nested lists and objects skipped, nothing kept but its type.
        let h = same(
            r#"{"ts":"2026-12-05T09:00:00Z","host":"h","type":"counters","netns":4026532,
               "xdp":[{"ifindex":1,"bytes":3}],"connect_failures_by_dst":[],"time_wait":null}"#,
        );
        assert_eq!(
            h,
            Head {
                kind: "counters".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn odd_fields_read_as_empty_or_zero() {
        // Not a string, not an unsigned integer, escaped, repeated (the last wins).
        same(r#"{"type":1,"state":{"a":"b"},"fault":["x"],"lost":-3,"source":null}"#);
        same(r#"{"type":"loss","lost":2.5,"result":true}"#);
        same(r#"{"type":"loss","lost":"9"}"#);
        let h = same(r#"{"type":"fa\"ult","fault":"a\u0041"}"#);
        assert_eq!(&*h.kind, "fa\"ult");
        assert_eq!(&*h.fault, "aA");
        let h = same(r#"{"type":"fault","type":"remedy","lost":1,"lost":18446744073709551615}"#);
        assert_eq!((&*h.kind, h.lost), ("remedy", u64::MAX));
        same("{}");
        assert!(
            serde_json::from_str::<Head>("{\"type\":").is_err(),
            "truncated"
        );
    }
}
