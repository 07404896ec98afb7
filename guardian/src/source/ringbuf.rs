//! The ring buffer consumer: wakes on epoll readiness, drains every record, decodes, offers
//! the observation to the detectors and writes it unless the per-key limit holds it back
//! ([`super::throttle`]). What the detectors' queue shed and what the limit held back are
//! reported at most once a second as `loss` events with sources `detect` and `throttle`.
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use guardian_common::EV_BIND_CONFLICT;

use super::bind_check::BindCheck;
use super::decode;
use super::feed::Feed;
use super::throttle::Throttle;
use crate::input::Input;
use crate::model::LossSource;
use crate::output::{Body, Emitter, Loss};

/// Records handled per round before the task goes back to its `select!` (shutdown, the
/// report tick, the runtime's other tasks): records keep arriving during a storm.
const SLICE: usize = 4096;

pub async fn run(
    ring: RingBuf<MapData>,
    emitter: Emitter,
    inputs: Feed,
    observations_per_sec: u32,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer map owns its fd for as long as the AsyncFd owns the map.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut report = tokio::time::interval(Duration::from_secs(1));
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut c = Consumer {
        emitter,
        inputs,
        throttle: Throttle::new(observations_per_sec),
        reported: (0, 0),
        binds: BindCheck::default(),
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = report.tick() => c.report(),
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                // Readiness is cleared only once the ring is empty; otherwise the next round
                // continues where this one stopped.
                if c.drain(guard.get_inner_mut(), SLICE) {
                    guard.clear_ready();
                } else {
                    drop(guard);
                    // The ring is still readable, so the next `select!` would be ready at once
                    // and the runtime's cooperative budget only forces a yield after 128 such
                    // rounds (half a million records, hundreds of milliseconds in a storm).
                    // Meanwhile tasks woken onto this worker (a control connection, in its
                    // LIFO slot) cannot be stolen by the other: yield after every slice.
                    tokio::task::yield_now().await;
                }
            }
        }
    }
    // Whatever arrived before the programs were detached.
    c.drain(fd.get_mut(), usize::MAX);
    c.report();
    Ok(())
}

struct Consumer {
    emitter: Emitter,
    inputs: Feed,
    throttle: Throttle,
    /// (shed by the detectors' queue, held back by the throttle) already reported.
    reported: (u64, u64),
    binds: BindCheck,
}

impl Consumer {
    /// Handles up to `max` records; true when the ring is empty.
    fn drain(&mut self, ring: &mut RingBuf<MapData>, max: usize) -> bool {
        // One clock read per round: a round is milliseconds, the throttle's window a second.
        let now = Instant::now();
        for _ in 0..max {
            let Some(item) = ring.next() else {
                return true;
            };
            let ev = decode::syscall_event(&item);
            if let Ok(ev) = &ev {
                // A failed bind the kernel could not classify: reported only if its address is
                // local (else it was EADDRNOTAVAIL).
                if ev.kind == EV_BIND_CONFLICT && ev.ret == 0 && !self.binds.is_conflict(ev, now) {
                    continue;
                }
            }
            match ev.and_then(|ev| decode::observation(&ev)) {
                Ok(obs) => {
                    let write = self.throttle.allow(&obs, now);
                    if write {
                        // Shed when the engine is behind (counted), or refused when it is
                        // gone at shutdown.
                        self.inputs.offer(Input::Observation(obs.clone()));
                        self.emitter.emit(Body::Observation(obs));
                    } else {
                        self.inputs.offer(Input::Observation(obs));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable ring buffer record"),
            }
        }
        false
    }

    fn report(&mut self) {
        let (detect, throttle) = (self.inputs.shed(), self.throttle.held());
        for (source, total, prev) in [
            (LossSource::Detect, detect, &mut self.reported.0),
            (LossSource::Throttle, throttle, &mut self.reported.1),
        ] {
            if total > *prev {
                self.emitter.emit(Body::Loss(Loss {
                    source,
                    lost: total - *prev,
                    total,
                }));
                *prev = total;
            }
        }
    }
}
