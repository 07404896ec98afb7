//! A per-key limit on `observation` events: at most `per_sec` per (namespace, kind, port) in
//! each one-second window. One application retrying a failed bind in a loop makes hundreds of
//! thousands of identical observations a second; written out, they would flood stdout (and
//! the journal, whose rate limit would then drop guardian's faults and remedies with them)
//! while telling an operator nothing the first hundred did not. What is held back is counted
//! and reported as a `loss` event with source `throttle`; the detectors still see every
//! observation, and the kernel's counts (`counters`) are exact regardless.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::{ObsKind, Observation};

/// Distinct keys tracked per window; past it, observations of new keys are held back too
/// (a storm over every port must not grow the table without bound).
pub const MAX_KEYS: usize = 16 * 1024;
const WINDOW: Duration = Duration::from_secs(1);

/// (namespace, kind, port)
type Key = (u32, ObsKind, u16);

#[derive(Debug)]
pub struct Throttle {
    per_sec: u32,
    window: Option<Instant>,
    counts: HashMap<Key, u32>,
    held: u64,
}

impl Throttle {
    /// `per_sec` 0: no limit.
    pub fn new(per_sec: u32) -> Self {
        Throttle {
            per_sec,
            window: None,
            counts: HashMap::new(),
            held: 0,
        }
    }

    /// Whether `obs` may be written now; counts it as held back if not.
    pub fn allow(&mut self, obs: &Observation, now: Instant) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        if self
            .window
            .is_none_or(|w| now.saturating_duration_since(w) >= WINDOW)
        {
            self.counts.clear();
            self.window = Some(now);
        }
        let key = (obs.netns, obs.kind, obs.port.unwrap_or(0));
        let full = self.counts.len() >= MAX_KEYS;
        match self.counts.get_mut(&key) {
            Some(n) if *n < self.per_sec => *n += 1,
            None if !full => {
                self.counts.insert(key, 1);
            }
            _ => {
                self.held += 1;
                return false;
            }
        }
        true
    }

    /// Observations held back since start.
    pub fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(netns: u32, kind: ObsKind, port: u16) -> Observation {
        Observation {
            kind,
            ..Observation::bind_conflict(netns, port, 1)
        }
    }

    #[test]
    fn limits_each_key_per_window_and_counts_what_it_holds_back() {
        let mut t = Throttle::new(3);
        let t0 = Instant::now();
        let a = obs(1, ObsKind::BindConflict, 80);
        let allowed = (0..10).filter(|_| t.allow(&a, t0)).count();
        assert_eq!((allowed, t.held()), (3, 7));
        // Other keys have their own allowance: another port, namespace, kind.
        assert!(t.allow(&obs(1, ObsKind::BindConflict, 81), t0));
        assert!(t.allow(&obs(2, ObsKind::BindConflict, 80), t0));
        assert!(t.allow(&obs(1, ObsKind::ConnectAddrnotavail, 80), t0));
        // Within the window the key stays limited; the next window starts afresh.
        assert!(!t.allow(&a, t0 + Duration::from_millis(999)));
        assert!(t.allow(&a, t0 + Duration::from_millis(1000)));
        assert_eq!(t.held(), 8);
    }

    #[test]
    fn zero_means_no_limit() {
        let mut t = Throttle::new(0);
        let a = obs(1, ObsKind::BindConflict, 80);
        assert!((0..100_000).all(|_| t.allow(&a, Instant::now())));
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn the_key_table_is_bounded() {
        let mut t = Throttle::new(1);
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            assert!(t.allow(&obs(i as u32, ObsKind::BindConflict, 1), t0));
        }
        // A new key past the bound is held back; known keys keep their allowance rules.
        assert!(!t.allow(&obs(u32::MAX, ObsKind::BindConflict, 1), t0));
        assert_eq!(t.counts.len(), MAX_KEYS);
        assert_eq!(t.held(), 1);
    }
}
