//! Output: every observation, detection and action becomes one NDJSON line.
//!
//! Producers hold a cheap [`Emitter`] and never block on I/O: events are stamped with the time
//! they are emitted and handed to one writer thread, which serializes each straight into its
//! batch buffer ([`line::LineWriter`]: no allocation per line) and writes the batch to the
//! sinks of `[sinks]`: stdout, a rotated file, or both ([`sink`]). Live subscribers (the
//! control socket's event stream) tap the same lines.
//!
//! The queue to the writer is bounded for the one kind of event whose rate the kernel sets
//! ([`crate::shed`]): when the writer falls behind by [`SHED_AT`] lines, `observation` lines
//! are shed and reported as `loss` events with source `queue`; detections, actions and
//! counters are never shed.
pub mod count;
pub mod event;
pub mod line;
pub mod message;
pub mod rotate;
pub mod sink;

use chrono::{SecondsFormat, Utc};
use tokio::sync::mpsc;

pub use event::*;
pub use line::LineWriter;
pub use sink::{open, open_sinks, Sinks, Writer};

/// Formats a time as RFC 3339 UTC with nanoseconds, e.g. `2026-11-22T08:20:07.123456789Z`.
pub fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Serializes one event as a line (without the trailing newline).
pub fn to_line(host: &str, ts: chrono::DateTime<Utc>, body: &Body) -> String {
    to_line_owned(host, ts, body, None)
}

/// [`to_line`] with the `owner` of the event's namespace.
pub fn to_line_owned(
    host: &str,
    ts: chrono::DateTime<Utc>,
    body: &Body,
    owner: Option<&crate::owner::Owner>,
) -> String {
    LineWriter::new(host).line(ts, body, owner)
}

/// How many lines a slow live subscriber (e.g. `guardian events --follow`) may fall behind
/// before it misses lines (it is told how many; the sinks never wait for it).
const TAP_CAPACITY: usize = 4096;

/// Lines queued for the writer above which observations are shed. At the writer's rate
/// (several hundred thousand lines/s to a file) this is well under a second of backlog, and
/// at a few hundred bytes a line about 10 MiB.
pub const SHED_AT: usize = 32 * 1024;

/// A handle to the event stream; clone it freely.
#[derive(Clone)]
pub struct Emitter {
    host: std::sync::Arc<str>,
    tx: mpsc::UnboundedSender<sink::Msg>,
    tap: tokio::sync::broadcast::Sender<std::sync::Arc<str>>,
    queue: std::sync::Arc<crate::shed::Depth>,
    /// Namespace owners, when the daemon resolves them (`run`); replay and tests do not.
    owners: Option<std::sync::Arc<crate::owner::Owners>>,
}

impl Emitter {
    /// Emits an event stamped now. An observation is shed (counted, reported later as a
    /// `loss` event with source `queue`) when the writer is [`SHED_AT`] lines behind.
    pub fn emit(&self, body: Body) {
        let sheddable = matches!(body, Body::Observation(_));
        if !self.queue.admit(sheddable) {
            return;
        }
        count::count(&body);
        // A map lookup; a namespace seen for the first time costs one /proc scan (owner/).
        let owner = match (&self.owners, body.netns(), &body) {
            (Some(o), Some(ns), Body::Fault(_) | Body::Remedy(_)) => o.get_now(ns),
            (Some(o), Some(ns), _) => o.get(ns),
            _ => None,
        };
        // Serialized by the writer, into its batch buffer; tapped there only if a subscriber
        // was already listening when the event was emitted.
        let event = sink::Event {
            ts: Utc::now(),
            retained: sink::retained(&body),
            tap: self.tap.receiver_count() > 0,
            body,
            owner,
        };
        // The writer only goes away at shutdown, after every producer stopped.
        let _ = self.tx.send(sink::Msg::Event(event));
    }

    /// Closes and reopens the event file (SIGUSR1), after the lines emitted before this call.
    pub fn reopen_sinks(&self) {
        let _ = self.tx.send(sink::Msg::Reopen);
    }

    /// Every line emitted from now on, for live subscribers. A subscriber that falls more than
    /// `TAP_CAPACITY` lines behind gets `RecvError::Lagged(n)` and continues.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<str>> {
        self.tap.subscribe()
    }

    /// Names the owner of each event's namespace from now on.
    pub fn with_owners(mut self, owners: std::sync::Arc<crate::owner::Owners>) -> Self {
        self.owners = Some(owners);
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::model::{Counters, LossSource};

    #[test]
    fn envelope_has_schema_ts_host_type_first_class() {
        let ts = Utc.timestamp_opt(1_795_000_000, 123_456_789).unwrap();
        let body = Body::Loss(Loss {
            source: LossSource::Ringbuf,
            lost: 3,
            total: 10,
        });
        let line = to_line("node-7", ts, &body);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["host"], "node-7");
        assert_eq!(v["type"], "loss");
        assert_eq!(v["lost"], 3);
        assert!(v["ts"].as_str().unwrap().ends_with(".123456789Z"), "{line}");
    }

    #[test]
    fn the_owner_follows_the_body_and_only_when_known() {
        let body = Body::Counters(Counters {
            netns: 7,
            ..Default::default()
        });
        assert_eq!(body.netns(), Some(7));
        let owner: crate::owner::Owner =
            serde_json::from_value(serde_json::json!({"kind": "pod", "pod_name": "web-0"}))
                .unwrap();
        let line = to_line_owned("h", Utc::now(), &body, Some(&owner));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["owner"],
            serde_json::json!({"kind": "pod", "pod_name": "web-0"})
        );
        assert!(
            line.ends_with(r#""owner":{"kind":"pod","pod_name":"web-0"}}"#),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&to_line("h", Utc::now(), &body)).unwrap();
        assert!(v.get("owner").is_none());
        let loss = Body::Loss(Loss {
            source: LossSource::Ringbuf,
            lost: 1,
            total: 1,
        });
        assert_eq!(loss.netns(), None);
    }

    #[test]
    fn counters_final_is_named_final() {
        let body = Body::Counters(Counters {
            netns: 1,
            is_final: true,
            ..Default::default()
        });
        let v: serde_json::Value = serde_json::from_str(&to_line("h", Utc::now(), &body)).unwrap();
        assert_eq!(v["final"], true);
        assert!(v["time_wait"].is_null());
        assert!(v.get("xdp").is_none());
    }

    #[tokio::test]
    async fn subscribers_see_every_line_the_sink_gets() {
        let path = std::env::temp_dir().join(format!("guardian-tap-{}.ndjson", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sinks = Sinks {
            file: Some(path.clone()),
            ..Default::default()
        };
        let (e, w) = open_sinks(&sinks, "h".into()).unwrap();
        let writer = tokio::spawn(w.run());
        e.emit(Body::Loss(Loss {
            source: LossSource::Ringbuf,
            lost: 1,
            total: 1,
        }));
        let mut rx = e.subscribe();
        e.emit(Body::Loss(Loss {
            source: LossSource::Ringbuf,
            lost: 2,
            total: 3,
        }));
        let live = rx.recv().await.unwrap();
        drop(e);
        writer.await.unwrap().unwrap();
        let file = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 2);
        // Only lines emitted after subscribing, byte for byte as the sink wrote them.
        assert_eq!(&*live, lines[1]);
    }
}
