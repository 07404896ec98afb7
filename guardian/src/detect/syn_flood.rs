//! `syn_flood` (layer 4): SYNs/s to a port over the limit while under 20 % complete the handshake.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct SynFlood {
    #[allow(dead_code)]
    cfg: Config,
}

impl SynFlood {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for SynFlood {
    fn name(&self) -> &'static str {
        "syn_flood"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
