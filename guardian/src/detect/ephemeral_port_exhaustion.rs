//! `ephemeral_port_exhaustion` (layer 4): connect(2) failing with EADDRNOTAVAIL ≥ 1/s for 3 s.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct EphemeralPortExhaustion {
    #[allow(dead_code)]
    cfg: Config,
}

impl EphemeralPortExhaustion {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for EphemeralPortExhaustion {
    fn name(&self) -> &'static str {
        "ephemeral_port_exhaustion"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
