//! The ring buffer consumer: wakes on epoll readiness, drains every record, decodes, emits.
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use super::decode;
use crate::detect::Input;
use crate::output::{Body, Emitter};

type Inputs = tokio::sync::mpsc::UnboundedSender<Input>;

pub async fn run(
    ring: RingBuf<MapData>,
    emitter: Emitter,
    inputs: Inputs,
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
                drain(guard.get_inner_mut(), &emitter, &inputs);
                guard.clear_ready();
            }
        }
    }
    // Whatever arrived before the programs were detached.
    drain(fd.get_mut(), &emitter, &inputs);
    Ok(())
}

fn drain(ring: &mut RingBuf<MapData>, emitter: &Emitter, inputs: &Inputs) {
    while let Some(item) = ring.next() {
        match decode::syscall_event(&item).and_then(|ev| decode::observation(&ev)) {
            Ok(obs) => {
                // The engine may already be gone at shutdown; the event is still written.
                let _ = inputs.send(Input::Observation(obs.clone()));
                emitter.emit(Body::Observation(obs));
            }
            Err(e) => tracing::warn!(error = %e, "undecodable ring buffer record"),
        }
    }
}
