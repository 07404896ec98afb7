//! systemd service notifications (`Type=notify`): `READY=1` once every probe is attached and
//! the engine is ready, `RELOADING=1` … `READY=1` around a SIGHUP reload, `STATUS=` lines,
//! `STOPPING=1` at shutdown, and watchdog pings from the daemon's main loop (so a wedged loop stops pinging and systemd restarts it). Without
//! `NOTIFY_SOCKET` (not under systemd) every call is a no-op.
use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Every probe is attached and the engine runs.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A SIGHUP reload begins: `RELOADING=1` with the monotonic time (what `Type=notify-reload`
/// requires; plain `Type=notify` accepts it too). [`ready`] ends it.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping(reason: &str) {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status(&format!("stopping: {reason}")),
    ]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping: half of `WATCHDOG_USEC` (as sd_watchdog_enabled(3) advises), or `None`
/// when no watchdog is set for this process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| (d / 2).max(Duration::from_millis(10)))
}
