//! `connect_timeout_cascade` (layer 4): ≥ 20 connects to one destination failing (SYN_SENT → CLOSE) in 10 s.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct ConnectTimeoutCascade {
    #[allow(dead_code)]
    cfg: Config,
}

impl ConnectTimeoutCascade {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for ConnectTimeoutCascade {
    fn name(&self) -> &'static str {
        "connect_timeout_cascade"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
