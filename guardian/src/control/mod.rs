//! The control socket (docs/control.md): a Unix socket, mode 0600, peer credentials
//! checked, speaking a small versioned JSON protocol behind `guardian status`, `history`,
//! `stats`, `mode`, `heal`, `rollback` and `events`. It forwards requests to the engine
//! (`engine::api`) and renders the views it answers with; the clients are in `cmd::client`.
pub mod client;
pub mod handlers;
pub mod history;
pub mod protocol;
pub mod reload;
pub mod render;
pub mod server;

/// Where the daemon listens unless `--socket PATH` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/guardian/guardian.sock";
