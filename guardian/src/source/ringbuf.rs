//! The ring buffer consumer: wakes on epoll readiness, drains every record, decodes, emits.
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use super::decode;
use crate::output::{Body, Emitter};

pub async fn run(
    ring: RingBuf<MapData>,
    emitter: Emitter,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer map owns its fd for as long as the AsyncFd owns the map.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &emitter);
                guard.clear_ready();
            }
        }
    }
    // Whatever arrived before the programs were detached.
    drain(fd.get_mut(), &emitter);
    Ok(())
}

fn drain(ring: &mut RingBuf<MapData>, emitter: &Emitter) {
    while let Some(item) = ring.next() {
        match decode::syscall_event(&item).and_then(|ev| decode::observation(&ev)) {
            Ok(obs) => emitter.emit(Body::Observation(obs)),
            Err(e) => tracing::warn!(error = %e, "undecodable ring buffer record"),
        }
    }
}
