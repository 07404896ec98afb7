//! The NDJSON line, serialized straight into a caller's buffer: no allocation per line.
//!
//! The wire shape is [`super::event::Envelope`]'s (`schema`, `ts`, `host`, the body's `type` and
//! fields, then `owner`); `Envelope` stays the documented model and the reference the unit
//! tests compare with byte for byte. Written here by hand around serde because the derive of
//! `Envelope` (`#[serde(flatten)]` of the body, the `ts` string) costs a map serializer and
//! one `String` per line: the fixed prefix is formatted in place (the host is escaped once,
//! when the [`LineWriter`] is made) and the body goes through `serde_json::to_writer` into
//! the same buffer.
use std::io::Write;

use chrono::{DateTime, Utc};

use super::event::{Body, SCHEMA_VERSION};
use crate::owner::Owner;

/// Writes lines for one host.
#[derive(Debug, Clone)]
pub struct LineWriter {
    /// `{"schema":1,"ts":"`
    prefix: Box<[u8]>,
    /// `,"host":"<escaped host>"` (the body's opening brace becomes the comma after it)
    host_part: Box<[u8]>,
}

impl LineWriter {
    pub fn new(host: &str) -> Self {
        let mut p = b",\"host\":".to_vec();
        // A &str always serializes.
        let _ = serde_json::to_writer(&mut p, host);
        LineWriter {
            prefix: format!("{{\"schema\":{SCHEMA_VERSION},\"ts\":\"")
                .into_bytes()
                .into_boxed_slice(),
            host_part: p.into_boxed_slice(),
        }
    }

    /// Appends one line (without its newline) to `buf`.
    pub fn write(&self, buf: &mut Vec<u8>, ts: DateTime<Utc>, body: &Body, owner: Option<&Owner>) {
        let start = buf.len();
        buf.extend_from_slice(&self.prefix);
        rfc3339_into(buf, ts);
        buf.push(b'"');
        buf.extend_from_slice(&self.host_part);
        // The body is an object (`{"type":…,…}`): its fields continue ours, so its opening
        // brace becomes the comma between.
        let body_at = buf.len();
        if let Body::Observation(o) = body {
            // The one kind of event whose rate the kernel sets: written by hand.
            observation_into(buf, o);
        } else if serde_json::to_writer(&mut *buf, body).is_err() || buf.get(body_at) != Some(&b'{')
        {
            // Serialization of these plain types cannot fail (no maps with non-string keys).
            buf.truncate(start);
            let _ = write!(buf, "{{\"schema\":1,\"error\":\"unserializable event\"}}");
            return;
        }
        buf[body_at] = b',';
        if let Some(o) = owner {
            buf.pop(); // the body's closing brace
            buf.extend_from_slice(b",\"owner\":");
            let _ = serde_json::to_writer(&mut *buf, o);
            buf.push(b'}');
        }
    }

    /// One line as a `String` (tests, replay).
    pub fn line(&self, ts: DateTime<Utc>, body: &Body, owner: Option<&Owner>) -> String {
        let mut buf = Vec::with_capacity(256);
        self.write(&mut buf, ts, body, owner);
        // Only JSON (UTF-8) was written.
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Appends a JSON string, escaped exactly as serde_json escapes it (only control characters,
/// `"` and `\`; everything else, UTF-8 included, as is).
fn str_into(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

fn num_into<T: serde::Serialize>(buf: &mut Vec<u8>, n: T) {
    // Integers always serialize (itoa).
    let _ = serde_json::to_writer(&mut *buf, &n);
}

/// An `observation` body, `{"type":"observation",…}`, byte for byte as serde's derive writes
/// it (field order, `skip_serializing_if`): the derive spends most of a line's time escaping
/// the field names, which are constants here.
fn observation_into(buf: &mut Vec<u8>, o: &crate::model::Observation) {
    buf.extend_from_slice(b"{\"type\":\"observation\",\"netns\":");
    num_into(buf, o.netns);
    buf.extend_from_slice(b",\"kind\":\"");
    buf.extend_from_slice(o.kind.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"error\":");
    str_into(buf, &o.error);
    buf.extend_from_slice(b",\"pid\":");
    num_into(buf, o.pid);
    buf.extend_from_slice(b",\"tid\":");
    num_into(buf, o.tid);
    buf.extend_from_slice(b",\"comm\":");
    str_into(buf, &o.comm);
    if let Some(f) = &o.family {
        buf.extend_from_slice(b",\"family\":");
        str_into(buf, f);
    }
    if let Some(a) = &o.addr {
        buf.extend_from_slice(b",\"addr\":");
        str_into(buf, a);
    }
    if let Some(p) = o.port {
        buf.extend_from_slice(b",\"port\":");
        num_into(buf, p);
    }
    buf.push(b'}');
}

/// Appends `t` as RFC 3339 UTC with nanoseconds (`2026-11-22T08:20:07.123456789Z`), exactly as
/// `to_rfc3339_opts(SecondsFormat::Nanos, true)` writes it. By hand: chrono's formatter
/// allocates the `String` this path exists to avoid.
pub fn rfc3339_into(buf: &mut Vec<u8>, t: DateTime<Utc>) {
    let secs = t.timestamp();
    // Years 0 to 9999 (chrono writes others differently; never the clock's).
    if !(-62_167_219_200..253_402_300_800).contains(&secs) {
        let text = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    // The civil date of a day count (days since 1970-01-01), H. Hinnant's `civil_from_days`:
    // integer arithmetic instead of chrono's calendar lookups for each field.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    // A leap second is nanoseconds ≥ 10^9 in chrono, written as second 60.
    let (mut sec, mut nano) = (sod % 60, t.timestamp_subsec_nanos());
    if nano >= 1_000_000_000 {
        sec += 1;
        nano -= 1_000_000_000;
    }
    let d = |v: u32, width: usize, buf: &mut Vec<u8>| {
        let mut tmp = [b'0'; 10];
        let mut v = v;
        for i in (0..width).rev() {
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        buf.extend_from_slice(&tmp[..width]);
    };
    d(year, 4, buf);
    buf.push(b'-');
    d(month, 2, buf);
    buf.push(b'-');
    d(day, 2, buf);
    buf.push(b'T');
    d(sod / 3600, 2, buf);
    buf.push(b':');
    d(sod / 60 % 60, 2, buf);
    buf.push(b':');
    d(sec, 2, buf);
    buf.push(b'.');
    d(nano, 9, buf);
    buf.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::model::{Counters, LossSource, Observation};
    use crate::output::event::{Envelope, Loss};

    fn chrono_rfc3339(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    }

    /// The reference: serde's derive of the documented `Envelope`.
    fn reference(host: &str, ts: DateTime<Utc>, body: &Body, owner: Option<&Owner>) -> String {
        serde_json::to_string(&Envelope {
            schema: SCHEMA_VERSION,
            ts: chrono_rfc3339(ts),
            host,
            body,
            owner,
        })
        .unwrap()
    }

    #[test]
    fn lines_are_byte_identical_to_the_envelope() {
        let owner: Owner =
            serde_json::from_value(serde_json::json!({"kind": "pod", "pod_name": "web-0"}))
                .unwrap();
        let mut odd = Observation::bind_conflict(4026531840, 8080, 42);
        odd.comm = "a\"b\\c\u{1}\u{7f}é".into();
        odd.family = Some("ipv6".into());
        odd.addr = Some("2001:db8::7".into());
        let mut bare = Observation::bind_conflict(1, 0, 0);
        bare.port = None;
        bare.error = "EADDRNOTAVAIL".into();
        bare.kind = crate::model::ObsKind::ConnectAddrnotavail;
        let bodies = [
            Body::Observation(Observation::bind_conflict(4026531840, 8080, 42)),
            Body::Observation(odd),
            Body::Observation(bare),
            Body::Counters(Counters {
                netns: 7,
                is_final: true,
                ..Default::default()
            }),
            Body::Loss(Loss {
                source: LossSource::Evicted("XDP_SYN_SRC".into()),
                lost: 3,
                total: 10,
            }),
        ];
        let w = LineWriter::new("node \"7\"\n\u{e9}");
        let mut buf = Vec::new();
        for ts in [
            Utc.timestamp_opt(1_795_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_795_000_019, 1_999_999_999).unwrap(), // a leap second
        ] {
            for body in &bodies {
                for o in [None, Some(&owner)] {
                    buf.clear();
                    w.write(&mut buf, ts, body, o);
                    assert_eq!(
                        std::str::from_utf8(&buf).unwrap(),
                        reference("node \"7\"\n\u{e9}", ts, body, o)
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_match_chrono_over_four_centuries() {
        let mut buf = Vec::new();
        // Every 7th day and an odd time of day, 1970 to 2370 (leap years, centuries), and
        // the edges of the range written by hand.
        let days = (-1..146_097 + 1).step_by(7).chain([-719_528, 2_932_896]);
        for (i, day) in days.enumerate() {
            let secs = day * 86_400 + (i as i64 * 3_607) % 86_400;
            let t = Utc
                .timestamp_opt(secs, (i as u32 * 7_919) % 1_000_000_000)
                .unwrap();
            buf.clear();
            rfc3339_into(&mut buf, t);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), chrono_rfc3339(t));
        }
    }

    #[test]
    fn writing_appends_and_reuses_the_buffer() {
        let w = LineWriter::new("h");
        let body = Body::Observation(Observation::bind_conflict(1, 80, 1));
        let ts = Utc.timestamp_opt(1_795_000_000, 5).unwrap();
        let mut buf = b"x\n".to_vec();
        w.write(&mut buf, ts, &body, None);
        assert!(
            buf.starts_with(b"x\n{\"schema\":1,\"ts\":\"2026-11-18T"),
            "{buf:?}"
        );
        assert!(buf.ends_with(b"}"));
        let cap = buf.capacity();
        for _ in 0..100 {
            buf.clear();
            w.write(&mut buf, ts, &body, None);
        }
        assert_eq!(
            buf.capacity(),
            cap,
            "no growth once the buffer is large enough"
        );
    }
}
