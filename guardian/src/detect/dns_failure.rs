//! `dns_failure` (layer 4): over 20 % of DNS queries to a resolver failing (SERVFAIL/REFUSED/no answer) over 10 s.
//!
//! Not implemented yet: this detector reports nothing. Its configuration is accepted so that
//! the configuration schema is stable.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Detector, Finding, Input};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub struct DnsFailure {
    #[allow(dead_code)]
    cfg: Config,
}

impl DnsFailure {
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }
}

impl Detector for DnsFailure {
    fn name(&self) -> &'static str {
        "dns_failure"
    }

    fn observe(&mut self, _input: &Input, _now: Instant) -> Vec<Finding> {
        Vec::new()
    }
}
