//! Counter deltas over sliding windows, for the rate detectors.
//!
//! Two shapes exist, written by two people for two groups of detectors and not yet unified:
//! [`History`] keeps one series of a tuple of counters (a namespace's MIB counters), while
//! [`Windows`] keeps one series per key (a port, a source) and treats a key's first sighting
//! as growth from zero since the previous sample. Both answer "how much did these cumulative
//! counters grow over the last window".
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Timestamped samples of monotonic counters, kept for one window: answers "how much did the
/// counters grow over the last `window`". Shared by the socket-group rate detectors.
#[derive(Debug)]
pub(crate) struct History<T> {
    window: Duration,
    v: VecDeque<(Instant, T)>,
}

impl<T: Copy> History<T> {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            v: VecDeque::new(),
        }
    }

    /// True before the first sample.
    pub(crate) fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// Adds a sample without asking for a comparison (e.g. a known starting point).
    pub(crate) fn seed(&mut self, t: Instant, x: T) {
        self.v.push_back((t, x));
    }

    /// Adds the newest sample and returns the one to compare it with: the latest sample at
    /// least `window` old, else the oldest one; with the time between them. None on the first.
    pub(crate) fn push(&mut self, now: Instant, x: T) -> Option<(Duration, T)> {
        // Drop samples that are no longer the latest one at least a window old.
        while self.v.len() >= 2 && now.saturating_duration_since(self.v[1].0) >= self.window {
            self.v.pop_front();
        }
        let base = self
            .v
            .front()
            .map(|&(t, old)| (now.saturating_duration_since(t), old));
        self.v.push_back((now, x));
        base
    }
}

/// Cumulative counters per key over time, for deltas over a window. Shared by the flow
/// detectors (`syn_flood`, `connection_flood`, `connect_timeout_cascade`).
#[derive(Debug)]
pub(crate) struct Windows<K> {
    /// When the previous sample of this scope was taken: a key seen for the first time was 0
    /// then (the counters are cumulative since attach and only list keys that counted).
    prev: Option<Instant>,
    series: HashMap<K, VecDeque<(Instant, u64)>>,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    pub fn new() -> Self {
        Self {
            prev: None,
            series: HashMap::new(),
        }
    }

    /// Records one sample: the cumulative value of every key listed now. History older than
    /// `keep` is dropped (one entry at or before `now - keep` stays as the baseline).
    pub fn observe(
        &mut self,
        now: Instant,
        values: impl IntoIterator<Item = (K, u64)>,
        keep: Duration,
    ) {
        for (k, v) in values {
            let s = self.series.entry(k).or_insert_with(|| {
                let mut d = VecDeque::new();
                if let Some(p) = self.prev {
                    d.push_back((p, 0));
                }
                d
            });
            s.push_back((now, v));
        }
        let cut = now.checked_sub(keep);
        self.series.retain(|_, s| {
            if let Some(cut) = cut {
                while s.len() > 1 && s[1].0 <= cut {
                    s.pop_front();
                }
            }
            // Forget keys that stopped moving long ago (their last value is older than `keep`).
            !(s.len() == 1 && cut.is_some_and(|c| s[0].0 < c))
        });
        self.prev = Some(now);
    }

    /// Growth of `k` over the window ending at `now`: the delta from the latest sample at or
    /// before `now - window` (or the oldest one kept), and the span it covers.
    pub fn delta(&self, k: &K, now: Instant, window: Duration) -> Option<(u64, Duration)> {
        let s = self.series.get(k)?;
        let &(_, last) = s.back()?;
        let start = now.checked_sub(window);
        let base = s
            .iter()
            .rev()
            .find(|(t, _)| start.is_some_and(|st| *t <= st))
            .or_else(|| s.front())?;
        let span = now.saturating_duration_since(base.0);
        Some((last.saturating_sub(base.1), span))
    }

    /// Delta per second over the window; None until a span exists.
    pub fn rate(&self, k: &K, now: Instant, window: Duration) -> Option<(f64, u64, Duration)> {
        let (d, span) = self.delta(k, now, window)?;
        (!span.is_zero()).then(|| (d as f64 / span.as_secs_f64(), d, span))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.series.keys()
    }
}
