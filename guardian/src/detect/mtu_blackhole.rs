//! `mtu_blackhole` (layer 3): repeated retransmits of full-MSS segments on one flow while small ones get through.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct MtuBlackhole {
    #[allow(dead_code)]
    cfg: Config,
}

impl MtuBlackhole {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for MtuBlackhole {
    fn name(&self) -> &'static str {
        "mtu_blackhole"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
