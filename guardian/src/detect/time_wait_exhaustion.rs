//! `time_wait_exhaustion` (layer 4): TIME_WAIT over 80 % of tcp_max_tw_buckets, or over half the ephemeral range toward one destination.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct TimeWaitExhaustion {
    #[allow(dead_code)]
    cfg: Config,
}

impl TimeWaitExhaustion {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for TimeWaitExhaustion {
    fn name(&self) -> &'static str {
        "time_wait_exhaustion"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
