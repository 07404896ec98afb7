//! The ring buffer consumer: wakes on epoll readiness, drains every record, decodes, emits
//! the observation and offers it to the detectors. What the detectors' queue shed is reported
//! at most once a second as a `loss` event with source `detect` ([`crate::detect::feed`]).
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use super::decode;
use crate::detect::feed::Feed;
use crate::detect::Input;
use crate::output::{Body, Emitter, Loss};

pub async fn run(
    ring: RingBuf<MapData>,
    emitter: Emitter,
    inputs: Feed,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer map owns its fd for as long as the AsyncFd owns the map.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut report = tokio::time::interval(Duration::from_secs(1));
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = report.tick() => report_shed(&emitter, &inputs, &mut reported),
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                // Readiness is cleared only once the ring is empty; otherwise the next round
                // continues where this one stopped.
                if drain(guard.get_inner_mut(), &emitter, &inputs, SLICE) {
                    guard.clear_ready();
                }
            }
        }
    }
    // Whatever arrived before the programs were detached.
    drain(fd.get_mut(), &emitter, &inputs, usize::MAX);
    report_shed(&emitter, &inputs, &mut reported);
    Ok(())
}

/// Records handled per round before the task goes back to its `select!` (shutdown, the
/// report tick, the runtime's other tasks): records keep arriving during a storm.
const SLICE: usize = 4096;

/// Handles up to `max` records; true when the ring is empty.
fn drain(ring: &mut RingBuf<MapData>, emitter: &Emitter, inputs: &Feed, max: usize) -> bool {
    for _ in 0..max {
        let Some(item) = ring.next() else {
            return true;
        };
        match decode::syscall_event(&item).and_then(|ev| decode::observation(&ev)) {
            Ok(obs) => {
                // Shed when the engine is behind (counted), or refused when it is gone at
                // shutdown; the event is written either way.
                inputs.offer(Input::Observation(obs.clone()));
                emitter.emit(Body::Observation(obs));
            }
            Err(e) => tracing::warn!(error = %e, "undecodable ring buffer record"),
        }
    }
    false
}

fn report_shed(emitter: &Emitter, inputs: &Feed, reported: &mut u64) {
    let total = inputs.shed();
    if total > *reported {
        emitter.emit(Body::Loss(Loss {
            source: "detect".into(),
            lost: total - *reported,
            total,
        }));
        *reported = total;
    }
}
