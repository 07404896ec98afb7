//! SIGHUP: re-read the configuration and hand it to the engine (which keeps the old one and
//! says why in a `lifecycle` `reloaded` event when the new one is invalid).
use std::path::Path;

use tokio::sync::oneshot;

use crate::engine::api::{Handle, Reload, Request};

/// Reloads; returns once the engine has answered (or is gone).
pub async fn on_sighup(engine: &Handle, config: Option<&Path>, detect: Option<&Path>) {
    tracing::info!("SIGHUP: reloading the configuration");
    let loaded = crate::config::load(config, detect)
        .map(|c| {
            Box::new(Reload {
                detect: c.detect,
                remedies: c.remedies,
                safety: c.safety,
            })
        })
        .map_err(|e| e.to_string());
    let (tx, rx) = oneshot::channel();
    if engine.send(Request::Reload(loaded, tx)).await.is_err() {
        tracing::warn!("SIGHUP ignored: the remediation engine is not running");
        return;
    }
    let _ = rx.await;
}
