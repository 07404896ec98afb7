//! `connection_flood` (layer 4): new established connections per second from one source over the limit.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct ConnectionFlood {
    #[allow(dead_code)]
    cfg: Config,
}

impl ConnectionFlood {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for ConnectionFlood {
    fn name(&self) -> &'static str {
        "connection_flood"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
