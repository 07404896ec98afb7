//! The engine's heartbeat for `/healthz`: the engine's loop beats after every step, and the
//! metrics endpoint answers 503 once the last beat is older than the stall limit.
//!
//! A monotonic clock (CLOCK_MONOTONIC through `Instant`), kept as milliseconds since the
//! process' first use, so the beat is one relaxed atomic store on the engine's hot path.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The daemon's engine (one per process).
pub static ENGINE: Progress = Progress::new();

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds on the process' monotonic clock (never 0, so 0 means "no beat yet").
pub fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// What `/healthz` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The engine has not started its loop yet (loading, attaching, recovering).
    Starting,
    /// The last step ended this long ago (within the limit).
    Live(Duration),
    /// No step for longer than the limit: the engine is stuck.
    Stalled(Duration),
}

pub struct Progress {
    last: AtomicU64,
}

impl Progress {
    pub const fn new() -> Progress {
        Progress {
            last: AtomicU64::new(0),
        }
    }

    /// The engine finished a step.
    pub fn beat(&self) {
        self.beat_at(now_ms());
    }

    pub fn beat_at(&self, ms: u64) {
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Liveness at `now` (ms on the same clock) with stall limit `limit`.
    pub fn liveness_at(&self, now: u64, limit: Duration) -> Liveness {
        match self.last.load(Ordering::Relaxed) {
            0 => Liveness::Starting,
            last => {
                let age = Duration::from_millis(now.saturating_sub(last));
                if age > limit {
                    Liveness::Stalled(age)
                } else {
                    Liveness::Live(age)
                }
            }
        }
    }

    pub fn liveness(&self, limit: Duration) -> Liveness {
        self.liveness_at(now_ms(), limit)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// How long the engine may go without a step before `/healthz` fails: the collector feeds it
/// counters every `interval_ms`, so ten missed ticks, and never less than 15 s (a slow
/// remedy step, e.g. a netlink verify, may legitimately take several seconds).
pub fn stall_limit(interval_ms: u64) -> Duration {
    Duration::from_millis(interval_ms.saturating_mul(10)).max(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_live_then_stalled() {
        let p = Progress::new();
        let limit = Duration::from_secs(15);
        assert_eq!(p.liveness_at(100_000, limit), Liveness::Starting);
        p.beat_at(90_000);
        assert_eq!(
            p.liveness_at(100_000, limit),
            Liveness::Live(Duration::from_secs(10))
        );
        assert_eq!(
            p.liveness_at(105_000, limit),
            Liveness::Live(Duration::from_secs(15))
        );
        assert_eq!(
            p.liveness_at(105_001, limit),
            Liveness::Stalled(Duration::from_millis(15_001))
        );
        p.beat_at(105_001);
        assert!(matches!(p.liveness_at(105_002, limit), Liveness::Live(_)));
    }

    #[test]
    fn the_limit_follows_the_interval_with_a_floor() {
        assert_eq!(stall_limit(1000), Duration::from_secs(15));
        assert_eq!(stall_limit(5000), Duration::from_secs(50));
        assert_eq!(stall_limit(0), Duration::from_secs(15));
    }

    #[test]
    fn the_clock_never_reads_zero() {
        assert!(now_ms() >= 1);
    }
}
