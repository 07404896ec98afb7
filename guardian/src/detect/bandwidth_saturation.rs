//! `bandwidth_saturation` (layer 2): an interface over 90 % of its capacity for 10 s.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct BandwidthSaturation {
    #[allow(dead_code)]
    cfg: Config,
}

impl BandwidthSaturation {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for BandwidthSaturation {
    fn name(&self) -> &'static str {
        "bandwidth_saturation"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
