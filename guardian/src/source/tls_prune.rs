//! What the TLS sampler deletes from its kernel maps, so that they do not fill up on a host
//! that runs for months: `TLS_ALERTS` is not LRU (an alert is never evicted silently), and it
//! is keyed per peer, so scanners and namespaces that come and go would fill its 16 384
//! entries, after which every new alert would be a `map_full` loss.
//!
//! - Every entry of a namespace that no path has led to for [`GONE_AFTER`] (a deleted pod),
//!   from both maps (`TLS_HANDSHAKES` is LRU, but a dead namespace's entries are only noise).
//! - An alert entry whose count has not moved for [`ALERT_IDLE`]. The next alert of that key
//!   makes it again from zero; the detector's windows count that restart as growth
//!   (`Windows::restarting`), so nothing is counted twice or lost, except an alert written in
//!   the microseconds between the read and the delete of an entry idle for five minutes.
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// An alert entry unchanged for this long is deleted.
pub const ALERT_IDLE: Duration = Duration::from_secs(300);
/// A namespace no path has led to for this long is gone (as for the namespace counters).
pub const GONE_AFTER: Duration = Duration::from_secs(5);

/// The last value of each entry and when it last moved.
#[derive(Debug)]
pub struct Idle<K> {
    seen: HashMap<K, (u64, Instant)>,
}

impl<K: Hash + Eq + Clone> Idle<K> {
    pub fn new() -> Self {
        Self {
            seen: HashMap::new(),
        }
    }

    /// Records this tick's entries; returns those that have not moved for `idle`. Entries no
    /// longer in the map are forgotten.
    pub fn observe(
        &mut self,
        now: Instant,
        entries: impl IntoIterator<Item = (K, u64)>,
        idle: Duration,
    ) -> Vec<K> {
        let mut next = HashMap::with_capacity(self.seen.len());
        let mut out = Vec::new();
        for (k, v) in entries {
            let since = match self.seen.get(&k) {
                Some(&(last, since)) if last == v => since,
                _ => now,
            };
            if now.saturating_duration_since(since) >= idle {
                out.push(k);
            } else {
                next.insert(k, (v, since));
            }
        }
        self.seen = next;
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }
}

/// When each namespace was first found with no path leading to it.
#[derive(Debug, Default)]
pub struct Gone {
    absent_since: HashMap<u32, Instant>,
}

impl Gone {
    /// Of `namespaces` (this tick's, own excluded by the caller), those absent for
    /// [`GONE_AFTER`]; `exists` says whether a path leads to one now.
    pub fn check(
        &mut self,
        now: Instant,
        namespaces: impl IntoIterator<Item = u32>,
        mut exists: impl FnMut(u32) -> bool,
    ) -> Vec<u32> {
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for ns in namespaces {
            if exists(ns) {
                continue;
            }
            let since = self.absent_since.get(&ns).copied().unwrap_or(now);
            match now.saturating_duration_since(since) >= GONE_AFTER {
                true => out.push(ns),
                false => {
                    next.insert(ns, since);
                }
            }
        }
        self.absent_since = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_idle_only_after_it_stopped_moving_for_the_whole_delay() {
        let mut i = Idle::new();
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let idle = Duration::from_secs(10);
        assert!(i.observe(at(0), [("a", 1), ("b", 1)], idle).is_empty());
        // "a" moves at 6 s; "b" never does.
        assert!(i.observe(at(6), [("a", 2), ("b", 1)], idle).is_empty());
        assert_eq!(i.observe(at(10), [("a", 2), ("b", 1)], idle), ["b"]);
        // Deleted, "b" is forgotten; "a" is idle 10 s after its last move.
        assert_eq!(i.len(), 1);
        assert!(i.observe(at(15), [("a", 2)], idle).is_empty());
        assert_eq!(i.observe(at(16), [("a", 2)], idle), ["a"]);
        // Made again from zero, "b" starts over.
        assert!(i.observe(at(17), [("b", 1)], idle).is_empty());
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn a_namespace_is_gone_after_being_absent_for_the_delay_without_a_break() {
        let mut g = Gone::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let alive = |ns| ns == 1;
        assert!(g.check(at(0), [1, 2, 3], alive).is_empty());
        // 3 is found again (a rescan found a process in it): its absence starts over.
        assert!(g.check(at(3_000), [1, 2, 3], |ns| ns != 2).is_empty());
        assert_eq!(g.check(at(5_000), [1, 2, 3], alive), [2]);
        assert!(g.check(at(9_000), [1, 3], alive).is_empty());
        assert_eq!(g.check(at(10_000), [1, 3], alive), [3]);
    }
}
