//! `retransmit_storm` (layer 4): retransmitted / sent segments > 5 % over 10 s with ≥ 1,000 segments.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct RetransmitStorm {
    #[allow(dead_code)]
    cfg: Config,
}

impl RetransmitStorm {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for RetransmitStorm {
    fn name(&self) -> &'static str {
        "retransmit_storm"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
