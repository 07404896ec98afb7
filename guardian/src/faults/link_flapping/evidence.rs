//! `link_flapping` evidence: the transitions of one link.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Since the fault opened (null before).
    pub flapping_ms: Option<u64>,
    pub ifindex: u32,
    /// Cleared because the link was deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    pub threshold: u32,
    pub transitions_in_window: usize,
    pub transitions_total: u64,
    pub up: bool,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        if self.removed {
            return "the link was deleted".to_string();
        }
        format!(
            "{} up/down transitions in {} ms (threshold {}), now {}",
            self.transitions_in_window,
            self.window_ms,
            self.threshold,
            if self.up { "up" } else { "down" }
        )
    }
}
