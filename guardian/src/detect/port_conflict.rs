//! `port_conflict` (layer 4): bind(2) failing with EADDRINUSE.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct PortConflict {
    #[allow(dead_code)]
    cfg: Config,
}

impl PortConflict {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for PortConflict {
    fn name(&self) -> &'static str {
        "port_conflict"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
