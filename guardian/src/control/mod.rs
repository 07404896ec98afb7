//! The control socket (docs/control.md): a Unix socket, mode 0600, peer credentials
//! checked, speaking a small versioned JSON protocol behind `guardian status`, `history`,
//! `stats`, `mode`, `heal`, `rollback` and `events`.
pub mod client;
pub mod handlers;
pub mod history;
pub mod protocol;
pub mod reload;
pub mod render;
pub mod server;

/// The engine's event tally, also kept for `stats` (re-exported for run.rs).
pub use crate::engine::api::Tally;

/// Where the daemon listens unless `--socket PATH` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/guardian/guardian.sock";
