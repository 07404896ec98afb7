//! Counter deltas over sliding windows, for the rate detectors.
//!
//! Two shapes exist, written by two people for two groups of detectors and not yet unified:
//! [`History`] keeps one series of a tuple of counters (a namespace's MIB counters), while
//! [`Windows`] keeps one series per key (a port, a source) and treats a key's first sighting
//! as growth from zero since the previous sample. Both answer "how much did these cumulative
//! counters grow over the last window". [`Windows::restarting`] also follows kernel map
//! entries that are deleted and made again from zero (pruned, or evicted from an LRU map).
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Counters that only grow, as long as what counts them lives.
pub(crate) trait Counter: Copy {
    /// True when any counter of `self` is below its value in `before`: they restarted.
    fn went_down(&self, before: &Self) -> bool;
}

impl Counter for u64 {
    fn went_down(&self, before: &Self) -> bool {
        self < before
    }
}

impl Counter for (u64, u64) {
    fn went_down(&self, before: &Self) -> bool {
        self.0 < before.0 || self.1 < before.1
    }
}

/// Timestamped samples of monotonic counters, kept for one window: answers "how much did the
/// counters grow over the last `window`". Shared by the socket-group rate detectors.
///
/// Counters that go down restarted: the history starts over from that sample. A namespace's
/// inode number is reused by the kernel for a namespace made after it is freed (pods come and
/// go), and the new namespace's counters start from zero; compared with the old namespace's,
/// every delta would saturate at zero until the old samples left the window.
#[derive(Debug)]
pub(crate) struct History<T> {
    window: Duration,
    v: VecDeque<(Instant, T)>,
}

impl<T: Counter> History<T> {
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
        if self.v.back().is_some_and(|(_, last)| x.went_down(last)) {
            self.v.clear();
        }
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
    /// Per key, what its kernel entry had counted before it last restarted from zero (see
    /// [`Windows::restarting`]); the series holds `offset + value`. Empty otherwise.
    offsets: HashMap<K, u64>,
    restarts: bool,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    pub fn new() -> Self {
        Self {
            prev: None,
            series: HashMap::new(),
            offsets: HashMap::new(),
            restarts: false,
        }
    }

    /// Windows over kernel map entries that can be deleted (pruned by the sampler, evicted
    /// from an LRU map) and made again from zero by the next event. A key whose value went
    /// down, or that is listed again after a sample that did not list it, restarted from zero:
    /// its whole value is growth since the previous sample, added to what it had counted, so
    /// the window's delta stays exact across the restart. Only for one map key per series,
    /// never for a sum over keys (losing one term of a sum is not a restart of it).
    pub fn restarting() -> Self {
        Self {
            restarts: true,
            ..Self::new()
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
            let mut v = v;
            if self.restarts {
                if let Some(&(t, last)) = self.series.get(&k).and_then(|s| s.back()) {
                    let offset = self.offsets.get(&k).copied().unwrap_or(0);
                    let absent = Some(t) != self.prev;
                    if absent || v < last - offset {
                        // Restarted from zero since `t`: all of `v` is new.
                        self.offsets.insert(k.clone(), last);
                    }
                }
                v += self.offsets.get(&k).copied().unwrap_or(0);
            }
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
        if self.restarts {
            let series = &self.series;
            self.offsets.retain(|k, _| series.contains_key(k));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(10);
    const W: Duration = Duration::from_secs(5);

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    /// Window deltas of key 1 after each sample (`None`: key 1 not listed in that sample).
    fn run(mut w: Windows<u8>, samples: &[Option<u64>]) -> Vec<u64> {
        let t0 = Instant::now();
        w.observe(t0, [], KEEP);
        samples
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let now = at(t0, i as u64 + 1);
                // Key 2 keeps the scope sampled while key 1 is absent.
                w.observe(now, v.map(|v| (1, v)).into_iter().chain([(2, 0)]), KEEP);
                w.delta(&1, now, W).map_or(0, |d| d.0)
            })
            .collect()
    }

    #[test]
    fn a_key_that_restarts_from_zero_keeps_its_growth() {
        // 3 counted, the entry deleted (one sample without it), made again: 2 more.
        let s = [Some(3), Some(3), None, Some(2), Some(4)];
        assert_eq!(run(Windows::restarting(), &s), [3, 3, 3, 5, 7]);
        // The plain windows lose what the entry had counted before (they read 2, then 4).
        assert_eq!(run(Windows::new(), &s), [3, 3, 3, 2, 4]);
        // Deleted and made again between two samples: the value went down.
        let s = [Some(5), Some(1), Some(1)];
        assert_eq!(run(Windows::restarting(), &s), [5, 6, 6]);
        assert_eq!(run(Windows::new(), &s), [5, 1, 1]);
    }

    #[test]
    fn restarts_leave_the_window_like_any_growth() {
        let mut s = vec![Some(4), None, Some(1)];
        s.extend([Some(1); 6]);
        // 4 + 1 counted by 3 s; from 6 s the 4 has left the 5 s window, from 8 s the 1 too.
        assert_eq!(run(Windows::restarting(), &s), [4, 4, 5, 5, 5, 1, 1, 0, 0]);
    }

    #[test]
    fn history_starts_over_when_a_counter_goes_down() {
        let t0 = Instant::now();
        let mut h = History::new(W);
        assert_eq!(h.push(t0, (100, 10)), None);
        assert_eq!(h.push(at(t0, 1), (150, 12)), Some((W / 5, (100, 10))));
        // A new namespace under the same inode: its counters from zero. Its first sample is
        // the base of the next ones, as a new namespace's is.
        assert_eq!(h.push(at(t0, 2), (20, 13)), None);
        assert_eq!(h.push(at(t0, 3), (60, 15)), Some((W / 5, (20, 13))));
        // One of the two down is enough.
        assert_eq!(h.push(at(t0, 4), (70, 1)), None);
        let mut one = History::new(W);
        one.push(t0, 5u64);
        assert_eq!(one.push(at(t0, 1), 5), Some((W / 5, 5)));
        assert_eq!(one.push(at(t0, 2), 4), None);
    }

    #[test]
    fn a_steady_key_is_not_a_restart() {
        let s = [Some(1), Some(2), Some(2), Some(7)];
        assert_eq!(run(Windows::restarting(), &s), run(Windows::new(), &s));
    }
}
