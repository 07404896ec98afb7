//! Samples for the linkstats detectors (being written).
use serde::{Deserialize, Serialize};

use super::{Sampler, TickContext};
use crate::detect::Input;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LinkStatsSample {
    pub netns: u32,
}

pub struct LinkStatsSampler;

impl LinkStatsSampler {
    pub fn new() -> Self {
        Self
    }
}

impl Default for LinkStatsSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for LinkStatsSampler {
    fn name(&self) -> &'static str {
        "linkstats"
    }
    fn sample(&mut self, _ctx: &mut TickContext) -> Vec<Input> {
        Vec::new()
    }
}
