//! Load shedding for the daemon's two internal queues: ring-buffer observations on their way
//! to the detectors, and event lines on their way to the writer thread.
//!
//! Producers never wait for a consumer (a ring-buffer consumer that blocked on a slow disk or
//! a busy engine would lose more in the kernel than it saves here), so the queues cannot push
//! back; they shed instead. Only observations are shed: their rate is set by the kernel (one
//! per failed bind…), while faults, remedies, counters, ticks, lifecycle and loss events are
//! few by construction (budgets, hysteresis, one counters event per tick) and are never
//! dropped. An admitted item is counted in `queued` until its consumer takes it, so memory is
//! bounded by `limit` observations plus the unsheddable trickle; what was shed is counted and
//! reported as a `loss` event (sources `queue` and `detect`).
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Depth of one queue and what was shed from it; shared by its producers and its consumer.
#[derive(Debug)]
pub struct Depth {
    queued: AtomicUsize,
    shed: AtomicU64,
    limit: usize,
}

impl Depth {
    pub fn with_limit(limit: usize) -> Self {
        Depth {
            queued: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
            limit,
        }
    }

    /// Whether a line may be queued; counts it in if so, counts it as shed if not. The check
    /// and the increment are not one atomic step: concurrent producers may overshoot the
    /// limit by at most their number, which does not matter for a memory bound.
    pub fn admit(&self, sheddable: bool) -> bool {
        if sheddable && self.queued.load(Relaxed) >= self.limit {
            self.shed.fetch_add(1, Relaxed);
            return false;
        }
        self.queued.fetch_add(1, Relaxed);
        true
    }

    /// The writer took `n` lines off the queue.
    pub fn taken(&self, n: usize) {
        self.queued.fetch_sub(n, Relaxed);
    }

    /// Lines shed since the daemon started.
    pub fn shed(&self) -> u64 {
        self.shed.load(Relaxed)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_only_observations_and_only_above_the_limit() {
        let d = Depth::with_limit(3);
        assert!(d.admit(true));
        assert!(d.admit(true));
        assert!(d.admit(false));
        // Full: observations are shed and counted, everything else still goes through.
        assert!(!d.admit(true));
        assert!(!d.admit(true));
        assert!(d.admit(false));
        assert_eq!((d.queued(), d.shed()), (4, 2));
        // The writer drains: observations are admitted again.
        d.taken(4);
        assert!(d.admit(true));
        assert_eq!((d.queued(), d.shed()), (1, 2));
    }
}
