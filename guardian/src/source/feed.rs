//! The queue of detector inputs, from the ring-buffer consumer and the per-tick samplers to
//! the engine. Observations are offered and shed when the engine is [`SHED_AT`] inputs behind
//! ([`crate::shed`]); everything else (ticks, samples, link and route state) always goes in.
//! A shed observation has still been written as an event: only the detectors miss it, and
//! the one detector fed by observations (port_conflict) needs one per port and window.
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::input::Input;
use crate::shed::Depth;

/// Inputs queued for the engine above which observations are shed: a fraction of a second
/// of the engine's rate, a few MiB.
pub const SHED_AT: usize = 8 * 1024;

/// The producer side; clone it freely.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: mpsc::UnboundedSender<Input>,
    depth: Arc<Depth>,
}

/// The engine's side.
#[derive(Debug)]
pub struct FeedRx {
    rx: mpsc::UnboundedReceiver<Input>,
    depth: Arc<Depth>,
}

pub fn channel() -> (Feed, FeedRx) {
    with_limit(SHED_AT)
}

pub fn with_limit(limit: usize) -> (Feed, FeedRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let depth = Arc::new(Depth::with_limit(limit));
    (
        Feed {
            tx,
            depth: depth.clone(),
        },
        FeedRx { rx, depth },
    )
}

impl Feed {
    /// Queues an input that must not be shed. False once the engine is gone (at shutdown).
    pub fn send(&self, input: Input) -> bool {
        self.queue(input, false)
    }

    /// Queues an observation unless the engine is too far behind; false if it was shed.
    pub fn offer(&self, input: Input) -> bool {
        self.queue(input, true)
    }

    fn queue(&self, input: Input, sheddable: bool) -> bool {
        if !self.depth.admit(sheddable) {
            return false;
        }
        if self.tx.send(input).is_err() {
            self.depth.taken(1);
            return false;
        }
        true
    }

    /// Observations shed since start.
    pub fn shed(&self) -> u64 {
        self.depth.shed()
    }
}

impl FeedRx {
    pub async fn recv(&mut self) -> Option<Input> {
        let input = self.rx.recv().await?;
        self.depth.taken(1);
        Some(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Observation;

    fn obs() -> Input {
        Input::Observation(Observation::bind_conflict(1, 80, 1))
    }

    fn tick() -> Input {
        Input::Counters(Default::default())
    }

    #[tokio::test]
    async fn observations_are_shed_beyond_the_limit_everything_else_is_not() {
        let (feed, mut rx) = with_limit(2);
        assert!(feed.offer(obs()));
        assert!(feed.offer(obs()));
        assert!(!feed.offer(obs()));
        assert!(feed.send(tick()));
        assert_eq!(feed.shed(), 1);
        assert!(matches!(rx.recv().await, Some(Input::Observation(_))));
        // One taken: the queue holds an observation and the tick, still at the limit.
        assert!(!feed.offer(obs()));
        assert!(matches!(rx.recv().await, Some(Input::Observation(_))));
        assert!(feed.offer(obs()));
        assert!(matches!(rx.recv().await, Some(Input::Counters(_))));
        assert!(matches!(rx.recv().await, Some(Input::Observation(_))));
        assert_eq!(feed.shed(), 2);
        drop(rx);
        assert!(!feed.send(tick()));
    }
}
