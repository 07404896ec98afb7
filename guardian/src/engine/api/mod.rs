//! The engine's API: the requests it answers (from the control socket and SIGHUP), each with
//! a oneshot reply, and the plain views it answers with. The engine owns these types; the
//! control socket only forwards requests and renders views.
mod tally;
mod view;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::engine::safety::SafetyConfig;
use crate::faults::DetectConfig;
use crate::remedy::RemedyConfig;
pub use tally::Tally;
pub use view::*;

/// Requests waiting for the engine; more make the sender wait.
pub const QUEUE: usize = 32;

/// `mode` request argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ModeChange {
    /// Detect and plan only.
    Observe,
    /// Apply, verify, roll back.
    Enforce,
    /// Create the pause file: enforce mode only plans until `resume`.
    Pause,
    /// Remove the pause file.
    Resume,
}

/// Thresholds and policies a SIGHUP reload replaces.
#[derive(Debug, Clone)]
pub struct Reload {
    pub detect: DetectConfig,
    pub remedies: RemedyConfig,
    pub safety: SafetyConfig,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, String>>;

/// One request to the engine.
#[derive(Debug)]
pub enum Request {
    Status(oneshot::Sender<Status>),
    /// Open and recently closed incidents, newest first.
    Incidents(oneshot::Sender<Vec<IncidentView>>),
    Mode(ModeChange, Reply<Value>),
    Heal {
        fault: String,
        subject: String,
        reply: Reply<Value>,
    },
    /// One change (`Some(id)`) or all open ones.
    Rollback(Option<String>, Reply<Value>),
    /// `baseline show|accept [PREFIX]`.
    Baseline {
        accept: bool,
        prefix: Option<String>,
        reply: Reply<Value>,
    },
    /// SIGHUP: the new configuration, or why it could not be loaded (the old one stays).
    Reload(Result<Box<Reload>, String>, Reply<Value>),
}

/// The sending side, held by the control server and run.rs.
pub type Handle = mpsc::Sender<Request>;

/// What the engine's run loop needs from the control side.
pub struct Wiring {
    pub rx: mpsc::Receiver<Request>,
    pub tally: Tally,
}

impl Wiring {
    pub fn channel(tally: Tally) -> (Handle, Wiring) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (tx, Wiring { rx, tally })
    }

    /// No control socket: requests never come.
    pub fn detached() -> Wiring {
        Wiring::channel(Tally::default()).1
    }
}
