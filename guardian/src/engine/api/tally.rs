//! Counts of every emitted event, kept by a task on the emitter's live tap: totals by type,
//! fault states, remedy results, losses (and those of the last minute, for the health score).
//! It also holds the engine's last published [`Status`], which `status` answers with when the
//! engine is too busy to answer itself.
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::view::{EventTotals, Stats, Status};
use crate::output::Emitter;
use head::Head;

const MINUTE: Duration = Duration::from_secs(60);
/// How an observation line starts after its envelope (`"schema":1,"ts":…,"host":…,`).
const OBSERVATION: &str = "\"type\":\"observation\",";

/// Lines the tally missed because it fell behind the live tap: warned about at most every
/// 10 s, with the count since the last warning.
#[derive(Default)]
struct Behind {
    missed: u64,
    warned: Option<Instant>,
}

impl Behind {
    fn add(&mut self, n: u64, now: Instant) {
        self.missed += n;
        if self
            .warned
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(
                missed = self.missed,
                "the event tally fell behind the event stream; stats undercount"
            );
            self.missed = 0;
            self.warned = Some(now);
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    events: EventTotals,
    faults: BTreeMap<String, BTreeMap<String, u64>>,
    remedies: BTreeMap<String, BTreeMap<String, u64>>,
    losses: BTreeMap<String, u64>,
    recent: VecDeque<(Instant, u64)>,
}

/// Shared counts; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tally {
    inner: Arc<Mutex<Counts>>,
    started: Instant,
    status: Arc<Mutex<Option<(Instant, Status)>>>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            inner: Arc::default(),
            started: Instant::now(),
            status: Arc::default(),
        }
    }
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str, n: u64) {
    // Known keys (nearly all) without allocating one.
    match m.get_mut(k) {
        Some(v) => *v += n,
        None => {
            m.insert(k.to_string(), n);
        }
    }
}

impl Tally {
    /// Subscribes to the emitter now and counts until it closes.
    pub fn spawn(&self, emitter: &Emitter) -> tokio::task::JoinHandle<()> {
        let mut rx = emitter.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            let mut behind = Behind::default();
            loop {
                match rx.recv().await {
                    // Observations come by the hundred thousand in a storm and are only
                    // counted by type: no need to parse them.
                    Ok(line) if line.contains(OBSERVATION) => me.count_observation(),
                    Ok(line) => match serde_json::from_str::<Head>(&line) {
                        Ok(h) => me.count_head(&h, Instant::now()),
                        Err(e) => tracing::debug!("tally: unreadable event line: {e}"),
                    },
                    Err(RecvError::Lagged(n)) => behind.add(n, Instant::now()),
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// Counts one observation (by type only).
    fn count_observation(&self) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.events.total += 1;
        bump(&mut c.events.by_type, "observation", 1);
    }

    /// Counts one event.
    pub fn count(&self, v: &Value, now: Instant) {
        self.count_head(&Head::of_value(v), now)
    }

    /// Counts one event by the fields the tally reads of it (see [`Head`]).
    fn count_head(&self, h: &Head, now: Instant) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.events.total += 1;
        bump(&mut c.events.by_type, &h.kind, 1);
        match &*h.kind {
            "fault" => bump(
                c.faults.entry(h.fault.to_string()).or_default(),
                &h.state,
                1,
            ),
            "remedy" => bump(
                c.remedies.entry(h.remedy.to_string()).or_default(),
                &h.result,
                1,
            ),
            "loss" => {
                let n = h.lost;
                c.events.lost += n;
                bump(&mut c.losses, &h.source, n);
                c.recent.push_back((now, n));
            }
            _ => {}
        }
    }

    /// Events lost within the last minute.
    pub fn recent_losses(&self, now: Instant) -> u64 {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while c
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > MINUTE)
        {
            c.recent.pop_front();
        }
        c.recent.iter().map(|(_, n)| n).sum()
    }

    pub fn totals(&self, now: Instant) -> EventTotals {
        let lost_last_minute = self.recent_losses(now);
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        EventTotals {
            lost_last_minute,
            ..c.events.clone()
        }
    }

    pub fn stats(&self, now: Instant) -> Stats {
        let events = self.totals(now);
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Stats {
            uptime_s: now.saturating_duration_since(self.started).as_secs(),
            events,
            faults: c.faults.clone(),
            remedies: c.remedies.clone(),
            rates: Vec::new(),
            losses: c.losses.clone(),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The engine's state as of `at` (the engine publishes it as it goes).
    pub fn publish(&self, at: Instant, status: Status) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, status));
    }

    /// The last published status, with its uptime and event totals brought up to `now` and
    /// `stale_ms` saying how old the rest is; None before the engine published one.
    pub fn published(&self, now: Instant) -> Option<Status> {
        let (at, mut s) = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        s.uptime_s = self.uptime().as_secs();
        s.events = self.totals(now);
        s.stale_ms = Some(now.saturating_duration_since(at).as_millis() as u64);
        Some(s)
    }
}

#[path = "tally_head.rs"]
mod head;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_types_faults_remedies_and_recent_losses() {
        let t = Tally::default();
        let t0 = Instant::now();
        t.count(
            &json!({"type":"fault","fault":"link_down","state":"opened"}),
            t0,
        );
        t.count(
            &json!({"type":"fault","fault":"link_down","state":"cleared"}),
            t0,
        );
        t.count(
            &json!({"type":"remedy","remedy":"link_up","result":"verified"}),
            t0,
        );
        t.count(
            &json!({"type":"loss","source":"ringbuf","lost":7,"total":7}),
            t0,
        );
        t.count(&json!({"type":"counters"}), t0);
        let s = t.stats(t0);
        assert_eq!(s.events.total, 5);
        assert_eq!(s.events.by_type["fault"], 2);
        assert_eq!(s.faults["link_down"]["opened"], 1);
        assert_eq!(s.remedies["link_up"]["verified"], 1);
        assert_eq!(s.losses["ringbuf"], 7);
        assert_eq!(s.events.lost, 7);
        assert_eq!(t.recent_losses(t0 + Duration::from_secs(30)), 7);
        assert_eq!(t.recent_losses(t0 + Duration::from_secs(61)), 0);
        assert_eq!(t.totals(t0).lost, 7);
    }

    #[tokio::test]
    async fn counts_observations_from_the_tap_without_parsing_them() {
        use crate::model::Observation;
        use crate::output::{Body, Loss};
        let path =
            std::env::temp_dir().join(format!("guardian-tally-{}.ndjson", std::process::id()));
        let (e, w) = crate::output::open(Some(&path), "h".into()).await.unwrap();
        let writer = tokio::spawn(w.run());
        let t = Tally::default();
        let task = t.spawn(&e);
        e.emit(Body::Observation(Observation::bind_conflict(1, 80, 1)));
        e.emit(Body::Loss(Loss {
            source: crate::model::LossSource::Ringbuf,
            lost: 2,
            total: 2,
        }));
        drop(e);
        writer.await.unwrap().unwrap();
        task.await.unwrap();
        let _ = std::fs::remove_file(&path);
        let s = t.stats(Instant::now());
        assert_eq!(s.events.total, 2);
        assert_eq!(s.events.by_type["observation"], 1);
        assert_eq!(s.losses["ringbuf"], 2);
    }
}
