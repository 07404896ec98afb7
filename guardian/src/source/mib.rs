//! Per-namespace MIB counters, sysctls and socket-table aggregates (being written).
use serde::{Deserialize, Serialize};

use super::{Sampler, TickContext};
use crate::detect::Input;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MibSample {
    pub netns: u32,
}

pub struct MibSampler;

impl MibSampler {
    pub fn new() -> Self {
        Self
    }
}

impl Default for MibSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for MibSampler {
    fn name(&self) -> &'static str {
        "mib"
    }
    fn sample(&mut self, _ctx: &mut TickContext) -> Vec<Input> {
        Vec::new()
    }
}
