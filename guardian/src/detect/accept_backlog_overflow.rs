//! `accept_backlog_overflow` (layer 4): listen queue overflows (ListenOverflows/ListenDrops) for 3 s.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct AcceptBacklogOverflow {
    #[allow(dead_code)]
    cfg: Config,
}

impl AcceptBacklogOverflow {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for AcceptBacklogOverflow {
    fn name(&self) -> &'static str {
        "accept_backlog_overflow"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
