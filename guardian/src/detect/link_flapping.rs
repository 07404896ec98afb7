//! `link_flapping` (layer 2): ≥ 4 up/down transitions of a link in 30 s.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct LinkFlapping {
    #[allow(dead_code)]
    cfg: Config,
}

impl LinkFlapping {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for LinkFlapping {
    fn name(&self) -> &'static str {
        "link_flapping"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
